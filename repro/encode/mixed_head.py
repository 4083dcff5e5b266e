"""Exact mixed precision for the MLM head: a bfloat16 screen, then fp32 for the entries that can count.

In a small SPLADE model the vocabulary-sized head (tokens x hidden x 30522) is most of the cost,
and bf16 matrix products run about twice as fast as fp32 ones (CPU AMX/AVX512-bf16, GPU tensor
cores). But bf16 moves weights. The screen uses bf16 only to decide which vocabulary entries can
end up nonzero. Those entries are then recomputed in fp32, so every weight that survives
quantization comes from fp32 arithmetic, as in the plain path.

The bound. Let u = 2^-8 be bf16's unit roundoff. Inputs x (a token's hidden state) and w (a
vocabulary row) are rounded to bf16. Their products are exact in fp32 and are summed in fp32
over H terms; the result is rounded to bf16 once. Let S = sum|x_i w_i| <= ||x|| ||w||
(Cauchy-Schwarz) and gamma = H 2^-24. Then, against the fp32 product L32 (whose own error is at
most gamma S):

    |L16 - L32| <= (2u + u^2 + 2.1 gamma) S + u/(1-u) |L16|

x + c|x| increases with x, so the largest bound over a text's tokens comes from the token with the
largest L16. That gives, per (text, vocabulary entry),

    max_t L32 <= m16 + c|m16| + a max_t||x_t|| ||w||

with m16 = max_t L16. An entry whose bound plus its bias stays below expm1(0.5 / factor)
quantizes to 0 in fp32 as well, so it needs no recomputation. Every other entry of the text is
recomputed exactly.

Both products go through the encoder's CPU linear kernel (repro.encode.cpu_linear). With oneDNN,
the CPU default, an entry gets the same bits whether it is computed in the fp32 head's full product
or in the recompute's product over the gathered rows, so the two heads agree exactly
(tests/test_cpu_linear.py). With BLAS (MKL), which rounds by the shape of the call, a quantized
weight can differ from the plain fp32 path by one unit, only where w x factor lies within fp32's
own summation-order error of a .5 boundary. tests/test_mixed_precision.py counts these cases and
checks that each one is such a flip.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Sequence
from typing import Any

from repro.encode.cpu_linear import prepared, product

BF16_UNIT = 2.0**-8  # unit roundoff of bfloat16: 8 significand bits
FP32_UNIT = 2.0**-24
THRESHOLD_MARGIN = 1e-4  # relative slack on the zero threshold, for the fp32 bias addition and log1p


PRECISIONS = ("auto", "fp32", "mixed")
# auto = the head measured faster (docs/speed.md, benchmarks/bench_encode.py), by the CPU's bf16 unit:
# - AMX tiles (a 2-core Xeon): the screen pays off for a wide hidden state (BERT-base-sized, 768: 13%
#   faster) and loses for a narrow one (splade-tiny, 128: 26% slower), fp32 GEMMs being fast there
#   (measured before the int16 screen max and the 512-row screen; not re-measured since);
# - AVX512-bf16 without AMX (a 2-core AMD EPYC): the screen wins at both widths. With MKL's fp32 GEMMs
#   (half the Xeon's rate): splade-tiny 2.26x, BERT-base-sized 1.23x faster, with the int16 max. With
#   oneDNN's (repro.encode.cpu_linear, 2026-12-08): splade-tiny 0.668 s vs 1.03 s, BERT-base-sized
#   2.50 s vs 2.84 s (docs/benchmarks.md).
# GPUs stay on fp32 until benchmarks/bench_gpu.py has measured them.
AUTO_MIXED_MIN_HIDDEN = {"amx": 512, "avx512_bf16": 0}
# Token rows per bf16 screen product: 512 rows (31 MB at vocab 30522) fit a 32 MB L3 for the max that
# follows; on the AMD EPYC 1.46x faster than 1024 rows for splade-tiny, equal for BERT-base-sized
# (docs/benchmarks.md, 2026-12-04). On the Xeon, 64 rows had beaten 1024 for splade-tiny.
SCREEN_ROWS = 512


def check_precision(precision: str) -> str:
    """The precision name, or one line naming the choices."""
    if precision not in PRECISIONS:
        from repro.errors import ReproError

        raise ReproError(f"unknown precision {precision!r} (choose from {', '.join(PRECISIONS)})")
    return precision


def cpu_bf16_unit() -> str | None:
    """This CPU's bf16 multiplier: ``amx`` (tiles), ``avx512_bf16`` (vector dot products) or None."""
    import torch

    for unit, probe in (("amx", "_is_amx_tile_supported"), ("avx512_bf16", "_is_avx512_bf16_supported")):
        check = getattr(torch.cpu, probe, None)
        if check is not None and check():
            return unit
    return None


