"""SPLADE encoding with PyTorch: pool log(1 + ReLU(MLM logits)) over the REAL tokens, quantized.

Pooling and activation are the model's (SpladePooling: max|sum, relu|log1p_relu; a plain MLM
folder is max + relu), computed as sentence-transformers computes them, [CLS]/[SEP] included.
Why it is written by hand rather than calling SparseEncoder.encode:
- the MLM head (hidden x vocab per token) dominates the cost of small models; it is applied only
  at real-token positions, never at padding, which also makes padding unable to contribute;
- for max pooling, log(1+ReLU(x)) is monotone, so the max is taken over raw logits and the
  activation applied once per (text, vocab) entry instead of per (token, vocab) entry: identical
  values, far less work (sum pooling applies it per token, as it must);
- quantization and sparsification happen on the device, so only nonzeros travel to the host.
Batching, the empty-text rule, special-token removal and quantization are repro.encode.base's.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from typing import Any

from repro.encode import model as model_io
from repro.encode.base import EncoderBase, clamp_max_length, quantize, refuse_non_finite
from repro.encode.cpu_linear import product, route_linears, will_route
from repro.encode.mixed_head import SCREEN_ROWS, MixedHead, check_precision, resolve_precision, segment_max, text_chunks



def _mlm_head(model: Any) -> tuple[Any, Callable[[Any], Any]]:
    """Split a *ForMaskedLM into (encoder, head) so the head runs only on selected positions."""
    kind = model.config.model_type
    if kind == "bert" and hasattr(model, "cls"):
        return model.bert, model.cls
    if kind == "distilbert":
        def head(h):
            h = model.activation(model.vocab_transform(h))
            return model.vocab_projector(model.vocab_layer_norm(h))

        return model.distilbert, head
    if hasattr(model, "lm_head") and hasattr(model, "base_model"):  # RoBERTa, XLM-R, ModernBERT...
        return model.base_model, model.lm_head
    return None, None  # unknown layout: fall back to full logits


def _split_decoder(model: Any, head: Any) -> tuple[Callable[[Any], Any], Any, Any] | None:
    """(transform, decoder weight, decoder bias) of a BERT MLM head, so the bias can be added after the max."""
    predictions = getattr(head, "predictions", None)
    if model.config.model_type != "bert" or predictions is None:
        return None
    decoder = getattr(predictions, "decoder", None)
    transform = getattr(predictions, "transform", None)
    if decoder is None or transform is None or not hasattr(decoder, "weight"):
        return None
    bias = decoder.bias if getattr(decoder, "bias", None) is not None else getattr(predictions, "bias", None)
    return transform, decoder.weight, bias


class SpladeEncoder(EncoderBase):
    """Encode texts into sparse {token: weight} vectors with a SPLADE masked-LM (one side of a model)."""

    # Rows of one (tokens x vocab) fp32 logits product. 128 rows (16 MB at vocab 30522) stay in
    # cache for the max that follows: 1.5x faster than 1024 rows for splade-tiny, equal for
    # BERT-base (docs/benchmarks.md, chunk rows). The bf16 screen's rows: repro.encode.mixed_head.
    CHUNK_TOKENS = 128
    MIXED_CHUNK_TOKENS = SCREEN_ROWS

    def __init__(
        self,
        model: str,
        max_length: int | None = None,
        device: str | None = None,
        dtype: str = "float32",
        threads: int | None = None,
        side: str = "document",
        precision: str = "auto",
    ) -> None:
        import torch

        super().__init__()
        check_precision(precision)  # an unknown name fails before the model loads
        if threads:
            torch.set_num_threads(threads)
        self.source = model_io.resolve(model)
        self.side = side
        self.route = self.source.route(side)
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.dtype = {"float32": None, "bfloat16": torch.bfloat16, "float16": torch.float16}[dtype]
        # Before the model loads, so an unknown $REPRO_CPU_LINEAR fails first. oneDNN layers replace the
        # weights by reordered copies, so the file is read in, not mapped (model_io.load).
        onednn = will_route(self.device.type, self.dtype is None)
        self.tokenizer, self.model = model_io.load(self.source, side, in_memory=onednn)
        self.pooling, self.activation = self.route.pooling, self.route.activation
        self.prompt = self.source.prompts.get(side, "")
        self.model.to(self.device)
        # Explicit > the model's own (legacy max_seq_length, else the tokenizer's); never past the
        # position embeddings (512 for BERT).
        positions = getattr(self.model.config, "max_position_embeddings", None)
        own = model_io.default_max_length(self.route, self.tokenizer, positions)
        self.max_length = clamp_max_length(max_length, own, positions)
        self.encoder, self.head = _mlm_head(self.model)
        self.decoder = _split_decoder(self.model, self.head)
        # After the decoder split, which keeps the (tied) decoder weight for the heads' own products.
        layers = [self.encoder if self.encoder is not None else self.model]
        if self.decoder is not None and isinstance(self.decoder[0], torch.nn.Module):
            layers.append(self.decoder[0])
        if onednn:
            route_linears(layers)
        self.linear_kernel = "onednn" if onednn else "blas"  # repro.encode.cpu_linear
        self.vocab = self.tokenizer.convert_ids_to_tokens(list(range(self.model.config.vocab_size)))
        special = set(self.tokenizer.all_special_ids)
        self.special_ids = sorted(i for i in special if i is not None and 0 <= i < len(self.vocab))
        self.use_precision(precision)
        self._factor: float | None = None

    def use_precision(self, precision: str) -> str:
        """Choose the head (``auto`` resolved by repro.encode.mixed_head.resolve_precision); returns
        the head used. The bf16 screen covers max pooling of log(1+ReLU) with a split decoder; any
        other shape, or float dtypes other than fp32, runs the plain fp32 head."""
        self.mixed = None
        wanted = resolve_precision(precision, int(getattr(self.model.config, "hidden_size", 0) or 0), self.device.type)
        if wanted == "mixed" and self.decoder is not None and self.pooling == "max" \
                and self.activation == "relu" and self.dtype is None:
            self.mixed = MixedHead(self.decoder[1], self.decoder[2], self.linear_kernel)
        self.precision = "mixed" if self.mixed is not None else "fp32"
        return self.precision

    # --- the model ----------------------------------------------------------------------------
    def _autocast(self):
        import torch

        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.dtype)

    def _activate(self, x):
        """log(1 + ReLU(x)), and log1p once more for log1p_relu (SpladePooling's order)."""
        import torch

        x = torch.log1p(torch.relu(x))
        return torch.log1p(x) if self.activation == "log1p_relu" else x

    def weights(self, batch_ids: Sequence[Sequence[int]]):
        """Float SPLADE weights (batch, vocab) for already tokenized texts (one padded batch), specials zeroed."""
        return self._zero_specials(self.weights_ids(batch_ids))

    def weights_ids(self, batch_ids: Sequence[Sequence[int]]):
        import torch

        lengths = [len(ids) for ids in batch_ids]
        width = max(lengths)
        pad = self.tokenizer.pad_token_id or 0
        ids = torch.full((len(batch_ids), width), pad, dtype=torch.long)
        mask = torch.zeros((len(batch_ids), width), dtype=torch.long)
        for row, seq in enumerate(batch_ids):
            ids[row, : len(seq)] = torch.tensor(seq, dtype=torch.long)
            mask[row, : len(seq)] = 1
        ids, mask = ids.to(self.device), mask.to(self.device)
        with torch.inference_mode(), self._autocast():
            if self.encoder is None:  # unknown layout: full logits, padding masked out
                logits = self.model(input_ids=ids, attention_mask=mask).logits.float()
                if self.pooling == "sum":  # masked_fill, not * mask: a NaN at padding must not count
                    return self._activate(logits).masked_fill(~mask.bool().unsqueeze(-1), 0.0).sum(dim=1)
                logits = logits.masked_fill(~mask.bool().unsqueeze(-1), float("-inf"))
                return self._activate(logits.max(dim=1).values)
            hidden = self.encoder(input_ids=ids, attention_mask=mask).last_hidden_state
            real = hidden[mask.bool()]  # (real tokens, hidden): padding never reaches the head
            if self.pooling == "sum":
                return self._summed(real, lengths)
            if self.mixed is not None and self._factor is not None:
                best = self.mixed.best(self.decoder[0](real), lengths, self._factor, self.MIXED_CHUNK_TOKENS)
            elif self.decoder is not None:
                best = self._decoded_max(real, lengths)
            else:
                best = segment_max(self.head(real).float(), lengths)  # real tokens are contiguous per text
            return self._activate(best)

    def _summed(self, real, lengths: Sequence[int]):
        """Sum pooling: activation per (token, vocab), then the sum over each text's real tokens,
        a few texts (at most CHUNK_TOKENS rows of logits) at a time."""
        import torch

        parts = []
        for row, stop, start, rows in text_chunks(lengths, self.CHUNK_TOKENS):
            x = self._activate(self.head(real[start : start + rows]).float())
            parts.extend(seg.sum(dim=0) for seg in x.split(list(lengths[row:stop])))
        return torch.stack(parts)

    def _decoded_max(self, real, lengths: Sequence[int]):
        """Per-text max over tokens of the MLM logits, bit-identical to head-then-max, but faster.

        - The vocabulary bias is constant over tokens, so max_t(x_t.W + b) = max_t(x_t.W) + b, and
          float addition is monotone, so adding it once per (text, vocab) after the max gives the
          same bits as adding it per (token, vocab) inside the matmul, given the same products
          (checked in tests). MKL may round a product row differently with the number of rows in
          the call (calls of a few rows take another kernel), so with BLAS head-then-max over a
          whole batch at once can differ from this in the last bit, as sentence-transformers' head
          over the padded batch does: summation order, within 1e-6 here, counted where it moves a
          weight. oneDNN (the CPU default, repro.encode.cpu_linear) rounds a row the same in any call;
        - the (tokens x vocab) product is made for a few texts at a time (at most CHUNK_TOKENS rows):
          bounded memory (a batch of 32 x 256 tokens would be 1 GB at once) and cache-warm maxima;
        - one amax per text over its rows, written in place (with torch 2.13 on CPU 12% faster
          end to end than a row-by-row torch.maximum; the max is exact either way).
        """
        import torch

        transform, weight, bias = self.decoder
        hidden = transform(real)
        # autocast (--dtype bfloat16/float16) does not cast ops given out=, and oneDNN takes none:
        # those make a fresh product per chunk; fp32 BLAS writes into one reused buffer.
        reuse = self.dtype is None and self.linear_kernel == "blas"
        best = None
        for row, stop, start, rows in text_chunks(lengths, self.CHUNK_TOKENS):
            part = hidden[start : start + rows]
            out = self._logits_buffer(rows, weight.shape[0], part) if reuse else None
            logits = product(part, weight, self.linear_kernel, out=out)
            if best is None:  # the product's dtype: under CUDA autocast the transform's output is fp32
                best = torch.empty((len(lengths), logits.shape[1]), dtype=logits.dtype, device=logits.device)
            segment_max(logits, lengths[row:stop], out=best[row:stop])
        best = best.float()
        if bias is not None:
            best = best + bias.float()
        return best

    def _logits_buffer(self, rows: int, vocab: int, like: Any) -> Any:
        """The first ``rows`` rows of one reused (rows x vocab) buffer: a fresh 16 MB product per chunk
        costs page faults on CPU (the head was 20% slower with them), a reused one does not."""
        import torch

        buf = getattr(self, "_logits", None)
        if buf is None or buf.shape[0] < rows or buf.dtype != like.dtype or buf.device != like.device:
            buf = self._logits = torch.empty((max(rows, self.CHUNK_TOKENS), vocab), dtype=like.dtype, device=like.device)
        return buf[:rows]

    def encode_ids(self, token_ids: Sequence[Sequence[int]], factor: float, batch_size: int = 32) -> list[dict[str, int]]:
        """As the base does; the mixed-precision screen needs the factor (its zero threshold)."""
        self._factor = factor
        try:
            return super().encode_ids(token_ids, factor, batch_size)
        finally:
            self._factor = None

    def encode_float(self, texts: Sequence[str], batch_size: int = 32):
        """Unquantized (n, vocab) weights (specials zeroed), for diagnostics and exactness checks."""
        import torch

        ids, _ = self.tokenize(texts)
        parts = [self.weights(ids[i : i + batch_size]).cpu() for i in range(0, len(ids), batch_size)]
        return torch.cat(parts) if parts else torch.zeros((0, len(self.vocab)))


class StaticQueryEncoder(EncoderBase):
    """The query side of an inference-free SPLADE (SparseStaticEmbedding): tokenize without special
    tokens, one table weight per distinct token (a repeated token counts once); no transformer."""

    def __init__(self, model: str | model_io.ModelSource, max_length: int | None = None, **_: Any) -> None:
        super().__init__()
        self.source = model if isinstance(model, model_io.ModelSource) else model_io.resolve(model)
        self.route = self.source.route("query")
        self.tokenizer, self.table = model_io.load_static(self.route)
        self.add_special = False
        self.prompt = self.source.prompts.get("query", "")
        # sentence-transformers truncates at the static tokenizer's own length (no position embeddings)
        own = int(min(self.tokenizer.model_max_length or 512, 1 << 30))
        self.max_length = clamp_max_length(max_length, own, own)
        self.vocab = self.tokenizer.convert_ids_to_tokens(list(range(len(self.table))))
        special = set(self.tokenizer.all_special_ids)
        self.special_ids = sorted(i for i in special if i is not None and 0 <= i < len(self.vocab))
        self._weights = self.table.numpy()

    def weights_ids(self, batch_ids: Sequence[Sequence[int]]):
        import numpy as np

        out = np.zeros((len(batch_ids), len(self._weights)), dtype=np.float32)
        for row, ids in enumerate(batch_ids):
            distinct = np.unique(np.asarray(ids, dtype=np.int64))
            out[row, distinct] = self._weights[distinct]
        return out

    def encode_ids(self, token_ids: Sequence[Sequence[int]], factor: float, batch_size: int = 32) -> list[dict[str, int]]:
        """One short query at a time costs a table lookup, not a (batch, vocab) array."""
        import numpy as np

        special = set(self.special_ids)
        out: list[dict[str, int]] = []
        for position, ids in enumerate(token_ids):
            distinct = np.unique(np.asarray([t for t in ids if t not in special], dtype=np.int64))
            weights = self._weights[distinct][None, :]
            refuse_non_finite(weights, [position])
            _, cols, vals = quantize(weights, factor)
            out.append({self.vocab[int(distinct[c])]: int(v) for c, v in zip(cols.tolist(), vals.tolist())})
        return out
