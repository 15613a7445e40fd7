"""Triton kernels for the chunked memory update (memory_depth 1 and 2), forward and backward.

The math and interface of `chunk.ChunkUpdate`, fused: one program per (sequence, head) walks its chunks
in order, so a whole sequence is one launch. Depth 1 keeps W and S in registers. Depth 2 keeps them in
float32 global buffers and streams the hidden dimension in tiles of BH columns: pass A reads the chunk
(M(q), M(k)) and each key's hidden energy ‖silu(k W₁)‖² for layer 2's step scale, pass B writes it tile by
tile (eqs 13–14). The backward walks the chunks in reverse from
the saved chunk-start states, recomputing activations, carrying dL/dW and dL/dS in float32 buffers.
With ANCHOR, forgetting pulls the weights towards an anchor M̄ (eq 14: + (1 − A) M̄ per chunk), whose
gradient Σ (1 − A) dL/dW′ the backward sums over the chunks.
q, k, v may be float32 or bfloat16; the state and all arithmetic are float32 (dots exact for float32
inputs, TF32 tensor cores for bfloat16). One program per (sequence, head) occupies B·H SMs at most: the
chunks of a sequence are inherently sequential.
"""
from __future__ import annotations

import os

import torch
import triton
import triton.language as tl
from torch import Tensor

from .chunk import State, chunked

DEPTHS = (1, 2)
HIDDEN_TILE = 64  # columns of the hidden layer per tile (depth 2)


@triton.jit
def _silu(z):
    return z * tl.sigmoid(z)


@triton.jit
def _dsilu(z):  # SiLU′
    s = tl.sigmoid(z)
    return s * (1 + z * (1 - s))


@triton.jit
def _dsilu2(z):  # SiLU″
    s = tl.sigmoid(z)
    return s * (1 - s) * (2 + z * (1 - 2 * s))


@triton.jit
def _rho(a):  # each row's step scale 1 / max(1, ‖a_j‖²) (normalised LMS, `chunk.step_scale`)
    return 1 / tl.maximum(tl.sum(a * a, 1), 1.0)


@triton.jit
def _mm(a, b, PREC: tl.constexpr):  # "ieee" for float32 inputs; "tf32" (tensor cores) for bfloat16
    return tl.dot(a, b, input_precision=PREC)


@triton.jit
def _load(ptr, r, c, n_r, n_c, stride):
    """Tile [r, c] of a row-major matrix as float32, zero outside (n_r, n_c)."""
    mask = (r[:, None] < n_r) & (c[None, :] < n_c)
    return tl.load(ptr + r[:, None] * stride + c[None, :], mask=mask, other=0.0).to(tl.float32)


@triton.jit
def _store(ptr, x, r, c, n_r, n_c, stride):
    mask = (r[:, None] < n_r) & (c[None, :] < n_c)
    tl.store(ptr + r[:, None] * stride + c[None, :], x.to(ptr.dtype.element_ty), mask=mask)


@triton.jit
def _vec(ptr, r, n):
    return tl.load(ptr + r, mask=r < n, other=0.0)


