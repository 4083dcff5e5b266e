"""Anserini's pre-encoded query TSV, read and written here only: `qid<TAB>tok tok tok ...`.

Each token is repeated round(weight x factor) times, heaviest first. The factor is not in the file;
it depends on who wrote it (docs/search.md): x100 for `repro encode --queries` by default, x1000 for
Anserini's cached SPLADE++ ED/SD files, x51.2 (= 256 / 5) for its SPLADE-v3 files and ONNX encoders.
"""

from __future__ import annotations

import re
from pathlib import Path

from repro.errors import BadInputError
from repro.formats.ids import clean_id
from repro.formats.textio import iter_lines


def query_text(vector: dict[str, int]) -> str:
    """The pre-tokenized query: each token repeated weight times, heaviest first (ties by token)."""
    tokens = sorted(vector.items(), key=lambda kv: (-kv[1], kv[0]))
    return " ".join(" ".join([tok] * w) for tok, w in tokens if w > 0)


# A token and its repeats separated by single spaces (the writers' layout), as one match: counting
# runs in the regex engine reads Anserini's 1.1 GB SPLADE++ dev file in about half the time of a
# per-token count. Repeats that are not adjacent are separate matches, summed all the same.
_RUN = re.compile(r"(\S+)(?: \1(?=\s|\Z))*")


def token_counts(body: str) -> dict[str, int]:
    """{token: how many times it occurs} in a whitespace-separated token list."""
    counts: dict[str, int] = {}
    for match in _RUN.finditer(body):
        token = match.group(1)
        counts[token] = counts.get(token, 0) + (match.end() - match.start() + 1) // (len(token) + 1)
    return counts


def query_line(qid: str, vector: dict[str, int]) -> str:
    return qid + "\t" + query_text(vector)


def read_encoded_queries(path: str | Path) -> dict[str, dict[str, int]]:
    """Read a pre-encoded query TSV (plain or .gz) into {qid: {token: weight}}."""
    path = Path(path)
    queries: dict[str, dict[str, int]] = {}
    for lineno, line in iter_lines(path):
        if not line.strip():
            continue
        qid, sep, body = line.partition("\t")
        if not sep or not qid.strip():
            raise BadInputError("expected 'qid<TAB>token token ...'", path, lineno)
        qid = clean_id(qid, "query id", path, lineno)
        if qid in queries:
            raise BadInputError(f"duplicate query id {qid!r}", path, lineno)
        queries[qid] = token_counts(body)
    return queries
