"""`Scaler`: what the forecaster takes off a series before the net sees it, and puts back on its forecasts.

Each channel is standardised by the training rows' mean and spread. With a `period` (24 for hourly data
with a daily rhythm), the mean profile of that cycle in the training rows is taken off too, so that the net
forecasts what the level and the cycle do not explain and the cycle's phase never has to be learnt from a
window (the residual-cycle idea of CycleNet, Lin et al. 2024, with the profile estimated, not learnt).
A row's phase is its position counted from the first row of its fitted series. `detect_period` finds the
cycle in the training rows when it is not given.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass
class Scaler:
    mean: np.ndarray  # (C,)
    std: np.ndarray  # (C,)
    cycle: np.ndarray | None = None  # (period, C), in standardised units, zero mean over the period

    @classmethod
    def fit(cls, series: list[np.ndarray], period: int | None = None) -> Scaler:
        """From the training rows of each series (T_i, C), every series starting at phase 0."""
        rows = np.concatenate(series)
        mean, std = rows.mean(0), rows.std(0)
        std = np.where(std > 1e-12 * np.maximum(1.0, np.abs(mean)), std, 1.0)
        if period is None:
            return cls(mean, std)
        if min(len(v) for v in series) < period:
            raise ValueError(f"period {period} is longer than a training series ({min(len(v) for v in series)} rows)")
        phase = np.concatenate([np.arange(len(v)) % period for v in series])
        z = (rows - mean) / std
        cycle = np.stack([z[phase == p].mean(0) for p in range(period)])
        return cls(mean, std, cycle - cycle.mean(0))

    def season(self, first, length: int) -> np.ndarray | float:
        """The cycle at rows first … first + length − 1, shape (*first.shape, length, C); 0 without one."""
        if self.cycle is None:
            return 0.0
        return self.cycle[(np.asarray(first)[..., None] + np.arange(length)) % len(self.cycle)]

    def scale(self, v: np.ndarray, first=0) -> torch.Tensor:
        """Rows (…, T, C) that start at position `first` (broadcasting over the leading dimensions), as the
        net reads them (float32)."""
        z = (v - self.mean) / self.std - self.season(first, v.shape[-2])
        return torch.tensor(z, dtype=torch.float32)

    def unscale(self, z: np.ndarray, first=0) -> np.ndarray:
        """Net outputs (…, T, C) for rows that start at position `first`, back in the series' units."""
        return (z + self.season(first, z.shape[-2])) * self.std + self.mean


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
