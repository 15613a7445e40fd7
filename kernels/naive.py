"""Ground truth for the memory update: one token at a time, gradients by autograd.

Paper §3.1–3.2, with the chunked semantics of eqs 16–18: the gradient of every token in a chunk is
taken at the weights the chunk started with, momentum and forgetting then advance token by token.
Each token's gradient for a layer is scaled by ρ = 1 / max(1, ‖a‖²) of that layer's input a (normalised
LMS, see `chunk.step_scale`), a constant for the outer gradients.
Readable rather than fast; every fast path is tested against this loop.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .mlp import mlp_forward


def memory_naive(
    q: Tensor, k: Tensor, v: Tensor,
    theta: Tensor, eta: Tensor, alpha: Tensor,
    weights: tuple[Tensor, ...], momentum: tuple[Tensor, ...],
    chunk_size: int, anchor: tuple[Tensor, ...] | None = None,
) -> tuple[Tensor, tuple[Tensor, ...], tuple[Tensor, ...]]:
    """Retrieve `M(q_t)` at each chunk's starting weights and memorise every complete chunk.

    Shapes: q, k, v (B, H, T, D); theta, eta, alpha (B, H, T); weights, momentum: per layer
    (B, H, d_in, d_out). A trailing partial chunk is retrieved but not memorised (the caller keeps it
    for the next call). Returns (y, weights, momentum).
    """
    outer_grad = torch.is_grad_enabled()
    T = q.shape[2]
    w, s = list(weights), list(momentum)
    m = (0.0,) * len(w) if anchor is None else anchor
    ys = []
    for start in range(0, T, chunk_size):
        end = min(start + chunk_size, T)
        ys.append(mlp_forward(tuple(w), q[:, :, start:end]))
        if end - start < chunk_size:
            break
        w0 = [x if x.requires_grad else x.detach().requires_grad_() for x in w]
        for t in range(start, end):
            a, rho = k[:, :, t : t + 1].detach(), []  # each layer's input, for its step scale
            for w_i in w0:
                rho.append(1 / a.pow(2).sum((-2, -1), keepdim=True).clamp_min(1))  # ρ = 1 / max(1, ‖a‖²)
                a = F.silu(a @ w_i.detach())
            with torch.enable_grad():
                err = mlp_forward(tuple(w0), k[:, :, t : t + 1]) - v[:, :, t : t + 1]
                loss = err.pow(2).sum()  # ℓ(M; x_t) = ‖M(k_t) − v_t‖²   (eq 12)
                grads = torch.autograd.grad(loss, w0, create_graph=outer_grad)
            th, et, al = (g[:, :, t, None, None] for g in (theta, eta, alpha))
            s = [et * s_i - th * r * g for s_i, r, g in zip(s, rho, grads)]  # S_t = η_t S_{t−1} − θ_t ρ ∇ℓ  (eq 13)
            # M_t = (1 − α_t) M_{t−1} + α_t anchor + S_t  (eq 14, with the paper's anchor 0)
            w = [(1 - al) * w_i + al * m_i + s_i for w_i, m_i, s_i in zip(w, m, s)]
        if not outer_grad:
            w, s = [x.detach() for x in w], [x.detach() for x in s]
    return torch.cat(ys, dim=2), tuple(w), tuple(s)
