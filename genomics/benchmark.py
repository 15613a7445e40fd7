"""Genomics benchmark: `python -m titans_ts.genomics.benchmark [--json OUT] [--quick]`.

Data (the shared folder, `--data-dir`): Genomic Benchmarks `human_nontata_promoters` (only its official
test split is available: split here 70/10/20, stratified, seed 0), the DNABERT core-promoter set
(70/10/20 likewise) and the E. coli promoters (positive / negative FASTA 70/10/20; the independent
file holds 256 promoters only, so its score is the share recognised as promoters). The validation part
serves early stopping and the baseline's C only. Every data set is read case-insensitively (the E. coli
positives are lower case). Baselines in the same run: logistic regression on tf-idf of k-mers counted
on both strands, and the same with a one-hot of every position added (`--models` picks; `--set` changes
a parameter of the Titans model, so each variant in BENCHMARKS.md is one command).
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from scipy import sparse
from sklearn.feature_extraction.text import CountVectorizer, TfidfTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss
from sklearn.pipeline import FeatureUnion, make_pipeline
from sklearn.preprocessing import FunctionTransformer

from titans_ts.datasets import read_classes, read_labelled, read_sequences, stratified_split
from titans_ts.state import write_atomic

from .classifier import TitansDNAClassifier
from .metrics import classification_metrics
from .tokenize import base_probabilities, encode, reverse_complement

DATASETS = ("nontata", "dnabert_core", "ecoli")
MODELS = ("titans", "kmer", "kmer-position")
PUBLISHED = {"nontata": "full official split (27k train): CNN 84.6, HyenaDNA 96.6, Titans neural memory 96.6"}


@dataclass
class Row:
    dataset: str
    model: str
    n_train: int
    n_test: int
    accuracy: float
    mcc: float
    auroc: float | None
    train_s: float
    infer_seq_s: float
    independent_recall: float | None = None
    val_accuracy: float | None = None  # on the validation part: what a choice between configurations may use
    val_log_loss: float | None = None


@dataclass
class Split:
    seqs: list[str]
    labels: np.ndarray
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    independent: list[str] | None = None


def load(name: str, root: Path) -> Split:
    """One benchmark data set, split 70/10/20 stratified with seed 0."""
    independent = None
    if name == "nontata":
        _, seqs, labels = read_labelled(root / "gb_human_nontata_promoters_test.tsv")
    elif name == "dnabert_core":
        _, seqs, labels = read_labelled(root / "dnabert_prom_core_dev.csv")
    else:
        folder = root / "ecoli_promoters"
        _, seqs, labels = read_classes({1: folder / "positive.fa", 0: folder / "negative.fa"})
        independent = read_sequences(folder / "independent.fa").seqs
    labels = np.asarray(labels)
    return Split(seqs, labels, *stratified_split(labels, (0.7, 0.1, 0.2), seed=0), independent)


def kmer_baseline(k: int, positional: bool = False
                  ) -> Callable[[Split], tuple[Callable[[list[str]], np.ndarray], float]]:
    """Fit tf-idf k-mer (both strands) logistic regression; C picked on the validation part.

    `positional` adds a one-hot of every position of the forward strand (IUPAC codes as their base mix,
    zeros past a sequence's end, cut at the longest training sequence) with a weight picked on the
    validation part too: a linear model that knows where a k-mer sits, as the positional readout does.
    """

    def kmers(seq: str) -> list[str]:
        both = (seq.upper(), reverse_complement(seq))
        return [s[i: i + k] for s in both for i in range(len(s) - k + 1)]

    def train(split: Split) -> tuple[Callable[[list[str]], np.ndarray], float]:
        start = time.perf_counter()
        x = [split.seqs[i] for i in split.train]
        length, table = max(len(s) for s in x), base_probabilities().numpy()

        def one_hot(seqs: list[str]) -> sparse.csr_matrix:
            out = np.zeros((len(seqs), length, 4), dtype=np.float32)
            for row, seq in enumerate(seqs):
                codes = encode(seq[:length])
                out[row, :len(codes)] = table[codes]
            return sparse.csr_matrix(out.reshape(len(seqs), -1))

        best, best_acc = None, -1.0
        for weight in (0.05, 0.1, 0.2) if positional else (0.0,):
            for c in (0.3, 1.0, 3.0, 10.0) if positional else (0.1, 1.0, 10.0):
                counts = make_pipeline(CountVectorizer(analyzer=kmers), TfidfTransformer(sublinear_tf=True))
                features = FeatureUnion([("kmers", counts), ("positions", FunctionTransformer(one_hot))],
                                        transformer_weights={"positions": weight}) if positional else counts
                model = make_pipeline(features, LogisticRegression(C=c, max_iter=3000))
                model.fit(x, split.labels[split.train])
                acc = model.score([split.seqs[i] for i in split.val], split.labels[split.val])
                if acc > best_acc:
                    best, best_acc = model, acc
        return best.predict_proba, time.perf_counter() - start

    return train


def titans(params: dict) -> Callable[[Split], tuple[Callable[[list[str]], np.ndarray], float]]:
    def train(split: Split) -> tuple[Callable[[list[str]], np.ndarray], float]:
        start = time.perf_counter()
        clf = TitansDNAClassifier(**params)
        clf.fit([split.seqs[i] for i in split.train], split.labels[split.train],
                validation=([split.seqs[i] for i in split.val], split.labels[split.val]))
        return clf.predict_proba, time.perf_counter() - start

    return train


def evaluate(dataset: str, model: str, split: Split, trainer: Callable) -> Row:
    predict, train_s = trainer(split)
    test = [split.seqs[i] for i in split.test]
    start = time.perf_counter()
    probs = predict(test)
    speed = len(test) / (time.perf_counter() - start)
    classes = np.unique(split.labels)
    m = classification_metrics(split.labels[split.test], probs, classes)
    recall = None
    if split.independent is not None:  # every independent sequence is a promoter (class 1)
        recall = float((classes[predict(split.independent).argmax(1)] == 1).mean())
    val = predict([split.seqs[i] for i in split.val])
    return Row(dataset, model, len(split.train), len(split.test), m["accuracy"], m["mcc"], m["auroc"], train_s,
               speed, recall, classification_metrics(split.labels[split.val], val, classes)["accuracy"],
               float(log_loss(split.labels[split.val], val, labels=classes)))


def table(rows: Sequence[Row]) -> str:
    head = f"{'dataset':<13} {'model':<18} {'train':>6} {'test':>5} {'acc':>6} {'mcc':>6} {'auroc':>6} " \
           f"{'train_s':>8} {'seq/s':>7} {'indep':>6} {'val':>6} {'val_ll':>6}"
    lines = [head, "-" * len(head)]
    for r in rows:
        fmt = lambda v: "   n/a" if v is None else f"{v:6.3f}"  # noqa: E731
        lines.append(f"{r.dataset:<13} {r.model:<18} {r.n_train:>6} {r.n_test:>5} {fmt(r.accuracy)} {fmt(r.mcc)} "
                     f"{fmt(r.auroc)} {r.train_s:8.1f} {r.infer_seq_s:7.0f} {fmt(r.independent_recall)} "
                     f"{fmt(r.val_accuracy)} {fmt(r.val_log_loss)}")
    return "\n".join(lines)


def subsample(split: Split, n: int) -> Split:
    """n random training, n/4 validation and n/4 test indices, seed 0 (for --quick)."""
    rng = np.random.default_rng(0)
    pick = lambda idx, m: np.sort(rng.choice(idx, min(m, len(idx)), replace=False))  # noqa: E731
    return Split(split.seqs, split.labels, pick(split.train, n), pick(split.val, n // 4), pick(split.test, n // 4),
                 None if split.independent is None else split.independent[: n // 4])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m titans_ts.genomics.benchmark",
                                     description=__doc__.split("\n\n", 1)[1])
    parser.add_argument("--data-dir", default="../shared/data/genomics", help="folder of the shared genomics data")
    parser.add_argument("--datasets", nargs="+", choices=DATASETS, default=list(DATASETS))
    parser.add_argument("--epochs", type=int, help="most training epochs of the Titans model (default: the "
                        "classifier's)")
    parser.add_argument("--variant", default="mag", choices=("mal", "mag", "mac", "lmm"))
    parser.add_argument("--seed", type=int, default=0, help="random_state of the Titans model (the splits stay "
                        "seed 0; default 0)")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                        help="a TitansDNAClassifier parameter for this run, VALUE as JSON (e.g. mutation=0 or "
                             "rc=null); repeatable")
    parser.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS),
                        help="which models to run (default: all)")
    parser.add_argument("--k", type=int, default=6, help="k of the k-mer baseline (default 6)")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--quick", action="store_true", help="a tiny smoke run: 200 training sequences, 1 epoch")
    parser.add_argument("--json", help="also write the rows and the run's metadata as JSON here")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    params = dict(variant=args.variant, random_state=args.seed)
    if args.epochs is not None:
        params.update(epochs=args.epochs)
    if args.quick:
        params.update(d_model=16, n_layers=1, heads=2, epochs=1)
    for item in args.set:
        name, _, value = item.partition("=")
        try:
            params[name] = json.loads(value)
        except json.JSONDecodeError:
            parser.exit(2, f"{parser.prog}: error: --set {item}: VALUE must be JSON (a number, true, null, \"text\")\n")
    try:
        TitansDNAClassifier(**params)._check_params()
    except (TypeError, ValueError) as err:
        parser.exit(2, f"{parser.prog}: error: --set: {err}\n")
    rows = []
    for name in args.datasets:
        try:
            split = load(name, Path(args.data_dir))
        except (OSError, ValueError) as err:
            parser.exit(2, f"{parser.prog}: error: {err}\n")
        if args.quick:
            split = subsample(split, 200)
        models = {"titans": (f"titans-{params['variant']}", titans(params)),
                  "kmer": (f"{args.k}-mer logreg", kmer_baseline(args.k)),
                  "kmer-position": (f"{args.k}-mer+pos logreg", kmer_baseline(args.k, positional=True))}
        for model, trainer in (models[m] for m in args.models):
            rows.append(evaluate(name, model, split, trainer))
            print(table(rows[-1:]).splitlines()[-1] if len(rows) > 1 else table(rows), flush=True)
    print()
    print(table(rows))
    if args.json:
        command = ["python -m titans_ts.genomics.benchmark", *(argv if argv is not None else sys.argv[1:])]
        meta = {"command": " ".join(command), "date": datetime.date.today().isoformat(),
                "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores",
                "torch_threads": torch.get_num_threads(), "titans_params": params,
                "split": "70/10/20 stratified, seed 0 (validation for early stopping / C only)", "published": PUBLISHED}
        text = json.dumps({"meta": meta, "rows": [asdict(r) for r in rows]}, indent=2) + "\n"
        write_atomic(args.json, lambda tmp: Path(tmp).write_text(text))
    return 0


if __name__ == "__main__":
    sys.exit(main())
