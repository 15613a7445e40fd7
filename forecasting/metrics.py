"""Forecast accuracy as forecasting competitions score it: sMAPE (in per cent) and MASE (the error scaled
by the in-sample mean absolute change over `m` steps, m the seasonality), as in M4 (Makridakis et al. 2020)."""
from __future__ import annotations

import numpy as np


def smape(forecast: np.ndarray, actual: np.ndarray) -> float:
    """The M4 sMAPE in per cent: mean of 200 |y − ŷ| / (|y| + |ŷ|) over every series and step."""
    return float(np.mean(200 * np.abs(actual - forecast) / (np.abs(actual) + np.abs(forecast))))


def mase(forecast: np.ndarray, actual: np.ndarray, insample: list[np.ndarray], m: int = 1) -> float:
    """The M4 MASE: per series, the mean absolute error over the in-sample mean absolute change over `m`
    steps; the mean over series. forecast and actual (S, H)."""
    scale = np.array([np.mean(np.abs(v[m:] - v[:-m])) for v in insample])
    return float(np.mean(np.abs(actual - forecast).mean(1) / scale))
