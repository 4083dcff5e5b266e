"""Relevance judgements (qrels): TREC, BEIR (folder or ``qrels/<split>.tsv``) and SMART qrels files,
or an ir_datasets ID, as ``{qid: {docid: rel}}``. The format is detected from the content (see
`detect_qrels_format`) or given (``--qrels-format``).

Relevance is an integer; graded (0..4) and negative grades (Cranfield's -1 = not relevant) are
kept as given: measures decide what counts as relevant (``rel=`` in ir_measures, ``-l`` in
trec_eval).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from repro.errors import BadInputError, ReproError, short

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
    with open(path, "rb") as handle:
        for lineno, raw in enumerate(handle, 1):
            try:
                fields = raw.decode("utf-8").split()
            except UnicodeDecodeError as err:
                raise BadInputError(f"not valid UTF-8 (byte 0x{raw[err.start]:02x} at column {err.start + 1})", path, lineno) from None
            if not fields:
                continue
            if len(fields) != 4:
                raise BadInputError(
                    f"expected 4 whitespace-separated columns ({QRELS_COLUMNS}), found {len(fields)}: "
                    f"{short(' '.join(fields))!r}",
                    path,
                    lineno,
                )
            qid, _, docid, rel_text = fields
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
        docs = by_query.setdefault(str(qrel.query_id), {})
        old = docs.get(str(qrel.doc_id))
        if old is not None and old != int(qrel.relevance):
            raise ReproError(
                f"ir_datasets {dataset_id!r} judges document {qrel.doc_id!r} for query {qrel.query_id!r} twice, "
                f"with different grades ({old} and {qrel.relevance})"
            )
        docs[str(qrel.doc_id)] = int(qrel.relevance)
    if not by_query:
        raise ReproError(f"ir_datasets {dataset_id!r} returned no qrels")
    return Qrels(dataset_id, by_query)
