"""The Titans blocks (paper §4): how the long-term memory meets attention, one class per variant.

Every block is pre-norm residual with a feed-forward, `(x, state, memorize) -> (x, state)`:
  LMM  memory alone:            x += Mem(x)
  MAL  memory as a layer:       x += Mem(x); x += SWA(x)
  MAG  memory as a gate:        x += Gate(SWA(x), Mem(x))
  MAC  memory as context:       per segment, h = M*(x); y = x + Attn([P ‖ h ‖ x]); store y; x = y + Gate(y, M*(y))
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from titans_ts.attention import Attention
from titans_ts.config import TitansConfig
from titans_ts.memory import Memorize, NeuralMemory
from titans_ts.state import MemoryState


def part(state: MemoryState | None, name: str) -> MemoryState | None:
    return None if state is None else state.scope(name)


class Gate(nn.Module):
    """o = W (norm(a) ⊙ σ(norm(m))): the normalised, non-linear gate between attention and memory."""

    def __init__(self, d_model: int):
        super().__init__()
        self.norm_a, self.norm_m = nn.RMSNorm(d_model), nn.RMSNorm(d_model)
        self.out = nn.Linear(d_model, d_model, bias=False)

    def forward(self, a: Tensor, m: Tensor) -> Tensor:
        return self.out(self.norm_a(a) * torch.sigmoid(self.norm_m(m)))


class Block(nn.Module):
    """What every variant shares: the memory, the input norm, the feed-forward and dropout."""

    def __init__(self, c: TitansConfig):
        super().__init__()
        self.norm = nn.RMSNorm(c.d_model)
        self.memory = NeuralMemory(c.d_model, c.heads, c.memory_depth, c.memory_expansion, c.chunk_size,
                                   c.conv_kernel, c.memory_lr, c.alpha_init, c.backend, c.forget_toward)
        self.norm_ff = nn.RMSNorm(c.d_model)
        self.ff = nn.Sequential(nn.Linear(c.d_model, c.ff_mult * c.d_model), nn.GELU(),
                                nn.Linear(c.ff_mult * c.d_model, c.d_model))
        self.drop = nn.Dropout(c.dropout)

    def feed_forward(self, x: Tensor) -> Tensor:
        return x + self.drop(self.ff(self.norm_ff(x)))


class LMMBlock(Block):
    def forward(self, x: Tensor, state: MemoryState | None, memorize: Memorize = True) -> tuple[Tensor, MemoryState]:
        m, ms = self.memory(self.norm(x), part(state, "memory"), memorize)
        return self.feed_forward(x + self.drop(m)), MemoryState.join(memory=ms)


class MALBlock(Block):
    def __init__(self, c: TitansConfig):
        super().__init__(c)
        self.norm_attn = nn.RMSNorm(c.d_model)
        self.attn = Attention(c.d_model, c.heads, c.window, c.persistent_tokens)

    def forward(self, x: Tensor, state: MemoryState | None, memorize: Memorize = True) -> tuple[Tensor, MemoryState]:
        m, ms = self.memory(self.norm(x), part(state, "memory"), memorize)
        x = x + self.drop(m)
        a, as_ = self.attn(self.norm_attn(x), part(state, "attn"))
        return self.feed_forward(x + self.drop(a)), MemoryState.join(memory=ms, attn=as_)


class MAGBlock(Block):
    def __init__(self, c: TitansConfig):
        super().__init__(c)
        self.attn = Attention(c.d_model, c.heads, c.window, c.persistent_tokens)
        self.gate = Gate(c.d_model)

    def forward(self, x: Tensor, state: MemoryState | None, memorize: Memorize = True) -> tuple[Tensor, MemoryState]:
        u = self.norm(x)
        a, as_ = self.attn(u, part(state, "attn"))
        m, ms = self.memory(u, part(state, "memory"), memorize)
        return self.feed_forward(x + self.drop(self.gate(a, m))), MemoryState.join(memory=ms, attn=as_)


class MACBlock(Block):
    """Segments of `window` tokens; the state keeps the memory as of the last segment boundary and the
    inputs of the unfinished segment (with their write weights), which is recomputed when more tokens arrive."""

    def __init__(self, c: TitansConfig):
        super().__init__(c)
        self.window = c.window
        self.query = nn.Linear(c.d_model, c.d_model, bias=False)
        self.attn = Attention(c.d_model, c.heads, c.window, c.persistent_tokens)
        self.norm_y = nn.RMSNorm(c.d_model)
        self.gate = Gate(c.d_model)

    def segment(self, x: Tensor, mem: MemoryState, memorize: Memorize) -> tuple[Tensor, MemoryState]:
        u = self.norm(x)
        h = self.memory.lookup(self.query(u), mem)  # retrieve h = M*_{t−1}(q)  (eq 21)
        y = x + self.drop(self.attn.segment(u, h))  # attend over [P ‖ h ‖ S]  (eq 22)
        r, mem = self.memory(self.norm_y(y), mem, memorize)  # store the attention output, read back  (eqs 23–24)
        return y + self.drop(self.gate(y, r)), mem  # o = y ⊗ M*(y)  (eq 25)

    def forward(self, x: Tensor, state: MemoryState | None, memorize: Memorize = True) -> tuple[Tensor, MemoryState]:
        mem = part(state, "memory") or self.memory.initial_state(x.shape[0], x.device, x.dtype)
        seg = state["seg"] if state is not None else x[:, :0]
        xs = torch.cat([seg, x], dim=1)
        # write weights of the unfinished segment's tokens (a state from before they were kept: all written)
        before = state["seg_write"] if state is not None and "seg_write" in state else x.new_ones(seg.shape[:2])
        now = memorize if isinstance(memorize, Tensor) else x.new_full(x.shape[:2], float(memorize))
        write = torch.cat([before, now.to(x.dtype)], dim=1)
        outs = []
        for start in range(0, xs.shape[1], self.window):
            o, after = self.segment(xs[:, start: start + self.window], mem,
                                    memorize if isinstance(memorize, bool) else write[:, start: start + self.window])
            if o.shape[1] == self.window:
                mem = after  # an unfinished segment is redone from `mem` when it grows
            outs.append(o)
        done = xs.shape[1] // self.window * self.window
        y = torch.cat(outs, dim=1)[:, seg.shape[1]:]
        return self.feed_forward(y), MemoryState.join(memory=mem, seg=xs[:, done:], seg_write=write[:, done:])


BLOCKS = {"lmm": LMMBlock, "mal": MALBlock, "mag": MAGBlock, "mac": MACBlock}
