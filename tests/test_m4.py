"""M4 files and the competition's metrics: the loader reads the wide layout, the metrics give M4's figures."""
from pathlib import Path

import numpy as np
import pytest

from titans_ts.datasets.m4 import read_m4
from titans_ts.forecasting.metrics import mase, smape

M4 = Path(__file__).resolve().parents[2] / "shared" / "data" / "m4"


def write(path: Path, rows: list[list[str]]) -> Path:
    width = max(len(r) for r in rows)
    header = ",".join(f'"V{i + 1}"' for i in range(width))
    path.write_text("\n".join([header] + [",".join(f'"{v}"' for v in r + [""] * (width - len(r))) for r in rows]))
    return path


def test_rows_of_any_length_and_the_test_file(tmp_path):
    train = write(tmp_path / "train.csv", [["W1", "1", "2", "3", "4"], ["W2", "10", "20"]])
    test = write(tmp_path / "test.csv", [["W1", "5", "6"], ["W2", "30", "40"]])
    data = read_m4(train, test)
    assert data.ids == ["W1", "W2"]
    np.testing.assert_array_equal(data.train[1], [10, 20])
    np.testing.assert_array_equal(data.test, [[5, 6], [30, 40]])
    assert data.long(1).to_dict(as_series=False) == {"id": ["W1"] * 3 + ["W2"], "value": [1.0, 2.0, 3.0, 10.0]}


def test_bad_files_are_named(tmp_path):
    train = write(tmp_path / "train.csv", [["W1", "1", "2"], ["W2", "3"]])
    with pytest.raises(ValueError, match="series 'W2' .line 3. has a gap"):
        read_m4(write(tmp_path / "gap.csv", [["W1", "1", "2"], ["W2", "3", "", "4"]]))
    with pytest.raises(ValueError, match="not a number"):
        read_m4(write(tmp_path / "text.csv", [["W1", "1", "x"]]))
    with pytest.raises(ValueError, match="ids are not those of"):
        read_m4(train, write(tmp_path / "test.csv", [["W2", "1"], ["W1", "2"]]))
    with pytest.raises(ValueError, match="not a readable M4 CSV"):
        read_m4(tmp_path / "missing.csv")


def test_the_metrics_by_hand():
    f, a = np.array([[1.0, 3.0]]), np.array([[2.0, 3.0]])
    assert smape(f, a) == pytest.approx((200 * 1 / 3 + 0) / 2)  # 200 |2 − 1| / (2 + 1), then 0; the mean
    assert mase(f, a, [np.array([0.0, 2.0, 1.0])]) == pytest.approx(0.5 / 1.5)


@pytest.mark.skipif(not M4.is_dir(), reason="the shared M4 files are absent")
def test_the_naive_forecast_scores_its_published_weekly_figures():
    data = read_m4(M4 / "Weekly-train.csv", M4 / "Weekly-test.csv")
    naive = np.stack([np.repeat(v[-1], 13) for v in data.train])
    assert len(data.ids) == 359 and data.test.shape == (359, 13)
    assert smape(naive, data.test) == pytest.approx(9.161, abs=1e-3)  # M4's Naive2 on Weekly (seasonality 1)
    assert mase(naive, data.test, data.train) == pytest.approx(2.777, abs=1e-3)


def test_the_benchmark_runs_end_to_end_on_a_small_panel(tmp_path):
    """benchmarks/m4.py on six short series of mixed scale: every section runs and scores what it says."""
    import importlib.util
    import json

    spec = importlib.util.spec_from_file_location("m4_benchmark", Path(__file__).parents[1] / "benchmarks" / "m4.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    rng = np.random.default_rng(0)
    train, test = [], []
    for i in range(6):
        n = 70 + 5 * i
        v = 10.0 ** i * (5 + np.sin(np.arange(n + 13) / 3) + 0.1 * rng.standard_normal(n + 13))
        train.append([f"W{i + 1}", *map(str, v[:n])])
        test.append([f"W{i + 1}", *map(str, v[n:])])
    write(tmp_path / "Weekly-train.csv", train)
    write(tmp_path / "Weekly-test.csv", test)
    out = bench.main(["--data", str(tmp_path), "--lookback", "30", "--epochs", "1", "--per-series", "2", "--unseen",
                      "--select", "d_model=8", "n_layers=1", "heads=2", "chunk_size=4", "--json", str(tmp_path / "r.json")])
    rows = {(r["model"], r["split"], r.get("series", 6)): r for r in out["results"]}
    assert set(rows) == {("naive", "val", 6), ("naive", "test", 6), ("titans global", "val", 6),
                         ("titans global", "test", 6), ("titans per series", "test", 2), ("titans global", "test", 2),
                         ("naive", "test", 2), ("titans global, joined", "test", 2), ("titans alone, same rows", "test", 2)}
    data = read_m4(tmp_path / "Weekly-train.csv", tmp_path / "Weekly-test.csv")
    naive = np.stack([np.repeat(v[-1], 13) for v in data.train])
    assert rows[("naive", "test", 6)]["smape"] == pytest.approx(smape(naive, data.test))
    assert rows[("naive", "test", 2)]["mase"] == pytest.approx(mase(naive[[0, 3]], data.test[[0, 3]], data.train[::3]))
    assert json.loads((tmp_path / "r.json").read_text())["results"][0]["model"] == "naive"
