"""Data for titans-ts: loaders with the standard splits, synthetic generators, bundled samples.

Time series: `load_ett` reads ETT-format CSVs (`date,<channels...>`), `ett_splits` cuts them by the
Informer / Time-Series-Library protocol (`ett_borders`) or the FSNet / OneNet online one
(`ett_online_borders`) with a scaler fitted on the training rows only; `read_m4` reads M4 competition files
(one series per row, the competition's horizon and seasonality in `M4_HORIZON`, `M4_SEASONALITY`).
DNA: `read_labelled` (CSV / TSV), `read_fasta`, `read_fastq`, `read_sequences`, `iter_sequences` (record by
record), `read_classes` (one file per class), `read_genomic_benchmarks` (folder layout), `stratified_split`;
published sets in their own layouts: `read_umarov` (`UMAROV_SETS`: promoters vs non-promoters) and
`read_drosophila_enhancers`.
Synthetic data with known answers lives in `titans_ts.datasets.synthetic`; `bundled_*` give the
shipped ETTh1 and E. coli promoter samples. Only polars, numpy and biopython are imported here.
"""
from . import synthetic
from .benchmark_sets import UMAROV_SETS, read_drosophila_enhancers, read_umarov
from .bundled import bundled_dna_path, bundled_ett_path, load_bundled_dna, load_bundled_ett
from .ett import Borders, ETTSplits, ett_borders, ett_online_borders, ett_splits, load_ett
from .m4 import M4_HORIZON, M4_SEASONALITY, M4Series, read_m4
from .sequences import (
    LabelledSequences,
    Sequences,
    iter_sequences,
    read_classes,
    read_fasta,
    read_fastq,
    read_genomic_benchmarks,
    read_labelled,
    read_sequences,
    stratified_split,
)
from .synthetic import anomaly_stream, load_jaspar, planted_motif_dna, recurring_motifs

__all__ = [
    "Borders", "ETTSplits", "LabelledSequences", "M4Series", "M4_HORIZON", "M4_SEASONALITY", "Sequences",
    "UMAROV_SETS",
    "anomaly_stream", "bundled_dna_path", "bundled_ett_path", "ett_borders", "ett_online_borders",
    "ett_splits", "iter_sequences", "load_bundled_dna", "load_bundled_ett", "load_ett", "load_jaspar",
    "planted_motif_dna", "read_classes", "read_drosophila_enhancers", "read_fasta", "read_fastq",
    "read_genomic_benchmarks", "read_labelled", "read_m4", "read_sequences", "read_umarov", "recurring_motifs",
    "stratified_split", "synthetic",
]
