"""Tune a forecaster with Optuna: trials in this process, or at once on Dask workers sharing one study.

    python examples/tune_forecaster.py                         # 6 trials, one after another
    python examples/tune_forecaster.py --workers 2             # 6 trials on a local cluster of 2 processes
    python examples/tune_forecaster.py --scheduler tcp://host:8786 --storage postgresql://...   # a running cluster

ETTh1 (bundled, CC BY-ND 4.0), oil temperature: trials are scored on validation rows (the last fifth of the
training rows); the test rows are read once, by the chosen settings. The study lives in `--storage` (a
journal file here, which every local worker reaches; a database URL across machines), so a second run
continues it.
"""
import argparse

from titans_ts.datasets import load_bundled_ett
from titans_ts.distributed import dask_client
from titans_ts.forecasting import TitansForecaster
from titans_ts.forecasting.tuning import tune_forecaster


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trials", type=int, default=6)
    where = ap.add_mutually_exclusive_group()
    where.add_argument("--workers", type=int, help="a local Dask cluster of this many processes")
    where.add_argument("--scheduler", help="a running Dask cluster")
    ap.add_argument("--storage", default="tune_forecaster.log", help="Optuna storage (default: a journal file)")
    args = ap.parse_args()

    frame = load_bundled_ett().select("date", "OT").head(2400)
    train, test = frame.head(2000), frame.slice(2000)
    fixed = dict(max_epochs=2, recall=False, period=24)  # the same in every trial: keep trials short

    with dask_client(args.workers, args.scheduler) as client:  # None without --workers / --scheduler
        study = tune_forecaster(train, horizon=24, lookback=96, n_trials=args.trials, storage=args.storage,
                                client=client, **fixed)
    print(f"{len(study.trials)} trials; best validation loss {study.best_value:.4f} with {study.best_params}")

    best = TitansForecaster(horizon=24, lookback=96, random_state=0, **fixed, **study.best_params).fit(train)
    scores = best.backtest(test)  # the test rows, read once
    print(f"test: MSE {scores['mse'].mean():.3f}, MAE {scores['mae'].mean():.3f} over {scores.height} forecasts")


if __name__ == "__main__":  # Dask starts its worker processes afresh: they must not run this again
    main()
