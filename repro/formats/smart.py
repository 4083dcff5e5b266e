"""SMART-format collections (Cranfield, CACM, CISI, MED, NPL, TIME ...): documents, queries, qrels.

Records start with ``.I <id>``; a field starts with a line ``.<LETTER>`` (text may follow on the
same line) and runs to the next marker. Fields may come in any order and repeat (repeats are
joined); CRLF endings are fine (`iter_lines` drops them).

Indexed fields (the rule every SMART corpus follows here): ``.T`` title and ``.W`` abstract/text,
joined with a space. ``.A`` authors, ``.B`` bibliographic source, ``.X`` citation links, ``.K``
keywords, ``.N`` and ``.C`` dates/categories are NOT indexed: they are metadata, and the published
SMART/Cranfield baselines index title and text. Cranfield repeats the title as the first words
of ``.W``; when ``.W`` starts with the title it is not counted twice.

Query numbering: SMART qrels number queries either by the ``.I`` ids (CISI, MED) or by position
in the query file (Cranfield: cran.qry's ``.I`` ids run 001..365 with gaps, its qrels 1..225).
Neither is always right, so the numbering is explicit: ``position`` or ``ids`` (presets say which
per collection; ``--smart-ids`` on the command line), and `numbering_warning` says when the qrels'
query ids fit the other numbering better.

Qrels: ``qid docid`` pairs, possibly followed by more columns (CACM/CISI ``1 28 0 0.000000``: the
3rd and 4th columns are not relevance grades); every listed pair is relevant (1).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from repro.errors import BadInputError, ReproError, short
from repro.formats.ids import clean_id
from repro.formats.textio import ReadCounts, iter_lines

INDEXED_FIELDS = ("T", "W")
NUMBERINGS = ("position", "ids")
_MARKER = re.compile(r"^\.([A-Z])(?:\s+(.*))?$")


def normalize_number(text: str) -> str:
    """``001`` -> ``1``: SMART files zero-pad ids that their qrels do not (and vice versa)."""
    return str(int(text)) if text.isdigit() else text


def iter_smart_records(path: str | Path, stats: ReadCounts | None = None) -> Iterator[tuple[int, str, dict[str, str]]]:
    """Yield (line of `.I`, id, {field letter: text}) for a SMART-format file."""
    path = Path(path)
    current: tuple[int, str] | None = None
    fields: dict[str, list[str]] = {}
    field_name: str | None = None

    def record() -> tuple[int, str, dict[str, str]]:
        return current[0], current[1], {k: "\n".join(v).strip() for k, v in fields.items()}

    for lineno, line in iter_lines(path, stats):
        marker = _MARKER.match(line.rstrip())
        if marker and marker.group(1) == "I":
            if current is not None:
                yield record()
            current = (lineno, clean_id(marker.group(2), "'.I' id", path, lineno))
            fields, field_name = {}, None
        elif marker:
            if current is None:
                raise BadInputError(f"field {line.strip()!r} before the first '.I' line", path, lineno)
            field_name = marker.group(1)
            fields.setdefault(field_name, [])
            if marker.group(2):
                fields[field_name].append(marker.group(2))
        elif field_name is not None:
            fields[field_name].append(line)
        elif line.strip():
            raise BadInputError(f"text outside any field: {short(line)!r}", path, lineno)
    if current is not None:
        yield record()


def document_text(fields: dict[str, str]) -> str:
    """Title and text (the indexed fields), whitespace-normalised, the Cranfield title repeat dropped."""
    title, body = " ".join(fields.get("T", "").split()), " ".join(fields.get("W", "").split())
    if title and body.startswith(title):
        return body
    return " ".join(t for t in (title, body) if t)


def iter_documents(path: str | Path, stats: ReadCounts | None = None) -> Iterator[tuple[int, str, str]]:
    """(line of `.I`, document id, indexed text) per record; numeric ids lose their zero padding."""
    for lineno, doc_id, fields in iter_smart_records(path, stats):
        yield lineno, normalize_number(doc_id), document_text(fields)


def read_queries(path: str | Path, numbering: str = "position", stats: ReadCounts | None = None) -> dict[str, tuple[int, str]]:
    """{query id: (line, text)}: the ``.W`` text (``.T`` when a query has no ``.W``), numbered as asked."""
    if numbering == "original":  # earlier name of "ids"
        numbering = "ids"
    if numbering not in NUMBERINGS:
        raise ReproError(f"SMART query numbering must be {' or '.join(NUMBERINGS)}, not {numbering!r}")
    path = Path(path)
    out: dict[str, tuple[int, str]] = {}
    for position, (lineno, qid, fields) in enumerate(iter_smart_records(path, stats), start=1):
        text = " ".join((fields.get("W") or fields.get("T") or "").split())
        key = str(position) if numbering == "position" else normalize_number(qid)
        if key in out:
            raise BadInputError(f"duplicate query id {key!r} (first at line {out[key][0]})", path, lineno)
        out[key] = (lineno, text)
    if not out:
        raise ReproError("no '.I' queries found", path)
    return out


def numbering_warning(topics_path: str | Path, numbering: str, qrels_query_ids) -> str | None:
    """A warning when the qrels' query ids match the other numbering better than the chosen one."""
    numbering = "ids" if numbering == "original" else numbering
    other = "ids" if numbering == "position" else "position"
    judged = set(qrels_query_ids)
    if not judged:
        return None
    chosen_ids = set(read_queries(topics_path, numbering))
    other_ids = set(read_queries(topics_path, other))
    chosen_fit, other_fit = len(judged & chosen_ids), len(judged & other_ids)
    if chosen_ids == other_ids or other_fit <= chosen_fit:
        return None
    return (f"{topics_path}: SMART queries numbered by {numbering}, but the qrels' query ids fit numbering by "
            f"{other} better ({other_fit} of {len(judged)} judged queries exist that way, {chosen_fit} this way); "
            f"pass --smart-ids {other} (or set smart_ids in the preset) if the qrels number them so")


def iter_qrels(path: str | Path, stats: ReadCounts | None = None) -> Iterator[tuple[int, str, str, int]]:
    """(line, qid, docid, 1) for each ``qid docid [ignored columns]`` line."""
    path = Path(path)
    for lineno, line in iter_lines(path, stats):
        parts = line.split()
        if not parts:
            continue
        if len(parts) < 2:
            raise BadInputError(f"expected 'query-id doc-id' (SMART qrels), found {short(line)!r}", path, lineno)
        yield lineno, normalize_number(parts[0]), normalize_number(parts[1]), 1


def looks_like_qrels(lines: list[str]) -> bool:
    """SMART (not TREC) qrels: two columns, or four whose 3rd column (TREC's docid) is the same on
    every line while the 2nd (TREC's constant iteration) varies: ``qid docid 0 0.000000``."""
    rows = [line.split() for line in lines if line.strip()]
    if not rows:
        return False
    if all(len(r) == 2 for r in rows):
        return True
    if not all(len(r) == 4 for r in rows):
        return False
    return len({r[2] for r in rows}) == 1 and len({r[1] for r in rows}) > 1
