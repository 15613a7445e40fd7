"""titans-ts: Titans neural long-term memory (Behrouz, Zhong, Mirrokni 2025) for streams that keep learning.

`TitansEncoder` stacks MAL / MAG / MAC / LMM blocks; `NeuralMemory` is one memory layer; `MemoryState`
carries a stream from one call to the next. Names load lazily, so `titans_ts.datasets` needs no torch.
"""
from importlib import import_module

__version__ = "0.1.0"
_HOME = {"TitansConfig": "config", "VARIANTS": "config", "TitansEncoder": "encoder",
         "NeuralMemory": "memory", "Surprise": "memory", "MemoryState": "state"}
__all__ = [*_HOME, "__version__"]


def __getattr__(name: str):
    if name in _HOME:
        return getattr(import_module(f"titans_ts.{_HOME[name]}"), name)
    raise AttributeError(f"module 'titans_ts' has no attribute {name!r}")