@triton.jit
def _fwd1(qk, v, c, gt, beta, keep, fbeta, w, s, m, y, cw, cs, N, C, D,
          SAVE: tl.constexpr, ANCHOR: tl.constexpr, BC: tl.constexpr, BD: tl.constexpr, PREC: tl.constexpr):
    p = tl.program_id(0).to(tl.int64)
    r, d = tl.arange(0, BC), tl.arange(0, BD)
    W = _load(w + p * D * D, d, d, D, D, D)
    S = _load(s + p * D * D, d, d, D, D, D)
    if ANCHOR:
        M = _load(m + p * D * D, d, d, D, D, D)
    for n in range(N):
        pn = p * N + n
        if SAVE:
            _store(cw + pn * D * D, W, d, d, D, D, D)
            _store(cs + pn * D * D, S, d, d, D, D, D)
        Q = _load(qk + pn * 2 * C * D, r, d, C, D, D)
        K = _load(qk + pn * 2 * C * D + C * D, r, d, C, D, D)
        V = _load(v + pn * C * D, r, d, C, D, D)
        rho = _rho(K)[:, None]
        cn, gn = rho * _vec(c + pn * C, r, C)[:, None], rho * _vec(gt + pn * C, r, C)[:, None]
        b, a, fb = tl.load(beta + pn), tl.load(keep + pn), tl.load(fbeta + pn)
        _store(y + pn * C * D, _mm(Q, W, PREC), r, d, C, D, D)  # M*(q)  (eq 15)
        G = 2 * (_mm(K, W, PREC) - V)  # ∂‖M(k) − v‖² / ∂M(k)  (eq 12)
        KT = tl.trans(K)
        S_new = b * S - _mm(KT, G * gn, PREC)  # momentum, summed over the chunk (eq 13)
        W = a * W + fb * S - _mm(KT, G * cn, PREC)  # forgetting and the write (eq 14)
        if ANCHOR:
            W += (1 - a) * M
        S = S_new
    _store(w + p * D * D, W, d, d, D, D, D)
    _store(s + p * D * D, S, d, d, D, D, D)


@triton.jit
def _bwd1(qk, v, c, gt, beta, keep, fbeta, cw, cs, m, dy, gw, gs, gm, dqk, dv, dc, dgt, dbeta, dkeep, dfbeta,
          N, C, D, ANCHOR: tl.constexpr, BC: tl.constexpr, BD: tl.constexpr, PREC: tl.constexpr):
    p = tl.program_id(0).to(tl.int64)
    r, d = tl.arange(0, BC), tl.arange(0, BD)
    GW = _load(gw + p * D * D, d, d, D, D, D)  # dL/dW, dL/dS at the end of the chunk being undone
    GS = _load(gs + p * D * D, d, d, D, D, D)
    if ANCHOR:
        M = _load(m + p * D * D, d, d, D, D, D)
        GM = tl.zeros((BD, BD), tl.float32)
    for i in range(N):
        pn = p * N + N - 1 - i
        W = _load(cw + pn * D * D, d, d, D, D, D)
        S = _load(cs + pn * D * D, d, d, D, D, D)
        Q = _load(qk + pn * 2 * C * D, r, d, C, D, D)
        K = _load(qk + pn * 2 * C * D + C * D, r, d, C, D, D)
        V = _load(v + pn * C * D, r, d, C, D, D)
        dY = _load(dy + pn * C * D, r, d, C, D, D)
        rho = _rho(K)
        cn, gn = rho[:, None] * _vec(c + pn * C, r, C)[:, None], rho[:, None] * _vec(gt + pn * C, r, C)[:, None]
        b, a, fb = tl.load(beta + pn), tl.load(keep + pn), tl.load(fbeta + pn)
        G = 2 * (_mm(K, W, PREC) - V)
        aS, aW = _mm(K, GS, PREC), _mm(K, GW, PREC)
        dG = -(gn * aS + cn * aW)
        tl.store(dgt + pn * C + r, -rho * tl.sum(aS * G, 1), mask=r < C)
        tl.store(dc + pn * C + r, -rho * tl.sum(aW * G, 1), mask=r < C)
        tl.store(dbeta + pn, tl.sum(GS * S))
        if ANCHOR:  # W′ = A (W − M̄) + M̄ + …
            tl.store(dkeep + pn, tl.sum(GW * (W - M)))
            GM += (1 - a) * GW
        else:
            tl.store(dkeep + pn, tl.sum(GW * W))
        tl.store(dfbeta + pn, tl.sum(GW * S))
        dO = 2 * dG
        _store(dv + pn * C * D, -dO, r, d, C, D, D)
        dK = _mm(dO, tl.trans(W), PREC) - (gn * _mm(G, tl.trans(GS), PREC) + cn * _mm(G, tl.trans(GW), PREC))
        _store(dqk + pn * 2 * C * D, _mm(dY, tl.trans(W), PREC), r, d, C, D, D)
        _store(dqk + pn * 2 * C * D + C * D, dK, r, d, C, D, D)
        GS_new = b * GS + fb * GW
        GW = a * GW + _mm(tl.trans(Q), dY, PREC) + _mm(tl.trans(K), dO, PREC)
        GS = GS_new
    _store(gw + p * D * D, GW, d, d, D, D, D)
    _store(gs + p * D * D, GS, d, d, D, D, D)
    if ANCHOR:
        _store(gm + p * D * D, GM, d, d, D, D, D)


