"""`repro encode`: documents -> JsonVectorCollection shards, or queries -> Anserini query TSV."""

from __future__ import annotations

from pathlib import Path

import click

from repro import defaults
from repro.defaults import check_max_length
from repro.encode.mixed_head import PRECISIONS
from repro.encode.queries import RUNTIMES
from repro.errors import ReproError, success


@click.command("encode")
@click.argument("source")
@click.option("--model", "-m", required=True, help="SPLADE model: local folder (SparseEncoder or *ForMaskedLM) or hub ID.")
@click.option("--output", "-o", required=True, type=click.Path(path_type=Path), help="Output folder (documents) or .tsv file (--queries).")
@click.option("--queries", is_flag=True, help="Encode topics into Anserini's query TSV (each token repeated weight times).")
@click.option("--format", "fmt", default="auto", show_default=True,
              help="Input format: auto|tsv|jsonl|beir|trec|smart|irds (topics: auto|tsv|jsonl|beir|trec|smart|irds).")
@click.option("--split", default="test", show_default=True, help="--queries from a BEIR folder: the split's judged queries.")
@click.option("--smart-ids", type=click.Choice(["position", "ids"]), default=None,
              help="--queries from a SMART file: number by position [default] or by .I ids.")
@click.option("--factor", default=defaults.DOC_FACTOR, show_default=True, help="Quantization: integer weight = round(weight x factor).")
@click.option("--max-length", type=int, default=None, help="Max tokens per text (default: the model's, at most 512; queries 64).")
@click.option("--batch-size", default=defaults.BATCH_SIZE, show_default=True)
@click.option("--shard-size", default=defaults.SHARD_SIZE, show_default=True, help="Documents per output shard (the unit of resume).")
@click.option("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda if available).")
@click.option("--dtype", type=click.Choice(["float32", "bfloat16", "float16"]), default="float32", show_default=True)
@click.option("--precision", type=click.Choice(PRECISIONS), default="auto", show_default=True,
              help="MLM head: fp32, or mixed = bf16 screen + exact fp32 recomputation (the same integer weights); "
                   "auto = mixed where measured faster (an AVX512-bf16 CPU without AMX; with AMX a hidden size "
                   "of 512 or more), else fp32 (docs/speed.md).")
@click.option("--threads", type=int, default=None, help="CPU threads for torch (or onnxruntime).")
@click.option("--runtime", type=click.Choice(RUNTIMES), default="torch", show_default=True,
              help="Query encoder runtime (--queries only): onnx = same vectors, faster on CPU; onnx-int8 = faster still, approximate.")
@click.option("--skip-bad-lines", is_flag=True, help="Skip malformed corpus lines (counted and reported) instead of stopping.")
@click.option("--force", is_flag=True, help="Redo even if the output exists.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
def command(source, model, output, queries, fmt, split, smart_ids, factor, max_length, batch_size, shard_size, device, dtype,
            precision, threads, runtime, skip_bad_lines, force, quiet):
    """Encode SOURCE (a file or an ir_datasets ID) with a SPLADE model.

    \b
    Documents: writes OUTPUT/shards/part-*.jsonl ({"id", "contents", "vector"}) and a manifest;
    a killed run resumes where it stopped when run again with the same arguments.
      repro encode corpus.tsv -m naver/splade-cocondenser-ensembledistil -o coll/
      repro encode beir/scifact/ -m MODEL -o coll/     # a BEIR folder: its corpus.jsonl
    Queries:
      repro encode topics.tsv --queries -m MODEL -o queries.splade.tsv
    """
    if factor <= 0:
        raise ReproError("--factor must be positive")
    if shard_size < 1 or batch_size < 1:
        raise ReproError("--shard-size and --batch-size must be at least 1")
    if runtime != "torch" and not queries:
        raise ReproError("--runtime onnx/onnx-int8 is for query encoding (--queries); documents use torch")
    check_max_length(max_length)
    if queries:
        from repro.encode.queries import encode_topics

        info = encode_topics(source, output, model=model, fmt=fmt, factor=factor, max_length=max_length or defaults.QUERY_MAX_LENGTH,
                             batch_size=batch_size, device=device, dtype=dtype, threads=threads, runtime=runtime,
                             force=force, split=split, smart_ids=smart_ids, precision=precision)
        success(f"encoded {info['queries']} queries -> {output} (avg {info['avg_terms']:.1f} terms, "
                f"{info['empty_queries']} empty, {info['truncated_queries']} truncated at {max_length or defaults.QUERY_MAX_LENGTH} tokens)")
        return
    from repro.encode.documents import encode_corpus

    info = encode_corpus(source, output, model=model, fmt=fmt, factor=factor, max_length=max_length,
                         batch_size=batch_size, shard_size=shard_size, device=device, dtype=dtype, precision=precision,
                         threads=threads,
                         skip_bad_lines=skip_bad_lines, force=force, progress=not quiet)
    if not info.get("documents"):
        click.echo(f"this rank is done; other ranks still writing {len(info['missing_shards'])} shard(s)")
        return
    success(
        f"encoded {info['documents']} documents -> {output} ({len(info['shards'])} shards, "
        f"{info['nonzeros'] / info['documents']:.1f} terms/doc; empty {info['empty_documents']}, "
        f"truncated at {info['model_max_length']} tokens {info['truncated_documents']}, "
        f"quantized to nothing {info['quantized_to_nothing']}, bad UTF-8 lines {info['bad_utf8_lines']}, "
        f"skipped lines {info['skipped_lines']})"
    )
