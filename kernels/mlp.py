"""The memory MLP M(x; W): the function whose weights are the long-term memory.

Weights are per sequence and head: a tuple of `(B, H, d_in, d_out)` matrices, one per layer.
SiLU between layers, none after the last, no biases (paper §3.1: an MLP with `memory_depth` layers).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def mlp_forward(weights: tuple[Tensor, ...], x: Tensor) -> Tensor:
    """M(x): `x` (B, H, T, d_in) -> (B, H, T, d_out)."""
    for i, w in enumerate(weights):
        x = x @ w
        if i < len(weights) - 1:
            x = F.silu(x)
    return x


def silu_backward(grad: Tensor, z: Tensor) -> Tensor:
    """grad · SiLU′(z), SiLU′(z) = σ(z) (1 + z (1 − σ(z))), in one fused kernel."""
    return torch.ops.aten.silu_backward(grad, z)


def silu_curvature(grad: Tensor, z: Tensor) -> Tensor:
    """grad · SiLU″(z), SiLU″(z) = σ(z) (1 − σ(z)) (2 + z (1 − 2σ(z))), for the backward of the memory's own
    gradient; the last factor through the fused sigmoid backward."""
    s = torch.sigmoid(z)
    return torch.ops.aten.sigmoid_backward(torch.addcmul(z, z, s, value=-2).add_(2).mul_(grad), s)
