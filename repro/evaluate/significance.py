"""Statistics over per-query metric values: query subsampling, bootstrap CIs, paired tests.

Pure numpy (scipy only for the t distribution) over arrays aligned by query id, where a query
missing from a run already holds 0; every function is deterministic for a given seed.
"""

from __future__ import annotations

import math

import numpy as np

_BATCH_CELLS = 4_000_000  # rows x queries per vectorized batch: bounds memory for large inputs


def _values(values) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1 or len(array) == 0:
        raise ValueError("expected a non-empty 1-D array of per-query values")
    return array


def _batches(total: int, n: int):
    size = max(1, _BATCH_CELLS // max(n, 1))
    for start in range(0, total, size):
        yield min(size, total - start)


def summarize(samples: np.ndarray) -> dict[str, float]:
    """mean, std (population), 2.5/50/97.5 percentiles, min, max."""
    p2_5, p50, p97_5 = np.percentile(samples, [2.5, 50, 97.5])
    return {
        "mean": float(samples.mean()),
        "std": float(samples.std()),
        "p2.5": float(p2_5),
        "p50": float(p50),
        "p97.5": float(p97_5),
        "min": float(samples.min()),
        "max": float(samples.max()),
    }


def subsample_means(values, size: int, *, trials: int = 1000, seed: int = 0) -> np.ndarray:
    """The mean over ``trials`` random query subsets of ``size`` queries (drawn without replacement)."""
    values = _values(values)
    n = len(values)
    if not 1 <= size <= n:
        raise ValueError(f"subset size {size} must be between 1 and the number of queries ({n})")
    rng = np.random.default_rng(seed)
    out = np.empty(trials)
    done = 0
    for batch in _batches(trials, n):
        # the `size` smallest of n uniform keys per row form a uniform random subset
        keys = rng.random((batch, n))
        picks = np.argpartition(keys, size - 1, axis=1)[:, :size] if size < n else np.broadcast_to(np.arange(n), (batch, n))
        out[done : done + batch] = values[picks].mean(axis=1)
        done += batch
    return out


def subsample_distribution(values, size: int, *, trials: int = 1000, seed: int = 0) -> dict[str, float]:
    """How much the metric moves with the query sample: summary of `subsample_means`."""
    return summarize(subsample_means(values, size, trials=trials, seed=seed))


def bootstrap_means(values, *, resamples: int = 1000, seed: int = 0) -> np.ndarray:
    """Means of ``resamples`` bootstrap samples (n queries drawn with replacement)."""
    values = _values(values)
    n = len(values)
    rng = np.random.default_rng(seed)
    out = np.empty(resamples)
    done = 0
    for batch in _batches(resamples, n):
        out[done : done + batch] = values[rng.integers(0, n, size=(batch, n))].mean(axis=1)
        done += batch
    return out


def bootstrap_ci(values, *, resamples: int = 1000, level: float = 0.95, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap confidence interval for the mean."""
    means = bootstrap_means(values, resamples=resamples, seed=seed)
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return float(low), float(high)


def paired_t_test(baseline, other) -> tuple[float, float]:
    """Two-sided paired t-test: (t statistic, p-value); identical runs give (0.0, 1.0)."""
    diff = _values(other) - _values(baseline)
    n = len(diff)
    if n < 2:
        return math.nan, math.nan
    sd = diff.std(ddof=1)
    mean = diff.mean()
    if sd == 0:
        return (0.0, 1.0) if mean == 0 else (math.copysign(math.inf, mean), 0.0)
    t = mean / (sd / math.sqrt(n))
    from scipy.stats import t as t_dist

    return float(t), float(2 * t_dist.sf(abs(t), df=n - 1))


def randomization_test(baseline, other, *, permutations: int = 10_000, seed: int = 0) -> float:
    """Two-sided paired randomization (sign-flip permutation) test of the mean difference.

    p = (1 + #{permutations with |mean diff| >= observed}) / (1 + permutations), so it is never 0.
    """
    diff = _values(other) - _values(baseline)
    n = len(diff)
    observed = abs(diff.sum())
    tolerance = 1e-9 * max(1.0, observed)  # sign flips that reproduce `observed` up to rounding count
    rng = np.random.default_rng(seed)
    hits = 0
    for batch in _batches(permutations, n):
        signs = rng.integers(0, 2, size=(batch, n), dtype=np.int8) * 2 - 1
        hits += int((np.abs(signs @ diff) >= observed - tolerance).sum())
    return (hits + 1) / (permutations + 1)


def compare(baseline, other, *, permutations: int = 10_000, seed: int = 0) -> dict[str, float]:
    """Mean of each, their difference, and both tests' p-values."""
    base, oth = _values(baseline), _values(other)
    if len(base) != len(oth):
        raise ValueError("paired tests need per-query values aligned on the same queries")
    t, p_t = paired_t_test(base, oth)
    return {
        "baseline_value": float(base.mean()),
        "value": float(oth.mean()),
        "delta": float(oth.mean() - base.mean()),
        "t": t,
        "p_ttest": p_t,
        "p_randomization": randomization_test(base, oth, permutations=permutations, seed=seed),
    }


CORRECTIONS = ("holm", "bonferroni", "none")


def adjust(pvalues, method: str = "holm") -> list[float]:
    """Multiple-comparison adjusted p-values (family = the values given), in the input order.

    Bonferroni: min(1, m p). Holm (step-down, uniformly more powerful than Bonferroni with the same
    family-wise error guarantee): sort ascending, p_(i) * (m - i + 1), made monotone, capped at 1.
    NaN p-values (too few queries) stay NaN and do not count in m.
    """
    if method not in CORRECTIONS:
        raise ValueError(f"correction must be one of {', '.join(CORRECTIONS)}, not {method!r}")
    values = [float(p) for p in pvalues]
    valid = [i for i, p in enumerate(values) if not math.isnan(p)]
    m = len(valid)
    out = list(values)
    if method == "none" or m == 0:
        return out
    if method == "bonferroni":
        for i in valid:
            out[i] = min(1.0, values[i] * m)
        return out
    running = 0.0
    for rank, i in enumerate(sorted(valid, key=lambda j: values[j])):
        running = max(running, min(1.0, values[i] * (m - rank)))
        out[i] = running
    return out


def wins_ties_losses(baseline, other, *, tolerance: float = 1e-9) -> tuple[int, int, int]:
    """Queries where ``other`` beats, equals (within ``tolerance``) or trails the baseline."""
    diff = _values(other) - _values(baseline)
    wins = int((diff > tolerance).sum())
    losses = int((diff < -tolerance).sum())
    return wins, len(diff) - wins - losses, losses
