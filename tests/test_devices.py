"""Lightning's device arguments on every estimator: validated, passed through, and DDP over two CPU
processes (gloo) trains the same kind of model a single-device fit does, ending in the caller; with the
memory carried, each process carries its share of the lanes and the fit is the single-device one."""
import re

import numpy as np
import pytest

from titans_ts.datasets import planted_motif_dna
from titans_ts.forecasting import TitansForecaster
from titans_ts.forecasting.segments import LaneBatches, lane_batches, lane_share
from titans_ts.genomics import TitansDNAClassifier

pytestmark = pytest.mark.usefixtures("one_thread")
DDP = dict(accelerator="cpu", devices=2, strategy="ddp")
FORECASTER = dict(horizon=4, lookback=16, d_model=16, n_layers=1, heads=2, patch=4, max_epochs=3, batch_size=16,
                  recall=False, period=None, random_state=0)
CLASSIFIER = dict(d_model=16, n_layers=1, heads=2, window=8, chunk_size=8, k=6, stride=1, epochs=6, lr=0.02,
                  dropout=0.0, mutation=0.0, batch_size=32, random_state=0)


def series(n=400, seed=0, channels=2):
    t = np.arange(n)
    noise = np.random.default_rng(seed).normal(0, 0.05, (n, channels))
    waves = [np.sin(2 * np.pi * t / 12), np.cos(2 * np.pi * t / 20), np.sin(2 * np.pi * t / 8)]
    return np.stack(waves[:channels], 1) + noise


@pytest.fixture(scope="module")
def forecasters():
    y = series()
    return {kind: TitansForecaster(**FORECASTER, **extra).fit(y[:320])
            for kind, extra in (("one", {}), ("ddp", DDP))}


CARRIED = {  # name: (channels, rows, parameters)
    "two": (2, 320, {"recall": True}),  # a lane a process
    "odd": (3, 320, {"carry_memory": True}),  # padded to four lanes, lane 0 read by both processes
    # segments no longer than the horizon: a lane's last training segment scores no step
    "unscored": (2, 160, {"recall": True, "segment_length": 4, "max_epochs": 2}),
}


@pytest.fixture(scope="module")
def carried():
    """Fits with the memory carried, in one process and over two."""
    fits = {}
    for name, (channels, rows, extra) in CARRIED.items():
        y = series(channels=channels)[:rows]
        for kind, devices in (("one", {}), ("ddp", DDP)):
            fits[name, kind] = TitansForecaster(**{**FORECASTER, **extra}, **devices).fit(y)
    return fits


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


@pytest.mark.parametrize("name", ["two", "unscored"])
def test_a_carried_fit_over_two_processes_is_the_one_process_fit(carried, name):
    """Each process carries one of the two lanes and averages its gradient with the other's: the mean
    over both lanes, as one process takes it, so training, validation (each process goes on from its own
    lane's state) and early stopping are those of one process, to float32 rounding. A batch that scores
    no step is skipped by both processes, as by one."""
    one, ddp = carried[name, "one"], carried[name, "ddp"]
    assert len(ddp.history_) == len(one.history_) == CARRIED[name][2].get("max_epochs", FORECASTER["max_epochs"])
    np.testing.assert_allclose([h["val_loss"] for h in ddp.history_], [h["val_loss"] for h in one.history_],
                               rtol=1e-6)
    weights = one.net_.state_dict()
    for key, p in ddp.net_.state_dict().items():
        np.testing.assert_allclose(p.numpy(), weights[key].numpy(), rtol=0, atol=1e-5, err_msg=key)
    np.testing.assert_allclose(ddp.predict(), one.predict(), rtol=0, atol=1e-6)
    held = series()[CARRIED[name][1]:]
    np.testing.assert_allclose(ddp.backtest(held)["forecast"].to_list(), one.backtest(held)["forecast"].to_list(),
                               rtol=0, atol=1e-6)


def test_an_odd_number_of_carried_lanes_trains_over_two_processes(carried):
    """Three lanes over two processes: the batch is padded to four (lane 0 on both), so lane 0 weighs
    twice in the gradient and the model differs from one process's, but trains as well."""
    one, ddp = carried["odd", "one"], carried["odd", "ddp"]
    held = series(channels=3)[320:]
    scores = {kind: carried["odd", kind].backtest(held)["mse"].mean() for kind in ("one", "ddp")}
    assert ddp.history_ and ddp.best_loss_ < 1
    assert ddp.predict().shape == (4, 3) and np.isfinite(ddp.predict()).all()
    assert scores["ddp"] < 1.5 * scores["one"] and scores["ddp"] < 0.5 * held.var(0).mean()
    assert np.abs(ddp.predict() - one.predict()).max() > 1e-5  # lane 0 counted twice


