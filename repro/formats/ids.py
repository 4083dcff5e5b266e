"""The one rule for document and query ids, applied by every reader where an id enters.

Rule (docs/search.md): surrounding whitespace is stripped (``" doc1 "`` is ``doc1``); an id that is
then empty, or that has whitespace inside (``doc 6``, ``doc\\t8``, a no-break space), is refused with
its file and line, because a TREC run or qrels line cannot carry it: whitespace separates columns.
"""

from __future__ import annotations

from pathlib import Path

from repro.errors import BadInputError, short


def id_problem(value: str, what: str) -> str | None:
    """Why a (stripped) id is refused, or None when it is fine."""
    if not value:
        return f"empty {what}"
    if any(ch.isspace() for ch in value):
        return (f"{what} {short(value, 60)!r} contains whitespace; ids may not (TREC runs and qrels "
                f"separate columns by whitespace): rename it")
    return None


def clean_id(raw: object, what: str, path: str | Path | None, line: int | None) -> str:
    """The id as repro uses it (stripped), or BadInputError naming the file and line."""
    value = "" if raw is None else str(raw).strip()
    problem = id_problem(value, what)
    if problem:
        raise BadInputError(problem, path, line)
    return value
