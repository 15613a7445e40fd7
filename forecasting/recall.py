"""`RecallMemory`: what followed the last time the series looked like this, learnt at test time.

The encoder's memory learns k_t -> v_t of one step (paper eq 12). A forecast asks memory something else:
what came after windows like the present one. `RecallMemory` is a Titans memory (gradient descent with
momentum and forgetting, eqs 13-14, written a chunk at a time, eqs 16-18) fed with explicit pairs: at
step t, once the `horizon` values after the window that ended at t - horizon have all arrived, it writes
that window (the key) with what followed it (the value), and the window of now is the query. A pattern
met once is recalled when it returns, however far beyond the attention window, and the memory learns
while forecasting exactly as it did in training.

Keys are sparse codes of where the series stands: the window less its level, at unit length, through a
wide random layer whose bias leaves about 2% of the features on (relu(W u + b), W ~ N(0, 1), b = -2), plus a
learnt map of the encoder's output at the window's last step (zero at the start), then at unit length again.
The window tells shapes apart; the encoder's output, fed by its own memory, carries what lies beyond the
window (the hour of the day, the phase of a slow pattern), so that the same shape at different points of
the stream can be told apart. Two keys share features only when they look alike, so a linear memory over
a few thousand features tells hundreds of patterns apart. Values are how far the forecast made from that
window missed, in the first `value_dim` cosines of the horizon (orthonormal DCT-II: lossless up to that
length, the smooth part beyond). The memory starts empty (M_0 = 0), so it adds nothing until it has seen
something.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from titans_ts import MemoryState
from titans_ts.memory import fresh_state, stream


def cosine_basis(length: int, size: int) -> Tensor:
    """The first `size` orthonormal DCT-II vectors of `length` steps, as columns (length, size)."""
    t = torch.arange(length, dtype=torch.float64) + 0.5
    f = torch.arange(size, dtype=torch.float64)
    basis = torch.cos(math.pi / length * t[:, None] * f[None]) * math.sqrt(2 / length)
    basis[:, 0] /= math.sqrt(2)
    return basis.float()


class RecallMemory(nn.Module):
    """`(now, then, context_now, context_then, missed, known, state, memorize) -> (correction, state)`.

    `now` and `then` are the windows (B, T, n, L; in values, their level is removed here) ending at each
    step and `horizon` steps before it, `context_now` and `context_then` the encoder's outputs (B, T,
    d_context) at their last steps, `missed` (B, T, n, horizon) what followed `then` less the forecast made
    from it, and `known` (B, T) the weight of each pair's write: 1 for a pair whose future has arrived, the
    share that did where some of it is missing, 0 where none did or it is no pair yet. The correction is the recalled miss for `now`, per step.
    """

    def __init__(self, n_inputs: int, lookback: int, horizon: int, d_context: int, features: int = 2048,
                 value_dim: int = 64, chunk_size: int = 16):
        super().__init__()
        self.chunk_size = chunk_size
        self.cue = nn.Linear(n_inputs * lookback, features)
        with torch.no_grad():  # z = W u ~ N(0, 1) for a unit shape u; z - 2 > 0 for about 2% of the features
            self.cue.weight.normal_()
            self.cue.bias.fill_(-2.0)
        # the learnt part of the key: the encoder's output, which its own memory has fed with the stream
        # beyond the window; it starts at zero, so training decides what of it tells patterns apart
        self.context = nn.Linear(d_context, features, bias=False)
        nn.init.zeros_(self.context.weight)
        self.register_buffer("basis", cosine_basis(horizon, min(value_dim, horizon)), persistent=False)
        # θ, η, α (eqs 13-14) as learnt logits. θ_t = (1 − η) σ(·) / chunk: with momentum the steps add up to
        # at most 1 / chunk, stable even when a chunk's keys are all alike; θ starts near half that, where a
        # lone unit key is written exactly. Little momentum, slow forgetting.
        self.gates = nn.Parameter(torch.tensor([0.0, -4.0, -8.0]))
        self.gain = nn.Parameter(torch.ones(horizon))  # how much of the recalled miss each step trusts
        self.register_buffer("initial", torch.zeros(1, features, n_inputs * self.basis.shape[1]), persistent=False)

    def code(self, win: Tensor, context: Tensor) -> Tensor:
        """Sparse unit codes (B, 1, T, features) of windows (B, T, n, L), by their shape, not their level,
        and of the encoder's output (B, T, d_context) at their last step."""
        u = F.normalize((win - win.mean(-1, keepdim=True)).flatten(2), dim=-1)
        return F.normalize(F.relu(self.cue(u) + self.context(context)), dim=-1)[:, None]

    def forward(self, now: Tensor, then: Tensor, context_now: Tensor, context_then: Tensor, missed: Tensor,
                known: Tensor, state: MemoryState | None = None, memorize: bool = True) -> tuple[Tensor, MemoryState]:
        B, T, n, H = missed.shape
        st = state if state is not None else fresh_state((self.initial,), B, now.device, now.dtype)
        rate, eta, alpha = torch.sigmoid(self.gates)
        theta = (1 - eta) * rate
        gate = lambda g: g.expand(B, 1, T)  # noqa: E731
        parts = {"k": self.code(then, context_then), "v": (missed @ self.basis).flatten(2)[:, None],
                 "theta": (theta / self.chunk_size) * known[:, None].to(now.dtype), "eta": gate(eta),
                 "alpha": gate(alpha)}
        y, st = stream(self.code(now, context_now), parts, st, MemoryState(st), self.chunk_size, memorize)
        return (y[:, 0].unflatten(-1, (n, -1)) @ self.basis.T) * self.gain, st
