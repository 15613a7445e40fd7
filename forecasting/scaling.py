"""`Scaler`: what the forecaster takes off a series before the net sees it, and puts back on its forecasts.

Each channel is standardised by the training rows' mean and spread. With a `period` (24 for hourly data
with a daily rhythm), the mean profile of that cycle in the training rows is taken off too, so that the net
forecasts what the level and the cycle do not explain and the cycle's phase never has to be learnt from a
window (the residual-cycle idea of CycleNet, Lin et al. 2024, with the profile estimated, not learnt).
A row's phase is its position counted from the first row of its fitted series.
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
