"""`repro report`: regenerate docs/reproductions.md (and figures) from the presets and runs/*.eval.json."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("report")
@click.option("--runs", "runs_dir", type=click.Path(path_type=Path), default=None,
              help="Folder of <preset>.<topics>.eval.json files [default: ./runs].")
@click.option("--output", "-o", type=click.Path(path_type=Path), default=None,
              help="Page to write [default: ./docs/reproductions.md].")
@click.option("--no-figures", is_flag=True, help="Only the page, no PNG figures.")
@click.option("--check", is_flag=True, help="Write nothing; exit 1 if the page is out of date.")
def command(runs_dir, output, no_figures, check):
    """Regenerate the reproductions page: published numbers, ours, deltas and verdicts per collection.

    \b
      repro reproduce cranfield.splade-tiny && repro report
      repro report --check        # in CI: is docs/reproductions.md current?
    """
    from repro.reproduce.report import default_output, render, write_report

    output = output or default_output()
    if check:
        current = output.read_text(encoding="utf-8") if output.is_file() else ""
        if current != render(runs_dir=runs_dir, figures_dir=output.parent):
            click.echo(f"{output} is out of date: run `repro report`", err=True)
            raise SystemExit(1)
        click.echo(f"{output} is up to date")
        return
    info = write_report(output, runs_dir, figures=not no_figures)
    for path in info["written"]:
        click.echo(f"wrote {path}")
