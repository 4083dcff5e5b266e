"""The one tie rule of every run `repro` writes, and the exact-score check every engine's hits pass.

Rule (docs/search.md): documents are ranked by exact score, descending, then by document id,
ascending (Python string order). The run's score column is the exact score followed by a
tie-break fraction: for impact search the integer dot product, then `.` and six digits that count
down within a group of equal scores (1234.000002, 1234.000001, 1234.000000). So int(score) is the
exact dot product, no two scores in a query are equal, and every evaluation tool (trec_eval,
ir_measures' providers) sees the same order.

Ties at the cutoff k are resolved by the same rule, not by an engine's internal order: when the
k-th score still ties with the deepest hit fetched, the query is searched again deeper. Lucene
(batch and in-process), Seismic and any other engine go through `top_k` / `needs_deeper` here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
import math
from decimal import Decimal
from operator import itemgetter
from typing import Any

from repro.errors import ReproError

EXACT_LIMIT = 2**24  # engine scores are float32: integers above this are no longer exact
TIE_DIGITS = 6

Hit = tuple[str, Any]  # (docid, exact score: int for impact search, str with 4 decimals for BM25)


def exact_impact(score: float, where: str = "") -> int:
    """An engine's float32 impact score as the exact integer dot product it must be."""
    exact = round(score) if math.isfinite(score) else None
    if exact is None or abs(score - exact) > 0.01 or abs(exact) >= EXACT_LIMIT:
        raise ReproError(f"{where}impact score {score} is not an exact integer below 2^24; "
                         "use a smaller quantization factor")
    return exact


def order_key(kind: str = "impact") -> Callable[[Hit], tuple]:
    """Sort key of the tie rule: score descending, then docid ascending."""
    if kind == "bm25":
        return lambda item: (-Decimal(item[1]), item[0])
    return lambda item: (-item[1], item[0])


def exact_impacts(scores: Sequence[float], where: str = "") -> list[int]:
    """``exact_impact`` of many scores at once (one numpy pass: a top-1000 query's hits in ~0.1 ms)."""
    import numpy as np

    values = np.asarray(scores, dtype=np.float64)
    exact = np.rint(values)
    with np.errstate(invalid="ignore"):  # nan and inf are caught by isfinite
        bad = ~np.isfinite(values) | (np.abs(values - exact) > 0.01) | (np.abs(exact) >= EXACT_LIMIT)
    if bad.any():
        exact_impact(float(values[int(np.argmax(bad))]), where)  # raises with the first bad score
    return exact.astype(np.int64).tolist()


def ranked(hits: Iterable[Hit], kind: str = "impact") -> list[Hit]:
    """Hits in the tie rule's order. Impact hits: a C-keyed sort by score, then each run of equal
    scores by docid, the same order as ``order_key`` and a few times cheaper for 1000 hits."""
    if kind == "bm25":
        return sorted(hits, key=order_key(kind))
    out = sorted(hits, key=itemgetter(1), reverse=True)  # stable, also with reverse=True
    start = 0
    for pos in range(1, len(out) + 1):
        if pos == len(out) or out[pos][1] != out[start][1]:
            if pos - start > 1:
                out[start:pos] = sorted(out[start:pos], key=itemgetter(0))
            start = pos
    return out


def first_depth(k: int) -> int:
    """How deep to fetch at first: a little past k, so a tie group at the cutoff is usually seen whole."""
    return k + max(10, k // 10)


def needs_deeper(ordered: list[Hit], depth: int, k: int) -> bool:
    """Whether the tie group at rank k may continue past the ``depth`` hits fetched."""
    return len(ordered) >= depth and len(ordered) > k and ordered[k - 1][1] == ordered[-1][1]


def top_k(fetch: Callable[[int], Iterable[Hit]], k: int, kind: str = "impact") -> list[Hit]:
    """Exact top-k by the tie rule from an engine's ``fetch(depth)``, searching deeper while the cutoff ties."""
    depth = first_depth(k)
    while True:
        ordered = ranked(fetch(depth), kind)
        if not needs_deeper(ordered, depth, k):
            return ordered[:k]
        depth *= 4


def format_scores(ordered: list[Hit]) -> list[str]:
    """Exact score + countdown tie digits, so that no two scores of a query are equal."""
    texts: list[str] = []
    i = 0
    while i < len(ordered):
        j = i
        while j < len(ordered) and ordered[j][1] == ordered[i][1]:
            j += 1
        size = j - i
        if size >= 10**TIE_DIGITS:
            raise ReproError(f"more than {10**TIE_DIGITS - 1} documents tie; lower --hits")
        for pos in range(i, j):
            base = str(ordered[pos][1])
            sep = "" if "." in base else "."
            texts.append(f"{base}{sep}{size - 1 - (pos - i):0{TIE_DIGITS}d}")
        i = j
    return texts


def run_rows(results: dict[str, list[Hit]]) -> Iterator[tuple[str, str, int, str]]:
    """(qid, docid, rank, score text) rows of a run, scores formatted by the tie rule."""
    for qid, ordered in results.items():
        for rank, ((docid, _), score) in enumerate(zip(ordered, format_scores(ordered)), start=1):
            yield qid, docid, rank, score
