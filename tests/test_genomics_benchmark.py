"""The genomics benchmark on the shared data: every row kind in one tiny run, its JSON, its splits, and
its CNN baseline on a planted-motif set."""
import json
from pathlib import Path

import numpy as np
import pytest

from titans_ts.datasets import planted_motif_dna
from titans_ts.genomics.baselines import CNNClassifier
from titans_ts.genomics.benchmark import DATASETS, Truncated, load, main

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "genomics"
needs_data = pytest.mark.skipif(not (DATA / "drosophila_enhancers_stark_test.csv.gz").exists(),
                                reason="shared data not present")


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "bench.json"
    assert main(["--quick", "--subsample", "48", "--threads", "1", "--data-dir", str(DATA), "--datasets", "ecoli",
                 "drosophila", "--seeds", "3", "4", "--set", "mutation=0.1", "--json", str(out)]) == 0
    return json.loads(out.read_text())


@needs_data
def test_every_row_kind_runs_and_the_json_carries_its_fields(report):
    rows = {(r["dataset"], r["model"]): r for r in report["rows"]}
    baselines = ("6-mer logreg", "6-mer+pos logreg", "cnn")
    assert set(rows) == {(d, m) for d in ("ecoli", "drosophila") for m in ("titans-mag", *baselines)} | {
        ("drosophila", "titans-mag first 1024 bp")}  # the truncated row only where sequences exceed max_len
    for r in rows.values():
        assert 0 <= r["accuracy"] <= 1 and 0 <= r["val_accuracy"] <= 1 and 0 <= r["val_auroc"] <= 1
        assert r["train_s"] > 0 and r["infer_seq_s"] > 0 and 0 < r["val_log_loss"] < 10
        assert (r["n_train"], r["n_test"]) == (48, 12)
        # seeded models run once per seed and report the median; the regressions need no seed and run once
        seeded = r["model"].startswith("titans") or r["model"] == "cnn"
        assert r["seeds"] == ([3, 4] if seeded else []) and len(r["accuracies"]) == (2 if seeded else 1)
        assert r["accuracy"] == pytest.approx(np.median(r["accuracies"]))
    assert rows[("ecoli", "titans-mag")]["independent_recall"] is not None
    for dataset in ("ecoli", "drosophila"):  # one chosen Titans row per set, by validation accuracy
        titans = [r for r in report["rows"] if r["dataset"] == dataset and r["model"].startswith("titans")]
        assert [r["chosen"] for r in titans].count(True) == 1
        assert max(titans, key=lambda r: r["val_accuracy"])["chosen"]
    meta = report["meta"]
    assert meta["seeds"] == [3, 4] and meta["subsample"] == 48 and "fixed seed 0" in meta["split"]
    assert meta["titans_params"]["mutation"] == 0.1 and "date" in meta


@needs_data
@pytest.mark.parametrize("name", DATASETS)
def test_splits_are_stratified_disjoint_and_fixed(name):
    split = load(name, DATA)
    parts = (split.train, split.val, split.test)
    assert sorted(np.concatenate(parts).tolist()) == list(range(len(split.seqs)))  # disjoint, cover every row
    for label in np.unique(split.labels):
        n = (split.labels == label).sum()
        for part, share in zip(parts, (0.7, 0.1, 0.2)):
            assert abs((split.labels[part] == label).sum() - share * n) < 1
    again = load(name, DATA)
    assert all(np.array_equal(a, b) for a, b in zip(parts, (again.train, again.val, again.test)))


def test_cnn_finds_a_planted_motif():
    seqs, labels = planted_motif_dna(800, 60, ["TATAAAGGCGCC"], seed=1)
    cnn = CNNClassifier(epochs=10, random_state=1).fit(seqs[:480], labels[:480],
                                                       validation=(seqs[480:640], labels[480:640]))
    probs = cnn.predict_proba(seqs[640:])
    assert probs.shape == (160, 2) and np.allclose(probs.sum(1), 1)
    assert (cnn.classes_[probs.argmax(1)] == labels[640:]).mean() > 0.75  # chance: 0.5


def test_truncated_cuts_training_validation_and_prediction():
    seen = []

    class Recorder:
        def fit(self, seqs, y, validation):
            seen.append([len(s) for s in [*seqs, *validation[0]]])

        def predict_proba(self, seqs):
            seen.append([len(s) for s in seqs])
            return np.zeros((len(seqs), 2))

    model = Truncated(Recorder(), 5)
    model.fit(["ACGTACGT", "ACG"], [0, 1], validation=(["ACGTACGTAA"], [1]))
    model.predict_proba(["ACGTAC", "A"])
    assert seen == [[5, 3, 5], [5, 1]]


@pytest.mark.parametrize("args, message", [(["--set", "mutation=2"], "mutation must be a probability"),
                                           (["--set", "mutation=x"], "VALUE must be JSON"),
                                           (["--set", "bogus=1"], "bogus"),
                                           (["--init", "yeast=x.titans"], "DATASET one of nontata"),
                                           (["--init", "ecoli"], "expected DATASET=PATH"),
                                           (["--init", "ecoli=/nonexistent/base.titans"], "no pretrained model"),
                                           (["--subsample", "2"], "--subsample must be at least 4")])
def test_bad_arguments_exit_2_with_one_line(args, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--quick", *args])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


@needs_data
def test_a_fine_tuned_row_starts_from_the_pretrained_model_whole_and_truncated(tmp_path):
    from titans_ts.genomics import pretrain

    genome = tmp_path / "g.fa"
    rng = np.random.default_rng(0)
    genome.write_text(">g\n" + "".join(rng.choice(list("ACGT"), 6000)) + "\n")
    small = dict(d_model=16, n_layers=1, heads=2, variant="mag")  # what --quick trains
    pretrain([genome], tmp_path / "base.titans", epochs=1, length=256, batch_size=8, progress=False,
             accelerator="cpu", **small)
    out = tmp_path / "r.json"
    base = tmp_path / "base.titans"
    assert main(["--quick", "--subsample", "32", "--threads", "1", "--data-dir", str(DATA), "--datasets", "ecoli",
                 "drosophila", "--models", "titans", "titans-truncated", "--seeds", "0", "--init", f"ecoli={base}",
                 "--init", f"drosophila={base}", "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    rows = [(r["dataset"], r["model"]) for r in report["rows"]]
    assert rows == [("ecoli", "titans-mag"), ("ecoli", "titans-mag from base.titans"),
                    ("drosophila", "titans-mag"), ("drosophila", "titans-mag from base.titans"),
                    ("drosophila", "titans-mag first 1024 bp"), ("drosophila", "titans-mag from base.titans first 1024 bp")]
    assert report["meta"]["init"] == {"ecoli": str(base), "drosophila": str(base)}
    with pytest.raises(SystemExit) as exit_info:  # a model of another shape is refused before any training
        main(["--quick", "--datasets", "ecoli", "--set", "d_model=32", "--init", f"ecoli={tmp_path / 'base.titans'}"])
    assert exit_info.value.code == 2
