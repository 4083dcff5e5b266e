"""`repro evaluate`: score runs against qrels with ir_measures, plus optional statistics."""

from __future__ import annotations

import json
import math
from pathlib import Path

import click

from repro.errors import ReproError

from repro.evaluate.evaluation import DEFAULT_MEASURES, PROVIDERS


@click.command("evaluate")
@click.argument("runs", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--qrels", required=True, metavar="FILE_OR_IRDS_ID",
              help="Qrels: TREC, SMART or BEIR qrels file, a BEIR folder (with --split), or an ir_datasets ID.")
@click.option("--qrels-format", type=click.Choice(["auto", "trec", "beir", "smart"]), default="auto", show_default=True)
@click.option("--split", default="test", show_default=True, help="BEIR folder: which qrels/<split>.tsv.")
@click.option(
    "-m", "--measure", "measures", multiple=True, metavar="MEASURE",
    help=f"ir_measures measure(s), repeatable or space-separated [default: {' '.join(DEFAULT_MEASURES)}].",
)
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table", show_default=True)
@click.option("--per-query", is_flag=True, help="Also print every query's value (plus an 'all' row per run).")
@click.option("--depth", type=click.IntRange(min=1), help="Warn about queries with fewer documents [default: largest @k].")
@click.option(
    "--provider", type=click.Choice(PROVIDERS), default="auto", show_default=True,
    help="ir_measures provider; pytrec_eval gives trec_eval semantics for every measure (incl. tie order).",
)
@click.option("--subsample", type=click.IntRange(min=1), metavar="N", help="Metric distribution over random subsets of N queries.")
@click.option("--trials", type=click.IntRange(min=1), default=1000, show_default=True, help="Subsets drawn for --subsample.")
@click.option("--bootstrap", type=click.IntRange(min=1), metavar="B", help="Percentile bootstrap 95% CI from B resamples.")
@click.option("--significance", is_flag=True, help="Paired t-test and randomization test of each run against the baseline.")
@click.option("--baseline", default=None, metavar="RUN", help="With --significance: the run the others are tested against [default: the first].")
@click.option("--correction", type=click.Choice(["holm", "bonferroni", "none"]), default="holm", show_default=True,
              help="Multiple-comparison correction of the p-values, over every test in the table (runs x measures).")
@click.option("--permutations", type=click.IntRange(min=1), default=10_000, show_default=True, help="For the randomization test.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed for subsampling, bootstrap and permutations.")
@click.option("--compare", "compare_preset", metavar="PRESET[:TOPICS]", help="Verdicts against a preset's published numbers (see `repro presets`).")
@click.option("--record", metavar="PRESET:TOPICS", help="Write the reproduction record of this run for a preset's topic set "
              "(the file `repro report` reads) to --output; what `repro reproduce` runs as its evaluate step.")
@click.option("--model-label", default=None, help="With --record: the model as the preset or --model named it.")
@click.option("--queries-mode", type=click.Choice(["cached", "encode"]), default=None, help="With --record: how the queries were made.")
@click.option("--output", "-o", type=click.Path(path_type=Path), default=None, help="With --record: the record file to write.")
@click.option("--force", is_flag=True, help="With --record: replace an existing record.")
def command(runs, qrels, qrels_format, split, measures, fmt, per_query, depth, provider, subsample, trials, bootstrap, significance,
            baseline, correction, permutations, seed, compare_preset, record, model_label, queries_mode, output, force):
    """Evaluate RUN files (TREC format) against qrels; one row per run, one column per measure.

    Queries in the qrels but missing from a run count as 0 (like trec_eval -c); warnings go to
    stderr. Measures use ir_measures syntax (RR@10, nDCG@10, R@1000, AP(rel=2), P@5, ...).

    \b
    Example:
      repro evaluate runs/bm25.trec runs/splade.trec --qrels qrels.dev.txt -m "RR@10 R@1000" --significance
      repro evaluate run.trec --qrels msmarco-passage/trec-dl-2019/judged -m nDCG@10 -m "AP(rel=2)"
    """
    if record:
        _write_record(runs, qrels, measures, record, model_label, queries_mode, output, force, split)
        return
    if model_label or queries_mode or output:
        raise ReproError("--model-label, --queries-mode and --output go with --record")
    from repro.evaluate.evaluation import evaluate
    from repro.formats.qrels import read_qrels

    result = evaluate(list(runs), read_qrels(qrels, qrels_format, split), measures or DEFAULT_MEASURES, provider=provider, depth=depth)
    tables = result.statistics(
        subsample=subsample, trials=trials, bootstrap=bootstrap, significance=significance,
        permutations=permutations, seed=seed, baseline=baseline, correction=correction,
    )
    for warning in result.warnings:
        click.echo(f"warning: {warning}", err=True)
    if compare_preset:
        from repro.reproduce.verdict import compare_evaluation

        click.echo(compare_evaluation(result, compare_preset), err=fmt != "table")
    main = result.per_query_table() if per_query else result.aggregate_table()
    if fmt == "json":
        click.echo(json.dumps(_as_json(result, tables, per_query), indent=2))
        return
    from repro.evaluate.evaluation import format_significance, relabel

    labels = result.labels()
    sections = [("", main), *((name, table) for name, table in tables.items())]
    for i, (name, table) in enumerate(sections):
        if fmt == "csv":
            click.echo(("\n" if i else "") + table.to_csv(), nl=False)  # machine-readable: full paths
        elif name == "significance":
            click.echo(f"\n{name}:\n" + format_significance(table, labels))
        else:
            title = f"\n{name}:\n" if name else ""
            click.echo(title + relabel(table, labels).to_string(float_format=lambda v: f"{v:.4f}"))


def _write_record(runs, qrels, measures, record, model_label, queries_mode, output, force, split="test") -> None:
    if len(runs) != 1 or output is None or ":" not in record:
        raise ReproError("--record PRESET:TOPICS takes one RUN and --output FILE")
    from repro.outputs import check_writable
    from repro.reproduce.plan import write_evaluation

    check_writable(output, force)
    data = write_evaluation(record, Path(runs[0]), qrels, list(measures), output, model_label=model_label,
                            queries_mode=queries_mode, split=split)
    values = "  ".join(f"{m} {data['aggregate'][m]:.4f}" for m in data["measures"])
    click.echo(f"{record}: {values} -> {output}")


def _as_json(result, tables, per_query: bool) -> dict:
    def clean(value):
        return None if isinstance(value, float) and math.isnan(value) else value

    out = {
        "qrels": result.qrels,
        "measures": result.measures,
        "providers": result.providers,
        "depth": result.depth,
        "num_queries": len(result.query_ids),
        "warnings": result.warnings,
        "runs": {},
    }
    for run in result.runs:
        entry = {
            "aggregate": run.aggregate,
            "evaluated_queries": run.evaluated_queries,
            "missing_queries": run.missing_queries,
            "ignored_queries": run.ignored_queries,
        }
        if per_query:
            entry["per_query"] = {
                qid: {m: clean(float(run.per_query[m][i])) for m in result.measures} for i, qid in enumerate(result.query_ids)
            }
        out["runs"][run.name] = entry
    for name, table in tables.items():
        records = []
        for index, row in table.iterrows():
            record = dict(zip(table.index.names, index if isinstance(index, tuple) else (index,)))
            record.update({k: clean(v) for k, v in row.items()})
            records.append(record)
        out[name] = records
    return out
