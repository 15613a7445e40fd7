"""The chunked memory update in PyTorch: batched matmuls, one step per chunk (paper eqs 16–18).

Within a chunk every per-token gradient is taken at the chunk's starting weights W₀, so the momentum
scan and the forgetting product collapse into two scalar weights per token:

    S_C = β_C S₀ − Σ_j γ_j θ_j u_j                  γ_j = ∏_{j<m≤C} η_m,  β_C = ∏_{m≤C} η_m
    W_C = A_C W₀ + (Σ_i f_i β_i) S₀ − Σ_j c_j u_j    f_i = ∏_{i<m≤C} (1 − α_m),  A_C = ∏_m (1 − α_m)
    c_j = θ_j Σ_{i≥j} f_i ∏_{j<m≤i} η_m

and each Σ_j c_j u_j is one matmul, because u_j for a layer is the outer product aᵀ g of that layer's
input and output gradient. Gradients of the memory MLP are derived by hand (no per-sample autograd).
The decay products are formed as exponentials of differences of cumulative log sums (never > 1).

Backward (`ChunkUpdate`): besides its inputs, only the weights and momentum each chunk started with
are kept; a reverse loop over chunks recomputes the chunk's activations and carries dL/dW and dL/dS.
The gate coefficients stay in autograd (they are cheap), so θ, η, α get their gradients through them.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .mlp import mlp_forward, silu_backward, silu_grad2

_TINY = 1e-30
State = tuple[Tensor, ...]


def momentum_scan(eta: Tensor) -> tuple[Tensor, Tensor]:
    """The momentum recursion of a chunk as a matrix, gates (..., C) -> L (..., C, C), β (..., C).

    L[i, j] = ∏_{j<m≤i} η_m for j ≤ i, else 0, and β_i = ∏_{m≤i} η_m, so that within a chunk
    S_i = β_i S₀ − Σ_j L[i, j] θ_j u_j (eq 13 unrolled).
    """
    log_eta = torch.log(eta.clamp_min(_TINY)).cumsum(-1)  # Σ_{m≤i} log η_m
    diff = log_eta[..., :, None] - log_eta[..., None, :]
    C = eta.shape[-1]
    causal = torch.ones(C, C, dtype=torch.bool, device=eta.device).tril()
    return torch.exp(diff.masked_fill(~causal, float("-inf"))), torch.exp(log_eta)


def chunk_coefficients(theta: Tensor, eta: Tensor, alpha: Tensor) -> tuple[Tensor, ...]:
    """Per-chunk decay weights from gates shaped (..., N, C), all chunks at once.

    Returns c (..., N, C) and γ·θ (..., N, C) for the gradient sums, and β_C, A_C, Σ f β (..., N).
    """
    L, beta = momentum_scan(eta)
    log_keep = torch.log((1 - alpha).clamp_min(_TINY)).cumsum(-1)  # Σ_{m≤i} log(1 − α_m)
    f = torch.exp(log_keep[..., -1:] - log_keep)  # f_i = ∏_{i<m≤C} (1 − α_m)   (eq 14 unrolled)
    c = theta * (f.unsqueeze(-2) @ L).squeeze(-2)
    gamma_theta = theta * L[..., -1, :]
    return c, gamma_theta, beta[..., -1], torch.exp(log_keep[..., -1]), (f * beta).sum(-1)


def forward_rows(weights: State, rows: Tensor) -> tuple[list[Tensor], list[Tensor], Tensor]:
    """M on a block of rows: each layer's input, the hidden pre-activations, the output."""
    ins, pre = [rows], []
    for w in weights[:-1]:
        pre.append(ins[-1] @ w)
        ins.append(F.silu(pre[-1]))
    return ins, pre, ins[-1] @ weights[-1]


def surprise_grads(weights: State, pre: list[Tensor], out: Tensor, v: Tensor) -> tuple[list[Tensor], list[Tensor]]:
    """Output gradients g_l with ∇_{W_l} ‖M(k_j) − v_j‖² = a_jᵀ g_j (eq 12), and p_l = g_{l+1} W_{l+1}ᵀ.

    `pre[l]` holds layer l's hidden pre-activations of the keys; `out` is M(k).
    """
    gs, ps = [2 * (out - v)], []
    for l in reversed(range(len(weights) - 1)):
        ps.insert(0, gs[0] @ weights[l + 1].mT)
        gs.insert(0, silu_backward(ps[0], pre[l]))
    return gs, ps


def matmul_add_(base: Tensor, x: Tensor, y: Tensor, alpha: float = 1.0) -> Tensor:
    """base + alpha · x @ y, accumulated by the GEMM into `base` (a fresh tensor it may overwrite)."""
    flat = base.flatten(0, -3)  # a view for the tensors built here; a copy would still be right
    return flat.baddbmm_(x.flatten(0, -3), y.flatten(0, -3), alpha=alpha).view(base.shape)