def resolve_precision(precision: str, hidden_size: int, device_type: str) -> str:
    """``fp32`` or ``mixed``: the one rule for what ``auto`` means (the weights are the same either way)."""
    check_precision(precision)
    if precision != "auto":
        return precision
    unit = cpu_bf16_unit() if device_type == "cpu" else None
    if unit is not None and hidden_size >= AUTO_MIXED_MIN_HIDDEN[unit]:
        return "mixed"
    return "fp32"


def zero_threshold(factor: float) -> float:
    """The largest max-logit-plus-bias that still quantizes to 0: round(log1p(relu(v)) x factor) = 0."""
    return math.expm1(0.5 / factor) * (1 - THRESHOLD_MARGIN)


def bound_coefficients(hidden_size: int) -> tuple[float, float]:
    """(a, c) of the bound above, for products over ``hidden_size`` terms."""
    u = BF16_UNIT
    return 2 * u + u * u + 2.1 * hidden_size * FP32_UNIT, u / (1 - u)


@contextlib.contextmanager
def _full_precision_reductions(device_type: str) -> Iterator[None]:
    """On CUDA, bf16 products may use bf16 partial sums by default, which the bound does not cover."""
    if device_type != "cuda":
        yield
        return
    import torch

    matmul = torch.backends.cuda.matmul
    before = matmul.allow_bf16_reduced_precision_reduction
    matmul.allow_bf16_reduced_precision_reduction = False
    try:
        yield
    finally:
        matmul.allow_bf16_reduced_precision_reduction = before


class MixedHead:
    """Per-text max over tokens of ``hidden @ weight.T`` (+ bias): exact fp32 wherever it can be nonzero."""

    def __init__(self, weight: Any, bias: Any | None, kernel: str = "blas") -> None:
        """``kernel``: the encoder's (repro.encode.cpu_linear), for the screen and the recompute alike."""
        import torch

        self.kernel = kernel
        self.weight = weight.float()
        self.weight16 = prepared(weight.to(torch.bfloat16), kernel)
        self.row_norms = self.weight.norm(dim=1)
        self.bias = bias.float() if bias is not None else torch.zeros(weight.shape[0], device=weight.device)
        self.a, self.c = bound_coefficients(weight.shape[1])
        # Entries whose weight row is not finite, or whose bias is NaN or +inf, would fail the screen's
        # test and vanish as zeros: they are always recomputed, so they come out as fp32 gives them
        # (a -inf bias, which masks an entry, is screened out correctly and stays -inf).
        self.always = ~torch.isfinite(self.weight).all(dim=1) | torch.isnan(self.bias) | (self.bias == float("inf"))
        self.always = self.always if bool(self.always.any()) else None
        self.recomputed = 0  # (text, entry) pairs recomputed in fp32, for benchmarks

    def best(self, hidden: Any, lengths: Sequence[int], factor: float, chunk_tokens: int = SCREEN_ROWS) -> Any:
        """(texts, vocab) fp32: the exact max logit + bias where it can quantize to nonzero, -inf elsewhere."""
        import torch

        threshold = zero_threshold(factor)
        out = torch.full((len(lengths), self.weight.shape[0]), float("-inf"), device=hidden.device)
        with _full_precision_reductions(hidden.device.type):
            for row, stop, start, rows in text_chunks(lengths, chunk_tokens):
                self._chunk(hidden[start : start + rows], lengths[row:stop], out[row:stop], threshold)
        # So would a NaN or inf hidden state: its text is marked NaN, as fp32's head leaves it.
        # (A NaN that bits_max might lose comes from an overflow, which makes xmax x row norm inf too.)
        finite = torch.isfinite(hidden).all(dim=1)
        if not bool(finite.all()):
            for text, (offset, n) in enumerate(zip(_offsets(lengths), lengths)):
                if not bool(finite[offset : offset + n].all()):
                    out[text] = float("nan")
        return out

    def screen_max(self, screen: Any, lengths: Sequence[int]) -> Any:
        """The screen's per-text max (benchmarks/bench_encode.py sets torch.amax's in its place)."""
        return bits_max(screen, lengths)

    def _chunk(self, x: Any, lengths: Sequence[int], out: Any, threshold: float) -> None:
        import torch

        screen = product(x.to(torch.bfloat16), self.weight16, self.kernel)  # (rows, vocab) bf16
        norms = x.norm(dim=1)
        m16 = self.screen_max(screen, lengths).float()  # (texts, vocab)
        xmax = torch.stack([norms[o : o + n].max() for o, n in zip(_offsets(lengths), lengths)])
        upper = m16 + self.c * m16.abs() + self.a * xmax.unsqueeze(1) * self.row_norms.unsqueeze(0) + self.bias
        # Not `upper >= threshold`: a NaN in the screen (finite inputs whose products overflow to inf
        # and -inf) must be recomputed, as fp32 gives NaN there, not screened out as a zero.
        mask = ~(upper < threshold)  # (texts, vocab)
        wanted = mask.any(dim=0) if self.always is None else mask.any(dim=0) | self.always
        union = wanted.nonzero(as_tuple=True)[0]  # one product for the chunk: faster than one per text
        if union.numel() == 0:
            return
        exact = product(x, self.weight[union], self.kernel)  # (rows, |union|) fp32
        out[:, union] = segment_max(exact, lengths) + self.bias[union]
        self.recomputed += int(mask.sum())


