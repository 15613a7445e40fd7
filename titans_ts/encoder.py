"""`TitansEncoder`: a stack of Titans blocks over a (batch, time, d_model) stream, with streaming state."""
from __future__ import annotations

import math
from functools import partial

import torch
from torch import Tensor, nn

from titans_ts.blocks import BLOCKS, part
from titans_ts.config import TitansConfig
from titans_ts.memory import Memorize, Surprise
from titans_ts.state import MemoryState

SEGMENT = 4096  # tokens per piece when a long input is read without gradients (rounded to whole windows and chunks)


class TitansEncoder(nn.Module):
    """`enc(x, state=None, memorize=True) -> (y, state)`: y has x's shape, state continues the stream.

    Calling with the returned state on the next piece of the sequence gives the same outputs as one call
    on the whole sequence. `memorize=False` reads the memory without writing to it; a (batch, time) tensor
    weighs each token's write instead (0: read, not learnt, as `NeuralMemory` says). Without gradients a long
    input is read that way, in segments of about `SEGMENT` tokens with the state carried (equality 3), so that
    every intermediate stays a segment long and in cache, whatever T.
    """

    def __init__(self, config: TitansConfig):
        super().__init__()
        if not isinstance(config, TitansConfig):
            raise TypeError(f"TitansEncoder expects a TitansConfig, got {type(config).__name__}")
        self.config = config
        self.layers = nn.ModuleList(BLOCKS[config.variant](config) for _ in range(config.n_layers))
        self.norm = nn.RMSNorm(config.d_model)

    def forward(self, x: Tensor, state: MemoryState | None = None,
                memorize: Memorize = True) -> tuple[Tensor, MemoryState]:
        if not isinstance(x, Tensor) or not x.is_floating_point():
            raise TypeError(f"x must be a floating-point torch.Tensor, got {type(x).__name__}"
                            + (f" of {x.dtype}" if isinstance(x, Tensor) else ""))
        if x.dim() != 3 or x.shape[-1] != self.config.d_model or x.shape[1] == 0:
            raise ValueError(f"x must have shape (batch, time >= 1, {self.config.d_model}), got {tuple(x.shape)}")
        if state is not None and state.batch_size != x.shape[0]:
            raise ValueError(f"state holds batch size {state.batch_size} but x has {x.shape[0]}")
        c = self.config
        step = math.lcm(c.window, c.chunk_size)
        segment = -(-SEGMENT // step) * step
        if torch.is_grad_enabled() or x.shape[1] <= segment:
            return self._layers(x, state, memorize)
        ys = []
        for a in range(0, x.shape[1], segment):
            y, state = self._layers(x[:, a: a + segment], state,
                                    memorize if isinstance(memorize, bool) else memorize[:, a: a + segment])
            ys.append(y)
        return torch.cat(ys, dim=1), state

    def _layers(self, x: Tensor, state: MemoryState | None, memorize: Memorize) -> tuple[Tensor, MemoryState]:
        """Every layer over x in one call, then the final norm."""
        states = {}
        for i, layer in enumerate(self.layers):
            x, states[f"layers.{i}"] = layer(x, part(state, f"layers.{i}"), memorize)
        return self.norm(x), MemoryState.join(**states)

    @torch.no_grad()
    def surprise(self, x: Tensor, state: MemoryState | None = None,
                 memorize: Memorize = True) -> tuple[Surprise, Tensor, MemoryState]:
        """Every layer's surprise at every step, `Surprise` of (B, T, n_layers) tensors (mean over heads); y; state.

        The same stream as `forward` (same outputs and state), with each memory also scoring how badly it
        recalled each token before learning it (eq 12) and the momentum it carried in (eq 13): large where
        the stream stops being predictable.
        """
        records: list[list[Surprise]] = [[] for _ in self.layers]

        def record(i: int, memory: nn.Module, args: tuple, output) -> None:
            records[i].append(memory.surprise(*args)[0])

        hooks = [layer.memory.register_forward_hook(partial(record, i)) for i, layer in enumerate(self.layers)]
        try:
            y, state = self._layers(x, state, memorize)  # one call: a MAC block re-reads at each call's start
        finally:
            for h in hooks:
                h.remove()
        T = x.shape[1]  # a MAC block also re-reads its unfinished segment: keep this call's steps
        per_layer = [[torch.cat([r[j] for r in rs], dim=1)[:, -T:].mean(-1) for rs in records] for j in range(2)]
        return Surprise(*(torch.stack(p, dim=-1) for p in per_layer)), y, state
