"""`TitansForecaster`: a scikit-learn style forecaster whose memory keeps learning after `fit`.

`fit` trains the outer weights (through the shared Lightning loop) and then streams the series, so the
neural memory holds what it has seen. `update` streams new observations: the memory learns from them at
test time (`memorize=True`) or only reads (`memorize=False`); the outer weights never change there.
`predict` forecasts the next `horizon` steps from the end of what was streamed. The series of a panel
stream together, in one batched state (`streams.Streams`).
"""
from __future__ import annotations

import math
import os
import warnings
from collections.abc import Sequence
from typing import ClassVar

import numpy as np
import torch
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted
from torch.utils.data import DataLoader

from titans_ts import TitansConfig
from titans_ts.config import ALPHA_INIT
from titans_ts.devices import DEVICE_DEFAULTS, DEVICES, device_args
from titans_ts.params import Constraint, Either, Interval, OneOf, integer, optional_integer, validate
from titans_ts.training import fit as fit_loop

from . import persist
from .conformal import conformal_offsets
from .frames import Panel, from_values, quantile_frame, step_of, to_panel
from .losses import Carried, segment_loss
from .model import ForecastNet
from .ridge import linear_start
from .scaling import Scaler, detect_period
from .segments import LaneBatches, Segments, lane_batches, segment_items
from .streams import Streams, advance

LINEAR = ("trained", "ridge")  # the linear branch: trained on from the ridge fit; or kept at it
QUANTILES = (0.02, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.98)


