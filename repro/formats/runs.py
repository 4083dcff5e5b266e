"""TREC run files: strict, fast reading (`read_run`) and atomic writing (`write_run`).

A run line is exactly six whitespace-separated columns, ``qid Q0 docid rank score tag``. Like
trec_eval, only qid, docid and score carry meaning (the ranking is by score); unlike trec_eval,
every malformed line is an error naming the file and line, never silently skipped.

Speed matters (an MS MARCO dev run has 7M lines), so a file separated by single spaces (what
Anserini, pyserini and `write_run` produce) is parsed by pyarrow's CSV reader into columnar
arrays; any other layout (tabs, aligned columns) or any problem sends the file through a plain
line-by-line reader, which is slower but is the one that names the offending line.

Both paths open the file through `repro.formats.textio.open_input`: gzip is recognised by content
(any suffix), a leading UTF-8 BOM is dropped (from the first line only: it is not whitespace),
UTF-16 is refused by name. Ids follow `repro.formats.ids`: whitespace cannot be inside a field
(columns are whitespace-split), and a Unicode space (e.g. U+00A0) inside an id is refused with its line.
"""

from __future__ import annotations

import codecs
import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from repro.errors import BadInputError, ReproError, short
from repro.formats.ids import clean_id
from repro.formats.textio import decode_strict, iter_blocks, iter_raw_lines, open_input
from repro.outputs import atomic_write, check_writable

RUN_COLUMNS = "qid Q0 docid rank score tag"
_BLOCK = 16 << 20  # bytes per pre-scan block
_CSV_BLOCK = 4 << 20  # bytes per pyarrow parse block: small blocks keep peak memory low


@dataclass(frozen=True)
class Run:
    """A parsed run, grouped by query: rows ``offsets[i]:offsets[i+1]`` belong to ``query_ids[i]``.

    Columnar (a pyarrow string array of docids, a float64 array of scores) because a dict of
    dicts for 7M lines costs about 1 GB; `query_dicts` builds dicts for a few queries at a time.
    """

    path: str
    query_ids: list[str]
    offsets: np.ndarray  # int64, len(query_ids) + 1
    docids: object  # pyarrow (Chunked)Array of str, grouped by query
    scores: np.ndarray  # float64, grouped by query

    def __len__(self) -> int:
        return int(self.offsets[-1])

    @property
    def counts(self) -> np.ndarray:
        """Number of retrieved documents per query."""
        return np.diff(self.offsets)

    def query_dicts(self, indices: Sequence[int], rows: np.ndarray | None = None) -> dict[str, dict[str, float]]:
        """``{qid: {docid: score}}`` for the queries at ``indices`` (pytrec_eval's input format).

        ``rows`` (a boolean mask over all rows) keeps only some rows, e.g. a top-k prefix. Without
        it every row is kept and a duplicate (qid, docid) pair is reported with both lines.
        """
        if len(indices) == 0:
            return {}
        indices = np.asarray(indices)
        out: dict[str, dict[str, float]] = {}
        # indices are increasing; slice the covering range once to keep the conversion vectorized
        lo, hi = int(self.offsets[indices[0]]), int(self.offsets[indices[-1] + 1])
        docids = self.docids.slice(lo, hi - lo).to_pylist()
        scores = self.scores[lo:hi].tolist()
        keep = None if rows is None else rows[lo:hi]
        for i in indices:
            a, b = int(self.offsets[i]) - lo, int(self.offsets[i + 1]) - lo
            if keep is None:
                docs = dict(zip(docids[a:b], scores[a:b]))
                if len(docs) != b - a:
                    _raise_duplicate(self, self.query_ids[i], docids[a:b])
            else:
                sel = np.flatnonzero(keep[a:b]) + a
                docs = {docids[j]: scores[j] for j in sel}
            out[self.query_ids[i]] = docs
        return out

    def check_duplicates(self, chunk_rows: int = 500_000) -> None:
        """Raise BadInputError naming both lines if a (qid, docid) pair occurs twice."""
        for chunk in query_chunks(self.offsets, chunk_rows):
            lo, hi = int(self.offsets[chunk[0]]), int(self.offsets[chunk[-1] + 1])
            docids = self.docids.slice(lo, hi - lo).to_pylist()
            for i in chunk:
                a, b = int(self.offsets[i]) - lo, int(self.offsets[i + 1]) - lo
                if len(set(docids[a:b])) != b - a:
                    _raise_duplicate(self, self.query_ids[i], docids[a:b])

    def to_dict(self) -> dict[str, dict[str, float]]:
        """The whole run as ``{qid: {docid: score}}`` (convenient for small runs and tests)."""
        return self.query_dicts(range(len(self.query_ids)))


