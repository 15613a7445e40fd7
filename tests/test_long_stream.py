"""A stream that runs for months: a million observations through `update` in batches of any size keep
resident memory flat after warm-up and every forecast finite (slow: run with -m slow)."""
import resource
import time

import numpy as np
import pytest

from titans_ts.forecasting import TitansForecaster

N_STEPS = 1_000_000


def rss_mib() -> float:
    with open("/proc/self/status") as fh:
        line = next(x for x in fh if x.startswith("VmRSS:"))
    return int(line.split()[1]) / 1024


@pytest.mark.slow
def test_million_observations_flat_memory_finite_forecasts():
    rng = np.random.default_rng(0)
    channels = 3
    t = np.arange(2000)[:, None]
    f = TitansForecaster(horizon=24, lookback=96, max_epochs=1, random_state=0).fit(
        np.sin(2 * np.pi * t / 24 + np.arange(channels)) + 0.1 * rng.standard_normal((2000, channels)))
    seen, start, samples = 0, time.perf_counter(), []
    while seen < N_STEPS:
        n = int(min(rng.choice([1, 7, 64, 500, 4096]), N_STEPS - seen))
        tt = np.arange(seen, seen + n)[:, None]
        f.update(np.sin(2 * np.pi * tt / 24 + np.arange(channels)) + 0.1 * rng.standard_normal((n, channels)))
        seen += n
        if len(samples) < 1 or seen // 50_000 > (seen - n) // 50_000:
            assert np.isfinite(f.predict()).all()
            samples.append(rss_mib())
    seconds = time.perf_counter() - start
    warm = samples[2:]
    print(f"{N_STEPS:,} observations x {channels} channels in {seconds:.0f} s "
          f"({N_STEPS / seconds:,.0f} steps/s); RSS after warm-up {min(warm):.0f}-{max(warm):.0f} MiB, "
          f"peak {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")
    assert max(warm) - min(warm) < 64  # flat: no growth with the number of updates
    assert f.streams_[None]["seen"] == 2000 + N_STEPS
