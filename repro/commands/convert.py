"""`repro convert-qrels`: turn a collection's own qrels format into TREC qrels."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("convert-qrels")
@click.argument("kind", type=click.Choice(["cranfield"]))
@click.argument("source", type=click.Path(path_type=Path))
@click.option("--output", "-o", required=True, type=click.Path(path_type=Path))
@click.option("--force", is_flag=True, help="Replace an existing output.")
def command(kind, source, output, force):
    """Convert SOURCE qrels of a known collection to TREC format.

    \b
    Cranfield: grades 1 (best)..4 become 4..1, -1 becomes 0; queries keep their position numbers.
      repro convert-qrels cranfield cranqrel -o qrels/cranfield.qrels
    """
    from repro.formats.cranfield import convert_cranfield_qrels

    count = convert_cranfield_qrels(source, output, force=force)
    click.echo(f"wrote {count} judgements -> {output}")
