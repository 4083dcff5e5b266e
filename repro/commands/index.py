"""`repro index`: build and verify a Lucene index (impact for SPLADE, or BM25)."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("index")
@click.argument("source")
@click.option("--output", "-o", required=True, type=click.Path(path_type=Path), help="Index folder to create.")
@click.option("--bm25", is_flag=True, help="Build a BM25 index over the same texts (SOURCE: corpus file, ir_datasets ID or repro collection).")
@click.option("--threads", type=int, default=None, help="Indexing threads (default: all cores).")
@click.option("--java-memory", default=None, help="JVM heap, e.g. 8g (default: the JVM's).")
@click.option("--force", is_flag=True, help="Replace an existing index.")
def command(source, output, bm25, threads, java_memory, force):
    """Index SOURCE with Lucene through Anserini, and verify the result.

    \b
    Impact index from a `repro encode` collection (document count and weight total checked):
      repro index coll/ -o indexes/coll.splade
    BM25 baseline over the same texts:
      repro index coll/ --bm25 -o indexes/coll.bm25
    """
    from repro.index import build_bm25_index, build_impact_index

    if bm25:
        info = build_bm25_index(source, output, threads=threads, force=force, memory=java_memory)
        click.echo(f"BM25 index {output}: {info['documents']} documents in {info['seconds']:.1f}s (verified by CheckIndex)")
    else:
        info = build_impact_index(Path(source), output, threads=threads, force=force, memory=java_memory)
        click.echo(f"impact index {output}: {info['documents']} documents, {info['weight_total']} weight units, "
                   f"{info['seconds']:.1f}s (verified: count and weight total match the collection)")
