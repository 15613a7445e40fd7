"""titans-ts: Titans neural long-term memory (Behrouz, Zhong, Mirrokni 2025) for streams that keep learning.

`TitansEncoder` stacks MAL / MAG / MAC / LMM blocks; `NeuralMemory` is one memory layer; `MemoryState`
carries a stream from one call to the next.
"""
from titans_ts.config import VARIANTS, TitansConfig
from titans_ts.encoder import TitansEncoder
from titans_ts.memory import NeuralMemory
from titans_ts.state import MemoryState

__version__ = "0.1.0"
__all__ = ["TitansConfig", "TitansEncoder", "NeuralMemory", "MemoryState", "VARIANTS", "__version__"]
