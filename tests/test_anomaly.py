"""TitansAnomalyDetector: scikit-learn outlier conventions, real detection on a labelled stream."""
import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.metrics import roc_auc_score

from titans_ts.datasets import anomaly_stream
from titans_ts.forecasting import TitansAnomalyDetector

SMALL = dict(lookback=24, d_model=16, n_layers=1, max_epochs=3, random_state=0)


@pytest.fixture(scope="module")
def stream():
    return anomaly_stream(n_steps=1600, n_channels=2, period=24, n_anomalies=8, seed=1)


@pytest.fixture(scope="module")
def detector(stream):
    return TitansAnomalyDetector(contamination=0.02, **SMALL).fit(stream.values[:400])


def test_outlier_api(detector, stream):
    x = stream.values[400:600]
    s, d, p = detector.score_samples(x), detector.decision_function(x), detector.predict(x)
    assert s.shape == d.shape == p.shape == (200,)
    np.testing.assert_allclose(d, s - detector.offset_)
    assert set(np.unique(p)) <= {-1, 1} and np.array_equal(p == -1, d < 0)
    np.testing.assert_array_equal(detector.score_samples(x), s)  # scoring moves nothing
    assert clone(detector).get_params() == detector.get_params()
    with pytest.raises(NotFittedError):
        TitansAnomalyDetector().score_samples(x)
    with pytest.raises(ValueError, match="contamination"):
        TitansAnomalyDetector(contamination=0.7).fit(stream.values[:400])


def test_detects_labelled_anomalies(detector, stream):
    x, labels = stream.values[400:], stream.labels[400:]
    assert labels.any() and not labels.all()
    auroc = roc_auc_score(labels, -detector.score_samples(x))
    assert auroc > 0.7  # measured 0.749 (seed 1; 0.69 with the memory surprise alone); chance is 0.5


def test_update_then_score_equals_scoring_the_whole_block(detector, stream):
    import pickle

    d = pickle.loads(pickle.dumps(detector))
    whole = d.score_samples(stream.values[400:500])
    d.update(stream.values[400:450])
    np.testing.assert_allclose(d.score_samples(stream.values[450:500]), whole[50:], atol=1e-5)


def test_memory_retention_reaches_the_forecaster(stream):
    det = TitansAnomalyDetector(contamination=0.02, memory_retention=48, **SMALL).fit(stream.values[:400])
    assert det.forecaster_.memory_retention == 48
    assert all(layer.memory.forget_toward == "initial" for layer in det.forecaster_.net_.encoder.layers)
    with pytest.raises(ValueError, match="memory_retention must be None or an integer >= 2"):
        TitansAnomalyDetector(memory_retention=1, **SMALL).fit(stream.values[:400])
