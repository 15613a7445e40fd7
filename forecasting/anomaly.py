"""`TitansAnomalyDetector`: surprise as an anomaly score, with scikit-learn's outlier API.

A step is anomalous when the model, having learnt the stream so far, is surprised by it: its memory
recalls it badly (paper eq 12) and its one-step forecast misses it. `fit` trains a one-step
`TitansForecaster` on normal-looking data; `score_samples` scores steps that continue the stream
(higher is more normal, as in scikit-learn); `update` streams them into the memory.
"""
from __future__ import annotations

from typing import ClassVar

import numpy as np
from sklearn.base import BaseEstimator, OutlierMixin
from sklearn.utils.validation import check_is_fitted

from titans_ts.params import Constraint, Interval, integer, validate

from .forecaster import TitansForecaster


class TitansAnomalyDetector(OutlierMixin, BaseEstimator):
    """Surprise-based anomaly detection on a (multivariate) stream.

    A step's raw score is the memory's momentary surprise plus the squared error of the forecast made
    one step before, each divided by its mean over the training stream (so that channels and the two
    signals weigh alike) and averaged over channels. `smoothing`: the score is the trailing mean of the
    last `smoothing` raw scores (causal), so that an anomaly lasting many steps keeps scoring after its
    onset (4 was best on held-out synthetic streams; 1 for spikes alone).
    `contamination`: the expected share of anomalies in the training data; it sets `offset_`, the
    threshold of `decision_function` (negative means anomalous) and of `predict` (−1 anomalous, 1 normal).
    `memory_retention`: as in `TitansForecaster` (None keeps the memory's slow default forgetting).
    The forecaster reads the stream as it is, without a recall memory or a cycle taken off: what the
    encoder's memory finds surprising in the raw stream is the signal.
    """

    def __init__(self, lookback: int = 96, contamination: float = 0.01, variant: str = "mal", *, smoothing: int = 4,
                 d_model: int = 32, n_layers: int = 2, max_epochs: int = 5, memory_retention: int | None = None,
                 time_col: str | None = None, random_state: int | None = None, progress: bool = False):
        self.lookback, self.contamination, self.variant, self.smoothing = lookback, contamination, variant, smoothing
        self.d_model, self.n_layers, self.max_epochs = d_model, n_layers, max_epochs
        self.memory_retention = memory_retention
        self.time_col, self.random_state, self.progress = time_col, random_state, progress

    parameter_constraints: ClassVar[dict[str, Constraint]] = {
        **{k: TitansForecaster.parameter_constraints[k] for k in ("lookback", "max_epochs", "memory_retention")},
        "contamination": Interval(0, 0.5, closed="neither"), "smoothing": integer(1),
    }

    def fit(self, X, y=None) -> TitansAnomalyDetector:
        """Train on X (rows in time order); set the score scales and the threshold from its own scores."""
        validate(self, self.parameter_constraints)
        f = TitansForecaster(horizon=1, lookback=self.lookback, variant=self.variant, d_model=self.d_model,
                             n_layers=self.n_layers, max_epochs=self.max_epochs,
                             memory_retention=self.memory_retention, recall=False, period=None,
                             time_col=self.time_col,
                             random_state=self.random_state, progress=self.progress).fit(X)
        memory, error = self._signals(f.surprise(X, restart=True), f)  # X as a stream from its start
        self.scales_ = np.maximum(np.nanmean(memory, 0), 1e-12), np.maximum(np.nanmean(error, 0), 1e-12)
        raw = self._raw(memory, error)
        self.forecaster_, self.recent_ = f, raw[len(raw) - self.smoothing + 1:]
        self.offset_ = float(np.percentile(self._smooth(np.array([]), raw), 100 * self.contamination))
        return self

    @staticmethod
    def _signals(frame, f: TitansForecaster) -> tuple[np.ndarray, np.ndarray]:
        """The memory's momentary surprise (T, n) and the squared one-step forecast errors (T, C) of a
        surprise frame of `f`."""
        memory = frame.select(["surprise"] if f.channel_mixing else f.columns_).to_numpy()
        error = frame.select([f"{c}_error" for c in f.columns_]).to_numpy().astype(float) ** 2
        return memory, error

    def _raw(self, memory: np.ndarray, error: np.ndarray) -> np.ndarray:
        # a step with no forecast before it (the start of a fresh stream) counts its error as average
        return (memory / self.scales_[0]).mean(1) + np.nan_to_num(error / self.scales_[1], nan=1.0).mean(1)

    def _smooth(self, recent: np.ndarray, raw: np.ndarray) -> np.ndarray:
        """−(trailing mean of surprise over `smoothing` steps), continuing from the `recent` raw scores."""
        both = np.concatenate([recent, raw])
        csum = np.concatenate([[0.0], np.cumsum(both)])
        end = np.arange(len(recent) + 1, len(both) + 1)
        start = np.maximum(0, end - self.smoothing)
        return -(csum[end] - csum[start]) / (end - start)

    def _check(self) -> None:
        check_is_fitted(self, "forecaster_", msg="This %(name)s is not fitted yet: call fit(X) first")

    def score_samples(self, X) -> np.ndarray:
        """−surprise of each row of X, a continuation of the stream (higher is more normal). Moves nothing."""
        self._check()
        return self._smooth(self.recent_, self._raw(*self._signals(self.forecaster_.surprise(X), self.forecaster_)))

    def decision_function(self, X) -> np.ndarray:
        """score_samples − offset_: negative for anomalies."""
        return self.score_samples(X) - self.offset_

    def predict(self, X) -> np.ndarray:
        """−1 for anomalous rows, 1 for normal ones."""
        return np.where(self.decision_function(X) < 0, -1, 1)

    def update(self, X) -> TitansAnomalyDetector:
        """Stream X into the memory (after scoring it), so that later rows are judged against it."""
        self._check()
        raw = self._raw(*self._signals(self.forecaster_.surprise(X, keep=True), self.forecaster_))  # one pass
        self.recent_ = np.concatenate([self.recent_, raw])[-(self.smoothing - 1):] if self.smoothing > 1 else raw[:0]
        return self
