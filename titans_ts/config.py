"""`TitansConfig`: every hyper-parameter of a Titans encoder, validated at construction."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from titans_ts.kernels import BACKENDS

VARIANTS = ("mal", "mag", "mac", "lmm")
ALPHA_INIT = 1 / (1 + math.exp(8))  # σ(−8): the memory's forgetting gate at the start keeps a write ~3,000 tokens
FORGET_TOWARD = ("zero", "initial")  # where forgetting pulls the memory: the paper's zero, or its initial weights M_0


@dataclass(frozen=True)
class TitansConfig:
    """Hyper-parameters of a `TitansEncoder` (names follow the paper where it has one).

    d_model: width of the residual stream; heads: attention and memory heads (d_model % heads == 0).
    variant: "mal" memory as a layer, "mag" memory as a gate, "mac" memory as context, "lmm" memory alone.
    window: sliding-window attention span w (for "mac": the segment length, a multiple of chunk_size).
    chunk_size: tokens per memory update (gradients of a chunk are taken at its starting weights).
    memory_depth / memory_expansion: layers of the memory MLP and its hidden width per head dim.
    persistent_tokens: learnable task tokens every attention query sees (paper §3.3).
    memory_lr: bound on one chunk's step: θ_t ≤ memory_lr (1 − η_t) / chunk_size, which (with each layer's
        step normalised by its input's energy) keeps the update stable.
    alpha_init: the forgetting gate α_t at initialisation (eq 13): a write fades by (1 − α_t) per token,
        so the memory starts out remembering about 1 / alpha_init tokens; training moves it per token.
    forget_toward: what forgetting pulls the memory towards, "zero" (the paper) or "initial", its learnt
        initial weights M_0, so that a memory which forgets fast still keeps what training put into M_0.
    """

    d_model: int = 64
    n_layers: int = 2
    heads: int = 4
    variant: str = "mal"
    window: int = 64
    chunk_size: int = 16
    memory_depth: int = 2
    memory_expansion: int = 4
    persistent_tokens: int = 4
    ff_mult: int = 4
    conv_kernel: int = 4
    memory_lr: float = 0.5
    alpha_init: float = ALPHA_INIT
    forget_toward: str = "zero"
    dropout: float = 0.0
    backend: str = "auto"

    def __post_init__(self) -> None:
        for name in ("d_model", "n_layers", "heads", "window", "chunk_size", "memory_depth",
                     "memory_expansion", "ff_mult", "conv_kernel"):
            check_positive_int(f"TitansConfig.{name}", getattr(self, name))
        check_nonnegative_int("TitansConfig.persistent_tokens", self.persistent_tokens)
        if self.variant not in VARIANTS:
            raise ValueError(f"TitansConfig.variant must be one of {VARIANTS}, got {self.variant!r}")
        if self.d_model % self.heads:
            raise ValueError(f"TitansConfig.d_model ({self.d_model}) must be divisible by heads ({self.heads})")
        if self.variant == "mac" and self.window % self.chunk_size:
            raise ValueError(f"TitansConfig.window ({self.window}) must be a multiple of chunk_size "
                             f"({self.chunk_size}) for variant 'mac': segments hold whole memory chunks")
        if not (isinstance(self.memory_lr, (int, float)) and 0 < self.memory_lr <= 1):
            raise ValueError(f"TitansConfig.memory_lr must be in (0, 1], got {self.memory_lr!r}")
        if not (isinstance(self.alpha_init, (int, float)) and 0 < self.alpha_init < 1):
            raise ValueError(f"TitansConfig.alpha_init must be in (0, 1), got {self.alpha_init!r}")
        if self.forget_toward not in FORGET_TOWARD:
            raise ValueError(f"TitansConfig.forget_toward must be one of {FORGET_TOWARD}, got {self.forget_toward!r}")
        if not (isinstance(self.dropout, (int, float)) and 0 <= self.dropout < 1):
            raise ValueError(f"TitansConfig.dropout must be in [0, 1), got {self.dropout!r}")
        if self.backend not in BACKENDS:
            raise ValueError(f"TitansConfig.backend must be one of {BACKENDS}, got {self.backend!r}")

    def to_dict(self) -> dict:
        return asdict(self)


def check_positive_int(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")


def check_nonnegative_int(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} must be an integer >= 0, got {value!r}")