def read_run(path: str | Path, *, check_duplicates: bool = True) -> Run:
    """Read and validate a TREC run file; raise BadInputError naming the first bad line.

    ``check_duplicates=False`` skips the duplicate (qid, docid) scan for callers that detect
    duplicates anyway while building per-query dicts (`Run.query_dicts` does), saving a pass.
    """
    path = Path(path)
    if not path.is_file():
        raise ReproError("run file not found" if not path.exists() else "run path is not a file", path)
    run = _read_fast(path)
    if run is None:
        run = _read_slow(path)
    if check_duplicates:
        run.check_duplicates()
    return run


def write_run(path: str | Path, rows: Iterable[tuple[str, str, int, str]], tag: str, *, force: bool = False) -> int:
    """Write ``(qid, docid, rank, score_text)`` rows as a TREC run, atomically; return the line count.

    ``score_text`` is written verbatim: the search stage formats its own (tie-free) scores. The
    caller writes the manifest, since only it knows the configuration that produced the run.
    """
    path = Path(path)
    check_writable(path, force=force)
    _check_token(tag, "run tag", path)
    count = 0
    with atomic_write(path) as out:
        for qid, docid, rank, score_text in rows:
            for value, what in ((qid, "query id"), (docid, "doc id"), (score_text, "score")):
                _check_token(value, what, path)
            out.write(f"{qid} Q0 {docid} {int(rank)} {score_text} {tag}\n")
            count += 1
    return count


def _check_token(value: str, what: str, path: Path) -> None:
    if not value or any(ch.isspace() for ch in value):
        raise ReproError(f"{what} {value!r} is empty or contains whitespace; it would corrupt the run file", path)


# --- fast path ---------------------------------------------------------------------------------


def _plain_bytes(path: Path) -> bool:
    """True when the file is valid UTF-8 without tabs, vertical tabs or form feeds.

    With single spaces as the only separators, pyarrow's columns are the whitespace-split tokens,
    except for empty fields (doubled, leading or trailing spaces), which `_read_fast` checks.
    Only one-byte searches here: they run at memory speed.
    """
    decoder = codecs.getincrementaldecoder("utf-8")()
    for block in iter_blocks(path, _BLOCK):
        if b"\t" in block or b"\x0b" in block or b"\x0c" in block or b"\r" in block:
            return False
        if b"\x1c" in block or b"\x1d" in block or b"\x1e" in block or b"\x1f" in block:
            return False  # str.isspace() characters that bytes.split() keeps inside a field
        if not block.isascii():
            try:
                decoder.decode(block)
            except UnicodeDecodeError:
                return False
    try:
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return False
    return True


def _read_fast(path: Path) -> Run | None:
    """Columnar parse with pyarrow; None means 'let the line reader decide' (odd layout or error)."""
    if not _plain_bytes(path):
        return None
    import contextlib

    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as pcsv

    names = ["qid", "q0", "docid", "rank", "score", "tag"]
    coded = pa.dictionary(pa.int32(), pa.string())  # few distinct values: cheap to keep, to check for ""
    read = pcsv.ReadOptions(column_names=names, block_size=_CSV_BLOCK, use_threads=True)
    parse = pcsv.ParseOptions(delimiter=" ", quote_char=False, double_quote=False, escape_char=False)
    convert = pcsv.ConvertOptions(
        column_types={"qid": coded, "q0": coded, "docid": pa.string(), "rank": coded, "score": pa.float64(), "tag": coded},
        strings_can_be_null=False,
        quoted_strings_can_be_null=False,
        null_values=[],
    )
    qids, docids, scores = [], [], []
    unicode_space = r"[\pZ\x{85}]"  # what str.isspace() adds to ASCII whitespace (bar \x1c-\x1f, checked above)
    try:
        with contextlib.ExitStack() as stack:
            handle = stack.enter_context(open_input(path))
            if handle.sniffed.gzip or handle.sniffed.bom:
                source = handle  # decompressed / after the BOM
            else:
                handle.close()  # not memory-mapped: mapped pages would count as RSS
                source = stack.enter_context(pa.OSFile(str(path)))
            for batch in pcsv.open_csv(source, read_options=read, parse_options=parse, convert_options=convert):
                for name in ("qid", "q0", "rank", "tag"):
                    if pc.min(pc.binary_length(batch.column(name).dictionary)).as_py() == 0:
                        return None  # an empty field: a doubled, leading or trailing space
                if pc.min(pc.binary_length(batch.column("docid"))).as_py() == 0:
                    return None
                if not pc.all(pc.string_is_ascii(batch.column("docid"))).as_py() and pc.any(
                        pc.match_substring_regex(batch.column("docid"), unicode_space)).as_py():
                    return None  # the line reader names the id
                if any(not q.isascii() and clean_id_fails(q) for q in batch.column("qid").dictionary.to_pylist()):
                    return None
                qids.append(batch.column("qid"))
                docids.append(batch.column("docid"))
                scores.append(batch.column("score").to_numpy())
    except (pa.ArrowInvalid, pa.ArrowTypeError, UnicodeDecodeError, OSError, EOFError):
        return None
    if not scores:
        return None
    score = np.concatenate(scores)
    if not np.isfinite(score).all():
        return None
    unified = pa.chunked_array(qids).unify_dictionaries()
    dictionary = unified.chunks[0].dictionary.to_pylist()
    codes = np.concatenate([chunk.indices.to_numpy(zero_copy_only=False) for chunk in unified.chunks])
    return _grouped(str(path), codes, dictionary, pa.chunked_array(docids), score)


