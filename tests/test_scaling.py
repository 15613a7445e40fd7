"""`detect_period`: the cycle found in training rows, and none where there is none."""
import numpy as np
import pytest

from titans_ts.forecasting.scaling import detect_period


@pytest.mark.parametrize("period", [7, 24, 96])
def test_a_cycle_under_a_random_walk_is_found(period):
    rng = np.random.default_rng(period)
    t = np.arange(40 * period)
    profile = rng.standard_normal(period)  # any shape, not only a sine
    y = profile[t % period][:, None] + 0.3 * rng.standard_normal((len(t), 2)).cumsum(0) / np.sqrt(period)
    assert detect_period([y]) == period


def test_the_fundamental_wins_over_its_multiples():
    t = np.arange(24 * 200)
    rng = np.random.default_rng(0)
    day, week = np.sin(2 * np.pi * t / 24), 0.5 * np.sin(2 * np.pi * t / 168)
    assert detect_period([(day + week)[:, None] + 0.2 * rng.standard_normal((len(t), 1))]) == 24


def test_noise_walks_and_short_series_have_no_period():
    rng = np.random.default_rng(1)
    for _ in range(5):
        assert detect_period([rng.standard_normal((3000, 3))]) is None
        assert detect_period([rng.standard_normal((3000, 3)).cumsum(0)]) is None
    assert detect_period([np.zeros((500, 2))]) is None  # constant channels carry no cycle
    assert detect_period([np.arange(8.0)[:, None]]) is None


def test_several_series_pool_their_evidence():
    rng = np.random.default_rng(2)
    t = np.arange(600)
    series = [np.sin(2 * np.pi * (t + s) / 12)[:, None] + 0.2 * rng.standard_normal((600, 1)) for s in range(4)]
    assert detect_period(series) == 12
