"""TREC SGML files: documents (``<DOC><DOCNO>..</DOCNO>..</DOC>``) and topics (``<top><num>..``).

Documents follow Anserini's `TrecCollection` (io.anserini.collection.TrecCollection): the id is
the text between ``<DOCNO>`` and ``</DOCNO>``; after it, only lines inside one of the content tags
TEXT, HEADLINE, TITLE, HL, HEAD, TTL, DD, DATE, LP, LEADPARA are kept (a block opens on a line
that starts with the tag and closes on the line that ends with, or starts with, its end tag), so
text between other tags (``<DOCID>``, ``<FILEID>``, ``<BYLINE>``, ``<PROFILE>`` ...) and loose text
outside any tag are not indexed. Tags are matched case-insensitively. From the kept lines every
markup tag is removed and the text kept, whitespace-normalised (Anserini's generator strips the
markup before analysis; the tag names are not indexed as words).

Topics: ``<top>`` blocks with ``<num>`` (optionally ``Number:``), ``<title>`` (optionally
``Topic:``), ``<desc>`` (``Description:``) and ``<narr>`` (``Narrative:``); closing tags are
optional, as in the TREC-1..8 files where ``<title>`` runs to the next tag or line end. The query
is the title (what Anserini's `TrecTopicReader` searches by default); a topic without a title uses
its description, and is counted. CACM-style ``<DOC><DOCNO>`` query files (the query is the free
text after ``</DOCNO>``) are read by the same reader.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from pathlib import Path

from repro.errors import BadInputError, ReproError
from repro.formats.ids import clean_id
from repro.formats.textio import ReadCounts, iter_lines

log = logging.getLogger(__name__)

CONTENT_TAGS = ("TEXT", "HEADLINE", "TITLE", "HL", "HEAD", "TTL", "DD", "DATE", "LP", "LEADPARA")
_TAG = re.compile(r"<[^>]*>")


def _starts(line: str, tag: str) -> bool:
    return line[: len(tag)].upper() == tag


def iter_documents(path: str | Path, stats: ReadCounts | None = None) -> Iterator[tuple[int, str, str]]:
    """(line of ``<DOC>``, DOCNO, indexed text) per document, in file order."""
    path = Path(path)
    start: int | None = None
    doc_id: str | None = None
    docno_parts: list[str] | None = None
    kept: list[str] = []
    open_tag: str | None = None
    for lineno, raw in iter_lines(path, stats):
        line = raw.strip()
        if start is None:
            if _starts(line, "<DOC>"):
                start, doc_id, docno_parts, kept, open_tag = lineno, None, None, [], None
            elif line and not _starts(line, "</DOC>"):
                raise BadInputError(f"text outside <DOC>...</DOC>: {line[:60]!r}", path, lineno)
            continue
        if _starts(line, "</DOC>"):
            if doc_id is None:
                raise BadInputError("document without <DOCNO>...</DOCNO>", path, start)
            yield start, doc_id, " ".join(_TAG.sub(" ", "\n".join(kept)).split())
            start = None
            continue
        if _starts(line, "<DOC>"):
            raise BadInputError(f"<DOC> inside the document opened at line {start} (missing </DOC>?)", path, lineno)
        if doc_id is None:  # the DOCNO comes first; it may span lines
            if docno_parts is None and not _starts(line, "<DOCNO>"):
                continue
            docno_parts = (docno_parts or []) + [line]
            joined = " ".join(docno_parts)
            if "</DOCNO>" in joined.upper():
                inner = joined[len("<DOCNO>"): joined.upper().index("</DOCNO>")]
                doc_id = clean_id(inner, "DOCNO", path, lineno)
            continue
        if open_tag is None and line.startswith("<"):
            open_tag = next((t for t in CONTENT_TAGS if _starts(line, f"<{t}>")), None)
        if open_tag is not None:
            kept.append(line)
            end = f"</{open_tag}>"
            if line.upper().endswith(end) or _starts(line, end):
                open_tag = None
    if start is not None:
        raise BadInputError("file ends inside a <DOC> (missing </DOC>)", path, start)


_OPEN = re.compile(r"<([A-Za-z]+)>")
_PREFIX = {"num": r"Number:", "title": r"Topic:", "desc": r"Description:", "narr": r"Narrative:"}


def read_topics(path: str | Path, stats: ReadCounts | None = None) -> dict[str, tuple[int, str]]:
    """{topic id: (line, query text)} for ``<top>`` topics (title, else description) or CACM ``<DOC>`` queries."""
    path = Path(path)
    topics: dict[str, tuple[int, str]] = {}
    block: list[str] | None = None
    start = 0
    no_title = 0
    for lineno, raw in iter_lines(path, stats):
        line = raw
        opener = re.match(r"\s*<(top|DOC)>", line, re.IGNORECASE)
        if opener:
            if block is not None:
                raise BadInputError(f"<{opener.group(1)}> inside the topic opened at line {start} (missing closing tag?)",
                                    path, lineno)
            block, start = [], lineno
            line = line[opener.end():]
        if block is None:
            if line.strip() and not re.match(r"\s*</(top|DOC)>", line, re.IGNORECASE):
                raise BadInputError(f"text outside <top>...</top>: {line.strip()[:60]!r}", path, lineno)
            continue
        closer = re.search(r"</(top|DOC)>", line, re.IGNORECASE)
        block.append(line[: closer.start()] if closer else line)
        if closer:
            qid, text, used_title = _topic(block, path, start)
            if not used_title:
                no_title += 1
            if qid in topics:
                raise BadInputError(f"duplicate topic id {qid!r} (first at line {topics[qid][0]})", path, start)
            topics[qid] = (start, text)
            block = None
    if block is not None:
        raise BadInputError("file ends inside a topic (missing </top>)", path, start)
    if not topics:
        raise ReproError("no <top> or <DOC> topics found", path)
    if no_title:
        log.warning("%s: %d topic(s) have no <title>; their <desc> is the query", path, no_title)
    return topics


def _topic(block: list[str], path: Path, start: int) -> tuple[str, str, bool]:
    """(id, query text, whether the title was used) of one topic block.

    Every opening tag starts a field that runs to the next opening tag (so a missing closing tag,
    or TREC-1/2's ``<dom>``/``<con>``/``<fac>`` fields, cannot leak into the title).
    """
    raw = "\n".join(block)
    parts: dict[str, str] = {}
    marks = list(_OPEN.finditer(raw))
    for i, mark in enumerate(marks):
        end = marks[i + 1].start() if i + 1 < len(marks) else len(raw)
        name = mark.group(1).lower()
        value = _TAG.sub(" ", raw[mark.end():end])
        if name in _PREFIX:
            value = re.sub(rf"^\s*{_PREFIX[name]}", "", value, flags=re.IGNORECASE)
        parts.setdefault(name, " ".join(value.split()))
    if "docno" in parts and "num" not in parts:  # CACM: <DOCNO> 1 </DOCNO>, then the query as free text
        words = parts["docno"].split()
        qid = clean_id(words[0] if words else "", "topic number", path, start)
        if len(words) < 2:
            raise BadInputError(f"topic {qid} has no text after </DOCNO>", path, start)
        return qid, " ".join(words[1:]), True
    if "num" not in parts:
        raise BadInputError("topic without <num> (or <DOCNO>)", path, start)
    qid = clean_id(parts["num"], "topic number", path, start)
    if parts.get("title"):
        return qid, parts["title"], True
    if parts.get("desc"):
        return qid, parts["desc"], False
    raise BadInputError(f"topic {qid} has no <title> or <desc> text", path, start)


def looks_like_documents(head: str) -> bool:
    return bool(re.match(r"\s*<DOC>\s*(\n|\r|<DOCNO>)", head, re.IGNORECASE)) and "<DOCNO>" in head.upper()