def dot(x: Tensor, y: Tensor, dims: int) -> Tensor:
    """Σ x·y over the last `dims` dimensions."""
    return (x * y).sum(tuple(range(-dims, 0)))


def chunk_step(w: State, s: State, rows: Tensor, v: Tensor, c: Tensor, gt: Tensor,
               beta: Tensor, keep: Tensor, fbeta: Tensor) -> tuple[Tensor, State, State]:
    """One chunk: read its queries at W₀ (eq 15), then write its keys (eqs 13–14 summed over the chunk).

    rows: queries then keys, (B, H, 2C, D); v (B, H, C, D); c, gt (B, H, C, 1); beta, keep, fbeta (B, H, 1, 1).
    """
    C = v.shape[-2]
    ins, pre, out = forward_rows(w, rows)
    gs, _ = surprise_grads(w, [z[..., C:, :] for z in pre], out[..., C:, :], v)
    w_new, s_new = write(w, s, [a[..., C:, :] for a in ins], gs, c, gt, beta, keep, fbeta)
    return out[..., :C, :], w_new, s_new


def write(w: State, s: State, keys: list[Tensor], gs: list[Tensor], c: Tensor, gt: Tensor,
          beta: Tensor, keep: Tensor, fbeta: Tensor) -> tuple[State, State]:
    """A chunk's write from each layer's inputs `keys` and output gradients `gs` (u_j = a_jᵀ g_j)."""
    s_new = tuple(matmul_add_(beta * s_l, a.mT, gt * g, -1) for s_l, a, g in zip(s, keys, gs))  # eq 13
    w_new = tuple(matmul_add_((keep * w_l).addcmul_(fbeta, s_l), a.mT, c * g, -1)  # eq 14
                  for w_l, s_l, a, g in zip(w, s, keys, gs))
    return w_new, s_new


def _chunk_args(coef: tuple[Tensor, ...], n: int, dtype: torch.dtype) -> tuple[Tensor, ...]:
    """Chunk n's coefficients, shaped to broadcast over (B, H, C, d) and (B, H, d_in, d_out)."""
    c, gt, beta, keep, fbeta = (x[:, :, n].to(dtype) for x in coef)
    return (c[..., None], gt[..., None], *(x[..., None, None] for x in (beta, keep, fbeta)))


def scan(qk: Tensor, v: Tensor, coef: tuple[Tensor, ...], w: State, s: State,
         save: bool = False) -> tuple[Tensor, State, State, list[Tensor]]:
    """All chunks in order. qk (B, H, N, 2C, D); v (B, H, N, C, D). With `save`, also the states
    every chunk started with, stacked per layer as (N, B, H, d_in, d_out): weights, then momentum."""
    N = v.shape[2]
    y = v.new_empty(*v.shape[:-1], w[-1].shape[-1])
    starts = [x.new_empty(N, *x.shape) for x in w + s] if save else []
    for n in range(N):
        for buf, x in zip(starts, w + s):
            buf[n] = x
        y[:, :, n], w, s = chunk_step(w, s, qk[:, :, n], v[:, :, n], *_chunk_args(coef, n, qk.dtype))
    return y, w, s, starts