@pytest.mark.parametrize("world", [1, 2, 3])
def test_lane_shares_split_each_batch_as_ddp_does_and_keep_each_lane_on_its_process(world):
    """Every process reads every batch: its lanes rank, rank + world, … of the batch padded cyclically to a
    multiple of world; a lane keeps its process through its group's training and validation batches."""
    batches = [[0, 1, 2, 3, 4], [5, 6], [7]]
    expected = {1: [[[0, 1, 2, 3, 4]], [[5, 6]], [[7]]],
                2: [[[0, 2, 4], [1, 3, 0]], [[5], [6]], [[7], [7]]],
                3: [[[0, 3], [1, 4], [2, 0]], [[5], [6], [5]], [[7], [7], [7]]]}[world]
    assert [[lane_share(b, r, world) for r in range(world)] for b in batches] == expected
    sampler = LaneBatches(batches)  # outside torch.distributed: one process reads whole batches
    assert len(sampler) == 3 and list(sampler) == batches
    # five lanes of two series (three of one, two of the other) in groups of at most two; the same lanes
    # read training and then validation, in the same groups and places
    lanes = [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1)]
    spans = {"fit": [(0, 40, 0, 35)] * 3 + [(4, 44, 0, 39)] * 2,
             "val": [(40, 56, 40, 55)] * 3 + [(44, 60, 44, 59)] * 2}
    keys = [i for i, _ in lanes]
    seen = {}
    for part, span in spans.items():
        items, order = lane_batches(span, 8, lanes, keys, 2)
        assert len(order) == {"fit": 15, "val": 6}[part]
        for batch in order:
            group = items[batch[0]][6]
            for rank in range(world):
                read = [items[k][:2] for k in lane_share(batch, rank, world)]
                assert seen.setdefault((group, rank), read) == read
    assert len(seen) == 3 * world and set(sum(seen.values(), [])) == set(lanes)  # every lane is read


FLAGS = ["--accelerator", "cpu", "--devices", "2", "--strategy", "ddp", "--precision", "64-true"]
GIVEN = {"accelerator": "cpu", "devices": 2, "strategy": "ddp", "precision": "64-true"}


@pytest.fixture
def loop_args(monkeypatch):
    """The keyword arguments each estimator hands the training loop (which then stops the command)."""
    import titans_ts.forecasting.forecaster as forecaster
    import titans_ts.genomics.classifier as classifier

    seen = {}

    def record(model, train, val=None, **kwargs):
        seen.update(kwargs)
        raise ValueError("stopped after the training loop's arguments")

    monkeypatch.setattr(forecaster, "fit_loop", record)
    monkeypatch.setattr(classifier, "fit_loop", record)
    return seen


def test_cli_device_flags_reach_the_estimators(loop_args, tmp_path, capsys):
    from titans_ts.datasets import bundled_dna_path
    from titans_ts.forecasting.cli import main as forecast_main
    from titans_ts.genomics.cli import main as dna_main

    path = tmp_path / "y.csv"
    np.savetxt(path, series(), delimiter=",", header="a,b", comments="")
    common = ["--horizon", "4", "--lookback", "16", "--epochs", "1", "--no-recall", "--quiet"]
    assert forecast_main(["forecast", "--data", str(path), "--out", str(tmp_path / "f.csv"), *common, *FLAGS]) == 2
    assert {k: loop_args[k] for k in GIVEN} == GIVEN
    loop_args.clear()
    assert dna_main(["train", "--data", str(bundled_dna_path()), "--model", str(tmp_path / "m"), "--quiet", *FLAGS]) == 2
    assert {k: loop_args[k] for k in GIVEN} == GIVEN
    loop_args.clear()
    assert dna_main(["train", "--data", str(bundled_dna_path()), "--model", str(tmp_path / "m"), "--quiet"]) == 2
    assert {k: loop_args[k] for k in GIVEN} == {"accelerator": "auto", "devices": 1, "strategy": "auto",
                                                "precision": "32-true"}  # no flag: the estimator's defaults
    capsys.readouterr()
    assert dna_main(["train", "--data", str(bundled_dna_path()), "--model", str(tmp_path / "m"),
                     "--devices", "none"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["titans-dna: error: TitansDNAClassifier.devices must be one of ('auto', -1) or an integer >= 1, "
                   "got 'none'"]


NODE = """
import json, sys
import torch
from titans_ts.datasets import planted_motif_dna
from titans_ts.genomics import TitansDNAClassifier
torch.set_num_threads(1)
seqs, labels = planted_motif_dna(800, 40, ["TATAAT"], seed=0)
clf = TitansDNAClassifier(**json.loads(sys.argv[1])).fit(seqs[:600], labels[:600])
print(json.dumps(clf.predict_proba(seqs[600:])[:, 1].tolist()))
"""


@pytest.mark.slow
def test_two_nodes_launched_by_torchrun_train_one_model(tmp_path, classifiers, dna):
    """Two torchrun "nodes" (one CPU process each): the estimators infer num_nodes from the launcher, the
    processes train one model together (both end with it) and it is not what one process alone trains."""
    import json
    import socket
    import subprocess
    import sys

    script = tmp_path / "node.py"
    script.write_text(NODE)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    params = json.dumps({**CLASSIFIER, "accelerator": "cpu", "devices": 1, "strategy": "ddp"})
    nodes = [subprocess.Popen([sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc-per-node", "1",
                               "--node-rank", str(rank), "--master-addr", "127.0.0.1", "--master-port", str(port),
                               str(script), params], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for rank in (0, 1)]
    outputs = [node.communicate(timeout=600) for node in nodes]
    assert [node.returncode for node in nodes] == [0, 0], outputs[0][1][-2000:] + outputs[1][1][-2000:]
    probs = [np.array(json.loads(out.strip().splitlines()[-1])) for out, _ in outputs]
    np.testing.assert_allclose(probs[0], probs[1], atol=1e-6)  # one model, the same on both nodes
    alone = classifiers["one"].predict_proba(dna[0][600:])[:, 1]
    assert np.abs(probs[0] - alone).max() > 1e-3  # each node read half of every epoch
    assert ((probs[0] > 0.5) == dna[1][600:]).mean() > 0.8
