"""The baselines the genomics benchmark sets beside Titans, each read on both strands as Titans reads them.

`KmerLogisticRegression`: logistic regression on tf-idf k-mer counts of both strands, optionally with a
one-hot of every position; `CNNClassifier`: three convolution blocks (conv, batch norm, ReLU, max-pool), a
dense layer and dropout, the shape of the Genomic Benchmarks baseline, trained through the project's
training loop on a random strand per epoch and averaged over both strands at prediction. Both take the
validation set in `fit` and choose on it alone (C and the position weight; the epoch to keep).
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from scipy import sparse
from sklearn.feature_extraction.text import CountVectorizer, TfidfTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import FeatureUnion, make_pipeline
from sklearn.preprocessing import FunctionTransformer
from torch import Tensor, nn
from torch.utils.data import DataLoader

from titans_ts.training import fit as fit_loop

from .data import ListDataset, StrandDataset
from .tokenize import PAD, base_probabilities, encode, encode_all, reverse_complement, reverse_complement_codes

Validation = tuple[Sequence[str], Sequence]


class KmerLogisticRegression:
    """Logistic regression on tf-idf of the k-mers of both strands; with `positional`, a one-hot of every
    forward-strand position joins them (IUPAC codes as their base mix, zeros past a sequence's end, cut at
    the longest training sequence): a linear model that knows where a k-mer sits. C, and the weight of the
    positions, are the best of a small grid on the validation set."""

    def __init__(self, k: int = 6, positional: bool = False):
        self.k, self.positional = k, positional

    def fit(self, seqs: Sequence[str], y: Sequence, validation: Validation) -> KmerLogisticRegression:
        seqs, y = list(seqs), np.asarray(y)
        length, table = max(len(s) for s in seqs), base_probabilities().numpy()

        def one_hot(batch: list[str]) -> sparse.csr_matrix:
            out = np.zeros((len(batch), length, 4), dtype=np.float32)
            for row, seq in enumerate(batch):
                codes = encode(seq[:length])
                out[row, :len(codes)] = table[codes]
            return sparse.csr_matrix(out.reshape(len(batch), -1))

        best_acc = -1.0
        for weight in (0.05, 0.1, 0.2) if self.positional else (0.0,):
            for c in (0.3, 1.0, 3.0, 10.0) if self.positional else (0.1, 1.0, 10.0):
                counts = make_pipeline(CountVectorizer(analyzer=self._kmers), TfidfTransformer(sublinear_tf=True))
                features = FeatureUnion([("kmers", counts), ("positions", FunctionTransformer(one_hot))],
                                        transformer_weights={"positions": weight}) if self.positional else counts
                model = make_pipeline(features, LogisticRegression(C=c, max_iter=3000)).fit(seqs, y)
                acc = model.score(list(validation[0]), np.asarray(validation[1]))
                if acc > best_acc:
                    self.model_, best_acc = model, acc
        self.classes_ = self.model_.classes_
        return self

    def _kmers(self, seq: str) -> list[str]:
        k = self.k
        return [s[i: i + k] for s in (seq.upper(), reverse_complement(seq)) for i in range(len(s) - k + 1)]

    def predict_proba(self, seqs: Sequence[str]) -> np.ndarray:
        return self.model_.predict_proba(list(seqs))


class CNNNet(nn.Module):
    """One-hot bases (B, L) codes -> three conv–batchnorm–ReLU–maxpool blocks -> dense -> dropout -> logits."""

    def __init__(self, n_classes: int, length: int, channels: int = 32, kernel: int = 8, hidden: int = 64,
                 dropout: float = 0.3):
        super().__init__()
        self.register_buffer("one_hot", base_probabilities(), persistent=False)
        blocks, width, inputs = [], length, 4
        for _ in range(3):
            blocks += [nn.Conv1d(inputs, channels, kernel), nn.BatchNorm1d(channels), nn.ReLU(), nn.MaxPool1d(2)]
            inputs, width = channels, (width - kernel + 1) // 2
        if width < 1:
            raise ValueError(f"sequences of {length} bases are too short for three convolutions of width {kernel}")
        self.features = nn.Sequential(*blocks, nn.Flatten())
        self.head = nn.Sequential(nn.Linear(channels * width, hidden), nn.ReLU(), nn.Dropout(dropout),
                                  nn.Linear(hidden, n_classes))

    def forward(self, codes: Tensor) -> Tensor:
        return self.head(self.features(self.one_hot[codes].transpose(1, 2)))


class CNNClassifier:
    """The CNN baseline: sequences cut or padded to the longest training sequence, a random strand per
    sequence every epoch, early stopping on the validation loss (both strands), both strands averaged."""

    def __init__(self, epochs: int = 30, batch_size: int = 64, lr: float = 1e-3, patience: int = 3,
                 random_state: int = 0):
        self.epochs, self.batch_size, self.lr = epochs, batch_size, lr
        self.patience, self.random_state = patience, random_state

    def fit(self, seqs: Sequence[str], y: Sequence, validation: Validation) -> CNNClassifier:
        self.classes_, targets = np.unique(np.asarray(y), return_inverse=True)
        codes = encode_all(list(seqs))
        self.length_ = max(len(c) for c in codes)
        val_codes = encode_all(list(validation[0]))
        val_codes += [reverse_complement_codes(c) for c in val_codes]
        val_targets = np.tile(np.searchsorted(self.classes_, np.asarray(validation[1])), 2)
        torch.manual_seed(self.random_state)
        self.model_ = CNNNet(len(self.classes_), self.length_)
        train = DataLoader(StrandDataset(codes, torch.as_tensor(targets), augment=True), batch_size=self.batch_size,
                           shuffle=True, collate_fn=self._collate)
        val = DataLoader(ListDataset(val_codes, torch.as_tensor(val_targets)), batch_size=4 * self.batch_size,
                         collate_fn=self._collate)

        def step(net: CNNNet, batch: tuple[Tensor, Tensor]) -> Tensor:
            return nn.functional.cross_entropy(net(batch[0]), batch[1])

        fit_loop(self.model_, train, val, step=step, max_epochs=self.epochs, lr=self.lr, patience=self.patience,
                 seed=self.random_state, progress=False, accelerator="cpu", devices=1)
        return self

    def _collate(self, batch: list[tuple[np.ndarray, Tensor]]) -> tuple[Tensor, Tensor]:
        return self._fixed([c for c, _ in batch]), torch.stack([t for _, t in batch])

    def _fixed(self, codes: Sequence[np.ndarray]) -> Tensor:
        """(B, length_) codes: each sequence cut to `length_` bases or right-padded with PAD."""
        out = np.full((len(codes), self.length_), PAD, dtype=np.int64)
        for row, c in enumerate(codes):
            out[row, :min(len(c), self.length_)] = c[:self.length_]
        return torch.from_numpy(out)

    def predict_proba(self, seqs: Sequence[str]) -> np.ndarray:
        codes = encode_all(list(seqs))
        out = []
        with torch.inference_mode():
            for begin in range(0, len(codes), 256):
                batch = codes[begin: begin + 256]
                both = [self._fixed(batch), self._fixed([reverse_complement_codes(c) for c in batch])]
                out.append(sum(self.model_(x).double().softmax(-1) for x in both) / 2)
        return torch.cat(out).numpy()
