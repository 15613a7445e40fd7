"""Pretraining on genome FASTA (next-base prediction), the Markov baseline, fine-tuning from a pretrained
model (`init`), and per-class metrics."""
from __future__ import annotations

import gzip
import math

import numpy as np
import pytest
import torch
from Bio import bgzf
from sklearn.metrics import precision_score, recall_score

from titans_ts.genomics import MarkovModel, TitansDNAClassifier, pretrain
from titans_ts.genomics.classifier import encoder_config
from titans_ts.genomics.cli import main
from titans_ts.genomics.metrics import classification_metrics
from titans_ts.genomics.model import DNANet
from titans_ts.genomics.pretraining import (
    both_strands,
    init_from,
    next_token_logits,
    pretrained_params,
    read_stretches,
    tile,
)
from titans_ts.genomics.tokenize import encode

SMALL = dict(d_model=16, n_layers=1, heads=2, window=8, chunk_size=8, memory_depth=1, k=4, stride=2, variant="mag")
UNIT = "ACGGTCATTGACCTAGGATCCAGTTAGCA"  # 29 bases: one period of the synthetic genome


def _fasta(records: dict[str, str]) -> str:
    return "".join(f">{rid} test record\n" + "\n".join(seq[i:i + 60] for i in range(0, len(seq), 60)) + "\n"
                   for rid, seq in records.items())


def _write(path, text: str, how: str):
    if how == "gzip":
        with gzip.open(path, "wt") as fh:
            fh.write(text)
    elif how == "bgzip":
        with bgzf.BgzfWriter(str(path), "wb") as fh:
            fh.write(text.encode())
    else:
        path.write_text(text)
    return path


def _periodic(n_units: int, masked: bool = True) -> str:
    seq = UNIT * n_units
    return (seq[:100].lower() + seq[100:]) if masked else seq  # soft-masked start


@pytest.fixture(scope="module")
def genome(tmp_path_factory):
    """A bgzip genome of two periodic records, soft-masked, with N runs (as a telomere and inside)."""
    folder = tmp_path_factory.mktemp("genome")
    first = "N" * 50 + _periodic(300)[:4000] + "N" * 20 + _periodic(300)[:4000]
    return _write(folder / "tiny.fa.gz", _fasta({"chrA": first, "chrB": _periodic(200)}), "bgzip")


