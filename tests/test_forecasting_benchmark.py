"""The ETT benchmark runs end to end and writes the JSON other tools read (slow: trains on ETTh1)."""
import json
from pathlib import Path

import pytest

from titans_ts.forecasting.benchmark import main

ETTH1 = Path(__file__).resolve().parents[2] / "shared" / "data" / "ett" / "ETTh1.csv"


@pytest.mark.slow
@pytest.mark.skipif(not ETTH1.is_file(), reason="../shared/data/ett/ETTh1.csv is not here")
def test_benchmark_json_shape(tmp_path):
    out = tmp_path / "r.json"
    assert main(["--data", str(ETTH1), "--horizons", "24", "--epochs", "1", "--lookback", "48", "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["dataset"] == "ETTh1"
    keys = {(r["model"], r["protocol"]) for r in report["results"]}
    assert keys == {("defaults", "selection"), ("ridge", "windowed"), ("titans-mal", "windowed"),
                    ("titans-mal", "streaming"), ("titans-mal-frozen-memory", "streaming")}
    for r in report["results"]:
        if r["protocol"] == "selection":
            continue
        assert r["horizon"] == 24 and 0 < r["mse"] < 2 and 0 < r["mae"] < 2 and r["train_seconds"] >= 0
    titans, = (r for r in report["results"] if r["model"] == "titans-mal" and r["protocol"] == "windowed")
    assert titans["val_mse"] > 0 and titans["val_mae"] > 0  # the validation windows, scored alike
    chosen, = (r for r in report["results"] if r["protocol"] == "selection")
    assert chosen["chosen"] and chosen["val_mse"] == titans["val_mse"]


def test_missing_data_file_exits_2(tmp_path, capsys):
    assert main(["--data", str(tmp_path / "none.csv")]) == 2
    assert "no such file" in capsys.readouterr().err



def test_gaps_protocol_scores_the_readings_that_remain():
    """With nothing removed the gappy stream is the complete one, score for score; with a fifth removed every
    row is finite and the peers are scored at the same readings."""
    from types import SimpleNamespace

    import numpy as np

    from titans_ts.forecasting import TitansForecaster
    from titans_ts.forecasting.benchmark import Fitted, gaps_test

    t = np.arange(700)
    y = np.sin(2 * np.pi * t[:, None] / 24 + np.arange(2)) + 0.1 * np.random.default_rng(0).standard_normal((700, 2))
    f = TitansForecaster(horizon=6, lookback=24, d_model=8, n_layers=1, heads=2, max_epochs=1,
                         random_state=0).fit(y[:400])
    rows = gaps_test(Fitted(f, 1.0, 0.0, {"splits": SimpleNamespace(test=y[376:])}), [0.0, 0.2])
    by = {(r["model"], r["protocol"]): r for r in rows}
    assert by[("titans-mal", "online-0%-gone")]["mse"] == by[("titans-mal-complete-stream", "online-0%-gone")]["mse"]
    gappy = [r for (_, protocol), r in by.items() if protocol == "online-20%-gone"]
    assert len(gappy) == 3 and all(0 < r["mse"] < 2 for r in gappy)
    # the last value observed, held: beaten by a model that knows the cycle
    assert by[("titans-mal", "online-20%-gone")]["mse"] < by[("naive-last-observed", "online-20%-gone")]["mse"]
