"""Score windows along a long record (a chromosome) as one stream, the memory state carried along.

The encoder reads the record in blocks of about `BLOCK` bases (one call each, the stream carried), and each
`stride` bases' outputs are kept for `window / stride` steps, so a window's score (the head on the window's
pooled outputs and, with a positional readout, the outputs themselves) needs no second pass, and memory
stays a block's codes and outputs whatever the record's length. Unlike independent windows, every score sees the whole record before it through the neural
memory. Only the forward strand is read: the memory runs in one direction.
"""
from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from typing import NamedTuple

import numpy as np
import torch
from sklearn.utils.validation import check_is_fitted

from titans_ts.config import check_positive_int

from .classifier import TitansDNAClassifier
from .tokenize import encode, pad_batch

BLOCK = 4096  # bases per encoder call (rounded up to a multiple of the stride): few calls, a block in cache


class Window(NamedTuple):
    """Bases [start, end) (0-based, end exclusive, as in BED) and the class probabilities there."""

    start: int
    end: int
    probs: np.ndarray


class _Step(NamedTuple):
    """One step's first base and its encoder outputs (n_tokens, d)."""

    start: int
    outputs: torch.Tensor


def check_scan_steps(clf: TitansDNAClassifier, window: int, stride: int) -> None:
    """ValueError unless window is a multiple of stride and stride of the model's token stride."""
    check_positive_int("window", window)
    check_positive_int("stride", stride)
    if window % stride:
        raise ValueError(f"window ({window}) must be a multiple of stride ({stride})")
    if stride % clf.stride:
        raise ValueError(f"stride ({stride}) must be a multiple of the model's token stride ({clf.stride})")


def default_steps(clf: TitansDNAClassifier) -> tuple[int, int]:
    """(window, stride): the typical training length, rounded up to two model strides, and half of it."""
    check_is_fitted(clf, "model_")
    unit = 2 * clf.stride
    window = -(-clf.train_length_ // unit) * unit
    return window, window // 2


def scan(clf: TitansDNAClassifier, seq: str, window: int, stride: int, name: str = "sequence") -> Iterator[Window]:
    """Windows of `window` bases every `stride` bases along `seq`, and a last one that reaches its end."""
    check_is_fitted(clf, "model_")
    check_scan_steps(clf, window, stride)
    model = clf.model_
    stream = model.start(1)
    steps: deque[_Step] = deque(maxlen=window // stride)
    block = -(-BLOCK // stride) * stride
    emitted_end = 0
    with torch.inference_mode():
        for first in range(0, max(len(seq), 1), block):  # an empty seq is refused by encode
            codes = encode(seq[first: first + block], name, offset=first)
            x, _ = pad_batch([codes], clf.stride)
            h, stream = model.tokens(x, stream)
            for begin in range(0, len(codes), stride):
                end = min(begin + stride, len(codes))
                steps.append(_Step(first + begin, h[0, begin // clf.stride: -(-end // clf.stride)]))
                if first + end - steps[0].start == window:
                    emitted_end = first + end
                    yield _score(clf, steps, emitted_end)
        if emitted_end != len(seq):
            yield _score(clf, steps, len(seq))


def _score(clf: TitansDNAClassifier, steps: deque[_Step], end: int) -> Window:
    out = torch.cat([s.outputs for s in steps])[None]  # (1, tokens, d)
    count = torch.tensor([out.shape[1]], dtype=out.dtype)
    probs = clf.model_.classify(out.sum(1), count, out.amax(1), out)[0].float().softmax(-1)
    return Window(steps[0].start, end, probs.numpy().astype(np.float64))
