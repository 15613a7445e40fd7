"""TitansForecaster: estimator hygiene, input kinds, streaming updates, intervals, persistence, errors."""
import pickle

import numpy as np
import pandas as pd
import polars as pl
import pytest
import torch
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from titans_ts import TitansConfig
from titans_ts.forecasting import TitansForecaster

SMALL = dict(horizon=4, lookback=16, patch=4, d_model=16, n_layers=1, heads=2, chunk_size=4, max_epochs=2, lr=1e-2,
             batch_size=32, random_state=0)


def series(n=400, channels=2, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(n)[:, None]
    return np.sin(2 * np.pi * t / 24 + np.arange(channels)) + 0.1 * rng.standard_normal((n, channels))


@pytest.fixture(scope="module")
def fitted():
    return TitansForecaster(**SMALL).fit(series()[:300])


def test_sklearn_hygiene(fitted):
    f = TitansForecaster(**SMALL)
    assert f.get_params()["horizon"] == 4 and not hasattr(f, "net_")
    g = clone(f).set_params(horizon=6)
    assert g.horizon == 6 and f.horizon == 4
    with pytest.raises(NotFittedError):
        f.predict()
    with pytest.raises(NotFittedError):
        f.update(series(10))
    again = pickle.loads(pickle.dumps(fitted))
    np.testing.assert_array_equal(again.predict(), fitted.predict())


def test_learns_a_seasonal_series(fitted):
    y = series()
    bt = fitted.backtest(y[300:], start=0, stride=4)
    assert bt["mse"].mean() < 0.25 * y.var()  # a sine of variance 0.5 + noise: well below predicting the mean


def test_kinds_in_kinds_out():
    y = series(300, channels=1)[:, 0]
    f = TitansForecaster(**SMALL).fit(y)
    assert f.predict().shape == (4,)
    idx = pd.date_range("2024-01-01", periods=300, freq="h")
    fp = TitansForecaster(**SMALL).fit(pd.DataFrame({"load": y}, index=idx))
    out = fp.predict()
    assert isinstance(out, pd.DataFrame) and list(out.columns) == ["load"]
    assert out.index[0] == idx[-1] + pd.Timedelta(hours=1) and len(out) == 4
    frame = pl.DataFrame({"ts": idx.to_numpy(), "load": y})
    fl = TitansForecaster(**SMALL).fit(frame)
    out = fl.predict()
    assert isinstance(out, pl.DataFrame) and out.columns == ["ts", "load"]
    assert out["ts"][0] == frame["ts"][-1] + pd.Timedelta(hours=1)
    np.testing.assert_allclose(out["load"].to_numpy(), fp.predict()["load"].to_numpy(), atol=1e-6)
    # quantiles: numpy (levels, horizon, columns); pandas (column, quantile) columns; polars <column>_q<level>
    assert f.predict_quantiles([0.1, 0.9]).shape == (2, 4, 1)
    qp = fp.predict_quantiles([0.1, 0.5, 0.9])
    assert list(qp.columns) == [("load", 0.1), ("load", 0.5), ("load", 0.9)]
    assert qp.columns.names == [None, "quantile"] and qp.index.equals(fp.predict().index)
    np.testing.assert_allclose(qp[("load", 0.9)].to_numpy(), fp.predict_interval(0.8)[1]["load"].to_numpy())
    ql = fl.predict_quantiles([0.1, 0.9])
    assert ql.columns == ["ts", "load_q0.1", "load_q0.9"] and ql["ts"].equals(out["ts"])
    np.testing.assert_allclose(ql["load_q0.1"].to_numpy(), fl.predict_interval(0.8)[0]["load"].to_numpy())


def updated_whole_and_in_pieces(fitted, y, cuts):
    """Two copies of `fitted`: one updated with y[cuts[0]:cuts[-1]] at once, one piece by piece; their
    forecasts must agree."""
    whole, pieces = pickle.loads(pickle.dumps(fitted)), pickle.loads(pickle.dumps(fitted))
    whole.update(y[cuts[0]:cuts[-1]])
    for lo, hi in zip(cuts, cuts[1:]):
        pieces.update(y[lo:hi])
    np.testing.assert_allclose(whole.predict(), pieces.predict(), atol=1e-5)
    return whole


def test_update_in_pieces_equals_one_update(fitted):
    updated_whole_and_in_pieces(fitted, series(), [300, 301, 308, 340])


def test_memorize_false_freezes_the_memory_but_moves_the_context(fitted):
    f = pickle.loads(pickle.dumps(fitted))
    before = {k: v.clone() for k, v in f.streams_.memory(None).items()}
    f.update(series()[300:340], memorize=False)
    after = f.streams_.memory(None)
    weights = [k for k in before if ".memory.w." in k]
    assert weights and all(torch.equal(before[k], after[k]) for k in weights)
    assert not np.allclose(f.predict(), fitted.predict())
    g = pickle.loads(pickle.dumps(fitted)).update(series()[300:340])
    assert not all(torch.equal(before[k], g.streams_.memory(None)[k]) for k in weights)


def test_backtest_matches_update_then_predict(fitted):
    y = series()
    bt = fitted.backtest(y[300:], start=0, stride=8)
    assert bt.columns[:3] == ["series", "origin", "channel"] and len(bt) == 2 * len(range(0, 97, 8))
    f = pickle.loads(pickle.dumps(fitted)).update(y[300:316])
    row = bt.filter((pl.col("origin") == 16) & (pl.col("channel") == "1"))
    np.testing.assert_allclose(row["forecast"][0].to_numpy(), f.predict()[:, 1], atol=1e-5)
    np.testing.assert_allclose(row["actual"][0].to_numpy(), y[316:320, 1])
    assert np.isclose(row["mse"][0], np.mean((f.predict()[:, 1] - y[316:320, 1]) ** 2), atol=1e-6)


def test_quantiles_and_interval(fitted):
    qs = fitted.predict_quantiles([0.1, 0.5, 0.9])
    assert qs.shape == (3, 4, 2)
    assert (qs[0] <= qs[1]).all() and (qs[1] <= qs[2]).all()
    lo, hi = fitted.predict_interval(0.8)
    assert (hi - lo > 0).all()
    np.testing.assert_allclose(qs[[0, 2]], np.stack([lo, hi]), atol=1e-12)
    with pytest.raises(ValueError, match="coverage"):
        fitted.predict_interval(1.5)
    with pytest.raises(ValueError, match="outside the calibrated range"):
        fitted.predict_quantiles([0.001])
    for bad, err, pattern in [([1.5], ValueError, r"must lie in \(0, 1\), got 1.5"), ([0.0], ValueError, "got 0.0"),
                              ([float("nan")], ValueError, "got nan"), ([], ValueError, "no level"),
                              (["0.5"], TypeError, "must be numbers"), (0.5, TypeError, "a sequence of levels")]:
        with pytest.raises(err, match=pattern):
            fitted.predict_quantiles(bad)


def test_interval_coverage_on_held_out_data():
    y = series(900, channels=1, seed=3)
    f = TitansForecaster(**dict(SMALL, max_epochs=3)).fit(y[:600])
    covered = []
    for o in range(0, 290, 4):
        lo, hi = f.predict_interval(0.8)
        truth = y[600 + o: 604 + o]
        covered.append(((lo <= truth) & (truth <= hi)).mean())
        f.update(y[600 + o: 604 + o])
    assert 0.65 <= np.mean(covered) <= 0.95


def test_save_load_predicts_and_continues_identically(fitted, tmp_path):
    fitted.save(tmp_path / "f.titans")
    g = TitansForecaster.load(tmp_path / "f.titans")
    f = pickle.loads(pickle.dumps(fitted))
    np.testing.assert_array_equal(g.predict(), f.predict())
    y = series()
    for lo, hi in [(300, 305), (305, 330)]:
        f.update(y[lo:hi])
        g.update(y[lo:hi])
        np.testing.assert_array_equal(g.predict(), f.predict())
    assert g.get_params() == f.get_params()


def test_failed_update_changes_nothing(fitted):
    f = pickle.loads(pickle.dumps(fitted))
    before = f.predict()
    bad = series()[300:310].copy()
    bad[5, 1] = np.inf  # a missing value (NaN) is a gap the stream goes on through; infinity is an error
    with pytest.raises(ValueError, match=r"column '1' holds inf at row 5"):
        f.update(bad)
    with pytest.raises(ValueError, match="columns"):
        f.update(series(10, channels=3))
    np.testing.assert_array_equal(f.predict(), before)
    assert f.streams_.seen[0] == 300


def test_update_must_continue_the_time_stamps():
    idx = pd.date_range("2024-01-01", periods=330, freq="h")
    y = pd.DataFrame({"a": series(330, 1)[:, 0]}, index=idx)
    f = TitansForecaster(**SMALL).fit(y.iloc[:300])
    with pytest.raises(ValueError, match="does not continue the fitted series: expected first time stamp"):
        f.update(y.iloc[301:310])
    with pytest.raises(ValueError, match="y does not continue the fitted series"):  # scoring checks the same
        f.surprise(y.iloc[301:310])
    f.update(y.iloc[300:310])
    assert f.predict().index[0] == idx[310]


@pytest.mark.parametrize("bad,pattern", [
    (np.ones((10, 2)), r"y has 10 rows; fit needs at least lookback \+ horizon \+ 1 = 21"),
    (np.full((50, 1), np.inf), "holds inf at row 0"),
    (np.ones((50, 2, 2)), "1-D"),
    (pl.DataFrame({"a": ["x"] * 50}), "column 'a' is not numeric"),
    ("abc", "numpy array, pandas or polars"),
])
def test_bad_fit_input(bad, pattern):
    with pytest.raises((ValueError, TypeError), match=pattern):
        TitansForecaster(**SMALL).fit(bad)


def test_bad_parameters_name_the_field():
    with pytest.raises(ValueError, match="TitansForecaster.horizon"):
        TitansForecaster(horizon=0).fit(series())
    with pytest.raises(ValueError, match="TitansConfig.variant"):
        TitansForecaster(**dict(SMALL, variant="xl")).fit(series())
    for name in ("segment_length", "memory_retention"):
        for bad in (1, 2.5, True):
            with pytest.raises(ValueError, match=f"TitansForecaster.{name} must be None or an integer >= 2"):
                TitansForecaster(**dict(SMALL, **{name: bad})).fit(series())


def test_a_window_shorter_than_the_patch_is_one_token():
    """The default patch (16 values) on a 6-step window: each token holds the whole window."""
    f = TitansForecaster(**dict(SMALL, lookback=6, patch=16, max_epochs=1)).fit(series(200))
    assert f.net_.patch == 6 and f.get_params()["patch"] == 16
    assert f.predict().shape == (4, 2)


def test_memory_retention_starts_the_forgetting_gate():
    """α_t starts at 1 / memory_retention in every layer's memory, forgetting towards M_0; None keeps the
    encoder's defaults (σ(−8), towards zero)."""
    for retention, alpha, toward in ((None, TitansConfig().alpha_init, "zero"), (50, 1 / 50, "initial")):
        net = TitansForecaster(**dict(SMALL, n_layers=2, memory_retention=retention))._net(1)
        for layer in net.encoder.layers:
            heads = layer.memory.heads
            assert layer.memory.forget_toward == toward
            torch.testing.assert_close(torch.sigmoid(layer.memory.to_gates.bias[2 * heads:]),
                                       torch.full((heads,), alpha))


def test_panel_long_format():
    y = series(300, channels=2)
    long = pl.DataFrame({"id": ["a"] * 300 + ["b"] * 300,
                         "t": np.tile(pd.date_range("2024", periods=300, freq="D").to_numpy(), 2),
                         "v": np.concatenate([y[:, 0], y[:, 1]])})
    f = TitansForecaster(**dict(SMALL, id_col="id")).fit(long)
    out = f.predict()
    assert out.columns == ["id", "t", "v"] and out["id"].to_list() == ["a"] * 4 + ["b"] * 4
    nxt = pl.DataFrame({"id": ["b"], "t": [long["t"][-1] + pd.Timedelta(days=1)], "v": [0.5]})
    f.update(nxt)
    assert f.streams_.seen.tolist() == [300, 301]


def test_surprise_frame_is_aligned_and_spikes_on_an_anomaly(fitted):
    y = series()[300:360].copy()
    y[30, 0] += 8.0  # a spike the memory cannot have expected
    frame = fitted.surprise(y)
    assert frame.columns == ["step", "0", "1", "0_past", "1_past", "0_error", "1_error"]
    assert frame["step"].to_list() == list(range(300, 360))
    s = frame["0"].to_numpy()
    assert s[30] > 3 * np.median(s)
    past = frame["0_past"].to_numpy()
    assert (past >= 0).all() and np.isfinite(past).all()
    # the error column is the miss of the forecast made one step before: the backtest's, at horizon step 1
    bt = fitted.backtest(y, start=0, stride=1).filter(pl.col("channel") == "1")
    first = np.array([f[0] for f in bt["forecast"].to_list()])
    np.testing.assert_allclose(frame["1_error"].to_numpy()[: len(first)], y[: len(first), 1] - first, atol=1e-9)
    assert fitted.streams_.seen[0] == 300  # the forecaster did not move


def test_lanes_stream_each_part_once_in_order_in_groups():
    from titans_ts.forecasting.segments import lane_batches

    spans = [(2, 12, 2, 7), (2, 12, 2, 7), (0, 8, 0, 3)]  # two lanes of one series, one of another
    lanes = [(0, 0), (0, 1), (1, 0)]
    keys = ["a", "a", "b"]
    items, batches = lane_batches(spans, 4, lanes, keys, group_size=8)
    assert [[items[k][:4] for k in b] for b in batches] == [
        [(0, 0, 2, 6), (0, 1, 2, 6)], [(0, 0, 6, 10), (0, 1, 6, 10)], [(0, 0, 10, 12), (0, 1, 10, 12)],
        [(1, 0, 0, 4)], [(1, 0, 4, 8)]]
    assert [items[b[0]][-2:] for b in batches] == [(0, True), (0, False), (0, False), (1, True), (1, False)]
    _, small = lane_batches(spans, 4, lanes, keys, group_size=1)  # a group never mixes series lengths
    assert len(small) == 3 + 3 + 2


def test_carried_memory_training_continues_each_lane_where_its_last_segment_ended():
    from titans_ts.forecasting.losses import Carried, forecast_loss
    net = TitansForecaster(**SMALL)._net(1).train()  # dropout 0: training mode is deterministic
    torch.manual_seed(0)
    with torch.no_grad():
        net.head.weight.normal_(0, 0.3)  # zero at the start of training: the encoder would not show
    y, H, ctx_len = torch.randn(1, 16, 1), SMALL["horizon"], net.context_length
    target, mask = torch.randn(1, 16, 1, H), torch.ones(1, 16)
    ctx = torch.full((1, ctx_len, 1), float("nan"))
    group, first, later = torch.zeros(1, dtype=torch.long), torch.ones(1, dtype=torch.bool), torch.zeros(1, dtype=torch.bool)
    step = Carried()
    with torch.no_grad():
        step(net, (y[:, :8], ctx, target[:, :8], mask[:, :8], group, first))
        ctx2 = torch.cat([ctx, y[:, :8]], 1)[:, -ctx_len:]
        second = step(net, (y[:, 8:], ctx2, target[:, 8:], mask[:, 8:], group, later))
        point, quant, _ = net(y, ctx)  # the lane as one stream
        whole = forecast_loss(net, point[:, 8:], quant[:, 8:], target[:, 8:], mask[:, 8:])
        fresh = step(net, (y[:, 8:], ctx2, target[:, 8:], mask[:, 8:], group, first))
    torch.testing.assert_close(second, whole)  # truncated BPTT: the second segment met the first's memory
    assert not torch.allclose(fresh, whole)  # a lane's first segment starts from a fresh memory


def test_carried_memory_streams_unscored_lane_tails_without_a_step():
    # segments as long as the horizon: the last training segment of every lane holds no step whose whole
    # future is known; it only carries the memory on (a 0/0 loss there once turned the weights to NaN)
    f = TitansForecaster(**dict(SMALL, max_epochs=2, carry_memory=True, segment_length=4)).fit(series(300))
    assert np.isfinite(f.predict()).all() and np.isfinite(f.best_loss_)
    assert all(torch.isfinite(p).all() for p in f.net_.parameters())


def test_recall_memory_streams_restores_and_freezes_exactly(tmp_path):
    y = series()
    f = TitansForecaster(**dict(SMALL, recall=True)).fit(y[:300])
    assert f.net_.context_length == SMALL["lookback"] - 1 + SMALL["horizon"]
    a, b = pickle.loads(pickle.dumps(f)), pickle.loads(pickle.dumps(f))
    a.update(y[300:340])
    for lo, hi in [(300, 301), (301, 308), (308, 340)]:
        b.update(y[lo:hi])
    np.testing.assert_allclose(a.predict(), b.predict(), atol=1e-5)
    f.save(tmp_path / "f.titans")
    g = TitansForecaster.load(tmp_path / "f.titans")
    g.update(y[300:340])
    np.testing.assert_array_equal(g.predict(), a.predict())
    before = f.streams_.memory(None)
    frozen = pickle.loads(pickle.dumps(f)).update(y[300:340], memorize=False).streams_.memory(None)
    weights = [k for k in before if k.startswith("recall.w.")]
    assert weights and all(torch.equal(before[k], frozen[k]) for k in weights)
    assert not all(torch.equal(before[k], a.streams_.memory(None)[k]) for k in weights)


def test_a_recall_file_from_before_the_learnt_keys_loads_as_such_a_model(tmp_path):
    """Files written before the recall keys had a learnt part lack its weight and the kept encoder outputs;
    they load as that model: the learnt part at zero."""
    from titans_ts.forecasting.persist import KIND
    from titans_ts.io import load_bundle, save_bundle

    y = series()
    f = TitansForecaster(**dict(SMALL, recall=True, max_epochs=1)).fit(y[:300])
    with torch.no_grad():
        f.net_.recall.context.weight.zero_()
    f.save(tmp_path / "now.titans")
    tensors, meta = load_bundle(tmp_path / "now.titans", KIND)
    old = {k: v for k, v in tensors.items() if not k.endswith(("recall.context.weight", ".mem.context"))}
    assert len(old) == len(tensors) - 2
    save_bundle(tmp_path / "before.titans", old, meta, KIND)
    a, b = TitansForecaster.load(tmp_path / "now.titans"), TitansForecaster.load(tmp_path / "before.titans")
    for g in (a, b):
        g.update(y[300:340])
    np.testing.assert_array_equal(b.predict(), a.predict())


def test_recall_memory_is_causal_and_writes_only_known_pairs():
    torch.manual_seed(0)
    net = TitansForecaster(**dict(SMALL, recall=True))._net(1).double()
    with torch.no_grad():  # the key's learnt part (zero at the start) in use
        net.recall.context.weight.normal_()
    L, H = SMALL["lookback"], SMALL["horizon"]
    y = torch.randn(2, 60, 1, dtype=torch.float64)
    ctx = net.initial_context(2, torch.float64)
    point, _, state = net(y, ctx)
    first, _, mid = net(y[:, :33], ctx)  # in two pieces: the second continues from the kept encoder outputs
    second, _, _ = net(y[:, 33:], torch.cat([ctx, y[:, :33]], 1)[:, -net.context_length:], mid)
    torch.testing.assert_close(torch.cat([first, second], 1), point)
    changed = y.clone()
    changed[:, 40] += 1.0
    point2, _, _ = net(changed, ctx)
    assert torch.equal(point[:, :40], point2[:, :40]) and not torch.allclose(point[:, 40], point2[:, 40])
    # from a fresh stream the first pair (a whole window and the horizon after it) is known at step L + H − 1:
    # no surprise enters the recall memory before it (zero momentum), and it does after
    _, _, early = net(y[:, : L + H - 1], ctx)
    assert early["recall.buf.k"].shape[2] < L + H - 1  # complete chunks were committed
    momentum = [k for k in state if k.startswith("recall.s.")]
    assert momentum and all(not early[k].any() for k in momentum)
    assert all(state[k].abs().sum() > 0 for k in momentum)


def test_recall_remembers_the_forecasts_it_will_learn_from():
    """The state keeps the last `horizon` forecasts made before recall: those a write compares with the values."""
    torch.manual_seed(0)
    net = TitansForecaster(**dict(SMALL, recall=True))._net(1).double()
    with torch.no_grad():
        net.recall.gain.zero_()  # the recall adds nothing: the output is the forecast before recall
    y = torch.randn(2, 50, 1, dtype=torch.float64)
    point, _, state = net(y, net.initial_context(2, torch.float64))
    torch.testing.assert_close(state["made"], point[:, -SMALL["horizon"]:], atol=0, rtol=0)
    _, _, short = net(y[:, :3], net.initial_context(2, torch.float64))  # fewer steps than the horizon
    assert torch.isnan(short["made"][:, : SMALL["horizon"] - 3]).all() and not torch.isnan(short["made"][:, -3:]).any()


def daily(n=600, channels=2, seed=0, noise=0.1):
    """A daily profile that is not a sine (random per channel), a level per channel, and noise."""
    rng = np.random.default_rng(seed)
    profile = rng.standard_normal((24, channels))
    return 5 + profile[np.arange(n) % 24] + noise * rng.standard_normal((n, channels))


def test_scaler_takes_the_cycle_off_and_puts_it_back():
    from titans_ts.forecasting.scaling import Scaler
    y = daily(noise=0.0)
    sc = Scaler.fit([y[:480], y[:240]], period=24)[0]  # two series, both starting at phase 0
    np.testing.assert_allclose(sc.cycle.mean(0), 0, atol=1e-12)
    np.testing.assert_allclose(sc.scale(y[100:150], first=100).numpy(), 0, atol=1e-5)  # nothing but the cycle
    windows = np.stack([y[o: o + 30] for o in (3, 50, 77)])
    z = sc.scale(windows, first=np.array([3, 50, 77])).double().numpy()
    np.testing.assert_allclose(sc.unscale(z, first=np.array([3, 50, 77])), windows, atol=1e-5)
    np.testing.assert_allclose(sc.unscale(z, first=np.array([27, 74, 101])), windows, atol=1e-5)  # a period on
    assert Scaler.fit([y], None).cycle is None


def test_every_series_has_its_own_scale_and_cycle():
    from titans_ts.forecasting.scaling import Scaler
    y = daily(noise=0.0)
    big = 5e4 + 3e3 * daily(noise=0.0, seed=1)  # another profile, on another scale
    both = Scaler.fit([y[:240], big[:480]], period=24)
    for i, v in enumerate((y, big)):  # each series alone is read as it would be in a panel of its own
        own = Scaler.fit([v[:240 * (i + 1)]], period=24)[0]
        np.testing.assert_allclose(both[i].scale(v[100:150], first=100), own.scale(v[100:150], first=100), atol=1e-6)
        np.testing.assert_allclose(both[i].scale(v[100:150], first=100).numpy(), 0, atol=1e-5)  # the cycle alone
    # stacked: the leading axis is the series, each read with its own statistics and from its own position
    z = np.random.default_rng(0).standard_normal((2, 5, 2))
    first = np.array([7, 30])
    stacked = both.unscale(z, first)
    for i in range(2):
        np.testing.assert_allclose(stacked[i], both[i].unscale(z[i], first[i]))
        np.testing.assert_allclose(both.scale(stacked, first)[i], both[i].scale(stacked[i], first[i]))
    assert len(both[[1]].mean) == 1 and both[[1]].cycle.shape == (1, 24, 2)
    with pytest.raises(ValueError, match="period 24 is longer than a training series"):
        Scaler.fit([y[:20]], 24)


@pytest.fixture(scope="module")
def fitted_daily():
    return TitansForecaster(**dict(SMALL, lookback=24, period=24)).fit(daily()[:400])


def test_period_forecasts_a_cycle_longer_than_the_window():
    y = daily()
    errors = [TitansForecaster(**dict(SMALL, period=p, recall=False)).fit(y[:400])
              .backtest(y[400:], start=0, stride=4)["mse"].mean() for p in (24, None)]
    # lookback 16 < period 24: with the cycle taken off only the noise (variance 0.01) is left to forecast;
    # without (and without the recall memory, which would learn the cycle back), a window never shows its phase
    assert errors[0] < 0.03 < 0.1 < errors[1]


def test_period_streams_backtests_and_saves_consistently(fitted_daily, tmp_path):
    y = daily()
    a = updated_whole_and_in_pieces(fitted_daily, y, [400, 401, 409, 437])
    bt = fitted_daily.backtest(y[400:], start=0, stride=37)
    row = bt.filter((pl.col("origin") == 37) & (pl.col("channel") == "0"))
    np.testing.assert_allclose(row["forecast"][0].to_numpy(), a.predict()[:, 0], atol=1e-5)
    a.save(tmp_path / "d.titans")
    g = TitansForecaster.load(tmp_path / "d.titans")
    np.testing.assert_array_equal(g.streams_.scaler.cycle, a.streams_.scaler.cycle)
    np.testing.assert_array_equal(g.predict(), a.predict())
    qs = g.predict_quantiles([0.1, 0.9])
    assert (qs[0] < a.predict()).all() and (a.predict() < qs[1]).all()


def test_period_windows_need_their_positions(fitted_daily):
    y = daily()
    w = np.stack([y[o: o + 24] for o in (400, 413)])
    with pytest.raises(ValueError, match="needs `first`"):
        fitted_daily.forecast_windows(w)
    with pytest.raises(ValueError, match="one integer position per window"):
        fitted_daily.forecast_windows(w, first=[400])
    out = fitted_daily.forecast_windows(w, first=[400, 413])
    assert np.mean((out[1] - y[437:441]) ** 2) < 0.05
    with pytest.raises(ValueError, match="TitansForecaster.period"):
        TitansForecaster(**dict(SMALL, period=1)).fit(y)


def test_long_horizons_score_every_kth_step_of_a_segment():
    from titans_ts.forecasting.losses import forecast_loss, segment_loss
    f = TitansForecaster(**dict(SMALL, horizon=40, max_epochs=1, recall=False)).fit(series())  # k = ⌈40 / 16⌉ = 3
    net = f.net_.eval()
    torch.manual_seed(0)
    x, ctx = torch.randn(2, 32, 1), torch.randn(2, net.context_length, 1)
    target, mask = torch.randn(2, 32, 1, 40), (torch.rand(2, 32) > 0.3).float()
    point, quant, _ = net(x, ctx)
    at = torch.arange(0, 32, 3)
    p_at, q_at, _ = net(x, ctx, at=at)
    torch.testing.assert_close(p_at, point[:, at])
    torch.testing.assert_close(q_at, quant[:, at])
    expected = forecast_loss(net, point[:, at], quant[:, at], target[:, at], mask[:, at])
    torch.testing.assert_close(segment_loss(net, (x, ctx, target, mask, None, None)), expected)


def test_linear_branch_starts_at_the_ridge_fit_of_mean_free_windows():
    from sklearn.linear_model import Ridge

    from titans_ts.forecasting.ridge import linear_start
    v = torch.tensor(np.cumsum(np.random.default_rng(0).standard_normal((300, 2)), 0))
    net = TitansForecaster(**SMALL)._net(2)
    linear_start(net, [v], [300], alphas=(3.0,))
    w = np.lib.stride_tricks.sliding_window_view(v.numpy(), 20, axis=0)  # (N, C, 16 + 4)
    x, y = w[..., :16].reshape(-1, 16), w[..., 16:].reshape(-1, 4)
    mu = x.mean(1, keepdims=True)
    ridge = Ridge(alpha=3.0, fit_intercept=False).fit(x - mu, y - mu)
    np.testing.assert_allclose(net.linear.weight.detach().numpy(), ridge.coef_, atol=1e-6)
    # the penalty is the one whose fit does best on the windows after the cut
    linear_start(net, [v], [200], alphas=(1e-3, 1e6))
    assert net.linear.weight.abs().max() > 1e-2  # a penalty of 1e6 would shrink the map to about zero


def test_linear_branch_stays_at_the_ridge_fit_unless_trained():
    from titans_ts.forecasting.ridge import linear_start
    y = series()
    f = TitansForecaster(**dict(SMALL, linear="ridge")).fit(y)
    start = TitansForecaster(**SMALL)._net(1)
    linear_start(start, [f.streams_.scaler[0].scale(y)], [len(y) - int(len(y) * 0.2)])  # the default val_fraction
    torch.testing.assert_close(f.net_.linear.weight, start.linear.weight)
    g = TitansForecaster(**SMALL).fit(y)  # linear="trained"
    assert not torch.allclose(g.net_.linear.weight, start.linear.weight)
    with pytest.raises(ValueError, match="TitansForecaster.linear must be one of"):
        TitansForecaster(**dict(SMALL, linear="naive")).fit(y)
    # a training part shorter than one window and its future keeps the naive start (the last value)
    short = TitansForecaster(**dict(SMALL, val_fraction=0.5, linear="ridge")).fit(series(30))
    expected = torch.zeros(SMALL["horizon"], SMALL["lookback"])
    expected[:, -1] = 1
    torch.testing.assert_close(short.net_.linear.weight, expected)
