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
              help="lucene: exact impact index (Anserini); seismic: approximate, millisecond search (pyseismic-lsr); "
                   "milvus: exact, embedded (Milvus Lite) or on a Milvus server (--uri).")
@click.option("--setting", "--seismic", "settings", multiple=True, metavar="KEY=VALUE",
              help="Engine build setting (repeatable), e.g. Seismic's n_postings, summary_energy, centroid_fraction, "
                   "doc_cut, min_cluster_size, max_fraction; Milvus's batch_size, flush_every, timeout, shards, drop_ratio_build.")
@click.option("--uri", default=None, help="Milvus: server address, e.g. http://host:19530 (default: Milvus Lite inside -o).")
@click.option("--token", default=None, help="Milvus: server token or user:password (default: $MILVUS_TOKEN); never stored.")
@click.option("--db-name", default=None, help="Milvus: database on the server (default: default).")
@click.option("--collection-name", default=None, help="Milvus: collection name (default: repro_<index folder name>).")
@click.option("--threads", type=int, default=None, help="Indexing threads (default: all cores).")
@click.option("--java-memory", default=None, help="JVM heap, e.g. 8g (default: the JVM's).")
@click.option("--force", is_flag=True, help="Replace an existing index.")
@click.option("--format", "fmt", default="auto", show_default=True,
              help="--bm25 corpus format: auto|tsv|jsonl|beir|trec|smart|irds (a repro collection is recognised).")
def command(source, output, bm25, backend, settings, uri, token, db_name, collection_name, threads, java_memory, force, fmt):
    """Index SOURCE and verify the result against it.

    \b
    Impact index from a `repro encode` collection (document count and weight total checked):
      repro index coll/ -o indexes/coll.splade
    Approximate index for millisecond search (accuracy vs exact: docs/benchmarks.md):
      repro index coll/ --backend seismic -o indexes/coll.seismic
    Exact index in Milvus (embedded Milvus Lite, or a server with --uri; docs/scale.md):
      repro index coll/ --backend milvus -o indexes/coll.milvus
      repro index coll/ --backend milvus --uri http://milvus:19530 -o indexes/coll.milvus
    BM25 baseline over the same texts:
      repro index coll/ --bm25 -o indexes/coll.bm25
    """
    from repro.index.build import build_bm25_index, build_index

    milvus = {"uri": uri, "token": token, "db_name": db_name, "collection_name": collection_name}
    given = [name for name, value in milvus.items() if value is not None]
    if given and backend != "milvus":
        raise ReproError(f"--{given[0].replace('_', '-')} is for --backend milvus")
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
    engine_settings: dict = parse_settings(settings)
    engine_settings.update({k: v for k, v in milvus.items() if v is not None})
    info = build_index(Path(source), output, engine=backend, threads=threads, force=force,
                       settings=engine_settings, memory=java_memory)
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
