"""`titans-dna`: pretrain on genome, train, predict, evaluate and scan DNA classifiers, and show their memory's surprise, from
the command line.

Bad input (unknown characters, empty files or records, labels the model does not know, a truncated
gzip, a missing file) ends with exit status 2 and one line on stderr naming the file and record or
line; output files are written atomically, so a failed run leaves none behind.
"""
from __future__ import annotations

import argparse
import gzip
import json
import sys
import time
import zlib
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TextIO

from titans_ts.cli import (ArgumentParser, UsageError, add_dask_args, add_device_flags, device_params, run,
                           write_output)
from titans_ts.datasets import iter_sequences, read_labelled, read_sequences

_GZIP_MAGIC = b"\x1f\x8b"
_READABLE_BASES = 120  # the surprise plot writes the bases along records up to this length


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(prog="titans-dna", description="Classify DNA sequences with a Titans neural-memory model. "
                     "Input: FASTA or FASTQ (plain or gzip, found by content) or a table "
                     "(CSV `sequence,label` / TSV `seq<TAB>label`). Letters are read case-insensitively; "
                     "N and IUPAC codes count as a uniform mix of the bases they allow.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=ArgumentParser)

    pre = sub.add_parser("pretrain", help="train the encoder on unlabelled genome FASTA by next-base prediction "
                         "(self-supervised), for `train --init`")
    pre.add_argument("--fasta", required=True, nargs="+", metavar="FILE",
                     help="genome FASTA files (plain, gzip or bgzip); lower-case bases count, runs of N are skipped")
    pre.add_argument("--model", required=True, help="where to write the model (rewritten after every epoch)")
    pre.add_argument("--epochs", type=int, default=10, help="most epochs (each reads every training window on a "
                     "random strand; early stopping on the held-out bases; default 10)")
    pre.add_argument("--max-bases", type=int, help="read at most this many bases from the files (default: all)")
    pre.add_argument("--validation-fraction", type=float, default=0.05,
                     help="the last share of every record held out to score the model (default 0.05)")
    pre.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    pre.add_argument("--quiet", action="store_true", help="no progress bar")

    train = sub.add_parser("train", help="train a model on labelled sequences and write it to --model")
    _add_labelled(train)
    train.add_argument("--model", required=True, help="where to write the model (safetensors + JSON, no pickle)")
    train.add_argument("--epochs", type=int, default=20,
                       help="most epochs (early stopping on validation loss; default 20)")
    train.add_argument("--init", metavar="PRETRAINED", help="start the embedding and encoder from a model written by "
                       "`titans-dna pretrain` (the architecture defaults to that model's)")
    train.add_argument("--variant", choices=("mal", "mag", "mac", "lmm"),
                       help="Titans variant (default mag, or the --init model's)")
    train.add_argument("--tokenizer", choices=("kmer", "nucleotide"),
                       help="base embedding: a k-mer table plus a linear part (kmer, the default), or the linear "
                            "part alone (nucleotide)")
    train.add_argument("--k", type=int,
                       help="bases each position is embedded from: the k-mer length, and the width of the "
                            "linear part (default 6, or the --init model's)")
    train.add_argument("--batch-size", type=int, default=64, help="training batch size (default 64)")
    train.add_argument("--validation-fraction", type=float, default=0.1,
                       help="stratified share held out for early stopping (default 0.1)")
    train.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    train.add_argument("--quiet", action="store_true", help="no progress bar")
    add_device_flags(train)

    predict = sub.add_parser("predict", help="predict the class of every sequence; TSV id, predicted_label, p_<class>")
    predict.add_argument("--model", required=True, help="a model written by `titans-dna train`")
    predict.add_argument("inputs", nargs="+", metavar="INPUT", help="FASTA / FASTQ files or sequence tables")
    predict.add_argument("--out", help="write the TSV here instead of stdout")
    add_dask_args(predict, "the records")

    evaluate = sub.add_parser("evaluate", help="accuracy, MCC, AUROC and the confusion matrix on labelled data "
                              "(with more than two classes also each class's precision and recall)")
    evaluate.add_argument("--model", required=True, help="a model written by `titans-dna train`")
    _add_labelled(evaluate)
    evaluate.add_argument("--json", help="also write the metrics as JSON (keys accuracy, mcc, auroc, confusion, "
                          "and per_class with more than two classes)")

    scan_p = sub.add_parser("scan", help="score sliding windows along long records as a stream (BED-like TSV)")
    scan_p.add_argument("--model", required=True, help="a model written by `titans-dna train`")
    scan_p.add_argument("input", metavar="INPUT", help="FASTA / FASTQ file of long records (e.g. a chromosome)")
    scan_p.add_argument("--window", type=int, help="window length in bases (default: the training length)")
    scan_p.add_argument("--stride", type=int, help="step between windows in bases (default: half the window)")
    scan_p.add_argument("--out", help="write the TSV here instead of stdout")
    add_dask_args(scan_p, "the records")

    surprise_p = sub.add_parser("surprise", help="the memory's surprise at every base (TSV id, position, momentary, "
                                "past) and a plot of it along one record")
    surprise_p.add_argument("--model", required=True, help="a model written by `titans-dna train`")
    surprise_p.add_argument("input", metavar="INPUT", help="FASTA / FASTQ file or sequence table")
    surprise_p.add_argument("--out", help="write the TSV here instead of stdout")
    surprise_p.add_argument("--plot", metavar="PNG", help="PNG of the surprise along one record (default the first)")
    surprise_p.add_argument("--id", dest="record", metavar="ID", help="the record to plot (with --plot)")
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


def _emit(text: str, out: str | None) -> None:
    _emit_with(lambda fh: fh.write(text), out)


def _emit_with(write: Callable[[TextIO], object], out: str | None) -> None:
    """`write` to stdout, or atomically to the file `out`."""
    if out is None:
        write(sys.stdout)
    else:
        _write_file(out, write)


def _write_file(path: str, write: Callable[[TextIO], object]) -> None:
    """Write through `write(fh)`, atomically: a failed run leaves no output file behind."""

    def to_tmp(tmp: str) -> None:
        with open(tmp, "w") as fh:
            write(fh)

    write_output(path, to_tmp)


# -- commands (heavy imports inside, so usage errors come back at once) ----------------------------------
def _pretrain(args: argparse.Namespace) -> None:
    from .pretraining import pretrain

    report = pretrain(args.fasta, args.model, epochs=args.epochs, max_bases=args.max_bases,
                      validation_fraction=args.validation_fraction, progress=not args.quiet, random_state=args.seed)
    print(f"held-out bits per base: {report.bits_per_base:.4f} (order-5 Markov model: "
          f"{report.markov_bits_per_base:.4f}) on {report.validation_bases} bases, both strands")
    print(f"trained on {report.train_bases} bases, {report.epochs} epochs, {report.seconds:.0f} s; wrote {args.model}")


def _train(args: argparse.Namespace) -> None:
    seqs, labels, names = _labelled(args)
    from .classifier import TitansDNAClassifier
    from .pretraining import pretrained_params

    params = pretrained_params(args.init) if args.init is not None else {}
    given = {name: getattr(args, name) for name in ("variant", "tokenizer", "k") if getattr(args, name) is not None}
    clf = TitansDNAClassifier(**{**params, **given}, init=args.init, epochs=args.epochs,
                              batch_size=args.batch_size, validation_fraction=args.validation_fraction,
                              progress=not args.quiet, random_state=args.seed, **device_params(args))
    clf.fit(seqs, labels, names=names)
    clf.save(args.model)
    print(f"trained on {len(seqs)} sequences, classes {clf.classes_.tolist()}, {clf.n_epochs_} epochs; "
          f"wrote {args.model}", file=sys.stderr)


def _stream(paths: Sequence[str]) -> Iterator[tuple[str, str, str]]:
    """(id, sequence, name for messages) of every record of the files in turn: FASTA / FASTQ record by
    record, tables whole."""
    for path in paths:
        if _is_records(path):
            for i, (rid, seq) in enumerate(iter_sequences(path)):
                yield rid, seq, f"{path} record {i + 1} ({rid!r})"
        else:
            yield from zip(*_records(path))


def _predict(args: argparse.Namespace) -> None:
    from titans_ts.distributed import dask_client

    from .distributed import load_model, predict_text, tsv

    clf = load_model(args.model)
    header = ["id", "predicted_label", *(f"p_{c}" for c in clf.classes_.tolist())]

    def write(fh: TextIO) -> None:
        fh.write(tsv([header]))
        with dask_client(args.workers, args.scheduler) as client:
            fh.writelines(predict_text(args.model, _stream(args.inputs), client))

    _emit_with(write, args.out)


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
    for entry in metrics.get("per_class", []):
        print(f"  class {entry['class']}: precision={entry['precision']:.4f}  recall={entry['recall']:.4f}  "
              f"n={entry['support']}")


def _scan(args: argparse.Namespace) -> None:
    from titans_ts.distributed import dask_client

    from .distributed import load_model, scan_text, tsv
    from .scanning import check_scan_steps, default_steps

    clf = load_model(args.model)
    window, stride = default_steps(clf)
    window = args.window if args.window is not None else window
    stride = args.stride if args.stride is not None else (window // 2 if args.window is not None else stride)
    check_scan_steps(clf, window, stride)
    header = ["#chrom", "start", "end", "predicted_label", *(f"p_{c}" for c in clf.classes_.tolist())]
    bases = 0

    def records() -> Iterator[tuple[str, str, str]]:
        nonlocal bases
        for rid, seq, name in _stream([args.input]):
            bases += len(seq)
            yield rid, seq, name

    def write(fh: TextIO) -> None:
        fh.write(tsv([header]))
        with dask_client(args.workers, args.scheduler) as client:
            fh.writelines(scan_text(args.model, records(), window, stride, client))

    start = time.perf_counter()
    _emit_with(write, args.out)
    seconds = time.perf_counter() - start
    print(f"scanned {bases:,} bases in {seconds:.1f} s ({bases / seconds:,.0f} bases/s)", file=sys.stderr)


def _surprise(args: argparse.Namespace) -> None:
    if args.record is not None and args.plot is None:
        raise UsageError("--id names the record to plot: give --plot too")
    ids, seqs, names = _records(args.input)
    shown = 0
    if args.record is not None:
        if args.record not in ids:
            raise UsageError(f"{args.input}: no record with id {args.record!r}")
        shown = ids.index(args.record)
    for path in (args.out, args.plot):  # both outputs or neither
        if path is not None and not Path(path).parent.is_dir():
            raise UsageError(f"cannot write {path}: folder {Path(path).parent} does not exist")
    import numpy as np
    import polars as pl

    from .classifier import TitansDNAClassifier

    clf = TitansDNAClassifier.load(args.model)
    frame = clf.surprise(seqs, names=names)  # ids by index: record ids need not be unique
    table = frame.with_columns(id=pl.Series(ids).gather(frame["id"]),
                               **{c: np.char.mod("%.6g", frame[c].to_numpy()) for c in ("momentary", "past")})
    if args.out is None:
        sys.stdout.write(table.write_csv(separator="\t"))
    else:
        write_output(args.out, lambda tmp: table.write_csv(tmp, separator="\t"))
    if args.plot:
        probs = clf.predict_proba([seqs[shown]], names=[names[shown]])[0]
        label = clf.classes_[int(probs.argmax())]
        plot_surprise(frame.filter(frame["id"] == shown), seqs[shown], ids[shown], str(label), float(probs.max()),
                      args.plot)


def plot_surprise(scores, seq: str, rid: str, label: str, prob: float, path: str) -> None:
    """The memory's surprise along one record: momentary as a band, past as a line on its own axis, and
    the bases written along the bottom when the record is short enough to read them."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.transforms import blended_transform_factory

    x = scores["position"].to_numpy()
    momentary, past = scores["momentary"].to_numpy(), scores["past"].to_numpy()
    fig, ax = plt.subplots(figsize=(11, 3.4))
    ax.fill_between(x, 0, momentary, step="mid", color="tab:red", alpha=0.45, lw=0, label="momentary (eq 12)")
    ax.set_xlim(x[0] - 0.5, x[-1] + 0.5)
    ax.set_ylim(0, 1.3 * max(float(momentary.max()), 1e-12))  # headroom for the legend
    ax.set_xlabel("position (bp, 0-based)")
    ax.set_ylabel("momentary surprise", color="tab:red")
    twin = ax.twinx()  # the momentum has other units: its own scale
    twin.plot(x, past, drawstyle="steps-mid", color="tab:blue", lw=1.1, label="past, ‖η S‖ (eq 13)")
    twin.set_ylabel("past surprise", color="tab:blue")
    twin.set_ylim(0, 1.3 * max(float(past.max()), 1e-12))
    if len(x) <= _READABLE_BASES:
        along = blended_transform_factory(ax.transData, ax.transAxes)
        for p, base in zip(x, seq.upper()):
            ax.text(p, 0.03, base, transform=along, ha="center", va="bottom", fontsize=7, family="monospace")
    ax.legend(handles=ax.get_legend_handles_labels()[0] + twin.get_legend_handles_labels()[0],
              loc="upper left", frameon=False, ncol=2)
    ax.set_title(f"titans-dna: the memory's surprise along {rid} ({len(x)} bp), predicted {label} (p = {prob:.2f})")
    fig.tight_layout()
    write_output(path, lambda tmp: fig.savefig(tmp, format="png", dpi=110))
    plt.close(fig)


COMMANDS = {"pretrain": _pretrain, "train": _train, "predict": _predict, "evaluate": _evaluate, "scan": _scan, "surprise": _surprise}


def _main(argv: Sequence[str] | None) -> int:
    args = build_parser().parse_args(argv)
    COMMANDS[args.command](args)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run `titans-dna`; returns the exit status (0, or 2 for bad input with one line on stderr)."""
    return run(_main, argv, "titans-dna")


if __name__ == "__main__":
    sys.exit(main())
