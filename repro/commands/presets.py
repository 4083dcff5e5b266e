"""`repro presets`: list the reproduction presets, or show one."""

from __future__ import annotations

import click


@click.command("presets")
@click.argument("name", required=False)
def command(name):
    """List the reproduction presets, or show NAME's settings and expected numbers.

    \b
      repro presets
      repro presets msmarco-v1-passage.splade-pp-ed
    """
    from repro.reproduce.preset import list_presets, load_preset

    if not name:
        for p in list_presets():
            sets = ", ".join(t.name for t in p.topic_sets)
            numbers = sum(len(t.expected) for t in p.topic_sets)
            click.echo(f"{p.name:<40} {p.retrieval:<6} topics: {sets:<24} {numbers} expected number(s)")
        return
    p = load_preset(name)
    click.echo(f"{p.name}: {p.description}\n  file: {p.path}")
    click.echo(f"  retrieval: {p.retrieval}" + (f"; model: {p.model}" + (f" ({p.model_note})" if p.model_note else "") if p.model else ""))
    click.echo(f"  corpus: {' | '.join(p.corpus)}")
    if p.retrieval == "splade":
        click.echo(f"  doc max length: {p.doc_max_length or 'model default'}; query max length: {p.query_max_length}; "
                   f"factor: {p.factor:g}")
    click.echo(f"  hits: {p.hits}" + (f"; part of the published {p.part_of} average" if p.part_of else ""))
    if p.notes:
        click.echo(f"  notes: {p.notes}")
    for t in p.topic_sets:
        click.echo(f"  topics {t.name}" + (f" ({t.title})" if t.title else "") + f": {' | '.join(t.topics)}"
                   + (f"; split {t.split}" if t.split else "") + (f"; SMART numbering by {t.smart_ids}" if t.smart_ids else ""))
        click.echo(f"    qrels ({t.qrels_format}): {' | '.join(t.qrels)}")
        if t.encoded_queries:
            click.echo(f"    cached queries: {' | '.join(t.encoded_queries)}")
        click.echo(f"    measures: {' '.join(t.measures)}")
        for e in t.expected:
            extra = f", {e.queries_mode} queries" if e.queries_mode else ""
            extra += f", subsample of {e.subsample_size}" if e.subsample_size else ""
            click.echo(f"    {e.measure} = {e.value:.4f} ±{e.tolerance:g} [{e.kind}{extra}] {e.source}")