@triton.jit
def _fwd2(qk, v, c, gt, beta, keep, fbeta, w1, w2, s1, s2, m1, m2, y, cw1, cw2, cs1, cs2, N, C, D, HID,
          SAVE: tl.constexpr, ANCHOR: tl.constexpr, BC: tl.constexpr, BD: tl.constexpr, BH: tl.constexpr,
          PREC: tl.constexpr):
    p = tl.program_id(0).to(tl.int64)
    r, d, h = tl.arange(0, BC), tl.arange(0, BD), tl.arange(0, BH)
    w1, s1, w2, s2 = w1 + p * D * HID, s1 + p * D * HID, w2 + p * HID * D, s2 + p * HID * D
    m1, m2 = m1 + p * D * HID, m2 + p * HID * D
    for n in range(N):
        pn = p * N + n
        Q = _load(qk + pn * 2 * C * D, r, d, C, D, D)
        K = _load(qk + pn * 2 * C * D + C * D, r, d, C, D, D)
        V = _load(v + pn * C * D, r, d, C, D, D)
        cn, gn = _vec(c + pn * C, r, C)[:, None], _vec(gt + pn * C, r, C)[:, None]
        b, a, fb = tl.load(beta + pn), tl.load(keep + pn), tl.load(fbeta + pn)
        # pass A: M(q) and M(k) at the chunk-start weights, hidden tile by tile
        Oq = tl.zeros((BC, BD), tl.float32)
        Ok = tl.zeros((BC, BD), tl.float32)
        e2 = tl.zeros((BC,), tl.float32)  # ‖silu(k W₁)‖², for layer 2's step scale
        for j in range(0, HID, BH):
            W1 = _load(w1 + j, d, h, D, HID - j, HID)
            W2 = _load(w2 + j * D, h, d, HID - j, D, D)
            if SAVE:
                _store(cw1 + pn * D * HID + j, W1, d, h, D, HID - j, HID)
                _store(cs1 + pn * D * HID + j, _load(s1 + j, d, h, D, HID - j, HID), d, h, D, HID - j, HID)
                _store(cw2 + pn * HID * D + j * D, W2, h, d, HID - j, D, D)
                _store(cs2 + pn * HID * D + j * D, _load(s2 + j * D, h, d, HID - j, D, D), h, d, HID - j, D, D)
            Oq += _mm(_silu(_mm(Q, W1, PREC)), W2, PREC)
            Hk = _silu(_mm(K, W1, PREC))
            Ok += _mm(Hk, W2, PREC)
            e2 += tl.sum(Hk * Hk, 1)
        _store(y + pn * C * D, Oq, r, d, C, D, D)  # M*(q)  (eq 15)
        G2 = 2 * (Ok - V)  # ∂‖M(k) − v‖² / ∂M(k)  (eq 12)
        rho1, rho2 = _rho(K)[:, None], (1 / tl.maximum(e2, 1.0))[:, None]
        cn1, gn1, cn2, gn2 = rho1 * cn, rho1 * gn, rho2 * cn, rho2 * gn
        tl.debug_barrier()
        # pass B: per hidden tile, the layer gradients and the write (eqs 13–14)
        KT = tl.trans(K)
        for j in range(0, HID, BH):
            W1 = _load(w1 + j, d, h, D, HID - j, HID)
            S1 = _load(s1 + j, d, h, D, HID - j, HID)
            W2 = _load(w2 + j * D, h, d, HID - j, D, D)
            S2 = _load(s2 + j * D, h, d, HID - j, D, D)
            Zk = _mm(K, W1, PREC)
            HT = tl.trans(_silu(Zk))
            G1 = _mm(G2, tl.trans(W2), PREC) * _dsilu(Zk)
            W1 = a * W1 + fb * S1 - _mm(KT, G1 * cn1, PREC)
            W2 = a * W2 + fb * S2 - _mm(HT, G2 * cn2, PREC)
            if ANCHOR:
                W1 += (1 - a) * _load(m1 + j, d, h, D, HID - j, HID)
                W2 += (1 - a) * _load(m2 + j * D, h, d, HID - j, D, D)
            _store(s1 + j, b * S1 - _mm(KT, G1 * gn1, PREC), d, h, D, HID - j, HID)
            _store(w1 + j, W1, d, h, D, HID - j, HID)
            _store(s2 + j * D, b * S2 - _mm(HT, G2 * gn2, PREC), h, d, HID - j, D, D)
            _store(w2 + j * D, W2, h, d, HID - j, D, D)
        tl.debug_barrier()


