"""Topic (query) readers: TSV, BEIR folders and queries.jsonl, TREC/CACM SGML, SMART, and ir_datasets.

The BEIR, TREC and SMART readers live in `repro.formats.beir`, `.trec` and `.smart`. SMART query
numbering is explicit (``smart_ids``: ``position`` or ``ids``; see `repro.formats.smart`): position
by default, which is right for Cranfield (its qrels number queries 1..225 by position in cran.qry,
whose own `.I` ids run 001..365 with gaps). A BEIR folder gives the queries of one ``split``.
"""

from __future__ import annotations

from pathlib import Path

from repro.formats import irds
from repro.formats import beir, smart, trec
from repro.errors import BadInputError, ReproError, short
from repro.formats.textio import ReadCounts, iter_lines

TOPIC_FORMATS = ("auto", "tsv", "jsonl", "beir", "trec", "smart", "irds")


def detect_topic_format(source: str | Path) -> str:
    path = irds.local_source(source, "topics")
    if path is None:
        return "irds"
    if path.is_dir():
        if beir.is_folder(path):
            return "beir"
        raise ReproError("a folder of topics must be a BEIR folder (queries.jsonl, qrels/)", path)
    name = path.name.lower().removesuffix(".gz")
    if name.endswith(".qry"):
        return "smart"
    if name.endswith(".jsonl"):
        return "jsonl"
    with iter_lines_head(path) as head:
        head = head.lstrip("\ufeff").lstrip()
        if head.startswith(("<top", "<DOC", "<doc")):
            return "trec"
        if head.startswith(".I"):
            return "smart"
    return "tsv"


class iter_lines_head:
    """Peek at the first kilobyte of a (possibly gzipped) file to sniff its format."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __enter__(self) -> str:
        from repro.formats.textio import open_binary

        with open_binary(self.path) as handle:
            return handle.read(1024).decode("utf-8", errors="replace")

    def __exit__(self, *exc) -> None:
        return None


def read_topics(
    source: str | Path, fmt: str = "auto", smart_ids: str | None = "position", stats: ReadCounts | None = None,
    split: str | None = "test",
) -> dict[str, str]:
    """Return {query id: text} in file order; duplicate ids and empty ids are errors."""
    fmt = detect_topic_format(source) if fmt == "auto" else fmt
    if fmt == "tsv":
        return _read_tsv(Path(source), stats)
    if fmt in ("beir", "jsonl"):
        return {q: text for q, (_, text) in beir.read_queries(source, split if fmt == "beir" else None, stats).items()}
    if fmt == "trec":
        return {q: " ".join(text.split()) for q, (_, text) in trec.read_topics(source, stats).items()}
    if fmt == "smart":
        return {q: text for q, (_, text) in smart.read_queries(source, smart_ids or "position", stats).items()}
    if fmt == "irds":
        return {str(q.query_id): getattr(q, "text", None) or getattr(q, "title", "") for q in irds.iterate(str(source), "queries")}
    raise ReproError(f"unknown topics format {fmt!r}; choose one of {', '.join(TOPIC_FORMATS)}")


def _put(topics: dict[str, str], qid: str, text: str, path: Path, lineno: int | None) -> None:
    if not qid:
        raise BadInputError("empty query id", path, lineno)
    if qid in topics:
        raise BadInputError(f"duplicate query id {qid!r}", path, lineno)
    topics[qid] = text


def _read_tsv(path: Path, stats: ReadCounts | None) -> dict[str, str]:
    topics: dict[str, str] = {}
    for lineno, line in iter_lines(path, stats):
        if not line.strip():
            continue
        qid, sep, text = line.partition("\t")
        if not sep:
            raise BadInputError(f"expected 'qid<TAB>query', found no tab: {short(line)!r}", path, lineno)
        _put(topics, qid.strip(), text.strip(), path, lineno)
    if not topics:
        raise ReproError("no topics in file", path)
    return topics
