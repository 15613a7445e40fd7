"""A stream that runs for months: a million observations through `update` in batches of any size keep
resident memory from growing after warm-up and every forecast finite (slow: run with -m slow)."""
import pytest

from titans_ts.forecasting.benchmark import long_stream


@pytest.mark.slow
def test_million_observations_flat_memory_finite_forecasts():
    row, = long_stream({"random_state": 0}, n_steps=1_000_000)
    assert row["finite"] and row["seen"] == 2000 + 1_000_000
    # no growth with the number of updates: the allocator's caches make RSS step between a few levels
    # (about 60-110 MiB apart, also before the memory update changed), but the second half of the stream
    # reaches no higher than the first
    rss = row["rss_mib"]
    assert max(rss[len(rss) // 2:]) <= max(rss[: len(rss) // 2]) + 16


def test_long_stream_protocol_reports_throughput_and_memory():
    row, = long_stream({"random_state": 0, "d_model": 16, "n_layers": 1}, n_steps=20_000, channels=2)
    assert row["finite"] and row["seen"] == 2000 + 20_000 and row["steps_per_s"] > 0
    assert 0 < row["rss_mib_min"] <= row["rss_mib_max"]