@triton.jit
def _bwd2(qk, v, c, gt, beta, keep, fbeta, cw1, cw2, cs1, cs2, m1, m2, dy, gw1, gw2, gs1, gs2, gm1, gm2,
          dqk, dv, dc, dgt, dbeta, dkeep, dfbeta, N, C, D, HID,
          ANCHOR: tl.constexpr, BC: tl.constexpr, BD: tl.constexpr, BH: tl.constexpr, PREC: tl.constexpr):
    p = tl.program_id(0).to(tl.int64)
    r, d, h = tl.arange(0, BC), tl.arange(0, BD), tl.arange(0, BH)
    # dL/dW, dL/dS at the end of the chunk being undone; overwritten with those at its start
    gw1, gs1, gw2, gs2 = gw1 + p * D * HID, gs1 + p * D * HID, gw2 + p * HID * D, gs2 + p * HID * D
    m1, m2, gm1, gm2 = m1 + p * D * HID, m2 + p * HID * D, gm1 + p * D * HID, gm2 + p * HID * D  # anchor, dL/danchor
    for i in range(N):
        pn = p * N + N - 1 - i
        w1, s1, w2, s2 = cw1 + pn * D * HID, cs1 + pn * D * HID, cw2 + pn * HID * D, cs2 + pn * HID * D
        Q = _load(qk + pn * 2 * C * D, r, d, C, D, D)
        K = _load(qk + pn * 2 * C * D + C * D, r, d, C, D, D)
        V = _load(v + pn * C * D, r, d, C, D, D)
        dY = _load(dy + pn * C * D, r, d, C, D, D)
        cn, gn = _vec(c + pn * C, r, C)[:, None], _vec(gt + pn * C, r, C)[:, None]
        b, a, fb = tl.load(beta + pn), tl.load(keep + pn), tl.load(fbeta + pn)
        # pass A: recompute M(k), hence g₂
        Ok = tl.zeros((BC, BD), tl.float32)
        e2 = tl.zeros((BC,), tl.float32)
        for j in range(0, HID, BH):
            Hk = _silu(_mm(K, _load(w1 + j, d, h, D, HID - j, HID), PREC))
            Ok += _mm(Hk, _load(w2 + j * D, h, d, HID - j, D, D), PREC)
            e2 += tl.sum(Hk * Hk, 1)
        G2 = 2 * (Ok - V)
        rho1, rho2 = _rho(K), 1 / tl.maximum(e2, 1.0)  # the layers' step scales, constants here
        cn1, gn1, cn2, gn2 = rho1[:, None] * cn, rho1[:, None] * gn, rho2[:, None] * cn, rho2[:, None] * gn
        # pass B: everything that sums over the hidden dimension: dL/dg₂, dL/dk via layer 1's write, gates
        dG2 = tl.zeros((BC, BD), tl.float32)
        dK = tl.zeros((BC, BD), tl.float32)
        dcn = tl.zeros((BC,), tl.float32)
        dgn = tl.zeros((BC,), tl.float32)
        db = tl.zeros((BD,), tl.float32)  # dL/dβ, dL/dA, dL/dfβ, partial sums per row of d
        da = tl.zeros((BD,), tl.float32)
        dfb = tl.zeros((BD,), tl.float32)
        for j in range(0, HID, BH):
            W1 = _load(w1 + j, d, h, D, HID - j, HID)
            S1 = _load(s1 + j, d, h, D, HID - j, HID)
            W2 = _load(w2 + j * D, h, d, HID - j, D, D)
            S2 = _load(s2 + j * D, h, d, HID - j, D, D)
            GW1 = _load(gw1 + j, d, h, D, HID - j, HID)
            GS1 = _load(gs1 + j, d, h, D, HID - j, HID)
            GW2 = _load(gw2 + j * D, h, d, HID - j, D, D)
            GS2 = _load(gs2 + j * D, h, d, HID - j, D, D)
            Zk = _mm(K, W1, PREC)
            Hk = _silu(Zk)
            G1 = _mm(G2, tl.trans(W2), PREC) * _dsilu(Zk)
            aS, aW = _mm(K, GS1, PREC), _mm(K, GW1, PREC)
            dG1 = -(gn1 * aS + cn1 * aW)
            dgn -= rho1 * tl.sum(aS * G1, 1)
            dcn -= rho1 * tl.sum(aW * G1, 1)
            dK -= gn1 * _mm(G1, tl.trans(GS1), PREC) + cn1 * _mm(G1, tl.trans(GW1), PREC)
            hS, hW = _mm(Hk, GS2, PREC), _mm(Hk, GW2, PREC)
            dG2 -= gn2 * hS + cn2 * hW
            dgn -= rho2 * tl.sum(hS * G2, 1)
            dcn -= rho2 * tl.sum(hW * G2, 1)
            dG2 += _mm(dG1 * _dsilu(Zk), W2, PREC)  # g₁ = (g₂ W₂ᵀ) σ′(z)
            db += tl.sum(GS1 * S1, 1) + tl.sum(GS2 * S2, 0)
            if ANCHOR:  # W′ = A (W − M̄) + M̄ + …
                M1 = _load(m1 + j, d, h, D, HID - j, HID)
                M2 = _load(m2 + j * D, h, d, HID - j, D, D)
                da += tl.sum(GW1 * (W1 - M1), 1) + tl.sum(GW2 * (W2 - M2), 0)
                _store(gm1 + j, _load(gm1 + j, d, h, D, HID - j, HID) + (1 - a) * GW1, d, h, D, HID - j, HID)
                _store(gm2 + j * D, _load(gm2 + j * D, h, d, HID - j, D, D) + (1 - a) * GW2, h, d, HID - j, D, D)
            else:
                da += tl.sum(GW1 * W1, 1) + tl.sum(GW2 * W2, 0)
            dfb += tl.sum(GW1 * S1, 1) + tl.sum(GW2 * S2, 0)
        dO = 2 * dG2
        _store(dv + pn * C * D, -dO, r, d, C, D, D)
        tl.store(dgt + pn * C + r, dgn, mask=r < C)
        tl.store(dc + pn * C + r, dcn, mask=r < C)
        tl.store(dbeta + pn, tl.sum(db))
        tl.store(dkeep + pn, tl.sum(da))
        tl.store(dfbeta + pn, tl.sum(dfb))
        tl.debug_barrier()
        # pass C: per hidden tile, the forward pass backwards and the carried dL/dW, dL/dS
        dQ = tl.zeros((BC, BD), tl.float32)
        for j in range(0, HID, BH):
            W1 = _load(w1 + j, d, h, D, HID - j, HID)
            W2 = _load(w2 + j * D, h, d, HID - j, D, D)
            GW1 = _load(gw1 + j, d, h, D, HID - j, HID)
            GS1 = _load(gs1 + j, d, h, D, HID - j, HID)
            GW2 = _load(gw2 + j * D, h, d, HID - j, D, D)
            GS2 = _load(gs2 + j * D, h, d, HID - j, D, D)
            Zq, Zk = _mm(Q, W1, PREC), _mm(K, W1, PREC)
            P = _mm(G2, tl.trans(W2), PREC)
            dG1 = -(gn1 * _mm(K, GS1, PREC) + cn1 * _mm(K, GW1, PREC))
            dP = dG1 * _dsilu(Zk)
            dHk = _mm(dO, tl.trans(W2), PREC) - (gn2 * _mm(G2, tl.trans(GS2), PREC) + cn2 * _mm(G2, tl.trans(GW2), PREC))
            dZq = _mm(dY, tl.trans(W2), PREC) * _dsilu(Zq)
            dZk = dHk * _dsilu(Zk) + dG1 * P * _dsilu2(Zk)
            dQ += _mm(dZq, tl.trans(W1), PREC)
            dK += _mm(dZk, tl.trans(W1), PREC)
            GW2_new = (a * GW2 + _mm(tl.trans(dP), G2, PREC) + _mm(tl.trans(_silu(Zq)), dY, PREC)
                       + _mm(tl.trans(_silu(Zk)), dO, PREC))
            GW1_new = a * GW1 + _mm(tl.trans(Q), dZq, PREC) + _mm(tl.trans(K), dZk, PREC)
            _store(gs1 + j, b * GS1 + fb * GW1, d, h, D, HID - j, HID)
            _store(gs2 + j * D, b * GS2 + fb * GW2, h, d, HID - j, D, D)
            _store(gw1 + j, GW1_new, d, h, D, HID - j, HID)
            _store(gw2 + j * D, GW2_new, h, d, HID - j, D, D)
        _store(dqk + pn * 2 * C * D, dQ, r, d, C, D, D)
        _store(dqk + pn * 2 * C * D + C * D, dK, r, d, C, D, D)
        tl.debug_barrier()


