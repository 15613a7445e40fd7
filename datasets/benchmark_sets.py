"""Labelled promoter and enhancer sets in the layouts they are published in (labels: 1 = the element, 0 = not).

`read_umarov` pairs a promoter FASTA of Umarov & Solovyev's CNNProm sets (251 bp around the transcription
start) with its non-promoter FASTA; their headers are free text, some still carrying the `gt;` left by an
HTML-escaped `>`, so record ids are rebuilt as `<file>:<record number>:<first header word>`.
`read_drosophila_enhancers` reads the Genomic Benchmarks `drosophila_enhancers_stark` CSV
(`sequence,target` with `positive` / `negative`) through polars. Files may be gzip-compressed.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

import polars as pl

from .sequences import LabelledSequences, read_classes

PathLike = str | os.PathLike[str]

UMAROV_SETS = {  # name -> (promoter file, non-promoter file), both `<stem>.fa.gz`
    "mouse_tata": ("Mouse_tata", "Mouse_nonprom"),
    "arabidopsis_tata": ("Arabidopsis_tata", "Arabidopsis_non_prom"),
    "arabidopsis_nontata": ("Arabidopsis_non_tata", "Arabidopsis_non_prom"),
}
_ESCAPED = re.compile(r"^(?:&?gt;)+")
_LETTERS = r"^[A-Za-z]+$"
_TARGETS = {"positive": 1, "negative": 0}


def read_umarov(folder: PathLike, name: str) -> LabelledSequences:
    """One of `UMAROV_SETS` from `folder`: its promoters (label 1), then its non-promoters (label 0)."""
    if name not in UMAROV_SETS:
        raise ValueError(f"unknown Umarov set {name!r}; expected one of {sorted(UMAROV_SETS)}")
    files = {label: Path(folder) / f"{stem}.fa.gz" for label, stem in zip((1, 0), UMAROV_SETS[name])}
    raw = read_classes(files)
    ids, counts = [], dict.fromkeys(files, 0)
    for label, header in zip(raw.labels, raw.ids):
        counts[label] += 1
        ids.append(f"{files[label].name.split('.')[0]}:{counts[label]}:{_ESCAPED.sub('', header)}")
    return LabelledSequences(ids, raw.seqs, raw.labels)


def read_drosophila_enhancers(path: PathLike) -> LabelledSequences:
    """The `sequence,target` CSV (plain or gzip); ids are `<file>:<line>` (the header is line 1)."""
    source = os.fspath(path)
    try:
        frame = pl.read_csv(source, infer_schema=False)
    except pl.exceptions.PolarsError as err:
        raise ValueError(f"{source}: not a readable CSV ({err})") from None
    missing = sorted({"sequence", "target"} - set(frame.columns))
    if missing:
        raise ValueError(f"{source}: no {' / '.join(missing)} column (columns: {frame.columns})")
    if frame.is_empty():
        raise ValueError(f"{source}: no sequences, only a header")
    frame = frame.with_columns(pl.col("sequence").str.strip_chars(), pl.col("target").str.strip_chars())
    problems = [(~pl.col("sequence").fill_null("").str.contains(_LETTERS), "a sequence that is not letters"),
                (~pl.col("target").fill_null("").is_in(list(_TARGETS)), "a target other than positive / negative")]
    for bad, what in problems:
        rows = frame.with_row_index("line", offset=2).filter(bad)
        if not rows.is_empty():
            raise ValueError(f"{source} line {rows['line'][0]}: {what} ({rows.row(0, named=True)['target']!r} "
                             f"target, sequence starting {str(rows['sequence'][0])[:20]!r})")
    name = Path(source).name
    ids = [f"{name}:{line}" for line in range(2, frame.height + 2)]
    return LabelledSequences(ids, frame["sequence"].to_list(), frame["target"].replace_strict(_TARGETS).to_list())
