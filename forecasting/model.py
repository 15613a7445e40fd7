"""`ForecastNet`: a Titans encoder read as a stream of observations, one token per time step.

At every step t the net sees the last `lookback` values (per channel, or all channels when mixing),
normalised by their own mean and spread (reversible instance normalisation, computed causally so
that a stream needs only the last `lookback` values). The token of step t is the latest `patch` values
plus that window's level and scale; the encoder (with its test-time memory) reads the tokens in order.
The forecast of the next `horizon` values at t is a linear map of the normalised window plus a head on
the encoder output, rescaled back. Quantile offsets ride on the point forecast.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from titans_ts import MemoryState, TitansConfig, TitansEncoder

_EPS = 1e-5


class ForecastNet(nn.Module):
    """(B, T, n) values -> forecasts (B, T, n, horizon) and quantiles (B, T, n, horizon, Q) at every step."""

    def __init__(self, n_inputs: int, horizon: int, lookback: int, patch: int, config: TitansConfig,
                 quantiles: tuple[float, ...]):
        super().__init__()
        self.n, self.horizon, self.lookback, self.patch = n_inputs, horizon, lookback, patch
        self.register_buffer("quantiles", torch.tensor(quantiles), persistent=False)
        self.embed = nn.Linear(n_inputs * (patch + 2), config.d_model)
        self.encoder = TitansEncoder(config)
        self.linear = nn.Linear(lookback, horizon)  # shared across channels, on the normalised window
        self.head = nn.Linear(config.d_model, n_inputs * horizon * (1 + len(quantiles)))
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)
        with torch.no_grad():  # start from the naive forecast: the last value, held
            self.linear.weight.zero_()
            self.linear.weight[:, -1] = 1.0
            self.linear.bias.zero_()

    def windows(self, context: Tensor, y: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Normalised trailing windows (B, T, n, L), level and scale (B, T, n) for every step of y.

        `context` (B, L−1, n) holds the values before y (NaN where the stream had none yet).
        """
        seq = torch.cat([context, y], dim=1)
        win = seq.unfold(1, self.lookback, 1)  # (B, T, n, L), each ending at a step of y
        seen = ~torch.isnan(win)
        count = seen.sum(-1).clamp_min(1)
        x = torch.where(seen, win, 0.0)
        level = x.sum(-1) / count
        scale = (((x - level[..., None]) * seen).pow(2).sum(-1) / count + _EPS).sqrt()
        return torch.where(seen, (x - level[..., None]) / scale[..., None], 0.0), level, scale

    def tokens(self, y: Tensor, context: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """The encoder's input (B, T, d_model): latest `patch` normalised values, level and log-scale."""
        win, level, scale = self.windows(context, y)
        feats = torch.cat([win[..., -self.patch:], level[..., None], scale.log()[..., None]], dim=-1)
        return self.embed(feats.flatten(2)), win, level, scale

    def forward(self, y: Tensor, context: Tensor, state: MemoryState | None = None,
                memorize: bool = True) -> tuple[Tensor, Tensor, MemoryState]:
        tokens, *norm = self.tokens(y, context)
        h, state = self.encoder(tokens, state, memorize)
        return *self.read(h, *norm), state

    def read(self, h: Tensor, win: Tensor, level: Tensor, scale: Tensor) -> tuple[Tensor, Tensor]:
        """Point forecasts and quantiles from the encoder output and the normalised windows of `tokens`."""
        B, T, n = level.shape
        out = self.head(h).view(B, T, n, self.horizon, 1 + self.quantiles.numel())
        point_n = self.linear(win) + out[..., 0]
        point = level[..., None] + scale[..., None] * point_n
        quant = point[..., None] + scale[..., None, None] * out[..., 1:]
        return point, quant

    def initial_context(self, batch: int, dtype: torch.dtype) -> Tensor:
        return torch.full((batch, self.lookback - 1, self.n), float("nan"), dtype=dtype)


def pinball(pred: Tensor, target: Tensor, q: Tensor, weight: Tensor) -> Tensor:
    """Weighted mean quantile (pinball) loss max(q·e, (q − 1)·e), e = target − pred; pred (..., Q)."""
    e = target[..., None] - pred
    loss = torch.maximum(q * e, (q - 1) * e) * weight[..., None]
    return loss.sum() / (weight.expand_as(target).sum().clamp_min(1) * q.numel())
