"""The titans-ts command line and Optuna tuning, end to end on small files."""
import subprocess
import sys

import numpy as np
import optuna
import polars as pl
import pytest

from titans_ts.forecasting.cli import main
from titans_ts.forecasting.tuning import tune_forecaster

FAST = ["--horizon", "4", "--lookback", "16", "--epochs", "1", "--quiet"]


@pytest.fixture
def csv(tmp_path):
    t = np.arange(240)
    frame = pl.DataFrame({"date": pl.datetime_range(pl.datetime(2024, 1, 1), pl.datetime(2024, 1, 10, 23),
                                                    "1h", eager=True),
                          "a": np.sin(t / 4), "b": np.cos(t / 6)})
    path = tmp_path / "series.csv"
    frame.write_csv(path)
    return path


def test_forecast_writes_csv_and_plot(csv, tmp_path, capsys):
    out, png = tmp_path / "f.csv", tmp_path / "f.png"
    assert main(["forecast", "--data", str(csv), "--out", str(out), "--plot", str(png), *FAST]) == 0
    result = pl.read_csv(out, try_parse_dates=True)
    assert result.columns == ["date", "a", "b", "a_lower", "b_lower", "a_upper", "b_upper"]
    assert result.height == 4 and str(result["date"][0]) == "2024-01-11 00:00:00"
    assert (result["a_lower"] <= result["a"]).all() and (result["a"] <= result["a_upper"]).all()
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "wrote" in capsys.readouterr().out


@pytest.mark.parametrize("extra", [[], ["--recall"], ["--period", "24"], ["--memory-retention", "16"]])
def test_backtest_writes_one_row_per_origin_and_column(csv, tmp_path, extra):
    out = tmp_path / "bt.csv"
    assert main(["backtest", "--data", str(csv), "--out", str(out), "--test-fraction", "0.25", *FAST, *extra]) == 0
    result = pl.read_csv(out)
    assert result.height == 2 * len(range(0, 60 - 4 + 1, 4))
    assert {"origin", "channel", "forecast", "actual", "mse", "mae"} <= set(result.columns)
    assert np.isfinite(result["mse"].to_numpy()).all()


@pytest.mark.parametrize("args,message", [
    (["forecast", "--data", "missing.csv", "--out", "x.csv", *FAST], "no such file"),
    (["forecast", "--horizon", "4", "--out", "x.csv"], "--data"),
    (["backtest", "--data", "{csv}", "--out", "x.csv", "--test-fraction", "2", *FAST], "--test-fraction"),
    (["forecast", "--data", "{csv}", "--out", "x.csv", "--columns", "zzz", *FAST], "no column 'zzz'"),
    (["forecast", "--data", "{csv}", "--out", "x.csv", "--memory-retention", "1", *FAST],
     "TitansForecaster.memory_retention must be None or an integer >= 2, got 1"),
])
def test_bad_input_exits_2_with_one_line(args, message, csv, tmp_path):
    args = [a.replace("{csv}", str(csv)) for a in args]
    proc = subprocess.run([sys.executable, "-m", "titans_ts.forecasting.cli", *args], cwd=tmp_path,
                          capture_output=True, text=True)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("titans-ts: error:") and message in lines[0]
    assert not (tmp_path / "x.csv").exists()


def test_non_numeric_column_is_a_clean_error(tmp_path):
    path = tmp_path / "bad.csv"
    pl.DataFrame({"a": ["x", "y"] * 30}).write_csv(path)
    proc = subprocess.run([sys.executable, "-m", "titans_ts.forecasting.cli", "forecast", "--data", str(path),
                           "--out", str(tmp_path / "o.csv"), *FAST], capture_output=True, text=True)
    assert proc.returncode == 2 and "column 'a' is not numeric" in proc.stderr
    assert not (tmp_path / "o.csv").exists()


def test_tune_runs_three_trials_in_a_shared_journal(tmp_path):
    t = np.arange(200)
    y = np.sin(t / 5)[:, None]
    journal = str(tmp_path / "study.log")
    study = tune_forecaster(y, horizon=4, lookback=16, n_trials=3, storage=journal, max_epochs=2,
                            batch_size=64, patch=4)
    assert len(study.trials) == 3
    assert all(t.state in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED) for t in study.trials)
    assert np.isfinite(study.best_value)
    again = optuna.load_study(study_name="titans-ts", storage=optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(journal)))
    assert len(again.trials) == 3  # another process sees the same study


def test_surprise_writes_scores_and_plot(csv, tmp_path):
    out, png = tmp_path / "s.csv", tmp_path / "s.png"
    assert main(["surprise", "--data", str(csv), "--out", str(out), "--plot", str(png), *FAST]) == 0
    scores = pl.read_csv(out, try_parse_dates=True)
    assert scores.columns == ["date", "a", "b", "a_past", "b_past", "a_error", "b_error"] and scores.height == 120
    assert (scores["a"] >= 0).all()
    assert png.read_bytes()[:4] == b"\x89PNG"
