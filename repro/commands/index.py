"""`repro index`: build and verify an index of a collection with any registered engine (or BM25)."""

from __future__ import annotations

from pathlib import Path

import click

from repro import engines
from repro.errors import ReproError, success


@click.command("index")
@click.argument("source")
@click.option("--output", "-o", required=True, type=click.Path(path_type=Path), help="Index folder to create.")
@click.option("--bm25", is_flag=True, help="Build a BM25 index over the same texts (SOURCE: corpus file, ir_datasets ID or repro collection).")
@click.option("--backend", type=click.Choice(engines.names()), default="lucene", show_default=True,
              help="lucene: exact impact index (Anserini); seismic: approximate, millisecond search (pyseismic-lsr).")
@click.option("--setting", "--seismic", "settings", multiple=True, metavar="KEY=VALUE",
              help="Engine build setting (repeatable), e.g. Seismic's n_postings, summary_energy, centroid_fraction, "
                   "doc_cut, min_cluster_size, max_fraction.")
@click.option("--format", "fmt", default="auto", show_default=True,
              help="--bm25 corpus format: auto|tsv|jsonl|smart|irds (a repro collection is recognised).")
@click.option("--threads", type=int, default=None, help="Indexing threads (default: all cores).")
@click.option("--java-memory", default=None, help="JVM heap, e.g. 8g (default: the JVM's).")
@click.option("--force", is_flag=True, help="Replace an existing index.")
def command(source, output, bm25, backend, settings, threads, java_memory, force, fmt):
    """Index SOURCE and verify the result against it.

    \b
    Impact index from a `repro encode` collection (document count and weight total checked):
      repro index coll/ -o indexes/coll.splade
    Approximate index for millisecond search (accuracy vs exact: docs/benchmarks.md):
      repro index coll/ --backend seismic -o indexes/coll.seismic
    BM25 baseline over the same texts:
      repro index coll/ --bm25 -o indexes/coll.bm25
    """
    from repro.index.build import build_bm25_index, build_index

    if bm25 and backend != "lucene":
        raise ReproError(f"--bm25 builds a Lucene index; --backend {backend} is for SPLADE collections")
    if bm25 and settings:
        raise ReproError("--setting is for SPLADE collections, not --bm25")
    if fmt != "auto" and not bm25:
        raise ReproError("--format is for --bm25 corpora; a SPLADE index reads a `repro encode` collection")
    if bm25:
        info = build_bm25_index(source, output, threads=threads, force=force, memory=java_memory, fmt=fmt)
        success(f"BM25 index {output}: {info['documents']} documents in {info['seconds']:.1f}s (verified by CheckIndex)")
        return
    info = build_index(Path(source), output, engine=backend, threads=threads, force=force,
                       settings=parse_settings(settings), memory=java_memory)
    success(f"{engines.get(backend).display} index {output}: {info['documents']} documents, {info['weight_total']} weight units, "
               f"{info['seconds']:.1f}s (verified: count and weight total match the collection)")


def parse_settings(pairs: tuple[str, ...]) -> dict[str, float]:
    """KEY=VALUE pairs -> numbers (names and ranges are the engine's to check)."""
    out: dict[str, float] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ReproError(f"--setting {pair!r}: expected KEY=VALUE")
        try:
            number = float(value)
        except ValueError:
            raise ReproError(f"--setting {pair!r}: {value!r} is not a number") from None
        out[key] = int(number) if number.is_integer() and "." not in value and "e" not in value.lower() else number
    return out
