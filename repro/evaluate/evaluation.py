"""Evaluate runs against qrels with ir_measures: aggregate and per-query values, trec_eval's rules.

Rules (see docs/evaluation.md):
- The metrics are ir_measures' (and through it trec_eval's, via pytrec_eval); nothing is
  reimplemented here. ``provider="auto"`` lets ir_measures pick a provider per measure (RR@k goes
  to its msmarco provider); ``provider="pytrec_eval"`` forces trec_eval semantics throughout.
- A run with no query in common with the qrels is an error, never a 0.0.
- Qrels queries missing from a run count as 0 (``trec_eval -c``), with a warning; run queries
  without judgements are ignored (as trec_eval does), with a warning.
- A query with fewer documents than the depth (``depth``, default the largest @k cutoff) is
  reported, since deep measures then see a truncated ranking.

For speed, runs stay columnar (`repro.formats.runs.Run`) and reach the providers as dicts a few
hundred thousand rows at a time. A provider group whose measures only look at the top k gets each
ranking cut to the documents scoring at least the k-th score (ties kept), which cannot change
their values; RR@k under pytrec_eval (which has no RR cutoff) is computed like ``trec_eval -M k``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from repro.errors import ReproError
from repro.formats.qrels import Qrels, read_qrels
from repro.formats.runs import Run, query_chunks, read_run

if TYPE_CHECKING:
    import pandas as pd

DEFAULT_MEASURES = ("RR@10", "R@1000", "nDCG@10")
PROVIDERS = ("auto", "pytrec_eval", "msmarco", "cwl_eval", "ranx", "trectools", "gdeval", "pyndeval", "compat", "judged", "accuracy")
# Measures whose value at cutoff k depends only on the top k documents (plus the qrels), for the
# providers whose ordering we rely on: there, cutting the ranking below the k-th score is exact.
_TOP_K_MEASURES = {"P", "RR", "nDCG", "AP", "R", "Success"}
_PRUNABLE_PROVIDERS = {"pytrec_eval", "msmarco"}
_CHUNK_ROWS = 250_000


@dataclass
class RunEvaluation:
    """One run's results; ``per_query[measure]`` is aligned with `Evaluation.query_ids`."""

    name: str
    aggregate: dict[str, float]
    per_query: dict[str, np.ndarray]
    warnings: list[str] = field(default_factory=list)
    evaluated_queries: int = 0
    missing_queries: int = 0
    ignored_queries: int = 0


