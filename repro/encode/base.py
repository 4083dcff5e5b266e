"""What every SPLADE encoder shares, written once: tokenization, length clamping, batching by length,
the empty-text rule, special-token removal, half-even quantization and the counts.

An encoder (PyTorch MLM, ONNX graph, inference-free static table) only supplies
``weights_ids(batch of token-id lists) -> (batch, vocab) float weights``; everything that decides
which integers end up in a vector lives here, so two runtimes cannot drift apart in their rules.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from repro import defaults
from repro.errors import NonFiniteWeightsError

log = logging.getLogger(__name__)


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


def clamp_max_length(requested: int | None, default: int, positions: int | None) -> int:
    """The max length actually used: the requested one (else ``default``), never past the model's
    position embeddings (512 when the config does not say); below 2 nothing but [CLS][SEP] fits."""
    limit = positions if positions and positions > 0 else defaults.MAX_POSITIONS
    value = default if requested is None else requested
    defaults.check_max_length(int(value), "max length")
    if value > limit:
        if requested is not None:
            log.warning("max length %d is past the model's %d position embeddings; using %d", value, limit, limit)
        value = limit
    return int(value)


def tokenize(tokenizer: Any, texts: Sequence[str], max_length: int, *, special: bool = True,
             prompt: str = "") -> tuple[list[list[int]], list[bool]]:
    """Token ids per text (``prompt + text``, specials added unless ``special=False``, truncated to
    ``max_length``) and whether each was truncated: the one tokenization of every encoder."""
    items = [prompt + t for t in texts] if prompt else list(texts)
    backend = getattr(tokenizer, "backend_tokenizer", None) if getattr(tokenizer, "is_fast", False) else None
    if backend is not None:
        # The Rust tokenizer with the truncation transformers' __call__ would set: the same ids
        # (tests/test_encoder_base.py), without its per-call Python work, which dominates a short query.
        backend.no_padding()
        backend.enable_truncation(max_length, stride=0, strategy="longest_first",
                                  direction=getattr(tokenizer, "truncation_side", "right"))
        encodings = backend.encode_batch(items, add_special_tokens=special)
        return [e.ids for e in encodings], [len(e.overflowing) > 0 for e in encodings]
    enc = tokenizer(items, truncation=True, max_length=max_length, add_special_tokens=special)
    truncated = [len(e.overflowing) > 0 for e in enc.encodings] if enc.encodings else [False] * len(texts)
    return enc["input_ids"], truncated


def quantize(weights: Any, factor: float):
    """(rows, cols, values) of the positive integers round(w * factor), half to even, in float32.

    Works on a torch tensor (on its device, so only nonzeros travel to the host) or a numpy array;
    both multiply in float32 and round half to even, so they give the same integers.
    """
    import numpy as np

    if isinstance(weights, np.ndarray):
        q = np.rint(weights.astype(np.float32) * np.float32(factor)).astype(np.int64)
        rows, cols = np.nonzero(q > 0)
        return rows, cols, q[rows, cols]
    import torch

    q = torch.round(weights.float() * factor).to(torch.int64)
    rows, cols = torch.nonzero(q > 0, as_tuple=True)
    vals = q[rows, cols]
    return rows.cpu().numpy(), cols.cpu().numpy(), vals.cpu().numpy()


def _non_finite_row(weights: Any) -> int | None:
    """The first row holding NaN or +-inf, or None (quantization would turn those into zeros)."""
    import numpy as np

    if isinstance(weights, np.ndarray):
        bad = np.flatnonzero(~np.isfinite(weights).all(axis=1))
        return int(bad[0]) if bad.size else None
    import torch

    bad = torch.nonzero(~torch.isfinite(weights).all(dim=1))
    return int(bad[0, 0]) if bad.numel() else None


def refuse_non_finite(weights: Any, positions: Sequence[int]) -> None:
    """Raise NonFiniteWeightsError for the first row of ``weights`` holding NaN or +-inf, naming
    its text by ``positions[row]`` (its place in the encoder call), before quantization drops it."""
    bad = _non_finite_row(weights)
    if bad is not None:
        raise NonFiniteWeightsError(positions[bad])


class EncoderBase:
    """Texts -> quantized {token: weight}; subclasses set the attributes below and ``weights_ids``.

    - ``vocab``: token string per output column; ``special_ids``: columns removed from every vector;
    - ``max_length``, ``tokenizer``, ``add_special``: how texts become ids; ``prompt``: prepended text;
    - ``no_text_ids``: ids that are not text (a text with only these gets an empty vector).
    """

    vocab: list[str]
    special_ids: list[int]
    tokenizer: Any
    max_length: int
    add_special: bool = True
    prompt: str = ""

    def __init__(self) -> None:
        self.stats = EncodeCounts()

    def weights_ids(self, batch_ids: Sequence[Sequence[int]]) -> Any:
        """Float (batch, vocab) weights of one padded batch; torch tensor or numpy array."""
        raise NotImplementedError

    def tokenize(self, texts: Sequence[str]) -> tuple[list[list[int]], list[bool]]:
        """Token ids per text and whether each was truncated."""
        return tokenize(self.tokenizer, texts, self.max_length, special=self.add_special, prompt=self.prompt)

    def _zero_specials(self, weights: Any) -> Any:
        """Special-token columns set to 0 ([CLS], [SEP], ... are removed from every vector)."""
        if not self.special_ids:
            return weights
        import numpy as np

        if isinstance(weights, np.ndarray):
            weights[:, self.special_ids] = 0.0
            return weights
        import torch

        index = torch.tensor(self.special_ids, dtype=torch.long, device=weights.device)
        return weights.index_fill(1, index, 0.0)  # out of place: works on inference-mode tensors

    def encode_ids(self, token_ids: Sequence[Sequence[int]], factor: float, batch_size: int = defaults.BATCH_SIZE) -> list[dict[str, int]]:
        """Quantized vectors for tokenized texts, batched by length (order of the input kept).

        A text with no tokens besides specials (empty or whitespace-only) gets an empty vector:
        no text, no evidence, rather than whatever the model expands [CLS][SEP] into.
        """
        out: list[dict[str, int]] = [{} for _ in token_ids]
        special = set(self.special_ids)
        order = sorted(range(len(token_ids)), key=lambda i: (len(token_ids[i]), i))
        todo = [i for i in order if any(t not in special for t in token_ids[i])]
        for start in range(0, len(todo), batch_size):
            chunk = todo[start : start + batch_size]
            weights = self._zero_specials(self.weights_ids([token_ids[i] for i in chunk]))
            refuse_non_finite(weights, chunk)
            rows, cols, vals = quantize(weights, factor)
            for r, c, v in zip(rows.tolist(), cols.tolist(), vals.tolist()):
                out[chunk[r]][self.vocab[c]] = v
        return out

    def encode(self, texts: Sequence[str], factor: float = defaults.DOC_FACTOR, batch_size: int = defaults.BATCH_SIZE,
               *, names: Sequence[str] | None = None, kind: str = "text") -> list[dict[str, int]]:
        """Tokenize and encode texts; counts empties, truncations and all-zero vectors. ``names``
        (ids) and ``kind`` ("document", "query") name a text whose weights are not finite."""
        ids, truncated = self.tokenize(texts)
        try:
            vectors = self.encode_ids(ids, factor, batch_size)
        except NonFiniteWeightsError as err:
            what = f"{kind} {names[err.index]!r}" if names is not None else f"{kind} {err.index + 1}"
            source = getattr(self, "source", None)
            raise NonFiniteWeightsError(err.index, what, source.root if source is not None else None) from err
        self.stats.record(texts, truncated, vectors)
        return vectors
