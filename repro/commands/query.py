"""`repro query`: interactive search, one query at a time, with the model and index kept in memory."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click

from repro import defaults

from repro.encode.queries import RUNTIMES

INTERACTIVE_QUERY_CUT = 10  # a few results for a person, not a 1000-deep run: see docs/benchmarks.md


@click.command("query")
@click.argument("index", type=click.Path(path_type=Path))
@click.argument("text", nargs=-1)
@click.option("--model", "-m", required=True, help="SPLADE model that encoded the index.")
@click.option("--hits", "-k", default=10, show_default=True, help="Documents to show per query.")
@click.option("--runtime", type=click.Choice(RUNTIMES), default="onnx", show_default=True,
              help="Query encoder runtime (onnx gives the same vectors as torch, faster).")
@click.option("--query-max-length", default=defaults.QUERY_MAX_LENGTH, show_default=True)
@click.option("--factor", type=float, default=None, help="Query quantization factor (default: the collection's).")
@click.option("--query-cut", type=int, default=None,
              help="Seismic: heaviest query terms scanned (default here 10: top-10 recall 1.000 on Cranfield/CACM at half "
                   "the latency of `repro search`'s 20; docs/benchmarks.md).")
@click.option("--heap-factor", type=float, default=None, help="Seismic: block skipping, > 0; higher is faster and less exact (default 0.8).")
@click.option("--setting", "settings", multiple=True, metavar="KEY=VALUE",
              help="Engine search setting (repeatable), e.g. Milvus's drop_ratio_search (a Milvus server only).")
@click.option("--show-terms", default=0, show_default=True, help="Also print the query's N heaviest terms.")
@click.option("--threads", type=int, default=None, help="Query encoder threads (default: all cores).")
def command(index, text, model, hits, runtime, query_max_length, factor, query_cut, heap_factor, settings, show_terms, threads):
    """Search INDEX (Lucene impact, Seismic or Milvus) for TEXT, or for each line of standard input.

    The encoder and the searcher are loaded once and kept in this process, so after start-up each
    query costs milliseconds (docs/benchmarks.md). Prints rank, document id and exact score, and
    the time spent encoding and retrieving.

    \b
      repro query indexes/cran.splade -m splade-tiny "boundary layer transition"
      repro query indexes/cran.seismic -m splade-tiny < questions.txt
    """
    from repro import engines
    from repro.encode.queries import query_encoder
    from repro.index.build import index_factor, read_index_manifest
    from repro.search.run import open_searcher

    meta = read_index_manifest(index)
    if engines.of_index(meta) == "seismic" and query_cut is None:
        query_cut = INTERACTIVE_QUERY_CUT
    from repro.commands.index import parse_settings

    searcher = open_searcher(index, query_cut=query_cut, heap_factor=heap_factor,
                             settings=parse_settings(settings))
    if factor is None:
        factor = index_factor(meta, index)
    encoder = query_encoder(model, runtime=runtime, max_length=query_max_length, threads=threads)
    lines = [" ".join(text)] if text else (line.rstrip("\n") for line in sys.stdin)
    if not text and sys.stdin.isatty():
        click.echo("query> ", nl=False, err=True)
    for line in lines:
        if line.strip():
            started = time.perf_counter()
            vector = encoder.encode([line], factor=factor, names=[line.strip()[:80]], kind="query")[0]
            encoded = time.perf_counter()
            ranked = searcher.search(vector, hits) if vector else []
            done = time.perf_counter()
            click.echo(f"# {line.strip()[:80]}  ({len(vector)} terms; encode {1000 * (encoded - started):.1f} ms, "
                       f"retrieve {1000 * (done - encoded):.1f} ms)")
            if show_terms:
                heavy = sorted(vector.items(), key=lambda kv: (-kv[1], kv[0]))[:show_terms]
                click.echo("# terms: " + " ".join(f"{tok}:{w}" for tok, w in heavy))
            for rank, (docid, score) in enumerate(ranked, start=1):
                click.echo(f"{rank}\t{docid}\t{score}")
            if not ranked:
                click.echo("(no results)")
        if not text and sys.stdin.isatty():
            click.echo("query> ", nl=False, err=True)
