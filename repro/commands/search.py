"""`repro search`: retrieve top-k for topics and write a tie-free TREC run."""

from __future__ import annotations

from pathlib import Path

import click

from repro import defaults, engines
from repro.defaults import check_max_length
from repro.encode.queries import RUNTIMES
from repro.errors import success


@click.command("search")
@click.argument("index", type=click.Path(path_type=Path))
@click.option("--topics", "-t", default=None, help="Topics (text): TSV, TREC, Cranfield .qry or ir_datasets ID.")
@click.option("--model", "-m", default=None, help="SPLADE model to encode text topics (impact indexes).")
@click.option("--encoded-queries", default=None, help="Already-encoded queries (Anserini query TSV, .gz ok).")
@click.option("--topic-format", default="auto", show_default=True, help="auto|tsv|jsonl|beir|trec|smart|irds")
@click.option("--split", default="test", show_default=True, help="BEIR folder topics: the split whose judged queries are searched.")
@click.option("--smart-ids", type=click.Choice(["position", "ids"]), default=None,
              help="SMART topics: number queries by position in the file [default] or by their .I ids.")
@click.option("--output", "-o", required=True, type=click.Path(path_type=Path), help="Run file to write (e.g. runs/x.trec).")
@click.option("--hits", "-k", default=defaults.HITS, show_default=True, help="Documents per query.")
@click.option("--threads", type=int, default=None, help="Search threads (default: all cores).")
@click.option("--query-max-length", default=defaults.QUERY_MAX_LENGTH, show_default=True)
@click.option("--factor", type=float, default=None, help="Query quantization factor (default: the collection's).")
@click.option("--tag", default=None, help="Run tag (last column).")
@click.option("--java-memory", default=None, help="JVM heap, e.g. 8g.")
@click.option("--backend", type=click.Choice(engines.names()), default=None,
              help="Engine; must match the index (default: whatever the index was built with).")
@click.option("--runtime", type=click.Choice(RUNTIMES), default="torch", show_default=True,
              help="Query encoder runtime for --model (onnx: same vectors, faster on CPU; onnx-int8: approximate).")
@click.option("--query-cut", type=int, default=None, help="Seismic: heaviest query terms scanned (default 20).")
@click.option("--heap-factor", type=float, default=None, help="Seismic: block skipping, > 0; higher is faster and less exact (default 0.8).")
@click.option("--setting", "settings", multiple=True, metavar="KEY=VALUE",
              help="Engine search setting (repeatable), e.g. Milvus's drop_ratio_search, dim_max_score_ratio "
                   "(approximate; a Milvus server only).")
@click.option("--allow-empty", is_flag=True, help="Write the run even if it has no lines or most queries got nothing.")
@click.option("--allow-other-model", is_flag=True, help="Search with a --model other than the one the index was encoded with.")
@click.option("--force", is_flag=True, help="Replace an earlier run file written by repro search.")
def command(index, topics, model, encoded_queries, topic_format, split, smart_ids, output, hits, threads, query_max_length,
            factor, tag, java_memory, backend, runtime, query_cut, heap_factor, settings, allow_empty, allow_other_model,
            force):
    """Search INDEX and write a TREC run (ties broken by document id; see docs/search.md).

    \b
      repro search indexes/cran.splade -t cran.qry -m splade-tiny -o runs/cran.splade.trec
      repro search indexes/msmarco.splade --encoded-queries topics.dev.splade-pp-ed.tsv.gz -o runs/x.trec
      repro search indexes/cran.seismic -t cran.qry -m splade-tiny --runtime onnx -o runs/cran.seismic.trec
      repro search indexes/cran.bm25 -t cran.qry -o runs/cran.bm25.trec
      repro search indexes/scifact.bm25 -t beir/scifact/ --split test -o runs/scifact.bm25.trec
    """
    check_max_length(query_max_length, "--query-max-length")
    from repro.commands.index import parse_settings
    from repro.search.run import run_search

    info = run_search(index, output, topics=topics, encoded_queries=encoded_queries, model=model,
                      topic_format=topic_format, hits=hits, threads=threads, query_max_length=query_max_length,
                      factor=factor, tag=tag, memory=java_memory, backend=backend, runtime=runtime,
                      query_cut=query_cut, heap_factor=heap_factor, force=force, allow_empty=allow_empty,
                      allow_other_model=allow_other_model, split=split, smart_ids=smart_ids,
                      settings=parse_settings(settings))
    truncated = f", {info['truncated_queries']} truncated at {query_max_length} tokens" if model else ""
    success(f"{info['queries']} queries -> {output} ({info['lines']} lines; {info['empty_queries']} empty queries, "
            f"{info['queries_without_results']} without results{truncated})")
