"""Verdicts: our measured value beside each published (or previously measured) number.

The verdict is symmetric: |ours - published| <= tolerance is "reproduced"; beyond it, higher or
lower alike is a "deviation (+x.xxxx)" / "deviation (-x.xxxx)". Higher than published is a
difference to explain (different data, queries, ties, or a bug), not a pass.

A number measured on a random subset of the queries ("subsample") is not comparable with a
full-set mean by tolerance: when our per-query values over the full set are available, it is
judged against the spread of means of random subsets of that size (drawn without replacement
from our queries); otherwise it is "not comparable (subsample)".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from repro.reproduce.preset import Expected

SUBSAMPLE_TRIALS = 2000
EPS = 1e-9  # values are printed to 4 decimals; a delta equal to the tolerance counts as inside


@dataclass(frozen=True)
class VerdictRow:
    measure: str
    published: float
    kind: str
    source: str
    ours: float | None
    delta: float | None
    verdict: str
    tolerance: float
    note: str | None = None


def verdict(expected: float, ours: float, tolerance: float) -> str:
    """'reproduced' within tolerance, else 'deviation (+/-delta)' (both directions)."""
    delta = ours - expected
    if abs(delta) <= tolerance + EPS:
        return "reproduced"
    return f"deviation ({delta:+.4f})"


def subsample_verdict(expected: Expected, per_query: Sequence[float], *, trials: int = SUBSAMPLE_TRIALS,
                      seed: int = 0) -> tuple[str, str]:
    """Judge a subset mean against the spread of our own subset means of the same size."""
    import numpy as np

    from repro.evaluate import significance as stats
    size = int(expected.subsample_size or 0)
    values = np.asarray(per_query, dtype=float)
    if not 1 <= size < len(values):
        return "not comparable (subsample)", f"needs per-query values for more than {size} queries"
    means = stats.subsample_means(values, size, trials=trials, seed=seed)
    low, high = np.percentile(means, [2.5, 97.5])
    upper = float((means >= expected.value).mean())
    lower = float((means <= expected.value).mean())
    p = min(1.0, 2 * min(upper, lower))
    detail = (f"our {size}-query subset means: 95% within [{low:.4f}, {high:.4f}] "
              f"({trials} random subsets, seed {seed}); two-sided p = {p:.3f}")
    if low - EPS <= expected.value <= high + EPS:
        return "consistent with a subsample", detail
    return f"deviation ({float(np.mean(values)) - expected.value:+.4f}) beyond subsample spread", detail


def compare(expected: Expected, ours: float | None, per_query: Sequence[float] | None = None,
            queries_mode: str | None = None) -> VerdictRow:
    """One table row: the expected number, ours, the difference and the verdict."""
    note = expected.note
    if ours is None:
        return VerdictRow(expected.measure, expected.value, expected.kind, expected.source, None, None,
                          "not run here", expected.tolerance, note)
    delta = ours - expected.value
    if expected.kind == "subsample":
        if per_query is None:
            result, detail = "not comparable (subsample)", None
        else:
            result, detail = subsample_verdict(expected, per_query)
        note = "; ".join(x for x in (note, detail) if x)
        return VerdictRow(expected.measure, expected.value, expected.kind, expected.source, ours, delta, result,
                          expected.tolerance, note)
    result = verdict(expected.value, ours, expected.tolerance)
    if expected.queries_mode and queries_mode and expected.queries_mode != queries_mode:
        note = "; ".join(x for x in (note, f"published with {expected.queries_mode} queries, ours {queries_mode}") if x)
    return VerdictRow(expected.measure, expected.value, expected.kind, expected.source, ours, delta, result,
                      expected.tolerance, note)


def compare_all(expected: Sequence[Expected], aggregate: dict[str, float] | None,
                per_query: dict[str, Sequence[float]] | None = None, queries_mode: str | None = None) -> list[VerdictRow]:
    """Rows for every expected number of a topic set (ours looked up by measure string)."""
    rows = []
    for ex in expected:
        ours = None if aggregate is None else aggregate.get(ex.measure)
        pq = None if per_query is None else per_query.get(ex.measure)
        rows.append(compare(ex, ours, pq, queries_mode))
    return rows


def compare_preset(preset_name: str, topic_set: str, aggregate: dict[str, float],
                   per_query: dict[str, Sequence[float]] | None = None, queries_mode: str | None = None) -> list[VerdictRow]:
    """Rows for `repro evaluate --compare PRESET[:TOPICS]`: a run's values against a preset's numbers."""
    from repro.reproduce.preset import load_preset

    preset = load_preset(preset_name)
    ts = preset.topic_set(topic_set) if topic_set else preset.topic_sets[0]
    return compare_all(ts.expected, aggregate, per_query, queries_mode)


def format_rows(rows: Sequence[VerdictRow]) -> str:
    """A plain-text table for the terminal."""
    header = ("measure", "published", "kind", "ours", "delta", "verdict", "source")
    lines = [header]
    for r in rows:
        lines.append((r.measure, f"{r.published:.4f}", r.kind, "-" if r.ours is None else f"{r.ours:.4f}",
                      "-" if r.delta is None else f"{r.delta:+.4f}", r.verdict, _short(r.source)))
    widths = [max(len(str(line[i])) for line in lines) for i in range(len(header) - 1)]
    return "\n".join("  ".join(str(c).ljust(w) for c, w in zip(line[:-1], widths)) + "  " + line[-1] for line in lines)


def _short(text: str, limit: int = 70) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def compare_evaluation(result, preset_spec: str) -> str:
    """Verdict tables for every run of a `repro.evaluate.evaluation.Evaluation` against ``PRESET[:TOPICS]``."""
    name, _, topics = preset_spec.partition(":")
    parts = []
    for run in result.runs:
        per_query = {m: run.per_query[m].tolist() for m in result.measures}
        rows = compare_preset(name, topics, run.aggregate, per_query)
        parts.append(f"{run.name} vs {preset_spec}:\n" + (format_rows(rows) if rows else "(no expected numbers)"))
    return "\n".join(parts)
