"""Small real data sets shipped inside the package, so examples and tests run without downloads.

`data/ETTh1.csv.gz`: the full ETTh1 file of ETDataset (Zhou et al., Informer, AAAI 2021), unchanged and
only gzip-compressed (`gzip -9 -n`), under CC BY-ND 4.0; see `data/ETTh1.LICENSE.txt`.

`data/dna_promoters_sample.tsv`: 400 E. coli promoter / background sequences (81 bp, 200 per class,
header `seq<TAB>label`, labels `promoter` / `background`), MIT; see `data/dna_promoters_sample.LICENSE.txt`.
Made once from the E. coli promoter set's positive.fa and negative.fa with `read_fasta` and
`rng = numpy.random.default_rng(0)`: 200 indices `rng.choice(2860, 200, replace=False)` from the
positives, then 200 from the negatives, rows shuffled with `rng.permutation(400)`, every sequence
upper-cased (the original promoters are lower case, a label leak).
"""
from __future__ import annotations

from importlib.resources import files
from pathlib import Path

import polars as pl

from .ett import load_ett
from .sequences import LabelledSequences, read_labelled


def bundled_ett_path() -> Path:
    """Path of the bundled ETTh1 CSV (gzip; `load_ett` and `ett_splits` read it directly)."""
    return _data_file("ETTh1.csv.gz")


def bundled_dna_path() -> Path:
    """Path of the bundled 400-sequence E. coli promoter TSV (`seq<TAB>label`)."""
    return _data_file("dna_promoters_sample.tsv")


def load_bundled_ett() -> pl.DataFrame:
    """The bundled ETTh1 series as a validated frame (17,420 hourly rows, `date` plus 7 channels)."""
    return load_ett(bundled_ett_path())


def load_bundled_dna() -> LabelledSequences:
    """The bundled E. coli promoter sample as (ids, seqs, labels)."""
    return read_labelled(bundled_dna_path())


def _data_file(name: str) -> Path:
    resource = files(__package__) / "data" / name
    if not isinstance(resource, Path):
        raise RuntimeError(f"titans_ts.datasets is installed as an archive; {name} needs an unpacked install")
    return resource