class TitansForecaster(BaseEstimator):
    """Forecast `horizon` steps from a Titans encoder that memorises the stream at test time.

    Parameters follow `titans_ts.TitansConfig` for the encoder (`variant`, `d_model`, `n_layers`, `heads`,
    `window`, `chunk_size`, `memory_depth`), plus: `lookback` (values the attention window and the linear
    branch see), `patch` (the latest values in a token: at most this many, the whole window when it is
    shorter), `channel_mixing` (one token for all channels instead of one stream per channel), training
    (`max_epochs`, `batch_size`, `lr`, `patience`, `val_fraction`, `segment_length`), input layout (`time_col`, `id_col` for long panels) and `random_state`.

    `carry_memory=True` trains as the model will run: each series (channel) is read from its start in
    consecutive segments with the memory state carried across batches (truncated backpropagation through
    time; `batch_size` lanes at a time) and validated by streaming on, instead of on shuffled segments
    that each start from a fresh memory. It suits streams the model will follow for long.

    `recall=True` (the default) adds a `RecallMemory`: a second memory that learns at test time how the
    forecasts made from windows like the present one missed and adds what it recalls to the forecast, so a
    pattern seen once is forecast from memory when it comes back and a drifting series is followed. What it
    holds pays only over long stretches of a stream, so it trains with the memory carried (as
    `carry_memory=True`). `recall=False` leaves the encoder's memory alone.

    The linear branch starts at the ridge fit of the training windows (the penalty picked on the held-out
    rows) and trains on with the rest (`linear="trained"`), or stays there (`"ridge"`), so that the
    encoder learns only what a linear forecast leaves.

    `period` (e.g. 24 for hourly data with a daily rhythm) takes the training rows' mean profile of that
    cycle off the series before the net reads it and puts it back on the forecasts (`scaling.Scaler`);
    a row's phase is its position from the first row of its fitted series. "auto" (the default) finds the
    cycle in the training rows (`scaling.detect_period`; `period_` after `fit`), None takes none off.

    Devices: `accelerator`, `devices`, `strategy` and `precision` are Lightning's (`titans_ts.training`),
    spelt as in every titans-ts estimator. The defaults train on one device, a GPU where there is one
    (the memory update then runs the Triton kernels) and the CPU elsewhere, so that no fit starts
    processes unasked. `strategy="ddp"` with `devices=2` or more trains one global model over several
    devices, each reading its share of the shuffled segments or, with the memory carried, its share of
    every batch of lanes as DDP splits a batch (`segments.LaneBatches`): a lane always goes to the same
    process, which carries its memory state, and where the lanes of every batch divide evenly among the
    processes the fit is the one-process fit; the caller ends with the trained model whether it is a
    script, a notebook or a launcher's process. After `fit` the model is on the CPU; streaming and
    prediction run wherever `net_` is (move it, e.g. `f.net_.cuda()`, to stream on a GPU) while the
    streams' state and every result stay on the CPU, and files hold CPU tensors.

    `memory_retention` (tokens) starts the encoder memory's forgetting gate at α_t = 1 / memory_retention
    (eq 13; None: `TitansConfig`'s default, about 3,000) and makes it forget towards the initial weights
    M_0 that training learnt rather than towards zero (`TitansConfig.forget_toward="initial"`). A model
    trained on fresh segments has not learnt what to do with memories older than a segment, and when it
    streams for long they can make its forecasts worse; a retention near `lookback` keeps them as good as
    fresh-window forecasts. Faster forgetting makes `surprise` single out anomalies less.
    """

    def __init__(self, horizon: int = 24, lookback: int = 96, variant: str = "mal", *, d_model: int = 32,
                 n_layers: int = 2, heads: int = 4, window: int | None = None, chunk_size: int = 16,
                 memory_depth: int = 2, patch: int = 16, channel_mixing: bool = False, max_epochs: int = 10,
                 batch_size: int = 64, lr: float = 1e-3, patience: int = 3, val_fraction: float = 0.2,
                 segment_length: int | None = None, memory_retention: int | None = None,
                 carry_memory: bool = False, recall: bool = True,
                 period: int | str | None = "auto", linear: str = "trained", time_col: str | None = None,
                 id_col: str | None = None, random_state: int | None = None, progress: bool = False,
                 accelerator: str = DEVICE_DEFAULTS["accelerator"], devices: int | str = DEVICE_DEFAULTS["devices"],
                 strategy: str = DEVICE_DEFAULTS["strategy"], precision: str = DEVICE_DEFAULTS["precision"]):
        self.horizon, self.lookback, self.variant = horizon, lookback, variant
        self.d_model, self.n_layers, self.heads, self.window = d_model, n_layers, heads, window
        self.chunk_size, self.memory_depth, self.patch, self.channel_mixing = chunk_size, memory_depth, patch, channel_mixing
        self.max_epochs, self.batch_size, self.lr, self.patience = max_epochs, batch_size, lr, patience
        self.val_fraction, self.segment_length, self.carry_memory = val_fraction, segment_length, carry_memory
        self.memory_retention = memory_retention
        self.recall, self.period, self.linear = recall, period, linear
        self.time_col, self.id_col, self.random_state, self.progress = time_col, id_col, random_state, progress
        self.accelerator, self.devices, self.strategy, self.precision = accelerator, devices, strategy, precision

    parameter_constraints: ClassVar[dict[str, Constraint]] = {
        **{name: integer(1) for name in ("horizon", "lookback", "patch", "max_epochs", "batch_size")},
        "period": Either(OneOf(("auto",)), optional_integer(2)), "segment_length": optional_integer(2), "memory_retention": optional_integer(2),
        "linear": OneOf(LINEAR), "val_fraction": Interval(0, 1, closed="left"), **DEVICES,
    }

    # -- set-up -------------------------------------------------------------------------------------
    def _config(self) -> TitansConfig:
        return TitansConfig(d_model=self.d_model, n_layers=self.n_layers, heads=self.heads, variant=self.variant,
                            window=self.window or self.lookback, chunk_size=self.chunk_size,
                            memory_depth=self.memory_depth,
                            alpha_init=ALPHA_INIT if self.memory_retention is None else 1 / self.memory_retention,
                            forget_toward="zero" if self.memory_retention is None else "initial")

    def _validate_params(self) -> TitansConfig:
        validate(self, self.parameter_constraints)
        return self._config()

    def _net(self, n_channels: int) -> ForecastNet:
        return ForecastNet(n_channels if self.channel_mixing else 1, self.horizon, self.lookback,
                           min(self.patch, self.lookback), self._config(), QUANTILES, recall=self.recall)

    def _check_fitted(self) -> None:
        check_is_fitted(self, "net_", msg="This %(name)s is not fitted yet: call fit(y) first")

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
        rows = [v[: cut[k]] for k, v in panel.values.items()]
        period = detect_period(rows) if self.period == "auto" else self.period
        scaler = Scaler.fit(rows, period)
        scaled = [scaler[i].scale(v) for i, v in enumerate(panel.values.values())]
        net = self._net(len(panel.columns))
        length = self.segment_length or 2 * self.lookback
        train_cut = [c if (len(v) - c) > self.horizon else len(v) for c, v in zip(cut.values(), scaled)]
        linear_start(net, scaled, train_cut)
        net.linear.requires_grad_(self.linear == "trained")
        has_val = any(len(v) - c > self.horizon for c, v in zip(train_cut, scaled))
        lanes = [(i, c) for i, v in enumerate(scaled) for c in ([None] if self.channel_mixing else range(v.shape[1]))]
        ends, zeros = [len(v) for v in scaled], [0] * len(scaled)
        make = lambda items: Segments(scaled, items, length, net.context_length, self.horizon)  # noqa: E731
        if self.carry_memory or self.recall:  # lanes read in order, the memory carried across batches
            length = min(length, *train_cut)
            # a lane streams its training part whole (less a head shorter than a segment, so that no padding
            # enters the memory before validation), then its validation part, continuing the same state
            fit_span = [(c % length, c, 0, c - self.horizon - 1) for c in train_cut]
            val_span = [(c, n - self.horizon, c, n - self.horizon - 1) for c, n in zip(train_cut, ends)]
            keys = [(fit_span[i][:2], val_span[i][:2]) for i, _ in lanes]
            train, order = lane_batches([fit_span[i] for i, _ in lanes], length, lanes, keys, self.batch_size)
            loader = DataLoader(make(train), batch_sampler=LaneBatches(order))
            held, order = lane_batches([val_span[i] for i, _ in lanes], length, lanes, keys, self.batch_size)
            val_loader = DataLoader(make(held), batch_sampler=LaneBatches(order)) if held else None
            # each process reads its lanes' shares; after a group's first batch the carried state stands in
            # for the memory's initial weights
            step, sampling = Carried(), {"use_distributed_sampler": False, "unused_parameters": True}
        else:  # independent segments from a fresh memory, shuffled
            train = segment_items(scaled, zeros, train_cut, length, max(1, length // 8), self.horizon, lanes)
            g = torch.Generator().manual_seed(self.random_state or 0)
            loader = DataLoader(make(train), batch_size=self.batch_size, shuffle=True, generator=g)
            held = segment_items(scaled, train_cut, ends, length, length, self.horizon, lanes) if has_val else []
            val_loader = DataLoader(make(held), batch_size=self.batch_size) if held else None
            step, sampling = segment_loss, {}  # Lightning shards the segments across processes
        result = fit_loop(net, loader, val_loader, step=step, max_epochs=self.max_epochs, lr=self.lr,
                          patience=self.patience, seed=self.random_state, progress=self.progress, callbacks=callbacks,
                          **device_args(self), **sampling)
        self.best_loss_, self.history_ = result.best_loss, result.history
        self.net_, self.period_ = net, period
        self.columns_, self.n_features_in_ = panel.columns, len(panel.columns)
        self.like_ = Panel({}, {}, panel.columns, panel.kind, panel.time_col, panel.id_col, panel.meta)
        self.offsets_ = self._calibrate(scaled, train_cut, scaler) if has_val else np.zeros((len(QUANTILES), self.horizon))
        fresh = Streams.fresh(list(panel.values), net, self.n_features_in_, scaler)
        self.streams_ = self._clock(advance(net, fresh, dict(enumerate(scaled)), self.channel_mixing, True)[0],
                                    dict(enumerate(panel.times.values())))
        return self

    def _calibrate(self, scaled: list[torch.Tensor], cuts: list[int], scaler: Scaler) -> np.ndarray:
        """Split-conformal offsets per quantile level and step from the forecasts of held-out steps."""
        res = []
        for i, (v, c) in enumerate(zip(scaled, cuts)):
            keep = list(range(c - 1, len(v) - self.horizon))
            if not keep:
                continue
            fresh = Streams.fresh([None], self.net_, self.n_features_in_, scaler[[i]])
            quant = advance(self.net_, fresh, {0: v}, self.channel_mixing, True, lambda T: keep)[1][0]["quant"]
            target = v[torch.tensor(keep)[:, None] + torch.arange(1, self.horizon + 1)]  # (K, H, C)
            res.append((target.transpose(1, 2)[..., None] - quant).permute(3, 2, 0, 1).flatten(2))  # (Q, H, K·C)
        return conformal_offsets(torch.cat(res, dim=-1), QUANTILES)

    # -- streaming ----------------------------------------------------------------------------------
    @staticmethod
    def _clock(streams: Streams, times: dict[int, np.ndarray | None]) -> Streams:
        """`streams` with the time stamps of the rows just streamed (`times` per series row)."""
        last, step = streams.last_time.copy(), streams.step.copy()
        for r, t in times.items():
            if t is not None:
                if np.isnat(step[r]):
                    gap = step_of(t)
                    step[r] = np.timedelta64("NaT") if gap is None else gap
                last[r] = t[-1]
        streams.last_time, streams.step = last, step
        return streams

    def _continuation(self, y, what: str, new: bool = False) -> Panel:
        """`y` as a Panel, checked to continue the fitted series: same columns, time stamps alike, and known
        series (`new`: or new ones, each with a first window and a whole cycle of rows). Missing values (NaN)
        are kept: they are gaps to stream through."""
        panel = to_panel(y, self.like_.time_col, self.like_.id_col, what=what, missing=True)
        if panel.columns != self.columns_:
            raise ValueError(f"{what} has columns {panel.columns}, the fitted series has {self.columns_}")
        if (panel.time_col is None) != (self.like_.time_col is None):
            raise ValueError(f"{what} must carry time stamps exactly when the fitted series did")
        unknown = [k for k in panel.values if k not in self.streams_.rows]
        if unknown and not new:
            raise ValueError(f"{what} holds series {unknown[0]!r}, which fit did not see")
        need = max(self.lookback, self.period_ or 0)  # a first window, and a whole cycle
        for key in unknown:
            if len(panel.values[key]) < need:
                raise ValueError(f"{what} starts the new series {key!r} with {len(panel.values[key])} rows; a new "
                                 f"series joins with at least {need} (a window of lookback {self.lookback}"
                                 f"{f' and a period of {self.period_}' if self.period_ else ''}): "
                                 f"{need - len(panel.values[key])} more")
            if np.isnan(panel.values[key][:need]).any():
                raise ValueError(f"{what}: the new series {key!r} misses values in its first {need} rows; a new "
                                 "series starts with a whole window (and cycle) observed, from which its scale is read")
        return panel

    def _stream_on(self, y, what: str, memorize: bool, surprise: bool = False, restart: bool = False,
                   new: bool = False) -> tuple[Panel, Streams, Streams, dict]:
        """Check that `y` continues the fitted series (columns, series, time stamps; with `restart`, that it
        starts them anew; with `new`, series unseen so far start streams of their own) and stream all its
        series on in one batched pass. Returns its panel, the streams it went on from, the new streams (not
        yet the forecaster's) and the outputs of `advance` per row."""
        self._check_fitted()
        panel = self._continuation(y, what, new)
        s = self.streams_
        base = Streams.fresh(s.keys, self.net_, self.n_features_in_, s.scaler) if restart else s
        joining = [k for k in panel.values if k not in base.rows]
        if joining:  # each new series read in its own scale, from its first rows
            base = base.extend(joining, self.net_, Scaler.fit([panel.values[k] for k in joining], self.period_))
        values, times = {}, {}
        for key, v in panel.values.items():
            r, t = base.rows[key], panel.times[key]
            if t is not None and not np.isnat(base.step[r]):
                expected = base.last_time[r] + base.step[r]
                if t[0] != expected:
                    raise ValueError(f"{what} does not continue the fitted series{'' if key is None else f' {key!r}'}: "
                                     f"expected first time stamp {expected}, got {t[0]}")
            values[r], times[r] = base.scaler[r].scale(v, base.seen[r]), t
        streams, outs = advance(self.net_, base, values, self.channel_mixing, memorize, surprise=surprise)
        return panel, base, self._clock(streams, times), outs

    # -- the public streaming API ---------------------------------------------------------------------
    def update(self, y_new, memorize: bool = True) -> TitansForecaster:
        """Stream new observations that continue the fitted series; the memory learns from them if `memorize`.

        With a panel, `y_new` may hold any of the fitted series, with any number of rows each; they go
        through the network in one batched pass and the series it does not hold stay as they were. Cost is
        proportional to the new rows. A series `fit` did not see starts a stream of its own from the learnt
        initial memory, read in a scale (and cycle profile) fitted on the rows it first comes with, at least
        max(`lookback`, `period_`) of them, all observed. A missing value (NaN, or null in a frame) is a step
        no memory learns from: it is read (the windows leave it out of their level and spread), the forecasts
        go on, and a forecast whose horizon it falls in is not written back as a miss. On any error the
        forecaster is left exactly as it was.
        """
        self.streams_ = self._stream_on(y_new, "y_new", memorize, new=True)[2]
        return self

    def _emit(self, values: np.ndarray, suffix: str = ""):
        """Forecasts (S, H, C) of every series, as the kind of object fitted."""
        return from_values(self.streams_.keys, values, self._future_times(), self.like_, suffix)

    def _future_times(self) -> np.ndarray | None:
        """The time stamps (S, H) of every series' next `horizon` rows; None without time stamps."""
        s = self.streams_
        if self.like_.time_col is None:
            return None
        return s.last_time[:, None] + s.step[:, None] * np.arange(1, self.horizon + 1)

    def predict(self):
        """The next `horizon` values after the last streamed observation, as the kind of object fitted."""
        self._check_fitted()
        s = self.streams_
        return self._emit(s.scaler.unscale(s.point.transpose(1, 2).double().numpy(), s.seen))

    def _quantiles(self, q: float) -> np.ndarray:
        """The calibrated q-quantile forecasts (S, H, C) of every series."""
        grid = np.array(QUANTILES)
        j = int(np.clip(np.searchsorted(grid, q) - 1, 0, len(grid) - 2))
        w = (q - grid[j]) / (grid[j + 1] - grid[j])
        s = self.streams_
        qs = s.quant.double().numpy() + self.offsets_.T[None]  # (S, C, H, Q)
        qs = np.sort(qs, axis=-1)  # monotone in the level
        val = (1 - w) * qs[..., j] + w * qs[..., j + 1]
        return s.scaler.unscale(val.transpose(0, 2, 1), s.seen)

    @staticmethod
    def _check_levels(levels: Sequence[float]) -> list[float]:
        """Quantile levels as floats, each in (0, 1) and within the calibrated range."""
        if isinstance(levels, (str, bytes)) or not isinstance(levels, (Sequence, np.ndarray)):
            raise TypeError(f"quantiles must be a sequence of levels in (0, 1), got {type(levels).__name__}")
        out = []
        for q in levels:
            if isinstance(q, bool) or not isinstance(q, (int, float, np.floating, np.integer)):
                raise TypeError(f"quantile levels must be numbers, got {q!r}")
            q = float(q)
            if not 0 < q < 1 or not math.isfinite(q):
                raise ValueError(f"quantile levels must lie in (0, 1), got {q!r}")
            if q < QUANTILES[0] or q > QUANTILES[-1]:
                raise ValueError(f"quantile {q} is outside the calibrated range [{QUANTILES[0]}, {QUANTILES[-1]}]")
            out.append(q)
        if not out:
            raise ValueError("quantiles holds no level")
        return out

    def predict_quantiles(self, quantiles: Sequence[float] = (0.1, 0.5, 0.9)):
        """Calibrated forecast quantiles at each level of `quantiles` (each in (0, 1)).

        Fitted on numpy: an array (len(quantiles), horizon, n_columns). On pandas: a frame indexed as
        `predict()`'s with (column, quantile) MultiIndex columns. On polars: `predict()`'s frame with a
        `<column>_q<level>` column per column and level.
        """
        self._check_fitted()
        levels = self._check_levels(quantiles)
        values = np.stack([self._quantiles(q) for q in levels])  # (L, S, H, C)
        if self.like_.kind.startswith("numpy"):
            return values[:, 0]
        return quantile_frame(self.streams_.keys, values, levels, self._future_times(), self.like_)

    def predict_interval(self, coverage: float = 0.9):
        """(lower, upper) forecasts that hold the truth with probability `coverage` (split conformal)."""
        self._check_fitted()
        if not 0 < coverage < 1:
            raise ValueError(f"coverage must lie in (0, 1), got {coverage!r}")
        lo, hi = self._check_levels([(1 - coverage) / 2, (1 + coverage) / 2])
        return self._emit(self._quantiles(lo)), self._emit(self._quantiles(hi))

    # -- evaluation -----------------------------------------------------------------------------------
    def backtest(self, y, start: int = 0, stride: int | None = None, memorize: bool = True, client=None):
        """Rolling-origin evaluation of `y`, a continuation of the streamed series, through `update` (no refits).

        At each origin o = start, start + stride, ... (positions in `y`, while o + horizon ≤ len(y)) the
        forecast made after streaming `y[:o]` is scored against `y[o:o + horizon]`. The series of a panel
        go through the network together. The forecaster itself is not changed. Returns a polars frame:
        series, origin (and origin_time), channel, forecast, actual, mse, mae — one row per origin and
        channel, in the fitted (unscaled) units. Missing values in `y` (NaN) are streamed as gaps (see
        `update`) and left out of mse and mae (NaN where a horizon holds none).

        `client`, a `dask.distributed.Client`, spreads the series of a panel over its workers in tasks
        (`titans_ts.forecasting.distributed`); the frame is the same, row for row.
        """
        import polars as pl

        self._check_fitted()
        if client is not None:
            from .distributed import backtest

            return backtest(self, y, start, stride, memorize, client)
        stride = self.horizon if stride is None else stride
        if isinstance(stride, bool) or not isinstance(stride, int) or stride < 1:
            raise ValueError(f"stride must be an integer >= 1, got {stride!r}")
        panel = self._continuation(y, "y")
        origins_of = lambda T: list(range(start, T - self.horizon + 1, stride))  # noqa: E731
        s, values = self.streams_, {}
        for key, v in panel.values.items():
            if not origins_of(len(v)):
                raise ValueError(f"y has {len(v)} rows: no origin from {start} leaves a whole horizon of {self.horizon}")
            r = s.rows[key]
            values[r] = s.scaler[r].scale(v, s.seen[r])
        # the forecast at origin o is the one made after the step o − 1 (o = 0: the fitted state's)
        outs = advance(self.net_, s, values, self.channel_mixing, memorize,
                       keep=lambda T: [o - 1 for o in origins_of(T) if o > 0])[1]
        C, H = self.n_features_in_, self.horizon
        cols = {name: [] for name in ("series", "origin", "channel", "forecast", "actual", "origin_time")}
        for key, v in panel.values.items():  # rows (origin, channel) of every series, then one frame
            r, origins = s.rows[key], np.array(origins_of(len(v)))
            point = outs[r]["point"].double().numpy()
            if origins[0] == 0:
                point = np.concatenate([s.point[r].double().numpy()[None], point])
            forecast = s.scaler[r].unscale(point.transpose(0, 2, 1), s.seen[r] + origins)  # (K, H, C)
            actual = np.stack([v[o: o + H] for o in origins])
            cols["series"] += [key] * (len(origins) * C)
            cols["origin"].append(np.repeat(origins, C))
            cols["channel"] += self.columns_ * len(origins)
            cols["forecast"].append(forecast.transpose(0, 2, 1).reshape(-1, H))
            cols["actual"].append(actual.transpose(0, 2, 1).reshape(-1, H))
            if panel.times[key] is not None:
                cols["origin_time"].append(np.repeat(panel.times[key][origins].astype("datetime64[us]"), C))
        f, a = np.concatenate(cols.pop("forecast")), np.concatenate(cols.pop("actual"))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a horizon with no value observed scores NaN
            mse, mae = np.nanmean((f - a) ** 2, 1), np.nanmean(np.abs(f - a), 1)
        frame = {"series": cols["series"], "origin": np.concatenate(cols["origin"]), "channel": cols["channel"],
                 "forecast": f.tolist(), "actual": a.tolist(), "mse": mse, "mae": mae}
        if cols["origin_time"]:
            frame["origin_time"] = np.concatenate(cols["origin_time"])
        return pl.DataFrame(frame).sort("series", "origin", "channel", nulls_last=False)

    def surprise(self, y, memorize: bool = True, *, restart: bool = False, keep: bool = False):
        """How surprised the model and its memory are by every step of `y`, a continuation of the stream.

        A polars frame aligned with y's rows (its time stamps, else a step counter). Per channel (with
        channel mixing, the memory's columns are one `surprise` pair): `<channel>`, the memory's momentary
        surprise (eq 12: how badly it recalled the step before learning it), `<channel>_past`, its past
        surprise (eq 13: the momentum ‖η_t S_{t−1}‖ the step inherits), both means over layers and heads,
        and `<channel>_error`, the step's value minus the forecast made one step before (in the series'
        units; null where no forecast had been made). The series of a panel go through the network together.

        `restart=True` scores `y` as the fitted series' streams from their start (the trained weights and
        an empty memory) instead of as a continuation. The forecaster is not changed unless `keep=True`,
        which keeps the streams after `y` as `update(y)` would, from the same pass.
        """
        import polars as pl

        panel, base, streams, outs = self._stream_on(y, "y", memorize, surprise=True, restart=restart)
        names = ["surprise"] if self.channel_mixing else self.columns_
        parts: dict[str, list] = {}  # each column's piece of every series, then one frame
        for key, v in panel.values.items():
            r = base.rows[key]
            out, seen = outs[r], base.seen[r]
            before = torch.cat([base.point[r][:, 0][None], out["next"][:-1]]).double().numpy()[:, None]  # (T, 1, C)
            before = base.scaler[r].unscale(before, seen + np.arange(len(v)))[:, 0]
            cols = {} if key is None else {self.like_.id_col: np.full(len(v), key, dtype=object)}
            if panel.times[key] is not None:
                cols[self.like_.time_col] = panel.times[key]
            else:
                cols["step"] = np.arange(seen, seen + len(v))
            for name, kind in (("", "momentary"), ("_past", "past")):
                cols.update({c + name: out[kind][:, i].double().numpy() for i, c in enumerate(names)})
            cols.update({f"{c}_error": v[:, i] - before[:, i] for i, c in enumerate(self.columns_)})
            for name, col in cols.items():
                parts.setdefault(name, []).append(col)
        if keep:
            self.streams_ = streams
        frame = {name: np.concatenate(p) for name, p in parts.items()}
        if self.like_.id_col is not None:
            frame[self.like_.id_col] = frame[self.like_.id_col].tolist()
        return pl.DataFrame(frame).fill_nan(None)

    @torch.no_grad()
    def forecast_windows(self, windows: np.ndarray, first=None, series=None) -> np.ndarray:
        """Forecasts (N, horizon, C) from N independent windows (N, T, C) read from a fresh memory.

        The windowed protocol of published benchmarks: each window alone, nothing streamed before it.
        The windows are read in the scale of the fitted series `series` (its id; needed when the model
        was fitted on several). With a `period`, `first` (N,) gives each window's first row as a position
        in that series' time line (row 0 = its first fitted row), so that the cycle's phase is known.
        """
        self._check_fitted()
        s = self.streams_
        if series is None and len(s.keys) > 1:
            raise ValueError("forecast_windows needs `series`, the fitted series whose scale the windows are in")
        if series is not None and series not in s.rows:
            raise ValueError(f"series {series!r} is not a fitted series")
        scaler = s.scaler[s.rows[series] if series is not None else 0]
        windows = np.asarray(windows, dtype=np.float64)
        if windows.ndim != 3 or windows.shape[2] != self.n_features_in_:
            raise ValueError(f"windows must have shape (N, T, {self.n_features_in_}), got {windows.shape}")
        if first is None:
            if scaler.cycle is not None:
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
            w = scaler.scale(windows[a: a + size], first[a: a + size])
            N, C = w.shape[0], w.shape[2]
            x = w if self.channel_mixing else w.permute(0, 2, 1).reshape(N * C, T, 1)
            x = x.to(next(self.net_.parameters()).device)
            ctx = self.net_.initial_context(x.shape[0], torch.float32).to(x.device)
            p = self.net_(x, ctx, at=at)[0][:, -1].cpu()  # (B, n, H)
            p = p if self.channel_mixing else p.reshape(N, C, self.horizon)
            out.append(scaler.unscale(p.transpose(1, 2).double().numpy(), first[a: a + size] + T))
        return np.concatenate(out)

    # -- persistence ----------------------------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> None:
        """Weights, configuration, scaler, calibration and every stream's memory state, in safetensors."""
        self._check_fitted()
        persist.save(path, persist.Saved(self.get_params(), self.like_, self.net_.state_dict(), self.offsets_,
                                         self.streams_))

    @classmethod
    def load(cls, path: str | os.PathLike) -> TitansForecaster:
        """Read a forecaster written by `save`: it predicts and updates exactly as the saved one would."""
        saved = persist.load(path)
        self = cls(**saved.params)
        self.like_, self.columns_, self.n_features_in_ = saved.like, saved.like.columns, len(saved.like.columns)
        self.net_ = self._net(self.n_features_in_)
        self.net_.load_state_dict(saved.net)
        self.net_.eval()
        self.offsets_, self.streams_ = saved.offsets, saved.streams
        cycle = saved.streams.scaler.cycle
        self.period_ = None if cycle is None else cycle.shape[-2]
        return self
