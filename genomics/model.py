"""`DNANet`: bases -> token embeddings -> patches -> `TitansEncoder` -> masked pooling -> linear head.

Beside the pooled (position-blind) head, an optional positional readout reads the outputs of the first
`positions` tokens one weight per position: sequences aligned on a landmark (promoters around their
transcription start) carry much of their signal in where a motif sits, which pooling throws away.

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
POOLINGS = ("mean", "meanmax")


class Stream(NamedTuple):
    """Where a stream stopped: the encoder state and the last k − 1 base codes (k-mer context)."""

    encoder: MemoryState | None
    tail: Tensor


class DNANet(nn.Module):
    """Titans sequence classifier over base codes (see `titans_ts.genomics.tokenize`)."""

    def __init__(self, n_classes: int, config: TitansConfig, tokenizer: str = "kmer", k: int = 3, stride: int = 1,
                 pooling: str = "mean", positions: int = 0):
        super().__init__()
        if tokenizer not in TOKENIZERS:
            raise ValueError(f"tokenizer must be one of {TOKENIZERS}, got {tokenizer!r}")
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
        self.tokenizer, self.k, self.stride, self.pooling, self.positions = tokenizer, k, stride, pooling, positions
        self.context = k - 1 if tokenizer == "kmer" else 0
        d = config.d_model
        if tokenizer == "kmer":
            self.embed = nn.Embedding(4 ** k + 1, d)
        else:
            self.register_buffer("probs", base_probabilities(), persistent=False)
            self.embed = nn.Linear(4, d)  # an ambiguity code embeds as the mean of its bases
        self.patch = nn.Linear(stride * d, d) if stride > 1 else nn.Identity()
        self.encoder = TitansEncoder(config)
        self.head = nn.Linear(2 * d if pooling == "meanmax" else d, n_classes)
        if positions:
            self.readout = nn.Linear(positions * d, n_classes, bias=False)
            nn.init.zeros_(self.readout.weight)  # training starts from the pooled head alone

    def start(self, batch: int, device: torch.device | str = "cpu") -> Stream:
        return Stream(None, torch.full((batch, self.context), PAD, dtype=torch.long, device=device))

    def _inputs(self, codes: Tensor, stream: Stream) -> tuple[Tensor, Tensor]:
        """Encoder inputs (B, n / stride, d) for the next piece of codes (B, n) and the k-mer tail after it."""
        if self.tokenizer == "kmer":
            full = torch.cat([stream.tail, codes], dim=1)
            x = self.embed(kmer_ids(full, self.k))
            tail = full[:, full.shape[1] - self.context:]
        else:
            x, tail = self.embed(self.probs[codes]), stream.tail
        return self.patch(x.reshape(x.shape[0], x.shape[1] // self.stride, -1)), tail

    def tokens(self, codes: Tensor, stream: Stream) -> tuple[Tensor, Stream]:
        """Encoder outputs (B, n / stride, d) for the next piece of codes (B, n), n a multiple of stride."""
        x, tail = self._inputs(codes, stream)
        h, state = self.encoder(x, stream.encoder)
        return h, Stream(state, tail)

    def surprise(self, codes: Tensor, stream: Stream) -> tuple[Surprise, Stream]:
        """The memory's surprise at every token of the next piece, (B, n / stride, n_layers) tensors (see
        `TitansEncoder.surprise`); the stream moves on exactly as in `tokens`."""
        x, tail = self._inputs(codes, stream)
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
        """Logits from pooled statistics: the sum (B, d), number (B,) and maximum (B, d) of valid outputs,
        and the leading outputs (B, n, d), padding zeroed (the positional readout takes the first
        `positions` of them, zeros past the end; None without a readout)."""
        mean = total / count[:, None]
        logits = self.head(torch.cat([mean, peak], -1) if self.pooling == "meanmax" else mean)
        if not self.positions:
            return logits
        lead = nn.functional.pad(lead[:, :self.positions], (0, 0, 0, max(0, self.positions - lead.shape[1])))
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
