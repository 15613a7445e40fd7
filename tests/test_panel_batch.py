"""A panel's series stream in one batched state: every method gives what it gives series by series."""
import pickle

import numpy as np
import pandas as pd
import polars as pl
import pytest
import torch

from titans_ts.forecasting import TitansForecaster

TINY = dict(horizon=3, lookback=8, patch=2, d_model=8, n_layers=1, heads=2, chunk_size=4, max_epochs=1,
            batch_size=16, random_state=0, id_col="id")
KEYS = ["a", "b", "c"]
START = pd.Timestamp("2024-01-01")


def panel(lo: int, hi: int | dict, keys=KEYS) -> pl.DataFrame:
    """Rows lo … hi − 1 of every series in `keys` (hi per series when a dict), two channels, hourly."""
    parts = []
    for j, key in enumerate(keys):
        end = hi[key] if isinstance(hi, dict) else hi
        t = np.arange(lo, end)
        parts.append(pl.DataFrame({"id": [key] * len(t), "t": START + pd.to_timedelta(t, "h"),
                                   "x": np.sin(t / (3 + j)) + 0.1 * np.cos(t / 7), "y": np.cos(t / (4 + j))}))
    return pl.concat(parts)


@pytest.fixture(scope="module")
def fitted():
    return TitansForecaster(**TINY).fit(panel(0, 120))


def copy(f):
    return pickle.loads(pickle.dumps(f))


def one_by_one(f, frame, method, **kw):
    """`method` called on each series' rows of `frame` alone."""
    return [getattr(f, method)(frame.filter(pl.col("id") == k), **kw) for k in frame["id"].unique(maintain_order=True)]


def counted(f):
    """Count the network's forward passes."""
    calls = []
    forward = f.net_.forward
    f.net_.forward = lambda *a, **kw: calls.append(a[0].shape) or forward(*a, **kw)
    return calls


def test_update_and_predictions_equal_series_by_series(fitted):
    new = panel(120, 130)
    batched, single = copy(fitted), copy(fitted)
    calls = counted(batched)
    batched.update(new)
    assert len(calls) == 1 and calls[0][0] == 3 * 2  # one pass: three series, a lane per channel
    for part in one_by_one(single, new, "update"):
        assert part is single
    for got, want in [(batched.predict(), single.predict()), *zip(batched.predict_interval(0.8),
                                                                  single.predict_interval(0.8))]:
        assert got.columns == want.columns == ["id", "t", "x", "y"] and got["id"].equals(want["id"])
        assert got["t"].equals(want["t"])
        np.testing.assert_allclose(got.select("x", "y").to_numpy(), want.select("x", "y").to_numpy(), atol=1e-6)
    np.testing.assert_array_equal(batched.streams_.seen, [130, 130, 130])


def test_a_wide_panel_streams_in_calls_of_bounded_lane_steps(fitted, monkeypatch):
    from titans_ts.forecasting import streams

    new = panel(120, 140)
    whole, bounded = copy(fitted), copy(fitted)
    whole.update(new)
    monkeypatch.setattr(streams, "LANE_STEPS", 24)  # six lanes: four steps a call
    calls = counted(bounded)
    bounded.update(new)
    assert [shape[:2] for shape in calls] == [(6, 4)] * 5
    np.testing.assert_allclose(bounded.predict().select("x", "y").to_numpy(),
                               whole.predict().select("x", "y").to_numpy(), atol=1e-5)


def test_backtest_and_surprise_equal_series_by_series(fitted):
    new = panel(120, 150)
    bt = fitted.backtest(new, stride=5)
    alone = pl.concat(one_by_one(fitted, new, "backtest", stride=5)).sort("series", "origin", "channel")
    assert bt.select("series", "origin", "channel").equals(alone.select("series", "origin", "channel"))
    np.testing.assert_allclose(np.stack(bt["forecast"].to_list()), np.stack(alone["forecast"].to_list()), atol=1e-6)
    assert bt["origin_time"].to_list() == [START + pd.Timedelta(hours=120 + o) for o in bt["origin"]]
    calls = counted(f := copy(fitted))
    s = f.surprise(new)
    assert len(calls) == 1
    s_alone = pl.concat(one_by_one(fitted, new, "surprise"))
    assert s.columns == s_alone.columns and s["id"].to_list() == s_alone["id"].to_list()
    np.testing.assert_allclose(s.drop("id", "t").to_numpy(), s_alone.drop("id", "t").to_numpy(), atol=1e-6)
    np.testing.assert_array_equal(f.streams_.seen, [120, 120, 120])  # scoring moved nothing


