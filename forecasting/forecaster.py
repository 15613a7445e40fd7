"""`TitansForecaster`: a scikit-learn style forecaster whose memory keeps learning after `fit`.

`fit` trains the outer weights (through the shared Lightning loop) and then streams the series, so the
neural memory holds what it has seen. `update` streams new observations: the memory learns from them at
test time (`memorize=True`) or only reads (`memorize=False`); the outer weights never change there.
`predict` forecasts the next `horizon` steps from the end of what was streamed.
"""
from __future__ import annotations

import math
import os

import numpy as np
import torch
from sklearn.base import BaseEstimator
from sklearn.exceptions import NotFittedError
from torch.utils.data import DataLoader, Dataset

from titans_ts import MemoryState, TitansConfig
from titans_ts.config import ALPHA_INIT
from titans_ts.io import load_bundle, save_bundle
from titans_ts.training import fit as fit_loop

from .frames import Panel, from_values, step_of, to_panel
from .model import ForecastNet, pinball
from .scaling import Scaler

LINEAR = ("trained", "ridge")  # the linear branch: trained on from the ridge fit; or kept at it
QUANTILES = (0.02, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.98)
_STREAM_PIECE = 2048  # steps per no-grad streaming call: bounds memory on long series


class _Segments(Dataset):
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


