"""Opening and reading every text input: one rule for compression, byte-order marks, encodings, lines.

Rules (docs/reliability.md), the same for every reader (corpus, topics, qrels, runs, queries, training data):
- Compression is recognised by content, not name: a file starting with the gzip magic bytes
  (``1f 8b``) is decompressed whatever its suffix (``.gz``, ``.GZ`` or none); a ``.gz`` file that is
  not gzip is read as it is.
- A leading UTF-8 byte-order mark (``EF BB BF``) is dropped, so it never becomes part of the first id.
- A UTF-16 file (a UTF-16 BOM, or NUL bytes every other byte at the start) is refused with
  "file is UTF-16; convert it to UTF-8" instead of being misread.
- Input is UTF-8. In `iter_lines`, a line with invalid UTF-8 bytes is decoded with U+FFFD
  replacement characters, counted, and reported (file and first line), never dropped. Mojibake
  that is valid UTF-8 (e.g. ``â`` in MS MARCO, which the published models were trained on) is kept
  as it is. Qrels and run readers refuse invalid UTF-8 instead (ids must match exactly).
"""

from __future__ import annotations

import gzip
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from repro.errors import ReproError

log = logging.getLogger(__name__)

# A line longer than this is almost certainly a broken file (a missing newline in a binary dump);
# MS MARCO's longest passage is about 4.5k characters.
MAX_LINE_BYTES = 16 * 1024 * 1024
GZIP_MAGIC = b"\x1f\x8b"
UTF8_BOM = b"\xef\xbb\xbf"
UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")
UTF16_HINT = "file is UTF-16; convert it to UTF-8 (e.g. iconv -f UTF-16 -t UTF-8 FILE > FILE.utf8)"


@dataclass
class ReadCounts:
    """What a reader met on its way: counts reported in summaries and manifests."""

    lines: int = 0
    bad_utf8_lines: int = 0
    first_bad_utf8: str | None = None
    skipped_lines: int = 0
    skipped_examples: list[str] = field(default_factory=list)

    def skip(self, where: str, why: str) -> None:
        self.skipped_lines += 1
        if len(self.skipped_examples) < 5:
            self.skipped_examples.append(f"{where}: {why}")


@dataclass(frozen=True)
class Sniffed:
    """What the first bytes of a file say: gzip-compressed, and whether a UTF-8 BOM leads its text."""

    gzip: bool
    bom: bool


def _check_path(path: Path) -> None:
    if not path.exists():
        raise ReproError("file not found", path)
    if path.is_dir():
        raise ReproError("is a folder, expected a file", path)


def _looks_utf16(head: bytes) -> bool:
    if head.startswith(UTF16_BOMS):
        return True
    # ASCII text in UTF-16 without a BOM: a NUL in every other byte of the first characters
    pairs = head[: len(head) - len(head) % 2]
    if len(pairs) < 4:
        return False
    odd, even = pairs[1::2], pairs[0::2]
    return (odd.count(0) == len(odd) and even.count(0) == 0) or (even.count(0) == len(even) and odd.count(0) == 0)


def sniff(path: str | Path) -> Sniffed:
    """Look at a file's first bytes (decompressed when gzip); refuse UTF-16 by name."""
    path = Path(path)
    with open_input(path) as handle:
        return handle.sniffed  # type: ignore[attr-defined]


def open_input(path: str | Path) -> BinaryIO:
    """Open any input file for binary reading: gzip by content, UTF-16 refused, a UTF-8 BOM skipped.

    The handle has a ``sniffed`` attribute (`Sniffed`). Every reader opens its files here.
    """
    path = Path(path)
    _check_path(path)
    try:
        raw = open(path, "rb")
    except OSError as err:
        raise ReproError(f"cannot read: {err.strerror or err}", path) from err
    try:
        compressed = raw.read(2) == GZIP_MAGIC
        raw.seek(0)
        handle: BinaryIO = gzip.GzipFile(fileobj=raw, mode="rb") if compressed else raw  # type: ignore[assignment]
        head = handle.read(8)
        if _looks_utf16(head):
            raise ReproError(UTF16_HINT, path)
        bom = head.startswith(UTF8_BOM)
        handle.seek(len(UTF8_BOM) if bom else 0)
    except ReproError:
        raw.close()
        raise
    except (OSError, EOFError, gzip.BadGzipFile) as err:
        raw.close()
        raise ReproError(f"cannot read: {err}", path) from err
    if compressed:
        handle.myfileobj = raw  # type: ignore[attr-defined]  # closed with the GzipFile
    handle.sniffed = Sniffed(compressed, bom)  # type: ignore[attr-defined]
    return handle


