"""The ridge start of the forecaster's linear branch: least squares of each window's future on the window
(means off), the penalty picked on held-out windows."""
from __future__ import annotations

import torch

from .model import ForecastNet


def gram(parts: list[torch.Tensor], lookback: int, horizon: int) -> tuple[torch.Tensor, ...] | None:
    """XᵀX, XᵀY and tr(YᵀY) (float64) over every channel's (window, future) pairs of `parts` (T, C), each
    window's mean taken off both, as the forecaster's linear branch sees them; None without a pair."""
    xx = xy = yy = None
    for v in parts:
        if len(v) < lookback + horizon:
            continue
        w = v.double().unfold(0, lookback + horizon, 1)  # (N, C, L + H)
        for c in range(w.shape[1]):
            x, y = w[:, c, :lookback], w[:, c, lookback:]
            mu = x.mean(-1, keepdim=True)
            x, y = x - mu, y - mu
            g = (x.T @ x, x.T @ y, (y * y).sum())
            xx, xy, yy = g if xx is None else (xx + g[0], xy + g[1], yy + g[2])
    return None if xx is None else (xx, xy, yy)


def linear_start(net: ForecastNet, series: list[torch.Tensor], cut: list[int], alphas=(0.1, 1.0, 10.0, 100.0, 1e3)):
    """Start the linear branch at the ridge fit of the training windows (means off, as it reads them), its
    penalty picked on the windows whose futures lie after `cut`: the encoder then learns what a linear map
    of the window cannot, from a start no worse than the linear forecast. A training part too short for one
    (window, future) pair leaves the net's own start (the last value, held)."""
    L, H = net.lookback, net.horizon
    train = gram([v[:c] for v, c in zip(series, cut)], L, H)
    if train is None:
        return
    held = gram([v[max(0, c - L):] for v, c in zip(series, cut) if len(v) - c >= H], L, H)
    eye = torch.eye(L, dtype=torch.float64)
    fits = {a: torch.linalg.solve(train[0] + a * eye, train[1]) for a in alphas}
    if held is None:  # nothing held out: the middle of the grid
        w = fits[alphas[len(alphas) // 2]]
    else:  # held-out squared error ‖Y − XW‖² from the held-out Gram matrices
        err = lambda w: held[2] - 2 * (w * held[1]).sum() + (w * (held[0] @ w)).sum()  # noqa: E731
        w = fits[min(alphas, key=lambda a: float(err(fits[a])))]
    with torch.no_grad():
        net.linear.weight.copy_(w.T)
        net.linear.bias.zero_()
