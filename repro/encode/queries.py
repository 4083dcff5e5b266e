"""Query encoding: the runtimes (PyTorch, ONNX), and topics -> Anserini's pre-encoded query TSV."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from repro.outputs import atomic_write, prepare_output
from repro.errors import ReproError
from repro.manifest import write_manifest
from repro.formats.topics import read_topics


RUNTIMES = ("torch", "onnx", "onnx-int8")


def query_encoder(model: str, *, runtime: str = "torch", max_length: int = 64, device: str | None = None,
                  dtype: str = "float32", threads: int | None = None, precision: str = "auto") -> Any:
    """A query encoder with ``.encode(texts, factor, batch_size)`` and ``.stats``, on the chosen runtime.

    ``torch`` is the reference (repro.encode.torch_encoder.SpladeEncoder); ``onnx`` runs the same graph with
    onnxruntime (equal vectors up to float rounding); ``onnx-int8`` adds dynamic int8 weights
    (faster, slightly different vectors; effect on nDCG in docs/benchmarks.md). The query side of
    an inference-free model (a Router with a SparseStaticEmbedding) is a table lookup on any runtime.
    """
    if runtime not in RUNTIMES:
        raise ReproError(f"unknown query runtime {runtime!r} (choose from {', '.join(RUNTIMES)})")
    from repro.encode import model as model_io

    if model_io.resolve(model).inference_free:
        # An inference-free model's queries are a table lookup: no transformer, on every runtime.
        from repro.encode.torch_encoder import StaticQueryEncoder

        return StaticQueryEncoder(model, max_length=max_length)
    if runtime == "torch":
        from repro.encode.torch_encoder import SpladeEncoder

        return SpladeEncoder(model, max_length=max_length, device=device, dtype=dtype, threads=threads, side="query",
                             precision=precision)
    if dtype != "float32" or (device and device != "cpu"):
        raise ReproError(f"--runtime {runtime} runs on the CPU in float32 (its own int8 option is onnx-int8)")
    from repro.encode.onnx_encoder import OnnxQueryEncoder

    return OnnxQueryEncoder(model, max_length=max_length, int8=runtime == "onnx-int8", threads=threads)


def encode_topics(
    source: str, output: Path, *, model: str, fmt: str = "auto", factor: float = 100, max_length: int = 64,
    batch_size: int = 32, device: str | None = None, dtype: str = "float32", threads: int | None = None,
    runtime: str = "torch", force: bool = False, split: str = "test", smart_ids: str | None = None,
    precision: str = "auto",
) -> dict[str, Any]:
    """Encode topics into ``qid<TAB>tok tok ...`` lines (token repeated weight times)."""
    from repro.formats.anserini_queries import query_line

    output = Path(output)
    prepare_output(output, "encode-queries", inputs=[source, model], force=force)
    topics = read_topics(source, fmt, smart_ids=smart_ids, split=split)
    encoder = query_encoder(model, runtime=runtime, max_length=max_length, device=device, dtype=dtype, threads=threads,
                            precision=precision)
    vectors = encoder.encode(list(topics.values()), factor=factor, batch_size=batch_size, names=list(topics),
                             kind="query")
    with atomic_write(output) as handle:
        for qid, vec in zip(topics, vectors):
            handle.write(query_line(qid, vec) + "\n")
    info = {
        "queries": len(topics),
        "avg_terms": sum(len(v) for v in vectors) / max(1, len(vectors)),
        "empty_queries": sum(1 for v in vectors if not v),
        "truncated_queries": encoder.stats.truncated,
    }
    head = {"head_precision": encoder.precision} if hasattr(encoder, "precision") else {}
    write_manifest(output, "encode-queries", {"source": str(source), "model": model, "factor": factor,
                                              "max_length": max_length, "dtype": dtype,
                                              "runtime": runtime}, **info, **head)
    return info
