"""Lightning's device arguments on every estimator: validated, passed through, and DDP over two CPU
processes (gloo) trains the same kind of model a single-device fit does, ending in the caller."""
import re

import numpy as np
import pytest
import torch

from titans_ts.datasets import planted_motif_dna
from titans_ts.forecasting import TitansForecaster
from titans_ts.genomics import TitansDNAClassifier

pytestmark = pytest.mark.usefixtures("one_thread")
DDP = dict(accelerator="cpu", devices=2, strategy="ddp")
FORECASTER = dict(horizon=4, lookback=16, d_model=16, n_layers=1, heads=2, patch=4, max_epochs=3, batch_size=16,
                  recall=False, period=None, random_state=0)
CLASSIFIER = dict(d_model=16, n_layers=1, heads=2, window=8, chunk_size=8, k=6, stride=1, epochs=6, lr=0.02,
                  dropout=0.0, mutation=0.0, batch_size=32, random_state=0)


def series(n=400, seed=0):
    t = np.arange(n)
    noise = np.random.default_rng(seed).normal(0, 0.05, (n, 2))
    return np.stack([np.sin(2 * np.pi * t / 12), np.cos(2 * np.pi * t / 20)], 1) + noise


@pytest.fixture(scope="module")
def forecasters():
    y = series()
    return {kind: TitansForecaster(**FORECASTER, **extra).fit(y[:320])
            for kind, extra in (("one", {}), ("ddp", DDP))}


@pytest.fixture(scope="module")
def dna():
    seqs, labels = planted_motif_dna(800, 40, ["TATAAT"], seed=0)
    return seqs, labels


@pytest.fixture(scope="module")
def classifiers(dna):
    seqs, labels = dna
    return {kind: TitansDNAClassifier(**CLASSIFIER, **extra).fit(seqs[:600], labels[:600])
            for kind, extra in (("one", {}), ("ddp", DDP))}


def test_ddp_forecaster_ends_in_the_caller_and_forecasts_like_one_device(forecasters):
    one, ddp = forecasters["one"], forecasters["ddp"]
    held = series()[320:]
    assert ddp.history_ and ddp.best_loss_ < 1  # the fit's record came back from the worker processes
    scores = {}
    for kind, f in forecasters.items():
        assert next(f.net_.parameters()).device.type == "cpu"
        forecast = f.predict()
        assert forecast.shape == (4, 2) and np.isfinite(forecast).all()
        scores[kind] = f.backtest(held)["mse"].mean()
    # the same kind of model: two processes see each epoch's segments once between them, as one does
    assert scores["ddp"] < 2 * scores["one"] and scores["ddp"] < 0.5 * held.var(0).mean()
    assert not np.allclose(ddp.predict(), one.predict())  # trained apart (shards, gradient averaging)


def test_ddp_classifier_ends_in_the_caller_and_scores_like_one_device(classifiers, dna):
    seqs, labels = dna
    accuracy = {kind: clf.score(seqs[600:], labels[600:]) for kind, clf in classifiers.items()}
    assert accuracy["one"] > 0.8 and accuracy["ddp"] > 0.8
    assert abs(accuracy["ddp"] - accuracy["one"]) < 0.15
    ddp = classifiers["ddp"]
    assert ddp.history_ and ddp.n_epochs_ >= 1
    probs = ddp.predict_proba(seqs[600:])
    assert probs.shape == (200, 2) and np.isfinite(probs).all()


def test_device_parameters_are_stored_untouched_with_the_same_defaults():
    for est in (TitansForecaster(), TitansDNAClassifier()):
        params = est.get_params()
        assert {k: params[k] for k in ("accelerator", "devices", "strategy", "precision")} == \
            {"accelerator": "auto", "devices": 1, "strategy": "auto", "precision": "32-true"}
    assert TitansDNAClassifier(devices=2, strategy="ddp").get_params()["devices"] == 2


@pytest.mark.parametrize("field, value, allowed", [
    ("accelerator", "tpu9", "one of ('auto', 'cpu'"), ("devices", 0, "one of ('auto', -1) or an integer >= 1"),
    ("devices", "two", "one of ('auto', -1) or an integer >= 1"), ("strategy", "dpp", "one of ('auto', 'ddp'"),
    ("precision", "16", "one of ('32-true'"),
])
def test_bad_device_values_name_the_field(field, value, allowed, dna):
    y = series()
    for est, args in ((TitansForecaster(**FORECASTER), (y,)), (TitansDNAClassifier(**CLASSIFIER), dna)):
        est.set_params(**{field: value})
        with pytest.raises(ValueError, match=re.escape(f"{type(est).__name__}.{field} must be {allowed}")):
            est.fit(*args)
        assert not hasattr(est, "net_") and not hasattr(est, "model_")


def test_carried_memory_refuses_several_processes_and_says_what_to_set():
    with pytest.raises(ValueError, match=r"TitansForecaster\.devices \(2\).*recall=False and carry_memory=False"):
        TitansForecaster(**{**FORECASTER, "recall": True}, **DDP).fit(series())


def test_prediction_follows_the_model_device(classifiers, dna):
    """Inputs go to the device the model is on (here the CPU in float64) and results come back as numpy."""
    clf = classifiers["one"]
    seqs = dna[0][300:310]
    before = clf.predict_proba(seqs)
    clf.model_.double()
    try:
        assert np.allclose(clf.predict_proba(seqs), before, atol=1e-5)
    finally:
        clf.model_.float()
    assert torch.equal(torch.as_tensor(clf.predict_proba(seqs)), torch.as_tensor(before))
