"""A global model over series of different scales: it shares weights, never scales."""
import numpy as np
import polars as pl
import pytest

from titans_ts.forecasting import TitansForecaster

TINY = dict(horizon=6, lookback=12, patch=4, d_model=8, n_layers=1, heads=2, chunk_size=4, max_epochs=2,
            batch_size=16, random_state=0, id_col="id")


def daily(n: int, seed: int) -> np.ndarray:
    """A noisy daily profile (hourly), mean 0 and spread about 1."""
    rng = np.random.default_rng(seed)
    return rng.standard_normal(24)[np.arange(n) % 24] + 0.2 * rng.standard_normal(n)


def long(parts: dict[str, np.ndarray]) -> pl.DataFrame:
    return pl.DataFrame({"id": [k for k, v in parts.items() for _ in v], "v": np.concatenate(list(parts.values()))})


@pytest.fixture(scope="module")
def mixed():
    """A series around 10 beside one around 50,000, both with a daily cycle; the last 48 rows held out."""
    small, big = 10 + daily(600, 0), 5e4 + 4e3 * daily(600, 1)
    f = TitansForecaster(**TINY).fit(long({"small": small[:552], "big": big[:552]}))
    return f, small, big


def test_a_series_rescaled_is_forecast_rescaled():
    x = daily(300, 2)
    f = TitansForecaster(**TINY).fit(long({"a": x, "b": 5000 * x + 3}))
    p = f.predict()
    a, b = (p.filter(pl.col("id") == k)["v"].to_numpy() for k in "ab")
    np.testing.assert_allclose(b, 5000 * a + 3, rtol=1e-5)
    lo, hi = f.predict_interval(0.8)
    np.testing.assert_allclose(hi.filter(pl.col("id") == "b")["v"].to_numpy(),
                               5000 * hi.filter(pl.col("id") == "a")["v"].to_numpy() + 3, rtol=1e-5)


def test_the_small_series_of_a_mixed_panel_is_forecast_in_its_own_units(mixed):
    f, small, big = mixed
    bt = f.backtest(long({"small": small[552:], "big": big[552:]}), stride=6)
    for key, v in (("small", small), ("big", big)):
        rows = bt.filter(pl.col("series") == key)
        fc, ac = np.array(rows["forecast"].to_list()), np.array(rows["actual"].to_list())
        smape = 200 * np.mean(np.abs(fc - ac) / (np.abs(fc) + np.abs(ac)))
        spread = np.std(v[:552])  # the error of a forecast that knows nothing of the cycle
        assert smape < 200 * 0.5 * spread / np.mean(v), key
        assert np.sqrt(rows["mse"].mean()) < 0.5 * spread, key


def test_per_series_scales_stream_save_and_split(mixed, tmp_path):
    f, small, big = mixed
    path = tmp_path / "mixed.titans"
    f.save(path)
    g = TitansForecaster.load(path)
    np.testing.assert_array_equal(g.streams_.scaler.mean, f.streams_.scaler.mean)
    train = 552 - int(552 * 0.2)  # the rows before the validation part
    assert g.streams_.scaler.mean[:, 0] == pytest.approx([np.mean(small[:train]), np.mean(big[:train])])
    part = g.streams_.subset(["big"])  # a task of the Dask paths: the series with its own scale
    assert part.scaler.std[:, 0] == pytest.approx([np.std(big[:train])])
    np.testing.assert_array_equal(g.predict()["v"].to_numpy(), f.predict()["v"].to_numpy())
