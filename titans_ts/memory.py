"""`NeuralMemory`: the long-term memory of Titans (paper §3), an MLP whose weights learn at test time.

Every token is projected to a key, value and query, `k, v, q = SiLU(DWConv(x W))` with q, k
ℓ2-normalised (§3.1); the memory is pulled towards `M(k_t) = v_t` by gradient descent with momentum
(surprise, eq 13) and forgetting (eq 14), with per-token gates θ_t, η_t, α_t, each layer's step normalised
by the energy of its input (`kernels.chunk.step_scale`). Reading is a forward
pass without update, `y_t = M*(q_t)` (eq 15). The update math lives in `titans_ts.kernels`.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from titans_ts.config import ALPHA_INIT, FORGET_TOWARD, check_positive_int
from titans_ts.kernels import BACKENDS, causal_conv_silu, memory_surprise, memory_update, mlp_forward
from titans_ts.state import MemoryState


class Surprise(NamedTuple):
    """Per-token surprise (paper eqs 12–13): `momentary`, the recall loss ‖M(k_t) − v_t‖² at the weights
    the token meets, and `past`, ‖η_t S_{t−1}‖, the momentum of earlier surprise it inherits."""

    momentary: Tensor
    past: Tensor


Memorize = bool | Tensor  # write every token (True), none (False), or per token: (B, T), 0 where a token is not written


def writes(memorize: Memorize) -> bool:
    """Whether any token may be written: a per-token mask writes (its zeros only scale θ_t to nothing)."""
    return memorize if isinstance(memorize, bool) else True


class NeuralMemory(nn.Module):
    """One neural-memory layer: `(x, state=None, memorize=True) -> (y, state)`, x of shape (B, T, d_model).

    `memorize` may be a (B, T) tensor instead of a flag: token t is written with its learning rate θ_t
    scaled by memorize[:, t], so a 0 is a step the memory reads but does not learn from (an observation
    that did not arrive); momentum and forgetting go on through it as through any step.

    Each of `heads` heads owns an MLP memory of depth `memory_depth` on d_model / heads features
    (hidden width `expansion` times that). Tokens are memorised in chunks of `chunk_size`; a partial
    chunk waits in the state until it fills, so a stream fed in any pieces equals one whole call.
    `max_lr` bounds a chunk's step (see `_gates`); `alpha_init` is the forgetting gate α_t at the start;
    `forget_toward` is "zero" (eq 14 as in the paper) or "initial": forgetting pulls the weights back to
    M_0, so a memory that forgets fast returns to what training taught it instead of to nothing.
    """

    def __init__(self, d_model: int, heads: int = 1, memory_depth: int = 2, expansion: int = 4,
                 chunk_size: int = 64, conv_kernel: int = 4, max_lr: float = 0.5,
                 alpha_init: float = ALPHA_INIT, backend: str = "auto", forget_toward: str = "zero"):
        super().__init__()
        for name, value in (("d_model", d_model), ("heads", heads), ("memory_depth", memory_depth),
                            ("expansion", expansion), ("chunk_size", chunk_size), ("conv_kernel", conv_kernel)):
            check_positive_int(f"NeuralMemory.{name}", value)
        if d_model % heads:
            raise ValueError(f"NeuralMemory.d_model ({d_model}) must be divisible by heads ({heads})")
        if not 0 < max_lr <= 1:
            raise ValueError(f"NeuralMemory.max_lr must be in (0, 1], got {max_lr!r}")
        if not 0 < alpha_init < 1:
            raise ValueError(f"NeuralMemory.alpha_init must be in (0, 1), got {alpha_init!r}")
        if backend not in BACKENDS:
            raise ValueError(f"NeuralMemory.backend must be one of {BACKENDS}, got {backend!r}")
        if forget_toward not in FORGET_TOWARD:
            raise ValueError(f"NeuralMemory.forget_toward must be one of {FORGET_TOWARD}, got {forget_toward!r}")
        self.d_model, self.heads, self.chunk_size = d_model, heads, chunk_size
        self.max_lr, self.backend, self.forget_toward = max_lr, backend, forget_toward
        dh = d_model // heads
        self.to_qkv = nn.Linear(d_model, 3 * d_model, bias=False)
        self.conv = nn.Conv1d(3 * d_model, 3 * d_model, conv_kernel, groups=3 * d_model)  # depthwise, causal
        self.to_gates = nn.Linear(d_model, 3 * heads)  # θ_t, η_t, α_t per head (eqs 10, 13, 14)
        self.out = nn.Linear(d_model, d_model, bias=False)
        dims = [dh] + [dh * expansion] * (memory_depth - 1) + [dh]
        # M_0: the memory's initial weights, learnt by the outer loop like any parameter
        self.initial = nn.ParameterList(
            nn.Parameter(torch.randn(heads, a, b) / math.sqrt(a)) for a, b in zip(dims, dims[1:]))
        with torch.no_grad():  # θ at half its bound, η = σ(1), α = alpha_init
            logit = math.log(alpha_init / (1 - alpha_init))
            self.to_gates.bias.copy_(torch.tensor([0.0, 1.0, logit]).repeat_interleave(heads))

    # -- state --------------------------------------------------------------------------------------
    def initial_state(self, batch_size: int, device=None, dtype=None) -> MemoryState:
        """Fresh memory: weights M_0, zero momentum, zero conv history, an empty chunk buffer."""
        p = self.initial[0]
        device, dtype = device or p.device, dtype or p.dtype
        st = fresh_state(tuple(self.initial), batch_size, device, dtype)
        st["conv"] = torch.zeros(batch_size, self.conv.kernel_size[0] - 1, 3 * self.d_model, device=device, dtype=dtype)
        return st

    # -- projections --------------------------------------------------------------------------------
    def _split(self, t: Tensor) -> Tensor:  # (B, T, d) -> (B, H, T, d/H)
        return t.unflatten(-1, (self.heads, -1)).transpose(1, 2)

    def _project(self, x: Tensor, st: MemoryState) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        """k, v, q (B, H, T, dh) through SiLU(DWConv(x W)) with the conv history from `st`; new history."""
        feats = torch.cat([st["conv"], self.to_qkv(x)], dim=1)
        mixed = causal_conv_silu(feats, self.conv.weight[:, 0].t().contiguous(), self.conv.bias)
        qk = _unit(mixed[..., : 2 * self.d_model].unflatten(-1, (2 * self.heads, -1)))  # q, k per head at unit length
        q, k = (t.transpose(1, 2) for t in qk.chunk(2, dim=2))
        history = feats[:, feats.shape[1] - st["conv"].shape[1]:].clone()  # a copy, so that feats can be freed
        return k, self._split(mixed[..., 2 * self.d_model:]), q, history

    def _gates(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        g = torch.sigmoid(self.to_gates(x)).transpose(1, 2).unflatten(1, (3, self.heads))  # (B, 3, H, T)
        rate, eta, alpha = g.unbind(1)  # θ_t's rate, momentum η_t, forgetting α_t (eqs 13, 14)
        # learning rate θ_t (eq 13), scaled so that a chunk moves the memory by at most `max_lr` times its
        # mean gradient, however large η_t; the kernels scale each layer's gradient by 1 / max(1, ‖input‖²)
        # (normalised LMS), so the update stays stable even when the keys are all alike or the hidden
        # activations grow
        theta = self.max_lr / self.chunk_size * (1 - eta) * rate
        return theta, eta, alpha

    def _check(self, x: Tensor, state: MemoryState | None) -> MemoryState:
        if x.dim() != 3 or x.shape[-1] != self.d_model:
            raise ValueError(f"NeuralMemory expects x of shape (batch, time, {self.d_model}), got {tuple(x.shape)}")
        if state is None:
            return self.initial_state(x.shape[0], x.device, x.dtype)
        if state.batch_size != x.shape[0]:
            raise ValueError(f"state holds batch size {state.batch_size} but x has {x.shape[0]}")
        return state

    # -- forward ------------------------------------------------------------------------------------
    def forward(self, x: Tensor, state: MemoryState | None = None,
                memorize: Memorize = True) -> tuple[Tensor, MemoryState]:
        """Read the memory for every token and (if `memorize`) write every completed chunk into it."""
        st = self._check(x, state)
        q, parts, new = self._prepare(x, st, memorize)
        y, new = stream(q, parts, st, new, self.chunk_size, writes(memorize), self.backend, self._anchor())
        return self.out(y.transpose(1, 2).flatten(2)), new

    def surprise(self, x: Tensor, state: MemoryState | None = None,
                 memorize: Memorize = True) -> tuple[Surprise, MemoryState]:
        """Momentary and past surprise of every token, each (B, T, H), and the new state (see `Surprise`).

        Each token is scored at the weights it meets, before its own chunk is memorised: how badly the
        memory recalls the association it is about to learn. `memorize=False` scores without learning.
        """
        st = self._check(x, state)
        _, parts, new = self._prepare(x, st, memorize)
        parts, n_buf = buffered(parts, st)
        momentary, past, w, s = memory_surprise(*parts.values(), weights_of(st, "w"), weights_of(st, "s"),
                                                self.chunk_size, writes(memorize), self._anchor())
        if writes(memorize):
            new = commit(new, parts, w, s, self.chunk_size)
        return Surprise(momentary[:, :, n_buf:].transpose(1, 2), past[:, :, n_buf:].transpose(1, 2)), new

    def _anchor(self) -> tuple[Tensor, ...] | None:
        """What forgetting pulls the weights towards (eq 14): M_0, or None for zero."""
        return tuple(self.initial) if self.forget_toward == "initial" else None

    def _prepare(self, x: Tensor, st: MemoryState,
                 memorize: Memorize) -> tuple[Tensor, dict[str, Tensor], MemoryState]:
        """Queries, then k, v, θ, η, α of x (θ scaled per token by a `memorize` mask), and the state with
        its new conv history."""
        if isinstance(memorize, Tensor) and memorize.shape != x.shape[:2]:
            raise ValueError(f"memorize must be a flag or hold one weight per token, shape {tuple(x.shape[:2])}, "
                             f"got {tuple(memorize.shape)}")
        k, v, q, conv = self._project(x, st)
        new = MemoryState(st)
        new["conv"] = conv
        theta, eta, alpha = self._gates(x)
        if isinstance(memorize, Tensor):
            theta = theta * memorize[:, None].to(theta.dtype)  # eq 13, a step not observed learns nothing
        return q, {"k": k, "v": v, "theta": theta, "eta": eta, "alpha": alpha}, new

    def lookup(self, q: Tensor, state: MemoryState) -> Tensor:
        """M*(q) for queries already projected, (B, T, d_model), at the state's weights; no update."""
        qh = _unit(self._split(q))
        return self.out(mlp_forward(weights_of(state, "w"), qh).transpose(1, 2).flatten(2))


