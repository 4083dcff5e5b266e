"""`repro mine`: hard negatives (and optional cross-encoder scores) for training queries, from any repro index."""

from __future__ import annotations

import json
from pathlib import Path

import click

from repro.errors import ReproError


def _margin(_ctx, param, value):
    if value is None or str(value).lower() in ("none", "off"):
        return None
    try:
        return float(value)
    except ValueError:
        raise click.BadParameter("a number, or 'none' to turn the guard off", param=param) from None


def _setting(_ctx, _param, values):
    out = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep:
            raise ReproError(f"--setting {item!r}: expected KEY=VALUE")
        out[key.strip().replace("-", "_")] = float(value) if "." in value else int(value)
    return out


@click.command("mine")
@click.option("--index", required=True, help="A repro index (BM25, Lucene impact or Seismic).")
@click.option("--queries", "-q", required=True, help="Training topics (TSV, TREC, SMART or an ir_datasets ID).")
@click.option("--qrels", required=True, help="Judgements naming each query's positives (file or ir_datasets ID).")
@click.option("--corpus", required=True, help="The indexed corpus' texts (id<TAB>text TSV is read lazily; JSONL, SMART, ID).")
@click.option("--output", "-o", required=True, type=click.Path(path_type=Path), help="Output folder of JSONL shards.")
@click.option("--model", "-m", default=None, help="SPLADE query encoder (impact and Seismic indexes).")
@click.option("--topic-format", default="auto", show_default=True)
@click.option("--corpus-format", default="auto", show_default=True)
@click.option("--rank-min", default=0, show_default=True, help="First 0-based rank of the candidate window.")
@click.option("--rank-max", default=100, show_default=True, help="End of the window (= hits retrieved per query).")
@click.option("--num-negatives", "-n", default=8, show_default=True, help="Negatives per record (fewer survivors: record dropped).")
@click.option("--sampling", type=click.Choice(["top", "random"]), default="top", show_default=True)
@click.option("--seed", default=42, show_default=True, help="Seed of --sampling random (per query and positive).")
@click.option("--relative-margin", default="0.05", show_default=True, callback=_margin,
              help="Skip candidates scoring above s+ - |s+| x margin (s+ = the positive's score); 'none' = off.")
@click.option("--absolute-margin", default="none", show_default=True, callback=_margin,
              help="Skip candidates scoring above s+ - margin; 'none' = off.")
@click.option("--min-rel", default=1, show_default=True, help="Judgement grade from which a document is a positive.")
@click.option("--query-max-length", default=64, show_default=True)
@click.option("--teacher", default=None, help="Cross-encoder (local folder or cached hub ID) scoring positive and negatives.")
@click.option("--teacher-batch-size", default=32, show_default=True)
@click.option("--teacher-max-length", default=512, show_default=True)
@click.option("--teacher-activation", type=click.Choice(["logits", "model"]), default="logits", show_default=True,
              help="logits = raw scores (for MarginMSE); model = the cross-encoder's own activation.")
@click.option("--shard-size", default=1000, show_default=True, help="Queries per output shard (the unit of resume).")
@click.option("--setting", "settings", multiple=True, callback=_setting, help="Engine search setting KEY=VALUE (Seismic).")
@click.option("--threads", type=int, default=None)
@click.option("--memory", default=None, help="Java heap for Lucene (e.g. 8g).")
@click.option("--device", default=None, help="Teacher device (default: cuda if available).")
@click.option("--force", is_flag=True, help="Start over even if (partial) output exists.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def command(output, threads, memory, device, force, quiet, **options) -> None:
    """Mine hard negatives for training: retrieve, drop positives, guard against false negatives, sample.

    \b
    Writes OUTPUT/part-*.jsonl ({"query","positive","negatives","scores",...}), readable by
    `repro train --data OUTPUT`; a killed run continues where it stopped when run again.
      repro mine --index bm25-idx --queries train.tsv --qrels train.qrels --corpus collection.tsv -o mined/
    """
    from repro.train.mine import MineConfig, mine

    info = mine(MineConfig(**options), output, threads=threads, memory=memory, device=device, force=force,
                progress=not quiet)
    keys = ("queries", "records", "queries_without_positive", "skipped_positive", "skipped_margin",
            "positive_not_retrieved", "too_few_negatives", "missing_text")
    click.echo(json.dumps({"output": str(output), **{k: info[k] for k in keys}}, indent=2))