@dataclass
class Evaluation:
    """Results for several runs on one set of qrels and measures."""

    qrels: str
    measures: list[str]
    providers: dict[str, str]
    query_ids: list[str]
    depth: int | None
    runs: list[RunEvaluation]

    @property
    def warnings(self) -> list[str]:
        return [w for run in self.runs for w in run.warnings]

    def aggregate_table(self) -> pd.DataFrame:
        """Rows = runs, columns = measures."""
        import pandas as pd

        frame = pd.DataFrame([r.aggregate for r in self.runs], index=[r.name for r in self.runs], columns=self.measures)
        frame.index.name = "run"
        return frame

    def per_query_table(self) -> pd.DataFrame:
        """Rows = (run, query), then (run, "all") for the aggregate as trec_eval prints it."""
        import pandas as pd

        frames = []
        for r in self.runs:
            frame = pd.DataFrame(r.per_query, columns=self.measures)
            frame.insert(0, "query", self.query_ids)
            frame.loc[len(frame)] = ["all", *[r.aggregate[m] for m in self.measures]]
            frame.insert(0, "run", r.name)
            frames.append(frame)
        return pd.concat(frames, ignore_index=True).set_index(["run", "query"])

    def statistics(
        self,
        *,
        subsample: int | None = None,
        trials: int = 1000,
        bootstrap: int | None = None,
        significance: bool = False,
        permutations: int = 10_000,
        seed: int = 0,
        baseline: str | None = None,
        correction: str = "holm",
    ) -> dict[str, pd.DataFrame]:
        """Tables for the requested statistics over per-query values (see `repro.evaluate.significance`)."""
        import pandas as pd

        from repro.evaluate import significance as stats
        n = len(self.query_ids)
        tables: dict[str, pd.DataFrame] = {}
        measures = [m for m in self.measures if self._is_mean(m)]
        if subsample is not None:
            if not 1 <= subsample <= n:
                raise ReproError(f"--subsample {subsample}: must be between 1 and the number of qrels queries ({n})")
            rows = []
            for r in self.runs:
                for m in measures:
                    dist = stats.subsample_distribution(r.per_query[m], subsample, trials=trials, seed=seed)
                    rows.append({"run": r.name, "measure": m, **dist})
            tables["subsample"] = pd.DataFrame(rows).set_index(["run", "measure"])
        if bootstrap is not None:
            rows = []
            for r in self.runs:
                for m in measures:
                    low, high = stats.bootstrap_ci(r.per_query[m], resamples=bootstrap, seed=seed)
                    rows.append({"run": r.name, "measure": m, "value": r.aggregate[m], "ci_low": low, "ci_high": high})
            tables["bootstrap"] = pd.DataFrame(rows).set_index(["run", "measure"])
        if significance:
            if len(self.runs) < 2:
                raise ReproError("--significance compares runs with a baseline: give at least two runs")
            base = self.baseline_run(baseline)
            others = [r for r in self.runs if r is not base]
            # the family of a correction: every test in the table (each run against the baseline, on each
            # measure), one family per test kind; conservative, and what a reader of the table sees
            pairs = [(r, m) for r in others for m in measures]
            tests = [stats.compare(base.per_query[m], r.per_query[m], permutations=permutations, seed=seed)
                     for r, m in pairs]
            adj_t = stats.adjust([t["p_ttest"] for t in tests], correction)
            adj_r = stats.adjust([t["p_randomization"] for t in tests], correction)
            rows = []
            for (r, m), test, pt, pr in zip(pairs, tests, adj_t, adj_r):
                wins, ties, losses = stats.wins_ties_losses(base.per_query[m], r.per_query[m])
                rows.append({"run": r.name, "baseline": base.name, "measure": m, **test,
                             "p_ttest_adj": pt, "p_randomization_adj": pr, "correction": correction,
                             "wins": wins, "ties": ties, "losses": losses})
            tables["significance"] = pd.DataFrame(rows).set_index(["run", "measure"])
        return tables

    def baseline_run(self, baseline: str | None) -> RunEvaluation:
        """The run named ``baseline`` (its path as given or its table label); the first run by default."""
        if baseline is None:
            return self.runs[0]
        labels = self.labels()
        for r in self.runs:
            if baseline in (r.name, labels[r.name]) or Path(baseline).resolve() == Path(r.name).resolve():
                return r
        raise ReproError(f"--baseline {baseline!r} is not one of the runs given ({', '.join(labels.values())})")

    def labels(self) -> dict[str, str]:
        """Run name -> short label for tables (see `run_labels`)."""
        return dict(zip((r.name for r in self.runs), run_labels([r.name for r in self.runs])))

    def _is_mean(self, measure: str) -> bool:
        import ir_measures

        return type(ir_measures.parse_measure(measure).aggregator()).__name__ == "MeanAgg"


# trec_eval's measure names (`trec_eval -m`), accepted as aliases of ir_measures' names: the one table.
TREC_EVAL_ALIASES: tuple[tuple[str, str], ...] = (
    (r"map", "AP"),
    (r"map_cut_(\d+)", r"AP@\1"),
    (r"ndcg", "nDCG"),
    (r"ndcg_cut_(\d+)", r"nDCG@\1"),
    (r"P_(\d+)", r"P@\1"),
    (r"recall_(\d+)", r"R@\1"),
    (r"recip_rank", "RR"),
    (r"success_(\d+)", r"Success@\1"),
    (r"Rprec", "Rprec"),
    (r"bpref", "Bpref"),
    (r"infAP", "infAP"),
    (r"num_ret", "NumRet"),
    (r"num_rel", "NumRel"),
    (r"num_rel_ret", "NumRelRet"),
    (r"num_q", "NumQ"),
)
# Providers that ir_measures lists but that cannot run here, by name, with the reason.
UNRUNNABLE_PROVIDERS = {"gdeval": "it runs NTCIR's gdeval.pl perl script, which does not run here"}


