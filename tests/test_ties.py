"""The tie rule's fast paths give exactly what the plain rule gives (score descending, docid ascending)."""

from __future__ import annotations

import random
import re

import numpy as np
import pytest

from repro.errors import ReproError
from repro.search import ties


@pytest.mark.parametrize("seed", range(20))
def test_ranked_equals_the_plain_sort_with_many_ties(seed):
    rng = random.Random(seed)
    hits = [(f"d{rng.randrange(10**rng.randint(1, 4))}", rng.randrange(rng.choice([2, 5, 50, 10**6])))
            for _ in range(rng.randint(0, 1500))]
    assert ties.ranked(hits) == sorted(hits, key=ties.order_key("impact"))
    assert ties.ranked(list(reversed(hits))) == sorted(reversed(hits), key=ties.order_key("impact"))


def test_ranked_bm25_keeps_decimal_order():
    hits = [("b", "1.1000"), ("a", "1.1000"), ("c", "10.0000"), ("d", "9.5000")]
    assert ties.ranked(hits, "bm25") == [("c", "10.0000"), ("d", "9.5000"), ("a", "1.1000"), ("b", "1.1000")]


def test_ranked_impacts_scores_equal_exact_impact_one_at_a_time():
    scores = [0.0, 1.0, 148200.0, 2.0**24 - 1, 3.004, 6.996]
    got = ties.ranked_impacts([f"d{i}" for i in range(len(scores))], scores)
    assert sorted(score for _, score in got) == sorted(ties.exact_impact(s) for s in scores)
    assert [score for _, score in got] == [2**24 - 1, 148200, 7, 3, 1, 0]
    assert ties.ranked_impacts([], []) == []
    with pytest.raises(ValueError):
        ties.ranked_impacts(["a"], [1.0, 2.0])


@pytest.mark.parametrize("seed", range(20))
def test_ranked_impacts_equals_the_plain_sort_in_any_input_order(seed):
    """Engines return hits by score (the fast path: only tie runs are sorted) or in any order."""
    rng = random.Random(seed)
    n = rng.randint(0, 1500)
    ids = rng.sample([f"d{i}" for i in range(10 * n + 1)], n)
    # 3n values: mostly pairs of equal scores (the compare-and-swap path), as Seismic's top-1000 has
    scores = [float(rng.randrange(rng.choice([2, 5, 50, 3 * n + 1, 10**6]))) for _ in range(n)]
    plain = sorted(zip(ids, [int(s) for s in scores]), key=ties.order_key("impact"))
    assert ties.ranked_impacts(ids, scores) == plain
    by_score = sorted(zip(ids, scores), key=lambda h: -h[1])  # engine order: by score, ties arbitrary
    assert ties.ranked_impacts([d for d, _ in by_score], [s for _, s in by_score]) == plain
    assert ties.ranked_impacts([d for d, _ in by_score], np.array([s for _, s in by_score])) == plain


@pytest.mark.parametrize("bad", [2.5, 2.0**24, 7.02, -2.0**24, float("nan"), float("inf"), float("-inf"), -1e30])
def test_ranked_impacts_refuse_what_exact_impact_refuses(bad):
    with pytest.raises(ReproError, match=re.escape(f"impact score {bad}")):
        ties.ranked_impacts(["a", "b", "c"], [1.0, bad, 2.0])
    with pytest.raises(ReproError, match=re.escape(f"impact score {bad}")):
        ties.exact_impact(bad)


def test_tight_first_depth_still_resolves_a_tie_past_it():
    """Seismic's tight first depth (k + 30) asks for less, but a tie group running past it is still
    fetched whole: the result is the rule's, not the engine's internal order."""
    engine_order = [f"d{i:03d}" for i in reversed(range(100))]  # all tie; the engine returns the largest ids first
    asked: list[int] = []

    def fetch(depth: int):
        asked.append(depth)
        return ties.ranked_impacts(engine_order[:depth], [5.0] * min(depth, 100))

    got = ties.top_k(fetch, 10, ordered=True, tight=True)
    assert got == [(f"d{i:03d}", 5) for i in range(10)]
    assert asked == [40, 160]
    assert ties.first_depth(1000, tight=True) == 1030 and ties.first_depth(1000) == 1100
