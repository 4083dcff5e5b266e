"""Reading text files line by line with a stated rule for bad bytes, and line numbers for errors.

Rule: input is UTF-8. A line with invalid UTF-8 bytes is decoded with U+FFFD replacement
characters, counted, and reported (file and first line) — never dropped. Mojibake that is valid
UTF-8 (e.g. ``â`` in MS MARCO, which the published models were trained on) is kept as it is.
"""

from __future__ import annotations

import gzip
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from repro.errors import ReproError

log = logging.getLogger(__name__)

# A line longer than this is almost certainly a broken file (a missing newline in a binary dump);
# MS MARCO's longest passage is about 4.5k characters.
MAX_LINE_BYTES = 16 * 1024 * 1024


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


def open_binary(path: Path):
    """Open plain or gzip-compressed files alike (Anserini ships .tsv.gz query files)."""
    if not path.exists():
        raise ReproError("file not found", path)
    if path.is_dir():
        raise ReproError("is a folder, expected a file", path)
    return gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")


def iter_lines(path: str | Path, stats: ReadCounts | None = None) -> Iterator[tuple[int, str]]:
    """Yield (line number, text without newline); bad UTF-8 replaced and counted."""
    path = Path(path)
    stats = stats if stats is not None else ReadCounts()
    with open_binary(path) as handle:
        try:
            for lineno, raw in enumerate(handle, start=1):
                if len(raw) > MAX_LINE_BYTES:
                    raise ReproError(f"line is {len(raw)} bytes long (limit {MAX_LINE_BYTES}); is this a text file?", path, lineno)
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
        except (OSError, EOFError, gzip.BadGzipFile) as err:
            raise ReproError(f"cannot read: {err}", path) from err
