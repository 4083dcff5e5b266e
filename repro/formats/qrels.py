"""Relevance judgements (qrels): TREC, BEIR (folder or ``qrels/<split>.tsv``) and SMART qrels files,
or an ir_datasets ID, as ``{qid: {docid: rel}}``. The format is detected from the content (see
`detect_qrels_format`) or given (``--qrels-format``).

Relevance is an integer; graded (0..4) and negative grades (Cranfield's -1 = not relevant) are
kept as given: measures decide what counts as relevant (``rel=`` in ir_measures, ``-l`` in
trec_eval).

Files are opened by `repro.formats.textio.open_input`: gzip is recognised by content (any suffix),
a leading UTF-8 BOM is dropped, UTF-16 is refused by name; invalid UTF-8 is an error naming the
line. Ids follow `repro.formats.ids` (split on whitespace, so only the empty-id rule can apply).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from repro.errors import BadInputError, ReproError, short
from repro.formats.ids import clean_id
from repro.formats.textio import decode_strict, iter_raw_lines

QRELS_COLUMNS = "qid iter docid rel"


@dataclass
class Qrels:
    """Judgements by query; ``source`` is the file or ir_datasets ID they came from."""

    source: str
    by_query: dict[str, dict[str, int]] = field(default_factory=dict)

    @property
    def query_ids(self) -> list[str]:
        return list(self.by_query)

    def __len__(self) -> int:
        return sum(len(docs) for docs in self.by_query.values())


QRELS_FILE_FORMATS = ("auto", "trec", "beir", "smart")


def read_qrels(source: str | Path, fmt: str = "auto", split: str = "test") -> Qrels:
    """Read qrels from a file or BEIR folder (``split`` picks ``qrels/<split>.tsv``), or by ir_datasets ID."""
    from repro.formats import irds

    path = irds.local_source(Path(str(source)).expanduser() if str(source).startswith("~") else source, "qrels file")
    if path is None:
        return _load_irds(str(source))
    fmt = detect_qrels_format(path) if fmt == "auto" else fmt
    if fmt not in QRELS_FILE_FORMATS:
        raise ReproError(f"unknown qrels format {fmt!r}; choose one of {', '.join(QRELS_FILE_FORMATS)}")
    if fmt == "beir":
        from repro.formats import beir

        where = beir.qrels_file(path, split) if path.is_dir() else path
        return Qrels(str(where), beir.read_qrels(path, split))
    if not path.is_file():
        raise ReproError("qrels path is not a file (a folder must be a BEIR folder with qrels/)", path)
    if fmt == "smart":
        from repro.formats import smart

        by_query: dict[str, dict[str, int]] = {}
        for lineno, qid, docid, rel in smart.iter_qrels(path):
            if docid in by_query.setdefault(qid, {}):
                raise BadInputError(f"duplicate judgement of document {docid!r} for query {qid!r}", path, lineno)
            by_query[qid][docid] = rel
        if not by_query:
            raise BadInputError("empty qrels file (no judgements)", path)
        return Qrels(str(path), by_query)
    return _read_file(path)


def detect_qrels_format(path: Path) -> str:
    """BEIR for a folder or a ``query-id`` header; SMART for ``qid docid [x y]`` lines; else TREC."""
    from repro.formats import beir, smart
    from repro.formats.textio import iter_lines

    if path.is_dir():
        return "beir" if beir.is_folder(path) or (path / "qrels").is_dir() else "trec"
    head: list[str] = []
    for lineno, line in iter_lines(path):
        head.append(line.lstrip("\ufeff") if lineno == 1 else line)
        if len(head) >= 50:
            break
    first = head[0].split() if head else []
    if [f.lower() for f in first] == list(beir.QRELS_HEADER) or (head and head[0].count("\t") == 2):
        return "beir"
    return "smart" if smart.looks_like_qrels(head) else "trec"


def _read_file(path: Path) -> Qrels:
    by_query: dict[str, dict[str, int]] = {}
    first_line: dict[tuple[str, str], int] = {}
    for lineno, raw in iter_raw_lines(path):
        decode_strict(raw, path, lineno)
        # split the bytes: ASCII whitespace only, like trec_eval and the run reader
        fields = [part.decode("utf-8") for part in raw.split()]
        if not fields:
            continue
        if len(fields) != 4:
            raise BadInputError(
                f"expected 4 whitespace-separated columns ({QRELS_COLUMNS}), found {len(fields)}: "
                f"{short(' '.join(fields))!r}",
                path,
                lineno,
            )
        qid, docid = clean_id(fields[0], "query id", path, lineno), clean_id(fields[2], "document id", path, lineno)
        rel_text = fields[3]
        try:
            rel = int(rel_text)
        except ValueError:
            raise BadInputError(f"relevance (column 4) is not an integer: {short(rel_text, 40)!r}", path, lineno) from None
        docs = by_query.setdefault(qid, {})
        if docid in docs:
            raise BadInputError(
                f"duplicate judgement of document {docid!r} for query {qid!r} (lines {first_line[qid, docid]} and {lineno})",
                path,
                lineno,
            )
        docs[docid] = rel
        first_line[qid, docid] = lineno
    if not by_query:
        raise BadInputError("empty qrels file (no judgements)", path)
    return Qrels(str(path), by_query)


def _load_irds(dataset_id: str) -> Qrels:
    from repro.formats import irds  # one place for ir_datasets' unknown-ID and offline errors

    by_query: dict[str, dict[str, int]] = {}
    for qrel in irds.iterate(dataset_id, "qrels"):
        qid, docid = clean_id(qrel.query_id, "query id", dataset_id, None), clean_id(qrel.doc_id, "document id", dataset_id, None)
        docs = by_query.setdefault(qid, {})
        old = docs.get(docid)
        if old is not None and old != int(qrel.relevance):
            raise ReproError(
                f"ir_datasets {dataset_id!r} judges document {qrel.doc_id!r} for query {qrel.query_id!r} twice, "
                f"with different grades ({old} and {qrel.relevance})"
            )
        docs[docid] = int(qrel.relevance)
    if not by_query:
        raise ReproError(f"ir_datasets {dataset_id!r} returned no qrels")
    return Qrels(dataset_id, by_query)