def test_ragged_subset_updates_equal_series_by_series_and_leave_the_rest_bitwise(fitted):
    batched, single = copy(fitted), copy(fitted)
    c_before = {k: v.clone() for k, v in fitted.streams_.memory("c").items()}
    ragged = panel(120, {"a": 123, "b": 125}, keys=["a", "b"])  # c gets nothing; a and b different lengths
    batched.update(ragged)
    one_by_one(single, ragged, "update")
    c_after = batched.streams_.memory("c")
    assert c_after.keys() == c_before.keys() and all(torch.equal(c_after[k], c_before[k]) for k in c_before)
    row = batched.streams_.rows["c"]
    for field in ("context", "point", "quant"):
        assert torch.equal(getattr(batched.streams_, field)[row], getattr(fitted.streams_, field)[row])
    np.testing.assert_array_equal(batched.streams_.seen, [123, 125, 120])
    # the series now stand at different rows: one more row each goes through one pass per clock
    more = pl.concat([panel(123, 124, ["a"]), panel(125, 126, ["b"]), panel(120, 121, ["c"])])
    calls = counted(batched)
    batched.update(more)
    one_by_one(single, more, "update")
    assert len(calls) == 3
    np.testing.assert_allclose(batched.predict().select("x", "y").to_numpy(),
                               single.predict().select("x", "y").to_numpy(), atol=1e-6)
    # series that line up again share a pass
    calls.clear()
    batched.update(pl.concat([panel(124, 126, ["a"]), panel(121, 126, ["c"])]))
    batched.update(panel(126, 127))
    assert len(calls) == 2 + 1


def test_series_left_out_of_an_update_are_not_copied(fitted):
    f = copy(fitted)
    (before,) = f.streams_.groups
    f.update(panel(120, 121, ["a"]))
    moved, stayed = f.streams_.groups
    assert moved.rows.tolist() == [0] and stayed.rows.tolist() == [1, 2] and stayed.slots.tolist() == [1, 2]
    assert all(stayed.memory[k] is before.memory[k] for k in before.memory)  # the same tensors, slots kept
    f.update(panel(120, 121, ["b"]))  # half the batch has left: what stays is compacted
    assert [(g.rows.tolist(), g.slots.tolist()) for g in f.streams_.groups] == [([0], [0]), ([1], [0]), ([2], [0])]
    f.update(panel(121, 122, ["a", "b"]))  # a and b stand at one row again: one pass, then one batch
    assert [g.rows.tolist() for g in f.streams_.groups] == [[0, 1], [2]]
    assert torch.equal(f.streams_.memory("c")["encoder.layers.0.memory.w.0"],
                       fitted.streams_.memory("c")["encoder.layers.0.memory.w.0"])


def test_a_failed_panel_update_changes_nothing(fitted):
    f = copy(fitted)
    before = f.predict()
    bad = panel(120, 122).with_columns(pl.when(pl.col("id") == "c").then(np.inf).otherwise(pl.col("x")).alias("x"))
    with pytest.raises(ValueError, match="holds inf"):  # NaN would be a gap; infinity is an error
        f.update(bad)
    late = pl.concat([panel(120, 121, ["a"]), panel(121, 122, ["b"])])
    with pytest.raises(ValueError, match="does not continue the fitted series 'b'"):
        f.update(late)
    assert f.predict().equals(before)
    np.testing.assert_array_equal(f.streams_.seen, [120, 120, 120])


def test_batched_streams_save_and_load_bitwise(fitted, tmp_path):
    fitted.save(tmp_path / "one.titans")  # three series in one batch
    g = TitansForecaster.load(tmp_path / "one.titans")
    assert [list(x.rows) for x in g.streams_.groups] == [[0, 1, 2]]
    assert g.predict().equals(fitted.predict())
    assert g.update(panel(120, 122)).predict().equals(copy(fitted).update(panel(120, 122)).predict())
    f = copy(fitted)
    f.update(pl.concat([panel(120, 121, ["a"]), panel(120, 124, ["b"])]))  # three clocks: a 121, b 124, c 120
    f.save(tmp_path / "p.titans")
    g = TitansForecaster.load(tmp_path / "p.titans")
    assert [list(x.rows) for x in g.streams_.groups] == [list(x.rows) for x in f.streams_.groups]
    more = pl.concat([panel(121, 125, ["a"]), panel(124, 125, ["b"]), panel(120, 125, ["c"])])
    f.update(more)
    g.update(more)
    assert f.predict().equals(g.predict())


def test_long_frames_split_by_series_in_order_of_first_appearance():
    from titans_ts.forecasting.frames import to_panel

    rows = pl.DataFrame({"id": ["b", "a", "b", "a", "c"], "t": START + pd.to_timedelta([1, 5, 0, 4, 9], "h"),
                         "x": [1.0, 2.0, 3.0, 4.0, 5.0]})
    p = to_panel(rows, id_col="id")
    assert list(p.values) == ["b", "a", "c"]
    np.testing.assert_array_equal(p.values["b"][:, 0], [3.0, 1.0])  # in time order within a series
    np.testing.assert_array_equal(p.values["a"][:, 0], [4.0, 2.0])
    assert p.times["c"][0] == np.datetime64(START + pd.Timedelta(hours=9))
    with pytest.raises(ValueError, match="holds nan at row 1"):  # a's second row in time order
        to_panel(rows.with_columns(x=pl.Series([1.0, np.nan, 3.0, 4.0, 5.0])), id_col="id")
    with pytest.raises(ValueError, match="time stamps in 't' repeat for id='a'"):
        to_panel(rows.with_columns(t=pl.Series(START + pd.to_timedelta([1, 5, 0, 5, 9], "h"))), id_col="id")
