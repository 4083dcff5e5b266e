"""Fast query encoding: the SPLADE query encoder as one ONNX graph, run with onnxruntime.

The graph takes (input_ids, attention_mask) and returns the final (batch, vocab) SPLADE weights,
pooled as the model pools (max|sum of relu|log1p_relu over real tokens), special tokens zeroed.
Pooling lives inside the graph so the caller only tokenizes and quantizes; for one short query
this removes PyTorch's per-operator dispatch overhead, which dominates at batch 1 (docs/speed.md).

For max pooling the max is taken on raw logits (padding pushed to the lowest float) and the
activation applied once per vocabulary entry, exactly as repro.encode.torch_encoder.SpladeEncoder
does, so fp32 ONNX vectors equal the PyTorch ones up to float rounding (a quantized weight can move
by 1 when its value sits on a .5 boundary). ``int8=True`` adds onnxruntime's dynamic int8
quantization of the weights: faster, slightly different vectors (docs/benchmarks.md).
Tokenization, batching, the empty-text rule and quantization are repro.encode.base's.

Exported models are cached under ``repro.paths.cache_root()/onnx``, keyed by the model folder's
fingerprint (repro.encode.model.fingerprint) and the graph settings, so the export happens once.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from repro import paths
from repro.encode import model as model_io
from repro.encode.base import EncoderBase, clamp_max_length
from repro.errors import ReproError

OPSET = 17
GRAPH = 4  # the pooling graph's version: part of the cache key, so a changed graph is exported anew


def _cache_root() -> Path:
    return paths.cache_root() / "onnx"


def _model_key(source: model_io.ModelSource, side: str, max_length: int) -> str:
    """Digest of the model folder's content and everything the graph depends on."""
    route = source.route(side)
    settings = f"{OPSET}:{GRAPH}:{max_length}:{side}:{route.pooling}:{route.activation}:{model_io.fingerprint(source.root)}"
    return hashlib.sha256(settings.encode()).hexdigest()[:16]


