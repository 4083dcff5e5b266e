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


def _exact_array(scores: Sequence[float], where: str = ""):
    """Engine float scores as an int64 array of exact integer dot products (one numpy pass)."""
    import numpy as np

    values = np.asarray(scores, dtype=np.float64)
    exact = np.rint(values)
    if values.size:
        with np.errstate(invalid="ignore"):  # a nan or inf makes both maxima nan or inf: not ok
            ok = np.abs(values - exact).max() <= 0.01 and np.abs(exact).max() < EXACT_LIMIT
            if not ok:
                bad = ~np.isfinite(values) | (np.abs(values - exact) > 0.01) | (np.abs(exact) >= EXACT_LIMIT)
                exact_impact(float(values[int(np.argmax(bad))]), where)  # raises with the first bad score
    return exact.astype(np.int64)


def ranked_impacts(docids: Sequence[str], scores: Sequence[float], where: str = "") -> list[Hit]:
    """An engine's (docids, float scores) as exact impact hits in the tie rule's order, in one pass.

    Why this shape: at top-1000 the tie rule was a sixth of a Seismic query. Engines return hits by
    score already, so only the runs of equal scores need sorting by docid; numpy finds the runs and
    only those are sorted (any input order is still accepted: it is sorted by score first)."""
    import numpy as np

    exact = _exact_array(scores, where)
    if len(exact) != len(docids):
        raise ValueError(f"{len(docids)} docids for {len(exact)} scores")
    ids = list(docids)
    if len(exact) > 1 and bool((exact[1:] > exact[:-1]).any()):
        order = np.argsort(-exact, kind="stable")
        exact, ids = exact[order], [ids[i] for i in order.tolist()]
    same = np.flatnonzero(exact[1:] == exact[:-1])  # position i ties with i + 1
    if same.size:
        breaks = np.flatnonzero(np.diff(same) != 1)
        starts = np.concatenate((same[:1], same[breaks + 1]))
        stops = np.concatenate((same[breaks], same[-1:])) + 2
        for start, stop in zip(starts.tolist(), stops.tolist()):
            if stop - start == 2:  # most runs are pairs: a compare instead of a slice sort
                first, second = ids[start], ids[start + 1]
                if second < first:
                    ids[start], ids[start + 1] = second, first
            else:
                ids[start:stop] = sorted(ids[start:stop])
    return list(zip(ids, exact.tolist()))


def ranked(hits: Iterable[Hit], kind: str = "impact") -> list[Hit]:
    """Hits in the tie rule's order (the same order as ``order_key``, a few times cheaper)."""
    if kind == "bm25":
        return sorted(hits, key=order_key(kind))
    hits = list(hits)
    if not hits:
        return []
    docids, scores = zip(*hits)
    return ranked_impacts(docids, scores)


TIGHT_MARGIN = 30


def first_depth(k: int, *, tight: bool = False) -> int:
    """How deep to fetch at first: a little past k, so a tie group at the cutoff is usually seen whole.

    ``tight``: for engines where every hit fetched costs search time and a second search costs about
    one search (Seismic scores the document of each hit it keeps): TIGHT_MARGIN past k, whatever k.
    At 1M documents, 0-3 of 200 real queries were then searched again at top-1000, where k + 100
    was fetched before; at top-10 (heap_factor 1.0), k + 10 had sent over half of them to a second search
    (bench_query_latency counts them; docs/benchmarks.md, "Top-1000 at 1M documents under 2 ms")."""
    return k + (TIGHT_MARGIN if tight else max(10, k // 10))


def needs_deeper(ordered: list[Hit], depth: int, k: int) -> bool:
    """Whether the tie group at rank k may continue past the ``depth`` hits fetched."""
    return len(ordered) >= depth and len(ordered) > k and ordered[k - 1][1] == ordered[-1][1]


def top_k(fetch: Callable[[int], Iterable[Hit]], k: int, kind: str = "impact", *, ordered: bool = False,
          tight: bool = False) -> list[Hit]:
    """Exact top-k by the tie rule from an engine's ``fetch(depth)``, searching deeper while the cutoff
    ties. ``ordered``: fetch already returns its hits in the rule's order (``ranked_impacts``);
    ``tight``: see ``first_depth``."""
    depth = first_depth(k, tight=tight)
    while True:
        ordered_hits = list(fetch(depth)) if ordered else ranked(fetch(depth), kind)
        if not needs_deeper(ordered_hits, depth, k):
            return ordered_hits[:k]
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