# --- slow path: the reference reader, and the one that names bad lines ------------------------


def _read_slow(path: Path) -> Run:
    import pyarrow as pa

    code_of: dict[str, int] = {}
    codes: list[int] = []
    docids: list[str] = []
    scores: list[float] = []
    for lineno, fields in _iter_lines(path):
        if len(fields) != 6:
            raise BadInputError(
                f"expected 6 whitespace-separated columns ({RUN_COLUMNS}), found {len(fields)}: "
                f"{short(' '.join(fields))!r}",
                path,
                lineno,
            )
        qid, _, docid, _, score_text, _ = fields
        qid, docid = clean_id(qid, "query id", path, lineno), clean_id(docid, "document id", path, lineno)
        try:
            score = float(score_text)
        except ValueError:
            raise BadInputError(f"score (column 5) is not a number: {short(score_text, 40)!r}", path, lineno) from None
        if not math.isfinite(score):
            raise BadInputError(f"score (column 5) is {score_text!r}; scores must be finite numbers", path, lineno)
        codes.append(code_of.setdefault(qid, len(code_of)))
        docids.append(docid)
        scores.append(score)
    if not codes:
        raise BadInputError("empty run file (no lines)", path)
    return _grouped(str(path), np.asarray(codes, dtype=np.int64), list(code_of), pa.chunked_array([pa.array(docids, pa.string())]), np.asarray(scores))


def _iter_lines(path: Path) -> Iterator[tuple[int, list[str]]]:
    """(line number, whitespace-split fields) of each non-blank line; bad UTF-8 names its line."""
    for lineno, raw in iter_raw_lines(path):
        decode_strict(raw, path, lineno)
        # split the bytes: ASCII whitespace only, like trec_eval (a no-break space is not a separator)
        fields = [field.decode("utf-8") for field in raw.split()]
        if fields:
            yield lineno, fields


def clean_id_fails(value: str) -> bool:
    """Whether `repro.formats.ids` would refuse this (already whitespace-split) id."""
    return any(ch.isspace() for ch in value)


def _grouped(path: str, codes: np.ndarray, dictionary: list[str], docids, scores: np.ndarray) -> Run:
    """Group rows by query, keeping file order; only a run whose queries are interleaved is reordered."""
    change = np.flatnonzero(codes[1:] != codes[:-1]) + 1
    starts = np.concatenate([[0], change]).astype(np.int64)
    if len(starts) != len(np.unique(codes)):  # a query occurs in more than one block
        order = np.argsort(codes, kind="stable")
        codes = codes[order]
        docids = docids.take(order)
        scores = scores[order]
        change = np.flatnonzero(codes[1:] != codes[:-1]) + 1
        starts = np.concatenate([[0], change]).astype(np.int64)
    offsets = np.append(starts, len(codes)).astype(np.int64)
    query_ids = [dictionary[c] for c in codes[starts].tolist()]
    return Run(path, query_ids, offsets, docids, np.ascontiguousarray(scores, dtype=np.float64))


def query_chunks(offsets: np.ndarray, chunk_rows: int) -> Iterator[np.ndarray]:
    """Consecutive query index ranges of about ``chunk_rows`` rows each."""
    n = len(offsets) - 1
    start = 0
    while start < n:
        end = int(np.searchsorted(offsets, offsets[start] + chunk_rows, side="right")) - 1
        end = min(max(end, start + 1), n)
        yield np.arange(start, end)
        start = end


def _raise_duplicate(run: Run, qid: str, docids: list[str]) -> None:
    seen: set[str] = set()
    for docid in docids:
        if docid in seen:
            break
        seen.add(docid)
    lines = [lineno for lineno, fields in _iter_lines(Path(run.path)) if len(fields) >= 3 and fields[0] == qid and fields[2] == docid]
    where = f"lines {lines[0]} and {lines[1]}" if len(lines) >= 2 else "twice"
    raise BadInputError(
        f"duplicate document {docid!r} for query {qid!r} ({where}); each (qid, docid) pair may occur once",
        run.path,
        lines[1] if len(lines) >= 2 else None,
    )
