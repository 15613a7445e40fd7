"""Synthetic data with known answers: what a long-term memory should get right and a window cannot.

`recurring_motifs`: smooth patterns that come back after gaps longer than an attention window.
`anomaly_stream`: a seasonal series with labelled spikes, level shifts, seasonal changes and a
recurring event that fails to occur. `planted_motif_dna`: random DNA whose positive class carries
planted motifs (strings or position weight matrices, e.g. from `load_jaspar`). All take a numpy `seed`.
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from Bio import motifs as bio_motifs

DNA = "ACGT"
ANOMALY_KINDS = ("spike", "level_shift", "pattern_change", "missing_recurrence")


class Occurrence(NamedTuple):
    """One placement of a motif: first time seen (`is_recurrence` False) or a return."""

    start: int
    motif_id: int
    is_recurrence: bool


@dataclass(frozen=True)
class RecurringMotifs:
    """`values` (T, C) = background noise plus motifs at `occurrences`; `motifs` (n_motifs, motif_len, C).

    Between the end of one occurrence and the start of the next there are more than `window` steps, so
    a model that attends `window` steps back never sees the previous occurrence of a recurring motif.
    """

    values: np.ndarray
    motifs: np.ndarray
    occurrences: list[Occurrence]
    window: int

    def recurrence_mask(self) -> np.ndarray:
        """Boolean (T,): True on the steps of recurrences, where errors measure memory."""
        mask = np.zeros(len(self.values), dtype=bool)
        length = self.motifs.shape[1]
        for occurrence in self.occurrences:
            if occurrence.is_recurrence:
                mask[occurrence.start:occurrence.start + length] = True
        return mask


class Anomaly(NamedTuple):
    """A labelled segment [start, end) and its kind (one of `ANOMALY_KINDS`)."""

    start: int
    end: int
    kind: str


@dataclass(frozen=True)
class AnomalyStream:
    """`values` (T, C), `labels` (T,) 1 inside an anomaly else 0, and `kinds`: one `Anomaly` per segment."""

    values: np.ndarray
    labels: np.ndarray
    kinds: list[Anomaly]


def recurring_motifs(
    n_steps: int = 4096,
    n_channels: int = 1,
    n_motifs: int = 4,
    motif_len: int = 32,
    window: int = 64,
    gap_min: int | None = None,
    gap_max: int | None = None,
    noise: float = 0.05,
    seed: int = 0,
    ar: float = 0.0,
    variation: float = 0.0,
) -> RecurringMotifs:
    """Random smooth motifs (peak amplitude 1) placed in Gaussian background noise of std `noise`.

    Each motif first appears once (in order 0..n_motifs-1), then random motifs recur until `n_steps`.
    Gaps of background between consecutive occurrences are drawn from [gap_min, gap_max]
    (defaults: window + 1 and 2 * gap_min); gap_min must exceed `window`.

    As hard as a real stream: `ar` makes the background an AR(1) process with that coefficient (same
    std `noise`), which drifts as real series do and hides a motif's onset, and `variation` makes every
    recurrence differ from the first showing: its amplitude scaled by 1 + variation · N(0, 1) and a smooth
    random shape of peak `variation` added. 0 and 0 give white noise and exact copies.
    """
    for name, value in (("n_steps", n_steps), ("n_channels", n_channels), ("n_motifs", n_motifs),
                        ("motif_len", motif_len), ("window", window)):
        _check_positive_int(name, value)
    gap_min = window + 1 if gap_min is None else gap_min
    gap_max = 2 * gap_min if gap_max is None else gap_max
    _check_positive_int("gap_min", gap_min)
    _check_positive_int("gap_max", gap_max)
    if motif_len < 4:
        raise ValueError(f"motif_len must be >= 4 steps to give a motif a shape, got {motif_len}")
    if not window < gap_min <= gap_max:
        raise ValueError(f"need window < gap_min <= gap_max, got window={window}, gap_min={gap_min}, "
                         f"gap_max={gap_max}")
    if noise < 0:
        raise ValueError(f"noise must be >= 0, got {noise}")
    if not 0 <= ar < 1:
        raise ValueError(f"ar must be in [0, 1), got {ar}")
    if variation < 0:
        raise ValueError(f"variation must be >= 0, got {variation}")
    needed = (n_motifs + 1) * (gap_max + motif_len)
    if n_steps < needed:
        raise ValueError(f"n_steps={n_steps} cannot hold every motif once plus one recurrence; need >= {needed}")
    rng = np.random.default_rng(seed)
    shapes = np.stack([_smooth_pattern(rng, motif_len, n_channels) for _ in range(n_motifs)])
    values = noise * rng.standard_normal((n_steps, n_channels))
    if ar:  # x_t = ar x_{t-1} + sqrt(1 - ar²) e_t, started stationary
        values[1:] *= np.sqrt(1 - ar ** 2)
        for t in range(1, n_steps):
            values[t] += ar * values[t - 1]
    occurrences: list[Occurrence] = []
    start = int(rng.integers(gap_min, gap_max + 1))
    while start + motif_len <= n_steps:
        k = len(occurrences)
        motif_id = k if k < n_motifs else int(rng.integers(n_motifs))
        shape = shapes[motif_id]
        if variation and k >= n_motifs:
            shape = (1 + variation * rng.standard_normal()) * shape + variation * _smooth_pattern(rng, motif_len,
                                                                                               n_channels)
        values[start:start + motif_len] += shape
        occurrences.append(Occurrence(start, motif_id, k >= n_motifs))
        start += motif_len + int(rng.integers(gap_min, gap_max + 1))
    return RecurringMotifs(values=values, motifs=shapes, occurrences=occurrences, window=window)


def anomaly_stream(
    n_steps: int = 4096,
    n_channels: int = 1,
    period: int = 24,
    event_every: int = 4,
    n_anomalies: int = 8,
    clean_fraction: float = 0.25,
    noise: float = 0.1,
    seed: int = 0,
) -> AnomalyStream:
    """A seasonal series (period `period`) with a bump event every `event_every` periods, plus anomalies.

    The first `clean_fraction` of the steps is anomaly-free (to fit a detector on); the rest is cut into
    `n_anomalies` slots, each holding one anomaly, kinds cycling through `ANOMALY_KINDS`: a one-step
    spike, a temporary level shift, the seasonal pattern at double frequency, or a missing event bump.
    Every anomaly affects all channels; `labels` is 1 exactly on the segments listed in `kinds`.
    """
    for name, value in (("n_steps", n_steps), ("n_channels", n_channels), ("period", period),
                        ("event_every", event_every), ("n_anomalies", n_anomalies)):
        _check_positive_int(name, value)
    if period < 8:
        raise ValueError(f"period must be >= 8 steps to shape an event bump, got {period}")
    if not 0.0 <= clean_fraction < 1.0 or noise < 0:
        raise ValueError(f"need 0 <= clean_fraction < 1 and noise >= 0, got {clean_fraction}, {noise}")
    cycle = period * event_every
    first_slot = int(np.ceil(clean_fraction * n_steps))
    slot = (n_steps - first_slot) // n_anomalies
    if slot < cycle + 2 * period:
        raise ValueError(f"n_steps={n_steps} leaves {slot} steps per anomaly; need >= {cycle + 2 * period} "
                         f"(period * event_every + 2 * period): lower n_anomalies or raise n_steps")
    rng = np.random.default_rng(seed)
    t = np.arange(n_steps)
    phases = rng.uniform(0, 2 * np.pi, n_channels)
    seasonal = _seasonal(t[:, None], period, phases)
    width = period / 8
    event_centres = np.arange(period // 2, n_steps, cycle)
    events = 1.5 * np.exp(-0.5 * ((t[:, None] - event_centres[None, :]) / width) ** 2).sum(axis=1)
    values = seasonal + events[:, None] + noise * rng.standard_normal((n_steps, n_channels))
    labels = np.zeros(n_steps, dtype=np.int64)
    kinds: list[Anomaly] = []
    for i in range(n_anomalies):
        lo = first_slot + i * slot
        kind = ANOMALY_KINDS[i % len(ANOMALY_KINDS)]
        if kind == "spike":
            start = int(rng.integers(lo, lo + slot))
            end = start + 1
            values[start] += rng.choice([-1.0, 1.0]) * rng.uniform(4.0, 6.0)
        elif kind == "level_shift":
            length = int(rng.integers(period, 2 * period + 1))
            start = int(rng.integers(lo, lo + slot - length + 1))
            end = start + length
            values[start:end] += rng.choice([-1.0, 1.0]) * rng.uniform(1.5, 2.5)
        elif kind == "pattern_change":
            start = int(rng.integers(lo, lo + slot - 2 * period + 1))
            end = start + 2 * period
            values[start:end] += _seasonal(2 * t[start:end, None], period, phases) - seasonal[start:end]
        else:
            centre = int(event_centres[(event_centres >= lo + 4 * width) & (event_centres < lo + slot - 4 * width)][0])
            start, end = centre - int(np.ceil(3 * width)), centre + int(np.ceil(3 * width)) + 1
            values[start:end] -= events[start:end, None]
        labels[start:end] = 1
        kinds.append(Anomaly(start, end, kind))
    return AnomalyStream(values=values, labels=labels, kinds=kinds)


def planted_motif_dna(
    n: int,
    length: int,
    motifs: Sequence[str | np.ndarray],
    seed: int = 0,
    positive_fraction: float = 0.5,
) -> tuple[list[str], np.ndarray]:
    """Uniform random upper-case DNA; each positive (label 1) carries one motif at a random position.

    A motif is a string over ACGT or an (L, 4) position weight matrix (columns A, C, G, T; rows are
    normalised), sampled afresh for every planting. Returns (seqs, labels) in shuffled order.
    """
    _check_positive_int("n", n)
    _check_positive_int("length", length)
    if not 0.0 <= positive_fraction <= 1.0:
        raise ValueError(f"positive_fraction must be in [0, 1], got {positive_fraction}")
    if len(motifs) == 0:
        raise ValueError("planted_motif_dna needs at least one motif")
    matrices = [_motif_matrix(motif, i, length) for i, motif in enumerate(motifs)]
    rng = np.random.default_rng(seed)
    n_positive = int(round(positive_fraction * n))
    labels = rng.permutation(np.r_[np.ones(n_positive, np.int64), np.zeros(n - n_positive, np.int64)])
    codes = rng.integers(0, 4, size=(n, length))
    for row in np.flatnonzero(labels):
        matrix = matrices[int(rng.integers(len(matrices)))]
        start = int(rng.integers(0, length - len(matrix) + 1))
        cumulative = matrix.cumsum(axis=1)
        draws = rng.random((len(matrix), 1))
        codes[row, start:start + len(matrix)] = np.minimum((draws > cumulative).sum(axis=1), 3)
    alphabet = np.frombuffer(DNA.encode(), dtype=np.uint8)
    seqs = [alphabet[row].tobytes().decode() for row in codes]
    return seqs, labels


def load_jaspar(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """Read a JASPAR count-matrix file into {"<matrix id> <name>": (L, 4) probabilities, columns A, C, G, T}.

    Keys carry the matrix id because names repeat across a release (879 matrices, 828 names in 2024 CORE).
    """
    source = os.fspath(path)
    with open(source, encoding="utf-8") as fh:
        try:
            records = list(bio_motifs.parse(fh, "jaspar"))
        except (ValueError, KeyError, IndexError) as exc:
            raise ValueError(f"{source}: not a JASPAR matrix file ({exc})") from exc
    if not records:
        raise ValueError(f"{source}: no JASPAR matrices")
    result: dict[str, np.ndarray] = {}
    for number, record in enumerate(records, start=1):
        counts = np.array([record.counts[base] for base in DNA], dtype=np.float64).T
        totals = counts.sum(axis=1, keepdims=True)
        if (totals <= 0).any():
            raise ValueError(f"{source} matrix {number} ({record.matrix_id}): a column has no counts")
        result[f"{record.matrix_id} {record.name}"] = counts / totals
    return result


def _check_positive_int(name: str, value: object) -> None:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value <= 0:
        raise ValueError(f"{name} must be positive, got {value}")


def _smooth_pattern(rng: np.random.Generator, length: int, channels: int) -> np.ndarray:
    """White noise smoothed by a Gaussian kernel, scaled to peak |value| 1: a random smooth shape."""
    sigma = max(length / 8, 1.0)
    offsets = np.arange(-int(3 * sigma), int(3 * sigma) + 1)
    kernel = np.exp(-0.5 * (offsets / sigma) ** 2)
    raw = rng.standard_normal((length + len(offsets) - 1, channels))
    smooth = np.stack([np.convolve(raw[:, c], kernel, mode="valid") for c in range(channels)], axis=1)
    smooth -= smooth.mean(axis=0)
    return smooth / np.abs(smooth).max(axis=0)


def _seasonal(t: np.ndarray, period: int, phases: np.ndarray) -> np.ndarray:
    """Fundamental plus a second harmonic, per channel phase: the normal seasonal shape."""
    angle = 2 * np.pi * t / period + phases
    return np.sin(angle) + 0.4 * np.sin(2 * angle + 1.0)


def _motif_matrix(motif: str | np.ndarray, index: int, length: int) -> np.ndarray:
    """An (L, 4) row-stochastic matrix from a motif string (one-hot) or a weight matrix."""
    if isinstance(motif, str):
        upper = motif.upper()
        if not upper or any(base not in DNA for base in upper):
            raise ValueError(f"motif {index} ({motif!r}) must be a non-empty string over A, C, G, T")
        matrix = np.eye(4)[[DNA.index(base) for base in upper]]
    else:
        matrix = np.asarray(motif, dtype=np.float64)
        if matrix.ndim != 2 or matrix.shape[1] != 4 or len(matrix) == 0:
            raise ValueError(f"motif {index} must be an (L, 4) matrix (columns A, C, G, T), got shape {matrix.shape}")
        if (matrix < 0).any() or (matrix.sum(axis=1) <= 0).any() or not np.isfinite(matrix).all():
            raise ValueError(f"motif {index}: weights must be finite, >= 0, and every row must sum to > 0")
        matrix = matrix / matrix.sum(axis=1, keepdims=True)
    if len(matrix) > length:
        raise ValueError(f"motif {index} has length {len(matrix)} > sequence length {length}")
    return matrix
