"""`repro index`: build and verify a Lucene index (impact for SPLADE, or BM25)."""

from __future__ import annotations

from pathlib import Path

import click

from repro.errors import ReproError


@click.command("index")
@click.argument("source")
@click.option("--output", "-o", required=True, type=click.Path(path_type=Path), help="Index folder to create.")
@click.option("--bm25", is_flag=True, help="Build a BM25 index over the same texts (SOURCE: corpus file, ir_datasets ID or repro collection).")
@click.option("--backend", type=click.Choice(["lucene", "seismic"]), default="lucene", show_default=True,
              help="lucene: exact impact index (Anserini); seismic: approximate, millisecond search (pyseismic-lsr).")
@click.option("--seismic", "seismic_params", multiple=True, metavar="KEY=VALUE",
              help="Seismic build setting (repeatable): n_postings, summary_energy, centroid_fraction, doc_cut, "
                   "min_cluster_size, max_fraction.")
@click.option("--threads", type=int, default=None, help="Indexing threads (default: all cores).")
@click.option("--java-memory", default=None, help="JVM heap, e.g. 8g (default: the JVM's).")
@click.option("--force", is_flag=True, help="Replace an existing index.")
def command(source, output, bm25, backend, seismic_params, threads, java_memory, force):
    """Index SOURCE with Lucene through Anserini, and verify the result.

    \b
    Impact index from a `repro encode` collection (document count and weight total checked):
      repro index coll/ -o indexes/coll.splade
    Approximate index for millisecond search (accuracy vs exact: docs/benchmarks.md):
      repro index coll/ --backend seismic -o indexes/coll.seismic
    BM25 baseline over the same texts:
      repro index coll/ --bm25 -o indexes/coll.bm25
    """
    from repro.index.build import build_bm25_index, build_impact_index, build_seismic

    if bm25 and backend != "lucene":
        raise ReproError("--bm25 builds a Lucene index; --backend seismic is for SPLADE collections")
    if seismic_params and backend != "seismic":
        raise ReproError("--seismic settings need --backend seismic")
    if backend == "seismic":
        info = build_seismic(Path(source), output, threads=threads, force=force, params=_settings(seismic_params))
        click.echo(f"Seismic index {output}: {info['documents']} documents, {info['terms']} terms, "
                   f"{info['seconds']:.1f}s (approximate search; document count checked)")
    elif bm25:
        info = build_bm25_index(source, output, threads=threads, force=force, memory=java_memory)
        click.echo(f"BM25 index {output}: {info['documents']} documents in {info['seconds']:.1f}s (verified by CheckIndex)")
    else:
        info = build_impact_index(Path(source), output, threads=threads, force=force, memory=java_memory)
        click.echo(f"impact index {output}: {info['documents']} documents, {info['weight_total']} weight units, "
                   f"{info['seconds']:.1f}s (verified: count and weight total match the collection)")


def _settings(pairs: tuple[str, ...]) -> dict[str, float]:
    """KEY=VALUE pairs -> Seismic build settings, names and numbers checked."""
    from repro.engines.seismic import DEFAULTS

    known = {*DEFAULTS, "n_postings"}
    out: dict[str, float] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or key not in known:
            raise ReproError(f"--seismic {pair!r}: expected KEY=VALUE with KEY one of {', '.join(sorted(known))}")
        try:
            out[key] = int(value) if key in {"n_postings", "doc_cut", "min_cluster_size"} else float(value)
        except ValueError:
            raise ReproError(f"--seismic {pair!r}: {value!r} is not a number") from None
    return out
