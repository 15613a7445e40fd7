"""Input checks and the torch datasets behind `TitansDNAClassifier.fit` (strand augmentation, padding)."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from .tokenize import pad_batch, reverse_complement_codes


def seq_list(seqs: Any) -> list[str]:
    """`seqs` as a non-empty list of str; TypeError for one string or a non-sequence, ValueError if empty."""
    if isinstance(seqs, (str, bytes)):
        raise TypeError("seqs must be a sequence of strings (a list of sequences), got a single string")
    if isinstance(seqs, np.ndarray) and seqs.ndim != 1:
        raise ValueError(f"seqs must be 1-d, got an array of shape {seqs.shape}")
    try:
        out = list(seqs)
    except TypeError:
        raise TypeError(f"seqs must be a sequence of strings, got {type(seqs).__name__}") from None
    if not out:
        raise ValueError("seqs is empty: at least one sequence is needed")
    bad = next((i for i, s in enumerate(out) if not isinstance(s, str)), None)
    if bad is not None:
        raise TypeError(f"seqs[{bad}] must be a str, got {type(out[bad]).__name__}")
    return out


class ListDataset(Dataset):
    """Code arrays with their class indices."""

    def __init__(self, codes: Sequence[np.ndarray], targets: Tensor):
        self.codes, self.targets = list(codes), targets

    def __len__(self) -> int:
        return len(self.codes)

    def __getitem__(self, i: int) -> tuple[np.ndarray, Tensor]:
        return self.codes[i], self.targets[i]


class StrandDataset(ListDataset):
    """Each access reads a random strand when `augment`, and replaces each base by a uniformly random one
    (A, C, G or T) with probability `mutation`: fresh noise every epoch, so a small training set cannot be
    memorised sequence by sequence. Torch's seeded generator draws both."""

    def __init__(self, codes: Sequence[np.ndarray], targets: Tensor, augment: bool, mutation: float = 0.0):
        super().__init__(codes, targets)
        self.reverse = [reverse_complement_codes(c) for c in self.codes] if augment else None
        self.mutation = mutation

    def __getitem__(self, i: int) -> tuple[np.ndarray, Tensor]:
        codes = self.reverse[i] if self.reverse is not None and torch.rand(()) < 0.5 else self.codes[i]
        if self.mutation > 0:
            hit = (torch.rand(len(codes)) < self.mutation).numpy()
            codes = codes.copy()
            codes[hit] = torch.randint(0, 4, (int(hit.sum()),)).numpy()
        return codes, self.targets[i]


def collate(batch: list[tuple[np.ndarray, Tensor]], multiple: int) -> tuple[Tensor, Tensor, Tensor]:
    """(codes (B, L) padded to a multiple of `multiple`, lengths (B,), targets (B,))."""
    codes, lengths = pad_batch([c for c, _ in batch], multiple)
    return codes, lengths, torch.stack([t for _, t in batch])
