"""repro.evaluate.significance on plain per-query arrays: subsampling, bootstrap CIs, paired tests."""

from __future__ import annotations

import numpy as np
import pytest

from repro.evaluate import significance as stats
@pytest.fixture
def values():
    return np.random.default_rng(0).random(200)


def test_subsample_full_size_is_the_metric(values):
    dist = stats.subsample_distribution(values, len(values), trials=50, seed=1)
    assert dist["std"] == pytest.approx(0, abs=1e-12)
    assert dist["mean"] == pytest.approx(values.mean()) == dist["min"] == dist["max"]


def test_subsample_distribution_spreads_and_is_seeded(values):
    dist = stats.subsample_distribution(values, 20, trials=500, seed=3)
    assert dist["min"] <= dist["p2.5"] <= dist["p50"] <= dist["p97.5"] <= dist["max"]
    assert dist["mean"] == pytest.approx(values.mean(), abs=0.02)
    # finite-population standard error of a mean of 20 out of 200
    expected = values.std() / np.sqrt(20) * np.sqrt((200 - 20) / (200 - 1))
    assert dist["std"] == pytest.approx(expected, rel=0.15)
    assert stats.subsample_distribution(values, 20, trials=500, seed=3) == dist
    with pytest.raises(ValueError):
        stats.subsample_means(values, 201)


def test_subsample_draws_without_replacement():
    means = stats.subsample_means(np.arange(10.0), 9, trials=200, seed=0)
    # dropping one of 0..9 gives a mean in {(45 - k) / 9}; with replacement other values appear
    assert np.allclose(np.round(means * 9), means * 9)
    assert set(np.round(45 - means * 9).astype(int)) <= set(range(10))


def test_bootstrap_ci_contains_mean_and_narrows(values):
    rng = np.random.default_rng(5)
    small, large = rng.random(50), rng.random(5000)
    low_s, high_s = stats.bootstrap_ci(small, resamples=2000, seed=0)
    low_l, high_l = stats.bootstrap_ci(large, resamples=2000, seed=0)
    assert low_s < small.mean() < high_s
    assert low_l < large.mean() < high_l
    assert (high_l - low_l) < (high_s - low_s) / 5  # width ~ 1/sqrt(n): 10x more queries
    assert stats.bootstrap_ci(small, resamples=2000, seed=0) == (low_s, high_s)


def test_identical_runs_are_not_different(values):
    t, p = stats.paired_t_test(values, values)
    assert (t, p) == (0.0, 1.0)
    assert stats.randomization_test(values, values, permutations=1000) == 1.0


def test_clearly_better_run_is_significant(values):
    better = np.clip(values + 0.1 + np.random.default_rng(1).normal(0, 0.05, len(values)), 0, None)
    _, p = stats.paired_t_test(values, better)
    assert p < 1e-6
    p_rand = stats.randomization_test(values, better, permutations=2000, seed=0)
    assert p_rand == pytest.approx(1 / 2001)  # the smallest p a 2000-permutation test can give


def test_t_test_matches_scipy(values):
    from scipy.stats import ttest_rel

    other = values + np.random.default_rng(2).normal(0.01, 0.2, len(values))
    t, p = stats.paired_t_test(values, other)
    reference = ttest_rel(other, values)
    assert t == pytest.approx(reference.statistic) and p == pytest.approx(reference.pvalue)


def test_randomization_is_deterministic_and_sensible(values):
    other = values + np.random.default_rng(4).normal(0.02, 0.2, len(values))
    p1 = stats.randomization_test(values, other, permutations=3000, seed=7)
    assert p1 == stats.randomization_test(values, other, permutations=3000, seed=7)
    assert p1 != stats.randomization_test(values, other, permutations=3000, seed=8)
    _, p_t = stats.paired_t_test(values, other)
    assert p1 == pytest.approx(p_t, abs=0.05)  # both tests agree on a large, well-behaved sample


def test_compare_reports_delta():
    base, other = np.array([0.0, 0.5, 1.0, 0.0]), np.array([1.0, 0.5, 1.0, 0.5])
    result = stats.compare(base, other, permutations=100)
    assert result["delta"] == pytest.approx(0.375)
    assert result["baseline_value"] == pytest.approx(0.375) and result["value"] == pytest.approx(0.75)
    with pytest.raises(ValueError):
        stats.compare(base, other[:3])
