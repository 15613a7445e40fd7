"""The forecaster's training losses, one step of the shared training loop each: fresh-memory segments
(`segment_loss`) or lanes with the memory carried across batches (`Carried`)."""
from __future__ import annotations

import torch

from .model import ForecastNet, pinball


class Carried:
    """The loss with the memory carried from batch to batch (detached: truncated backpropagation through
    time), so that the outer weights learn with the memory as it is when streaming. Validation lanes
    continue from the state their group's training lanes ended with."""

    def __init__(self):
        self.state, self.ended = None, {}

    def __call__(self, net: ForecastNet, batch) -> torch.Tensor | None:
        x, ctx, target, mask, group, first = batch
        g = int(group[0])
        if bool(first[0]):
            if net.training:
                self.state = None
            else:  # validation: go on from where training left this group
                self.state = self.ended.get(g)
        scored = bool(mask.any())  # a lane's tail may hold no step whose future is known: stream it only
        with torch.set_grad_enabled(scored and torch.is_grad_enabled()):
            point, quant, state = net(x, ctx, self.state)
        self.state = state.detach()
        if net.training:
            self.ended[g] = self.state
        return forecast_loss(net, point, quant, target, mask) if scored else None


def segment_loss(net: ForecastNet, batch) -> torch.Tensor:
    """The loss of a fresh-memory segment, scored at every k-th step, k = ⌈horizon / lookback⌉ (from a
    random first step in training, the first in validation): neighbouring steps forecast nearly the same
    values when the horizon is long, and the head and loss, not the encoder, cost what grows with it."""
    x, ctx, target, mask, _, _ = batch
    k = -(-net.horizon // net.lookback)
    if k == 1:
        return forecast_loss(net, *net(x, ctx)[:2], target, mask)
    at = torch.arange(int(torch.randint(k, ())) if net.training else 0, x.shape[1], k)
    return forecast_loss(net, *net(x, ctx, at=at)[:2], target[:, at], mask[:, at])


def forecast_loss(net: ForecastNet, point: torch.Tensor, quant: torch.Tensor, target: torch.Tensor,
             mask: torch.Tensor) -> torch.Tensor:
    """Mean squared error of the point forecast plus the pinball loss of the quantiles, on scored steps."""
    w = mask[:, :, None, None]
    mse = ((point - target).pow(2) * w).sum() / w.expand_as(target).sum().clamp_min(1)
    return mse + pinball(quant, target, net.quantiles, w)
