"""Restart without loss: atomic saves survive SIGKILL, a loaded forecaster continues bit for bit in a fresh
process, and the same seed gives the same predictions in two fresh processes."""
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np

from titans_ts.forecasting import TitansForecaster

SMALL = "dict(horizon=4, lookback=16, patch=4, d_model=16, n_layers=1, heads=2, chunk_size=4, max_epochs=1, lr=1e-2, random_state=0)"
SERIES = "np.sin(np.arange(400)[:, None] / 5 + np.arange(2)) + 0.1 * np.random.default_rng(1).standard_normal((400, 2))"


def python(code: str, cwd) -> str:
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=cwd, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def test_same_seed_same_predictions_in_two_fresh_processes(tmp_path):
    code = f"""
        import numpy as np
        from titans_ts.forecasting import TitansForecaster
        y = {SERIES}
        f = TitansForecaster(**{SMALL}).fit(y[:300])
        f.update(y[300:320])
        print(f.predict().tobytes().hex())
    """
    assert python(code, tmp_path) == python(code, tmp_path)


def test_loaded_forecaster_continues_bitwise_in_a_fresh_process(tmp_path):
    python(f"""
        import numpy as np
        from titans_ts.forecasting import TitansForecaster
        y = {SERIES}
        f = TitansForecaster(**{SMALL}).fit(y[:300])
        f.update(y[300:313])
        f.save("f.titans")
        out = [f.predict()]
        for lo, hi in [(313, 314), (314, 331), (331, 360)]:
            f.update(y[lo:hi]); out.append(f.predict())
        np.save("expected.npy", np.stack(out))
    """, tmp_path)
    python(f"""
        import numpy as np
        from titans_ts.forecasting import TitansForecaster
        y = {SERIES}
        f = TitansForecaster.load("f.titans")
        out = [f.predict()]
        for lo, hi in [(313, 314), (314, 331), (331, 360)]:
            f.update(y[lo:hi]); out.append(f.predict())
        assert np.array_equal(np.stack(out), np.load("expected.npy")), "diverged after load"
    """, tmp_path)


def test_sigkill_during_saves_never_leaves_a_torn_file(tmp_path):
    python(f"""
        import numpy as np
        from titans_ts.forecasting import TitansForecaster
        TitansForecaster(**{SMALL}).fit({SERIES}).save("seed.titans")
    """, tmp_path)
    loop = subprocess.Popen([sys.executable, "-c", textwrap.dedent("""
        import numpy as np
        from titans_ts.forecasting import TitansForecaster
        f = TitansForecaster.load("seed.titans")
        print("ready", flush=True)
        while True:
            f.update(np.random.default_rng().standard_normal((3, 2)))
            f.save("live.titans")
    """)], cwd=tmp_path, stdout=subprocess.PIPE, text=True)
    try:
        assert loop.stdout.readline().strip() == "ready"
        deadline = time.monotonic() + 60  # a loaded machine may take a while over the first save
        while not (tmp_path / "live.titans").exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        rng = np.random.default_rng(0)
        for _ in range(5):
            time.sleep(float(rng.uniform(0.05, 0.3)))
            if (tmp_path / "live.titans").exists():
                TitansForecaster.load(tmp_path / "live.titans").predict()  # readable mid-loop
        loop.send_signal(signal.SIGKILL)
        loop.wait(timeout=30)
    finally:
        if loop.poll() is None:
            loop.kill()
    assert (tmp_path / "live.titans").exists()
    f = TitansForecaster.load(tmp_path / "live.titans")  # the last complete save, never a torn one
    assert np.isfinite(f.predict()).all()