def iter_blocks(path: str | Path, size: int) -> Iterator[bytes]:
    """The (decompressed) bytes of an input in blocks of ``size``; a damaged file is one error naming it."""
    path = Path(path)
    with open_input(path) as handle:
        try:
            while block := handle.read(size):
                yield block
        except (OSError, EOFError, gzip.BadGzipFile) as err:
            raise ReproError(f"cannot read: {err}", path) from err


def head_text(path: str | Path, size: int = 1024) -> str:
    """The first ``size`` bytes of an input as text (decompressed, BOM dropped), to sniff its format."""
    path = Path(path)
    with open_input(path) as handle:
        try:
            return handle.read(size).decode("utf-8", errors="replace")
        except (OSError, EOFError, gzip.BadGzipFile) as err:
            raise ReproError(f"cannot read: {err}", path) from err


def open_binary(path: Path) -> BinaryIO:
    """Kept for callers that only need the bytes: the same as `open_input`."""
    return open_input(path)


def iter_raw_lines(path: str | Path) -> Iterator[tuple[int, bytes]]:
    """(line number, raw bytes with the newline) of an input opened by `open_input`; read errors named."""
    path = Path(path)
    with open_input(path) as handle:
        try:
            for lineno, raw in enumerate(handle, start=1):
                if len(raw) > MAX_LINE_BYTES:
                    raise ReproError(f"line is {len(raw)} bytes long (limit {MAX_LINE_BYTES}); is this a text file?", path, lineno)
                yield lineno, raw
        except (OSError, EOFError, gzip.BadGzipFile) as err:
            raise ReproError(f"cannot read: {err}", path) from err


def iter_lines(path: str | Path, stats: ReadCounts | None = None) -> Iterator[tuple[int, str]]:
    """Yield (line number, text without newline); bad UTF-8 replaced and counted."""
    path = Path(path)
    stats = stats if stats is not None else ReadCounts()
    for lineno, raw in iter_raw_lines(path):
        stats.lines += 1
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            text = raw.decode("utf-8", errors="replace")
            stats.bad_utf8_lines += 1
            if stats.first_bad_utf8 is None:
                stats.first_bad_utf8 = f"{path}:{lineno}"
                log.warning("%s:%d: invalid UTF-8 bytes replaced by U+FFFD (counted, not dropped)", path, lineno)
        yield lineno, text.rstrip("\r\n")


def decode_strict(raw: bytes, path: Path, lineno: int) -> str:
    """A line of a qrels or run file as text; invalid UTF-8 is an error naming the byte and column."""
    from repro.errors import BadInputError

    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise BadInputError(f"not valid UTF-8 (byte 0x{raw[err.start]:02x} at column {err.start + 1})", path, lineno) from None


def bad_line(skip: bool, stats: ReadCounts | None, path: Path, lineno: int, why: str) -> None:
    """The bad-line rule of the line-per-record readers: an error naming file and line, or, with
    ``--skip-bad-lines``, a counted skip (the first examples kept for the summary)."""
    from repro.errors import BadInputError

    if not skip or stats is None:
        raise BadInputError(why + " (pass --skip-bad-lines to skip such lines)", path, lineno)
    stats.skip(f"{path}:{lineno}", why)


def iter_json_objects(path: Path, stats: ReadCounts | None, skip: bool = False) -> Iterator[tuple[int, dict]]:
    """(line number, object) of a JSON-lines file; blank lines skipped, other lines by `bad_line`."""
    import json

    for lineno, line in iter_lines(path, stats):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            bad_line(skip, stats, path, lineno, f"not valid JSON ({err.msg} at column {err.colno})")
            continue
        if not isinstance(record, dict):
            bad_line(skip, stats, path, lineno, "expected a JSON object")
            continue
        yield lineno, record
