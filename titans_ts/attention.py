"""Short-term memory: causal sliding-window attention with persistent tokens (paper §3.3, §4).

Each query sees the `window` most recent positions (itself included) and the learnable persistent
tokens, which hold task knowledge independent of the input. A long input is processed in blocks of
`window` queries, each against its own `2·window − 1` keys, so compute and memory are O(T·w), never T×T;
an input of at most `DENSE` windows is one masked block (fewer, larger products: faster at that size).
Streaming keeps a KV cache of the last `window − 1` positions. Rotary embeddings give positions.
"""
from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from titans_ts.state import MemoryState

DENSE = 4  # inputs of at most this many windows attend in one masked block


@functools.lru_cache(maxsize=16)
def _frequencies(dim: int, device: torch.device, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    """Each feature's angular frequency (features i and i + dim/2 turn together; an odd dim's last stays)
    and the sign its sine takes in the rotation."""
    half = dim // 2
    f = 10000.0 ** (-torch.arange(half, device=device, dtype=dtype) / half)
    one, rest = torch.ones_like(f), f.new_zeros(dim - 2 * half)
    return torch.cat([f, f, rest]), torch.cat([-one, one, rest])


def rotary(pos: Tensor, *xs: Tensor) -> tuple[Tensor, ...]:
    """Rotary position embedding of each x (B, H, T, D) at integer positions `pos` (T,), one angle table for all:
    x = (a, b) becomes x cos + (b, a) · (−sin, sin), each pair (a_i, b_i) turned by its frequency times pos."""
    D = xs[0].shape[-1]
    half = D // 2
    if half == 0:
        return xs
    freq, sign = _frequencies(D, xs[0].device, xs[0].dtype)
    angle = pos.to(xs[0].dtype)[:, None] * freq
    cos, sin = angle.cos(), angle.sin() * sign
    return tuple(torch.addcmul(x * cos, torch.cat([x[..., half: 2 * half], x[..., :half], x[..., 2 * half:]], dim=-1),
                               sin) for x in xs)


class Attention(nn.Module):
    """Multi-head attention with persistent tokens; `forward` slides a window, `segment` serves MAC."""

    def __init__(self, d_model: int, heads: int, window: int, persistent_tokens: int):
        super().__init__()
        self.d_model, self.heads, self.window = d_model, heads, window
        self.qkv = nn.Linear(d_model, 3 * d_model, bias=False)
        self.out = nn.Linear(d_model, d_model, bias=False)
        self.persistent = nn.Parameter(torch.randn(persistent_tokens, d_model) * 0.02)  # P = [p_1 … p_Np] (eq 19)

    def _split(self, t: Tensor) -> Tensor:
        return t.unflatten(-1, (self.heads, -1)).transpose(1, 2)

    def _merge(self, t: Tensor) -> Tensor:
        return self.out(t.transpose(1, 2).flatten(2))

    def _persistent_kv(self, batch: int) -> tuple[Tensor, Tensor]:
        _, k, v = self.qkv(self.persistent).chunk(3, dim=-1)
        return (self._split(t.unsqueeze(0)).expand(batch, -1, -1, -1) for t in (k, v))

    @staticmethod
    def _attend(q: Tensor, keys: Tensor, vals: Tensor, allowed: Tensor | None, n_persistent: int) -> Tensor:
        """softmax(q keysᵀ / √D, masked where not `allowed`) vals; q (B, H, n, D), keys (B, H, Np + m, D) with the
        persistent tokens' Np first (always seen), allowed (n, m) or None for all: one block, in the fused kernel."""
        if allowed is not None:
            allowed = torch.cat([allowed.new_ones(allowed.shape[0], n_persistent), allowed], dim=-1)
        return F.scaled_dot_product_attention(q, keys, vals, attn_mask=allowed)

    @staticmethod
    def _attend_blocks(q: Tensor, keys: Tensor, vals: Tensor, allowed: Tensor) -> Tensor:
        """The same for blocks, q (B, H, nb, bq, D) against their own keys (B, H, nb, m, D), the persistent
        tokens' first, allowed (nb, bq, m): many small products, faster by hand than through the fused kernel."""
        s = (q * (1 / math.sqrt(q.shape[-1]))) @ keys.transpose(-1, -2)
        return torch.softmax(s.masked_fill_(~allowed, float("-inf")), dim=-1) @ vals

    def forward(self, x: Tensor, state: MemoryState | None = None) -> tuple[Tensor, MemoryState]:
        """Sliding-window attention over x (B, T, d) continuing the stream in `state`."""
        B, n, _ = x.shape
        w, P, H = self.window, self.window - 1, self.heads
        qkv = self.qkv(x).unflatten(-1, (3 * H, -1)).transpose(1, 2)  # (B, 3H, n, D): q, k, v heads
        D = qkv.shape[-1]
        if state is None:
            ck = x.new_zeros(B, self.heads, 0, D)
            state = MemoryState(k=ck, v=ck, pos=torch.zeros((), dtype=torch.long, device=x.device))
        start = int(state["pos"])
        pos = torch.arange(start, start + n, device=x.device)
        qk, = rotary(pos, qkv[:, : 2 * H])  # q and k turned in one pass
        q, k, v = qk[:, :H], qk[:, H:], qkv[:, 2 * H:]
        kp, vp = self._persistent_kv(B)
        Np, cached = kp.shape[2], state["k"].shape[2]
        keys, vals = torch.cat([kp, state["k"], k], dim=2), torch.cat([vp, state["v"], v], dim=2)
        keep = min(P, cached + n)
        new = MemoryState(k=keys[:, :, keys.shape[2] - keep:], v=vals[:, :, vals.shape[2] - keep:],
                          pos=state["pos"] + n)
        if n == 1:  # one query (a stream's step) sees every cached key: no mask
            return self._merge(self._attend(q, keys, vals, None, Np)), new
        if n <= DENSE * w:  # one block: query j sees keys cached + j − P … cached + j
            j = torch.arange(cached, cached + n, device=x.device)[:, None]
            m = torch.arange(cached + n, device=x.device)[None, :]
            return self._merge(self._attend(q, keys, vals, (m <= j) & (m >= j - P), Np)), new
        bq = w  # queries per block
        nb = -(-n // bq)
        pad_left, pad_right = P - cached, nb * bq - n
        valid = F.pad(torch.ones(cached + n, dtype=torch.bool, device=x.device), (pad_left, pad_right))
        # block b holds queries [b·bq, (b+1)·bq) and keys [b·bq − P, (b+1)·bq), i.e. bq + P of them, after the
        # persistent tokens' Np
        kwin, vwin = (torch.cat([p.unsqueeze(2).expand(-1, -1, nb, -1, -1),
                                 F.pad(t[:, :, Np:], (0, 0, pad_left, pad_right)).unfold(2, bq + P, bq).transpose(-1, -2)],
                                dim=3) for p, t in ((kp, keys), (vp, vals)))  # (B, H, nb, Np + bq + P, D)
        j = torch.arange(bq, device=x.device)[:, None]
        m = torch.arange(bq + P, device=x.device)[None, :]
        band = (m >= j) & (m <= j + P) & valid.unfold(0, bq + P, bq)[:, None, :]  # key m is one of the w most recent
        band = torch.cat([band.new_ones(nb, bq, Np), band], dim=-1)
        qb = F.pad(q, (0, 0, 0, pad_right)).unflatten(2, (nb, bq))
        return self._merge(self._attend_blocks(qb, kwin, vwin, band).flatten(2, 3)[:, :, :n]), new

    def segment(self, x: Tensor, h: Tensor) -> Tensor:
        """MAC attention over [persistent ‖ h ‖ x] for one segment (eq 22): token i sees h_j and x_j for j ≤ i."""
        B, n, _ = x.shape
        q, k, v = (self._split(t) for t in self.qkv(x).chunk(3, dim=-1))
        _, kh, vh = (self._split(t) for t in self.qkv(h).chunk(3, dim=-1))
        pos = torch.arange(n, device=x.device)
        q, k, kh = rotary(pos, q, k, kh)
        causal = torch.ones(n, n, dtype=torch.bool, device=x.device).tril()
        kp, vp = self._persistent_kv(B)
        keys, vals = torch.cat([kp, kh, k], dim=2), torch.cat([vp, vh, v], dim=2)
        return self._merge(self._attend(q, keys, vals, causal.repeat(1, 2), kp.shape[2]))
