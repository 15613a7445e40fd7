"""The chunked memory update in PyTorch: batched matmuls, one step per chunk (paper eqs 16–18).

Within a chunk every per-token gradient is taken at the chunk's starting weights W₀, so the momentum
scan and the forgetting product collapse into two scalar weights per token:

    S_C = β_C S₀ − Σ_j γ_j θ_j u_j                  γ_j = ∏_{j<m≤C} η_m,  β_C = ∏_{m≤C} η_m
    W_C = A_C W₀ + (Σ_i f_i β_i) S₀ − Σ_j c_j u_j    f_i = ∏_{i<m≤C} (1 − α_m),  A_C = ∏_m (1 − α_m)
    c_j = θ_j Σ_{i≥j} f_i ∏_{j<m≤i} η_m

(plus (1 − A_C) M̄ when forgetting pulls towards an anchor M̄ instead of zero),

and each Σ_j c_j u_j is one matmul, because u_j for a layer is the outer product aᵀ g of that layer's
input and output gradient. Gradients of the memory MLP are derived by hand (no per-sample autograd).
The forgetting products are exponentials of differences of cumulative log sums (never > 1); c and γ
follow a suffix recursion, run in log₂ C doubling steps over all chunks at once.

The loop is built for few ops per chunk, since on the CPU each op costs microseconds whatever its size:
each layer's momentum and weights sit side by side in one buffer [S | W] (d_in, 2, d_out), so one
matmul aᵀ [γθ·g | c·g] writes both; tensors are chunk-major (N, B·H, ...), so a chunk is a contiguous
slice; the gate coefficients are laid out for all chunks before the loop; M(k) − v is accumulated onto
−v in place. Backward (`ChunkUpdate`): besides its inputs, the state each chunk started with (the
[S | W] buffers, one slot per chunk), M(k) − v and the hidden layers' pre-activations and p_l are kept
(so no matmul of the forward is redone; their SiLUs are); a reverse loop over chunks carries dL/d[S | W]. The gate coefficients stay in autograd (they are cheap), so
θ, η, α get their gradients through them.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .mlp import mlp_forward, silu_backward, silu_curvature

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
    return diff.masked_fill_(~causal, float("-inf")).exp_(), torch.exp(log_eta)  # in place: one (C, C) buffer per chunk


def suffix_scan(a: Tensor, b: Tensor) -> Tensor:
    """x_j = b_j + a_j x_{j+1} along the last dimension (x past the end is 0), by recursive doubling:
    log₂ C steps over whole tensors, each term a product of gates (never > 1 for gates in (0, 1))."""
    shift = lambda x, s: F.pad(x[..., s:], (0, s))  # noqa: E731  x_{j+s}, zero past the end
    x, s = b, 1
    while s < b.shape[-1]:
        x, a, s = x + a * shift(x, s), a * shift(a, s), 2 * s
    return x


def chunk_coefficients(theta: Tensor, eta: Tensor, alpha: Tensor) -> tuple[Tensor, ...]:
    """Per-chunk decay weights from gates shaped (..., N, C), all chunks at once.

    Returns c (..., N, C) and γ·θ (..., N, C) for the gradient sums, and β_C, A_C, Σ f β (..., N).
    c_j / θ_j = f_j + η_{j+1} c_{j+1} / θ_{j+1} and γ_j = η_{j+1} γ_{j+1} are suffix recursions, so
    no C × C matrix of momentum products is formed.
    """
    log_keep = torch.log((1 - alpha).clamp_min(_TINY)).cumsum(-1)  # Σ_{m≤i} log(1 − α_m)
    f = torch.exp(log_keep[..., -1:] - log_keep)  # f_i = ∏_{i<m≤C} (1 − α_m)   (eq 14 unrolled)
    beta = torch.exp(torch.log(eta.clamp_min(_TINY)).cumsum(-1))  # β_i = ∏_{m≤i} η_m   (eq 13 unrolled)
    last = torch.zeros_like(f)
    last[..., -1] = 1
    r, gamma = suffix_scan(F.pad(eta[..., 1:], (0, 1)), torch.stack([f, last]))
    return theta * r, theta * gamma, beta[..., -1], torch.exp(log_keep[..., -1]), (f * beta).sum(-1)


def step_scale(a: Tensor) -> Tensor:
    """ρ_j = 1 / max(1, ‖a_j‖²) for each row a_j of a layer's inputs, (..., C, d) -> (..., C, 1).

    Normalised LMS: each token's gradient for a layer is scaled by its ρ_j, so the curvature its step
    meets, 2 ‖a_j‖² per unit of learning rate, stays ≤ 2 however large the hidden activations grow (unit
    keys give ρ_j = 1). Without it a deeper memory whose weights grow overshoots and diverges. ρ is a step
    size, not part of the loss: the outer gradients treat it as a constant.
    """
    a = a.detach()
    return torch.linalg.vecdot(a, a).unsqueeze_(-1).clamp_min_(1).reciprocal_()


def hidden_rows(weights: State, rows: Tensor) -> tuple[list[Tensor], list[Tensor]]:
    """M's hidden layers on a block of rows: each layer's input (rows first) and hidden pre-activations."""
    ins, pre = [rows], []
    for w in weights[:-1]:
        pre.append(ins[-1] @ w)
        ins.append(F.silu(pre[-1]))
    return ins, pre


def surprise_grads(weights: State, pre: list[Tensor], g: Tensor) -> tuple[list[Tensor], list[Tensor]]:
    """Output gradients g_l with ∇_{W_l} ‖M(k_j) − v_j‖² ∝ a_jᵀ g_j (eq 12), and p_l = g_{l+1} W_{l+1}ᵀ,
    from the last layer's `g` (2 (M(k) − v), or any multiple: the chain is linear in it).

    `pre[l]` holds layer l's hidden pre-activations of the keys.
    """
    gs, ps = [g], []
    for l in reversed(range(len(weights) - 1)):
        ps.insert(0, gs[0] @ weights[l + 1].mT)
        gs.insert(0, silu_backward(ps[0], pre[l]))
    return gs, ps


def _chunk_major(x: Tensor, n_seq: int) -> Tensor:
    """(B, H, N, ...) -> (N, B·H, ...): a view when x is chunk-major in memory, as `chunked` builds it."""
    return x.movedim(2, 0).reshape(x.shape[2], n_seq, *x.shape[3:])


def _coefficients(coef: tuple[Tensor, ...], n_seq: int, dtype: torch.dtype) -> tuple[Tensor, Tensor, Tensor]:
    """The gate coefficients of all chunks, chunk-major: the write's per-token weights −2 [γθ, c]
    (N, B·H, C, 2, 1) (the 2 of ∇‖M(k) − v‖²), the state mix [β, A] (N, B·H, 1, 2, 1), and fβ
    (N, B·H, 1, 1)."""
    c, gt, beta, keep, fbeta = (_chunk_major(x.to(dtype), n_seq) for x in coef)
    return (-2 * torch.stack([gt, c], -1)).unsqueeze(-1), torch.stack([beta, keep], -1)[:, :, None, :, None], \
        fbeta[:, :, None, None]


def _pairs(first: State, second: State, slots: int) -> list[Tensor]:
    """Per layer a buffer (slots, B·H, d_in, 2, d_out) whose slot 0 holds [first | second] (momentum, weights)."""
    bufs = []
    for a, b in zip(first, second):
        buf = a.new_empty(slots, *a.shape[:3], 2, a.shape[3])
        buf[0, ..., 0, :], buf[0, ..., 1, :] = a, b
        bufs.append(buf.flatten(1, 2))
    return bufs


def _write(cur: tuple[Tensor, ...], nxt: tuple[Tensor, ...], a: Tensor, g: Tensor, rmix: Tensor, smix: Tensor,
           fbeta: Tensor, anchor: Tensor | None) -> Tensor:
    """One layer's chunk write into `nxt` from `cur`, both [S | W] with their views (`_views`): S' = β S − aᵀ(2γθ g)
    (eq 13), W' = A W + (1 − A) M̄ + fβ S − aᵀ(2c g) (eq 14, anchor M̄ or none), the two outer-product sums in
    one matmul. Returns its right factor."""
    torch.mul(cur[0], smix, out=nxt[0])
    nxt[2].addcmul_(cur[1], fbeta)
    if anchor is not None:
        nxt[2].addcmul_(anchor, 1 - smix[..., 1, :])
    rhs = (g.unsqueeze(-2) * rmix).flatten(-2)
    nxt[3].baddbmm_(a.mT, rhs)
    return rhs


def _views(buf: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """[S | W] (B·H, d_in, 2, d_out) with its S and W and its (B·H, d_in, 2 · d_out) view."""
    return buf, buf[..., 0, :], buf[..., 1, :], buf.flatten(-2)


def scan(qk: Tensor, v: Tensor, coef: tuple[Tensor, ...], w: State, s: State, anchor: State = (),
         save: bool = False) -> tuple[Tensor, State, State, list[Tensor]]:
    """All chunks in order. qk (B, H, N, 2C, D), queries then keys; v (B, H, N, C, D); `anchor` the
    weights forgetting pulls towards, per layer (B · H, d_in, d_out), or () for zero. Returns y
    (B, H, N, C, D), the final weights and momentum, and with `save` what the backward needs:
    M(q) ‖ M(k) − v per chunk (N, B·H, 2C, D), the coefficients, and per layer the [S | W] buffer
    holding every chunk's starting state (N + 1, B·H, d_in, 2, d_out)."""
    B, H, N, C2, _ = qk.shape
    C, n_seq = C2 // 2, B * H
    qk = _chunk_major(qk, n_seq)
    out = qk.new_empty(N, n_seq, C2, w[-1].shape[-1])  # M(q) ‖ M(k) − v: −v first, M added in place
    out[:, :, :C].zero_()
    torch.neg(_chunk_major(v, n_seq), out=out[:, :, C:])
    rmix, smix, fbeta = _coefficients(coef, n_seq, qk.dtype)
    rho_keys = step_scale(qk[:, :, C:])  # the first layer's ρ reads the keys alone: every chunk's at once
    rmix_keys = rmix * rho_keys.unsqueeze(-1)
    bufs = _pairs(s, w, N + 1 if save else 2)
    # every slice the loop reads, made once: in the loop each would cost as much as a small op
    slots = list(zip(*([_views(x) for x in b.unbind(0)] for b in bufs)))  # per slot, per layer: [S | W] views
    chunks = zip(qk.unbind(0), qk[:, :, C:].unbind(0), out.unbind(0), out[:, :, C:].unbind(0), rmix_keys.unbind(0),
                 rmix.unbind(0), smix.unbind(0), fbeta.unbind(0), rho_keys.unbind(0))
    hidden = []  # with `save`: per chunk the hidden pre-activations, p_l and each layer's ρ, for the backward
    for n, (rows, keys, o, err, rm_keys, rm, sm, fb, rho_k) in enumerate(chunks):
        cur, nxt = (slots[i if save else i % 2] for i in (n, n + 1))
        ws = [x[2] for x in cur]
        ins, pre = hidden_rows(ws, rows)
        o.baddbmm_(ins[-1], ws[-1])  # read the queries (eq 15), M(k) − v for the keys
        gs, ps = surprise_grads(ws, [z[:, C:] for z in pre], err)
        a = [keys, *(x[:, C:] for x in ins[1:])]
        rho = [step_scale(x) for x in a[1:]]
        for l in range(len(ws)):
            _write(cur[l], nxt[l], a[l], gs[l], rm * rho[l - 1].unsqueeze(-1) if l else rm_keys, sm, fb,
                   anchor[l] if anchor else None)
        if save:
            hidden += [*pre, *ps, rho_k, *rho]
    last = [b[N if save else N % 2].unflatten(0, (B, H)) for b in bufs]
    y = out[:, :, :C].unflatten(1, (B, H)).movedim(0, 2)
    saved = [qk, out, rmix, smix, fbeta, *bufs, *anchor, *hidden] if save else []
    return y, tuple(x[..., 1, :].contiguous() for x in last), tuple(x[..., 0, :].contiguous() for x in last), saved


