"""`DNANet`: bases -> token embeddings -> patches -> `TitansEncoder` -> masked pooling -> linear head.

Each position is embedded from the k bases ending at it: linearly, by a causal convolution over the bases'
probabilities (one position weight matrix per feature, the first layer of a DNA CNN: 4·k weights per
feature), and with `"kmer"` tokens also by the k-mer's own entry in a table (4^k of them), which holds
what the bases do together beyond their sum; `"nucleotide"` tokens have the linear part only.

Beside the pooled (position-blind) head, an optional positional readout reads the outputs of the first
`positions` tokens one weight per position: sequences aligned on a landmark (promoters around their
transcription start) carry much of their signal in where a motif sits, which pooling throws away. With
`bag`, a linear readout of the k-mer frequencies (a k-mer logistic regression, trained with the rest)
adds its logits: each token carries its k-mers' logits after its encoder outputs, so the frequencies
are pooled (and scanned) exactly as the outputs are.

A sequence is read as a stream in pieces of at most `piece` bases; `Stream` carries what the next piece
needs (the encoder's `MemoryState` and, for k-mers, the last k − 1 bases), so a sequence far longer than
the attention window is read in bounded memory and the neural memory carries what the window cannot.
Because the encoder is causal, right padding changes no valid output and pooling masks it out.
"""
from __future__ import annotations

from collections.abc import Iterator
from typing import NamedTuple

import torch
from torch import Tensor, nn

from titans_ts.config import TitansConfig
from titans_ts.encoder import TitansEncoder
from titans_ts.memory import Surprise
from titans_ts.state import MemoryState

from .tokenize import PAD, base_probabilities, kmer_ids

TOKENIZERS = ("nucleotide", "kmer")
BODY = ("embed", "bases", "patch", "encoder")  # the embedding and the encoder: what pretraining trains
POOLINGS = ("mean", "meanmax")


class Stream(NamedTuple):
    """Where a stream stopped: the encoder state and the last k − 1 base codes (the next embedding's context)."""

    encoder: MemoryState | None
    tail: Tensor


