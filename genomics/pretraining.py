"""Self-supervised pretraining of the DNA encoder on unlabelled genome: causal next-base prediction.

The pretraining model is a `DNANet` whose classes are the 4**stride possible next tokens, its head read at
every token: token i joins bases [i·stride, (i+1)·stride), its output has read the bases up to the end of
token i (the embedding and the encoder are causal) and predicts the next `stride` bases jointly, so no
token sees a base it predicts. Cross-entropy / stride / ln 2 is bits per base, comparable with `MarkovModel`.

Genome FASTA records (plain, gzip or bgzip) are read upper-cased (soft-masked bases count as bases), cut
at runs of N (and any other ambiguity code) into stretches of A, C, G, T, and the last
`validation_fraction` of every record is held out. Windows of `length` bases tile the stretches; each
epoch reads every training window on a random strand (validation reads both), and a window streams through the encoder in pieces of `PIECE` bases with the memory state carried (the
gradient flows through the whole window), so context is not cut at the attention window. The bundle keeps
the weights and the architecture, from which `TitansDNAClassifier(init=path)` starts its embedding and
encoder (`init_from`).
"""
from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from titans_ts.config import check_positive_int
from titans_ts.datasets import iter_sequences
from titans_ts.io import load_bundle, save_bundle
from titans_ts.training import fit

from .markov import MarkovModel
from .model import DNANet
from .tokenize import PAD, encode, reverse_complement_codes

ARCHITECTURE = ("variant", "tokenizer", "k", "stride", "d_model", "n_layers", "heads", "window", "chunk_size",
                "memory_depth", "encoder_kwargs")  # the classifier parameters a pretrained model fixes
PIECE = 1024  # bases streamed through the encoder per call, as the classifier's default max_len
MARKOV_ORDER = 5
_KIND = "titans_ts.genomics.pretrained"


@dataclass
class PretrainReport:
    """What `pretrain` did: held-out bits per base of the model and of the order-5 Markov model (counted on
    both strands of the training bases), the training bases (one strand: an epoch reads each window on one),
    the held-out bases scored (both strands), epochs run and seconds taken."""

    bits_per_base: float
    markov_bits_per_base: float
    train_bases: int
    validation_bases: int
    epochs: int
    seconds: float


# -- data -----------------------------------------------------------------------------------------------
def read_stretches(paths: Sequence[str | os.PathLike], max_bases: int | None = None,
                   validation_fraction: float = 0.05) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """(training, validation) stretches of base codes 0–3 (forward strand) from genome FASTA files: the
    last `validation_fraction` of every record is held out, both parts are cut at every letter that is not
    A, C, G or T; reading stops after `max_bases` letters (None: all)."""
    if max_bases is not None:
        check_positive_int("max_bases", max_bases)
    if isinstance(validation_fraction, bool) or not isinstance(validation_fraction, (int, float)) \
            or not 0 < validation_fraction < 1:
        raise ValueError(f"validation_fraction must be in (0, 1), got {validation_fraction!r}")
    train: list[np.ndarray] = []
    val: list[np.ndarray] = []
    left = math.inf if max_bases is None else max_bases
    for path in paths:
        for number, (rid, seq) in enumerate(iter_sequences(path), 1):
            codes = encode(seq[:left] if left < len(seq) else seq, f"{path} record {number} ({rid!r})")
            left -= len(codes)
            cut = round(len(codes) * (1 - validation_fraction))
            train += _acgt_runs(codes[:cut])
            val += _acgt_runs(codes[cut:])
            if left <= 0:
                break
        if left <= 0:
            break
    for part, name in ((train, "training"), (val, "validation")):
        if not part:
            raise ValueError(f"{', '.join(map(str, paths))}: no {name} sequence (no A, C, G or T in that part)")
    return train, val


def _acgt_runs(codes: np.ndarray) -> list[np.ndarray]:
    """The maximal runs of A, C, G, T (codes 0–3) in `codes`."""
    edges = np.flatnonzero(np.diff(np.concatenate([[0], codes < 4, [0]]).astype(np.int8)))
    return [codes[a:b] for a, b in zip(edges[::2], edges[1::2])]


