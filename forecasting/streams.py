"""`Streams`: where every series of the forecaster stands, in one batched state, and how new rows stream on.

Row i of every field belongs to series `keys[i]`. The network's memory state (`MemoryState`, batch first,
`lanes` lanes per series: one per channel, or one for all channels when they are mixed) is kept in
`MemoryGroup`s, each the batched state of the series that last streamed together. `advance` streams new
rows into any subset of the series, any number of rows each: the series whose states have the same shapes
and positions (the same rows streamed, as in a panel sampled on one clock) and that get as many new rows
go through the network in one pass, in row order whatever groups they come from, and become one group;
a series that gets no rows keeps its state bit for bit, and is not copied.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
import torch
from torch import Tensor

from titans_ts import MemoryState

from .model import ForecastNet
from .scaling import Scaler

PIECE = 2048  # steps per no-grad network call at most: bounds memory on long series
LANE_STEPS = 1 << 14  # lanes × steps per call at most: bounds memory on wide panels (a lane's memory
# gradients of a chunk are as large as its weights, so a call's memory grows with lanes × steps)


@dataclass
class MemoryGroup:
    """Series `rows` (ascending) whose states lie in one batched `memory`, series rows[i] at batch slot
    `slots[i]` (its lanes slots[i]·lanes …); a slot no row points at holds a series that has streamed on
    elsewhere since. `memory` None: not streamed yet (the net starts from its initial weights)."""

    rows: np.ndarray
    slots: np.ndarray
    memory: MemoryState | None

    def size(self, lanes: int) -> int:
        """Slots in `memory`."""
        return len(self.rows) if self.memory is None else self.memory.batch_size // lanes


@dataclass
class Streams:
    """Every series' stream: its memory (in `groups`), the statistics its values are read in (`scaler`,
    one row per series), the values before its next step (`context`, (S, lanes, context_length, n)), the
    forecast made at its last row (`point` (S, C, H), `quant` (S, C, H, Q), in scaled units; NaN before
    any row), rows streamed (`seen`), last time stamp and sampling step (NaT without time stamps)."""

    keys: list
    lanes: int
    groups: list[MemoryGroup]
    scaler: Scaler
    context: Tensor
    point: Tensor
    quant: Tensor
    seen: np.ndarray
    last_time: np.ndarray
    step: np.ndarray

    def __post_init__(self):
        self.rows = {key: i for i, key in enumerate(self.keys)}  # series key -> row

    @classmethod
    def fresh(cls, keys: list, net: ForecastNet, n_channels: int, scaler: Scaler) -> Streams:
        """Streams of `keys` (read in `scaler`'s rows, one per key) before their first row."""
        S, lanes = len(keys), n_channels // net.n
        ctx = net.initial_context(S * lanes, torch.float32)
        nan = torch.full((S, n_channels, net.horizon), float("nan"))
        return cls(list(keys), lanes, [MemoryGroup(np.arange(S), np.arange(S), None)], scaler,
                   ctx.unflatten(0, (S, lanes)), nan, nan[..., None].expand(-1, -1, -1, net.quantiles.numel()).clone(),
                   np.zeros(S, dtype=np.int64), np.full(S, np.datetime64("NaT"), dtype="datetime64[ns]"),
                   np.full(S, np.timedelta64("NaT"), dtype="timedelta64[ns]"))

    def extend(self, keys: list, net: ForecastNet, scaler: Scaler) -> Streams:
        """These streams, then fresh ones for the new series `keys` (read in `scaler`'s rows, one per key),
        which start from the net's learnt initial memory; the existing groups are shared, not copied."""
        new, S = Streams.fresh(keys, net, self.point.shape[1], scaler), len(self.keys)

        def cat(name: str):
            both = [getattr(self, name), getattr(new, name)]
            return torch.cat(both) if isinstance(both[0], Tensor) else np.concatenate(both)

        joined = MemoryGroup(np.arange(S, S + len(keys)), np.arange(len(keys)), None)
        return Streams(self.keys + new.keys, self.lanes, [*self.groups, joined], self.scaler.concat(scaler),
                       **{name: cat(name) for name in ("context", "point", "quant", "seen", "last_time", "step")})

    def memory(self, key) -> MemoryState | None:
        """The network state of one series (its `lanes` lanes)."""
        i = self.rows[key]
        g = next(g for g in self.groups if i in g.rows)
        return _select(g.memory, _lane_index(g.slots[np.searchsorted(g.rows, [i])], self.lanes))

    def subset(self, keys: list) -> Streams:
        """The streams of `keys` alone, in that order (the memories copied out of their groups)."""
        rows = [self.rows[k] for k in keys]
        return Streams.join(keys, self.lanes, [self.memory(k) for k in keys], scaler=self.scaler[rows],
                            context=self.context[rows],
                            point=self.point[rows], quant=self.quant[rows], seen=self.seen[rows],
                            last_time=self.last_time[rows], step=self.step[rows])

    @classmethod
    def join(cls, keys: list, lanes: int, memories: list[MemoryState], **fields) -> Streams:
        """Streams from each series' own state (as `memory` returns them) and the batched `fields`."""
        groups = regroup([MemoryGroup(np.array([i]), np.array([0]), m) for i, m in enumerate(memories)], lanes)
        return cls(list(keys), lanes, groups, **fields)


def advance(net: ForecastNet, streams: Streams, values: dict[int, Tensor], mixing: bool, memorize: bool,
            keep: Callable[[int], list[int]] | None = None, surprise: bool = False) -> tuple[Streams, dict]:
    """Stream scaled values (T_i, C) on for the series at rows `values`' keys. Returns the new streams
    (time stamps untouched) and, per row, what was asked for: the forecasts made at rows `keep(T_i)`
    ("point" (K, C, H), "quant"), and with `surprise` every row's memory surprise ("momentary", "past":
    (T, lanes), means over layers) and next-step forecast ("next" (T, C))."""
    b = streams.lanes
    context, point, quant, seen = (streams.context.clone(), streams.point.clone(), streams.quant.clone(),
                                   streams.seen.copy())
    # the passes: rows whose states can share a batch and that get as many new rows, in row order
    signatures = [_signature(g.memory) for g in streams.groups]
    passes: dict[tuple, list[tuple[int, int, int]]] = {}
    for gi, g in enumerate(streams.groups):
        for r, slot in zip(g.rows.tolist(), g.slots.tolist()):
            if r in values:
                passes.setdefault((signatures[gi], len(values[r])), []).append((r, gi, slot))
    groups, outs = [], {}
    for (_, T), members in passes.items():
        members.sort()
        rows = np.array([m[0] for m in members])
        v = torch.stack([values[r] for r in rows.tolist()])
        memory, ctx, p, q, out = _run(net, _gather(streams.groups, members, b), context[rows].flatten(0, 1), v,
                                      mixing, memorize, None if keep is None else keep(T), surprise)
        context[rows], point[rows], quant[rows] = ctx.unflatten(0, (len(rows), b)), p, q
        seen[rows] += T
        groups.append(MemoryGroup(rows, np.arange(len(rows)), memory))
        if out:
            outs.update({r: {name: o[i] for name, o in out.items()} for i, r in enumerate(rows.tolist())})
    for g in streams.groups:  # the series that stay keep their slots; a group mostly left is compacted
        stay = np.array([r not in values for r in g.rows.tolist()], dtype=bool)
        if stay.all():
            groups.append(g)
        elif stay.any():
            rows, slots = g.rows[stay], g.slots[stay]
            if 2 * len(rows) <= g.size(b):
                groups.append(MemoryGroup(rows, np.arange(len(rows)), _select(g.memory, _lane_index(slots, b))))
            else:
                groups.append(MemoryGroup(rows, slots, g.memory))
    new = replace(streams, groups=sorted(groups, key=lambda g: g.rows[0]), context=context, point=point,
                  quant=quant, seen=seen)
    return new, outs


def _gather(groups: list[MemoryGroup], members: list[tuple[int, int, int]], lanes: int) -> MemoryState | None:
    """The batched state of `members` ((row, group, slot), rows ascending), lanes in row order: a whole
    group already in that order as it is, else gathered from the groups that hold them."""
    first = groups[members[0][1]]
    if first.memory is None:
        return None
    slots = np.array([m[2] for m in members])
    if all(m[1] == members[0][1] for m in members) and len(members) == first.size(lanes) and \
            (slots == np.arange(len(slots))).all():
        return first.memory
    by_group: dict[int, list[int]] = {}
    for i, (_, gi, _) in enumerate(members):
        by_group.setdefault(gi, []).append(i)
    parts = [_select(groups[gi].memory, _lane_index(slots[at], lanes)) for gi, at in by_group.items()]
    order = np.argsort(np.concatenate([at for at in by_group.values()]), kind="stable")
    joined = _concat(parts)
    return joined if (order == np.arange(len(order))).all() else _select(joined, _lane_index(order, lanes))


@torch.inference_mode()
def _run(net: ForecastNet, memory: MemoryState | None, ctx: Tensor, v: Tensor, mixing: bool, memorize: bool,
         keep: list[int] | None, surprise: bool) -> tuple:
    """One batch of R series (R, T, C) through the net in pieces of at most `LANE_STEPS` lane-steps (a
    sequence fed in pieces gives what one call gives): the new memory and context, the last
    forecasts (R, C, H) and (R, C, H, Q), and the outputs `advance` describes, batched (R, …). It runs on
    the net's device; what it returns is on the CPU, where the streams live."""
    if net.training:
        net.eval()
    device = next(net.parameters()).device
    v, ctx = v.to(device), ctx.to(device)
    memory = None if memory is None else memory.to(device)
    R, T, C = v.shape
    out = {name: [] for name in ("point", "quant", "momentary", "past", "next")}
    steps = max(1, min(PIECE, LANE_STEPS // ctx.shape[0]))
    for a in range(0, T, steps):
        piece = v[:, a: a + steps]
        t = piece.shape[1]
        x = piece if mixing else piece.permute(0, 2, 1).reshape(R * C, t, 1)  # (R·lanes, t, n)
        point, quant, memory, *scores = net(x, ctx, memory, memorize, surprise)
        if surprise:
            for name in ("momentary", "past"):
                out[name].append(getattr(scores[0], name).mean(-1).view(R, -1, t).transpose(1, 2))
        point, quant = _series_first(point, R, mixing), _series_first(quant, R, mixing)  # (R, t, C, H, ...)
        ctx = torch.cat([ctx, x], dim=1)[:, -net.context_length:] if net.context_length else ctx
        if keep is not None:
            at = [i - a for i in keep if a <= i < a + t]
            out["point"].append(point[:, at])
            out["quant"].append(quant[:, at])
        if surprise:
            out["next"].append(point[..., 0])
    batched = {name: torch.cat(parts, dim=1).cpu() for name, parts in out.items() if parts}
    return None if memory is None else memory.to("cpu"), ctx.cpu(), point[:, -1].cpu(), quant[:, -1].cpu(), batched


def _series_first(p: Tensor, R: int, mixing: bool) -> Tensor:
    """Net outputs (R·lanes, t, n, …) as (R, t, C, …)."""
    if mixing:
        return p
    p = p.unflatten(0, (R, -1))[:, :, :, 0]  # (R, C, t, …)
    return p.transpose(1, 2)


def _lane_index(positions: np.ndarray, lanes: int) -> Tensor:
    """The lanes of the series at `positions` of a group."""
    return torch.as_tensor((np.asarray(positions)[:, None] * lanes + np.arange(lanes)).ravel())


def _select(memory: MemoryState | None, lanes: Tensor) -> MemoryState | None:
    if memory is None:
        return None
    return MemoryState({k: v.index_select(0, lanes) if v.dim() else v.clone() for k, v in memory.items()})


def _signature(memory: MemoryState | None) -> tuple:
    """What must agree for two states to share a batch: every tensor's shape past the batch, and the
    values of the scalars (positions)."""
    if memory is None:
        return ()
    return tuple((k, v.dtype, tuple(v.shape[1:]) if v.dim() else v.item()) for k, v in sorted(memory.items()))


def _concat(parts: list[MemoryState]) -> MemoryState:
    """States stacked along the batch (their scalars, positions, agree)."""
    if len(parts) == 1:
        return parts[0]
    return MemoryState({k: torch.cat([p[k] for p in parts]) if v.dim() else v for k, v in parts[0].items()})


def regroup(pieces: list[MemoryGroup], lanes: int) -> list[MemoryGroup]:
    """The pieces whose states can share a batch joined into one group each (rows ascending, every slot
    used), groups in order of their first row."""
    by_signature: dict[tuple, list[MemoryGroup]] = {}
    for piece in pieces:
        by_signature.setdefault(_signature(piece.memory), []).append(piece)
    groups = []
    for parts in by_signature.values():
        members = sorted((r, i, slot) for i, p in enumerate(parts) for r, slot in zip(p.rows.tolist(), p.slots.tolist()))
        rows = np.array([m[0] for m in members])
        groups.append(MemoryGroup(rows, np.arange(len(rows)), _gather(parts, members, lanes)))
    return sorted(groups, key=lambda g: g.rows[0])