class DNANet(nn.Module):
    """Titans sequence classifier over base codes (see `titans_ts.genomics.tokenize`)."""

    def __init__(self, n_classes: int, config: TitansConfig, tokenizer: str = "kmer", k: int = 3, stride: int = 1,
                 pooling: str = "mean", positions: int = 0, bag: bool = False):
        super().__init__()
        if tokenizer not in TOKENIZERS:
            raise ValueError(f"tokenizer must be one of {TOKENIZERS}, got {tokenizer!r}")
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
        if bag and tokenizer != "kmer":
            raise ValueError("bag needs tokenizer='kmer'")
        self.k, self.stride, self.pooling, self.positions = k, stride, pooling, positions
        self.context = k - 1
        d = config.d_model
        self.register_buffer("probs", base_probabilities(), persistent=False)
        self.embed = nn.Embedding(4 ** k + 1, d) if tokenizer == "kmer" else None  # a k-mer's own entry
        self.patch = nn.Linear(stride * d, d) if stride > 1 else nn.Identity()
        self.encoder = TitansEncoder(config)
        self.head = nn.Linear(2 * d if pooling == "meanmax" else d, n_classes)
        if positions:
            self.readout = nn.Linear(positions * d, n_classes, bias=False)
            nn.init.zeros_(self.readout.weight)  # training starts from the pooled head alone
        self.d_model, self.bag = d, None
        if bag:  # logits per k-mer; the unknown k-mer (ambiguity codes, padding) adds nothing
            self.bag = nn.Embedding(4 ** k + 1, n_classes, padding_idx=4 ** k)
            nn.init.zeros_(self.bag.weight)
        # the linear part of every embedding (module docstring; an ambiguity code embeds as the mean of its
        # bases). Beside a k-mer table it starts at zero, made last so the other weights start as without it
        self.bases = nn.Conv1d(4, d, k)
        if self.embed is not None:
            nn.init.zeros_(self.bases.weight)
            nn.init.zeros_(self.bases.bias)

    def body_state(self) -> dict[str, Tensor]:
        """The weights of the embedding and the encoder (`BODY`), by state-dict name."""
        return {name: value for name, value in self.state_dict().items() if name.split(".")[0] in BODY}

    def load_body(self, tensors: dict[str, Tensor], source: str) -> None:
        """Copy the embedding and encoder weights from `tensors` (a state dict of another `DNANet`, e.g. a
        pretrained one); the heads stay as built. ValueError naming both shapes where a weight differs."""
        own = self.body_state()
        for name, value in own.items():
            if name not in tensors:
                raise ValueError(f"{source} has no weight {name!r}, which this model has")
            if tensors[name].shape != value.shape:
                raise ValueError(f"{source}: weight {name!r} has shape {tuple(tensors[name].shape)}, this model's "
                                 f"{tuple(value.shape)}")
        extra = sorted(n for n in tensors if n.split(".")[0] in BODY and n not in own)
        if extra:
            raise ValueError(f"{source} has weights {extra} that this model lacks")
        self.load_state_dict({name: tensors[name] for name in own}, strict=False)

    def start(self, batch: int, device: torch.device | str = "cpu") -> Stream:
        return Stream(None, torch.full((batch, self.context), PAD, dtype=torch.long, device=device))

    def _inputs(self, codes: Tensor, stream: Stream) -> tuple[Tensor, Tensor, Tensor | None]:
        """Encoder inputs (B, n / stride, d) for the next piece of codes (B, n), the last k − 1 codes after it
        and the k-mer ids (B, n) (None for nucleotides)."""
        full = torch.cat([stream.tail, codes], dim=1)
        x = self.bases(self.probs[full].transpose(1, 2)).transpose(1, 2)  # padding has zero probabilities
        ids = None
        if self.embed is not None:
            ids = kmer_ids(full, self.k)
            x = x + self.embed(ids)
        tail = full[:, full.shape[1] - self.context:]
        return self.patch(x.reshape(x.shape[0], x.shape[1] // self.stride, -1)), tail, ids

    def tokens(self, codes: Tensor, stream: Stream) -> tuple[Tensor, Stream]:
        """Outputs (B, n / stride, d, or d + n_classes with `bag`) for the next piece of codes (B, n), n a
        multiple of stride: the encoder's, then with `bag` the summed logits of each token's k-mers."""
        x, tail, ids = self._inputs(codes, stream)
        h, state = self.encoder(x, stream.encoder)
        if self.bag is not None:
            h = torch.cat([h, self.bag(ids).unflatten(1, (h.shape[1], self.stride)).sum(2)], -1)
        return h, Stream(state, tail)

    def surprise(self, codes: Tensor, stream: Stream) -> tuple[Surprise, Stream]:
        """The memory's surprise at every token of the next piece, (B, n / stride, n_layers) tensors (see
        `TitansEncoder.surprise`); the stream moves on exactly as in `tokens`."""
        x, tail, _ = self._inputs(codes, stream)
        s, _, state = self.encoder.surprise(x, stream.encoder)
        return s, Stream(state, tail)

    def read(self, codes: Tensor, piece: int, surprise: bool = False) -> Iterator[tuple[int, Tensor | Surprise]]:
        """Stream codes (B, L) in pieces of `piece` bases from a fresh state: each piece's first base with
        its encoder outputs (`tokens`) or, with `surprise`, its `Surprise` (`surprise`)."""
        step = self.surprise if surprise else self.tokens
        stream = self.start(codes.shape[0], codes.device)
        for begin in range(0, codes.shape[1], piece):
            out, stream = step(codes[:, begin: begin + piece], stream)
            yield begin, out

    def classify(self, total: Tensor, count: Tensor, peak: Tensor, lead: Tensor | None) -> Tensor:
        """Logits from pooled statistics of the valid outputs of `tokens`: their sum (B, ·), number (B,) and
        maximum (B, ·), and the leading outputs (B, n, ·), padding zeroed (the positional readout takes the
        first `positions` of them, zeros past the end; None without a readout)."""
        d = self.d_model
        mean = total[:, :d] / count[:, None]
        logits = self.head(torch.cat([mean, peak[:, :d]], -1) if self.pooling == "meanmax" else mean)
        if self.bag is not None:  # the k-mer frequencies' logits (their mean over k-mers)
            logits = logits + total[:, d:] / (count[:, None] * self.stride)
        if not self.positions:
            return logits
        lead = lead[:, :self.positions, :d]
        lead = nn.functional.pad(lead, (0, 0, 0, max(0, self.positions - lead.shape[1])))
        return logits + self.readout(lead.flatten(1))

    def forward(self, codes: Tensor, lengths: Tensor, piece: int) -> Tensor:
        """Logits (B, n_classes) for right-padded codes (B, L), L and `piece` multiples of stride."""
        total = peak = None
        lead: list[Tensor] = []  # the valid outputs of pieces until `positions` tokens are in
        for begin, h in self.read(codes, piece):
            first = torch.arange(h.shape[1], device=codes.device) * self.stride + begin  # first base of each token
            valid = (first[None, :] < lengths[:, None])[..., None]
            zeroed = h * valid
            if begin // self.stride < self.positions:
                lead.append(zeroed)
            piece_sum = zeroed.sum(1)
            piece_max = h.masked_fill(~valid, float("-inf")).amax(1)
            total = piece_sum if total is None else total + piece_sum
            peak = piece_max if peak is None else torch.maximum(peak, piece_max)
        count = (-(-lengths // self.stride)).clamp_min(1).to(total.dtype)
        return self.classify(total, count, peak, torch.cat(lead, 1) if lead else None)