def both_strands(stretches: list[np.ndarray]) -> list[np.ndarray]:
    """The stretches followed by their reverse complements."""
    return stretches + [reverse_complement_codes(s) for s in stretches]


class StrandWindows(Dataset):
    """Windows from `tile`, each access on a random strand (torch's seeded generator draws it): the reverse
    complement of a window's bases, right-padded as the window was."""

    def __init__(self, windows: Tensor):
        self.windows = windows
        self.lengths = (windows != PAD).sum(1)

    def __len__(self) -> int:
        return len(self.windows)

    def __getitem__(self, i: int) -> Tensor:
        window = self.windows[i]
        if torch.rand(()) < 0.5:
            n = int(self.lengths[i])
            window = window.clone()
            window[:n] = torch.from_numpy(reverse_complement_codes(window[:n].numpy()).copy())
        return window


def tile(stretches: list[np.ndarray], length: int, stride: int) -> Tensor:
    """(n, length) uint8 windows tiling every stretch; a stretch's last window is right-padded (PAD) and
    kept when it holds two tokens or more, the least that gives one prediction."""
    rows = []
    for s in stretches:
        for begin in range(0, len(s), length):
            piece = s[begin: begin + length]
            if len(piece) >= 2 * stride:
                rows.append(np.pad(piece, (0, length - len(piece)), constant_values=PAD))
    if not rows:
        raise ValueError(f"every stretch is shorter than two tokens ({2 * stride} bases)")
    return torch.from_numpy(np.stack(rows).astype(np.uint8))


# -- the objective --------------------------------------------------------------------------------------
def next_token_logits(net: DNANet, codes: Tensor, piece: int = PIECE) -> tuple[Tensor, Tensor]:
    """Logits (B, n − 1, 4**stride) and targets (B, n − 1) of next-token prediction on windows `codes` (B, L)
    streamed in pieces of `piece` bases, n = L / stride tokens: the output of token i predicts token i + 1,
    its `stride` bases jointly (target id: the bases as a base-4 number; −100 where it holds padding)."""
    s = net.stride
    h = torch.cat([out for _, out in net.read(codes, piece)], 1)
    tokens = codes.unflatten(1, (-1, s))
    ids = (tokens.clamp_max(3) * 4 ** torch.arange(s - 1, -1, -1, device=codes.device)).sum(-1)
    return net.head(h[:, :-1]).float(), ids.masked_fill((tokens > 3).any(-1), -100)[:, 1:]


def next_token_loss(net: DNANet, codes: Tensor) -> tuple[Tensor, Tensor]:
    """(summed cross-entropy in nats, number of predictions) of `next_token_logits` on windows `codes`."""
    logits, targets = next_token_logits(net, codes)
    loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), targets.flatten(), reduction="sum")
    return loss, (targets >= 0).sum()


def bits_per_base(net: DNANet, windows: Tensor, batch_size: int = 64) -> float:
    """Held-out bits per base of next-token prediction over `windows` (from `tile`)."""
    total, count = 0.0, 0
    device = next(net.parameters()).device
    net.eval()
    with torch.inference_mode():
        for begin in range(0, len(windows), batch_size):
            loss, n = next_token_loss(net, windows[begin: begin + batch_size].to(device).long())
            total, count = total + float(loss), count + int(n)
    return total / count / net.stride / math.log(2)


# -- training -------------------------------------------------------------------------------------------
class _EachEpoch(pl.Callback):
    """Call `save(epoch)` at the end of every training epoch (after its validation)."""

    def __init__(self, save: Callable[[int], None]):
        self.save = save

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.save(trainer.current_epoch + 1)