def _segment_items(series: list[torch.Tensor], lo: list[int], hi: list[int], length: int, stride: int,
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


def _lane_batches(spans: list[tuple[int, int, int, int]], length: int, lanes: list[tuple], keys: list,
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


class _Carried:
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
        return _loss_of(net, point, quant, target, mask) if scored else None


def _loss(net: ForecastNet, batch) -> torch.Tensor:
    """The loss of a fresh-memory segment, scored at every k-th step, k = ⌈horizon / lookback⌉ (from a
    random first step in training, the first in validation): neighbouring steps forecast nearly the same
    values when the horizon is long, and the head and loss, not the encoder, cost what grows with it."""
    x, ctx, target, mask, _, _ = batch
    k = -(-net.horizon // net.lookback)
    if k == 1:
        return _loss_of(net, *net(x, ctx)[:2], target, mask)
    at = torch.arange(int(torch.randint(k, ())) if net.training else 0, x.shape[1], k)
    return _loss_of(net, *net(x, ctx, at=at)[:2], target[:, at], mask[:, at])


def _loss_of(net: ForecastNet, point: torch.Tensor, quant: torch.Tensor, target: torch.Tensor,
             mask: torch.Tensor) -> torch.Tensor:
    """Mean squared error of the point forecast plus the pinball loss of the quantiles, on scored steps."""
    w = mask[:, :, None, None]
    mse = ((point - target).pow(2) * w).sum() / w.expand_as(target).sum().clamp_min(1)
    return mse + pinball(quant, target, net.quantiles, w)


def _gram(parts: list[torch.Tensor], lookback: int, horizon: int) -> tuple[torch.Tensor, ...] | None:
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


def _linear_start(net: ForecastNet, series: list[torch.Tensor], cut: list[int], alphas=(0.1, 1.0, 10.0, 100.0, 1e3)):
    """Start the linear branch at the ridge fit of the training windows (means off, as it reads them), its
    penalty picked on the windows whose futures lie after `cut`: the encoder then learns what a linear map
    of the window cannot, from a start no worse than the linear forecast. A training part too short for one
    (window, future) pair leaves the net's own start (the last value, held)."""
    L, H = net.lookback, net.horizon
    train = _gram([v[:c] for v, c in zip(series, cut)], L, H)
    if train is None:
        return
    held = _gram([v[max(0, c - L):] for v, c in zip(series, cut) if len(v) - c >= H], L, H)
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


class TitansForecaster(BaseEstimator):
    """Forecast `horizon` steps from a Titans encoder that memorises the stream at test time.

    Parameters follow `titans_ts.TitansConfig` for the encoder (`variant`, `d_model`, `n_layers`, `heads`,
    `window`, `chunk_size`, `memory_depth`), plus: `lookback` (values the attention window and the linear
    branch see), `patch` (values per token), `channel_mixing` (one token for all channels instead of one
    stream per channel), training (`max_epochs`, `batch_size`, `lr`, `patience`, `val_fraction`,
    `segment_length`), input layout (`time_col`, `id_col` for long panels) and `random_state`.

    `carry_memory=True` trains as the model will run: each series (channel) is read from its start in
    consecutive segments with the memory state carried across batches (truncated backpropagation through
    time; `batch_size` lanes at a time) and validated by streaming on, instead of on shuffled segments
    that each start from a fresh memory. It suits streams the model will follow for long; see
    BENCHMARKS.md for what it changes on ETTh1 and on recurring motifs.

    `recall=True` adds a `RecallMemory`: a second memory that learns at test time how the forecasts made
    from windows like the present one missed and adds what it recalls to the forecast, so a pattern seen
    once is forecast from memory when it comes back. What it holds pays only over long stretches of a
    stream, so it always trains with the memory carried (as `carry_memory=True`).

    The linear branch starts at the ridge fit of the training windows (the penalty picked on the held-out
    rows) and trains on with the rest (`linear="trained"`), or stays there (`"ridge"`), so that the
    encoder learns only what a linear forecast leaves.

    `period` (e.g. 24 for hourly data with a daily rhythm) takes the training rows' mean profile of that
    cycle off the series before the net reads it and puts it back on the forecasts (`scaling.Scaler`);
    a row's phase is its position from the first row of its fitted series.

    `memory_retention` (tokens) starts the encoder memory's forgetting gate at α_t = 1 / memory_retention
    (eq 13; None: `TitansConfig`'s default, about 3,000) and makes it forget towards the initial weights
    M_0 that training learnt rather than towards zero (`TitansConfig.forget_toward="initial"`). A model
    trained on fresh segments has not learnt what to do with memories older than a segment, and when it
    streams for long they can make its forecasts worse; set it near `lookback` for such streams (on ETTh1,
    96 streams below fresh windows at every horizon; BENCHMARKS.md, sessions 15–16). Faster forgetting
    still makes `surprise` single out anomalies less.
    """

    def __init__(self, horizon: int = 24, lookback: int = 96, variant: str = "mal", *, d_model: int = 32,
                 n_layers: int = 2, heads: int = 4, window: int | None = None, chunk_size: int = 16,
                 memory_depth: int = 2, patch: int = 16, channel_mixing: bool = False, max_epochs: int = 10,
                 batch_size: int = 64, lr: float = 1e-3, patience: int = 3, val_fraction: float = 0.2,
                 segment_length: int | None = None, memory_retention: int | None = None,
                 carry_memory: bool = False, recall: bool = False,
                 period: int | None = None, linear: str = "trained", time_col: str | None = None,
                 id_col: str | None = None, random_state: int | None = None, progress: bool = False):
        self.horizon, self.lookback, self.variant = horizon, lookback, variant
        self.d_model, self.n_layers, self.heads, self.window = d_model, n_layers, heads, window
        self.chunk_size, self.memory_depth, self.patch, self.channel_mixing = chunk_size, memory_depth, patch, channel_mixing
        self.max_epochs, self.batch_size, self.lr, self.patience = max_epochs, batch_size, lr, patience
        self.val_fraction, self.segment_length, self.carry_memory = val_fraction, segment_length, carry_memory
        self.memory_retention = memory_retention
        self.recall, self.period, self.linear = recall, period, linear
        self.time_col, self.id_col, self.random_state, self.progress = time_col, id_col, random_state, progress

    # -- set-up -------------------------------------------------------------------------------------
    def _config(self) -> TitansConfig:
        return TitansConfig(d_model=self.d_model, n_layers=self.n_layers, heads=self.heads, variant=self.variant,
                            window=self.window or self.lookback, chunk_size=self.chunk_size,
                            memory_depth=self.memory_depth,
                            alpha_init=ALPHA_INIT if self.memory_retention is None else 1 / self.memory_retention,
                            forget_toward="zero" if self.memory_retention is None else "initial")

    def _validate_params(self) -> TitansConfig:
        for name in ("horizon", "lookback", "patch", "max_epochs", "batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"TitansForecaster.{name} must be an integer >= 1, got {value!r}")
        if self.patch > self.lookback:
            raise ValueError(f"TitansForecaster.patch ({self.patch}) must not exceed lookback ({self.lookback})")
        if self.period is not None and (isinstance(self.period, bool) or not isinstance(self.period, int)
                                        or self.period < 2):
            raise ValueError(f"TitansForecaster.period must be None or an integer >= 2, got {self.period!r}")
        for name in ("segment_length", "memory_retention"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 2):
                raise ValueError(f"TitansForecaster.{name} must be None or an integer >= 2, got {value!r}")
        if self.linear not in LINEAR:
            raise ValueError(f"TitansForecaster.linear must be one of {LINEAR}, got {self.linear!r}")
        if not 0 <= self.val_fraction < 1:
            raise ValueError(f"TitansForecaster.val_fraction must be in [0, 1), got {self.val_fraction!r}")
        return self._config()

    def _net(self, n_channels: int) -> ForecastNet:
        return ForecastNet(n_channels if self.channel_mixing else 1, self.horizon, self.lookback, self.patch,
                           self._config(), QUANTILES, recall=self.recall)

    def _check_fitted(self) -> None:
        if not hasattr(self, "net_"):
            raise NotFittedError("This TitansForecaster is not fitted yet: call fit(y) first")

    # -- fit ----------------------------------------------------------------------------------------
    def fit(self, y, val=None, callbacks: tuple = ()) -> TitansForecaster:
        """Train on `y` (see the class docstring for accepted kinds), then stream it into the memory.

        The last `val_fraction` of each series (or `val`, a continuation of `y`) drives early stopping
        and calibrates the prediction intervals. `callbacks` are Lightning callbacks for the training loop.
        """
        self._validate_params()
        panel = to_panel(y, self.time_col, self.id_col)
        need = self.lookback + self.horizon + 1
        for key, v in panel.values.items():
            if len(v) < need:
                where = "" if key is None else f" (series {key!r})"
                raise ValueError(f"y has {len(v)} rows{where}; fit needs at least lookback + horizon + 1 = {need}")
        if val is None:
            cut = {k: len(v) - int(len(v) * self.val_fraction) for k, v in panel.values.items()}
        else:
            held = to_panel(val, panel.time_col, panel.id_col, what="val")
            if held.columns != panel.columns or set(held.values) - set(panel.values):
                raise ValueError("val must have the columns and series of y")
            cut = {k: len(v) for k, v in panel.values.items()}
            for k in held.values:
                panel.values[k] = np.concatenate([panel.values[k], held.values[k]])
                if panel.times[k] is not None:
                    panel.times[k] = np.concatenate([panel.times[k], held.times[k]])
        if self.random_state is not None:
            torch.manual_seed(self.random_state)
        scaler = Scaler.fit([v[: cut[k]] for k, v in panel.values.items()], self.period)
        scaled = [scaler.scale(v) for v in panel.values.values()]
        net = self._net(len(panel.columns))
        length = self.segment_length or 2 * self.lookback
        train_cut = [c if (len(v) - c) > self.horizon else len(v) for c, v in zip(cut.values(), scaled)]
        _linear_start(net, scaled, train_cut)
        net.linear.requires_grad_(self.linear == "trained")
        has_val = any(len(v) - c > self.horizon for c, v in zip(train_cut, scaled))
        lanes = [(i, c) for i, v in enumerate(scaled) for c in ([None] if self.channel_mixing else range(v.shape[1]))]
        ends, zeros = [len(v) for v in scaled], [0] * len(scaled)
        make = lambda items: _Segments(scaled, items, length, net.context_length, self.horizon)  # noqa: E731
        if self.carry_memory or self.recall:  # lanes read in order, the memory carried across batches
            length = min(length, *train_cut)
            # a lane streams its training part whole (less a head shorter than a segment, so that no padding
            # enters the memory before validation), then its validation part, continuing the same state
            fit_span = [(c % length, c, 0, c - self.horizon - 1) for c in train_cut]
            val_span = [(c, n - self.horizon, c, n - self.horizon - 1) for c, n in zip(train_cut, ends)]
            keys = [(fit_span[i][:2], val_span[i][:2]) for i, _ in lanes]
            train, order = _lane_batches([fit_span[i] for i, _ in lanes], length, lanes, keys, self.batch_size)
            loader = DataLoader(make(train), batch_sampler=order)
            held, order = _lane_batches([val_span[i] for i, _ in lanes], length, lanes, keys, self.batch_size)
            val_loader = DataLoader(make(held), batch_sampler=order) if held else None
            step = _Carried()
        else:  # independent segments from a fresh memory, shuffled
            train = _segment_items(scaled, zeros, train_cut, length, max(1, length // 8), self.horizon, lanes)
            g = torch.Generator().manual_seed(self.random_state or 0)
            loader = DataLoader(make(train), batch_size=self.batch_size, shuffle=True, generator=g)
            held = _segment_items(scaled, train_cut, ends, length, length, self.horizon, lanes) if has_val else []
            val_loader = DataLoader(make(held), batch_size=self.batch_size) if held else None
            step = _loss
        result = fit_loop(net, loader, val_loader, step=step, max_epochs=self.max_epochs, lr=self.lr,
                          patience=self.patience, seed=self.random_state, progress=self.progress, callbacks=callbacks)
        self.best_loss_, self.history_ = result.best_loss, result.history
        self.net_, self.scaler_ = net, scaler
        self.columns_, self.n_features_in_ = panel.columns, len(panel.columns)
        self.like_ = Panel({}, {}, panel.columns, panel.kind, panel.time_col, panel.id_col, panel.meta)
        self.offsets_ = self._calibrate(scaled, train_cut) if has_val else np.zeros((len(QUANTILES), self.horizon))
        self.streams_ = {}
        for key, v, t in zip(panel.values, scaled, panel.times.values()):
            self.streams_[key] = self._advance(self._fresh(), v, t, True)[0]
        return self

    # -- streaming ----------------------------------------------------------------------------------
    def _fresh(self) -> dict:
        n = self.n_features_in_
        return {"mem": None, "context": self.net_.initial_context(1 if self.channel_mixing else n, torch.float32),
                "point": None, "quant": None, "last_time": None, "step": None, "seen": 0}

    def _layout(self, v: torch.Tensor) -> torch.Tensor:  # (T, C) -> (B, T, n)
        return v[None] if self.channel_mixing else v.T[:, :, None]

    def _unlayout(self, p: torch.Tensor) -> torch.Tensor:  # (B, T, n, ...) -> (T, C, ...)
        return p[0] if self.channel_mixing else p[:, :, 0].transpose(0, 1)

    @torch.inference_mode()
    def _run(self, stream: dict, v: torch.Tensor, memorize: bool, keep=None, surprise: bool = False):
        """Stream scaled values (T, C) on from `stream`. Returns the new stream and what was asked for:
        the forecasts made at rows `keep` ("point" (K, C, H), "quant"), and with `surprise` every row's
        memory surprise ("momentary", "past": (T, n), means over layers) and next-step forecast ("next" (T, C))."""
        if self.net_.training:
            self.net_.eval()
        mem, ctx = stream["mem"], stream["context"]
        out = {name: [] for name in ("point", "quant", "momentary", "past", "next")}
        for a in range(0, len(v), _STREAM_PIECE):
            piece = self._layout(v[a: a + _STREAM_PIECE])
            point, quant, mem, *scores = self.net_(piece, ctx, mem, memorize, surprise)
            if surprise:
                out["momentary"].append(scores[0].momentary.mean(-1).T)
                out["past"].append(scores[0].past.mean(-1).T)
            point, quant = self._unlayout(point), self._unlayout(quant)
            keep_ctx = self.net_.context_length
            ctx = torch.cat([ctx, piece], dim=1)[:, -keep_ctx:] if keep_ctx else ctx
            if keep is not None:
                rows = [i - a for i in keep if a <= i < a + piece.shape[1]]
                out["point"].append(point[rows])
                out["quant"].append(quant[rows])
            if surprise:
                out["next"].append(point[..., 0])
        new = dict(stream, mem=mem, context=ctx, point=point[-1], quant=quant[-1])
        new["seen"] = stream["seen"] + len(v)
        return new, {name: torch.cat(parts) for name, parts in out.items() if parts}

    def _advance(self, stream: dict, v: torch.Tensor, times, memorize: bool, surprise: bool = False):
        """`_run` on from `stream`, then its clock: the new stream and the outputs of `_run`."""
        new, out = self._run(stream, v, memorize, surprise=surprise)
        if times is not None:
            new["step"] = step_of(times) if stream["step"] is None else stream["step"]
            new["last_time"] = times[-1]
        return new, out

    def _calibrate(self, scaled: list[torch.Tensor], cuts: list[int]) -> np.ndarray:
        """Split-conformal offsets per quantile level and step: δ_q = q-quantile of (y − ŷ_q) on held-out steps."""
        res = []
        for v, c in zip(scaled, cuts):
            keep = list(range(c - 1, len(v) - self.horizon))
            if not keep:
                continue
            quant = self._run(self._fresh(), v, True, keep)[1]["quant"]
            target = v[torch.tensor(keep)[:, None] + torch.arange(1, self.horizon + 1)]  # (K, H, C)
            res.append((target.transpose(1, 2)[..., None] - quant).permute(3, 2, 0, 1).flatten(2))  # (Q, H, K·C)
        r = torch.cat(res, dim=-1).double()
        levels = torch.tensor(QUANTILES, dtype=torch.float64)[:, None, None]
        n = r.shape[-1]
        adj = ((levels * (n + 1)).ceil() / n).clamp(0, 1) if n else levels  # finite-sample correction
        lo = ((levels * (n + 1) - 1).floor() / n).clamp(0, 1)
        adj = torch.where(levels >= 0.5, adj, lo)
        return torch.stack([torch.quantile(r[i], adj[i, 0, 0].item(), dim=-1) for i in range(len(QUANTILES))]).numpy()

    def _continuation(self, y, what: str) -> Panel:
        """`y` as a Panel, checked to continue the fitted series: same columns, known series, time stamps alike."""
        panel = to_panel(y, self.like_.time_col, self.like_.id_col, what=what)
        if panel.columns != self.columns_:
            raise ValueError(f"{what} has columns {panel.columns}, the fitted series has {self.columns_}")
        if (panel.time_col is None) != (self.like_.time_col is None):
            raise ValueError(f"{what} must carry time stamps exactly when the fitted series did")
        unknown = [k for k in panel.values if k not in self.streams_]
        if unknown:
            raise ValueError(f"{what} holds series {unknown[0]!r}, which fit did not see")
        return panel

    # -- the public streaming API ---------------------------------------------------------------------
    def update(self, y_new, memorize: bool = True) -> TitansForecaster:
        """Stream new observations that continue the fitted series; the memory learns from them if `memorize`.

        Cost is proportional to the new rows. On any error the forecaster is left exactly as it was.
        """
        self.streams_ = self._stream_on(y_new, "y_new", memorize)[1]
        return self

    def _stream_on(self, y, what: str, memorize: bool, surprise: bool = False) -> tuple[Panel, dict, dict]:
        """Check that `y` continues the fitted series (columns, series, time stamps) and stream it on.
        Returns its panel, the new streams (not yet the forecaster's) and each series' outputs of `_run`."""
        self._check_fitted()
        panel = self._continuation(y, what)
        streams, outs = dict(self.streams_), {}
        for key, v in panel.values.items():
            stream, t = streams[key], panel.times[key]
            if t is not None and stream["step"] is not None:
                expected = stream["last_time"] + stream["step"]
                if t[0] != expected:
                    raise ValueError(f"{what} does not continue the fitted series{'' if key is None else f' {key!r}'}: "
                                     f"expected first time stamp {expected}, got {t[0]}")
            scaled = self.scaler_.scale(v, stream["seen"])
            streams[key], outs[key] = self._advance(stream, scaled, t, memorize, surprise)
        return panel, streams, outs

    def _future_times(self, stream: dict) -> np.ndarray | None:
        if stream["last_time"] is None:
            return None
        return stream["last_time"] + stream["step"] * np.arange(1, self.horizon + 1)

    def _emit(self, arrays: dict, suffix: str = ""):
        times = {k: self._future_times(self.streams_[k]) for k in arrays}
        return from_values(arrays, times, self.like_, suffix)

    def predict(self):
        """The next `horizon` values after the last streamed observation, as the kind of object fitted."""
        self._check_fitted()
        return self._emit({k: self.scaler_.unscale(s["point"].T.double().numpy(), s["seen"]) for k, s in self.streams_.items()})

    def _quantile_arrays(self, q: float) -> dict:
        if not 0 < q < 1 or not math.isfinite(q):
            raise ValueError(f"quantile levels must lie in (0, 1), got {q!r}")
        grid = np.array(QUANTILES)
        if q < grid[0] or q > grid[-1]:
            raise ValueError(f"quantile {q} is outside the calibrated range [{grid[0]}, {grid[-1]}]")
        j = int(np.clip(np.searchsorted(grid, q) - 1, 0, len(grid) - 2))
        w = (q - grid[j]) / (grid[j + 1] - grid[j])
        out = {}
        for key, s in self.streams_.items():
            qs = s["quant"].double().numpy() + self.offsets_.T[None]  # (C, H, Q)
            qs = np.sort(qs, axis=-1)  # monotone in the level
            val = (1 - w) * qs[..., j] + w * qs[..., j + 1]
            out[key] = self.scaler_.unscale(val.T, s["seen"])
        return out

    def predict_quantiles(self, quantiles=(0.1, 0.5, 0.9)) -> dict:
        """Calibrated forecast quantiles: {level: forecast shaped like `predict()`}."""
        self._check_fitted()
        return {float(q): self._emit(self._quantile_arrays(float(q))) for q in quantiles}

    def predict_interval(self, coverage: float = 0.9):
        """(lower, upper) forecasts that hold the truth with probability `coverage` (split conformal)."""
        self._check_fitted()
        if not 0 < coverage < 1:
            raise ValueError(f"coverage must lie in (0, 1), got {coverage!r}")
        lo, hi = (1 - coverage) / 2, (1 + coverage) / 2
        return self._emit(self._quantile_arrays(lo)), self._emit(self._quantile_arrays(hi))

    # -- evaluation -----------------------------------------------------------------------------------
    def backtest(self, y, start: int = 0, stride: int | None = None, memorize: bool = True):
        """Rolling-origin evaluation of `y`, a continuation of the streamed series, through `update` (no refits).

        At each origin o = start, start + stride, ... (positions in `y`, while o + horizon ≤ len(y)) the
        forecast made after streaming `y[:o]` is scored against `y[o:o + horizon]`. The forecaster itself
        is not changed. Returns a polars frame: series, origin (and origin_time), channel, forecast,
        actual, mse, mae — one row per origin and channel, in the fitted (unscaled) units.
        """
        import polars as pl

        self._check_fitted()
        stride = self.horizon if stride is None else stride
        if isinstance(stride, bool) or not isinstance(stride, int) or stride < 1:
            raise ValueError(f"stride must be an integer >= 1, got {stride!r}")
        panel = self._continuation(y, "y")
        rows = []
        for key, v in panel.values.items():
            origins = list(range(start, len(v) - self.horizon + 1, stride))
            if not origins:
                raise ValueError(f"y has {len(v)} rows: no origin from {start} leaves a whole horizon of {self.horizon}")
            seen = self.streams_[key]["seen"]
            scaled = self.scaler_.scale(v, seen)
            # the forecast at origin o is the one made after the step o − 1 (o = 0: the fitted state's)
            kept = [o - 1 for o in origins if o > 0]
            point = self._run(self.streams_[key], scaled, memorize, keep=kept)[1]["point"].double().numpy()
            if origins[0] == 0:
                point = np.concatenate([self.streams_[key]["point"].double().numpy()[None], point])
            forecast = self.scaler_.unscale(point.transpose(0, 2, 1), seen + np.array(origins))  # (K, H, C)
            actual = np.stack([v[o: o + self.horizon] for o in origins])
            for ci, col in enumerate(self.columns_):
                f, a = forecast[:, :, ci], actual[:, :, ci]
                part = {"series": [key] * len(origins), "origin": origins, "channel": [col] * len(origins),
                        "forecast": f.tolist(), "actual": a.tolist(),
                        "mse": ((f - a) ** 2).mean(1), "mae": np.abs(f - a).mean(1)}
                if panel.times[key] is not None:
                    part["origin_time"] = [panel.times[key][o] for o in origins]
                rows.append(pl.DataFrame(part))
        return pl.concat(rows).sort("series", "origin", "channel", nulls_last=False) if len(rows) > 1 else rows[0]

    def surprise(self, y, memorize: bool = True):
        """How surprised the model and its memory are by every step of `y`, a continuation of the stream.

        A polars frame aligned with y's rows (its time stamps, else a step counter). Per channel (with
        channel mixing, the memory's columns are one `surprise` pair): `<channel>`, the memory's momentary
        surprise (eq 12: how badly it recalled the step before learning it), `<channel>_past`, its past
        surprise (eq 13: the momentum ‖η_t S_{t−1}‖ the step inherits), both means over layers and heads,
        and `<channel>_error`, the step's value minus the forecast made one step before (in the series'
        units; null where no forecast had been made). The forecaster is not changed.
        """
        return self._surprise(y, memorize)[0]

    def _surprise(self, y, memorize: bool = True):
        """`surprise`'s frame and the streams after `y`, so that a caller may also keep them (one pass)."""
        import polars as pl

        panel, streams, outs = self._stream_on(y, "y", memorize, surprise=True)
        names = ["surprise"] if self.channel_mixing else self.columns_
        frames = []
        for key, v in panel.values.items():
            stream, out = self.streams_[key], outs[key]
            first = torch.full((v.shape[1],), float("nan")) if stream["point"] is None else stream["point"][:, 0]
            before = torch.cat([first[None], out["next"][:-1]]).double().numpy()[:, None]  # (T, 1, C)
            before = self.scaler_.unscale(before, stream["seen"] + np.arange(len(v)))[:, 0]
            cols = {} if key is None else {self.like_.id_col: [key] * len(v)}
            if panel.times[key] is not None:
                cols[self.like_.time_col] = panel.times[key]
            else:
                cols["step"] = np.arange(stream["seen"], stream["seen"] + len(v))
            for name, kind in (("", "momentary"), ("_past", "past")):
                cols.update({c + name: out[kind][:, i].double().numpy() for i, c in enumerate(names)})
            cols.update({f"{c}_error": v[:, i] - before[:, i] for i, c in enumerate(self.columns_)})
            frames.append(pl.DataFrame(cols).fill_nan(None))
        return pl.concat(frames), streams

    @torch.no_grad()
    def forecast_windows(self, windows: np.ndarray, first=None) -> np.ndarray:
        """Forecasts (N, horizon, C) from N independent windows (N, T, C) read from a fresh memory.

        The windowed protocol of published benchmarks: each window alone, nothing streamed before it.
        With a `period`, `first` (N,) gives each window's first row as a position in the fitted series'
        time line (row 0 = its first fitted row), so that the cycle's phase is known.
        """
        self._check_fitted()
        windows = np.asarray(windows, dtype=np.float64)
        if windows.ndim != 3 or windows.shape[2] != self.n_features_in_:
            raise ValueError(f"windows must have shape (N, T, {self.n_features_in_}), got {windows.shape}")
        if first is None:
            if self.scaler_.cycle is not None:
                raise ValueError("forecast_windows needs `first` (each window's first row position) when period is set")
            first = np.zeros(len(windows), dtype=np.int64)
        first = np.asarray(first)
        if first.shape != (len(windows),) or not np.issubdtype(first.dtype, np.integer):
            raise ValueError(f"first must hold one integer position per window, shape ({len(windows)},), got {first.shape}")
        self.net_.eval()
        T = windows.shape[1]
        # the forecast of the last step only; with recall, of every step (it writes them): bound that output
        at = None if self.recall else torch.tensor([T - 1])
        per_window = (T if at is None else 1) * self.n_features_in_ * self.horizon * (1 + len(QUANTILES))
        size = max(1, min(256, (1 << 24) // per_window))
        out = []
        for a in range(0, len(windows), size):
            w = self.scaler_.scale(windows[a: a + size], first[a: a + size])
            N, C = w.shape[0], w.shape[2]
            x = w if self.channel_mixing else w.permute(0, 2, 1).reshape(N * C, T, 1)
            p = self.net_(x, self.net_.initial_context(x.shape[0], torch.float32), at=at)[0][:, -1]  # (B, n, H)
            p = p if self.channel_mixing else p.reshape(N, C, self.horizon)
            out.append(self.scaler_.unscale(p.transpose(1, 2).double().numpy(), first[a: a + size] + T))
        return np.concatenate(out)

    # -- persistence ----------------------------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> None:
        """Weights, configuration, scaler, calibration and every stream's memory state, in safetensors."""
        self._check_fitted()
        tensors = {f"net.{k}": v for k, v in self.net_.state_dict().items()}
        tensors.update(mean=torch.tensor(self.scaler_.mean), std=torch.tensor(self.scaler_.std),
                       offsets=torch.tensor(self.offsets_))
        if self.scaler_.cycle is not None:
            tensors["cycle"] = torch.tensor(self.scaler_.cycle)
        streams = []
        for i, (key, s) in enumerate(self.streams_.items()):
            tensors.update({f"stream.{i}.mem.{k}": v for k, v in s["mem"].items()})
            for name in ("context", "point", "quant"):
                tensors[f"stream.{i}.{name}"] = s[name]
            streams.append({"key": key, "seen": s["seen"],
                            "last_time": None if s["last_time"] is None else int(s["last_time"].astype("int64")),
                            "step": None if s["step"] is None else int(s["step"].astype("int64"))})
        like = {"columns": self.columns_, "kind": self.like_.kind, "time_col": self.like_.time_col,
                "id_col": self.like_.id_col, "meta": self.like_.meta}
        save_bundle(path, tensors, {"params": self.get_params(), "like": like, "streams": streams}, kind="TitansForecaster")

    @classmethod
    def load(cls, path: str | os.PathLike) -> TitansForecaster:
        """Read a forecaster written by `save`: it predicts and updates exactly as the saved one would."""
        tensors, meta = load_bundle(path, kind="TitansForecaster")
        self = cls(**meta["params"])
        like = meta["like"]
        self.columns_, self.n_features_in_ = like["columns"], len(like["columns"])
        self.like_ = Panel({}, {}, like["columns"], like["kind"], like["time_col"], like["id_col"], like["meta"])
        self.net_ = self._net(self.n_features_in_)
        self.net_.load_state_dict({k[4:]: v for k, v in tensors.items() if k.startswith("net.")})
        self.net_.eval()
        cycle = tensors.get("cycle")
        self.scaler_ = Scaler(tensors["mean"].numpy(), tensors["std"].numpy(), None if cycle is None else cycle.numpy())
        self.offsets_ = tensors["offsets"].numpy()
        self.streams_ = {}
        for i, s in enumerate(meta["streams"]):
            p = f"stream.{i}."
            mem = MemoryState({k[len(p) + 4:]: v for k, v in tensors.items() if k.startswith(p + "mem.")})
            self.streams_[s["key"]] = {
                "mem": mem, "context": tensors[p + "context"], "point": tensors[p + "point"],
                "quant": tensors[p + "quant"], "seen": s["seen"],
                "last_time": None if s["last_time"] is None else np.datetime64(s["last_time"], "ns"),
                "step": None if s["step"] is None else np.timedelta64(s["step"], "ns")}
        return self
