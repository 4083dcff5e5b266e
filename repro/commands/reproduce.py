"""`repro reproduce PRESET`: run a reproduction preset end to end, skipping up-to-date stages."""

from __future__ import annotations

import click

from repro.reproduce.preset import STAGES


@click.command("reproduce")
@click.argument("preset")
@click.option("--workdir", default="work", show_default=True, help="Where collections, indexes and encoded queries go (WORKDIR/<preset>/).")
@click.option("--runs", "runs_dir", default=None, help="Where run files and evaluation JSON go (read by `repro report`) [default: ./runs].")
@click.option("--dry-run", is_flag=True, help="Print every step as the equivalent repro command (and whether it would run); run nothing.")
@click.option("--from-stage", type=click.Choice(STAGES), default=None, help="Redo this stage and every later one.")
@click.option("--force", is_flag=True, help="Redo every stage.")
@click.option("--queries", type=click.Choice(["cached", "encode"]), default=None,
              help="SPLADE queries: the preset's pre-encoded files, or encode the topics with the model "
                   "[default: cached where the preset has a file here, else encode].")
@click.option("--model", default=None, help="Use this model instead of the preset's (folder or hub ID).")
@click.option("--source", default=None, metavar="DIR",
              help="A local BEIR folder (corpus.jsonl, queries.jsonl, qrels/) instead of the preset's ir_datasets IDs.")

@click.option("--vectors", default=None, type=click.Path(file_okay=False),
              help="Index this encoded collection instead of encoding the corpus (a repro collection, or another "
                   "tool's JsonVectorCollection such as Anserini's pre-encoded corpus).")
def command(preset, workdir, runs_dir, dry_run, from_stage, force, queries, model, source, vectors):
    """Run PRESET: encode -> index -> (encode queries) -> search -> evaluate, then compare with published numbers.

    A stage whose outputs exist and whose settings and input checksums are unchanged is skipped.

    \b
      repro presets                                              # list the presets
      repro reproduce cranfield.splade-tiny                      # about 2 minutes on 2 CPU cores
      repro reproduce msmarco-v1-passage.splade-pp-ed --dry-run  # the plan, as repro commands
      repro reproduce cacm.splade-tiny --from-stage search
      repro reproduce beir-scifact.bm25 --source ~/beir/scifact/   # a BEIR zip, unzipped
      repro reproduce msmarco-v1-passage.splade-pp-ed --vectors msmarco-passage-splade-pp-ed/
    """
    from repro.reproduce.plan import reproduce, summary

    plan = reproduce(preset, workdir=workdir, runs_dir=runs_dir, dry_run=dry_run, from_stage=from_stage, force=force,
                     queries=queries, model=model, echo=click.echo, source=source, vectors=vectors)
    if not dry_run:
        text = summary(plan)
        if text:
            click.echo(text)
