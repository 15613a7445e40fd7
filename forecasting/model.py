"""`ForecastNet`: a Titans encoder read as a stream of observations, one token per time step.

At every step t the net sees the last `lookback` values (per channel, or all channels when mixing),
normalised by their own mean and spread (reversible instance normalisation, computed causally so
that a stream needs only the last `lookback` values). The token of step t is the latest `patch` values
plus that window's level and scale; the encoder (with its test-time memory) reads the tokens in order.
The forecast of the next `horizon` values at t is a linear map of the normalised window plus a head on
the encoder output, rescaled back (the forecaster starts the linear map at the least-squares fit, so the
encoder learns what it leaves). Quantile offsets ride on the point forecast. A value not observed
(NaN) is left out of its windows' level, spread and shape, and its step writes to no memory.

With `recall`, a `RecallMemory` learns at test time how the forecasts made from windows like the present
one missed (the window that ended `horizon` steps ago and the encoder's output there as key, what came
after it less what was forecast there as value) and adds what it recalls to the forecast: a pattern seen
once is forecast from memory when it returns, and a model that drifts off learns its own errors back.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from titans_ts import MemoryState, TitansConfig, TitansEncoder

from .recall import RecallMemory

_EPS = 1e-5


class ForecastNet(nn.Module):
    """(B, T, n) values -> forecasts (B, T, n, horizon) and quantiles (B, T, n, horizon, Q) at every step."""

    def __init__(self, n_inputs: int, horizon: int, lookback: int, patch: int, config: TitansConfig,
                 quantiles: tuple[float, ...], recall: bool = False):
        super().__init__()
        self.n, self.horizon, self.lookback, self.patch = n_inputs, horizon, lookback, patch
        # values before a step that its forecast needs: its window, and with recall the window and
        # future of the step `horizon` back
        self.context_length = lookback - 1 + (horizon if recall else 0)
        self.register_buffer("quantiles", torch.tensor(quantiles), persistent=False)
        d = config.d_model
        self.embed = nn.Linear(n_inputs * (patch + 2), d)
        self.encoder = TitansEncoder(config)
        self.linear = nn.Linear(lookback, horizon)  # shared across channels, on the normalised window
        self.head = nn.Linear(d, n_inputs * horizon * (1 + len(quantiles)))
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)
        with torch.no_grad():  # start from the naive forecast: the last value, held
            self.linear.weight.zero_()
            self.linear.weight[:, -1] = 1.0
            self.linear.bias.zero_()
        self.recall = RecallMemory(n_inputs, lookback, horizon, d, chunk_size=config.chunk_size) if recall else None

    def windows(self, context: Tensor, y: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Normalised trailing windows (B, S, n, L), level and scale (B, S, n) of every step of y and of
        the context's last `context_length − lookback + 1` steps (S in all), and the values (B, S + L − 1, n).

        `context` (B, context_length, n) holds the values before y (NaN where the stream had none yet, or
        where a value did not arrive). Level and scale are those of the values seen; a value missing after
        one was seen is read as the last one seen (carried forward), one missing before any as the level.
        """
        seq = torch.cat([context, y], dim=1)
        win = seq.unfold(1, self.lookback, 1)  # (B, S, n, L), each ending at a step
        seen = ~torch.isnan(win)
        count = seen.sum(-1).clamp_min(1)
        x = torch.where(seen, win, 0.0)
        level = x.sum(-1) / count
        scale = (((x - level[..., None]) * seen).pow(2).sum(-1) / count + _EPS).sqrt()
        if not bool(seen.all()):  # the index of the last value seen at or before each place
            last = torch.where(seen, torch.arange(self.lookback, device=win.device), -1).cummax(-1).values
            x, seen = x.gather(-1, last.clamp_min(0)), last >= 0
        return torch.where(seen, (x - level[..., None]) / scale[..., None], 0.0), level, scale, seq

    def forward(self, y: Tensor, context: Tensor, state: MemoryState | None = None, memorize: bool = True,
                surprise: bool = False, at: Tensor | None = None) -> tuple:
        """Point forecasts, quantiles and the new state for every step of y (B, T, n) after `context`;
        with `surprise`, also the encoder's `Surprise` at every step. `at` (steps of y; not with recall)
        reads the forecasts at those steps only: the head's cost grows with the horizon."""
        T = y.shape[1]
        win_all, level_all, scale_all, seq = self.windows(context, y)
        win, level, scale = win_all[:, -T:], level_all[:, -T:], scale_all[:, -T:]
        feats = torch.cat([win[..., -self.patch:], level[..., None], scale.log()[..., None]], dim=-1)
        enc_state = None if state is None else state.scope("encoder")
        observed = ~torch.isnan(y).any(-1)  # (B, T): the steps whose values all arrived
        write = memorize if not memorize or bool(observed.all()) else observed.to(y.dtype)  # θ_t = 0 elsewhere (eq 13)
        if surprise:
            scores, h, enc_state = self.encoder.surprise(self.embed(feats.flatten(2)), enc_state, write)
        else:
            h, enc_state = self.encoder(self.embed(feats.flatten(2)), enc_state, write)
        if at is not None:
            if self.recall is not None:
                raise ValueError("ForecastNet: `at` does not go with recall, which writes every step's forecast")
            h, win, level, scale = h[:, at], win[:, at], level[:, at], scale[:, at]
        point, quant = self.read(h, win, level, scale)
        new = {"encoder": enc_state}
        if self.recall is not None:
            recalled, new["recall"], new["made"], new["context"] = self._recall(
                point, h, win * scale[..., None], win_all[:, :T] * scale_all[:, :T, :, None], seq, state, memorize)
            point, quant = point + recalled, quant + recalled[..., None]
        state = MemoryState.join(**new)
        return (point, quant, state, scores) if surprise else (point, quant, state)

    def _recall(self, point: Tensor, h: Tensor, now: Tensor, then: Tensor, seq: Tensor, state: MemoryState | None,
                memorize: bool) -> tuple[Tensor, MemoryState, Tensor, Tensor]:
        """What the recall memory adds to `point` (B, T, n, H), its new state, and the forecasts and encoder
        outputs (h (B, T, d)) of the last H steps to keep.

        Step t writes the window `then` that ended `horizon` steps before it with how far the forecast
        made there (before recall; kept in the state as "made" across calls) missed the values that have
        now arrived, so the memory learns the model's own errors. A pair whose window began before the
        stream (its first steps) writes nothing; one whose future arrived in part (gaps) writes the miss at
        the values that arrived (0 elsewhere), weighted by the share that did.
        """
        B, T, n, H = point.shape
        made = point.new_full((B, H, n, H), float("nan")) if state is None else state["made"]
        made = torch.cat([made, point.detach()], dim=1)  # forecasts made at steps t − H … t
        kept = h.new_zeros(B, H, h.shape[-1]) if state is None else state["context"]
        context = torch.cat([kept, h], dim=1)  # the encoder's outputs at the same steps
        after = seq[:, self.lookback:].unfold(1, H, 1)  # (B, T, n, H): the H values that end at step t
        arrived = ~torch.isnan(after)
        share = arrived.flatten(2).to(after.dtype).mean(-1)  # (B, T): the part of that future that arrived
        # the window then begins within the stream (its first value seen), its forecast was made, some of its
        # future arrived
        known = ~torch.isnan(seq[:, :T]).any(-1) & ~torch.isnan(made[:, :T]).any(-1).any(-1) & (share > 0)
        missed = torch.where(arrived & known[..., None, None], after - made[:, :T], 0.0)
        recalled, rstate = self.recall(now, then, h, context[:, :T], missed, torch.where(known, share, 0.0),
                                       None if state is None else state.scope("recall"), memorize)
        return recalled, rstate, made[:, T:], context[:, T:]

    def read(self, h: Tensor, win: Tensor, level: Tensor, scale: Tensor) -> tuple[Tensor, Tensor]:
        """Point forecasts and quantiles from the encoder output and the normalised windows, rescaled back."""
        B, T, n = level.shape
        out = self.head(h).view(B, T, n, self.horizon, 1 + self.quantiles.numel())
        point = level[..., None] + scale[..., None] * (self.linear(win) + out[..., 0])
        quant = point[..., None] + scale[..., None, None] * out[..., 1:]
        return point, quant

    def initial_context(self, batch: int, dtype: torch.dtype) -> Tensor:
        return torch.full((batch, self.context_length, self.n), float("nan"), dtype=dtype)


def pinball(pred: Tensor, target: Tensor, q: Tensor, weight: Tensor) -> Tensor:
    """Weighted mean quantile (pinball) loss max(q·e, (q − 1)·e), e = target − pred; pred (..., Q)."""
    e = target[..., None] - pred
    loss = torch.maximum(q * e, (q - 1) * e) * weight[..., None]
    return loss.sum() / (weight.expand_as(target).sum().clamp_min(1) * q.numel())