def _layers(qk: Tensor, L: int, state: tuple[Tensor, ...]) -> tuple[State, State, State]:
    """Weights, momentum and anchors (() for none) from `state`; anchors flattened to (B · H, d_in, d_out)."""
    n_seq = qk.shape[0] * qk.shape[1]
    return state[:L], state[L: 2 * L], tuple(m.reshape(n_seq, *m.shape[2:]) for m in state[2 * L:])


class ChunkUpdate(torch.autograd.Function):
    """`scan` with a hand-written backward: inputs (qk, v, c, gt, beta, keep, fbeta, L, *weights, *momentum,
    *anchor) for L memory layers (anchor optional), outputs (y, *weights, *momentum); `infer` is the same
    forward without the saved states."""

    @staticmethod
    def infer(qk: Tensor, v: Tensor, *args) -> tuple[Tensor, ...]:
        y, w, s, _ = scan(qk, v, args[:5], *_layers(qk, args[5], args[6:]))
        return (y, *w, *s)

    @staticmethod
    def forward(ctx, qk: Tensor, v: Tensor, c: Tensor, gt: Tensor, beta: Tensor, keep: Tensor, fbeta: Tensor,
                L: int, *state: Tensor) -> tuple[Tensor, ...]:
        w, s, anchor = _layers(qk, L, state)
        y, w, s, saved = scan(qk, v, (c, gt, beta, keep, fbeta), w, s, anchor, save=True)
        ctx.save_for_backward(*saved)
        ctx.shapes = qk.shape[:2], c.dtype, L, len(anchor) > 0
        return (y, *w, *s)

    @staticmethod
    def backward(ctx, dy: Tensor, *dstate: Tensor) -> tuple[Tensor | None, ...]:
        qk, out, rmix, smix, fbeta, *rest = ctx.saved_tensors
        (B, H), coef_dtype, L, anchored = ctx.shapes
        bufs, rest = rest[:L], rest[L:]
        anchor, hidden = (rest[:L], rest[L:]) if anchored else ((), rest)
        danchor = [torch.zeros_like(m) for m in anchor]  # Σ over chunks of (1 − A) dL/dW'
        N, n_seq, C2, _ = qk.shape
        C = C2 // 2
        dout = torch.empty_like(out)  # dL/d[M(q) ‖ M(k) − v] per chunk
        dout[:, :, :C] = _chunk_major(dy, n_seq)
        dqk = torch.empty_like(qk)
        drmix = [rmix.new_empty(N, n_seq, C, 2) for _ in range(L)]  # per layer: dL/d(−2 [γθ, c])
        dsmix = [rmix.new_empty(N, n_seq, 2, 2) for _ in range(L)]  # ⟨dL/d[S', W'], [S, W]⟩
        carry = _pairs(dstate[L:], dstate[:L], 2)  # dL/d[S | W] at the end of the chunk being undone
        d, dprev = [x[0] for x in carry], [x[1] for x in carry]
        for n in reversed(range(N)):
            cur = [b[n] for b in bufs]
            ws = [x[..., 1, :] for x in cur]
            kept = hidden[n * (3 * L - 2): (n + 1) * (3 * L - 2)]  # L − 1 pre-activations, L − 1 p_l, L step scales
            pre, ps, rhos = kept[: L - 1], kept[L - 1: 2 * L - 2], kept[2 * L - 2:]
            ins = [qk[n], *map(F.silu, pre)]  # the chunk's hidden activations, from the saved pre-activations
            gs = [*(silu_backward(p, z[:, C:]) for p, z in zip(ps, pre)), out[n, :, C:]]
            # the write [S', W'] = [β S, A W + fβ S] + aᵀ rhs, rhs = −2 [γθ g, c g], for every layer
            dgs, rhs = [], []
            for l in range(L):
                d2, a, rho = d[l].flatten(-2), ins[l][:, C:], rhos[l]
                rm = rmix[n] * rho.unsqueeze(-1)  # this layer's per-token write weights, −2 ρ [γθ, c]
                rhs.append((gs[l].unsqueeze(-2) * rm).flatten(-2))
                da_rhs = (a @ d2).unflatten(-1, (2, -1))  # dL/d rhs
                torch.sum(da_rhs * gs[l].unsqueeze(-2), -1, out=drmix[l][n]).mul_(rho)
                dg = dout[n, :, C:] if l == L - 1 else None  # the last layer's dg accumulates in `dout`
                dg = torch.mul(da_rhs[..., 0, :], rm[..., 0, :], out=dg)
                dgs.append(dg.addcmul_(da_rhs[..., 1, :], rm[..., 1, :]))
                torch.sum(d[l] @ cur[l].mT, 1, out=dsmix[l][n])  # per row of d_in, then summed
                if anchored:  # W' = A (W − M̄) + M̄ + …
                    dsmix[l][n][:, 1, 1] -= torch.linalg.vecdot(d[l][..., 1, :].flatten(-2), anchor[l].flatten(-2))
                    danchor[l].addcmul_(d[l][..., 1, :], 1 - smix[n][..., 1, :])
                torch.mul(d[l], smix[n], out=dprev[l])
                dprev[l][..., 0, :].addcmul_(d[l][..., 1, :], fbeta[n])
            # the surprise chain g_l = p_l σ′(z_l), p_l = g_{l+1} W_{l+1}ᵀ, backwards
            dz_keys = []
            for l in range(L - 1):
                zk = pre[l][:, C:]
                dp = silu_backward(dgs[l], zk)
                dz_keys.append(silu_curvature(dgs[l] * ps[l], zk))
                dgs[l + 1].baddbmm_(dp, ws[l + 1])
                dprev[l + 1][..., 1, :].baddbmm_(dp.mT, gs[l + 1])
            # the forward pass over queries and keys, backwards
            dz = dout[n]
            for l in reversed(range(L)):
                dprev[l][..., 1, :].baddbmm_(ins[l].mT, dz)
                dh = torch.bmm(dz, ws[l].mT, out=None if l else dqk[n])
                dh[:, C:].baddbmm_(rhs[l], d[l].flatten(-2).mT)
                if l:
                    dz = silu_backward(dh, pre[l - 1])
                    dz[:, C:] += dz_keys[l - 1]
            d, dprev = dprev, d
        back = lambda x: x.unflatten(1, (B, H)).movedim(0, 2)  # noqa: E731  (N, B·H, ...) -> (B, H, N, ...)
        dmix, dsm = -2 * sum(drmix), sum(dsmix)
        dcoef = (dmix[..., 1], dmix[..., 0], dsm[..., 0, 0], dsm[..., 1, 1], dsm[..., 1, 0])
        dstart = [x.unflatten(0, (B, H)) for x in d]
        return (back(dqk), back(-dout[:, :, C:]), *(back(x).to(coef_dtype) for x in dcoef), None,
                *(x[..., 1, :] for x in dstart), *(x[..., 0, :] for x in dstart),
                *(x.unflatten(0, (B, H)) for x in danchor))


def chunked(update: type[torch.autograd.Function], q: Tensor, k: Tensor, v: Tensor,
            theta: Tensor, eta: Tensor, alpha: Tensor, weights: State, momentum: State,
            chunk_size: int, anchor: State | None = None) -> tuple[Tensor, State, State]:
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
    # queries then keys, so one matmul reads and writes; chunk-major in memory (a chunk is one slice)
    qk = torch.cat([split(q).movedim(2, 0), split(k).movedim(2, 0)], dim=3).movedim(0, 2)
    anchor = () if anchor is None else tuple(m.expand_as(x) for m, x in zip(anchor, w))
    tensors = (qk, split(v), *coef, *w, *s, *anchor)
    inputs = (*tensors[:7], len(w), *tensors[7:])
    if torch.is_grad_enabled() and any(t.requires_grad for t in tensors):
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
    chunk_size: int, anchor: State | None = None,
) -> tuple[Tensor, State, State]:
    """Same contract as `naive.memory_naive`, one batched step per chunk, with its own backward."""
    return chunked(ChunkUpdate, q, k, v, theta, eta, alpha, weights, momentum, chunk_size, anchor)
