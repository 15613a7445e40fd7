"""Genomics benchmark: `python -m titans_ts.genomics.benchmark [--datasets ...] [--seeds 0 1 2] [--json OUT]`.

Data (the shared folder, `--data-dir`): Genomic Benchmarks `human_nontata_promoters` (only its official
test split is available), the DNABERT core-promoter set, the E. coli promoters (positive / negative FASTA;
the independent file holds 256 promoters only, so its score is the share recognised as promoters), the
Umarov mouse TATA and Arabidopsis non-TATA promoters against their non-promoters, and the Drosophila
enhancers of Genomic Benchmarks (258 to 3,061 bp: longer than one `max_len` piece). Every set is split here
70/10/20, stratified, with the fixed seed 0, and read case-insensitively (the E. coli positives are lower
case). Rows: Titans from scratch; Titans fine-tuned from a pretrained model (`--init DATASET=PATH`); on sets
with sequences longer than `max_len`, each of these Titans models trained and read on each sequence's
first `max_len` bases only; and, in the same run, 6-mer logistic regression, 6-mer + position logistic regression
and a three-layer CNN. Every model reads both strands. Each row is the median over `--seeds` (model seeds;
the split stays fixed); the logistic regressions do not depend on a seed and run once. Choices are made on
the validation part only: C and the position weight of the regressions, the epoch kept (early stopping),
and the Titans row marked `*` (best median validation accuracy among the Titans rows of a set). `--set`
changes a parameter of the Titans model, so each configuration is one command.
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
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from sklearn.metrics import log_loss

from titans_ts.datasets import (
    read_classes,
    read_drosophila_enhancers,
    read_labelled,
    read_sequences,
    read_umarov,
    stratified_split,
)
from titans_ts.state import write_atomic

from .baselines import CNNClassifier, KmerLogisticRegression
from .classifier import TitansDNAClassifier
from .metrics import classification_metrics

DATASETS = ("nontata", "dnabert_core", "ecoli", "mouse_tata", "arabidopsis_nontata", "drosophila")
MODELS = ("titans", "titans-truncated", "kmer", "kmer-position", "cnn")
SPLIT = "70/10/20 stratified, fixed seed 0 (validation: early stopping, C, and the choice of the Titans row)"
PUBLISHED = {"nontata": "full official split (27k train): CNN 84.6, HyenaDNA 96.6, Titans neural memory 96.6"}


class Estimator(Protocol):
    def fit(self, seqs: Sequence[str], y: Any, validation: tuple[Sequence[str], Any]) -> Any: ...

    def predict_proba(self, seqs: Sequence[str]) -> np.ndarray: ...


@dataclass
class Row:
    """One model on one set: medians over its runs (one per seed) of every score and time."""

    dataset: str
    model: str
    seeds: list[int]  # the model seeds run; empty for a model that does not depend on one (run once)
    n_train: int
    n_test: int
    accuracy: float
    mcc: float
    auroc: float | None
    train_s: float
    infer_seq_s: float
    independent_recall: float | None = None
    val_accuracy: float | None = None  # on the validation part: what a choice between configurations may use
    val_auroc: float | None = None
    val_log_loss: float | None = None
    accuracies: list[float] = field(default_factory=list)  # test accuracy of each run
    chosen: bool = False  # the Titans row with the best median validation accuracy on its set


@dataclass
class Split:
    seqs: list[str]
    labels: np.ndarray
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    independent: list[str] | None = None

    def part(self, indices: np.ndarray) -> tuple[list[str], np.ndarray]:
        return [self.seqs[i] for i in indices], self.labels[indices]


def load(name: str, root: Path) -> Split:
    """One benchmark data set, split 70/10/20 stratified with the fixed seed 0."""
    independent = None
    if name == "nontata":
        _, seqs, labels = read_labelled(root / "gb_human_nontata_promoters_test.tsv")
    elif name == "dnabert_core":
        _, seqs, labels = read_labelled(root / "dnabert_prom_core_dev.csv")
    elif name == "ecoli":
        folder = root / "ecoli_promoters"
        _, seqs, labels = read_classes({1: folder / "positive.fa", 0: folder / "negative.fa"})
        independent = read_sequences(folder / "independent.fa").seqs
    elif name == "drosophila":
        _, seqs, labels = read_drosophila_enhancers(root / "drosophila_enhancers_stark_test.csv.gz")
    elif name in ("mouse_tata", "arabidopsis_nontata"):
        _, seqs, labels = read_umarov(root / "umarov_promoters", name)
    else:
        raise ValueError(f"unknown data set {name!r}; expected one of {DATASETS}")
    labels = np.asarray(labels)
    return Split(seqs, labels, *stratified_split(labels, (0.7, 0.1, 0.2), seed=0), independent)


class Truncated:
    """An estimator that sees only the first `length` bases of every sequence, in training and prediction."""

    def __init__(self, estimator: Estimator, length: int):
        self.estimator, self.length = estimator, length

    def fit(self, seqs: Sequence[str], y: Any, validation: tuple[Sequence[str], Any]) -> Truncated:
        self.estimator.fit(self._cut(seqs), y, validation=(self._cut(validation[0]), validation[1]))
        return self

    def predict_proba(self, seqs: Sequence[str]) -> np.ndarray:
        return self.estimator.predict_proba(self._cut(seqs))

    def _cut(self, seqs: Sequence[str]) -> list[str]:
        return [s[: self.length] for s in seqs]


def run_once(split: Split, estimator: Estimator) -> dict[str, Any]:
    """Fit on the training part (validation part for the choices), score validation and test, time both."""
    start = time.perf_counter()
    estimator.fit(*split.part(split.train), validation=split.part(split.val))
    train_s = time.perf_counter() - start
    test, y_test = split.part(split.test)
    start = time.perf_counter()
    probs = estimator.predict_proba(test)
    speed = len(test) / (time.perf_counter() - start)
    classes = np.unique(split.labels)
    m = classification_metrics(y_test, probs, classes)
    val, y_val = split.part(split.val)
    val_probs = estimator.predict_proba(val)
    v = classification_metrics(y_val, val_probs, classes)
    recall = None
    if split.independent is not None:  # every independent sequence is a promoter (class 1)
        recall = float((classes[estimator.predict_proba(split.independent).argmax(1)] == 1).mean())
    return dict(accuracy=m["accuracy"], mcc=m["mcc"], auroc=m["auroc"], train_s=train_s, infer_seq_s=speed,
                independent_recall=recall, val_accuracy=v["accuracy"], val_auroc=v["auroc"],
                val_log_loss=float(log_loss(y_val, val_probs, labels=classes)))


def evaluate(dataset: str, model: str, split: Split, make: Callable[[int], Estimator],
             seeds: Sequence[int]) -> Row:
    """`make(seed)` fitted and scored once per seed (`seeds` empty: once, seed 0); medians of every field."""
    runs = [run_once(split, make(seed)) for seed in (seeds or [0])]
    median = {key: None if runs[0][key] is None else float(np.median([r[key] for r in runs])) for key in runs[0]}
    return Row(dataset, model, list(seeds), len(split.train), len(split.test), **median,
               accuracies=[r["accuracy"] for r in runs])


def choose(rows: Sequence[Row]) -> None:
    """Mark, per set, the Titans row with the best median validation accuracy (the test part plays no part)."""
    for r in rows:
        r.chosen = False
    for dataset in dict.fromkeys(r.dataset for r in rows):
        titans = [r for r in rows if r.dataset == dataset and r.model.startswith("titans")]
        if titans:
            max(titans, key=lambda r: r.val_accuracy).chosen = True


def margins(rows: Sequence[Row]) -> list[str]:
    """Per set: the chosen Titans row's test accuracy against the best baseline's (the strictest bar)."""
    lines = []
    for dataset in dict.fromkeys(r.dataset for r in rows):
        chosen = [r for r in rows if r.dataset == dataset and r.chosen]
        baselines = [r for r in rows if r.dataset == dataset and not r.model.startswith("titans")]
        if chosen and baselines:
            best = max(baselines, key=lambda r: r.accuracy)
            lines.append(f"{dataset}: {chosen[0].model} {chosen[0].accuracy:.3f} vs best baseline {best.model} "
                         f"{best.accuracy:.3f}: {100 * (chosen[0].accuracy - best.accuracy):+.1f} points")
    return lines


def table(rows: Sequence[Row]) -> str:
    head = f"{'dataset':<19} {'model':<26} {'runs':>4} {'train':>5} {'test':>5} {'val':>6} {'v_auc':>6} " \
           f"{'acc':>6} {'mcc':>6} {'auroc':>6} {'train_s':>7} {'seq/s':>6} {'indep':>6}"
    lines = [head, "-" * len(head)]
    for r in rows:
        fmt = lambda v: "   n/a" if v is None else f"{v:6.3f}"  # noqa: E731
        name = ("* " if r.chosen else "") + r.model
        lines.append(f"{r.dataset:<19} {name:<26} {len(r.seeds) or 1:>4} {r.n_train:>5} {r.n_test:>5} "
                     f"{fmt(r.val_accuracy)} {fmt(r.val_auroc)} {fmt(r.accuracy)} {fmt(r.mcc)} {fmt(r.auroc)} "
                     f"{r.train_s:7.1f} {r.infer_seq_s:6.0f} {fmt(r.independent_recall)}")
    return "\n".join(lines)


def subsample(split: Split, n: int) -> Split:
    """n random training, n/4 validation and n/4 test indices, seed 0 (for --subsample and --quick)."""
    rng = np.random.default_rng(0)
    pick = lambda idx, m: np.sort(rng.choice(idx, min(m, len(idx)), replace=False))  # noqa: E731
    return Split(split.seqs, split.labels, pick(split.train, n), pick(split.val, n // 4), pick(split.test, n // 4),
                 None if split.independent is None else split.independent[: n // 4])


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m titans_ts.genomics.benchmark",
                                     description=__doc__.split("\n\n", 1)[1])
    parser.add_argument("--data-dir", default="../shared/data/genomics", help="folder of the shared genomics data")
    parser.add_argument("--datasets", nargs="+", choices=DATASETS, default=list(DATASETS))
    parser.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS),
                        help="which models to run (default: all; titans-truncated only where a sequence is "
                             "longer than max_len)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0],
                        help="model seeds; each row is the median over them (the split stays seed 0; default 0)")
    parser.add_argument("--epochs", type=int, help="most training epochs of the Titans model (default: the "
                        "classifier's)")
    parser.add_argument("--variant", default="mag", choices=("mal", "mag", "mac", "lmm"))
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                        help="a TitansDNAClassifier parameter for this run, VALUE as JSON (e.g. mutation=0 or "
                             "rc=null); repeatable")
    parser.add_argument("--init", action="append", default=[], metavar="DATASET=PATH",
                        help="also fine-tune Titans on DATASET from the pretrained model at PATH (a row beside "
                             "the one from scratch); repeatable")
    parser.add_argument("--k", type=int, default=6, help="k of the k-mer baselines (default 6)")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--subsample", type=int, metavar="N",
                        help="N random training sequences per set, N/4 validation and N/4 test (seed 0)")
    parser.add_argument("--quick", action="store_true", help="a tiny smoke run: a small Titans model, 1 epoch "
                        "for the trained networks, --subsample 200 unless given")
    parser.add_argument("--json", help="also write the rows and the run's metadata as JSON here")
    return parser


def _titans_params(args: argparse.Namespace, parser: argparse.ArgumentParser) -> dict[str, Any]:
    params: dict[str, Any] = dict(variant=args.variant)
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
    return params


def _inits(args: argparse.Namespace, parser: argparse.ArgumentParser, params: dict[str, Any]) -> dict[str, str]:
    inits = {}
    for item in args.init:
        dataset, sep, path = item.partition("=")
        if not sep or dataset not in DATASETS:
            parser.exit(2, f"{parser.prog}: error: --init {item}: expected DATASET=PATH with DATASET one of "
                           f"{', '.join(DATASETS)}\n")
        if not Path(path).is_file():
            parser.exit(2, f"{parser.prog}: error: --init {item}: no pretrained model at {path}\n")
        try:
            TitansDNAClassifier(**params, init=path)._check_params()
        except (TypeError, ValueError) as err:
            parser.exit(2, f"{parser.prog}: error: --init {item}: {err}\n")
        inits[dataset] = path
    return inits


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.subsample is not None and args.subsample < 4:
        parser.exit(2, f"{parser.prog}: error: --subsample must be at least 4, got {args.subsample}\n")
    if args.threads:
        torch.set_num_threads(args.threads)
    params = _titans_params(args, parser)
    inits = _inits(args, parser, params)
    max_len = TitansDNAClassifier(**params).max_len
    cnn_epochs = 1 if args.quick else 30
    size = args.subsample or (200 if args.quick else None)
    command = ["python -m titans_ts.genomics.benchmark", *(argv if argv is not None else sys.argv[1:])]
    meta = {"command": " ".join(command), "date": datetime.date.today().isoformat(),
            "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores", "seeds": args.seeds,
            "torch_threads": torch.get_num_threads(), "titans_params": params, "init": inits,
            "subsample": size, "split": SPLIT, "published": PUBLISHED}
    rows: list[Row] = []

    def seeded(seed: int, **extra: Any) -> dict[str, Any]:  # the seed of the row wins over --set random_state
        return {**params, **extra, "random_state": seed}

    for name in args.datasets:
        try:
            split = load(name, Path(args.data_dir))
        except (OSError, ValueError) as err:
            parser.exit(2, f"{parser.prog}: error: {err}\n")
        if size is not None:
            split = subsample(split, size)
        titans = f"titans-{params['variant']}"
        starts = {"": {}, **({f" from {Path(inits[name]).name}": {"init": inits[name]}} if name in inits else {})}
        long = max(len(s) for s in split.seqs) > max_len
        models: list[tuple[str, str, Callable[[int], Estimator], bool]] = [  # (key, row name, make, uses a seed)
            # from scratch and fine-tuned, then (sequences longer than max_len) each start truncated
            *[("titans", titans + label, lambda s, kw=kw: TitansDNAClassifier(**seeded(s, **kw)), True)
              for label, kw in starts.items()],
            *[("titans-truncated", f"{titans}{label} first {max_len} bp",
               lambda s, kw=kw: Truncated(TitansDNAClassifier(**seeded(s, **kw)), max_len), True)
              for label, kw in (starts.items() if long else ())],
            ("kmer", f"{args.k}-mer logreg", lambda s: KmerLogisticRegression(args.k), False),
            ("kmer-position", f"{args.k}-mer+pos logreg", lambda s: KmerLogisticRegression(args.k, True), False),
            ("cnn", "cnn", lambda s: CNNClassifier(epochs=cnn_epochs, random_state=s), True)]
        for key, model, make, uses_seed in models:
            if key in args.models:
                rows.append(evaluate(name, model, split, make, args.seeds if uses_seed else []))
                print(table(rows[-1:]).splitlines()[-1] if len(rows) > 1 else table(rows), flush=True)
                if args.json:  # after every row, so that an interrupted run keeps what it finished
                    write_json(args.json, meta, rows)
    choose(rows)
    print(f"\nsplit: {SPLIT}; medians over model seeds {args.seeds}\n")
    print(table(rows))
    print("\n".join(["", *margins(rows)]))
    return 0


def write_json(path: str, meta: dict[str, Any], rows: list[Row]) -> None:
    """The rows so far (the Titans row chosen among them) and the run's metadata, written atomically."""
    choose(rows)
    text = json.dumps({"meta": meta, "rows": [asdict(r) for r in rows]}, indent=2) + "\n"
    write_atomic(path, lambda tmp: Path(tmp).write_text(text))


if __name__ == "__main__":
    sys.exit(main())
