"""The memory-update math of Titans (paper §3), shaped like flash-linear-attention's `ops/<op>/`.

`naive` is the ground truth (token by token, autograd gradients); `chunk` is the batched PyTorch path
with its own backward (CPU, or any device); `triton_chunk` holds the fused GPU kernels, imported only
when used so that the package works without Triton. `memory_update` is the one entry point.
"""
from __future__ import annotations

import importlib.util

from torch import Tensor

from .chunk import memory_chunk
from .conv import causal_conv_silu
from .mlp import mlp_forward
from .naive import memory_naive
from .surprise import memory_surprise

BACKENDS = ("auto", "chunk", "naive", "triton")
TRITON_DEPTHS = (1, 2)  # memory depths the Triton kernels cover


def resolve_backend(q: Tensor, weights: tuple[Tensor, ...], backend: str = "auto") -> str:
    """The implementation `memory_update` runs: "auto" means Triton for CUDA tensors when Triton is
    installed and covers the depth, the chunk path otherwise."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if backend != "auto":
        return backend
    triton_ok = q.is_cuda and len(weights) in TRITON_DEPTHS and importlib.util.find_spec("triton") is not None
    return "triton" if triton_ok else "chunk"


def memory_update(
    q: Tensor, k: Tensor, v: Tensor,
    theta: Tensor, eta: Tensor, alpha: Tensor,
    weights: tuple[Tensor, ...], momentum: tuple[Tensor, ...],
    chunk_size: int, backend: str = "auto", anchor: tuple[Tensor, ...] | None = None,
) -> tuple[Tensor, tuple[Tensor, ...], tuple[Tensor, ...]]:
    """Retrieve M(q_t) at each chunk's starting weights and memorise every complete chunk.

    q, k, v: (B, H, T, D); theta, eta, alpha: (B, H, T) in (0, 1); weights and momentum: one
    (B, H, d_in, d_out) tensor per memory layer. Returns (y, weights, momentum). `backend` picks the
    implementation: "auto" (the fastest for the device), "chunk", "naive" or "triton". `anchor` (per
    layer, broadcastable to the weights, e.g. M_0 of shape (H, d_in, d_out)) is what forgetting pulls
    the weights towards: M_t = (1 − α_t) M_{t−1} + α_t anchor + S_t; None is the paper's zero.
    """
    backend = resolve_backend(q, weights, backend)
    if backend == "triton":
        from .triton_chunk import memory_triton  # lazy: Triton is optional (no wheels for macOS)
        fn = memory_triton
    else:
        fn = memory_naive if backend == "naive" else memory_chunk
    return fn(q, k, v, theta, eta, alpha, weights, momentum, chunk_size, anchor)


__all__ = ["memory_update", "causal_conv_silu", "memory_chunk", "memory_naive", "memory_surprise", "mlp_forward", "resolve_backend", "BACKENDS"]