def _blocks(C: int, D: int, hidden: int, dtype: torch.dtype) -> dict:
    """Block sizes (tl.dot wants ≥ 16) and the dot precision: exact float32 unless the inputs are 16-bit."""
    p2 = lambda n: max(16, triton.next_power_of_2(n))  # noqa: E731
    prec = "tf32" if dtype in (torch.bfloat16, torch.float16) else "ieee"
    return {"BC": p2(C), "BD": p2(D), "BH": min(HIDDEN_TILE, p2(hidden)), "PREC": prec}


def _f32(x: Tensor, rows: int) -> Tensor:
    """A float32 working copy shaped (rows, ...) of a (B, H, ...) tensor (expanded inputs welcome)."""
    out = torch.empty(x.shape, dtype=torch.float32, device=x.device)
    out.copy_(x)
    return out.view(rows, *x.shape[2:])


def _forward(qk: Tensor, v: Tensor, coef: tuple[Tensor, ...], L: int, state: State, save: bool):
    """Launch the forward kernel: y, the final state, and what the backward needs (with `save`, the
    chunk-start states and the anchors)."""
    B, H, N, C2, D = qk.shape
    C, n_seq = C2 // 2, B * H
    qk, v = qk.reshape(n_seq, N, C2, D).contiguous(), v.reshape(n_seq, N, C, D).contiguous()
    coef = [x.reshape(n_seq, *x.shape[2:]).float().contiguous() for x in coef]
    work = [_f32(x, n_seq) for x in state[: 2 * L]]
    anchor = [_f32(x, n_seq) for x in state[2 * L:]]
    starts = [x.new_empty(n_seq, N, *x.shape[1:]) for x in work] if save else work
    y = qk.new_empty(n_seq, N, C, D)
    hidden = work[0].shape[-1]
    blocks = _blocks(C, D, hidden, qk.dtype)
    m = anchor or work[:L]  # without an anchor the kernel never reads it
    if L == 1:
        blocks.pop("BH")
        _fwd1[(n_seq,)](qk, v, *coef, *work, *m, y, *starts, N, C, D, SAVE=save, ANCHOR=bool(anchor), **blocks)
    else:
        _fwd2[(n_seq,)](qk, v, *coef, *work, *m, y, *starts, N, C, D, hidden, SAVE=save, ANCHOR=bool(anchor),
                        num_warps=8, **blocks)
    out = [w.view(x.shape).to(x.dtype) for w, x in zip(work, state)]
    return y.view(B, H, N, C, D), out, (qk, v, coef, starts, anchor)


