"""The chunked memory update in PyTorch: batched matmuls, one step per chunk (paper eqs 16–18).

Within a chunk every per-token gradient is taken at the chunk's starting weights W₀, so the momentum
scan and the forgetting product collapse into two scalar weights per token:

    S_C = β_C S₀ − Σ_j γ_j θ_j u_j                  γ_j = ∏_{j<m≤C} η_m,  β_C = ∏_{m≤C} η_m
    W_C = A_C W₀ + (Σ_i f_i β_i) S₀ − Σ_j c_j u_j    f_i = ∏_{i<m≤C} (1 − α_m),  A_C = ∏_m (1 − α_m)
    c_j = θ_j Σ_{i≥j} f_i ∏_{j<m≤i} η_m

and each Σ_j c_j u_j is one matmul, because u_j for a layer is the outer product aᵀ g of that layer's
input and output gradient. Gradients of the memory MLP are derived by hand (no per-sample autograd).
The decay products are formed as exponentials of differences of cumulative log sums (never > 1).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .mlp import mlp_forward, silu_grad

_TINY = 1e-30


def chunk_coefficients(theta: Tensor, eta: Tensor, alpha: Tensor) -> tuple[Tensor, ...]:
    """Per-chunk decay weights from gates shaped (..., N, C).

    Returns c (..., N, C) and γ·θ (..., N, C) for the gradient sums, and β_C, A_C, Σ f β (..., N).
    """
    log_eta = torch.log(eta.clamp_min(_TINY)).cumsum(-1)  # Σ_{m≤i} log η_m
    log_keep = torch.log((1 - alpha).clamp_min(_TINY)).cumsum(-1)  # Σ_{m≤i} log(1 − α_m)
    # L[i, j] = ∏_{j<m≤i} η_m for j ≤ i, else 0 (the momentum scan as a matrix, eq 13)
    diff = log_eta[..., :, None] - log_eta[..., None, :]
    C = theta.shape[-1]
    causal = torch.ones(C, C, dtype=torch.bool, device=theta.device).tril()
    L = torch.exp(diff.masked_fill(~causal, float("-inf")))
    f = torch.exp(log_keep[..., -1:] - log_keep)  # f_i = ∏_{i<m≤C} (1 − α_m)   (eq 14 unrolled)
    beta = torch.exp(log_eta)  # β_i = ∏_{m≤i} η_m
    c = theta * (f.unsqueeze(-2) @ L).squeeze(-2)
    gamma_theta = theta * L[..., -1, :]
    return c, gamma_theta, beta[..., -1], torch.exp(log_keep[..., -1]), (f * beta).sum(-1)


def mlp_grads(weights: tuple[Tensor, ...], k: Tensor, v: Tensor) -> list[tuple[Tensor, Tensor]]:
    """Per layer (a, g) with ∇_{W_l} ‖M(k_j) − v_j‖² = a_jᵀ g_j, for every token j of the chunk."""
    acts, pre = [k], []
    for i, w in enumerate(weights):
        z = acts[-1] @ w
        if i < len(weights) - 1:
            pre.append(z)
            acts.append(F.silu(z))
        else:
            out = z
    g = 2 * (out - v)
    pairs = []
    for i in reversed(range(len(weights))):
        pairs.append((acts[i], g))
        if i > 0:
            g = (g @ weights[i].transpose(-1, -2)) * silu_grad(pre[i - 1])
    return pairs[::-1]


def memory_chunk(
    q: Tensor, k: Tensor, v: Tensor,
    theta: Tensor, eta: Tensor, alpha: Tensor,
    weights: tuple[Tensor, ...], momentum: tuple[Tensor, ...],
    chunk_size: int,
) -> tuple[Tensor, tuple[Tensor, ...], tuple[Tensor, ...]]:
    """Same contract as `naive.memory_naive`, one batched step per chunk; differentiable by autograd."""
    B, H, T, D = k.shape
    C = chunk_size
    N = T // C  # complete chunks; a trailing partial chunk is only retrieved
    w, s = tuple(weights), tuple(momentum)
    ys = []
    if N:
        coef = chunk_coefficients(*(g[:, :, : N * C].unflatten(2, (N, C)) for g in (theta, eta, alpha)))
        c, gt, beta_C, keep_C, fbeta = coef
    for n in range(N):
        sl = slice(n * C, (n + 1) * C)
        ys.append(mlp_forward(w, q[:, :, sl]))  # retrieval without update, M*(q)  (eq 15)
        pairs = mlp_grads(w, k[:, :, sl], v[:, :, sl])
        cn, gn = c[:, :, n, :, None], gt[:, :, n, :, None]
        b, a, fb = (x[:, :, n, None, None] for x in (beta_C, keep_C, fbeta))
        s_new = tuple(b * s_l - (x * gn).transpose(-1, -2) @ g for s_l, (x, g) in zip(s, pairs))
        w = tuple(a * w_l + fb * s_l - (x * cn).transpose(-1, -2) @ g for w_l, s_l, (x, g) in zip(w, s, pairs))
        s = s_new
    if N * C < T:
        ys.append(mlp_forward(w, q[:, :, N * C :]))
    y = torch.cat(ys, dim=2) if ys else q.new_zeros(B, H, 0, weights[-1].shape[-1])
    return y, w, s
