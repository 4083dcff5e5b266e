"""Topic (query) readers: TSV, BEIR folders and queries.jsonl, TREC/CACM SGML, SMART, and ir_datasets.

Cranfield's qrels number queries 1..225 by their POSITION in cran.qry, while the file's own
`.I` ids run 001..365 with gaps. SMART query numbering is explicit (``smart_ids``: ``position`` or
``ids``; see `repro.formats.smart`): position by default, which is right for Cranfield. The BEIR,
TREC and SMART readers live in `repro.formats.beir`, `.trec` and `.smart`; a BEIR folder gives the
queries of one ``split``.

Files are opened by `repro.formats.textio.open_input` (gzip recognised by content, a leading UTF-8
BOM dropped, UTF-16 refused by name); ids follow `repro.formats.ids` (surrounding whitespace
stripped, whitespace inside refused with file and line).
"""

from __future__ import annotations

from pathlib import Path

from repro.formats import irds
from repro.formats import beir, smart, trec
from repro.errors import BadInputError, ReproError, short
from repro.formats.ids import clean_id
from repro.formats.textio import ReadCounts, head_text, iter_lines

TOPIC_FORMATS = ("auto", "tsv", "jsonl", "beir", "trec", "smart", "irds")


def detect_topic_format(source: str | Path) -> str:
    path = irds.local_source(source, "topics")
    if path is None:
        return "irds"
    if path.is_dir():
        if beir.is_folder(path):
            return "beir"
        raise ReproError("is a folder; give a topics file (TSV, TREC, .qry, queries.jsonl), a BEIR folder "
                         "(queries.jsonl, qrels/) or an ir_datasets ID", path)
    name = path.name.lower().removesuffix(".gz")
    if name.endswith(".qry"):
        return "smart"
    if name.endswith(".jsonl"):
        return "jsonl"
    head = head_text(path).lstrip()
    if head.startswith(("<top", "<DOC", "<doc")):
        return "trec"
    if head.startswith(".I"):
        return "smart"
    return "tsv"


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
        topics: dict[str, str] = {}
        for q in irds.iterate(str(source), "queries"):
            _put(topics, str(q.query_id), getattr(q, "text", None) or getattr(q, "title", "") or "", str(source), None)
        return topics
    raise ReproError(f"unknown topics format {fmt!r}; choose one of {', '.join(TOPIC_FORMATS)}")


def _put(topics: dict[str, str], qid: str, text: str, path: Path | str, lineno: int | None) -> None:
    qid = clean_id(qid, "query id", path, lineno)
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
