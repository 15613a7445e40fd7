"""On a CUDA GPU: models fitted on the CPU and moved to the GPU predict there (the memory update in the
Triton kernels) as they did on the CPU. Apart from the DDP tests of test_devices.py, whose processes are
forked and must find CUDA untouched."""
import numpy as np
import pytest
import torch

from titans_ts.datasets import planted_motif_dna
from titans_ts.forecasting import TitansForecaster
from titans_ts.genomics import TitansDNAClassifier

pytestmark = [pytest.mark.usefixtures("one_thread"),
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]


def series(n=400, seed=0):
    t = np.arange(n)
    noise = np.random.default_rng(seed).normal(0, 0.05, (n, 2))
    return np.stack([np.sin(2 * np.pi * t / 12), np.cos(2 * np.pi * t / 20)], 1) + noise


@pytest.fixture(scope="module")
def fitted():
    """A small classifier and forecaster fitted on the CPU, and sequences they have not seen."""
    seqs, labels = planted_motif_dna(800, 40, ["TATAAT"], seed=0)
    clf = TitansDNAClassifier(d_model=16, n_layers=1, heads=2, window=8, chunk_size=8, k=6, stride=1, epochs=2,
                              accelerator="cpu", random_state=0).fit(seqs[:600], labels[:600])
    f = TitansForecaster(horizon=4, lookback=16, d_model=16, n_layers=1, heads=2, patch=4, max_epochs=2,
                         accelerator="cpu", random_state=0).fit(series()[:320])
    return clf, f, seqs[600:620]


def test_prediction_follows_the_model_device_and_returns_cpu_results(fitted):
    """Moved to the GPU, each model predicts there (the memory update in the Triton kernels) as it did on
    the CPU; streams, results and files stay on the CPU."""
    clf, f, seqs = fitted
    on_cpu = clf.predict_proba(seqs)
    clf.model_.cuda()
    try:
        np.testing.assert_allclose(clf.predict_proba(seqs), on_cpu, atol=1e-4)
    finally:
        clf.model_.cpu()
    held = series()[320:340]
    windows = held[None, :16]
    expected = (f.forecast_windows(windows), f.backtest(held)["forecast"].to_list())
    f.net_.cuda()
    try:
        np.testing.assert_allclose(f.forecast_windows(windows), expected[0], rtol=1e-3, atol=1e-3)
        np.testing.assert_allclose(f.backtest(held)["forecast"].to_list(), expected[1], rtol=1e-3, atol=1e-3)
        assert f.streams_.point.device.type == "cpu"
    finally:
        f.net_.cpu()