def _unit(x: Tensor, eps: float = 1e-12) -> Tensor:
    """x / max(‖x‖, eps) over the last dimension (ℓ2 normalisation, §3.1), in two fused passes."""
    return x * x.square().sum(-1, keepdim=True).clamp_min(eps * eps).rsqrt()


# -- the write path every memory shares: given keys, values and gates, streamed in chunks -------------
def fresh_state(initial: tuple[Tensor, ...], batch_size: int, device=None, dtype=None) -> MemoryState:
    """A memory before its first write: weights M_0 (`initial`, one (H, d_in, d_out) per layer), zero
    momentum, and an empty buffer for the partial chunk."""
    st = MemoryState()
    for i, w in enumerate(initial):
        st[f"w.{i}"] = w.to(device, dtype).unsqueeze(0).expand(batch_size, *w.shape)
        st[f"s.{i}"] = torch.zeros(batch_size, *w.shape, device=device, dtype=dtype)
    heads, d_key, d_value = initial[0].shape[0], initial[0].shape[1], initial[-1].shape[-1]
    for name, dim in (("k", d_key), ("v", d_value)):
        st[f"buf.{name}"] = torch.zeros(batch_size, heads, 0, dim, device=device, dtype=dtype)
    for name in ("theta", "eta", "alpha"):
        st[f"buf.{name}"] = torch.zeros(batch_size, heads, 0, device=device, dtype=dtype)
    return st


