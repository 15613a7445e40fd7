"""`Scaler`: what the forecaster takes off each series before the net sees it, and puts back on its forecasts.

Every series has its own statistics, from its own training rows: a global model shares weights, never
scales, so a series around 10 and one around 50,000 are each read as unit-variance values. Each channel
of a series is standardised by that series' mean and spread. With a `period` (24 for hourly data with a
daily rhythm), the series' mean profile of that cycle is taken off too, so that the net forecasts what the
level and the cycle do not explain and the cycle's phase never has to be learnt from a window (the
residual-cycle idea of CycleNet, Lin et al. 2024, with the profile estimated, not learnt). A row's phase
is its position counted from the first row of its fitted series. `detect_period` finds the cycle in the
training rows when it is not given; all series share it.

A `Scaler` holds the statistics of S series stacked along a leading axis (`mean` (S, C)); indexed as
numpy arrays are, `scaler[i]` is series i's alone (`mean` (C,)) and `scaler[rows]` a stack of those rows.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass
class Scaler:
    mean: np.ndarray  # (S, C), or (C,) for one series
    std: np.ndarray  # (S, C), or (C,)
    cycle: np.ndarray | None = None  # (S, period, C) or (period, C), standardised units, zero mean over the period

    @classmethod
    def fit(cls, series: list[np.ndarray], period: int | None = None) -> Scaler:
        """One scaler per series, each from that series' training rows (T_i, C), starting at phase 0; values
        missing (NaN) are left out."""
        if period is not None and min(len(v) for v in series) < period:
            raise ValueError(f"period {period} is longer than a training series ({min(len(v) for v in series)} rows)")
        mean = np.stack([np.nanmean(v, 0) for v in series])
        std = np.stack([np.nanstd(v, 0) for v in series])
        std = np.where(std > 1e-12 * np.maximum(1.0, np.abs(mean)), std, 1.0)
        if period is None:
            return cls(mean, std)
        cycles = []
        for v, m, s in zip(series, mean, std):
            z = (v - m) / s
            phase = np.arange(len(v)) % period
            profile = np.stack([np.nanmean(z[phase == p], 0) for p in range(period)])
            cycles.append(profile - profile.mean(0))
        return cls(mean, std, np.stack(cycles))

    def __getitem__(self, rows) -> Scaler:
        """Series `rows`: an integer gives that series' scaler alone, a sequence of rows a stack of them."""
        if self.mean.ndim != 2:
            raise IndexError("a single series' scaler has no rows to index")
        return Scaler(self.mean[rows], self.std[rows], None if self.cycle is None else self.cycle[rows])

    def concat(self, other: Scaler) -> Scaler:
        """The stacked rows of `self`, then those of `other` (both with a cycle of one period, or neither)."""
        if (self.cycle is None) != (other.cycle is None):
            raise ValueError("scalers with and without a cycle do not stack")
        cycle = None if self.cycle is None else np.concatenate([self.cycle, other.cycle])
        return Scaler(np.concatenate([self.mean, other.mean]), np.concatenate([self.std, other.std]), cycle)

    def _rows(self, a: np.ndarray, ndim: int) -> np.ndarray:
        """Per-series statistics `a` ((S, C), or (C,)) shaped to broadcast over values (…, T, C) of `ndim`
        dimensions whose first axis is the series (stacked) or that belong to one series."""
        return a if a.ndim == 1 else a.reshape(len(a), *[1] * (ndim - 2), a.shape[-1])

    def season(self, first, length: int) -> np.ndarray | float:
        """The cycle at rows first … first + length − 1, shape (*first.shape, length, C) (stacked: first's
        leading axis is the series, a scalar first is every series'); 0 without a cycle."""
        if self.cycle is None:
            return 0.0
        idx = (np.asarray(first)[..., None] + np.arange(length)) % self.cycle.shape[-2]
        if self.cycle.ndim == 2:
            return self.cycle[idx]
        idx = idx if idx.ndim > 1 else np.broadcast_to(idx, (len(self.cycle), length))
        return self.cycle[np.arange(len(self.cycle)).reshape(-1, *[1] * (idx.ndim - 1)), idx]

    def scale(self, v: np.ndarray, first=0) -> torch.Tensor:
        """Rows (…, T, C) that start at position `first` (broadcasting over the leading dimensions; stacked,
        the first of them is the series), as the net reads them (float32)."""
        z = (v - self._rows(self.mean, v.ndim)) / self._rows(self.std, v.ndim) - self.season(first, v.shape[-2])
        return torch.tensor(z, dtype=torch.float32)

    def unscale(self, z: np.ndarray, first=0) -> np.ndarray:
        """Net outputs (…, T, C) for rows that start at position `first`, back in the series' units."""
        return (z + self.season(first, z.shape[-2])) * self._rows(self.std, z.ndim) + self._rows(self.mean, z.ndim)


def detect_period(series: list[np.ndarray]) -> int | None:
    """The dominant cycle of the series' training rows (T_i, C), or None where there is none.

    The autocorrelation of the first differences (differencing keeps a trend or a random walk from
    hiding the cycle), averaged over channels and series weighted by length, at lags 2 … T/3 (three
    cycles at least, so that each phase's mean rests on several rows): the lag of its highest local
    maximum that stands out of white noise (above 4 / √T, four standard errors), or the shortest such peak
    at least half as high whose every multiple up to it is one too (a cycle of 24 repeats at 48, which may
    score as high by chance); None if none stands out.
    """
    n = min(len(v) for v in series)
    top = n // 3
    if top < 3:
        return None
    total, weight = np.zeros(top + 2), 0
    for v in series:
        d = np.diff(np.asarray(v, dtype=np.float64), axis=0)
        d = d - d.mean(0)
        size = 1 << int(np.ceil(np.log2(2 * len(d))))
        power = np.abs(np.fft.rfft(d, size, axis=0)) ** 2
        acf = np.fft.irfft(power, size, axis=0)[: top + 2]  # (lags, C), Wiener-Khinchin
        var = acf[0]
        keep = var > 0
        if keep.any():
            total += len(v) * (acf[:, keep] / var[keep]).mean(1)
            weight += len(v)
    if not weight:
        return None
    acf = total / weight
    lags = np.arange(2, top + 1)
    peaks = lags[(acf[lags] > acf[lags - 1]) & (acf[lags] >= acf[lags + 1])]
    peaks = peaks[acf[peaks] > 4 / np.sqrt(sum(len(v) for v in series))]
    if not len(peaks):
        return None
    best = int(peaks[np.argmax(acf[peaks])])
    found = set(peaks.tolist())
    return min(p for p in found if best % p == 0 and 2 * acf[p] >= acf[best]
               and all(m in found for m in range(p, best + 1, p)))
