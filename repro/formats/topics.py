"""Topic (query) readers: TSV, TREC/CACM SGML-style, Cranfield SMART, and ir_datasets.

Cranfield's qrels number queries 1..225 by their POSITION in cran.qry, while the file's own
`.I` ids run 001..365 with gaps; `read_topics` numbers SMART queries by position for that reason
(`--smart-ids original` keeps the `.I` ids instead).

Files are opened by `repro.formats.textio.open_input` (gzip recognised by content, a leading UTF-8
BOM dropped, UTF-16 refused by name); ids follow `repro.formats.ids` (surrounding whitespace
stripped, whitespace inside refused with file and line).
"""

from __future__ import annotations

import re
from pathlib import Path

from repro.formats import irds
from repro.formats.corpus import iter_smart_records
from repro.errors import BadInputError, ReproError, short
from repro.formats.ids import clean_id
from repro.formats.textio import ReadCounts, iter_lines, open_input

TOPIC_FORMATS = ("auto", "tsv", "trec", "smart", "irds")


def detect_topic_format(source: str | Path) -> str:
    path = irds.local_source(source, "topics")
    if path is None:
        return "irds"
    name = path.name.lower().removesuffix(".gz")
    if name.endswith(".qry"):
        return "smart"
    if path.is_dir():
        raise ReproError("is a folder; give a topics file (TSV, TREC, .qry) or an ir_datasets ID", path)
    if _head(path).lstrip().startswith(("<top", "<DOC", "<doc")):
        return "trec"
    return "tsv"


def _head(path: Path) -> str:
    """The first kilobyte of a file (decompressed, BOM dropped: `open_input`) to sniff its format."""
    with open_input(path) as handle:
        try:
            return handle.read(1024).decode("utf-8", errors="replace")
        except (OSError, EOFError) as err:
            raise ReproError(f"cannot read: {err}", path) from err


def read_topics(
    source: str | Path, fmt: str = "auto", smart_ids: str = "position", stats: ReadCounts | None = None
) -> dict[str, str]:
    """Return {query id: text} in file order; duplicate ids and empty ids are errors."""
    fmt = detect_topic_format(source) if fmt == "auto" else fmt
    if fmt == "tsv":
        return _read_tsv(Path(source), stats)
    if fmt == "trec":
        return _read_trec(Path(source), stats)
    if fmt == "smart":
        return _read_smart(Path(source), smart_ids, stats)
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


_NUM = re.compile(r"<(?:num|DOCNO)>\s*(?:Number:)?\s*([^<\s]+)", re.IGNORECASE)
_TITLE = re.compile(r"<title>\s*(?:Topic:)?(.*?)(?=<|$)", re.IGNORECASE | re.DOTALL)


def _read_trec(path: Path, stats: ReadCounts | None) -> dict[str, str]:
    """TREC `<top><num><title>` topics (title field) and CACM's `<DOC><DOCNO>` + free text."""
    topics: dict[str, str] = {}
    block: list[str] = []
    start = 0
    for lineno, line in iter_lines(path, stats):
        if re.match(r"\s*<(top|DOC)>", line, re.IGNORECASE):
            block, start = [], lineno
        block.append(line)
        if re.match(r"\s*</(top|DOC)>", line, re.IGNORECASE):
            raw = "\n".join(block)
            num = _NUM.search(raw)
            if not num:
                raise BadInputError("topic without <num> or <DOCNO>", path, start)
            title = _TITLE.search(raw)
            if title:
                text = title.group(1)
            else:  # CACM: the query is the text after </DOCNO>
                text = re.sub(r"<[^>]+>", " ", raw[num.end():])
            _put(topics, num.group(1).strip(), " ".join(text.split()), path, start)
            block = []
    if not topics:
        raise ReproError("no <top> or <DOC> topics found", path)
    return topics


def _read_smart(path: Path, smart_ids: str, stats: ReadCounts | None) -> dict[str, str]:
    topics: dict[str, str] = {}
    for position, (lineno, qid, fields) in enumerate(iter_smart_records(path, stats), start=1):
        text = " ".join(fields.get("W", "").split())
        key = str(position) if smart_ids == "position" else str(int(qid)) if qid.isdigit() else qid
        _put(topics, key, text, path, lineno)
    if not topics:
        raise ReproError("no '.I' queries found", path)
    return topics
