"""`TitansAnomalyDetector`: the memory's surprise as an anomaly score, with scikit-learn's outlier API.

A step is anomalous when the memory, having learnt the stream so far, recalls it badly (paper eq 12).
`fit` trains a one-step `TitansForecaster` on normal-looking data; `score_samples` scores steps that
continue the stream (higher is more normal, as in scikit-learn); `update` streams them into the memory.
"""
from __future__ import annotations

import copy

import numpy as np
from sklearn.base import BaseEstimator, OutlierMixin
from sklearn.exceptions import NotFittedError

from .forecaster import TitansForecaster


class TitansAnomalyDetector(OutlierMixin, BaseEstimator):
    """Surprise-based anomaly detection on a (multivariate) stream.

    `contamination`: the expected share of anomalies in the training data; it sets `offset_`, the
    threshold of `decision_function` (negative means anomalous) and of `predict` (−1 anomalous, 1 normal).
    `smoothing`: a step's score is the mean surprise of the last `smoothing` steps (causal), so that an
    anomaly lasting many steps (a level shift, a changed pattern) keeps scoring after its onset.
    """

    def __init__(self, lookback: int = 96, contamination: float = 0.01, variant: str = "mal", *, smoothing: int = 16,
                 d_model: int = 32, n_layers: int = 2, max_epochs: int = 5, time_col: str | None = None,
                 random_state: int | None = None, progress: bool = False):
        self.lookback, self.contamination, self.variant, self.smoothing = lookback, contamination, variant, smoothing
        self.d_model, self.n_layers, self.max_epochs = d_model, n_layers, max_epochs
        self.time_col, self.random_state, self.progress = time_col, random_state, progress

    def fit(self, X, y=None) -> TitansAnomalyDetector:
        """Train on X (rows in time order) and set the threshold from its own scores."""
        if not 0 < self.contamination < 0.5:
            raise ValueError(f"contamination must lie in (0, 0.5), got {self.contamination!r}")
        if isinstance(self.smoothing, bool) or not isinstance(self.smoothing, int) or self.smoothing < 1:
            raise ValueError(f"smoothing must be an integer >= 1, got {self.smoothing!r}")
        f = TitansForecaster(horizon=1, lookback=self.lookback, variant=self.variant, d_model=self.d_model,
                             n_layers=self.n_layers, max_epochs=self.max_epochs, time_col=self.time_col,
                             random_state=self.random_state, progress=self.progress).fit(X)
        fresh = copy.copy(f)
        fresh.streams_ = {k: f._fresh() for k in f.streams_}  # score X as a stream from its start
        raw = self._surprise(fresh, X)
        self.forecaster_, self.recent_ = f, raw[len(raw) - self.smoothing + 1:]
        self.offset_ = float(np.percentile(self._smooth(np.array([]), raw), 100 * self.contamination))
        return self

    @staticmethod
    def _surprise(f: TitansForecaster, X) -> np.ndarray:
        frame = f.surprise(X)
        return frame.select(f.columns_ if not f.channel_mixing else ["surprise"]).to_numpy().mean(1)

    def _smooth(self, recent: np.ndarray, raw: np.ndarray) -> np.ndarray:
        """−(trailing mean of surprise over `smoothing` steps), continuing from the `recent` raw scores."""
        both = np.concatenate([recent, raw])
        csum = np.concatenate([[0.0], np.cumsum(both)])
        end = np.arange(len(recent) + 1, len(both) + 1)
        start = np.maximum(0, end - self.smoothing)
        return -(csum[end] - csum[start]) / (end - start)

    def _check(self) -> None:
        if not hasattr(self, "forecaster_"):
            raise NotFittedError("This TitansAnomalyDetector is not fitted yet: call fit(X) first")

    def score_samples(self, X) -> np.ndarray:
        """−surprise of each row of X, a continuation of the stream (higher is more normal). Moves nothing."""
        self._check()
        return self._smooth(self.recent_, self._surprise(self.forecaster_, X))

    def decision_function(self, X) -> np.ndarray:
        """score_samples − offset_: negative for anomalies."""
        return self.score_samples(X) - self.offset_

    def predict(self, X) -> np.ndarray:
        """−1 for anomalous rows, 1 for normal ones."""
        return np.where(self.decision_function(X) < 0, -1, 1)

    def update(self, X) -> TitansAnomalyDetector:
        """Stream X into the memory (after scoring it), so that later rows are judged against it."""
        self._check()
        raw = self._surprise(self.forecaster_, X)
        self.forecaster_.update(X)
        self.recent_ = np.concatenate([self.recent_, raw])[-(self.smoothing - 1):] if self.smoothing > 1 else raw[:0]
        return self
