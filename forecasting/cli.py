"""`titans-ts`: forecast, backtest and tune from the command line on a CSV or Parquet file.

    titans-ts forecast --data load.csv --horizon 24 --out forecast.csv --plot forecast.png
    titans-ts backtest --data load.csv --horizon 24 --test-fraction 0.2 --out backtest.csv
    titans-ts tune --data load.csv --horizon 24 --trials 20 --storage sqlite:///study.db
    titans-ts surprise --data load.csv --horizon 1 --plot surprise.png
    titans-ts backtest --data shops.parquet --id-col shop --time-col date --horizon 7 --workers 8 --out bt.csv
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import polars as pl

from titans_ts.cli import ArgumentParser, UsageError, add_dask_args, add_device_flags, device_params, run, write_output
from titans_ts.distributed import dask_client

from .distributed import forecast as forecast_panel
from .forecaster import TitansForecaster


def read_frame(path: str) -> pl.DataFrame:
    """A CSV (dates parsed) or Parquet file as a polars frame."""
    p = Path(path)
    if not p.is_file():
        raise UsageError(f"--data {path}: no such file")
    try:
        frame = pl.read_parquet(p) if p.suffix == ".parquet" else pl.read_csv(p, try_parse_dates=True)
    except pl.exceptions.PolarsError as err:
        raise UsageError(f"--data {path}: cannot read it ({str(err).splitlines()[0]})") from None
    if frame.height == 0:
        raise UsageError(f"--data {path}: the file has no rows")
    return frame


def period_arg(text: str) -> int | str | None:
    """A `--period` value: an integer >= 2, 'auto' or 'none'."""
    low = text.strip().lower()
    if low in ("auto", "none"):
        return None if low == "none" else "auto"
    try:
        value = int(low)
    except ValueError:
        value = 0
    if value < 2:
        raise argparse.ArgumentTypeError(f"expected an integer >= 2, 'auto' or 'none', got {text!r}")
    return value


def model_args(p) -> None:
    p.add_argument("--data", required=True, help="CSV or Parquet: an optional time column, then numeric columns")
    p.add_argument("--horizon", type=int, required=True, help="steps to forecast")
    p.add_argument("--lookback", type=int, default=96, help="past steps the model reads at once (default 96)")
    p.add_argument("--variant", default="mal", choices=["mal", "mag", "mac", "lmm"], help="Titans variant")
    p.add_argument("--epochs", type=int, default=10, help="maximum training epochs (early stopping on validation)")
    p.add_argument("--time-col", help="the time column (default: the one datetime column, if any)")
    p.add_argument("--id-col", help="a long panel's series column: one model for all series, results per series")
    p.add_argument("--columns", nargs="+", help="value columns to use (default: every numeric column)")
    p.add_argument("--recall", action=argparse.BooleanOptionalAction, default=True,
                   help="the recall memory: what followed windows like the present one, learnt while streaming "
                        "(default: on)")
    p.add_argument("--period", type=period_arg, default="auto",
                   help="length of a cycle to take off before the model reads the series (e.g. 24 for hourly "
                        "data); 'auto' (default) finds it in the training rows, 'none' takes none off")
    p.add_argument("--memory-retention", type=int,
                   help="start the memory's forgetting at 1 / this many steps, towards its learnt initial weights "
                        "(default about 3,000, towards zero); near the lookback keeps forecasts over a "
                        "long stream as good as fresh-window ones")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_device_flags(p)


def make(args) -> TitansForecaster:
    return TitansForecaster(horizon=args.horizon, lookback=args.lookback, variant=args.variant,
                            max_epochs=args.epochs, recall=args.recall, period=args.period,
                            memory_retention=args.memory_retention, time_col=args.time_col,
                            id_col=args.id_col, random_state=args.seed, progress=not args.quiet,
                            **device_params(args))


def select(frame: pl.DataFrame, args) -> pl.DataFrame:
    if not args.columns:
        return frame
    missing = [c for c in args.columns if c not in frame.columns]
    if missing:
        raise UsageError(f"--columns: no column {missing[0]!r} in --data (it has {frame.columns})")
    keep = [c for c, t in frame.schema.items() if t.is_temporal() or c in (args.time_col, args.id_col)]
    return frame.select(*keep, *[c for c in args.columns if c not in keep])


def split(frame: pl.DataFrame, fraction: float, id_col: str | None) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The head and the last `fraction` of the rows of `frame`, of each series where there is an `id_col`."""
    if id_col is None:
        cut = frame.height - int(frame.height * fraction)
        return frame.head(cut), frame.slice(cut)
    if id_col not in frame.columns:
        raise UsageError(f"--id-col: no column {id_col!r} in --data (it has {frame.columns})")
    n = pl.len().over(id_col)
    tail = pl.int_range(pl.len()).over(id_col) >= n - (n * fraction).floor().cast(pl.Int64)
    return frame.filter(~tail), frame.filter(tail)