def weights_of(st: MemoryState, kind: str) -> tuple[Tensor, ...]:
    """The memory's weights ("w") or momentum ("s"), one tensor per layer."""
    return tuple(st[f"{kind}.{i}"] for i in range(sum(k.startswith(f"{kind}.") for k in st)))


def buffered(parts: dict[str, Tensor], st: MemoryState) -> tuple[dict[str, Tensor], int]:
    """k, v, θ, η, α with the partial chunk waiting in `st` in front, and that chunk's length."""
    n_buf = st["buf.k"].shape[2]
    return {n: torch.cat([st[f"buf.{n}"], t], dim=2) if n_buf else t for n, t in parts.items()}, n_buf


def commit(new: MemoryState, parts: dict[str, Tensor], w: tuple[Tensor, ...], s: tuple[Tensor, ...],
           chunk_size: int) -> MemoryState:
    """The state after a write: weights and momentum, and the partial chunk left waiting."""
    for i in range(len(w)):
        new[f"w.{i}"], new[f"s.{i}"] = w[i], s[i]
    keep = parts["k"].shape[2] % chunk_size
    for name, t in parts.items():
        new[f"buf.{name}"] = t[:, :, t.shape[2] - keep:]
    return new


def stream(q: Tensor, parts: dict[str, Tensor], st: MemoryState, new: MemoryState, chunk_size: int,
           memorize: bool = True, backend: str = "auto",
           anchor: tuple[Tensor, ...] | None = None) -> tuple[Tensor, MemoryState]:
    """Read M(q_t) for every query (B, H, T, d) and, with `memorize`, write every completed chunk of
    `parts` (k, v (B, H, T, ·); θ, η, α (B, H, T)) after the partial chunk waiting in `st` (eqs 13–14),
    forgetting towards `anchor` (None: zero).

    A token is read at the weights its chunk started with, so a stream cut into pieces of any lengths
    gives what one call gives. Returns y (B, H, T, d_out) and `new` with the memory written into it.
    """
    w, s = weights_of(st, "w"), weights_of(st, "s")
    if not memorize:
        return mlp_forward(w, q), new
    parts, n_buf = buffered(parts, st)
    if parts["k"].shape[2] < chunk_size:  # no chunk completes: read at the current weights, the tokens wait
        return mlp_forward(w, q), commit(new, parts, w, s, chunk_size)
    if n_buf:  # buffered tokens were read in an earlier call
        q = torch.cat([q.new_zeros(*q.shape[:2], n_buf, q.shape[-1]), q], dim=2)
    y, w, s = memory_update(q, *parts.values(), w, s, chunk_size, backend, anchor)
    return y[:, :, n_buf:], commit(new, parts, w, s, chunk_size)