def trec_eval_alias(token: str) -> str:
    """ir_measures' name for a trec_eval measure name (``map`` -> ``AP``, ``ndcg_cut_10`` -> ``nDCG@10``)."""
    import re

    for pattern, replacement in TREC_EVAL_ALIASES:
        if re.fullmatch(pattern, token):
            return re.sub(f"^{pattern}$", replacement, token)
    return token


def _check_params(measure, token: str) -> None:
    """Parameters that ir_measures accepts but its providers crash on (a C assertion, a TypeError)."""
    params = measure.params
    cutoff = params.get("cutoff")
    if cutoff is not None and cutoff is not _not_provided():
        if isinstance(cutoff, bool) or not isinstance(cutoff, int) or cutoff < 1:
            raise ReproError(f"bad measure {token!r}: the cutoff @{cutoff} must be a whole number >= 1 (e.g. nDCG@10)")
    rel = params.get("rel")
    if rel is not None and rel is not _not_provided():
        if isinstance(rel, bool) or not isinstance(rel, int) or rel < 1:
            raise ReproError(f"bad measure {token!r}: rel={rel!r} must be a whole number >= 1, the lowest grade that "
                             f"counts as relevant (e.g. AP(rel=2) for TREC DL)")
def run_labels(names: Sequence[str]) -> list[str]:
    """Table labels for run files: the file name without ``.trec``/``.txt``/``.run``/``.gz``; when two
    clash, each clashing one gets as many trailing path parts as make it unique (``a/x``, ``b/x``)."""
    def stem(path: Path) -> str:
        name = path.name
        for suffix in (".gz", ".trec", ".txt", ".run", ".tsv"):
            name = name.removesuffix(suffix)
        return name or path.name

    paths = [Path(n) for n in names]
    labels = [stem(p) for p in paths]
    for depth in range(1, 64):
        clashing = {lab for lab in labels if labels.count(lab) > 1}
        if not clashing:
            break
        for i, p in enumerate(paths):
            if labels[i] in clashing:
                parts = p.parent.parts[-depth:] if depth <= len(p.parent.parts) else p.parent.parts
                labels[i] = "/".join([*parts, stem(p)])
        if depth > max(len(p.parts) for p in paths):
            break
    return labels


def parse_measures(texts: Iterable[str]) -> list:
    """ir_measures Measure objects from strings; each string may hold several, space-separated.

    trec_eval names are accepted as aliases (`TREC_EVAL_ALIASES`); cutoffs and ``rel`` are checked
    before any provider runs (a cutoff of 0 aborts pytrec_eval's C code).
    """
    import ir_measures

    found, seen = [], set()
    for text in texts:
        for token in _split_measures(text):
            try:
                measure = ir_measures.parse_measure(trec_eval_alias(token))
                measure.validate_params()
            except (ValueError, NameError, AssertionError, TypeError, SyntaxError) as err:
                detail = str(err).split(";")[0].strip() or type(err).__name__
                raise ReproError(
                    f"bad measure {token!r} ({detail}); use ir_measures syntax, e.g. RR@10 nDCG@10 R@1000 AP(rel=2) P@5, "
                    f"or a trec_eval name (map, ndcg_cut_10, P_10, recip_rank, recall_1000)"
                ) from None
            _check_params(measure, token)
            if str(measure) not in seen:
                seen.add(str(measure))
                found.append(measure)
    if not found:
        raise ReproError("no measure given")
    return found


def _split_measures(text: str) -> list[str]:
    """Split on whitespace outside brackets, so ``nDCG(gains={0: 0, 1: 1})@10`` stays whole."""
    tokens, depth, current = [], 0, []
    for ch in text:
        depth += ch in "([{"
        depth -= ch in ")]}"
        if ch.isspace() and depth == 0:
            if current:
                tokens.append("".join(current))
            current = []
        else:
            current.append(ch)
    if current:
        tokens.append("".join(current))
    return tokens