def forecast(args) -> int:
    frame = select(read_frame(args.data), args)
    if args.plot and args.id_col:
        raise UsageError("--plot draws one series: leave out --id-col, or select a series first")
    with dask_client(args.workers, args.scheduler) as client:
        f = make(args).fit(frame)
        out = forecast_panel(f, args.coverage, client)
    write_output(args.out, lambda tmp: out.write_csv(tmp))
    values = f.columns_
    if args.plot:
        plot(frame, out, f, values, args.plot, args.coverage)
    print(f"wrote {args.out}: {args.horizon} steps of {', '.join(values)} with {args.coverage:.0%} intervals")
    return 0


def plot(history: pl.DataFrame, out: pl.DataFrame, f: TitansForecaster, values: list[str], path: str, coverage: float) -> None:
    """History (the last few horizons), forecast and the interval band, one panel per column."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tcol = f.like_.time_col
    tail = history.tail(max(4 * f.horizon, f.lookback))
    fig, axes = plt.subplots(len(values), 1, figsize=(10, 2.6 * len(values)), squeeze=False, sharex=True)
    for ax, c in zip(axes[:, 0], values):
        x_hist = tail[tcol] if tcol else np.arange(history.height - tail.height, history.height)
        x_fut = out[tcol] if tcol else np.arange(history.height, history.height + f.horizon)
        ax.plot(x_hist, tail[c], color="0.25", lw=1.2, label="history")
        ax.fill_between(x_fut, out[f"{c}_lower"], out[f"{c}_upper"], color="tab:blue", alpha=0.25,
                        label=f"{coverage:.0%} interval")
        ax.plot(x_fut, out[c], color="tab:blue", lw=1.8, label="forecast")
        ax.set_ylabel(c)
    axes[0, 0].legend(loc="upper left", frameon=False, ncol=3)
    axes[0, 0].set_title(f"titans-ts forecast ({f.variant}, horizon {f.horizon})")
    fig.tight_layout()
    write_output(path, lambda tmp: fig.savefig(tmp, format="png", dpi=110))
    plt.close(fig)


def backtest(args) -> int:
    frame = select(read_frame(args.data), args)
    if not 0 < args.test_fraction < 1:
        raise UsageError(f"--test-fraction must lie in (0, 1), got {args.test_fraction}")
    head, tail = split(frame, args.test_fraction, args.id_col)
    with dask_client(args.workers, args.scheduler) as client:
        f = make(args).fit(head)
        result = f.backtest(tail, start=0, stride=args.stride or args.horizon, client=client)
    flat = result.with_columns(pl.col("forecast").list.eval(pl.element().round(6)).cast(pl.List(pl.String)).list.join(" "),
                               pl.col("actual").list.eval(pl.element().round(6)).cast(pl.List(pl.String)).list.join(" "))
    write_output(args.out, lambda tmp: flat.write_csv(tmp))
    summary = result.group_by("channel", maintain_order=True).agg(pl.col("mse").mean(), pl.col("mae").mean())
    print(summary)
    print(f"overall: mse {result['mse'].mean():.4f}  mae {result['mae'].mean():.4f}  over {result['origin'].n_unique()} origins")
    return 0


def surprise(args) -> int:
    frame = select(read_frame(args.data), args)
    if not 0 < args.train_fraction < 1:
        raise UsageError(f"--train-fraction must lie in (0, 1), got {args.train_fraction}")
    if args.plot and args.id_col:
        raise UsageError("--plot draws one series: leave out --id-col, or select a series first")
    head, tail = split(frame, 1 - args.train_fraction, args.id_col)
    cut = head.height
    f = make(args).fit(head)
    scores = f.surprise(tail)
    if args.out:
        write_output(args.out, lambda tmp: scores.write_csv(tmp))
    if args.plot:
        plot_surprise(frame, scores, f, cut, args.plot)
    top = scores.with_columns(pl.mean_horizontal(_momentary(f)).alias("mean")).sort("mean", descending=True).head(5)
    print(f"most surprising steps after row {cut}:")
    print(top)
    return 0


def _momentary(f: TitansForecaster) -> list[str]:
    """The momentary-surprise columns of `f.surprise(...)` (each has a `<name>_past` twin)."""
    return ["surprise"] if f.channel_mixing else f.columns_


def plot_surprise(frame: pl.DataFrame, scores: pl.DataFrame, f: TitansForecaster, cut: int, path: str) -> None:
    """The series (fitted part in grey) with the memory's surprise as a band under it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tcol = f.like_.time_col
    x_all = frame[tcol] if tcol else np.arange(frame.height)
    x_new = scores[tcol] if tcol else scores["step"]
    cols = f.columns_
    fig, axes = plt.subplots(len(cols) + 1, 1, figsize=(11, 2.2 * (len(cols) + 1)), sharex=True,
                             gridspec_kw={"height_ratios": [2] * len(cols) + [1.4]})
    for ax, c in zip(axes[:-1], cols):
        ax.plot(x_all[:cut], frame[c][:cut], color="0.6", lw=0.8, label="fitted on")
        ax.plot(x_all[cut:], frame[c][cut:], color="0.15", lw=0.9, label="streamed")
        ax.set_ylabel(c)
    axes[0].legend(loc="upper left", frameon=False, ncol=2)
    axes[0].set_title("titans-ts: the memory's surprise while it streams the series")
    momentary = scores.select(_momentary(f)).to_numpy().mean(1)
    past = scores.select([f"{c}_past" for c in _momentary(f)]).to_numpy().mean(1)
    axes[-1].fill_between(x_new, 0, momentary, color="tab:red", alpha=0.5, lw=0, label="momentary (eq 12)")
    axes[-1].set_ylabel("surprise")
    axes[-1].set_ylim(bottom=0)
    twin = axes[-1].twinx()  # the momentum has other units: its own scale
    twin.plot(x_new, past, color="tab:blue", lw=0.9, label="past, ‖η S‖ (eq 13)")
    twin.set_ylabel("past surprise")
    twin.set_ylim(bottom=0)
    axes[-1].legend(handles=axes[-1].get_legend_handles_labels()[0] + twin.get_legend_handles_labels()[0],
                    loc="upper left", frameon=False, ncol=2)
    fig.tight_layout()
    write_output(path, lambda tmp: fig.savefig(tmp, format="png", dpi=110))
    plt.close(fig)


