"""SPLADE encoding: max over REAL tokens of log(1 + ReLU(MLM logits)), quantized to integers.

Why it is written by hand rather than calling SparseEncoder.encode:
- the MLM head (hidden x vocab per token) dominates the cost of small models; it is applied only
  at real-token positions, never at padding, which also makes padding unable to contribute;
- log(1+ReLU(x)) is monotone, so the max is taken over raw logits and the activation applied once
  per (text, vocab) entry instead of per (token, vocab) entry: identical values, far less work;
- quantization and sparsification happen on the device, so only nonzeros travel to the host.
Special tokens ([CLS], [SEP], [PAD], [MASK], [UNK]) are removed from every output vector.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from repro.encode import model as model_io
DEFAULT_FACTOR = 100  # naver/splade and Anserini's SPLADE++ regressions quantize weights x100


@dataclass
class EncodeCounts:
    texts: int = 0
    empty: int = 0
    truncated: int = 0
    quantized_empty: int = 0
    nonzeros: int = 0

    def record(self, texts: Sequence[str], truncated: Sequence[bool], vectors: Sequence[dict[str, int]]) -> None:
        """Count one encoded batch: empty inputs, truncations, vectors quantized to nothing, nonzeros."""
        self.texts += len(texts)
        self.empty += sum(1 for t in texts if not t.strip())
        self.truncated += sum(truncated)
        self.quantized_empty += sum(1 for t, v in zip(texts, vectors) if t.strip() and not v)
        self.nonzeros += sum(len(v) for v in vectors)


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


class SpladeEncoder:
    """Encode texts into sparse {token: weight} vectors with a SPLADE masked-LM."""

    CHUNK_TOKENS = 1024  # rows of one (tokens x vocab) logits product: 125 MB in fp32 at vocab 30522

    def __init__(
        self,
        model: str,
        max_length: int | None = None,
        device: str | None = None,
        dtype: str = "float32",
        threads: int | None = None,
    ) -> None:
        import torch

        if threads:
            torch.set_num_threads(threads)
        self.source = model_io.resolve(model)
        self.tokenizer, self.model = model_io.load(self.source)
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.model.to(self.device)
        # Explicit > the SparseEncoder's max_seq_length > the tokenizer's model_max_length, never
        # beyond the position embeddings (512 for BERT).
        limit = min(self.model.config.max_position_embeddings, self.tokenizer.model_max_length or 512)
        self.max_length = int(max_length or self.source.max_length or min(limit, 512))
        self.dtype = {"float32": None, "bfloat16": torch.bfloat16, "float16": torch.float16}[dtype]
        self.encoder, self.head = _mlm_head(self.model)
        self.decoder = _split_decoder(self.model, self.head)
        self.vocab = self.tokenizer.convert_ids_to_tokens(list(range(self.model.config.vocab_size)))
        special = set(self.tokenizer.all_special_ids)
        self.special_ids = sorted(i for i in special if i is not None and 0 <= i < len(self.vocab))
        self.stats = EncodeCounts()

    # --- tokenization -------------------------------------------------------------------------
    def tokenize(self, texts: Sequence[str]) -> tuple[list[list[int]], list[bool]]:
        """Token ids per text (truncated to max_length) and whether each text was truncated."""
        return tokenize(self.tokenizer, texts, self.max_length)

    # --- the model ----------------------------------------------------------------------------
    def _autocast(self):
        import torch

        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.dtype)

    def weights(self, batch_ids: Sequence[Sequence[int]]):
        """Float SPLADE weights (batch, vocab) for already tokenized texts (one padded batch)."""
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
            if self.encoder is not None:
                hidden = self.encoder(input_ids=ids, attention_mask=mask).last_hidden_state
                real = hidden[mask.bool()]  # (real tokens, hidden): padding never reaches the head
                if self.decoder is not None:
                    best = self._decoded_max(real, lengths)
                else:
                    logits = self.head(real).float()
                    # Real tokens are contiguous per text: one max per segment.
                    best = torch.stack([seg.amax(dim=0) for seg in logits.split(lengths)])
            else:
                logits = self.model(input_ids=ids, attention_mask=mask).logits.float()
                logits = logits.masked_fill(~mask.bool().unsqueeze(-1), float("-inf"))
                best = logits.max(dim=1).values
            weights = torch.log1p(torch.relu(best))
            if self.special_ids:
                weights[:, self.special_ids] = 0.0
        return weights

    def _decoded_max(self, real, lengths: Sequence[int]):
        """Per-text max over tokens of the MLM logits, bit-identical to head-then-max, but faster.

        - The vocabulary bias is constant over tokens, so max_t(x_t.W + b) = max_t(x_t.W) + b, and
          float addition is monotone, so adding it once per (text, vocab) after the max gives the
          same bits as adding it per (token, vocab) inside the matmul (checked in tests);
        - the (tokens x vocab) product is made for a few texts at a time (at most CHUNK_TOKENS rows):
          bounded memory (a batch of 32 x 256 tokens would be 1 GB at once) and cache-warm maxima;
        - on CPU the max runs row by row with in-place torch.maximum, several times faster than a
          reduction over the token dimension of a (tokens x 30522) slice.
        """
        import torch

        transform, weight, bias = self.decoder
        hidden = transform(real)
        weight_t = weight.t()
        best = None
        start = row = 0
        while row < len(lengths):
            stop, rows = row, 0
            while stop < len(lengths) and (rows == 0 or rows + lengths[stop] <= self.CHUNK_TOKENS):
                rows += lengths[stop]
                stop += 1
            logits = torch.mm(hidden[start : start + rows], weight_t)
            if best is None:
                best = torch.empty((len(lengths), logits.shape[1]), dtype=logits.dtype, device=logits.device)
            offset = 0
            for text in range(row, stop):
                seg = logits[offset : offset + lengths[text]]
                if seg.device.type == "cpu":
                    out = best[text]
                    out.copy_(seg[0])
                    for token in range(1, seg.shape[0]):
                        torch.maximum(out, seg[token], out=out)
                else:
                    best[text] = seg.amax(dim=0)
                offset += lengths[text]
            start += rows
            row = stop
        best = best.float()
        if bias is not None:
            best = best + bias.float()
        return best

    def quantize(self, weights, factor: float):
        """Integer weights round(w * factor) (torch.round: half to even); zeros dropped."""
        import torch

        q = torch.round(weights * factor).to(torch.int32)
        rows, cols = torch.nonzero(q > 0, as_tuple=True)
        vals = q[rows, cols]
        return rows.cpu().numpy(), cols.cpu().numpy(), vals.cpu().numpy()

    def encode_ids(self, token_ids: Sequence[Sequence[int]], factor: float, batch_size: int = 32) -> list[dict[str, int]]:
        """Quantized vectors for tokenized texts, batched by length (order of the input kept).

        A text with no tokens besides specials (empty or whitespace-only) gets an empty vector:
        no text, no evidence, rather than whatever the model expands [CLS][SEP] into.
        """
        out: list[dict[str, int]] = [{} for _ in token_ids]
        order = sorted(range(len(token_ids)), key=lambda i: (len(token_ids[i]), i))
        special = set(self.special_ids)
        todo = [i for i in order if any(t not in special for t in token_ids[i])]
        for start in range(0, len(todo), batch_size):
            chunk = todo[start : start + batch_size]
            rows, cols, vals = self.quantize(self.weights([token_ids[i] for i in chunk]), factor)
            for r, c, v in zip(rows.tolist(), cols.tolist(), vals.tolist()):
                out[chunk[r]][self.vocab[c]] = v
        return out

    def encode(self, texts: Sequence[str], factor: float = DEFAULT_FACTOR, batch_size: int = 32) -> list[dict[str, int]]:
        """Tokenize and encode texts; counts empties, truncations and all-zero vectors."""
        ids, truncated = self.tokenize(texts)
        vectors = self.encode_ids(ids, factor, batch_size)
        self.stats.record(texts, truncated, vectors)
        return vectors

    def encode_float(self, texts: Sequence[str], batch_size: int = 32):
        """Unquantized (n, vocab) weights, for diagnostics and exactness checks."""
        import torch

        ids, _ = self.tokenize(texts)
        parts = [self.weights(ids[i : i + batch_size]).cpu() for i in range(0, len(ids), batch_size)]
        return torch.cat(parts) if parts else torch.zeros((0, len(self.vocab)))


def tokenize(tokenizer: Any, texts: Sequence[str], max_length: int) -> tuple[list[list[int]], list[bool]]:
    """Token ids per text (specials added, truncated to ``max_length``) and whether each was truncated;
    the one tokenization every encoder (PyTorch and ONNX) uses, so their inputs are the same."""
    enc = tokenizer(list(texts), truncation=True, max_length=max_length, add_special_tokens=True)
    truncated = [len(e.overflowing) > 0 for e in enc.encodings] if enc.encodings else [False] * len(texts)
    return enc["input_ids"], truncated
