"""Missing values in `update`: a step no memory learns from, forecasts that go on, errors that stay put."""
import pickle

import numpy as np
import polars as pl
import pytest

from titans_ts.forecasting import TitansForecaster


def daily(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    return 5 + rng.standard_normal((24, 2))[t % 24] + 0.3 * np.sin(t / 200)[:, None] + 0.2 * rng.standard_normal((n, 2))


@pytest.fixture(scope="module")
def fitted():
    return TitansForecaster(horizon=6, lookback=24, d_model=16, n_layers=1, heads=2, max_epochs=2,
                            random_state=0).fit(daily(800))


def online_error(f: TitansForecaster, y: np.ndarray, shown: np.ndarray) -> float:
    """Mean squared error of every forecast over y's rows (all of them scored), streaming `shown`."""
    g, errors = pickle.loads(pickle.dumps(f)), []
    for o in range(0, len(y) - 6, 6):
        errors.append((g.predict() - y[o: o + 6]) ** 2)
        g.update(shown[o: o + 6])
    assert np.isfinite(g.predict()).all()
    return float(np.mean(errors))


def test_a_fifth_of_the_readings_missing_costs_little(fitted):
    y = daily(1400)[800:]
    shown = np.where(np.random.default_rng(1).random(y.shape) < 0.2, np.nan, y)
    complete, gappy = online_error(fitted, y, y), online_error(fitted, y, shown)
    assert gappy < 1.1 * complete


def test_a_missing_step_is_read_and_never_written(fitted):
    f = pickle.loads(pickle.dumps(fitted))
    writes = []
    forward = f.net_.encoder.forward
    f.net_.encoder.forward = lambda x, state, memorize: writes.append(memorize) or forward(x, state, memorize)
    rows = daily(805)[800:]
    rows[2, 1] = np.nan  # channel 1's lane misses step 2
    f.update(rows)
    (mask,) = writes
    expected = np.ones((2, 5))
    expected[1, 2] = 0
    np.testing.assert_array_equal(mask.numpy(), expected)
    f.update(daily(806)[805:])  # complete rows: every step written, as before any gap
    assert writes[-1] is True
    assert f.streams_.seen[0] == 806 and np.isfinite(f.predict()).all()


def test_gaps_in_a_frame_and_what_stays_an_error(fitted):
    f = pickle.loads(pickle.dumps(fitted))
    before = f.streams_
    with pytest.raises(ValueError, match=r"y_new: column '0' holds inf at row 3: values must be finite or missing"):
        f.update(np.where(np.arange(10)[:, None] == 3, np.inf, daily(810)[800:]))
    assert f.streams_ is before
    with pytest.raises(ValueError, match="values must be finite .fill or drop missing values first"):
        TitansForecaster(horizon=6, lookback=24).fit(np.where(np.arange(100)[:, None] == 5, np.nan, daily(100)))
    p = TitansForecaster(horizon=6, lookback=24, d_model=8, n_layers=1, heads=2, max_epochs=1, random_state=0,
                         id_col="id").fit(pl.DataFrame({"id": ["a"] * 300, "v": daily(300)[:, 0]}))
    p.update(pl.DataFrame({"id": ["a", "a"], "v": [None, 5.0]}))  # a null in a frame is a missing value
    assert p.streams_.seen.tolist() == [302] and np.isfinite(p.predict()["v"].to_numpy()).all()
    with pytest.raises(ValueError, match="the new series 'b' misses values in its first 24 rows"):
        p.update(pl.DataFrame({"id": ["b"] * 30, "v": [1.0, None] + [2.0] * 28}))


def test_backtest_streams_gaps_and_scores_what_was_observed(fitted):
    y = daily(830)[800:].copy()
    y[3:10, 0] = np.nan  # channel 0 misses a whole horizon from origin 3 (steps 3 … 8) and a bit more
    bt = fitted.backtest(y, stride=3)
    row = lambda o, c: bt.filter((pl.col("origin") == o) & (pl.col("channel") == c))  # noqa: E731
    assert np.isnan(row(3, "0")["mse"][0]) and np.isfinite(row(3, "1")["mse"][0])
    f, a = np.array(row(6, "0")["forecast"][0]), np.array(row(6, "0")["actual"][0])
    assert row(6, "0")["mse"][0] == pytest.approx(np.mean((f - a)[4:] ** 2))  # steps 10, 11 observed
    g = pickle.loads(pickle.dumps(fitted))
    g.update(y[:6])
    np.testing.assert_allclose(f, g.predict()[:, 0], atol=1e-5)  # the forecast after streaming the gap


def test_a_window_carries_the_last_value_seen_over_a_gap(fitted):
    import torch

    net = fitted.net_
    y = torch.arange(1.0, 25.0).reshape(1, 24, 1)
    whole = net.windows(net.initial_context(1, torch.float32), y)[0][0, -1, 0]  # the window ending at step 23
    gappy = y.clone()
    gappy[0, [0, 5, 6, 23]] = float("nan")  # its first value, two in the middle and the last
    win, level, scale, _ = net.windows(net.initial_context(1, torch.float32), gappy)
    seen = [v for i, v in enumerate(range(1, 25)) if i not in (0, 5, 6, 23)]
    assert level[0, -1, 0] == pytest.approx(np.mean(seen))  # level and spread of the values seen
    assert scale[0, -1, 0] == pytest.approx(np.sqrt(np.var(seen) + 1e-5), rel=1e-5)
    expected = (torch.tensor([np.nan, 2, 3, 4, 5, 5, 5, *range(8, 24), 23.0]) - level[0, -1, 0]) / scale[0, -1, 0]
    expected[0] = 0  # before any value seen: the level
    torch.testing.assert_close(win[0, -1, 0], expected)
    assert not torch.equal(whole, win[0, -1, 0])


def test_the_recall_memory_writes_the_share_of_a_future_that_arrived():
    import torch

    f = TitansForecaster(horizon=4, lookback=8, d_model=8, n_layers=1, heads=2, max_epochs=1, recall=True,
                         period=None, random_state=0).fit(daily(200)[:, :1])
    net, weights = f.net_, []
    forward = net.recall.forward
    net.recall.forward = lambda *a: weights.append(a[5]) or forward(*a)
    y = torch.randn(1, 30, 1)
    y[0, 20] = float("nan")
    net(y, net.initial_context(1, torch.float32))
    w = weights[0][0]
    # step t writes the pair (window ending at t − 4, values t − 3 … t): none before the window lies in the
    # stream (t − 4 − 7 ≥ 0), 3/4 where step 20 is among its values, 1 elsewhere
    expected = torch.ones(30)
    expected[:11] = 0
    expected[20:24] = 0.75
    torch.testing.assert_close(w, expected)
