"""`titans-dna`: train, predict, evaluate and scan DNA classifiers from the command line.

Bad input (unknown characters, empty files or records, labels the model does not know, a truncated
gzip, a missing file) ends with exit status 2 and one line on stderr naming the file and record or
line; output files are written atomically, so a failed run leaves none behind.
"""
from __future__ import annotations

import argparse
import csv
import gzip
import io
import json
import sys
import warnings
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TextIO

from titans_ts.cli import ArgumentParser, UsageError, run, write_output
from titans_ts.datasets import read_labelled, read_sequences

_GZIP_MAGIC = b"\x1f\x8b"


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(prog="titans-dna", description="Classify DNA sequences with a Titans neural-memory model. "
                     "Input: FASTA or FASTQ (plain or gzip, found by content) or a table "
                     "(CSV `sequence,label` / TSV `seq<TAB>label`). Letters are read case-insensitively; "
                     "N and IUPAC codes count as a uniform mix of the bases they allow.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=ArgumentParser)

    train = sub.add_parser("train", help="train a model on labelled sequences and write it to --model")
    _add_labelled(train)
    train.add_argument("--model", required=True, help="where to write the model (safetensors + JSON, no pickle)")
    train.add_argument("--epochs", type=int, default=20,
                       help="most epochs (early stopping on validation loss; default 20)")
    train.add_argument("--variant", default="mag", choices=("mal", "mag", "mac", "lmm"),
                       help="Titans variant (default mag)")
    train.add_argument("--tokenizer", default="kmer", choices=("kmer", "nucleotide"),
                       help="base embedding (default kmer)")
    train.add_argument("--k", type=int, default=6, help="k-mer length for --tokenizer kmer (default 6)")
    train.add_argument("--batch-size", type=int, default=64, help="training batch size (default 64)")
    train.add_argument("--validation-fraction", type=float, default=0.1,
                       help="stratified share held out for early stopping (default 0.1)")
    train.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    train.add_argument("--quiet", action="store_true", help="no progress bar")

    predict = sub.add_parser("predict", help="predict the class of every sequence; TSV id, predicted_label, p_<class>")
    predict.add_argument("--model", required=True, help="a model written by `titans-dna train`")
    predict.add_argument("inputs", nargs="+", metavar="INPUT", help="FASTA / FASTQ files or sequence tables")
    predict.add_argument("--out", help="write the TSV here instead of stdout")

    evaluate = sub.add_parser("evaluate", help="accuracy, MCC, AUROC and the confusion matrix on labelled data")
    evaluate.add_argument("--model", required=True, help="a model written by `titans-dna train`")
    _add_labelled(evaluate)
    evaluate.add_argument("--json", help="also write the metrics as JSON (keys accuracy, mcc, auroc, confusion)")

    scan_p = sub.add_parser("scan", help="score sliding windows along long records as a stream (BED-like TSV)")
    scan_p.add_argument("--model", required=True, help="a model written by `titans-dna train`")
    scan_p.add_argument("input", metavar="INPUT", help="FASTA / FASTQ file of long records (e.g. a chromosome)")
    scan_p.add_argument("--window", type=int, help="window length in bases (default: the training length)")
    scan_p.add_argument("--stride", type=int, help="step between windows in bases (default: half the window)")
    scan_p.add_argument("--out", help="write the TSV here instead of stdout")
    return parser


def _add_labelled(p: argparse.ArgumentParser) -> None:
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--data", help="table of labelled sequences: CSV sequence,label or TSV seq<TAB>label")
    source.add_argument("--class", dest="classes", action="append", metavar="NAME=FASTA",
                        help="one FASTA/FASTQ file per class, repeated: "
                             "--class promoter=pos.fa --class background=neg.fa")


# -- input ----------------------------------------------------------------------------------------------
def _is_records(path: str) -> bool:
    """True when the file (plain or gzip) starts like FASTA or FASTQ; tables are the rest."""
    with open(path, "rb") as fh:
        compressed = fh.read(2) == _GZIP_MAGIC
    try:
        with (gzip.open if compressed else open)(path, "rb") as fh:
            head = fh.read(4096)
    except (EOFError, OSError, zlib.error):
        return False  # the table reader names the corrupt gzip
    return head.lstrip()[:1] in (b">", b"@")


def _records(path: str) -> tuple[list[str], list[str], list[str]]:
    """(ids, sequences, names for messages) of a FASTA/FASTQ file or a table."""
    if _is_records(path):
        ids, seqs = read_sequences(path)
        names = [f"{path} record {i + 1} ({rid!r})" for i, rid in enumerate(ids)]
        return ids, seqs, names
    ids, seqs, _ = read_labelled(path)
    return ids, seqs, _table_names(path, ids)


def _labelled(args: argparse.Namespace) -> tuple[list[str], list, list[str]]:
    """(sequences, labels, names) from --data or the --class files."""
    if args.data is not None:
        ids, seqs, labels = read_labelled(args.data)
        return seqs, labels, _table_names(args.data, ids)
    seqs, labels, names = [], [], []
    for spec in args.classes:
        label, sep, path = spec.partition("=")
        if not sep or not label or not path:
            raise UsageError(f"--class expects NAME=FASTA, got {spec!r}")
        ids, s = read_sequences(path)
        seqs += s
        labels += [label] * len(s)
        names += [f"{path} record {i + 1} ({rid!r})" for i, rid in enumerate(ids)]
    return seqs, labels, names


def _table_names(path: str, ids: list[str]) -> list[str]:
    """Names for messages: `<path> line <n>` for the reader's default ids `<file>:<n>`, else the id."""
    prefix = f"{Path(path).name}:"
    return [f"{path} line {rid[len(prefix):]}" if rid.startswith(prefix) else f"{path} ({rid!r})" for rid in ids]


def _tsv(rows: list[list]) -> str:
    buf = io.StringIO()
    csv.writer(buf, delimiter="\t", lineterminator="\n").writerows(rows)
    return buf.getvalue()


def _emit(text: str, out: str | None) -> None:
    if out is None:
        sys.stdout.write(text)
    else:
        _write_file(out, lambda fh: fh.write(text))


def _write_file(path: str, write: Callable[[TextIO], object]) -> None:
    """Write through `write(fh)`, atomically: a failed run leaves no output file behind."""

    def to_tmp(tmp: str) -> None:
        with open(tmp, "w") as fh:
            write(fh)

    write_output(path, to_tmp)


# -- commands (heavy imports inside, so usage errors come back at once) ----------------------------------
def _train(args: argparse.Namespace) -> None:
    seqs, labels, names = _labelled(args)
    from .classifier import TitansDNAClassifier

    clf = TitansDNAClassifier(variant=args.variant, tokenizer=args.tokenizer, k=args.k, epochs=args.epochs,
                              batch_size=args.batch_size, validation_fraction=args.validation_fraction,
                              progress=not args.quiet, random_state=args.seed)
    clf.fit(seqs, labels, names=names)
    clf.save(args.model)
    print(f"trained on {len(seqs)} sequences, classes {clf.classes_.tolist()}, {clf.n_epochs_} epochs; "
          f"wrote {args.model}", file=sys.stderr)


def _predict(args: argparse.Namespace) -> None:
    from .classifier import TitansDNAClassifier

    clf = TitansDNAClassifier.load(args.model)
    ids, seqs, names = [], [], []
    for path in args.inputs:
        i, s, n = _records(path)
        ids += i
        seqs += s
        names += n
    probs = clf.predict_proba(seqs, names=names)
    header = ["id", "predicted_label", *(f"p_{c}" for c in clf.classes_.tolist())]
    labels = clf.classes_[probs.argmax(1)].tolist()
    rows = [[rid, label, *(f"{p:.6f}" for p in row)] for rid, label, row in zip(ids, labels, probs)]
    _emit(_tsv([header, *rows]), args.out)


def _evaluate(args: argparse.Namespace) -> None:
    import numpy as np

    from .classifier import TitansDNAClassifier
    from .metrics import classification_metrics

    clf = TitansDNAClassifier.load(args.model)
    seqs, labels, names = _labelled(args)
    known = {str(c): c for c in clf.classes_.tolist()}
    unknown = sorted({str(label) for label in labels} - set(known))
    if unknown:
        source = args.data or ", ".join(args.classes)
        raise UsageError(f"{source}: labels {unknown} are not classes of the model {list(known)}")
    y = np.asarray([known[str(label)] for label in labels])
    metrics = classification_metrics(y, clf.predict_proba(seqs, names=names), clf.classes_)
    if args.json:
        _emit(json.dumps(metrics, indent=2) + "\n", args.json)
    auroc = "n/a" if metrics["auroc"] is None else f"{metrics['auroc']:.4f}"
    print(f"n={metrics['n']}  accuracy={metrics['accuracy']:.4f}  mcc={metrics['mcc']:.4f}  auroc={auroc}")
    print("confusion (rows: true, columns: predicted; order " + ", ".join(map(str, metrics["classes"])) + ")")
    for row in metrics["confusion"]:
        print("  " + " ".join(f"{v:>6d}" for v in row))


def _scan(args: argparse.Namespace) -> None:
    from .classifier import TitansDNAClassifier
    from .scanning import check_scan_steps, default_steps, scan

    clf = TitansDNAClassifier.load(args.model)
    window, stride = default_steps(clf)
    window = args.window if args.window is not None else window
    stride = args.stride if args.stride is not None else (window // 2 if args.window is not None else stride)
    check_scan_steps(clf, window, stride)
    ids, seqs = read_sequences(args.input)
    header = ["#chrom", "start", "end", "predicted_label", *(f"p_{c}" for c in clf.classes_.tolist())]

    def write(fh: TextIO) -> None:
        fh.write(_tsv([header]))
        for i, (rid, seq) in enumerate(zip(ids, seqs)):
            for w in scan(clf, seq, window, stride, name=f"{args.input} record {i + 1} ({rid!r})"):
                label = clf.classes_[int(w.probs.argmax())]
                fh.write(_tsv([[rid, w.start, w.end, label, *(f"{p:.6f}" for p in w.probs)]]))

    if args.out is None:
        write(sys.stdout)
    else:
        _write_file(args.out, write)


COMMANDS = {"train": _train, "predict": _predict, "evaluate": _evaluate, "scan": _scan}


def _main(argv: Sequence[str] | None) -> int:
    args = build_parser().parse_args(argv)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*does not have many workers.*")
        warnings.filterwarnings("ignore", message=".*treespec.*")
        COMMANDS[args.command](args)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run `titans-dna`; returns the exit status (0, or 2 for bad input with one line on stderr)."""
    return run(_main, argv, "titans-dna")


if __name__ == "__main__":
    sys.exit(main())
