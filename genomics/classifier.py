"""`TitansDNAClassifier`: a scikit-learn classifier of DNA sequences on the Titans encoder."""
from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted
from torch.utils.data import DataLoader

from titans_ts.config import TitansConfig
from titans_ts.datasets import stratified_split
from titans_ts.io import load_bundle, save_bundle
from titans_ts.memory import Surprise
from titans_ts.devices import DEVICE_DEFAULTS, DEVICES, device_args
from titans_ts.params import Interval, OneOf, integer, optional_integer, validate
from titans_ts.training import fit as fit_loop

from .data import ListDataset, StrandDataset, collate, seq_list
from .model import POOLINGS, TOKENIZERS, DNANet
from .pretraining import check_init, init_from
from .tokenize import encode_all, pad_batch, reverse_complement_codes

if TYPE_CHECKING:
    import polars as pl

RC_MODES = ("average", "augment", None)
_KIND = "titans_ts.genomics.TitansDNAClassifier"


class TitansDNAClassifier(ClassifierMixin, BaseEstimator):
    """Classify DNA sequences (any length, any number of classes, string or integer labels).

    Sequences are case-insensitive; N and the IUPAC codes count as a uniform mix of the bases they allow
    (see `titans_ts.genomics.tokenize`). Each position is embedded from the `k` bases ending at it:
    linearly (a causal convolution of width k over the bases: one position weight matrix per feature)
    plus, with `tokenizer="kmer"`, the entry of the k-mer in a table of 4^k (`"nucleotide"`: the linear
    part alone), `stride` consecutive embeddings
    are joined into one token, a `TitansEncoder` of the chosen `variant` reads the tokens and a linear
    head classifies their mean (`pooling="mean"`) or their mean and maximum (`"meanmax"`), plus a
    positional readout of the first `positions` tokens' outputs (0: none; it helps where sequences are
    aligned on a landmark, as promoters on their transcription start), and with `bag` a linear readout
    of the k-mer frequencies (a k-mer logistic regression trained with the rest). Sequences longer than `max_len`
    bases stream through the encoder in pieces of `max_len`, the memory state carried across, so length
    is bounded only by time.

    rc: "average" trains on a random strand of each sequence every epoch (reverse-complement augmentation)
    and averages the probabilities of both strands at prediction; "augment" only does the former; None
    neither. `mutation`: in training each base is replaced by a random base with this probability, drawn
    afresh every epoch (without it the model over-fits a few thousand sequences within a few epochs; 0
    turns it off, e.g. where an exact motif decides the class). Training holds out a stratified
    `validation_fraction` for early stopping (`patience` epochs) and keeps the best epoch.

    Devices: `accelerator`, `devices`, `strategy` and `precision` are Lightning's (`titans_ts.training`),
    spelt as in every titans-ts estimator. The defaults train on one device, a GPU where there is one
    (the memory update then runs the Triton kernels) and the CPU elsewhere; a seeded fit repeats
    exactly on the same kind of device, but a GPU's arithmetic differs from the CPU's in the last bits.
    `strategy="ddp"` with `devices=2` or more trains over several devices, each reading its share of
    every epoch's sequences; the caller ends with the trained model. After `fit` the model is on the CPU;
    prediction and surprise run wherever `model_` is (move it, e.g. `clf.model_.cuda()`, to predict on a
    GPU) and return CPU arrays; files hold CPU tensors.
    `encoder_kwargs` passes further `TitansConfig` fields (e.g. `memory_expansion`). `init`: a model file
    written by `titans_ts.genomics.pretrain`; `fit` starts the embedding and encoder from it (the heads are
    new), and the architecture parameters (`titans_ts.genomics.pretraining.ARCHITECTURE`) must match it.
    """

    def __init__(self, variant: str = "mag", tokenizer: str = "kmer", k: int = 6, stride: int = 4,
                 d_model: int = 64, n_layers: int = 2, heads: int = 4, window: int = 16, chunk_size: int = 16,
                 memory_depth: int = 1, dropout: float = 0.1, encoder_kwargs: dict[str, Any] | None = None,
                 pooling: str = "meanmax", positions: int = 64, bag: bool = False, max_len: int = 1024,
                 rc: str | None = "average", mutation: float = 0.2, epochs: int = 30, batch_size: int = 64,
                 lr: float = 3e-3, weight_decay: float = 0.1, patience: int = 4, validation_fraction: float = 0.1,
                 progress: bool = False, random_state: int | None = None, init: str | os.PathLike | None = None,
                 accelerator: str = DEVICE_DEFAULTS["accelerator"], devices: int | str = DEVICE_DEFAULTS["devices"],
                 strategy: str = DEVICE_DEFAULTS["strategy"], precision: str = DEVICE_DEFAULTS["precision"]):
        self.variant = variant
        self.tokenizer = tokenizer
        self.k = k
        self.stride = stride
        self.d_model = d_model
        self.n_layers = n_layers
        self.heads = heads
        self.window = window
        self.chunk_size = chunk_size
        self.memory_depth = memory_depth
        self.dropout = dropout
        self.encoder_kwargs = encoder_kwargs
        self.pooling = pooling
        self.positions = positions
        self.bag = bag
        self.max_len = max_len
        self.rc = rc
        self.mutation = mutation
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.patience = patience
        self.validation_fraction = validation_fraction
        self.progress = progress
        self.random_state = random_state
        self.init = init
        self.accelerator = accelerator
        self.devices = devices
        self.strategy = strategy
        self.precision = precision

    # -- building -----------------------------------------------------------------------------------
    def _config(self) -> TitansConfig:
        return encoder_config(d_model=self.d_model, n_layers=self.n_layers, heads=self.heads, variant=self.variant,
                              window=self.window, chunk_size=self.chunk_size, memory_depth=self.memory_depth,
                              dropout=self.dropout, encoder_kwargs=self.encoder_kwargs)

    def _check_params(self) -> TitansConfig:
        validate(self, {
            "tokenizer": OneOf(TOKENIZERS), "pooling": OneOf(POOLINGS), "rc": OneOf(RC_MODES),
            **{name: integer(1) for name in ("k", "stride", "max_len", "epochs", "batch_size", "patience")},
            "positions": integer(0), "mutation": Interval(0, 1, noun="a probability"), "bag": OneOf((True, False)),
            "lr": Interval(0, None, closed="neither"), "weight_decay": Interval(0, None),
            "validation_fraction": Interval(0, 1, closed="left"),
            "random_state": optional_integer(), **DEVICES,
        })
        if self.bag and self.tokenizer != "kmer":
            raise ValueError(f"bag must be True (with tokenizer='kmer') or False, got {self.bag!r}")
        if self.tokenizer == "kmer" and self.k > 8:
            raise ValueError(f"k must be at most 8 (4**k embeddings), got {self.k}")
        if self.max_len % self.stride:
            raise ValueError(f"max_len ({self.max_len}) must be a multiple of stride ({self.stride})")
        config = self._config()
        if self.init is not None:  # a pretrained model of another architecture fails here, before any work
            check_init(self.init, self.get_params())
        return config

    def _build(self, n_classes: int, config: TitansConfig) -> DNANet:
        return DNANet(n_classes, config, self.tokenizer, self.k, self.stride, self.pooling, self.positions, self.bag)

    # -- training -----------------------------------------------------------------------------------
    def fit(self, seqs: Sequence[str], y: Sequence[Any], names: Sequence[str] | None = None,
            validation: tuple[Sequence[str], Sequence[Any]] | None = None) -> TitansDNAClassifier:
        """Train on sequences `seqs` (str) and labels `y`; `names` label sequences in error messages.

        `validation=(seqs, y)` gives the early-stopping set explicitly instead of `validation_fraction`.
        """
        config = self._check_params()
        seqs = seq_list(seqs)
        labels = _labels(y, len(seqs), "y")
        check_classification_targets(labels)
        classes, codes_y = np.unique(labels, return_inverse=True)
        if len(classes) < 2:
            raise ValueError(f"y must hold at least two classes, got {classes.tolist()}")
        codes = encode_all(seqs, names)
        seed = self.random_state
        if seed is None:
            seed = int(np.random.SeedSequence().entropy % 2**31)
        train, val = np.arange(len(seqs)), None
        if validation is not None:
            val_codes, val_y = self._validation_set(validation, classes)
            val = np.arange(len(seqs), len(seqs) + len(val_codes))
            codes, codes_y = codes + val_codes, np.concatenate([codes_y, val_y])
        elif self.validation_fraction > 0:
            fractions = (1 - self.validation_fraction, self.validation_fraction, 0.0)
            train, val, _ = stratified_split(codes_y, fractions, seed)
            if len(val) == 0 or len(train) == 0:
                train, val = np.arange(len(seqs)), None
        torch.manual_seed(seed)
        model = self._build(len(classes), config)
        if self.init is not None:
            init_from(model, self.init, self.get_params())
        targets = torch.as_tensor(codes_y, dtype=torch.long)
        loader, val_loader = self._loaders(codes, targets, train, val)
        piece = self.max_len

        def step(net: DNANet, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
            return torch.nn.functional.cross_entropy(net(batch[0], batch[1], piece), batch[2])

        result = fit_loop(model, loader, val_loader, step=step, max_epochs=self.epochs, lr=self.lr,
                          weight_decay=self.weight_decay, patience=self.patience, seed=seed,
                          progress=self.progress, **device_args(self))
        self.model_ = model
        self.classes_ = classes
        self.train_length_ = int(np.median([len(codes[i]) for i in train]))
        self.n_epochs_ = result.epochs
        self.history_ = result.history
        return self

    def _validation_set(self, validation: tuple[Sequence[str], Sequence[Any]],
                        classes: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
        seqs = seq_list(validation[0])
        labels = _labels(validation[1], len(seqs), "validation labels")
        unknown = sorted(set(labels.tolist()) - set(classes.tolist()))
        if unknown:
            raise ValueError(f"validation labels {unknown} do not occur in y")
        codes = encode_all(seqs, [f"validation sequence {i}" for i in range(len(seqs))])
        return codes, np.searchsorted(classes, labels)

    def _loaders(self, codes: list[np.ndarray], targets: torch.Tensor, train: np.ndarray,
                 val: np.ndarray | None) -> tuple[DataLoader, DataLoader | None]:
        """Training batches (a random strand per sequence unless rc is None) and validation batches
        (both strands when rc is set, as prediction reads them)."""
        multiple, augment = self.stride, self.rc is not None
        pad = lambda batch: collate(batch, multiple)  # noqa: E731
        train_data = StrandDataset([codes[i] for i in train], targets[train], augment, self.mutation)
        loader = DataLoader(train_data, batch_size=self.batch_size, shuffle=True, collate_fn=pad)
        if val is None:
            return loader, None
        val_codes, val_targets = [codes[i] for i in val], targets[val]
        if augment:
            val_codes += [reverse_complement_codes(c) for c in val_codes]
            val_targets = torch.cat([val_targets, val_targets])
        return loader, DataLoader(ListDataset(val_codes, val_targets), batch_size=4 * self.batch_size, collate_fn=pad)

    # -- prediction ---------------------------------------------------------------------------------
    def predict_proba(self, seqs: Sequence[str], names: Sequence[str] | None = None) -> np.ndarray:
        """(n_sequences, n_classes) class probabilities, columns in the order of `classes_`."""
        check_is_fitted(self, "model_")
        codes = encode_all(seq_list(seqs), names)
        probs = self._probabilities(codes)
        if self.rc == "average":
            probs = (probs + self._probabilities([reverse_complement_codes(c) for c in codes])) / 2
        probs = probs.double()
        return (probs / probs.sum(1, keepdim=True)).numpy()  # rows sum to 1 in float64, as sklearn's metrics check

    def predict(self, seqs: Sequence[str], names: Sequence[str] | None = None) -> np.ndarray:
        """The most probable class of each sequence."""
        check_is_fitted(self, "model_")
        return self.classes_[self.predict_proba(seqs, names).argmax(axis=1)]

    def surprise(self, seqs: Sequence[str], ids: Sequence[Any] | None = None,
                 names: Sequence[str] | None = None) -> pl.DataFrame:
        """The memory's surprise at every base of every sequence: a long polars frame `id, position,
        momentary, past`, one row per base (position 0-based), sequences in the given order; `ids` default
        to 0, 1, …, `names` label sequences in error messages as in `predict`. The model does not change.

        `momentary` is the memory's recall loss at the weights the token meets (paper eq 12: how badly it
        predicted the token before learning it), `past` the momentum of earlier surprise the token inherits
        (eq 13); both are means over layers and heads. Every sequence is read as `predict` reads it, from a
        fresh memory in pieces of `max_len` bases with the state carried, on the forward strand only (the
        memory runs in one direction). Positions: token j joins the embeddings of bases [j·stride,
        (j+1)·stride) (with k-mers, each the k-mer ending at that base) and each of those bases reports
        token j's values, so a change at base p first shows at position stride·(p // stride). With k-mers
        the first k − 1 bases' k-mers reach before the start and read as the unknown k-mer.
        """
        import polars as pl

        check_is_fitted(self, "model_")
        seqs = seq_list(seqs)
        ids = list(range(len(seqs))) if ids is None else list(ids)
        if len(ids) != len(seqs):
            raise ValueError(f"ids holds {len(ids)} entries for {len(seqs)} sequences")
        codes = encode_all(seqs, names)
        values: list[np.ndarray] = [np.empty(0)] * len(codes)
        with torch.inference_mode():
            for rows, x, lengths in self._batches(codes):
                parts = [s for _, s in self.model_.read(x, self.max_len, surprise=True)]
                per_token = [torch.cat([getattr(s, f) for s in parts], 1).mean(-1) for f in Surprise._fields]
                per_base = torch.stack(per_token, -1).repeat_interleave(self.stride, 1).double().cpu().numpy()  # (B, L, 2)
                for row, i in enumerate(rows):
                    values[i] = per_base[row, :int(lengths[row])]
        counts = [len(c) for c in codes]
        stacked = np.concatenate(values)
        return pl.DataFrame({"id": pl.Series(ids).gather(np.repeat(np.arange(len(ids)), counts)),
                             "position": np.concatenate([np.arange(n) for n in counts]),
                             "momentary": stacked[:, 0], "past": stacked[:, 1]})

    def _probabilities(self, codes: list[np.ndarray]) -> torch.Tensor:
        out = torch.empty(len(codes), len(self.classes_))
        with torch.inference_mode():
            for rows, x, lengths in self._batches(codes):
                out[torch.as_tensor(rows)] = self.model_(x, lengths, self.max_len).float().softmax(-1).cpu()
        return out

    def _batches(self, codes: list[np.ndarray],
                 batch_size: int = 128) -> Iterator[tuple[np.ndarray, torch.Tensor, torch.Tensor]]:
        """(indices into codes, their right-padded codes, their lengths) in batches of similar lengths, on the
        model's device."""
        # every sequence carries its own memory weights: batches of ~128 stay in cache (faster than 512 on a CPU)
        order = np.argsort([len(c) for c in codes], kind="stable")
        for begin in range(0, len(codes), batch_size):
            rows = order[begin: begin + batch_size]
            x, lengths = pad_batch([codes[i] for i in rows], self.stride)
            device = next(self.model_.parameters()).device
            yield rows, x.to(device), lengths.to(device)

    # -- files --------------------------------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> None:
        """Write the fitted model (weights in safetensors, parameters and class names as JSON), atomically."""
        check_is_fitted(self, "model_")
        params = {**self.get_params(), "init": None if self.init is None else os.fspath(self.init)}
        meta = {"params": params, "classes": self.classes_.tolist(), "train_length": self.train_length_,
                "n_epochs": self.n_epochs_, "history": self.history_}
        save_bundle(path, self.model_.state_dict(), meta, kind=_KIND)

    @classmethod
    def load(cls, path: str | os.PathLike) -> TitansDNAClassifier:
        """Read a model written by `save`; loading runs no code (ValueError for any other file)."""
        tensors, meta = load_bundle(path, kind=_KIND)
        clf = cls(**meta["params"])
        model = clf._build(len(meta["classes"]), clf._check_params())
        try:
            model.load_state_dict(tensors)
        except RuntimeError as err:
            raise ValueError(f"{path}: weights do not match the saved parameters ({err})") from None
        clf.model_ = model.eval()
        clf.classes_ = np.asarray(meta["classes"])
        clf.train_length_ = meta["train_length"]
        clf.n_epochs_ = meta["n_epochs"]
        clf.history_ = meta["history"]
        return clf


def encoder_config(encoder_kwargs: dict[str, Any] | None = None, **params: Any) -> TitansConfig:
    """The encoder's `TitansConfig` from the classifier's encoder parameters (`params`: d_model, n_layers,
    heads, variant, window, chunk_size, memory_depth, dropout) and `encoder_kwargs`, the further fields;
    ValueError (from TitansConfig) on a bad one."""
    extra = dict(encoder_kwargs or {})
    clash = sorted(set(extra) & set(params))
    if clash:
        raise ValueError(f"encoder_kwargs repeats parameters of the classifier: {clash}")
    try:
        return TitansConfig(**params, **extra)
    except TypeError as err:
        raise ValueError(f"encoder_kwargs: {err}") from None


def _labels(y: Any, n: int, what: str) -> np.ndarray:
    labels = np.asarray(y)
    if labels.ndim != 1 or len(labels) != n:
        raise ValueError(f"{what} must be 1-d with one label per sequence: {n} sequences, {what} of shape "
                         f"{labels.shape}")
    return labels