class _SpladeGraph:
    """torch.nn.Module wrapper whose forward is the whole query encoder (built lazily: torch import)."""

    @staticmethod
    def build(mlm: Any, special_ids: Sequence[int], vocab: int, pooling: str = "max", activation: str = "relu"):
        import torch

        def activate(x):
            x = torch.log1p(torch.relu(x))
            return torch.log1p(x) if activation == "log1p_relu" else x

        class Graph(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.mlm = mlm
                drop = torch.zeros(vocab, dtype=torch.bool)
                drop[list(special_ids)] = True
                self.register_buffer("drop", drop)

            def forward(self, input_ids, attention_mask):
                # masked_fill rather than multiplying by masks: NaN x 0 is NaN, so a NaN at padding or
                # in a special column would count where the torch encoder drops it
                out = self.mlm(input_ids=input_ids, attention_mask=attention_mask,
                               output_hidden_states=pooling != "sum")
                pad = attention_mask.unsqueeze(-1) == 0
                if pooling == "sum":  # ReduceSum keeps NaN
                    return activate(out.logits).masked_fill(pad, 0.0).sum(dim=1).masked_fill(self.drop, 0.0)
                best = out.logits.masked_fill(pad, torch.finfo(out.logits.dtype).min).max(dim=1).values
                # onnxruntime's ReduceMax drops a NaN outside the first row, so a text whose last hidden
                # states are not finite is made NaN here, from a (batch, length, hidden) sum: a sum of
                # the logits would cost one more (batch, length, vocab) pass, which shows on a short
                # query. A NaN the head itself makes (NaN head weights) is in every token's row, the
                # first included (tests/test_bad_inputs.py: a NaN decoder row, through onnxruntime).
                hidden = out.hidden_states[-1].masked_fill(pad, 0.0).sum(dim=(1, 2)).unsqueeze(-1)
                best = torch.where(torch.isfinite(hidden), best, torch.full_like(hidden, float("nan")))
                return activate(best).masked_fill(self.drop, 0.0)

        return Graph().eval()


def export_onnx(model: str | model_io.ModelSource, output: str | Path, *, side: str = "query", int8: bool = False) -> Path:
    """Export one side of ``model`` (any MLM shape) to ONNX at ``output``; int8 adds dynamic quantization."""
    import torch
    from transformers import AutoModelForMaskedLM

    source = model if isinstance(model, model_io.ModelSource) else model_io.resolve(model)
    route = source.route(side)
    if route.kind != "mlm":
        raise ReproError(f"the {side} side is a {route.module} (no transformer): nothing to export to ONNX", route.path)
    tokenizer = model_io.load_tokenizer(route)
    mlm = model_io._loading(route.path, lambda: AutoModelForMaskedLM.from_pretrained(
        route.path, local_files_only=True, attn_implementation="eager", dtype=model_io.LOAD_DTYPE).eval())
    if int8:
        _check_quantizable(mlm, route.path)
    vocab = mlm.config.vocab_size
    special = sorted(i for i in set(tokenizer.all_special_ids) if i is not None and 0 <= i < vocab)
    graph = _SpladeGraph.build(mlm, special, vocab, route.pooling, route.activation)
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(output.name + ".tmp")  # the finished graph, renamed into place
    fp32 = output.with_name(output.stem + ".fp32.tmp.onnx") if int8 else tmp  # int8: quantized from this one
    ids = torch.tensor([[tokenizer.cls_token_id or 0] + [5] * 6 + [tokenizer.sep_token_id or 0]] * 2)
    mask = torch.ones_like(ids)
    try:  # a failed or interrupted export leaves no temporary file in the cache
        with torch.no_grad():
            torch.onnx.export(
                graph, (ids, mask), str(fp32), dynamo=False, opset_version=OPSET,
                input_names=["input_ids", "attention_mask"], output_names=["weights"],
                dynamic_axes={"input_ids": {0: "batch", 1: "length"}, "attention_mask": {0: "batch", 1: "length"},
                              "weights": {0: "batch"}},
            )
        if int8:
            from onnxruntime.quantization import QuantType, quantize_dynamic

            quantize_dynamic(str(fp32), str(tmp), weight_type=QuantType.QInt8)
        os.replace(tmp, output)
    finally:
        for leftover in (fp32, tmp):
            leftover.unlink(missing_ok=True)
    return output


def _check_quantizable(mlm: Any, path: str) -> None:
    """int8 scales come from each weight's range: a NaN or inf weight has none (onnxruntime stops on
    an assertion), so it is refused here, naming the tensor. (A -inf bias, masking an entry, is no
    weight matrix and quantizes fine.)"""
    import torch

    for name, tensor in mlm.state_dict().items():
        if not tensor.is_floating_point():
            continue
        bad = torch.isnan(tensor).any() or (tensor.dim() > 1 and not bool(torch.isfinite(tensor).all()))
        if bool(bad):
            raise ReproError(f"the model's weight {name} holds NaN or infinite values: int8 quantization "
                             "needs finite weights (broken model weights)", path)


class OnnxQueryEncoder(EncoderBase):
    """Query text -> quantized SPLADE vector with onnxruntime; same interface as SpladeEncoder.encode."""

    def __init__(self, model: str, *, max_length: int = 64, int8: bool = False, threads: int | None = 1,
                 onnx_path: str | Path | None = None, side: str = "query") -> None:
        super().__init__()
        try:
            import onnxruntime as ort
        except ImportError:
            raise ReproError("the ONNX backend needs onnxruntime: pip install 'repro[onnx]'") from None
        self.source = model_io.resolve(model)
        route = self.source.route(side)
        if route.kind != "mlm":
            raise ReproError(f"the {side} side is a {route.module} (no transformer): use the torch runtime", route.path)
        self.tokenizer = model_io.load_tokenizer(route)
        self.prompt = self.source.prompts.get(side, "")
        positions = model_io._json(Path(route.path) / "config.json").get("max_position_embeddings")
        own = model_io.default_max_length(route, self.tokenizer, positions)
        self.max_length = clamp_max_length(max_length, own, positions)
        self.int8 = int8
        if onnx_path is None:
            name = f"{_model_key(self.source, side, self.max_length)}{'.int8' if int8 else ''}.onnx"
            onnx_path = _cache_root() / name
            if not onnx_path.exists():
                export_onnx(self.source, onnx_path, side=side, int8=int8)
        self.path = Path(onnx_path)
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])
        size = self.session.get_outputs()[0].shape[-1]
        self.vocab = self.tokenizer.convert_ids_to_tokens(list(range(size)))
        self.special_ids = sorted(i for i in set(self.tokenizer.all_special_ids) if i is not None and 0 <= i < size)
        self.pad_id = self.tokenizer.pad_token_id or 0

    def weights_ids(self, batch_ids: Sequence[Sequence[int]]):
        """Float (batch, vocab) numpy weights for token-id lists, padded to the longest."""
        import numpy as np

        width = max(len(ids) for ids in batch_ids)
        input_ids = np.full((len(batch_ids), width), self.pad_id, dtype=np.int64)
        mask = np.zeros((len(batch_ids), width), dtype=np.int64)
        for row, ids in enumerate(batch_ids):
            input_ids[row, : len(ids)] = ids
            mask[row, : len(ids)] = 1
        return self.session.run(None, {"input_ids": input_ids, "attention_mask": mask})[0]

    def weights(self, texts: Sequence[str]):
        """Float (batch, vocab) numpy weights for a batch of texts."""
        return self.weights_ids(self.tokenize(texts)[0])
