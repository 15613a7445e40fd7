"""DNA to integer codes, reverse complements and k-mer ids.

The rule for letters (case never matters: some data sets leak the label through case):
- A, C, G, T are the bases; U is read as T.
- The IUPAC ambiguity codes R Y S W K M B D H V and N stand for a uniform mixture of the bases they
  allow (N: all four). The "nucleotide" tokenizer embeds such a position as the mean of those bases'
  embeddings; the "kmer" tokenizer maps every k-mer that holds one to a single "unknown k-mer" token.
- Any other character is an error naming the sequence and the (1-based) position.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

ALPHABET = "ACGTRYSWKMBDHVN"
PAD = len(ALPHABET)  # code of padding after the end of a sequence (and before its start, in k-mers)
N_CODES = PAD + 1
_BASES = {"A": "A", "C": "C", "G": "G", "T": "T", "R": "AG", "Y": "CT", "S": "CG", "W": "AT", "K": "GT",
          "M": "AC", "B": "CGT", "D": "AGT", "H": "ACT", "V": "ACG", "N": "ACGT"}
_COMPLEMENT = str.maketrans("ACGTRYSWKMBDHVN", "TGCAYRSWMKVHDBN")

_LOOKUP = np.full(256, 255, dtype=np.uint8)
for _i, _c in enumerate(ALPHABET):
    _LOOKUP[ord(_c)] = _LOOKUP[ord(_c.lower())] = _i
_LOOKUP[ord("U")] = _LOOKUP[ord("u")] = ALPHABET.index("T")
_RC_CODES = np.array([ALPHABET.index(c) for c in ALPHABET.translate(_COMPLEMENT)] + [PAD], dtype=np.uint8)


def base_probabilities() -> Tensor:
    """(N_CODES, 4): for each code the probability of A, C, G, T it stands for (padding: all zero)."""
    table = torch.zeros(N_CODES, 4)
    for i, letter in enumerate(ALPHABET):
        for base in _BASES[letter]:
            table[i, "ACGT".index(base)] = 1 / len(_BASES[letter])
    return table


def encode(seq: str, name: str = "sequence", offset: int = 0) -> np.ndarray:
    """Codes (uint8, one per letter) of one sequence; ValueError naming `name` and the position if invalid
    (`offset`: where seq starts in the record it was cut from, so that the position is the record's)."""
    if not isinstance(seq, str):
        raise TypeError(f"{name}: expected a str, got {type(seq).__name__}")
    if not seq:
        raise ValueError(f"{name}: empty sequence")
    codes = _LOOKUP[np.frombuffer(seq.encode("ascii", errors="replace"), dtype=np.uint8)]  # "?" is invalid too
    if (codes == 255).any():
        bad = next(i for i, char in enumerate(seq) if not char.isascii() or _LOOKUP[ord(char)] == 255)
        raise ValueError(f"{name}: invalid character {seq[bad]!r} at position {offset + bad + 1} "
                         f"(expected A, C, G, T, U or an IUPAC code {ALPHABET[4:]}, any case)")
    return codes


def encode_all(seqs: Sequence[str], names: Sequence[str] | None = None) -> list[np.ndarray]:
    """`encode` every sequence; names default to "sequence <i>" (0-based index)."""
    if names is not None and len(names) != len(seqs):
        raise ValueError(f"names holds {len(names)} entries for {len(seqs)} sequences")
    return [encode(s, names[i] if names is not None else f"sequence {i}") for i, s in enumerate(seqs)]


def reverse_complement(seq: str) -> str:
    """Reverse complement (IUPAC-aware, case-insensitive; U complements to A)."""
    return seq.upper().replace("U", "T").translate(_COMPLEMENT)[::-1]


def reverse_complement_codes(codes: np.ndarray) -> np.ndarray:
    """Reverse complement of a code array (padding stays padding)."""
    return _RC_CODES[codes[::-1]]


def pad_batch(codes: Sequence[np.ndarray], multiple: int = 1) -> tuple[Tensor, Tensor]:
    """Right-pad code arrays to a common length (a multiple of `multiple`): (B, L) long codes, (B,) lengths."""
    lengths = torch.tensor([len(c) for c in codes], dtype=torch.long)
    width = -(-int(lengths.max()) // multiple) * multiple
    out = np.full((len(codes), width), PAD, dtype=np.int64)
    for row, c in enumerate(codes):
        out[row, :len(c)] = c
    return torch.from_numpy(out), lengths


def kmer_ids(codes: Tensor, k: int) -> Tensor:
    """Id of the k-mer ending at each position of (B, L + k − 1) codes -> (B, L) in [0, 4**k].

    The first k − 1 columns are context (the previous piece of a stream, or padding). Ids 0 … 4**k − 1 are
    k-mers of A, C, G, T; 4**k is the unknown k-mer (it holds an ambiguity code or padding).
    """
    windows = codes.unfold(1, k, 1)  # (B, L, k)
    place = 4 ** torch.arange(k - 1, -1, -1, device=codes.device)
    ids = (windows.clamp_max(3) * place).sum(-1)
    return ids.masked_fill((windows > 3).any(-1), 4 ** k)
