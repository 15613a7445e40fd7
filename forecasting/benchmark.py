"""Forecasting benchmarks: ETT (windowed and streaming), the online protocol (and with readings missing
at random: `gaps`), recall of the day before on real data (`daily-recall`), and memorisation.

    python -m titans_ts.forecasting.benchmark --data ETTh1.csv --horizons 96 192 336 720 --json out.json

Prints a table and writes JSON `{"dataset", "results": [{"model", "protocol", "horizon", "mse", "mae",
"train_seconds"}, ...]}`. Errors are on values scaled by the training rows' statistics, averaged over
every window, step and channel. Baselines run on the same windows in the same command.

Each forecasting protocol fits on its training rows and scores a validation set first (the standard
protocol's validation windows, the online protocol's validation rows streamed online, a second motif
stream); `--select KEY=V1,V2 ...` fits every combination of the given settings, keeps the one with the
lowest validation score and reads the test rows for that one only (a `selection` row per candidate).

    python -m titans_ts.forecasting.benchmark --data ETTh1.csv --protocols online --select period=none,24
"""
from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.ensemble import IsolationForest
from sklearn.linear_model import Ridge
from sklearn.metrics import roc_auc_score

from titans_ts.datasets import anomaly_stream, ett_splits, recurring_motifs
from titans_ts.datasets.synthetic import ANOMALY_KINDS
from titans_ts.forecasting.anomaly import TitansAnomalyDetector
from titans_ts.forecasting.cli import period_arg
from titans_ts.forecasting.forecaster import LINEAR, TitansForecaster
from titans_ts.forecasting.scaling import Scaler

ALPHAS = (0.1, 1.0, 10.0, 100.0, 1000.0)


