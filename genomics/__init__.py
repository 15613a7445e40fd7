"""DNA sequence classification with Titans neural long-term memory.

`TitansDNAClassifier` (scikit-learn API) classifies sequences of any length into any number of classes;
`scan` scores windows along long records as one stream; `pretrain` trains the encoder on unlabelled genome
by next-base prediction (`init=` starts a classifier from it), `MarkovModel` is the k-mer baseline it beats; `reverse_complement` and `encode` implement the
letter rule (case-insensitive; N and IUPAC codes as a uniform mix of their bases); the `titans-dna`
command line lives in `titans_ts.genomics.cli` (its predict and scan run as tasks, here or on Dask workers:
`titans_ts.genomics.distributed`), the benchmark in `titans_ts.genomics.benchmark`.
Names load lazily, so the command line answers `--help` and usage errors without importing torch.
"""
from importlib import import_module

_HOME = {"TitansDNAClassifier": "classifier", "classification_metrics": "metrics", "Window": "scanning",
         "scan": "scanning", "pretrain": "pretraining", "MarkovModel": "markov", "ALPHABET": "tokenize", "encode": "tokenize", "reverse_complement": "tokenize"}
__all__ = list(_HOME)


def __getattr__(name: str):
    if name in _HOME:
        return getattr(import_module(f"titans_ts.genomics.{_HOME[name]}"), name)
    raise AttributeError(f"module 'titans_ts.genomics' has no attribute {name!r}")