class ChunkUpdate(torch.autograd.Function):
    """`scan` with a hand-written backward: inputs (qk, v, c, gt, beta, keep, fbeta, *weights, *momentum),
    outputs (y, *weights, *momentum); `infer` is the same forward without the saved states."""

    @staticmethod
    def infer(qk: Tensor, v: Tensor, *args: Tensor) -> tuple[Tensor, ...]:
        L = (len(args) - 5) // 2
        y, w, s, _ = scan(qk, v, args[:5], args[5: 5 + L], args[5 + L:])
        return (y, *w, *s)

    @staticmethod
    def forward(ctx, qk: Tensor, v: Tensor, c: Tensor, gt: Tensor, beta: Tensor, keep: Tensor, fbeta: Tensor,
                *state: Tensor) -> tuple[Tensor, ...]:
        L = len(state) // 2
        y, w, s, starts = scan(qk, v, (c, gt, beta, keep, fbeta), state[:L], state[L:], save=True)
        ctx.save_for_backward(qk, v, c, gt, beta, keep, fbeta, *starts)
        return (y, *w, *s)

    @staticmethod
    def backward(ctx, dy: Tensor, *dstate: Tensor) -> tuple[Tensor, ...]:
        qk, v, c, gt, beta, keep, fbeta, *starts = ctx.saved_tensors
        L, C, N = len(dstate) // 2, v.shape[3], v.shape[2]
        dW, dS = list(dstate[:L]), list(dstate[L:])  # dL/dW, dL/dS at the end of the chunk being undone
        dqk, dv = torch.empty_like(qk), torch.empty_like(v)
        dcoef = [torch.zeros_like(x) for x in (c, gt, beta, keep, fbeta)]
        for n in reversed(range(N)):
            w, s = tuple(x[n] for x in starts[:L]), tuple(x[n] for x in starts[L:])
            cn, gtn, b, a, fb = _chunk_args((c, gt, beta, keep, fbeta), n, qk.dtype)
            ins, pre, out = forward_rows(w, qk[:, :, n])  # recompute the chunk's activations
            gs, ps = surprise_grads(w, [z[..., C:, :] for z in pre], out[..., C:, :], v[:, :, n])
            # the write S' = β S − aᵀ(γθ g), W' = A W + fβ S − aᵀ(c g), for every layer
            dg, dkeys, dW_prev, dS_prev = [], [], [], []
            for l in range(L):
                key, g = ins[l][..., C:, :], gs[l]
                aS, aW = key @ dS[l], key @ dW[l]
                dg.append(torch.addcmul(aS * -gtn, -cn, aW))
                dkeys.append(torch.addcmul((g @ dS[l].mT) * -gtn, -cn, g @ dW[l].mT))
                dcoef[0][:, :, n] -= dot(aW, g, 1)
                dcoef[1][:, :, n] -= dot(aS, g, 1)
                dcoef[2][:, :, n] += dot(dS[l], s[l], 2)
                dcoef[3][:, :, n] += dot(dW[l], w[l], 2)
                dcoef[4][:, :, n] += dot(dW[l], s[l], 2)
                dW_prev.append(a * dW[l])
                dS_prev.append((b * dS[l]).addcmul_(fb, dW[l]))
            # the surprise chain g_l = p_l σ′(z_l), p_l = g_{l+1} W_{l+1}ᵀ, backwards
            dz_keys = []
            for l in range(L - 1):
                zk = pre[l][..., C:, :]
                dp = silu_backward(dg[l], zk)
                dz_keys.append(dg[l] * ps[l] * silu_grad2(zk))
                dg[l + 1] = matmul_add_(dg[l + 1], dp, w[l + 1])
                dW_prev[l + 1] = matmul_add_(dW_prev[l + 1], dp.mT, gs[l + 1])
            # the forward pass over queries and keys, backwards (g_last = 2 (M(k) − v))
            dv[:, :, n] = -2 * dg[-1]
            dz = torch.cat([dy[:, :, n], 2 * dg[-1]], dim=-2)
            for l in reversed(range(L)):
                dW_prev[l] = matmul_add_(dW_prev[l], ins[l].mT, dz)
                dh = dz @ w[l].mT
                dh[..., C:, :] += dkeys[l]
                if l:
                    dz = silu_backward(dh, pre[l - 1])
                    dz[..., C:, :] += dz_keys[l - 1]
            dqk[:, :, n] = dh
            dW, dS = dW_prev, dS_prev
        return (dqk, dv, *dcoef, *dW, *dS)


def chunked(update: type[torch.autograd.Function], q: Tensor, k: Tensor, v: Tensor,
            theta: Tensor, eta: Tensor, alpha: Tensor, weights: State, momentum: State,
            chunk_size: int) -> tuple[Tensor, State, State]:
    """The driver every chunked backend shares.

    Gate coefficients for all chunks at once (in autograd, at least float32: products of many gates lose
    too much in bfloat16); the complete chunks through `update` (`ChunkUpdate`, or a kernel with its
    interface); then a read of the trailing partial chunk at the final weights.
    """
    T, C = q.shape[2], chunk_size
    N = T // C  # complete chunks; a trailing partial chunk is only retrieved
    w, s = tuple(weights), tuple(momentum)
    if N == 0:
        return mlp_forward(w, q), w, s
    split = lambda t: t[:, :, : N * C].unflatten(2, (N, C))  # noqa: E731
    at_least_f32 = lambda g: split(g).to(torch.promote_types(g.dtype, torch.float32))  # noqa: E731
    coef = chunk_coefficients(at_least_f32(theta), at_least_f32(eta), at_least_f32(alpha))
    qk = torch.cat([split(q), split(k)], dim=3)  # queries then keys: one matmul reads and writes
    inputs = (qk, split(v), *coef, *w, *s)
    if torch.is_grad_enabled() and any(t.requires_grad for t in inputs):
        y, *state = update.apply(*inputs)
    else:  # inference: no saved states, no graph
        y, *state = update.infer(*inputs)
    w, s = tuple(state[: len(w)]), tuple(state[len(w):])
    y = y.flatten(2, 3)
    if N * C < T:
        y = torch.cat([y, mlp_forward(w, q[:, :, N * C:])], dim=2)
    return y, w, s


def memory_chunk(
    q: Tensor, k: Tensor, v: Tensor,
    theta: Tensor, eta: Tensor, alpha: Tensor,
    weights: State, momentum: State,
    chunk_size: int,
) -> tuple[Tensor, State, State]:
    """Same contract as `naive.memory_naive`, one batched step per chunk, with its own backward."""
    return chunked(ChunkUpdate, q, k, v, theta, eta, alpha, weights, momentum, chunk_size)
