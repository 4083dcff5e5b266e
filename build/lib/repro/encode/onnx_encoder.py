"""Fast query encoding: the SPLADE query encoder as one ONNX graph, run with onnxruntime.

The graph takes (input_ids, attention_mask) and returns the final (batch, vocab) SPLADE weights:
the max over real tokens of log(1 + ReLU(MLM logits)), special tokens zeroed. Pooling lives
inside the graph so the caller only tokenizes and quantizes; for one short query this removes
PyTorch's per-operator dispatch overhead, which dominates at batch 1 (see docs/speed.md).

The max is taken on raw logits (padding pushed to the lowest float) and the activation applied
once per vocabulary entry, exactly as repro.encode.torch_encoder.SpladeEncoder does, so fp32 ONNX vectors equal
the PyTorch ones up to float rounding (a quantized weight can move by 1 when its value sits on a
.5 boundary). ``int8=True`` adds onnxruntime's dynamic int8 quantization of the weights: faster,
slightly different vectors (its effect on effectiveness is measured in docs/benchmarks.md).

Exported models are cached next to nothing the user owns: under ``$REPRO_CACHE`` (default
``~/.cache/repro/onnx``), keyed by the model's files, so the export (seconds) happens once.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from repro.encode import model as model_io
from repro.errors import ReproError
from repro.encode.torch_encoder import DEFAULT_FACTOR, EncodeCounts, tokenize

OPSET = 17


def _cache_root() -> Path:
    return Path(os.environ.get("REPRO_CACHE", Path.home() / ".cache" / "repro")) / "onnx"


def _model_key(path: str, max_length: int) -> str:
    """Digest of the model folder's weight/config/tokenizer files (size + mtime) and the settings."""
    h = hashlib.sha256(f"{OPSET}:{max_length}".encode())
    folder = Path(path)
    for item in sorted(folder.rglob("*")):
        if item.is_file() and item.suffix in {".json", ".safetensors", ".bin", ".txt", ".model"}:
            st = item.stat()
            h.update(f"{item.relative_to(folder)}:{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()[:16]


class _SpladeGraph:
    """torch.nn.Module wrapper whose forward is the whole query encoder (built lazily: torch import)."""

    @staticmethod
    def build(mlm: Any, special_ids: Sequence[int], vocab: int):
        import torch

        class Graph(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.mlm = mlm
                keep = torch.ones(vocab)
                keep[list(special_ids)] = 0.0
                self.register_buffer("keep", keep)

            def forward(self, input_ids, attention_mask):
                logits = self.mlm(input_ids=input_ids, attention_mask=attention_mask).logits
                lowest = torch.finfo(logits.dtype).min
                logits = logits.masked_fill(attention_mask.unsqueeze(-1) == 0, lowest)
                best = logits.max(dim=1).values
                return torch.log1p(torch.relu(best)) * self.keep

        return Graph().eval()


def export_onnx(model: str, output: str | Path, *, max_length: int = 64, int8: bool = False) -> Path:
    """Export ``model`` (folder or SparseEncoder folder) to ONNX at ``output``; int8 adds dynamic quantization."""
    import torch
    from transformers import AutoModelForMaskedLM

    source = model_io.resolve(model)
    if not source.local:
        raise ReproError("ONNX export needs a local model folder (download it first)", model)
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(source.path, local_files_only=True)
    mlm = AutoModelForMaskedLM.from_pretrained(source.path, local_files_only=True, attn_implementation="eager").eval()
    vocab = mlm.config.vocab_size
    special = sorted(i for i in set(tokenizer.all_special_ids) if i is not None and 0 <= i < vocab)
    graph = _SpladeGraph.build(mlm, special, vocab)
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    fp32 = output.with_name(output.stem + ".fp32.tmp.onnx") if int8 else output.with_name(output.name + ".tmp")
    ids = torch.tensor([[tokenizer.cls_token_id or 0] + [5] * 6 + [tokenizer.sep_token_id or 0]] * 2)
    mask = torch.ones_like(ids)
    with torch.no_grad():
        torch.onnx.export(
            graph, (ids, mask), str(fp32), dynamo=False, opset_version=OPSET,
            input_names=["input_ids", "attention_mask"], output_names=["weights"],
            dynamic_axes={"input_ids": {0: "batch", 1: "length"}, "attention_mask": {0: "batch", 1: "length"},
                          "weights": {0: "batch"}},
        )
    if int8:
        from onnxruntime.quantization import QuantType, quantize_dynamic

        tmp = output.with_name(output.name + ".tmp")
        quantize_dynamic(str(fp32), str(tmp), weight_type=QuantType.QInt8)
        fp32.unlink()
        os.replace(tmp, output)
    else:
        os.replace(fp32, output)
    return output


class OnnxQueryEncoder:
    """Query text -> quantized SPLADE vector with onnxruntime; same interface as SpladeEncoder.encode."""

    def __init__(self, model: str, *, max_length: int = 64, int8: bool = False, threads: int | None = 1,
                 onnx_path: str | Path | None = None) -> None:
        try:
            import onnxruntime as ort
        except ImportError:
            raise ReproError("the ONNX backend needs onnxruntime: pip install 'repro[onnx]'") from None
        self.source = model_io.resolve(model)
        if not self.source.local:
            raise ReproError("the ONNX backend needs a local model folder", model)
        from transformers import AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(self.source.path, local_files_only=True)
        self.max_length = max_length
        self.int8 = int8
        if onnx_path is None:
            name = f"{_model_key(self.source.path, max_length)}{'.int8' if int8 else ''}.onnx"
            onnx_path = _cache_root() / name
            if not onnx_path.exists():
                export_onnx(model, onnx_path, max_length=max_length, int8=int8)
        self.path = Path(onnx_path)
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])
        size = self.session.get_outputs()[0].shape[-1]
        self.vocab = self.tokenizer.convert_ids_to_tokens(list(range(size)))
        self.special = {i for i in self.tokenizer.all_special_ids if i is not None}
        self.pad_id = self.tokenizer.pad_token_id or 0
        self.stats = EncodeCounts()

    def tokenize(self, texts: Sequence[str]) -> tuple[list[list[int]], list[bool]]:
        """Token ids per text and whether each was truncated (the same tokenization as SpladeEncoder)."""
        return tokenize(self.tokenizer, texts, self.max_length)

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

    def encode(self, texts: Sequence[str], factor: float = DEFAULT_FACTOR, batch_size: int = 32) -> list[dict[str, int]]:
        """Quantized {token: int} per text, round half to even like SpladeEncoder.quantize.

        Texts with no tokens besides specials get {} (the rule of SpladeEncoder.encode_ids).
        """
        import numpy as np

        ids, truncated = self.tokenize(texts)
        out: list[dict[str, int]] = [{} for _ in texts]
        todo = sorted((i for i in range(len(ids)) if any(t not in self.special for t in ids[i])),
                      key=lambda i: (len(ids[i]), i))
        for start in range(0, len(todo), batch_size):
            chunk = todo[start : start + batch_size]
            w = self.weights_ids([ids[i] for i in chunk])
            q = np.rint(w.astype(np.float32) * np.float32(factor)).astype(np.int32)
            rows, cols = np.nonzero(q > 0)
            for r, c in zip(rows.tolist(), cols.tolist()):
                out[chunk[r]][self.vocab[c]] = int(q[r, c])
        self.stats.record(texts, truncated, out)
        return out