def text_chunks(lengths: Sequence[int], limit: int) -> Iterator[tuple[int, int, int, int]]:
    """(first text, end text, first row, rows) of runs of whole consecutive texts holding at most
    ``limit`` token rows (a longer text is a run of its own): how every head bounds its
    (tokens x vocab) products."""
    start = row = 0
    while row < len(lengths):
        stop, rows = row, 0
        while stop < len(lengths) and (rows == 0 or rows + lengths[stop] <= limit):
            rows += lengths[stop]
            stop += 1
        yield row, stop, start, rows
        start += rows
        row = stop


def _offsets(lengths: Sequence[int]) -> list[int]:
    out, total = [], 0
    for n in lengths:
        out.append(total)
        total += n
    return out


def segment_max(matrix: Any, lengths: Sequence[int], out: Any | None = None) -> Any:
    """Max over each text's rows (one amax per text), into ``out`` (texts x vocab) when given."""
    import torch

    if out is None:
        out = torch.empty((len(lengths), matrix.shape[1]), dtype=matrix.dtype, device=matrix.device)
    for text, (offset, n) in enumerate(zip(_offsets(lengths), lengths)):
        torch.amax(matrix[offset : offset + n], dim=0, out=out[text])
    return out


def bits_max(matrix: Any, lengths: Sequence[int], out: Any | None = None) -> Any:
    """segment_max of a 16-bit float matrix without NaN (the bf16 screen), through int16 views.

    Against torch's bf16 amax, benchmarks/bench_encode.py times the whole mixed head with each, on
    the AMD EPYC: 1.33x faster end to end in one 2026-12-04 run, equal within noise in four
    2026-12-07 runs (docs/benchmarks.md). It is kept for that one host, and it costs nothing where it
    does not help. Read as int16, a float's bits order the
    non-negative floats as the floats do (+0 lowest) and put every negative float below them, in
    reverse (larger magnitude, larger int). So where a column holds anything >= +0 the int16 max is
    the float max; where all is negative the float max has the smallest magnitude, the int16 min.
    The same value as a float max (a column holding both -0 and +0 gives +0). NaN is not ordered
    this way (a negative NaN would be lost): only for inputs known to be free of it.
    """
    import torch

    if out is None:
        out = torch.empty((len(lengths), matrix.shape[1]), dtype=matrix.dtype, device=matrix.device)
    if matrix.element_size() != 2 or out.dtype != matrix.dtype or not matrix.is_floating_point():
        raise TypeError(f"bits_max takes a 16-bit float matrix and an out of its dtype, not {matrix.dtype}/{out.dtype}")
    bits = matrix.view(torch.int16)
    high = out.view(torch.int16)
    low = torch.empty_like(high)
    for text, (offset, n) in enumerate(zip(_offsets(lengths), lengths)):
        rows = bits[offset : offset + n]
        torch.amax(rows, dim=0, out=high[text])
        torch.amin(rows, dim=0, out=low[text])
    torch.where(high >= 0, high, low, out=high)
    return out