@pytest.fixture(scope="module")
def pretrained(genome, tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "base.titans"
    report = pretrain([genome], path, epochs=3, length=256, batch_size=8, lr=1e-2, progress=False,
                      accelerator="cpu", **SMALL)
    return path, report


# -- reading ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("how", ["plain", "gzip", "bgzip"])
def test_read_stretches_splits_at_n_holds_out_the_end_of_every_record(tmp_path, how):
    seq = "acgtACGTAA" + "NNNN" + "CCGGTTAA" + "ggccaattgg"  # 32 letters; the last quarter is held out
    path = _write(tmp_path / "g.fa", _fasta({"r1": seq, "r2": "ACGTACGTAC" "GTAC"}), how)
    train, val = read_stretches([path], validation_fraction=0.25)
    assert [len(s) for s in train] == [10, 10, 10]  # r1: 24 letters, cut at the N run; r2: 10 of 14
    assert np.array_equal(train[0], encode("ACGTACGTAA")) and np.array_equal(val[0], encode("GGCCAATTGG")[2:])
    assert [len(s) for s in val] == [8, 4]
    train_cap, _ = read_stretches([path], max_bases=20, validation_fraction=0.25)
    assert sum(map(len, train_cap)) == 10 + 1  # 20 letters of r1: 15 train (4 of them N), 5 held out


def test_read_stretches_names_the_problem(tmp_path):
    with pytest.raises(ValueError, match="validation_fraction"):
        read_stretches([tmp_path / "x.fa"], validation_fraction=1.0)
    with pytest.raises(ValueError, match="not FASTA"):
        read_stretches([_write(tmp_path / "t.tsv", "ACGT\t1\n", "plain")])
    with pytest.raises(ValueError, match="no validation sequence"):
        read_stretches([_write(tmp_path / "n.fa", _fasta({"r": "ACGTACGTNN"}), "gzip")], validation_fraction=0.2)


# -- Markov baseline --------------------------------------------------------------------------------------
def test_markov_bits_per_base_against_a_hand_count():
    model = MarkovModel(order=1).fit([encode("AACA")])  # pairs AA, AC, CA
    # P(C|A) = (1 + 1) / (2 + 4), P(A|C) = (1 + 1) / (1 + 4)
    expected = -(math.log2(2 / 6) + math.log2(2 / 5)) / 2
    assert model.bits_per_base([encode("ACA")]) == pytest.approx(expected, rel=1e-12)
    assert MarkovModel(order=2).fit([encode("ACGT" * 50)]).bits_per_base([encode("ACGT" * 5)]) < 0.1
    with pytest.raises(ValueError, match="longer than the order"):
        model.bits_per_base([encode("A")])


# -- the objective ----------------------------------------------------------------------------------------
def _small_net(n_classes: int = 2) -> DNANet:
    arch = {n: v for n, v in SMALL.items() if n not in ("k", "stride")}
    return DNANet(n_classes, encoder_config(dropout=0.0, **arch), "kmer", SMALL["k"], SMALL["stride"])


def test_next_token_prediction_is_causal_and_aligned():
    torch.manual_seed(0)
    net = _small_net(4 ** SMALL["stride"]).eval()
    codes = torch.randint(0, 4, (1, 96))
    with torch.no_grad():
        logits, targets = next_token_logits(net, codes, piece=32)  # three pieces, the state carried
        assert targets[0, 5] == codes[0, 12] * 4 + codes[0, 13]  # token 6 (bases 12, 13) predicted at token 5
        for j in (3, 31, 32, 57, 94):  # from base k - 1 on: earlier k-mers reach before the start
            changed = codes.clone()
            changed[0, j] = (changed[0, j] + 1) % 4
            other, _ = next_token_logits(net, changed, piece=32)
            # predictions of tokens up to base j's own token j // 2 come from outputs before it
            assert torch.equal(other[0, : j // 2], logits[0, : j // 2]), j
            if j // 2 < logits.shape[1]:
                assert not torch.allclose(other[0, j // 2], logits[0, j // 2]), j


def test_tile_pads_the_last_window_and_drops_what_cannot_predict():
    windows = tile([encode("ACGTACGTAC"), encode("ACG")], length=6, stride=2)
    assert windows.tolist() == [[0, 1, 2, 3, 0, 1], [2, 3, 0, 1, 15, 15]]  # "ACG": fewer than two tokens


# -- pretraining ------------------------------------------------------------------------------------------
def test_pretraining_learns_a_periodic_genome_beyond_low_order_markov(genome, pretrained):
    _, report = pretrained
    train, val = read_stretches([genome], validation_fraction=0.05)
    low_order = MarkovModel(order=2).fit(both_strands(train)).bits_per_base(both_strands(val))
    assert low_order > 1.0  # two bases do not tell where in the 29-base period a stretch is
    assert report.bits_per_base < 0.5 < low_order
    assert report.markov_bits_per_base < 0.5  # five bases do
    assert report.epochs == 3 and report.validation_bases == 2 * sum(map(len, val))


def test_a_checkpoint_is_written_each_epoch(genome, tmp_path, monkeypatch):
    import titans_ts.genomics.pretraining as pretraining

    epochs = []
    real = pretraining.save_bundle

    def spy(path, tensors, meta, kind):
        epochs.append(meta["epoch"])
        real(path, tensors, meta, kind)

    monkeypatch.setattr(pretraining, "save_bundle", spy)
    path = tmp_path / "m.titans"
    pretrain([genome], path, epochs=2, max_bases=2000, length=128, progress=False, accelerator="cpu", **SMALL)
    assert epochs == [1, 2, 2]  # after each epoch, then the final model with its report
    assert pretrained_params(path)["d_model"] == 16


def test_pretrain_rejects_bad_parameters(genome, tmp_path):
    with pytest.raises(TypeError, match="unknown parameters \\['pooling'\\]"):
        pretrain([genome], tmp_path / "m", pooling="mean")
    with pytest.raises(ValueError, match="multiple of stride"):
        pretrain([genome], tmp_path / "m", length=255, **SMALL)
    with pytest.raises(ValueError, match="folder .*nowhere does not exist"):
        pretrain([genome], tmp_path / "nowhere" / "m", **SMALL)
    assert not (tmp_path / "m").exists()


# -- fine-tuning ------------------------------------------------------------------------------------------
def _labelled(n: int = 40):
    rng = np.random.default_rng(0)
    seqs = ["".join(rng.choice(list("ACGT"), 40)) for _ in range(n)]
    return seqs, [i % 2 for i in range(n)]


def test_init_loads_the_pretrained_embedding_and_encoder_exactly(pretrained):
    path, _ = pretrained
    from titans_ts.io import load_bundle

    tensors, _ = load_bundle(path, kind="titans_ts.genomics.pretrained")
    net = _small_net()
    init_from(net, path, TitansDNAClassifier(**SMALL).get_params())
    body = net.body_state()
    assert body and all(torch.equal(value, tensors[name]) for name, value in body.items())
    assert net.head.weight.shape[0] == 2  # the head is new

    seqs, y = _labelled()
    clf = TitansDNAClassifier(**SMALL, init=path, epochs=1, lr=1e-12, positions=0, random_state=0).fit(seqs, y)
    tuned = clf.model_.body_state()
    assert all(torch.allclose(value, tensors[name], atol=1e-6) for name, value in tuned.items())
    scratch = TitansDNAClassifier(**SMALL, epochs=1, lr=1e-12, positions=0, random_state=0).fit(seqs, y)
    assert not torch.allclose(scratch.model_.body_state()["embed.weight"], tensors["embed.weight"], atol=1e-3)


def test_init_mismatch_names_both_values_and_init_round_trips(pretrained, tmp_path):
    path, _ = pretrained
    seqs, y = _labelled()
    with pytest.raises(ValueError, match="pretrained with k=4, but the classifier has k=3"):
        TitansDNAClassifier(**{**SMALL, "k": 3}, init=path, epochs=1).fit(seqs, y)
    with pytest.raises(ValueError, match="pretrained with d_model=16, but the classifier has d_model=32"):
        TitansDNAClassifier(**{**SMALL, "d_model": 32}, init=path, epochs=1).fit(seqs, y)
    with pytest.raises(ValueError, match="pretrained with k=4, but the classifier has k=6"):
        TitansDNAClassifier(init=path, epochs=1).fit(seqs, y)
    net = _small_net()
    wrong = {name: torch.zeros(3) for name in net.body_state()}
    with pytest.raises(ValueError, match=r"weight 'embed.weight' has shape \(3,\), this model's \(257, 16\)"):
        net.load_body(wrong, "other.titans")
    clf = TitansDNAClassifier(**SMALL, init=path, epochs=1, positions=0, random_state=0).fit(seqs, y)
    clf.save(tmp_path / "clf.titans")
    loaded = TitansDNAClassifier.load(tmp_path / "clf.titans")
    assert loaded.init == str(path)
    assert np.allclose(loaded.predict_proba(seqs), clf.predict_proba(seqs))


# -- command line -----------------------------------------------------------------------------------------
def test_cli_pretrain_and_train_from_it(genome, tmp_path, capsys):
    model = tmp_path / "base.titans"
    assert main(["pretrain", "--fasta", str(genome), "--model", str(model), "--max-bases", "3000", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "bits per base" in out and "order-5 Markov" in out and model.exists()
    assert pretrained_params(model)["k"] == 6
    seqs, y = _labelled(24)
    table = tmp_path / "train.tsv"
    table.write_text("".join(f"{s}\t{label}\n" for s, label in zip(seqs, y)))
    capsys.readouterr()
    assert main(["train", "--data", str(table), "--model", str(tmp_path / "c.titans"), "--init", str(model),
                 "--k", "4", "--epochs", "1", "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "pretrained with k=6, but the classifier has k=4" in err[0]
    assert main(["train", "--data", str(table), "--model", str(tmp_path / "c.titans"), "--init", str(model),
                 "--epochs", "1", "--quiet"]) == 0
    assert TitansDNAClassifier.load(tmp_path / "c.titans").init == str(model)


@pytest.mark.parametrize("args, message", [
    (["--fasta", "missing.fa"], "missing.fa"),
    (["--fasta", "GENOME", "--max-bases", "0"], "max_bases must be an integer >= 1"),
    (["--fasta", "GENOME", "--model", "no/such/folder/m.titans"], "folder no/such/folder does not exist"),
])
def test_cli_pretrain_bad_input_exits_2_with_one_line(genome, tmp_path, capsys, args, message):
    argv = ["pretrain", "--model", str(tmp_path / "m.titans"), *[str(genome) if a == "GENOME" else a for a in args]]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]
    assert not (tmp_path / "m.titans").exists()


# -- metrics ----------------------------------------------------------------------------------------------
def test_per_class_precision_and_recall_match_sklearn():
    classes = np.array(["a", "b", "c"])
    y = np.array(["a", "a", "b", "b", "c", "c", "c"])
    probs = np.eye(3)[[0, 1, 1, 2, 2, 2, 0]]
    metrics = classification_metrics(y, probs, classes)
    pred = classes[probs.argmax(1)]
    precision = precision_score(y, pred, labels=classes, average=None, zero_division=0)
    recall = recall_score(y, pred, labels=classes, average=None, zero_division=0)
    assert [m["class"] for m in metrics["per_class"]] == ["a", "b", "c"]
    assert [m["precision"] for m in metrics["per_class"]] == pytest.approx(precision.tolist())
    assert [m["recall"] for m in metrics["per_class"]] == pytest.approx([0.5, 0.5, 2 / 3])
    assert [m["recall"] for m in metrics["per_class"]] == pytest.approx(recall.tolist())
    assert [m["support"] for m in metrics["per_class"]] == [2, 2, 3]
    assert "per_class" not in classification_metrics(y[:4], probs[:4, :2], classes[:2])