@dataclass
class _Group:
    """Measures computed by one provider on one view of the run (full, pruned or cut at k)."""

    provider: object
    measures: list = field(default_factory=list)  # what the provider computes
    keys: dict = field(default_factory=dict)  # computed measure -> output measure string
    exact_k: int | None = None  # RR@k emulated as `trec_eval -M k -m recip_rank`
    depth: int | None = None  # prune below the depth-th score (None: whole ranking)


def _plan(measures: list, provider: str) -> tuple[list[_Group], dict[str, str]]:
    import ir_measures

    registry = ir_measures.providers.registry
    if provider == "auto":
        candidates = list(ir_measures.DefaultPipeline.providers)
    elif provider in UNRUNNABLE_PROVIDERS:
        raise ReproError(f"provider {provider!r} cannot be used: {UNRUNNABLE_PROVIDERS[provider]}")
    elif provider in registry:
        chosen = registry[provider]
        if not chosen.is_available():
            hint = chosen.install_instructions()
            raise ReproError(f"ir_measures provider {provider!r} is not installed" + (f" ({hint})" if hint else ""))
        candidates = [chosen]
    else:
        raise ReproError(f"unknown provider {provider!r}; choose from: auto, {', '.join(sorted(registry))}")

    groups: dict[tuple, _Group] = {}
    used: dict[str, str] = {}
    for m in measures:
        key = str(m)
        p = next((c for c in candidates if c.is_available() and c.supports(m)), None)
        computed, exact_k = m, None
        if p is None and provider == "pytrec_eval" and m.NAME == "RR" and m["cutoff"] is not _not_provided():
            computed = type(m)(**{k: v for k, v in m.params.items() if k != "cutoff"})
            if candidates[0].supports(computed):
                p, exact_k = candidates[0], int(m["cutoff"])
        if p is None:
            if provider == "auto":
                raise ReproError(f"no installed ir_measures provider computes {key}")
            raise ReproError(f"provider {provider!r} does not compute {key}; use --provider auto")
        if p.NAME in UNRUNNABLE_PROVIDERS:
            raise ReproError(f"{key} is computed only by ir_measures' {p.NAME} provider, and {UNRUNNABLE_PROVIDERS[p.NAME]}; "
                             f"choose another measure (e.g. nDCG@10)")
        group = groups.setdefault((p.NAME, exact_k), _Group(p, exact_k=exact_k))
        group.measures.append(computed)
        group.keys[computed] = key
        used[key] = p.NAME + (f" (ranking cut at {exact_k}, as trec_eval -M {exact_k})" if exact_k else "")
    for group in groups.values():
        if group.exact_k is not None:
            group.depth = group.exact_k
        elif group.provider.NAME in _PRUNABLE_PROVIDERS and all(_top_k_only(m) for m in group.measures):
            group.depth = max(int(m["cutoff"]) for m in group.measures)
    return list(groups.values()), used


def _not_provided():
    from ir_measures.providers.base import NOT_PROVIDED

    return NOT_PROVIDED


def _top_k_only(measure) -> bool:
    params = measure.params
    return (
        measure.NAME in _TOP_K_MEASURES
        and isinstance(params.get("cutoff"), int)
        and not params.get("judged_only", False)
    )


def default_depth(measures: Sequence) -> int | None:
    """The largest @k cutoff among the measures (None when none has one)."""
    cutoffs = [int(m.params["cutoff"]) for m in measures if isinstance(m.params.get("cutoff"), int)]
    return max(cutoffs) if cutoffs else None


