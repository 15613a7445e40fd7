"""`titans-dna predict` and `scan` as streams of tasks, run in this process or spread over Dask workers.

Records are read lazily and grouped into tasks (a batch of reads for `predict`, one record for `scan`); each
task returns its finished TSV rows. With a Dask client (`--workers N`: a local cluster of N processes;
`--scheduler ADDRESS`: a running one, e.g. started by dask-jobqueue on SLURM or by the Dask Helm chart on
Kubernetes) tasks go to the workers, at most a few per worker in flight, so the input is never held whole in
one process, and the rows come back in input order. A worker loads the model once and keeps it. Without a
client the same tasks run here in turn, so both give the same bytes. Dask reruns the tasks of a worker that
dies; since rows are taken from the tasks in order, none is lost or written twice.
"""
from __future__ import annotations

import csv
import functools
import io
import os
from collections.abc import Iterable, Iterator
from typing import Any

from titans_ts.distributed import batched, ordered_map

from .classifier import TitansDNAClassifier
from .scanning import scan

READS_PER_TASK = 4096  # a multiple of the classifier's batch (128): batches form as in one call


def tsv(rows: Iterable[list]) -> str:
    buf = io.StringIO()
    csv.writer(buf, delimiter="\t", lineterminator="\n").writerows(rows)
    return buf.getvalue()


@functools.lru_cache(maxsize=4)
def _load(path: str, mtime_ns: int) -> TitansDNAClassifier:
    return TitansDNAClassifier.load(path)


def load_model(path: str) -> TitansDNAClassifier:
    """The classifier at `path`, loaded once per process (and again when the file changes)."""
    return _load(os.path.abspath(path), os.stat(path).st_mtime_ns)


def predict_rows(model: str, records: list[tuple[str, str, str]]) -> str:
    """TSV rows `id, predicted_label, p_<class>…` of (id, sequence, name for messages) records."""
    clf = load_model(model)
    probs = clf.predict_proba([r[1] for r in records], names=[r[2] for r in records])
    labels = clf.classes_[probs.argmax(1)].tolist()
    return tsv([rid, label, *(f"{p:.6f}" for p in row)] for (rid, _, _), label, row in zip(records, labels, probs))


def scan_rows(model: str, record: tuple[str, str, str], window: int, stride: int) -> Iterator[str]:
    """TSV rows `chrom, start, end, predicted_label, p_<class>…` of the windows along one record, one by one."""
    clf = load_model(model)
    rid, seq, name = record
    for w in scan(clf, seq, window, stride, name=name):
        label = clf.classes_[int(w.probs.argmax())]
        yield tsv([[rid, w.start, w.end, label, *(f"{p:.6f}" for p in w.probs)]])


def scan_record(model: str, window: int, stride: int, record: tuple[str, str, str]) -> str:
    """All of `scan_rows` for one record as one text (a task's result)."""
    return "".join(scan_rows(model, record, window, stride))


def predict_text(model: str, records: Iterable[tuple[str, str, str]], client: Any = None) -> Iterator[str]:
    """`predict_rows` of (id, sequence, name) records in tasks of `READS_PER_TASK`, in input order."""
    return ordered_map(functools.partial(predict_rows, model), batched(records, READS_PER_TASK), client)


def scan_text(model: str, records: Iterable[tuple[str, str, str]], window: int, stride: int,
              client: Any = None) -> Iterator[str]:
    """`scan_rows` of every record in input order: window by window here, a record per task on Dask."""
    if client is None:
        for record in records:
            yield from scan_rows(model, record, window, stride)
        return
    yield from ordered_map(functools.partial(scan_record, model, window, stride), records, client)
