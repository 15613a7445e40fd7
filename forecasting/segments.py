"""Training items of the forecaster: segments of each series (fresh-memory segments, shuffled) or lanes
(each series read in order in consecutive segments, for a memory carried from batch to batch), and the
batches of lanes each process of a distributed fit reads."""
from __future__ import annotations

from collections.abc import Iterator

import torch
import torch.distributed as dist
from torch.utils.data import Dataset, DistributedSampler, Sampler


class Segments(Dataset):
    """Training items: steps [start, end) of one series (one channel `c`, or all when mixing: c None), the
    `context` values before them (NaN before the series start), the next `horizon` values of every
    step, the mask of the steps scored (those in [lo, hi]), the item's lane group and whether it starts it.
    `context` is the net's `context_length`: `lookback − 1`, or more when the net recalls outcomes."""

    def __init__(self, series: list[torch.Tensor], items: list[tuple], length: int, context: int, horizon: int):
        self.series, self.items, self.length, self.context, self.H = series, items, length, context, horizon

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, idx: int):
        i, c, start, end, lo, hi, group, first = self.items[idx]
        s = self.series[i] if c is None else self.series[i][:, c: c + 1]
        x = s[start:end]
        ctx = torch.full((self.context, s.shape[1]), float("nan"), dtype=s.dtype)
        before = s[max(0, start - self.context): start]
        ctx[self.context - len(before):] = before
        ahead = s[start + 1: end + self.H]
        ahead = torch.cat([ahead, ahead.new_zeros(len(x) + self.H - 1 - len(ahead), s.shape[1])])
        target = ahead.unfold(0, self.H, 1)  # (T, n, H); past the series end: zeros, never scored
        steps = torch.arange(start, start + self.length)
        mask = ((steps >= lo) & (steps <= hi) & (steps < end)).float()
        pad = self.length - len(x)
        if pad:
            x = torch.cat([x, x.new_zeros(pad, x.shape[1])])
            target = torch.cat([target, target.new_zeros(pad, *target.shape[1:])])
        return x, ctx, target, mask, group, first


def segment_items(series: list[torch.Tensor], lo: list[int], hi: list[int], length: int, stride: int,
                   horizon: int, lanes: list[tuple]) -> list[tuple]:
    """Independent segments every `stride` steps of each lane's [lo, hi), each scoring the steps whose whole
    future lies before hi (a part shorter than the horizon yields nothing)."""
    items = []
    for i, c in lanes:
        a, last = lo[i], hi[i] - horizon - 1
        starts = list(range(a, max(a, last - length + 2), stride)) or [a]
        if last - length + 1 > a and starts[-1] != last - length + 1:
            starts.append(last - length + 1)  # cover the end
        items += [(i, c, x, min(x + length, last + 1), x, last, -1, True) for x in starts if x <= last]
    return items


def lane_batches(spans: list[tuple[int, int, int, int]], length: int, lanes: list[tuple], keys: list,
                  group_size: int) -> tuple[list[tuple], list[list[int]]]:
    """Lanes for truncated backpropagation through time. Lane j streams steps [a, b) of its series in
    consecutive segments of `length`, scoring steps [lo, hi] (`spans[j]` = (a, b, lo, hi)). Lanes with
    equal `keys` go together in groups of at most `group_size`, so that batch n of a group holds segment n
    of each of its lanes and the group's memory state carries from one batch to the next. Returns the
    items and the batches, in the order they must be read."""
    by_key: dict = {}
    for j, key in enumerate(keys):
        by_key.setdefault(key, []).append(j)
    items, batches = [], []
    groups = [m[g: g + group_size] for m in by_key.values() for g in range(0, len(m), group_size)]
    for gid, group in enumerate(groups):
        a, b = spans[group[0]][:2]
        for n, start in enumerate(range(a, b, length)):
            batches.append(list(range(len(items), len(items) + len(group))))
            items += [(*lanes[j], start, min(start + length, b), *spans[j][2:], gid, n == 0) for j in group]
    return items, batches


def lane_share(batch: list[int], rank: int, world: int) -> list[int]:
    """The share of a batch of lanes that process `rank` of `world` reads, as DDP splits a batch
    (`DistributedSampler`, unshuffled): lanes rank, rank + world, … of the batch, padded by repeating its
    lanes to a multiple of `world`, so that every process reads some lane and the same number of them."""
    return [batch[k] for k in DistributedSampler(batch, num_replicas=world, rank=rank, shuffle=False)]


class LaneBatches(Sampler[list[int]]):
    """The batches of `lane_batches` in their order, each cut to this process's `lane_share` (the rank and
    number of processes of `torch.distributed` when iterated; one process when it is not initialised).
    A lane keeps its place in every batch of its group, training and validation alike, so it always goes
    to the same process, which carries its memory state; every process reads every batch, in step."""

    def __init__(self, batches: list[list[int]]):
        self.batches = batches

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self) -> Iterator[list[int]]:
        on = dist.is_available() and dist.is_initialized()
        rank, world = (dist.get_rank(), dist.get_world_size()) if on else (0, 1)
        return (lane_share(batch, rank, world) for batch in self.batches)