def tune(args) -> int:
    from .tuning import tune_forecaster

    frame = select(read_frame(args.data), args)
    fixed = {} if args.id_col is None else {"id_col": args.id_col}
    with dask_client(args.workers, args.scheduler) as client:
        study = tune_forecaster(frame, horizon=args.horizon, lookback=args.lookback, n_trials=args.trials,
                                storage=args.storage, study_name=args.study, max_epochs=args.epochs,
                                time_col=args.time_col, seed=args.seed, client=client, **fixed)
    print(f"best validation loss {study.best_value:.4f} with {study.best_params}")
    return 0


def _main(argv: list[str] | None) -> int:
    p = ArgumentParser(prog="titans-ts", description="Forecast with a Titans model whose memory keeps learning.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=ArgumentParser)
    fc = sub.add_parser("forecast", help="fit on the whole file and forecast the next --horizon steps")
    model_args(fc)
    fc.add_argument("--out", required=True, help="CSV of the forecast with lower/upper interval columns")
    fc.add_argument("--plot", help="PNG of history, forecast and interval")
    fc.add_argument("--coverage", type=float, default=0.9, help="interval coverage (default 0.9)")
    add_dask_args(fc, "the series of a panel (--id-col)")
    bt = sub.add_parser("backtest", help="fit on the head of the file, then roll forecasts over the rest")
    model_args(bt)
    bt.add_argument("--test-fraction", type=float, default=0.2, help="tail of the file to backtest (default 0.2)")
    bt.add_argument("--stride", type=int, help="steps between origins (default: the horizon)")
    bt.add_argument("--out", required=True, help="CSV: one row per origin and column")
    add_dask_args(bt, "the series of a panel (--id-col)")
    tn = sub.add_parser("tune", help="Optuna search (TPE, pruning on validation loss) over model settings")
    model_args(tn)
    tn.add_argument("--trials", type=int, default=20)
    tn.add_argument("--storage", help="Optuna storage shared by workers: sqlite:///study.db or a .log journal file "
                                      "(with --workers/--scheduler, default: a study the Dask scheduler keeps)")
    tn.add_argument("--study", default="titans-ts", help="study name in the storage")
    add_dask_args(tn, "the trials (one study, shared through --storage or Dask)")
    su = sub.add_parser("surprise", help="fit on the head of the file, then score the memory's surprise on the rest")
    model_args(su)
    su.add_argument("--train-fraction", type=float, default=0.5, help="head of the file to fit on (default 0.5)")
    su.add_argument("--out", help="CSV of per-step surprise")
    su.add_argument("--plot", help="PNG: the series with a surprise band under it")
    args = p.parse_args(argv)
    return {"forecast": forecast, "backtest": backtest, "tune": tune, "surprise": surprise}[args.command](args)


def main(argv: list[str] | None = None) -> int:
    """Run `titans-ts`; returns the exit status (0, or 2 for bad input with one line on stderr)."""
    return run(_main, argv, "titans-ts")


if __name__ == "__main__":
    sys.exit(main())