def windows(values: np.ndarray, lookback: int, horizon: int, first: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """All (input, target) pairs whose input ends at step o − 1 for o ≥ first + lookback."""
    origins = np.arange(first + lookback, len(values) - horizon + 1)
    idx_in = origins[:, None] + np.arange(-lookback, 0)
    idx_out = origins[:, None] + np.arange(horizon)
    return values[idx_in], values[idx_out]


def scores(pred: np.ndarray, true: np.ndarray) -> tuple[float, float]:
    return float(((pred - true) ** 2).mean()), float(np.abs(pred - true).mean())


def ridge_cycle(s, lookback: int, horizon: int, period: int) -> tuple[np.ndarray, np.ndarray]:
    """The linear analogue of the forecaster with a `period`: ridge on windows with the training rows' cycle
    (the forecaster's `Scaler`) and each window's own mean taken off. Test forecasts and targets (N, H, C)."""
    cycle = Scaler.fit([s.train], period)[0].season  # the splits are standardised already: only the cycle goes
    start = s.borders.train[0]
    parts = [windows(a - cycle(b - start, len(a)), lookback, horizon)
             for a, b in ((s.train, s.borders.train[0]), (s.val, s.borders.val[0]), (s.test, s.borders.test[0]))]
    mu = [x.mean(1, keepdims=True) for x, _ in parts]
    (x, y), (xv, yv), (xt, _) = ((x - m, y - m) for (x, y), m in zip(parts, mu))
    first = s.borders.test[0] - start + lookback + np.arange(len(xt))  # each forecast's first row
    pred = ridge_predict(ridge_fit(x, y, xv, yv), xt) + mu[2] + cycle(first, horizon)
    return pred, windows(s.test, lookback, horizon)[1]


def ridge_fit(x: np.ndarray, y: np.ndarray, xv: np.ndarray, yv: np.ndarray) -> Ridge:
    """Channel-independent ridge (one map from a channel's window to its future), alpha picked on validation."""
    flat = lambda a: a.transpose(0, 2, 1).reshape(-1, a.shape[1])  # noqa: E731  (N, T, C) -> (N·C, T)
    best = min(ALPHAS, key=lambda al: ((Ridge(alpha=al).fit(flat(x), flat(y)).predict(flat(xv)) - flat(yv)) ** 2).mean())
    return Ridge(alpha=best).fit(np.concatenate([flat(x), flat(xv)]), np.concatenate([flat(y), flat(yv)]))


def ridge_predict(model: Ridge, x: np.ndarray) -> np.ndarray:
    N, T, C = x.shape
    return model.predict(x.transpose(0, 2, 1).reshape(-1, T)).reshape(N, C, -1).transpose(0, 2, 1)


@dataclass
class Fitted:
    """A forecaster fitted for one protocol: its validation score (what `--select` minimises) and what
    the protocol's test phase needs."""

    model: TitansForecaster
    seconds: float
    val: float
    data: Any


def standard_fit(path: str, horizon: int, lookback: int, params: dict) -> Fitted:
    """Train on the standard protocol's training rows; the validation score is the MSE of the validation
    windows, each read from a fresh memory as the test windows will be."""
    s = ett_splits(path, lookback=lookback, scale=True)
    xv, yv = windows(s.val, lookback, horizon)
    f = TitansForecaster(horizon=horizon, lookback=lookback, **params)
    t0 = time.perf_counter()
    f.fit(s.train, val=s.val[lookback:])  # the fitted series' row 0 is the first training row
    seconds = time.perf_counter() - t0
    first_val = s.borders.val[0] - s.borders.train[0] + np.arange(len(xv))
    val_mse, val_mae = scores(f.forecast_windows(xv, first_val), yv)
    return Fitted(f, seconds, val_mse, dict(splits=s, val_mae=val_mae))


def standard_test(fitted: Fitted) -> list[dict]:
    """The Informer / Time-Series-Library protocol on the test rows, windowed and streaming, beside ridge."""
    f, s, lookback, horizon = fitted.model, fitted.data["splits"], fitted.model.lookback, fitted.model.horizon
    x, y = windows(s.train, lookback, horizon)
    xv, yv = windows(s.val, lookback, horizon)
    xt, yt = windows(s.test, lookback, horizon)
    t0 = time.perf_counter()
    ridge = ridge_fit(x, y, xv, yv)
    rows = [dict(model="ridge", protocol="windowed", horizon=horizon, train_seconds=time.perf_counter() - t0,
                 **dict(zip(("mse", "mae"), scores(ridge_predict(ridge, xt), yt))))]
    if f.period_:  # the cycle the forecaster took off (given, or found in the training rows)
        t0 = time.perf_counter()
        pred, true = ridge_cycle(s, lookback, horizon, f.period_)
        rows.append(dict(model=f"ridge+cycle{f.period_}", protocol="windowed", horizon=horizon,
                         train_seconds=time.perf_counter() - t0, **dict(zip(("mse", "mae"), scores(pred, true)))))
    first = s.borders.test[0] - s.borders.train[0] + np.arange(len(xt))  # each test window's first row
    rows.append(dict(model=f"titans-{f.variant}", protocol="windowed", horizon=horizon, train_seconds=fitted.seconds,
                     **dict(zip(("mse", "mae"), scores(f.forecast_windows(xt, first), yt))),
                     # the same forecasts on the validation windows: what a choice between configurations uses
                     val_mse=fitted.val, val_mae=fitted.data["val_mae"]))
    for memorize in (True, False):  # the memory has streamed everything before each origin (frozen: since fit)
        pred = backtest_forecasts(f, s.test[lookback:], memorize)
        rows.append(dict(model=f"titans-{f.variant}" + ("" if memorize else "-frozen-memory"), protocol="streaming",
                         horizon=horizon, train_seconds=fitted.seconds, **dict(zip(("mse", "mae"), scores(pred, yt)))))
    return rows


def backtest_forecasts(f: TitansForecaster, rows: np.ndarray, memorize: bool) -> np.ndarray:
    """Forecasts (K, horizon, C) at every origin of `rows` (a continuation of the streamed series), made
    after streaming all rows before the origin."""
    bt = f.backtest(rows, start=0, stride=1, memorize=memorize)
    return np.array(bt["forecast"].to_list()).reshape(-1, rows.shape[1], f.horizon).transpose(0, 2, 1)


def scored(model: str, protocol: str, pred: np.ndarray, true: np.ndarray, **extra) -> dict:
    """A result row of forecasts (N, H, C) against `true`."""
    return {**dict(model=model, protocol=protocol, horizon=true.shape[1], train_seconds=0.0,
                   **dict(zip(("mse", "mae"), scores(pred, true)))), **extra}


def last_value(x: np.ndarray, true: np.ndarray) -> np.ndarray:
    """The naive forecast: each window's last value (x (N, L, C)), held over the horizon of `true`."""
    return np.broadcast_to(x[:, -1:], true.shape)


def memory_rows(fitted: Fitted, stream: np.ndarray, true: np.ndarray, protocol: str) -> list[dict]:
    """The fitted model forecasting at every origin of `stream` (a continuation of what it has streamed),
    its memories learning and frozen since `fit`, scored against `true`."""
    f = fitted.model
    return [scored(f"titans-{f.variant}" + ("" if memorize else "-frozen-memory"), protocol,
                   backtest_forecasts(f, stream, memorize), true, train_seconds=fitted.seconds, val_mse=fitted.val)
            for memorize in (True, False)]


def online_fit(path: str, horizon: int, lookback: int, params: dict, splits: str = "online") -> Fitted:
    """Train on the online protocol's warm-up rows (early stopping on their tail), then score the leak-free
    online protocol on the validation rows: forecast, score, stream the one new row. That MSE is the
    validation score; the validation rows are then streamed, so the test stream continues from them.
    `splits="standard"` takes the standard protocol's rows instead (a year of training)."""
    s = ett_splits(path, lookback=lookback, scale=True, protocol=splits)
    f = TitansForecaster(horizon=horizon, lookback=lookback, **params)
    t0 = time.perf_counter()
    f.fit(s.train)
    seconds = time.perf_counter() - t0
    val = s.val[lookback:]
    val_mse = scores(backtest_forecasts(f, val, True), windows(s.val, lookback, horizon)[1])[0]
    f.update(val)
    return Fitted(f, seconds, val_mse, dict(splits=s))


def online_test(fitted: Fitted) -> list[dict]:
    """FSNet / OneNet online protocol without its label leak, on the test stream, beside the naive last
    value and online ridges that keep learning as the model does."""
    f, s, lookback, horizon = fitted.model, fitted.data["splits"], fitted.model.lookback, fitted.model.horizon
    stream = s.test[lookback:]  # rows of the online phase; the model has streamed everything before them
    xt, yt = windows(s.test, lookback, horizon)
    rows = memory_rows(fitted, stream, yt, "online") + [scored("naive-last-value", "online", last_value(xt, yt), yt)]
    history = np.concatenate([s.train, s.val[lookback:]])
    rows.append(dict(model="online-ridge", protocol="online", horizon=horizon,
                     **online_ridge(history, len(s.train), stream, lookback, horizon)))
    period = f.period_
    rows.append(dict(model="online-ridge-revin" + (f"+cycle{period}" if period else ""), protocol="online",
                     horizon=horizon, **online_ridge(history, len(s.train), stream, lookback, horizon,
                                                     normalise=True, period=period)))
    return rows


def gaps_test(fitted: Fitted, fractions: list[float], seed: int = 0) -> list[dict]:
    """The online test stream with a fraction of its readings removed at random (each value alone): the
    model streams the gaps (`update` reads them and writes no memory), every forecast is scored at the
    readings that remain, beside the same model on the complete stream and the last value observed, both
    scored at the same readings."""
    f, s, lookback, horizon = fitted.model, fitted.data["splits"], fitted.model.lookback, fitted.model.horizon
    stream = s.test[lookback:]
    _, yt = windows(s.test, lookback, horizon)
    complete = backtest_forecasts(f, stream, True)
    rows = []
    for fraction in fractions:
        gone = np.random.default_rng(seed).random(stream.shape) < fraction
        shown = np.where(gone, np.nan, stream)
        _, kept = windows(np.concatenate([np.ones((lookback, stream.shape[1]), bool), ~gone]), lookback, horizon)
        at = lambda pred: dict(zip(("mse", "mae"), scores(pred[kept], yt[kept])))  # noqa: E731
        seen = np.concatenate([s.test[:lookback], shown])
        at_row = np.maximum.accumulate(np.where(np.isnan(seen), 0, np.arange(len(seen))[:, None]), axis=0)
        last = np.take_along_axis(seen, at_row, axis=0)  # the last value observed, held
        held = np.broadcast_to(windows(last, lookback, horizon)[0][:, -1:], yt.shape)
        protocol = f"online-{fraction:.0%}-gone"
        rows += [dict(model=f"titans-{f.variant}", protocol=protocol, horizon=horizon,
                      train_seconds=fitted.seconds, **at(backtest_forecasts(f, shown, True))),
                 dict(model=f"titans-{f.variant}-complete-stream", protocol=protocol, horizon=horizon, **at(complete)),
                 dict(model="naive-last-observed", protocol=protocol, horizon=horizon, **at(held))]
    return rows


def steps_per_day(path: str) -> int:
    """Rows per day of an ETT-format file (24 hourly, 96 at 15 minutes)."""
    dates = ett_splits(path, lookback=1, scale=False).train_dates
    return int(np.timedelta64(1, "D") // (dates[1] - dates[0]))


def daily_recall_fit(path: str, day: int, params: dict) -> Fitted:
    """The online protocol on the standard protocol's rows, a horizon of half a day (`day` rows), a window of
    a quarter day and no cycle taken off. The encoder reaches 2 × lookback − 1 values back (a window of tokens
    that each hold up to `lookback` values), so the same hours of the day before, which say most about the
    next half day, lie beyond its reach: only a memory that learns the series as it streams can bring them
    back (a cycle taken off by the calendar would hand the model yesterday's average shape instead)."""
    fitted = online_fit(path, day // 2, day // 4, dict(params, period=None), splits="standard")
    fitted.data["day"] = day
    return fitted


def daily_recall_test(fitted: Fitted) -> list[dict]:
    """Real-data recall over the test stream: the model with its memories learning and frozen, the last
    value, the values a day back at the forecast's hours (the seasonal naive forecast), and online ridges
    on every value the encoder reaches, alone and with the day back added: what recalling the day before
    is worth to a linear model that is handed it."""
    f, s, horizon, day = fitted.model, fitted.data["splits"], fitted.model.horizon, fitted.data["day"]
    lookback, reach = f.lookback, f.lookback + f.net_.patch - 1
    stream = s.test[lookback:]
    xt, yt = windows(s.test, lookback, horizon)
    history = np.concatenate([s.train, s.val[lookback:]])
    full = np.concatenate([history, stream])
    day_back = full[len(history) - day + np.arange(len(yt))[:, None] + np.arange(horizon)]
    rows = memory_rows(fitted, stream, yt, "daily-recall")
    rows += [scored("naive-last-value", "daily-recall", last_value(xt, yt), yt),
             scored("day-back value", "daily-recall", day_back, yt)]
    for name, lag in ((f"online-ridge-revin-{reach}", None), (f"online-ridge-revin-{reach}+day", day)):
        rows.append(dict(model=name, protocol="daily-recall", horizon=horizon,
                         **online_ridge(history, len(s.train), stream, reach, horizon, normalise=True, lag=lag)))
    return rows


def lagged(z: np.ndarray, origins: np.ndarray, lookback: int, horizon: int, normalise: bool,
           lag: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per origin and channel (flattened, origin-major): the window before the origin with a constant 1
    (N·C, L + 1), the `horizon` values from the origin (N·C, H; NaN past the end), both less the window's
    mean with `normalise`, and that mean (N·C,; 0 without). With `lag` (≥ horizon), the inputs also hold
    the `horizon` values `lag` steps before the forecast's (the same hours a day back, for a lag of a day)."""
    def take(idx: np.ndarray) -> np.ndarray:  # (N, k) row indices -> (N·C, k)
        return z[idx].transpose(0, 2, 1).reshape(-1, idx.shape[1])

    w = take(origins[:, None] + np.arange(-lookback, 0))
    idx = origins[:, None] + np.arange(horizon)
    after = np.where(idx[..., None] < len(z), z[np.minimum(idx, len(z) - 1)], np.nan).transpose(0, 2, 1)
    level = w.mean(1) if normalise else np.zeros(len(w))
    inputs = [w] if lag is None else [w, take(idx - lag)]
    x = np.hstack([a - level[:, None] for a in inputs] + [np.ones((len(w), 1))])
    return x, after.reshape(-1, horizon) - level[:, None], level


def online_ridge(history: np.ndarray, n_train: int, stream: np.ndarray, lookback: int, horizon: int,
                 normalise: bool = False, period: int | None = None, lag: int | None = None) -> dict:
    """Ridge that keeps learning: forecast at every origin of `stream`, then grow the normal equations by the
    (window, future) pair whose future has just been observed, as `update` lets the forecaster learn.

    The penalty is picked on the pairs of `history[n_train:]` (the validation rows) after fitting the
    training pairs; the forecasting starts from all pairs of `history`. `normalise` reads every window less
    its own mean, as the forecaster's linear branch does (dividing by the window's spread as well would change
    only how pairs are weighted: a linear map commutes with scaling), and `period` takes the training rows'
    cycle off first (`scaling.Scaler`), so the baseline gets the model's normalisation and cycle handling.
    `lag` adds the values `lag` steps before the forecast's to the inputs (`lagged`): what a model that
    recalls the series `lag` steps back could use."""
    if lag is not None and lag < horizon:
        raise ValueError(f"online_ridge: lag {lag} is shorter than the horizon {horizon}: its values are not yet known")
    t0 = time.perf_counter()
    full = np.concatenate([history, stream])
    season = Scaler.fit([history[:n_train]], period)[0].season
    z = full - season(0, len(full))
    first = max(lookback, lag or 0)
    pairs = lambda lo, hi: lagged(z, np.arange(max(lo, first), hi - horizon + 1), lookback, horizon, normalise,  # noqa: E731
                                  lag)[:2]
    (x, y), (xv, yv) = pairs(0, n_train), pairs(n_train, len(history))
    eye = np.eye(lookback + 1 + (horizon if lag else 0))
    eye[-1, -1] = 0.0  # the constant goes unpenalised

    def solve(xs: np.ndarray, ys: np.ndarray, alpha: float) -> np.ndarray:
        return np.linalg.solve(xs.T @ xs + alpha * eye, xs.T @ ys)

    alpha = min(ALPHAS, key=lambda al: ((xv @ solve(x, y, al) - yv) ** 2).mean())
    x, y = pairs(0, len(history))
    A, b = x.T @ x + alpha * eye, x.T @ y
    n0, C = len(history), full.shape[1]
    origins = np.arange(n0, len(full) - horizon + 1)
    xs, _, level = lagged(z, origins, lookback, horizon, normalise, lag)
    preds = np.empty((len(origins), C, horizon))
    for i, o in enumerate(origins):
        rows = slice(i * C, (i + 1) * C)  # forecast first ...
        preds[i] = level[rows, None] + xs[rows] @ np.linalg.solve(A, b)
        done = o + 1 - horizon  # ... then learn from the pair whose future has now been observed
        if done >= n0 - horizon + 1:
            xw, yw = lagged(z, np.array([done]), lookback, horizon, normalise, lag)[:2]
            A += xw.T @ xw
            b += xw.T @ yw
    preds = preds.transpose(0, 2, 1) + season(origins, horizon)
    trues = np.stack([full[o: o + horizon] for o in origins])
    mse, mae = scores(preds, trues)
    return dict(mse=mse, mae=mae, train_seconds=time.perf_counter() - t0)


def motif_stream(seed: int, lookback: int, channels: int = 8):
    """The memorisation protocol's streams: six motifs of 48 steps per channel recurring farther apart than
    the window, each recurrence varied, in autocorrelated noise (AR(1) 0.9, std 0.2 against a motif's
    peak of 1)."""
    return recurring_motifs(n_steps=6_000, n_channels=channels, n_motifs=6, motif_len=48, window=lookback,
                            noise=0.2, ar=0.9, variation=0.2, seed=seed)


def on_recurrence(data, horizon: int) -> np.ndarray:
    """For every origin of `data`, whether its whole horizon lies on a recurrence of a motif."""
    mask = np.lib.stride_tricks.sliding_window_view(data.recurrence_mask(), horizon)
    return mask.all(1)


def recurrence_scores(f: TitansForecaster, data, memorize: bool) -> tuple[float, float]:
    """MSE and MAE of the forecasts whose whole horizon lies on a recurrence, streaming `data` on from `f`."""
    on = on_recurrence(data, f.horizon)
    pred = backtest_forecasts(f, data.values, memorize)
    return scores(pred[on], np.stack([data.values[o: o + f.horizon] for o in np.flatnonzero(on)]))


def memorization_fit(horizon: int, params: dict, seed: int = 0) -> Fitted:
    """Fit on one motif stream; the validation score is the recurrence MSE on a second stream of new motifs
    (seed + 2; the test stream is seed + 1), read with the memory learning."""
    lookback = params.get("window") or 32
    f = TitansForecaster(horizon=horizon, lookback=lookback, **params)
    t0 = time.perf_counter()
    f.fit(motif_stream(seed, lookback).values)
    seconds = time.perf_counter() - t0
    return Fitted(f, seconds, recurrence_scores(f, motif_stream(seed + 2, lookback), True)[0], dict(seed=seed))


def memorization_test(fitted: Fitted) -> list[dict]:
    """Recurring motifs farther apart than the attention window: error on recurrences, memory on vs frozen.

    The model streams a stream whose motifs it has never seen, so only what the memory learns at test time
    can recall them when they recur. Each channel has motifs of its own (the forecaster reads them as
    independent streams). A nearest-neighbour oracle (the future of the most similar earlier window whose
    future is known) shows what recall could give.
    """
    f = fitted.model
    data = motif_stream(fitted.data["seed"] + 1, f.lookback)  # new motifs
    rows = [dict(model=f"titans-{f.variant}" + ("" if memorize else "-frozen-memory"), protocol="memorization",
                 horizon=f.horizon, train_seconds=fitted.seconds, val_mse=fitted.val,
                 **dict(zip(("mse", "mae"), recurrence_scores(f, data, memorize)))) for memorize in (True, False)]
    on = on_recurrence(data, f.horizon)
    rows.append(dict(model="nearest-window oracle", protocol="memorization", horizon=f.horizon, train_seconds=0.0,
                     **dict(zip(("mse", "mae"), nearest_window(data.values, on, f.lookback, f.horizon)))))
    return rows


def nearest_window(y: np.ndarray, on: np.ndarray, lookback: int, horizon: int) -> tuple[float, float]:
    """Per channel, forecast each origin in `on` by the future of the closest earlier window (Euclidean)
    whose whole future had been observed: the recall a perfect associative memory would give."""
    preds, trues = [], []
    for c in range(y.shape[1]):
        w = np.lib.stride_tricks.sliding_window_view(y[:, c], lookback)  # w[i] ends at step i + lookback − 1
        for o in np.flatnonzero(on[: len(y) - horizon + 1]):
            if o < lookback + horizon:
                continue
            past = w[: o - lookback - horizon + 1]  # futures y[i + lookback: i + lookback + horizon] all before o
            i = int(((past - y[o - lookback: o, c]) ** 2).sum(1).argmin())
            preds.append(y[i + lookback: i + lookback + horizon, c])
            trues.append(y[o: o + horizon, c])
    return scores(np.array(preds), np.array(trues))


def update_latency(path: str, params: dict, repeats: int = 300) -> list[dict]:
    """Median wall time of `update` with one new observation on a fitted default model (all channels)."""
    s = ett_splits(path, lookback=96, scale=False)
    f = TitansForecaster(**dict(params, max_epochs=1)).fit(s.train[:2000])
    times = []
    for row in s.train[2000: 2000 + repeats]:
        t0 = time.perf_counter()
        f.update(row[None])
        times.append(time.perf_counter() - t0)
    return [dict(model=f"titans-{f.variant}", protocol="update-latency", horizon=f.horizon,
                 mse=float("nan"), mae=float("nan"), update_ms_median=1e3 * float(np.median(times)),
                 update_ms_p90=1e3 * float(np.quantile(times, 0.9)))]


def rss_mib() -> float:
    """Resident memory of this process now (Linux), MiB."""
    with open("/proc/self/status") as fh:
        return int(next(x for x in fh if x.startswith("VmRSS:")).split()[1]) / 1024


def long_stream(params: dict, n_steps: int = 1_000_000, channels: int = 3, seed: int = 0) -> list[dict]:
    """A stream that runs for months: `n_steps` noisy seasonal observations of `channels` channels through
    `update` in batches of random sizes (1 to 4096 rows), forecasts checked finite and resident memory
    sampled every 50,000 steps. Reports the throughput, the RSS samples after warm-up (2 samples) and their range."""
    rng = np.random.default_rng(seed)
    wave = lambda t: np.sin(2 * np.pi * t[:, None] / 24 + np.arange(channels)) + 0.1 * rng.standard_normal((len(t), channels))  # noqa: E731
    t0 = time.perf_counter()
    f = TitansForecaster(horizon=24, lookback=96, **dict(params, max_epochs=1)).fit(wave(np.arange(2000)))
    train = time.perf_counter() - t0
    seen, samples, finite, start = 0, [], True, time.perf_counter()
    while seen < n_steps:
        n = int(min(rng.choice([1, 7, 64, 500, 4096]), n_steps - seen))
        f.update(wave(np.arange(seen, seen + n)))
        seen += n
        if not samples or seen // 50_000 > (seen - n) // 50_000:
            finite &= bool(np.isfinite(f.predict()).all())
            samples.append(rss_mib())
    seconds = time.perf_counter() - start
    warm = samples[2:] or samples
    return [dict(model=f"titans-{f.variant}", protocol="long-stream", horizon=24, mse=float("nan"), mae=float("nan"),
                 train_seconds=train, steps=n_steps, channels=channels, seconds=seconds, steps_per_s=n_steps / seconds,
                 rss_mib=warm, rss_mib_min=min(warm), rss_mib_max=max(warm), finite=finite, seen=int(f.streams_.seen[0]))]


def anomalies(params: dict, seed: int = 0, window: int = 48) -> list[dict]:
    """Labelled synthetic stream (spikes, level shifts, changed seasonal pattern, a recurrence that stops):
    AUROC and precision at k of the surprise detector, a rolling z-score and an IsolationForest on windows."""
    data = anomaly_stream(n_steps=6000, n_channels=3, period=24, n_anomalies=24, seed=seed)
    split = int(0.25 * len(data.values))  # the generator keeps the first quarter clean: training data
    x, labels = data.values[split:], data.labels[split:]
    t0 = time.perf_counter()
    det = TitansAnomalyDetector(lookback=window, contamination=0.01, variant=params["variant"],
                                max_epochs=params["max_epochs"], memory_retention=params.get("memory_retention"),
                                random_state=seed).fit(data.values[:split])
    scores = {"titans-surprise": (-det.score_samples(x), time.perf_counter() - t0)}
    t0 = time.perf_counter()
    full = data.values
    z = np.zeros(len(full))
    for t in range(window, len(full)):  # causal: statistics of the previous `window` steps
        past = full[t - window: t]
        z[t] = (np.abs(full[t] - past.mean(0)) / (past.std(0) + 1e-8)).max()
    scores["rolling-zscore"] = (z[split:], time.perf_counter() - t0)
    t0 = time.perf_counter()
    wins = np.lib.stride_tricks.sliding_window_view(full, window, axis=0).reshape(len(full) - window + 1, -1)
    forest = IsolationForest(random_state=seed).fit(wins[: split - window + 1])
    iso = np.concatenate([np.zeros(window - 1), -forest.score_samples(wins)])  # window ending at step t
    scores["isolation-forest"] = (iso[split:], time.perf_counter() - t0)
    k = int(labels.sum())
    rows = []
    for name, (score, seconds) in scores.items():
        top = np.argsort(-score)[:k]
        per_kind = {}
        for kind in ANOMALY_KINDS:  # AUROC of each kind's steps against the normal steps
            mask = np.zeros(len(labels), dtype=bool)
            for a in data.kinds:
                if a.kind == kind:
                    mask[a.start - split: a.end - split] = True
            per_kind[kind] = float(roc_auc_score(mask[mask | (labels == 0)], score[mask | (labels == 0)]))
        rows.append(dict(model=name, protocol="anomaly", horizon=1, stream_seed=seed,
                         auroc=float(roc_auc_score(labels, score)), precision_at_k=float(labels[top].mean()),
                         auroc_by_kind=per_kind, mse=float("nan"), mae=float("nan"), train_seconds=seconds))
    return rows


def anomaly_means(rows: list[dict]) -> list[dict]:
    """One row per model: AUROC and precision at k averaged over the streams."""
    out = []
    for name in dict.fromkeys(r["model"] for r in rows):
        mine = [r for r in rows if r["model"] == name]
        out.append(dict(model=name, protocol="anomaly-mean", horizon=1, streams=len(mine), mse=float("nan"),
                        mae=float("nan"), auroc=float(np.mean([r["auroc"] for r in mine])),
                        precision_at_k=float(np.mean([r["precision_at_k"] for r in mine])),
                        auroc_by_kind={k: float(np.mean([r["auroc_by_kind"][k] for r in mine])) for k in ANOMALY_KINDS},
                        train_seconds=float(np.mean([r["train_seconds"] for r in mine]))))
    return out


def grid(specs: list[str]) -> list[dict]:
    """Candidate settings from `KEY=V1,V2 …` specs: every combination (values `none`, `true`/`false`,
    numbers or words)."""
    def value(text: str):
        low = text.lower()
        if low in ("none", "true", "false"):
            return {"none": None, "true": True, "false": False}[low]
        for kind in (int, float):
            try:
                return kind(text)
            except ValueError:
                pass
        return text

    axes = []
    for spec in specs:
        key, sep, values = spec.partition("=")
        if not sep or not key or not values:
            raise ValueError(f"--select takes KEY=V1,V2,..., got {spec!r}")
        axes.append([(key.replace("-", "_"), value(v)) for v in values.split(",")])
    return [dict(c) for c in itertools.product(*axes)]


def label(candidate: dict) -> str:
    return " ".join(f"{k}={v}" for k, v in candidate.items()) or "defaults"


def select(fit: Callable[[dict], Fitted], params: dict, candidates: list[dict], protocol: str,
           horizon: int) -> tuple[Fitted, dict, list[dict]]:
    """Fit every candidate (`params` updated by it) and keep the one with the lowest validation score; the
    test rows are never read here. Returns it, its settings and one `selection` row per candidate."""
    best, rows = None, []
    for c in candidates:
        fitted = fit(dict(params, **c))
        rows.append(dict(model=label(c), protocol="selection", horizon=horizon, selected_for=protocol,
                         val_mse=fitted.val, mse=float("nan"), mae=float("nan"), train_seconds=fitted.seconds))
        if best is None or fitted.val < best[0].val:
            best = (fitted, c)
    for r in rows:
        r["chosen"] = r["model"] == label(best[1])
    return best[0], dict(params, **best[1]), rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m titans_ts.forecasting.benchmark", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="ETT-format CSV (date column, then channels)")
    p.add_argument("--horizons", type=int, nargs="+", default=[96, 192, 336, 720])
    p.add_argument("--protocols", nargs="+", default=["standard"],
                   choices=["standard", "online", "gaps", "daily-recall", "memorization", "latency", "anomaly",
                            "long-stream"])
    p.add_argument("--online-horizons", type=int, nargs="+", default=[1, 24, 48])
    p.add_argument("--lookback", type=int, default=96)
    p.add_argument("--variant", default="mal")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--carry-memory", action="store_true", help="train with the memory carried across segments (TBPTT)")
    p.add_argument("--recall", action=argparse.BooleanOptionalAction,
                   help="the recall memory, a test-time regression of what followed (the forecaster's default: on)")
    p.add_argument("--segment-length", type=int, help="training segment length (default: the forecaster's, 2 x lookback)")
    p.add_argument("--period", type=period_arg, default=argparse.SUPPRESS,
                   help="take this cycle off the series (24: daily, for hourly data; 'none': no cycle; the "
                        "forecaster's default: 'auto', found in the training rows)")
    p.add_argument("--memory-retention", type=int,
                   help="start the encoder memory's forgetting gate at 1 / this many tokens, forgetting towards "
                        "its learnt initial weights (default: ~3,000, towards zero)")
    p.add_argument("--linear", choices=LINEAR, default="trained",
                   help="the forecaster's linear branch: trained on from the ridge fit, or kept at it")
    p.add_argument("--select", nargs="+", metavar="KEY=V1,V2",
                   help="standard, online and memorization protocols: fit every combination of these forecaster "
                        "settings (e.g. period=none,24 recall=false,true), choose by the validation score and read "
                        "the test rows for the chosen one only")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps", type=int, default=1_000_000, help="long-stream protocol: observations to stream")
    p.add_argument("--missing", type=float, nargs="+", default=[0.05, 0.2],
                   help="gaps protocol: fractions of the online test stream's readings removed at random")
    p.add_argument("--streams", type=int, default=4, help="anomaly protocol: synthetic streams, seeds --seed onwards")
    p.add_argument("--json", help="write the results here")
    args = p.parse_args(argv)
    if not Path(args.data).is_file():
        print(f"error: --data {args.data}: no such file", file=sys.stderr)
        return 2
    try:
        candidates = grid(args.select or [])
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    params = dict(variant=args.variant, max_epochs=args.epochs, linear=args.linear, random_state=args.seed)
    if args.segment_length:
        params["segment_length"] = args.segment_length
    if args.carry_memory:
        params["carry_memory"] = True
    if args.recall is not None:
        params["recall"] = args.recall
    if "period" in args:
        params["period"] = args.period
    if args.memory_retention:
        params["memory_retention"] = args.memory_retention

    def chosen(protocol: str, horizon: int, fit: Callable[[dict], Fitted], test: Callable) -> list[dict]:
        fitted, settings, rows = select(fit, params, candidates, protocol, horizon)
        return rows + [dict(r, settings=label({k: v for k, v in settings.items() if k in candidates[0]}))
                       for r in test(fitted)]

    def daily_recall() -> list[dict]:
        day = steps_per_day(args.data)
        return chosen("daily-recall", day // 2, lambda c: daily_recall_fit(args.data, day, c), daily_recall_test)

    runs = {"standard": [lambda h=h: chosen("standard", h, lambda c: standard_fit(args.data, h, args.lookback, c),
                                            standard_test) for h in args.horizons],
            "online": [lambda h=h: chosen("online", h, lambda c: online_fit(args.data, h, 60, c), online_test)
                       for h in args.online_horizons],
            "gaps": [lambda h=h: chosen("online", h, lambda c: online_fit(args.data, h, 60, c),
                                        lambda fitted: gaps_test(fitted, args.missing, args.seed))
                     for h in args.online_horizons],
            "daily-recall": [daily_recall],
            "memorization": [lambda: chosen("memorization", 24, lambda c: memorization_fit(24, dict(c, window=32),
                                                                                            args.seed),
                                            memorization_test)],
            "latency": [lambda: update_latency(args.data, params)],
            "long-stream": [lambda: long_stream(params, args.steps)],
            "anomaly": [lambda s=s: anomalies(params, seed=s) for s in range(args.seed, args.seed + args.streams)]}
    results = []
    for protocol in args.protocols:
        for run in runs[protocol]:
            rows = run()
            print_table(rows)  # as each finishes: a long run shows its progress
            results += rows
    if "anomaly" in args.protocols:
        results += anomaly_means([r for r in results if r["protocol"] == "anomaly"])
    print("\nall results:")
    print_table(results)
    if args.json:
        Path(args.json).write_text(json.dumps({"dataset": Path(args.data).stem, "results": results}, indent=2))
    return 0


def print_table(rows: list[dict]) -> None:
    print(f"{'model':28} {'protocol':13} {'horizon':>7} {'mse':>8} {'mae':>8} {'train s':>8}")
    for r in rows:
        extra = f"  update {r['update_ms_median']:.2f} ms median" if "update_ms_median" in r else ""
        if "val_mse" in r:
            extra = f"  validation {r['val_mse']:.4f}" + (f" / {r['val_mae']:.4f}" if "val_mae" in r else "")
        if "chosen" in r:
            extra += "  (chosen)" if r["chosen"] else ""
        if "settings" in r:
            extra += f"  [{r['settings']}]"
        if "steps_per_s" in r:
            extra = (f"  {r['steps']:,} steps x {r['channels']} channels, {r['steps_per_s']:,.0f} steps/s, "
                     f"RSS after warm-up {r['rss_mib_min']:.0f}-{r['rss_mib_max']:.0f} MiB, finite {r['finite']}")
        if "auroc" in r:
            kinds = " ".join(f"{k} {v:.2f}" for k, v in r["auroc_by_kind"].items())
            extra = f"  AUROC {r['auroc']:.3f}  precision@k {r['precision_at_k']:.3f}  ({kinds})"
        print(f"{r['model']:28} {r['protocol']:13} {r['horizon']:7d} {r['mse']:8.4f} {r['mae']:8.4f} "
              f"{r.get('train_seconds', float('nan')):8.1f}{extra}")


if __name__ == "__main__":
    sys.exit(main())