def pretrain(fasta: Sequence[str | os.PathLike], model: str | os.PathLike, *, epochs: int = 10,
             max_bases: int | None = None, validation_fraction: float = 0.05, length: int = 2048,
             batch_size: int = 8, lr: float = 4e-3, progress: bool = True, accelerator: str = "auto",
             random_state: int = 0, **architecture: Any) -> PretrainReport:
    """Train the DNA encoder on genome FASTA `fasta` by next-base prediction and write it to `model`
    (rewritten after every epoch, then with the best epoch's weights and the report).

    `architecture`: the `TitansDNAClassifier` parameters in `ARCHITECTURE` (their defaults by default);
    a classifier fine-tuned from the file must use the same. Training windows are `length` bases; early
    stopping and the best epoch follow the validation loss (`titans_ts.training.fit`).
    """
    from .classifier import TitansDNAClassifier, encoder_config  # the classifier imports this module

    unknown = sorted(set(architecture) - set(ARCHITECTURE))
    if unknown:
        raise TypeError(f"pretrain got unknown parameters {unknown}; the architecture takes {list(ARCHITECTURE)}")
    defaults = TitansDNAClassifier().get_params()
    params = {name: architecture.get(name, defaults[name]) for name in ARCHITECTURE}
    for name, value in (("epochs", epochs), ("length", length), ("batch_size", batch_size), ("k", params["k"]),
                        ("stride", params["stride"])):
        check_positive_int(name, value)
    if length % params["stride"]:
        raise ValueError(f"length ({length}) must be a multiple of stride ({params['stride']})")
    if params["tokenizer"] == "kmer" and params["k"] > 8:
        raise ValueError(f"k must be at most 8 (4**k embeddings), got {params['k']}")
    if not Path(model).parent.is_dir():  # found now, not after the first epoch
        raise ValueError(f"cannot write {model}: folder {Path(model).parent} does not exist")
    config = encoder_config(dropout=0.0, **{n: v for n, v in params.items() if n not in ("tokenizer", "k", "stride")})
    start = time.perf_counter()
    train, val = read_stretches(fasta, max_bases, validation_fraction)
    val = both_strands(val)
    markov = MarkovModel(MARKOV_ORDER).fit(both_strands(train)).bits_per_base(val)
    train_windows, val_windows = tile(train, length, params["stride"]), tile(val, length, params["stride"])
    torch.manual_seed(random_state)
    net = DNANet(4 ** params["stride"], config, params["tokenizer"], params["k"], params["stride"], pooling="mean")

    def step(net: DNANet, batch: Tensor) -> Tensor:
        loss, n = next_token_loss(net, batch.long())
        return loss / n

    def save(meta: dict[str, Any]) -> None:
        save_bundle(model, net.state_dict(), {"params": params, "length": length, **meta}, kind=_KIND)

    loader = DataLoader(StrandWindows(train_windows), batch_size=batch_size, shuffle=True)
    val_loader = DataLoader(val_windows, batch_size=4 * batch_size)
    result = fit(net, loader, val_loader, step=step, max_epochs=epochs, lr=lr, seed=random_state,
                 progress=progress, accelerator=accelerator, devices=1,
                 callbacks=[_EachEpoch(lambda epoch: save({"epoch": epoch}))])
    bits = bits_per_base(net.cpu(), val_windows)
    report = PretrainReport(bits, markov, sum(map(len, train)), sum(map(len, val)), result.epochs,
                            time.perf_counter() - start)
    save({"epoch": result.epochs, "report": asdict(report), "history": result.history})
    return report


# -- fine-tuning from a pretrained model -------------------------------------------------------------------
def pretrained_params(path: str | os.PathLike) -> dict[str, Any]:
    """The architecture (`ARCHITECTURE` names) a pretrained model file was trained with."""
    return load_bundle(path, kind=_KIND)[1]["params"]


def check_init(path: str | os.PathLike, params: dict[str, Any]) -> None:
    """ValueError naming both values when an architecture setting of classifier parameters `params` differs
    from the pretrained model's at `path`."""
    _check_architecture(path, pretrained_params(path), params)


def init_from(net: DNANet, path: str | os.PathLike, params: dict[str, Any]) -> None:
    """Load the embedding and encoder of `net`, built from classifier parameters `params`, from the
    pretrained model at `path` (the file read once, its architecture checked as by `check_init`)."""
    tensors, meta = load_bundle(path, kind=_KIND)
    _check_architecture(path, meta["params"], params)
    net.load_body(tensors, str(path))


def _check_architecture(path: str | os.PathLike, pretrained: dict[str, Any], params: dict[str, Any]) -> None:
    for name, theirs in pretrained.items():
        ours = params[name]
        if name == "encoder_kwargs":
            theirs, ours = theirs or {}, dict(ours or {})
        if theirs != ours:
            raise ValueError(f"{path}: pretrained with {name}={theirs!r}, but the classifier has {name}={ours!r}")
