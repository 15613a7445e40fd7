"""`MarkovModel`: an order-k Markov model of DNA from (k + 1)-mer counts, the baseline that a pretrained
encoder's next-base predictions must beat (in bits per base, on the same held-out sequence)."""
from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from titans_ts.config import check_positive_int


class MarkovModel:
    """P(base | the `order` bases before it) = (count(context, base) + 1) / (count(context) + 4): counts of
    (order + 1)-mers over training stretches, add-one smoothed. Stretches are code arrays of A, C, G, T only
    (codes 0–3, as `titans_ts.genomics.tokenize.encode` gives them); pass both strands to count both."""

    def __init__(self, order: int = 5):
        check_positive_int("order", order)
        self.order = order

    def _ids(self, stretch: np.ndarray) -> np.ndarray:
        """Id of the (order + 1)-mer ending at each base from position `order` on (base-4 number)."""
        n = len(stretch) - self.order
        ids = np.zeros(max(n, 0), dtype=np.int64)
        for j in range(self.order + 1):
            ids = ids * 4 + stretch[j: j + n]
        return ids

    def fit(self, stretches: Iterable[np.ndarray]) -> MarkovModel:
        """Count the (order + 1)-mers of every stretch."""
        counts = np.zeros(4 ** (self.order + 1), dtype=np.int64)
        for stretch in stretches:
            counts += np.bincount(self._ids(_checked(stretch)), minlength=counts.size)
        self.counts_ = counts.reshape(-1, 4)
        return self

    def bits_per_base(self, stretches: Iterable[np.ndarray]) -> float:
        """Mean −log2 P(base | context) over every base with a full context (from position `order` of each
        stretch on); ValueError when no stretch is longer than the order."""
        table = np.log2(self.counts_ + 1.0) - np.log2(self.counts_.sum(1, keepdims=True) + 4.0)
        flat, total, n = table.ravel(), 0.0, 0
        for stretch in stretches:
            ids = self._ids(_checked(stretch))
            total -= float(flat[ids].sum())
            n += len(ids)
        if n == 0:
            raise ValueError(f"no stretch is longer than the order ({self.order}): nothing to score")
        return total / n


def _checked(stretch: np.ndarray) -> np.ndarray:
    stretch = np.asarray(stretch, dtype=np.int64)
    if stretch.ndim != 1 or (stretch.size and (stretch.min() < 0 or stretch.max() > 3)):
        raise ValueError("a stretch must be a 1-d array of base codes 0-3 (A, C, G, T)")
    return stretch