def evaluate(
    runs: Sequence[str | Path | Run],
    qrels: str | Path | Qrels,
    measures: Iterable[str] = DEFAULT_MEASURES,
    *,
    provider: str = "auto",
    depth: int | None = None,
    chunk_rows: int = _CHUNK_ROWS,
) -> Evaluation:
    """Evaluate each run (a path or a `Run`) on the qrels (a file, an ir_datasets ID or `Qrels`)."""
    parsed = parse_measures(measures)
    groups, used = _plan(parsed, provider)
    keys = [str(m) for m in parsed]
    if depth is None:
        depth = default_depth(parsed)
    elif depth < 1:
        raise ReproError(f"--depth must be positive, not {depth}")
    if not isinstance(qrels, Qrels):
        qrels = read_qrels(qrels)
    query_ids = sorted(qrels.by_query, key=_natural)
    names = [str(r.path if isinstance(r, Run) else r) for r in runs]
    if len(set(names)) != len(names):
        raise ReproError("the same run is given twice: " + ", ".join(sorted({n for n in names if names.count(n) > 1})))
    results = []
    for item in runs:
        run = item if isinstance(item, Run) else read_run(item, check_duplicates=False)
        results.append(_evaluate_run(run, qrels, query_ids, groups, keys, parsed, depth, chunk_rows))
    return Evaluation(qrels.source, keys, used, query_ids, depth, results)


def _natural(qid: str) -> tuple:
    return (0, int(qid), "") if qid.isdigit() else (1, 0, qid)


def _evaluate_run(run: Run, qrels: Qrels, query_ids: list[str], groups: list[_Group], keys, parsed, depth, chunk_rows) -> RunEvaluation:
    position = {q: i for i, q in enumerate(query_ids)}
    judged = np.array([q in position for q in run.query_ids], dtype=bool)
    eval_idx = np.flatnonzero(judged)
    if len(eval_idx) == 0:
        raise ReproError(
            f"no query in common with the qrels {qrels.source} (run: {len(run.query_ids)} queries, e.g. "
            f"{run.query_ids[0]!r}; qrels: {len(query_ids)} queries, e.g. {query_ids[0]!r}); wrong qrels file?",
            run.path,
        )
    warnings = []
    missing = len(query_ids) - len(eval_idx)
    if missing:
        warnings.append(
            f"{run.path}: {missing} of {len(query_ids)} qrels queries are not in the run; they count as 0 (as trec_eval -c)"
        )
    ignored = len(run.query_ids) - len(eval_idx)
    if ignored:
        warnings.append(f"{run.path}: {ignored} run queries have no judgements and are ignored")
    counts = run.counts[eval_idx]
    if depth is not None and (short := int((counts < depth).sum())):
        warnings.append(
            f"{run.path}: {short} of {len(eval_idx)} evaluated queries have fewer than {depth} documents "
            f"(fewest: {int(counts.min())}); measures deeper than that see a truncated ranking"
        )

    masks = [_top_rows(run, eval_idx, g.depth, exact=g.exact_k is not None) if g.depth else None for g in groups]
    if all(mask is not None for mask in masks):
        run.check_duplicates()  # no group sees every row, so query_dicts cannot catch them
    values = {k: np.full(len(query_ids), np.nan) for k in keys}
    eval_offsets = np.concatenate([[0], np.cumsum(counts)])
    for chunk in query_chunks(eval_offsets, chunk_rows):
        indices = eval_idx[chunk]
        chunk_qrels = {run.query_ids[i]: qrels.by_query[run.query_ids[i]] for i in indices}
        for group, mask in zip(groups, masks):
            run_dict = run.query_dicts(indices, rows=mask)
            evaluator = group.provider.evaluator(group.measures, chunk_qrels)
            for metric in evaluator.iter_calc(run_dict):
                values[group.keys[metric.measure]][position[metric.query_id]] = metric.value
    aggregate = {}
    for m, key in zip(parsed, keys):
        column = values[key]
        column[np.isnan(column)] = m.DEFAULT if m.DEFAULT is not None else 0.0
        agg = m.aggregator()
        for value in column.tolist():
            agg.add(value)
        aggregate[key] = float(agg.result())
    return RunEvaluation(run.path, aggregate, values, warnings, len(eval_idx), missing, ignored)


