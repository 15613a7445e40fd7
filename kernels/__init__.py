"""The memory-update math of Titans (paper §3), shaped like flash-linear-attention's `ops/<op>/`.

`naive` is the ground truth (token by token, autograd gradients); `chunk` is the batched PyTorch path;
`memory_update` is the one entry point the model calls.
"""
from __future__ import annotations

from torch import Tensor

from .chunk import memory_chunk
from .mlp import mlp_forward
from .naive import memory_naive

BACKENDS = ("auto", "chunk", "naive")


def memory_update(
    q: Tensor, k: Tensor, v: Tensor,
    theta: Tensor, eta: Tensor, alpha: Tensor,
    weights: tuple[Tensor, ...], momentum: tuple[Tensor, ...],
    chunk_size: int, backend: str = "auto",
) -> tuple[Tensor, tuple[Tensor, ...], tuple[Tensor, ...]]:
    """Retrieve M(q_t) at each chunk's starting weights and memorise every complete chunk.

    q, k, v: (B, H, T, D); theta, eta, alpha: (B, H, T) in (0, 1); weights and momentum: one
    (B, H, d_in, d_out) tensor per memory layer. Returns (y, weights, momentum). `backend` picks the
    implementation: "auto" (the fastest for the device), "chunk" or "naive".
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    fn = memory_naive if backend == "naive" else memory_chunk
    return fn(q, k, v, theta, eta, alpha, weights, momentum, chunk_size)


__all__ = ["memory_update", "memory_chunk", "memory_naive", "mlp_forward", "BACKENDS"]
