"""A series `fit` never saw joins a fitted panel through `update`: its own stream and scale, nobody else moves."""
import pickle

import numpy as np
import polars as pl
import pytest
import torch

from titans_ts.forecasting import TitansForecaster

TINY = dict(horizon=6, lookback=12, patch=4, d_model=8, n_layers=1, heads=2, chunk_size=4, max_epochs=2,
            batch_size=16, random_state=0, id_col="id", period=24)


def daily(n: int, seed: int, level: float = 0.0, spread: float = 1.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return level + spread * (rng.standard_normal(24)[np.arange(n) % 24] + 0.2 * rng.standard_normal(n))


def long(parts: dict[str, np.ndarray]) -> pl.DataFrame:
    return pl.DataFrame({"id": [k for k, v in parts.items() for _ in v], "v": np.concatenate(list(parts.values()))})


@pytest.fixture(scope="module")
def fitted():
    return TitansForecaster(**TINY).fit(long({"a": daily(300, 0), "b": daily(300, 1)}))


def copy(f):
    return pickle.loads(pickle.dumps(f))


def rows_of(frame: pl.DataFrame, key: str) -> np.ndarray:
    return frame.filter(pl.col("id") == key)["v"].to_numpy()


def test_a_new_series_joins_and_the_others_stay_bitwise(fitted):
    f = copy(fitted)
    c = daily(60, 2, level=1e4, spread=300)
    f.update(long({"c": c}))
    assert f.streams_.keys == ["a", "b", "c"] and f.streams_.seen.tolist() == [300, 300, 60]
    for key in "ab":
        np.testing.assert_array_equal(rows_of(f.predict(), key), rows_of(fitted.predict(), key))
        for name, v in fitted.streams_.memory(key).items():
            assert torch.equal(f.streams_.memory(key)[name], v)
    assert f.streams_.scaler.mean[2, 0] == pytest.approx(c.mean())  # its scale, from its own rows
    assert np.abs(rows_of(f.predict(), "c") - 1e4).max() < 2e3  # forecast in its own units


def test_a_joined_series_streams_in_pieces_as_in_one_update(fitted):
    c = daily(60, 2, level=50.0)
    whole, pieces = copy(fitted), copy(fitted)
    for f in (whole, pieces):  # its scale comes from the rows it joins with: a window and a cycle
        f.update(long({"c": c[:24], **({"a": daily(310, 0)[300:310]} if f is pieces else {})}))
    whole.update(long({"c": c[24:]}))
    pieces.update(long({"c": c[24:31]}))
    pieces.update(long({"c": c[31:]}))
    np.testing.assert_allclose(rows_of(pieces.predict(), "c"), rows_of(whole.predict(), "c"), atol=1e-4)


def test_a_new_series_learns_like_a_fitted_one(fitted):
    f = copy(fitted)
    c = daily(400, 1, level=5e3, spread=100)  # series b's profile on another scale
    f.update(long({"c": c[:300]}))
    bt = f.backtest(long({"b": daily(400, 1)[300:], "c": c[300:]}), stride=6)
    err = {k: np.sqrt(bt.filter(pl.col("series") == k)["mse"].mean()) for k in "bc"}
    assert err["c"] / 100 < 1.5 * err["b"]  # in units of each series' spread


def test_a_new_series_with_too_few_rows_is_refused_and_nothing_changes(fitted):
    f = copy(fitted)
    before = f.streams_
    with pytest.raises(ValueError, match=r"new series 'c' with 20 rows; a new series joins with at least 24 "
                                         r"\(a window of lookback 12 and a period of 24\): 4 more"):
        f.update(long({"a": daily(310, 0)[300:310], "c": daily(20, 3)}))
    assert f.streams_ is before


def test_a_joined_series_is_saved(fitted, tmp_path):
    f = copy(fitted)
    f.update(long({"c": daily(48, 4, level=-20.0)}))
    f.save(tmp_path / "f.titans")
    g = TitansForecaster.load(tmp_path / "f.titans")
    assert g.streams_.keys == ["a", "b", "c"]
    np.testing.assert_array_equal(g.predict()["v"].to_numpy(), f.predict()["v"].to_numpy())


def test_a_new_series_may_miss_values_after_its_first_window(fitted):
    f = copy(fitted)
    c = daily(60, 5, level=30.0)
    c[40] = np.nan
    f.update(long({"c": c}))
    assert f.streams_.scaler.mean[2, 0] == pytest.approx(np.nanmean(c))  # its scale, from the values it has
    assert np.isfinite(rows_of(f.predict(), "c")).all()