def _top_rows(run: Run, eval_idx: np.ndarray, k: int, *, exact: bool) -> np.ndarray | None:
    """Mask of each query's top-k rows; None when no query has more than k.

    ``exact=False``: every row scoring at least the k-th score (ties at the boundary kept, so the
    provider's own tie order decides). ``exact=True``: exactly k rows, ties broken like trec_eval
    (higher docid first), i.e. what ``trec_eval -M k`` evaluates.
    """
    counts = run.counts[eval_idx]
    if (counts <= k).all():
        return None
    mask = np.zeros(len(run), dtype=bool)
    scores, offsets = run.scores, run.offsets
    for i, n in zip(eval_idx.tolist(), counts.tolist()):
        a, b = int(offsets[i]), int(offsets[i + 1])
        if n <= k:
            mask[a:b] = True
            continue
        s = scores[a:b]
        threshold = np.partition(s, n - k)[n - k]
        keep = s >= threshold
        if exact and (extra := int(keep.sum()) - k) > 0:
            tied = np.flatnonzero(s == threshold)
            docids = run.docids.slice(a, b - a).take(tied).to_pylist()
            order = sorted(range(len(tied)), key=lambda j: docids[j])  # ascending: drop the lowest docids
            keep[tied[order[:extra]]] = False
        mask[a:b] = keep
    return mask


def relabel(table: pd.DataFrame, labels: dict[str, str]) -> pd.DataFrame:
    """The table with run paths replaced by their short labels (index level and baseline column)."""
    table = table.copy()
    if "run" in (table.index.names or []):
        if table.index.nlevels == 1:
            table.index = table.index.map(lambda v: labels.get(v, v))
            table.index.name = "run"
        else:
            level = table.index.names.index("run")
            table.index = table.index.set_levels(
                [labels.get(v, v) for v in table.index.levels[level]], level=level, verify_integrity=False)
    if "baseline" in table.columns:
        table["baseline"] = table["baseline"].map(lambda v: labels.get(v, v))
    return table


def format_significance(table: pd.DataFrame, labels: dict[str, str], width: int = 100) -> str:
    """The significance table for a terminal (at most ``width`` columns): one line per run and measure.

    Columns: the baseline's and the run's mean, their difference, paired t-test and randomization
    p-values, each raw and corrected (``*``: the correction named in the heading), and per-query
    wins/ties/losses against the baseline.
    """
    if table.empty:
        return "(no mean measures to test)"
    first = table.iloc[0]
    correction = first["correction"]
    base_label = labels.get(first["baseline"], first["baseline"])
    rows = []
    for (run, measure), row in table.iterrows():
        rows.append([labels.get(run, run), measure, f"{row['baseline_value']:.4f}", f"{row['value']:.4f}",
                     f"{row['delta']:+.4f}", _p(row["p_ttest"]), _p(row["p_ttest_adj"]), _p(row["p_randomization"]),
                     _p(row["p_randomization_adj"]), f"{row['wins']}/{row['ties']}/{row['losses']}"])
    head = ["run", "measure", "base", "value", "delta", "p_t", "p_t*", "p_rand", "p_rand*", "W/T/L"]
    fixed = sum(max(len(h), *(len(r[i]) for r in rows)) + 1 for i, h in enumerate(head) if i)
    run_width = max(8, min(max(len(r[0]) for r in rows), width - fixed - 1))
    for r in rows:
        if len(r[0]) > run_width:
            r[0] = "…" + r[0][-(run_width - 1):]
    widths = [run_width] + [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(head) if i]
    lines = [f"baseline: {base_label}; p_t = paired t-test, p_rand = paired randomization test; "
             f"* = {correction if correction != 'none' else 'no'} correction over the {len(rows)} tests of the table; "
             "W/T/L = queries better/equal/worse than the baseline"]
    lines = _wrap(lines[0], width)
    fmt = lambda cells: " ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))
    lines.append(fmt(head))
    previous = None
    for r in rows:
        shown = list(r)
        if r[0] == previous:
            shown[0] = ""
        previous = r[0]
        lines.append(fmt(shown).rstrip())
    return "\n".join(lines)


def _p(value: float) -> str:
    if value != value:  # NaN
        return "nan"
    return f"{value:.4f}" if value >= 0.0001 else f"{value:.0e}"


def _wrap(text: str, width: int) -> list[str]:
    import textwrap

    return textwrap.wrap(text, width)