class TritonUpdate(torch.autograd.Function):
    """`chunk.ChunkUpdate` in Triton: same inputs (qk, v, c, gt, beta, keep, fbeta, L, *weights, *momentum,
    *anchor)."""

    @staticmethod
    def infer(qk: Tensor, v: Tensor, *args) -> tuple[Tensor, ...]:
        y, state, _ = _forward(qk, v, args[:5], args[5], args[6:], save=False)
        return (y, *state)

    @staticmethod
    def forward(ctx, qk: Tensor, v: Tensor, *args) -> tuple[Tensor, ...]:
        L = args[5]
        y, state, (qk2, v2, coef, starts, anchor) = _forward(qk, v, args[:5], L, args[6:], save=True)
        ctx.save_for_backward(qk2, v2, *coef, *starts, *anchor)
        ctx.meta = [(x.shape, x.dtype) for x in (qk, v, *args[:5], *args[6:])]
        ctx.layers = L
        return (y, *state)

    @staticmethod
    def backward(ctx, dy: Tensor, *dstate: Tensor) -> tuple[Tensor | None, ...]:
        qk, v, c, gt, beta, keep, fbeta, *rest = ctx.saved_tensors
        n_seq, N, C2, D = qk.shape
        C, L = C2 // 2, ctx.layers
        starts, anchor = rest[: 2 * L], rest[2 * L:]
        carry = [_f32(x, n_seq) for x in dstate]
        danchor = [torch.zeros_like(x) for x in anchor]
        m, dm = (anchor, danchor) if anchor else (carry[:L], carry[:L])  # never touched without an anchor
        dy = dy.reshape(n_seq, N, C, D).float().contiguous()
        dqk, dv = torch.empty(qk.shape, device=qk.device), torch.empty(v.shape, device=v.device)
        dcoef = [torch.empty_like(x) for x in (c, gt, beta, keep, fbeta)]
        hidden = carry[0].shape[-1]
        blocks = _blocks(C, D, hidden, qk.dtype)
        if L == 1:
            blocks.pop("BH")
            _bwd1[(n_seq,)](qk, v, c, gt, beta, keep, fbeta, *starts, *m, dy, *carry, *dm, dqk, dv, *dcoef, N, C, D,
                            ANCHOR=bool(anchor), **blocks)
        else:
            _bwd2[(n_seq,)](qk, v, c, gt, beta, keep, fbeta, *starts, *m, dy, *carry, *dm, dqk, dv, *dcoef,
                            N, C, D, hidden, ANCHOR=bool(anchor), num_warps=8, **blocks)
        grads = (dqk, dv, *dcoef, *carry, *danchor)
        out = tuple(g.view(shape).to(dtype) for g, (shape, dtype) in zip(grads, ctx.meta))
        return (*out[:7], None, *out[7:])


def memory_triton(
    q: Tensor, k: Tensor, v: Tensor,
    theta: Tensor, eta: Tensor, alpha: Tensor,
    weights: State, momentum: State,
    chunk_size: int, anchor: State | None = None,
) -> tuple[Tensor, State, State]:
    """Same contract as `naive.memory_naive`, through the Triton kernels (memory_depth 1 or 2)."""
    if len(weights) not in DEPTHS:
        raise ValueError(f"the Triton backend supports memory_depth in {DEPTHS}, got {len(weights)}")
    if not q.is_cuda and os.environ.get("TRITON_INTERPRET") != "1":
        raise RuntimeError("the Triton backend needs CUDA tensors (or TRITON_INTERPRET=1 to run on the CPU)")
    return chunked(TritonUpdate, q, k, v, theta, eta, alpha, weights, momentum, chunk_size, anchor)
