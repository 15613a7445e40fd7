"""`titans-ts forecast|backtest|tune` on a long panel over Dask (a LocalCluster of 2 worker processes): the
frame of one process, row for row, and a worker killed mid-run costs no row and repeats none."""
import functools
import importlib.util
import os
import signal

import numpy as np
import optuna
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from titans_ts import distributed as spread
from titans_ts.forecasting import TitansForecaster, distributed, tuning
from titans_ts.forecasting.cli import main
from titans_ts.forecasting.tuning import storage_for, tune_forecaster

pytest.importorskip("dask.distributed")
pytestmark = pytest.mark.usefixtures("one_thread")

TINY = dict(horizon=4, lookback=16, patch=4, d_model=8, n_layers=1, heads=1, window=16, chunk_size=8,
            memory_depth=1, max_epochs=1, recall=False, period=None, random_state=0)
FAST = ["--horizon", "4", "--lookback", "16", "--epochs", "1", "--no-recall", "--period", "none", "--quiet",
        "--id-col", "shop", "--time-col", "date"]


@pytest.fixture(scope="module")
def panel():
    """7 shops, 120 hourly rows each, different rhythms; rows of the shops interleaved as in a sales log."""
    rng = np.random.default_rng(0)
    date = pl.datetime_range(pl.datetime(2024, 1, 1), pl.datetime(2024, 1, 5, 23), "1h", eager=True)
    t = np.arange(len(date))
    parts = [pl.DataFrame({"shop": f"s{i}", "date": date, "sales": np.sin(t / (3 + i)) + 0.1 * rng.normal(size=len(t)),
                           "visits": np.cos(t / 5) * i}) for i in range(7)]
    return pl.concat(parts).sort("date", "shop")


@pytest.fixture(scope="module")
def fitted(panel):
    head = panel.filter(pl.col("date") < pl.datetime(2024, 1, 4))
    return TitansForecaster(**TINY, id_col="shop").fit(head), panel.filter(pl.col("date") >= pl.datetime(2024, 1, 4))


@pytest.fixture(autouse=True)
def small_tasks(monkeypatch):
    monkeypatch.setattr(distributed, "SERIES_PER_TASK", 3)  # 7 shops: tasks of 3, 3 and 1


def test_backtest_on_workers_gives_the_frame_of_one_process(fitted, client):
    f, tail = fitted
    alone = f.backtest(tail, stride=2)
    assert_frame_equal(f.backtest(tail, stride=2, client=client), alone)
    assert alone.height == 7 * 2 * len(range(0, 48 - 4 + 1, 2))
    assert alone["series"].unique(maintain_order=True).to_list() == [f"s{i}" for i in range(7)]


def test_forecast_on_workers_gives_the_forecasts_of_one_batch(fitted, client):
    f, _ = fitted
    here, spread_out = distributed.forecast(f, 0.8), distributed.forecast(f, 0.8, client)
    assert_frame_equal(spread_out, here)
    lo, hi = f.predict_interval(0.8)
    assert_frame_equal(here.select("shop", "date", "sales", "visits"), f.predict())
    assert_frame_equal(here.select("shop", "date", sales="sales_lower", visits="visits_lower"), lo)
    assert (here["sales_upper"].to_numpy() == hi["sales"].to_numpy()).all()


def test_a_worker_killed_mid_run_loses_no_row_and_repeats_none(fitted, client):
    f, tail = fitted
    keys = [f"s{i}" for i in range(7)]
    before = client.run(os.getpid)
    victim = next(iter(before.values()))

    def tasks():
        for i, key in enumerate(keys):
            if i == 5:  # 4 tasks are out on the two workers: kill one of them under its work
                os.kill(victim, signal.SIGKILL)
            yield tail.filter(pl.col("shop") == key), distributed.alone(f, [key])

    run = functools.partial(distributed.backtest_part, stride=2)
    rows = pl.concat(spread.ordered_map(run, tasks(), client))
    assert_frame_equal(rows, f.backtest(tail, stride=2))
    assert victim not in client.run(os.getpid).values()  # the nanny started a new worker process


def run(tmp_path, name, *args):
    out = tmp_path / f"{name}.csv"
    assert main([*args, "--out", str(out)]) == 0
    return out.read_bytes()


@pytest.fixture(scope="module")
def panel_csv(panel, tmp_path_factory):
    path = tmp_path_factory.mktemp("panel") / "shops.csv"
    panel.write_csv(path)
    return str(path)


@pytest.mark.parametrize("command", [["backtest", "--test-fraction", "0.25"], ["forecast"]])
def test_cli_on_workers_writes_the_bytes_of_one_process(command, panel_csv, client, tmp_path):
    args = [*command, "--data", panel_csv, *FAST]
    alone = run(tmp_path, "alone", *args)
    assert run(tmp_path, "spread", *args, "--scheduler", client.scheduler.address) == alone
    result = pl.read_csv(alone)
    if command[0] == "forecast":
        assert result.height == 7 * 4 and result["date"].str.starts_with("2024-01-06T00").sum() == 7
    else:  # each shop's last quarter (30 rows): origins 0, 4, ..., 24 for both columns
        assert result.group_by("series").len()["len"].to_list() == [7 * 2] * 7


TUNE = dict(horizon=4, lookback=16, max_epochs=1, id_col="shop", d_model=8, n_layers=1, chunk_size=8, recall=False,
            period=None, patch=4)


def test_tune_on_workers_shares_one_study(panel, client, tmp_path):
    journal = str(tmp_path / "study.log")
    study = tune_forecaster(panel, n_trials=2, storage=journal, client=client, **TUNE)
    assert len(optuna.load_study(study_name="titans-ts", storage=storage_for(journal)).trials) == 2
    assert len({str(t.params) for t in study.trials}) == 2  # each trial its own seed: no trial repeats another


@pytest.mark.skipif(importlib.util.find_spec("optuna_integration") is None, reason="needs optuna-integration")
def test_tune_on_workers_without_storage_shares_the_schedulers_study(panel, client):
    study = tune_forecaster(panel, n_trials=2, study_name="on-the-scheduler", client=client, **TUNE)
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.COMPLETE] * 2


def test_tune_on_workers_without_a_shared_storage_says_what_to_give(panel, client, monkeypatch):
    monkeypatch.setattr(tuning, "dask_storage", lambda client: None)  # an Optuna without DaskStorage
    with pytest.raises(ValueError, match="give a storage every worker reaches"):
        tune_forecaster(panel, n_trials=1, client=client, **TUNE)


@pytest.mark.parametrize("args,message", [
    (["backtest", "--data", "{csv}", "--out", "x.csv", "--id-col", "store", "--horizon", "4"], "no column 'store'"),
    (["forecast", "--data", "{csv}", "--out", "x.csv", "--id-col", "shop", "--plot", "x.png", "--horizon", "4"],
     "--plot draws one series"),
    (["backtest", "--data", "{csv}", "--out", "x.csv", "--horizon", "4", "--workers", "0"], "--workers must be"),
])
def test_bad_panel_input_exits_2_with_one_line(args, message, panel_csv, capsys):
    assert main([a.replace("{csv}", panel_csv) for a in args]) == 2
    assert message in capsys.readouterr().err


def test_surprise_of_a_panel_scores_each_series_after_its_own_head(panel_csv, tmp_path):
    out = tmp_path / "surprise.csv"
    assert main(["surprise", "--data", panel_csv, *FAST, "--out", str(out)]) == 0
    scores = pl.read_csv(out)
    assert scores.group_by("shop", maintain_order=True).len().rows() == [(f"s{i}", 60) for i in range(7)]
