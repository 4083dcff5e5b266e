"""The id rule for records read from text files: surrounding whitespace is stripped; an empty id
or one with whitespace inside is refused with its file and line.

An id with inner whitespace cannot survive a TREC run or qrels file (whitespace-separated), so
it would silently become another id downstream; refusing it at the reader is the only safe place.
"""

from __future__ import annotations

from pathlib import Path

from repro.errors import BadInputError, short


def clean_id(raw: object, what: str, path: str | Path | None, line: int | None) -> str:
    """The stripped id, or a `BadInputError` naming ``what`` (e.g. "document id") and the place."""
    text = "" if raw is None else str(raw).strip()
    if not text:
        raise BadInputError(f"empty {what}", path, line)
    if any(c.isspace() for c in text):
        raise BadInputError(f"{what} {short(text, 60)!r} contains whitespace", path, line)
    return text


def strip_bom(text: str) -> str:
    """Drop a UTF-8 byte-order mark at the start of a file's first line (Windows editors write one)."""
    return text[1:] if text.startswith("\ufeff") else text
