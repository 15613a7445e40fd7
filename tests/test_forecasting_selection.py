"""Model selection in the forecasting benchmark: candidates are compared on validation rows only, the test
rows are read for the chosen one, and the online baselines keep learning as the model does."""
import json

import numpy as np
import polars as pl
import pytest

from titans_ts.forecasting.benchmark import grid, label, main, online_ridge, scores, windows


def test_grid_is_every_combination_with_typed_values():
    assert grid(["period=none,24", "recall=true,false", "lr=1e-3"]) == [
        {"period": None, "recall": True, "lr": 1e-3}, {"period": None, "recall": False, "lr": 1e-3},
        {"period": 24, "recall": True, "lr": 1e-3}, {"period": 24, "recall": False, "lr": 1e-3}]
    assert grid(["memory-retention=96", "linear=ridge"]) == [{"memory_retention": 96, "linear": "ridge"}]
    assert grid([]) == [{}] and label({}) == "defaults"
    with pytest.raises(ValueError, match="KEY=V1,V2"):
        grid(["period"])


def test_online_ridge_learns_a_linear_recurrence_exactly():
    t = np.arange(3000.0)
    y = np.stack([np.sin(2 * np.pi * t / 24), np.cos(2 * np.pi * t / 17)], 1)
    for normalise in (False, True):
        got = online_ridge(y[:2000], 1500, y[2000:], 32, 4, normalise=normalise)
        assert got["mse"] < 1e-4  # a sinusoid is an exact linear function of its past
    _, true = windows(y[2000 - 32:], 32, 4)
    assert scores(np.broadcast_to(windows(y[2000 - 32:], 32, 4)[0][:, -1:], true.shape), true)[0] > 0.05


def test_online_ridge_normalises_and_takes_the_cycle_off_as_the_forecaster_does():
    rng = np.random.default_rng(0)
    profile = rng.standard_normal(24)  # a daily shape no short window can place
    y = (profile[np.arange(4000) % 24] + 0.1 * rng.standard_normal(4000))[:, None]
    y[2500:] += 3.0  # a level shift in the stream
    raw = online_ridge(y[:2000], 1500, y[2000:], 6, 6)
    revin = online_ridge(y[:2000], 1500, y[2000:], 6, 6, normalise=True)
    cycle = online_ridge(y[:2000], 1500, y[2000:], 6, 6, normalise=True, period=24)
    assert cycle["mse"] < 0.5 * revin["mse"] and cycle["mse"] < 0.5 * raw["mse"]
    assert cycle["mse"] < 0.1  # what is left: the noise, and the shift until the window has crossed it


def test_online_ridge_with_the_day_back_recalls_what_no_short_window_places():
    rng = np.random.default_rng(0)
    y = (rng.standard_normal(24)[np.arange(4000) % 24] + 0.01 * rng.standard_normal(4000))[:, None]
    window = online_ridge(y[:2000], 1500, y[2000:], 6, 6, normalise=True)
    day_back = online_ridge(y[:2000], 1500, y[2000:], 6, 6, normalise=True, lag=24)
    assert day_back["mse"] < 0.001 < 0.5 < window["mse"]  # a random daily shape: the day back is the forecast
    with pytest.raises(ValueError, match="lag 4 is shorter than the horizon 6"):
        online_ridge(y[:2000], 1500, y[2000:], 6, 6, lag=4)


@pytest.fixture(scope="module")
def ett_file(tmp_path_factory):
    """A small ETT-format file: two hourly channels with a daily cycle whose amplitude differs."""
    rng = np.random.default_rng(1)
    n = 14_400
    t = np.arange(n)
    day = np.sin(2 * np.pi * t / 24)
    frame = pl.DataFrame({"date": pl.datetime_range(pl.datetime(2020, 1, 1), pl.datetime(2020, 1, 1) +
                                                    pl.duration(hours=n - 1), "1h", eager=True),
                          "a": day + 0.3 * rng.standard_normal(n), "b": 2 * day + 0.3 * rng.standard_normal(n)})
    path = tmp_path_factory.mktemp("ett") / "tiny.csv"
    frame.with_columns(pl.col("date").dt.strftime("%Y-%m-%d %H:%M:%S")).write_csv(path)
    return path


def test_online_selection_reads_test_rows_for_the_chosen_candidate_only(ett_file, tmp_path):
    out = tmp_path / "r.json"
    assert main(["--data", str(ett_file), "--protocols", "online", "--online-horizons", "4", "--epochs", "1",
                 "--select", "period=none,24", "--json", str(out)]) == 0
    rows = json.loads(out.read_text())["results"]
    sel = [r for r in rows if r["protocol"] == "selection"]
    assert [r["model"] for r in sel] == ["period=None", "period=24"]
    best = min(sel, key=lambda r: r["val_mse"])
    assert [r["chosen"] for r in sel] == [r is best for r in sel]
    tested = [r for r in rows if r["protocol"] == "online"]
    assert {r["model"] for r in tested} == {"titans-mal", "titans-mal-frozen-memory", "naive-last-value",
                                            "online-ridge", "online-ridge-revin" +
                                            ("+cycle24" if best["model"] == "period=24" else "")}
    assert all(r["settings"] == best["model"] for r in tested)
    titans, = (r for r in tested if r["model"] == "titans-mal")
    assert titans["val_mse"] == best["val_mse"]
    ridge, = (r for r in tested if r["model"].startswith("online-ridge-revin"))
    naive, = (r for r in tested if r["model"] == "naive-last-value")
    assert ridge["mse"] < naive["mse"]  # the daily cycle is linear in the window; the last value misses it


def test_daily_recall_forecasts_half_a_day_from_a_quarter_with_the_day_back_as_peer(ett_file, tmp_path):
    out = tmp_path / "r.json"
    assert main(["--data", str(ett_file), "--protocols", "daily-recall", "--epochs", "1", "--json", str(out)]) == 0
    rows = [r for r in json.loads(out.read_text())["results"] if r["protocol"] == "daily-recall"]
    assert {r["horizon"] for r in rows} == {12}
    by = {r["model"]: r for r in rows}  # the encoder reaches 2 x 6 - 1 values back
    assert set(by) == {"titans-mal", "titans-mal-frozen-memory", "naive-last-value", "day-back value",
                       "online-ridge-revin-11", "online-ridge-revin-11+day"}
    # the day back at the forecast's hours differs from now by two draws of the noise (0.3, in scaled units
    # 0.39 and 0.21 for the two channels): 2 σ² on average; misaligned by an hour it would add the cycle's change
    assert 0.15 < by["day-back value"]["mse"] < 0.25


def test_bad_select_exits_2(ett_file, capsys):
    assert main(["--data", str(ett_file), "--protocols", "online", "--select", "period"]) == 2
    assert "KEY=V1,V2" in capsys.readouterr().err
