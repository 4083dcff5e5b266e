"""The encoder's fp32 Linear layers through oneDNN on the CPU, instead of torch's BLAS (MKL).

Why: torch's CPU build sends ``nn.Linear`` to MKL's sgemm. On the 2-core AMD EPYC here that runs
the encoders' product shapes at 115-183 GFLOP/s against 265-424 for oneDNN's fp32 matmul (both in
torch's own wheel; ``benchmarks/bench_encode.py --linear-kernels``, docs/benchmarks.md 2026-12-08),
so the BERT-base-sized transformer encoder runs about 2x faster. The arithmetic stays fp32; only the
order in which each dot product is summed changes, so a quantized weight can move by one unit only
where w x factor lies at a .5 boundary (tests/test_cpu_linear.py counts those). oneDNN also
rounds a row the same whatever the number of rows in the call, which MKL does not.
sentence-transformers runs torch's default, MKL.

How: ``torch.ops.mkldnn._linear_pointwise``, the op torch's own compiler emits for a frozen CPU
linear, with each weight reordered once into oneDNN's layout. It is a private op, so before any
layer is switched its presence and one small product are checked against ``F.linear``; where
either fails the layers stay as they are and the kernel reported is ``blas``.

``REPRO_CPU_LINEAR=blas`` keeps torch's default path (the benchmarks' same-run baseline).
Inference only: the reordered weights take no gradient, so training never goes through here.
"""

from __future__ import annotations

import functools
import os
from typing import Any

ENV = "REPRO_CPU_LINEAR"
KERNELS = ("onednn", "blas")


def wanted_kernel() -> str:
    """The kernel asked for ($REPRO_CPU_LINEAR, default onednn), or one line naming the choices."""
    value = os.environ.get(ENV, "onednn").strip().lower() or "onednn"
    if value not in KERNELS:
        from repro.errors import ReproError

        raise ReproError(f"{ENV}={value!r} is not a CPU linear kernel (choose from {', '.join(KERNELS)})")
    return value


@functools.lru_cache(maxsize=1)
def onednn_works() -> bool:
    """Whether this torch has the oneDNN linear op and it agrees with F.linear on a small product."""
    import torch

    try:
        if not torch.backends.mkldnn.is_available():
            return False
        op, reorder = torch.ops.mkldnn._linear_pointwise, torch.ops.mkldnn._reorder_linear_weight
        gen = torch.Generator().manual_seed(0)
        x, w, b = (torch.randn(*shape, generator=gen) for shape in ((5, 48), (40, 48), (40,)))
        with torch.inference_mode():
            got = op(x, reorder(w), b, "none", [], "")
            want = torch.nn.functional.linear(x, w, b)
            fused = op(x, reorder(w), b, "gelu", [], "none")
        return got.shape == want.shape and bool(torch.allclose(got, want, rtol=1e-5, atol=1e-5)) \
            and bool(torch.allclose(fused, torch.nn.functional.gelu(got), rtol=1e-6, atol=1e-6))
    except (AttributeError, RuntimeError, NotImplementedError):
        return False


@functools.lru_cache(maxsize=1)
def _onednn_linear_class() -> type:
    """The module class, made once (torch is imported only when layers are switched)."""
    import torch

    class OneDnnLinear(torch.nn.Module):
        """An inference-only nn.Linear whose product runs in oneDNN (weight reordered once)."""

        def __init__(self, linear: torch.nn.Linear, post_op: str = "none") -> None:
            super().__init__()
            self.in_features, self.out_features = linear.in_features, linear.out_features
            self.post_op = post_op  # "gelu": the exact (erf) GELU applied by oneDNN to the product
            self.register_buffer("packed", prepared(linear.weight, "onednn"), persistent=False)
            bias = linear.bias.detach() if linear.bias is not None else None
            self.register_buffer("bias", bias, persistent=False)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if self.post_op == "gelu":
                return torch.ops.mkldnn._linear_pointwise(x, self.packed, self.bias, "gelu", [], "none")
            return torch.ops.mkldnn._linear_pointwise(x, self.packed, self.bias, "none", [], "")

        def extra_repr(self) -> str:
            return f"in_features={self.in_features}, out_features={self.out_features}, kernel=onednn, then={self.post_op}"

    return OneDnnLinear


# (Linear, activation) attribute pairs of transformers' feed-forward blocks: BertIntermediate (and
# RoBERTa/ELECTRA's copies), BERT's MLM head transform, DistilBERT's FFN.
_LINEAR_THEN_ACTIVATION = (("dense", "intermediate_act_fn"), ("dense", "transform_act_fn"), ("lin1", "activation"))


def _is_exact_gelu(module: Any) -> bool:
    """nn.GELU() or transformers' GELUActivation over F.gelu: the erf GELU, which oneDNN's post-op
    computes to the same bits (checked by onednn_works and tests/test_cpu_linear.py)."""
    import torch

    if type(module) is torch.nn.GELU:
        return module.approximate == "none"
    return type(module).__name__ == "GELUActivation" and getattr(module, "act", None) is torch.nn.functional.gelu


def will_route(device_type: str, float32: bool) -> bool:
    """Whether the layers are to be switched: oneDNN asked for ($REPRO_CPU_LINEAR), on the CPU, in
    fp32 (autocast dtypes would not cast this op; CUDA has its own kernels), and the op working."""
    return wanted_kernel() == "onednn" and device_type == "cpu" and float32 and onednn_works()


def _is_fp32_linear(module: Any) -> bool:
    import torch

    return type(module) is torch.nn.Linear and module.weight.dtype == torch.float32


def route_linears(modules: list[Any]) -> None:
    """Switch every fp32 nn.Linear inside ``modules`` to oneDNN, in place (callers ask will_route first)."""
    import torch

    cls = _onednn_linear_class()
    for root in modules:
        for parent in list(root.modules()):
            # Linear then exact GELU: one oneDNN call (the GELU pass was 10% of a BERT-base encode).
            for linear, activation in _LINEAR_THEN_ACTIVATION:
                lin, act = getattr(parent, linear, None), getattr(parent, activation, None)
                if _is_fp32_linear(lin) and _is_exact_gelu(act):
                    setattr(parent, linear, cls(lin, "gelu"))
                    setattr(parent, activation, torch.nn.Identity())
            for name, child in list(parent.named_children()):
                if _is_fp32_linear(child):
                    setattr(parent, name, cls(child))


def prepared(weight: Any, kernel: str) -> Any:
    """``weight`` (out x in) as ``product`` takes it: reordered once for oneDNN (same size, same
    bits out), as is for BLAS."""
    import torch

    if kernel != "onednn":
        return weight
    with torch.inference_mode():
        return torch.ops.mkldnn._reorder_linear_weight(weight.detach())


def product(x: Any, weight: Any, kernel: str, out: Any | None = None) -> Any:
    """``x @ weight.T`` (no bias) with the layers' kernel: how the MLM heads multiply, so the fp32
    head and the mixed head's fp32 recompute sum every entry in one order. oneDNN gives an entry the
    same bits whatever the rows, the columns gathered or the weight's layout (tests/test_cpu_linear.py);
    it takes no ``out`` (BLAS writes into ``out`` when given)."""
    import torch

    if kernel == "onednn":
        return torch.ops.mkldnn._linear_pointwise(x, weight, None, "none", [], "")
    return torch.mm(x, weight.t(), out=out) if out is not None else torch.mm(x, weight.t())
