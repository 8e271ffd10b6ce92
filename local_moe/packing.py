"""CPU inference: weights pre-packed into oneDNN's blocked layout.

A decode step multiplies one row (or a few) by every weight it touches, so CPU decode speed is how
fast the matmul kernel streams weights from memory. The stock `F.linear` kernels stream well below
what the memory system delivers; the same oneDNN inner product on a weight reordered once into its
preferred blocked layout streams faster (the figures, and what packing costs prefill, are in
docs/decisions/0008-local-moe-runtime.md and bench/RESULTS.md).

Results match `F.linear` (bitwise in bf16, ~1e-7 relative in fp32). A packed model drops the
stacked expert tensors (so memory does not double), and prefill then runs per-expert packed GEMMs
instead of `grouped_mm`. Packing is inference-only: packed weights are opaque tensors outside the
state dict, autograd does not reach them, and they cannot move devices. `load_model` packs on CPU
when the smoke test below passes (oneDNN present and working for the dtype); anything else -- CUDA,
a torch without oneDNN, fp16 -- keeps the plain `F.linear` / `grouped_mm` path unchanged.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import nn


def pack_weight(weight: torch.Tensor) -> torch.Tensor:
    """[out, in] linear weight -> oneDNN blocked layout (a copy; the original can be freed)."""
    return torch.ops.mkldnn._reorder_linear_weight(weight.detach().contiguous(), None)


def packed_linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """`F.linear` for a weight from `pack_weight`; x is [..., in] (any leading dims)."""
    return torch.ops.mkldnn._linear_pointwise(x.contiguous(), weight, bias, "none", [], "")


@functools.cache
def can_pack(device: torch.device, dtype: torch.dtype) -> bool:
    """Whether packed linears work here: CPU, oneDNN built in, and a tiny product matches F.linear."""
    if device.type != "cpu" or dtype not in (torch.float32, torch.bfloat16):
        return False
    if not (torch.backends.mkldnn.enabled and torch.backends.mkldnn.is_available()):
        return False
    try:
        with torch.no_grad():
            w = torch.randn(24, 16).to(dtype)
            x = torch.randn(3, 16).to(dtype)
            got = packed_linear(x, pack_weight(w))
            return torch.allclose(got.float(), F.linear(x, w).float(), rtol=1e-2, atol=1e-2)
    except Exception:  # an op missing or unsupported on this build/CPU: keep the plain path
        return False


class PackedLinear(nn.Module):
    """Drop-in inference replacement for an `nn.Linear`, holding its weight packed."""

    def __init__(self, linear: nn.Linear):
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.packed = pack_weight(linear.weight)  # a plain attribute: not a parameter or buffer
        self.bias = linear.bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return packed_linear(x, self.packed, self.bias)


def pack_model(model: nn.Module, skip: tuple[str, ...] = ()) -> None:
    """Replace every `nn.Linear` (except names ending in `skip`) with a `PackedLinear`, and pack the
    routed experts of every module that has a `pack()` method. Call once, after loading."""
    for name, module in list(model.named_modules()):
        for child_name, child in list(module.named_children()):
            full = f"{name}.{child_name}" if name else child_name
            if isinstance(child, nn.Linear) and not full.endswith(skip):
                setattr(module, child_name, PackedLinear(child))
        if hasattr(module, "pack") and callable(module.pack):
            module.pack()
