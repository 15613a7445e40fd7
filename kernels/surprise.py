"""Per-token surprise of the chunked memory: momentary (eq 12) and past (eq 13), for people to look at.

Momentary surprise is the recall loss ℓ(M; x_t) = ‖M(k_t) − v_t‖² at the weights the token meets.
Past surprise is the momentum the token inherits, ‖η_t S_{t−1}‖ (Frobenius norm over all memory
layers): how much recent surprise is still pushing the memory. Per-token momentum is never formed:
within a chunk S_i = β_i S₀ − Σ_j K[i, j] u_j with u_j = a_jᵀ g_j an outer product per layer (g_j with
the layer's step scale ρ in it), so

    ‖S_i‖² = β_i² ‖S₀‖² − 2 β_i Σ_j K[i, j] ⟨S₀, u_j⟩ + Σ_{j, j'} K[i, j] K[i, j'] (a_j·a_j′)(g_j·g_j′)

costs one C × C Gram matrix per layer and chunk.
"""
from __future__ import annotations

import torch
from torch import Tensor

from .chunk import chunk_coefficients, hidden_rows, momentum_scan, step_scale, surprise_grads

State = tuple[Tensor, ...]


def inherited_norms(s: State, keys: list[Tensor], gs: list[Tensor], theta: Tensor, eta: Tensor) -> Tensor:
    """‖S_{i−1}‖, the momentum each token i of one chunk inherits (B, H, C), from S₀ (`s`) and each layer's
    inputs and output gradients."""
    L, beta = momentum_scan(eta)
    K = L * theta.unsqueeze(-2)  # S_i = β_i S₀ − Σ_j K[i, j] u_j
    start = sum(s_l.square().sum((-2, -1)) for s_l in s).unsqueeze(-1)  # ‖S₀‖², (B, H, 1)
    sq = beta.square() * start
    for s_l, a, g in zip(s, keys, gs):
        cross = ((a @ s_l) * g).sum(-1, keepdim=True)  # ⟨S₀, a_jᵀ g_j⟩
        gram = (a @ a.mT) * (g @ g.mT)  # ⟨u_j, u_j′⟩
        sq = sq - 2 * beta * (K @ cross)[..., 0] + ((K @ gram) * K).sum(-1)
    return torch.cat([start, sq[..., :-1]], dim=-1).clamp_min(0).sqrt()


def write(w: State, s: State, keys: list[Tensor], gs: list[Tensor], c: Tensor, gt: Tensor,
          beta: Tensor, keep: Tensor, fbeta: Tensor, anchor: State | None) -> tuple[State, State]:
    """A chunk's write from each layer's inputs `keys` and output gradients `gs` (u_j = a_jᵀ g_j),
    forgetting towards `anchor` (None: zero)."""
    s_new = tuple(beta * s_l - a.mT @ (gt * g) for s_l, a, g in zip(s, keys, gs))  # eq 13
    w_new = [(keep * w_l).addcmul_(fbeta, s_l) - a.mT @ (c * g) for w_l, s_l, a, g in zip(w, s, keys, gs)]  # eq 14
    if anchor is not None:
        w_new = [x.addcmul_(1 - keep, m) for x, m in zip(w_new, anchor)]
    return tuple(w_new), s_new


@torch.no_grad()
def memory_surprise(
    k: Tensor, v: Tensor,
    theta: Tensor, eta: Tensor, alpha: Tensor,
    weights: State, momentum: State,
    chunk_size: int, memorize: bool = True, anchor: State | None = None,
) -> tuple[Tensor, Tensor, State, State]:
    """Momentary and past surprise (B, H, T) of every token, and the state after writing complete chunks.

    Shapes and chunk semantics as in `memory_update`: a token is scored at the weights its chunk starts
    with; a trailing partial chunk is scored but not written. `memorize=False` writes nothing, so every
    chunk is scored against the given state; `anchor` as in `memory_update`. Norms are formed in at least float32.
    """
    work = torch.promote_types(k.dtype, torch.float32)
    up = lambda xs: [x.to(work) for x in xs]  # noqa: E731
    w, s = tuple(weights), tuple(momentum)
    momentary, past = [], []
    for a in range(0, k.shape[2], chunk_size):
        b = min(a + chunk_size, k.shape[2])
        th, et, al = (g[:, :, a:b].to(work) for g in (theta, eta, alpha))
        ins, pre = hidden_rows(w, k[:, :, a:b])
        out = ins[-1] @ w[-1]
        gs, _ = surprise_grads(w, pre, 2 * (out - v[:, :, a:b]))
        gs = [step_scale(x) * g for x, g in zip(ins, gs)]  # each layer's step scale ρ (normalised LMS)
        momentary.append((out - v[:, :, a:b]).square().sum(-1))  # ℓ(M_{t−1}; x_t)   (eq 12)
        past.append(et * inherited_norms(up(s), up(ins), up(gs), th, et))  # ‖η_t S_{t−1}‖   (eq 13)
        if memorize and b - a == chunk_size:
            c, gt, beta, keep, fbeta = (x.to(k.dtype) for x in chunk_coefficients(th, et, al))
            w, s = write(w, s, ins, gs, c[..., None], gt[..., None],
                         *(x[..., None, None] for x in (beta, keep, fbeta)), anchor)
    return torch.cat(momentary, dim=-1), torch.cat(past, dim=-1).to(k.dtype), w, s

