"""Forecasting benchmarks: ETT (windowed and streaming), the online protocol, and memorisation.

    python -m titans_ts.forecasting.benchmark --data ETTh1.csv --horizons 96 192 336 720 --json out.json

Prints a table and writes JSON `{"dataset", "results": [{"model", "protocol", "horizon", "mse", "mae",
"train_seconds"}, ...]}`. Errors are on values scaled by the training rows' statistics, averaged over
every window, step and channel. A ridge baseline runs on the same windows in the same command.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from sklearn.ensemble import IsolationForest
from sklearn.linear_model import Ridge
from sklearn.metrics import roc_auc_score

from titans_ts.datasets import anomaly_stream, ett_splits, recurring_motifs
from titans_ts.datasets.synthetic import ANOMALY_KINDS
from titans_ts.forecasting.anomaly import TitansAnomalyDetector
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
    cycle = Scaler.fit([s.train], period).season  # the splits are standardised already: only the cycle goes
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


def ett_standard(path: str, horizon: int, lookback: int, params: dict) -> list[dict]:
    """The Informer / Time-Series-Library protocol, windowed and streaming, beside ridge."""
    s = ett_splits(path, lookback=lookback, scale=True)
    x, y = windows(s.train, lookback, horizon)
    xv, yv = windows(s.val, lookback, horizon)
    xt, yt = windows(s.test, lookback, horizon)
    t0 = time.perf_counter()
    ridge = ridge_fit(x, y, xv, yv)
    rows = [dict(model="ridge", protocol="windowed", horizon=horizon, train_seconds=time.perf_counter() - t0,
                 **dict(zip(("mse", "mae"), scores(ridge_predict(ridge, xt), yt))))]
    if params.get("period"):
        t0 = time.perf_counter()
        pred, true = ridge_cycle(s, lookback, horizon, params["period"])
        rows.append(dict(model=f"ridge+cycle{params['period']}", protocol="windowed", horizon=horizon,
                         train_seconds=time.perf_counter() - t0, **dict(zip(("mse", "mae"), scores(pred, true)))))
    f = TitansForecaster(horizon=horizon, lookback=lookback, **params)
    t0 = time.perf_counter()
    f.fit(s.train, val=s.val[lookback:])  # the fitted series' row 0 is the first training row
    seconds = time.perf_counter() - t0
    first = s.borders.test[0] - s.borders.train[0] + np.arange(len(xt))  # each test window's first row
    first_val = s.borders.val[0] - s.borders.train[0] + np.arange(len(xv))
    rows.append(dict(model=f"titans-{f.variant}", protocol="windowed", horizon=horizon, train_seconds=seconds,
                     **dict(zip(("mse", "mae"), scores(f.forecast_windows(xt, first), yt))),
                     # the same forecasts on the validation windows: what a choice between configurations may use
                     **dict(zip(("val_mse", "val_mae"), scores(f.forecast_windows(xv, first_val), yv)))))
    for memorize in (True, False):  # the memory has streamed everything before each origin (frozen: since fit)
        bt = f.backtest(s.test[lookback:], start=0, stride=1, memorize=memorize)
        pred = np.array(bt["forecast"].to_list()).reshape(-1, len(s.columns), horizon).transpose(0, 2, 1)
        rows.append(dict(model=f"titans-{f.variant}" + ("" if memorize else "-frozen-memory"), protocol="streaming",
                         horizon=horizon, train_seconds=seconds, **dict(zip(("mse", "mae"), scores(pred, yt)))))
    return rows


def online(path: str, horizon: int, lookback: int, params: dict) -> list[dict]:
    """FSNet / OneNet online protocol without its label leak: forecast, score, then stream the one new row."""
    s = ett_splits(path, lookback=lookback, scale=True, protocol="online")
    stream = s.test[lookback:]  # rows of the online phase; the model has streamed everything before them
    f = TitansForecaster(horizon=horizon, lookback=lookback, **params)
    t0 = time.perf_counter()
    f.fit(s.train, val=s.val[lookback:])
    seconds = time.perf_counter() - t0
    _, yt = windows(np.concatenate([s.val[-lookback:], stream]), lookback, horizon)
    rows = []
    for memorize in (True, False):
        bt = f.backtest(stream, start=0, stride=1, memorize=memorize)
        pred = np.array(bt["forecast"].to_list()).reshape(-1, len(s.columns), horizon).transpose(0, 2, 1)
        rows.append(dict(model=f"titans-{f.variant}" + ("" if memorize else "-frozen-memory"), protocol="online",
                         horizon=horizon, train_seconds=seconds, **dict(zip(("mse", "mae"), scores(pred, yt))),
                         # the fit's best validation loss (point MSE + pinball, streamed over the validation
                         # rows with the memory learning): what a choice between configurations may use
                         val_loss=f.best_loss_))
    rows.append(dict(model="online-ridge", protocol="online", horizon=horizon,
                     **online_ridge(s.train, s.val[lookback:], stream, lookback, horizon)))
    return rows


def online_ridge(train: np.ndarray, val: np.ndarray, stream: np.ndarray, lookback: int, horizon: int) -> dict:
    """Ridge that keeps learning: normal equations grow by every (window, future) pair fully observed."""
    t0 = time.perf_counter()
    x, y = windows(np.concatenate([train, val]), lookback, horizon)
    xv, yv = windows(val, lookback, horizon)
    alpha = ridge_fit(*windows(train, lookback, horizon), xv, yv).alpha
    flat = lambda a: a.transpose(0, 2, 1).reshape(-1, a.shape[1])  # noqa: E731
    X, Y = flat(x), flat(y)
    X1 = np.hstack([X, np.ones((len(X), 1))])
    A, b = X1.T @ X1 + alpha * np.eye(lookback + 1), X1.T @ Y
    history = np.concatenate([train, val])
    full = np.concatenate([history, stream])
    n0 = len(history)
    preds, trues = [], []
    for o in range(n0, len(full) - horizon + 1):
        w = full[o - lookback: o].T  # (C, L): forecast first ...
        coef = np.linalg.solve(A, b)
        preds.append((np.hstack([w, np.ones((len(w), 1))]) @ coef).T)
        trues.append(full[o: o + horizon])
        done = o + 1 - horizon  # ... then learn from the pair whose future has now been observed
        if done - lookback >= 0 and done >= n0 - horizon + 1:
            xw = np.hstack([full[done - lookback: done].T, np.ones((full.shape[1], 1))])
            A += xw.T @ xw
            b += xw.T @ full[done: done + horizon].T
    mse, mae = scores(np.array(preds), np.array(trues))
    return dict(mse=mse, mae=mae, train_seconds=time.perf_counter() - t0)


def memorization(horizon: int, params: dict, seed: int = 0, channels: int = 8) -> list[dict]:
    """Recurring motifs farther apart than the attention window: error on recurrences, memory on vs frozen.

    The model is fitted on one stream and then streams a second one whose motifs it has never seen, so
    only what the memory learns at test time can recall them when they recur. Each of `channels` channels
    has motifs of its own (the forecaster reads them as independent streams). A nearest-neighbour oracle
    (the future of the most similar earlier window whose future is known) shows what recall could give.
    """
    lookback = params.get("window") or 32
    make = lambda s: recurring_motifs(n_steps=6_000, n_channels=channels, n_motifs=6, motif_len=48,  # noqa: E731
                                      window=lookback, noise=0.05, seed=s)
    f = TitansForecaster(horizon=horizon, lookback=lookback, **params)
    t0 = time.perf_counter()
    f.fit(make(seed).values)
    seconds = time.perf_counter() - t0
    data = make(seed + 1)  # new motifs
    mask = data.recurrence_mask()
    on = np.array([mask[o: o + horizon].all() for o in range(len(mask) - horizon + 1)])
    rows = []
    for memorize in (True, False):
        bt = f.backtest(data.values, start=0, stride=1, memorize=memorize)
        pred = np.array(bt["forecast"].to_list()).reshape(-1, channels, horizon)  # (K, C, H)
        true = np.array(bt["actual"].to_list()).reshape(-1, channels, horizon)
        origins = np.array(bt["origin"].to_list()).reshape(-1, channels)[:, 0]
        mse, mae = scores(pred[on[origins]], true[on[origins]])
        rows.append(dict(model=f"titans-{f.variant}" + ("" if memorize else "-frozen-memory"), protocol="memorization",
                         horizon=horizon, mse=mse, mae=mae, train_seconds=seconds))
    rows.append(dict(model="nearest-window oracle", protocol="memorization", horizon=horizon, train_seconds=0.0,
                     **dict(zip(("mse", "mae"), nearest_window(data.values, on, lookback, horizon)))))
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


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m titans_ts.forecasting.benchmark", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="ETT-format CSV (date column, then channels)")
    p.add_argument("--horizons", type=int, nargs="+", default=[96, 192, 336, 720])
    p.add_argument("--protocols", nargs="+", default=["standard"], choices=["standard", "online", "memorization", "latency", "anomaly", "long-stream"])
    p.add_argument("--online-horizons", type=int, nargs="+", default=[1, 24, 48])
    p.add_argument("--lookback", type=int, default=96)
    p.add_argument("--variant", default="mal")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--carry-memory", action="store_true", help="train with the memory carried across segments (TBPTT)")
    p.add_argument("--recall", action="store_true", help="add the recall memory (test-time regression of what followed)")
    p.add_argument("--segment-length", type=int, help="training segment length (default: the forecaster's, 2 x lookback)")
    p.add_argument("--period", type=int, help="take this cycle off the series (24: daily, for hourly data)")
    p.add_argument("--memory-retention", type=int,
                   help="start the encoder memory's forgetting gate at 1 / this many tokens, forgetting towards "
                        "its learnt initial weights (default: ~3,000, towards zero)")
    p.add_argument("--linear", choices=LINEAR, default="trained",
                   help="the forecaster's linear branch: trained on from the ridge fit, or kept at it")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps", type=int, default=1_000_000, help="long-stream protocol: observations to stream")
    p.add_argument("--streams", type=int, default=4, help="anomaly protocol: synthetic streams, seeds --seed onwards")
    p.add_argument("--json", help="write the results here")
    args = p.parse_args(argv)
    if not Path(args.data).is_file():
        print(f"error: --data {args.data}: no such file", file=sys.stderr)
        return 2
    params = dict(variant=args.variant, max_epochs=args.epochs, linear=args.linear, random_state=args.seed)
    if args.segment_length:
        params["segment_length"] = args.segment_length
    if args.carry_memory:
        params["carry_memory"] = True
    if args.recall:
        params["recall"] = True
    if args.period:
        params["period"] = args.period
    if args.memory_retention:
        params["memory_retention"] = args.memory_retention
    runs = {"standard": [lambda h=h: ett_standard(args.data, h, args.lookback, params) for h in args.horizons],
            "online": [lambda h=h: online(args.data, h, 60, params) for h in args.online_horizons],
            "memorization": [lambda: memorization(24, dict(params, window=32))],
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
            extra = f"  validation {r['val_mse']:.4f} / {r['val_mae']:.4f}"
        if "val_loss" in r:
            extra = f"  validation loss {r['val_loss']:.4f}"
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
