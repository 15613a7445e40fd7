"""Labelled DNA sequences from the files people actually have, and a stratified split.

Readers: `read_labelled` (CSV `sequence,label` / TSV `seq<TAB>label`), `read_fasta`, `read_fastq`,
`read_sequences` (either, by content), `read_classes` (one FASTA/FASTQ per class) and
`read_genomic_benchmarks` (`<root>/<split>/<class>/*.txt`), and `iter_genome`, which streams the records
of a genome FASTA one at a time (bgzip is gzip to it). Every reader detects gzip by its magic
bytes (not the file name), accepts CRLF line endings, strips whitespace from sequences and keeps their
case: casing is the classifier's decision (some data sets leak the label through it). Problems are
ValueErrors naming the file and the line or record at fault.
"""
from __future__ import annotations

import csv
import gzip
import io
import itertools
import os
import re
import zlib
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
from Bio import SeqIO
from Bio.SeqIO.FastaIO import SimpleFastaParser

Label = int | str
PathLike = str | os.PathLike[str]

_GZIP_MAGIC = b"\x1f\x8b"
_SEQUENCE = re.compile(r"[A-Za-z]+")
_INTEGER = re.compile(r"[+-]?\d+")
_SEQ_COLUMNS = ("sequence", "seq")
_ID_COLUMNS = ("id", "name")
_DELIMITER_NAMES = {"\t": "tab-separated", ",": "comma-separated"}


class Sequences(NamedTuple):
    """Parallel lists of record ids and sequences."""

    ids: list[str]
    seqs: list[str]


class LabelledSequences(NamedTuple):
    """Parallel lists of ids, sequences and labels (int when every label in the file is an integer)."""

    ids: list[str]
    seqs: list[str]
    labels: list[Label]


def read_labelled(path: PathLike) -> LabelledSequences:
    """Read a CSV or TSV of sequences and labels (delimiter: a tab on the first line means TSV).

    A header row is recognised by a `sequence`/`seq` and a `label` column (an optional `id`/`name`
    column supplies ids); without one the rows are `sequence, label`. Ids default to `<file>:<line>`.
    """
    source = os.fspath(path)
    text = _read_text(source)
    delimiter = "\t" if "\t" in next(line for line in text.splitlines() if line.strip()) else ","
    reader = csv.reader(io.StringIO(text), delimiter=delimiter)
    rows = [(reader.line_num, row) for row in reader if any(field.strip() for field in row)]
    if not rows:
        raise ValueError(f"{source}: no sequences, only empty fields")
    header = [field.strip().lower() for field in rows[0][1]]
    if any(name in header for name in (*_SEQ_COLUMNS, "label", *_ID_COLUMNS)):
        where = f"{source} line {rows[0][0]}"
        seq_col = _column(header, _SEQ_COLUMNS, where)
        label_col = _column(header, ("label",), where)
        id_col = next((header.index(name) for name in _ID_COLUMNS if name in header), None)
        columns, rows = header, rows[1:]
    else:
        seq_col, label_col, id_col, columns = 0, 1, None, ["sequence", "label"]
    if not rows:
        raise ValueError(f"{source}: no sequences, only a header")
    ids: list[str] = []
    seqs: list[str] = []
    labels: list[str] = []
    for line, row in rows:
        where = f"{source} line {line}"
        if len(row) != len(columns):
            hint = "; is the label missing?" if len(row) < len(columns) else ""
            raise ValueError(f"{where}: row has {len(row)} {_DELIMITER_NAMES[delimiter]} fields, expected "
                             f"{len(columns)} ({', '.join(columns)}){hint}")
        if not row[label_col].strip():
            raise ValueError(f"{where}: empty label")
        seqs.append(_clean_sequence(row[seq_col], where))
        labels.append(row[label_col].strip())
        ids.append(row[id_col].strip() if id_col is not None else f"{Path(source).name}:{line}")
    return LabelledSequences(ids, seqs, _as_labels(labels))


def read_fasta(path: PathLike) -> Sequences:
    """Read every record of a FASTA file (plain or gzip) through Bio.SeqIO; ids are the first header word."""
    return _parse(os.fspath(path), "fasta")


def read_fastq(path: PathLike) -> Sequences:
    """Read every record of a FASTQ file (plain or gzip) through Bio.SeqIO; qualities are dropped."""
    return _parse(os.fspath(path), "fastq")


def read_sequences(path: PathLike) -> Sequences:
    """Read a FASTA or FASTQ file, telling them apart by the first character ('>' or '@')."""
    return _parse(os.fspath(path), None)


def iter_genome(path: PathLike) -> Iterator[tuple[str, str]]:
    """Yield (id, sequence) for each record of a FASTA file, plain, gzip or bgzip (found by content), one
    record in memory at a time, so a chromosome-sized file streams. Letters are kept as they are (soft-masked
    bases stay lower case). ValueError names the file and record for an empty or corrupt file."""
    source = os.fspath(path)
    with open(source, "rb") as fh:
        compressed = fh.read(2) == _GZIP_MAGIC
    count = 0
    try:
        with (gzip.open(source, "rt") if compressed else open(source)) as fh:  # bgzip: gzip members in a row
            first = ""
            while not first.strip():
                first = fh.readline()
                if not first:
                    raise ValueError(f"{source}: the file is empty")
            if not first.startswith(">"):
                raise ValueError(f"{source}: not FASTA: the first record starts with {first.lstrip()[:1]!r}, "
                                 "expected '>'")
            for title, raw in SimpleFastaParser(itertools.chain([first], fh)):
                count += 1
                rid = (title.split(maxsplit=1) or [""])[0]
                yield rid, _clean_sequence(raw, f"{source} record {count} ({rid!r})")
    except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
        raise ValueError(f"{source}: truncated or corrupt gzip data ({exc})") from exc
    except UnicodeDecodeError as exc:
        raise ValueError(f"{source}: not a text file (it holds bytes that are not UTF-8)") from exc


def read_classes(files: Mapping[str, PathLike]) -> LabelledSequences:
    """Read one FASTA/FASTQ file per class, e.g. `{"promoter": p, "background": b}`; labels are the keys."""
    if not files:
        raise ValueError("read_classes needs at least one {class name: file} entry")
    ids: list[str] = []
    seqs: list[str] = []
    labels: list[Label] = []
    for label, path in files.items():
        records = read_sequences(path)
        ids += records.ids
        seqs += records.seqs
        labels += [label] * len(records.seqs)
    return LabelledSequences(ids, seqs, labels)


def read_genomic_benchmarks(root: PathLike) -> dict[str, LabelledSequences]:
    """Read a Genomic-Benchmarks folder `<root>/<split>/<class>/*.txt` (one sequence per file).

    Returns {split: (ids, seqs, labels)} with class folder names as labels and ids `split/class/file`;
    files are taken in natural order (2.txt before 10.txt) so the result is reproducible.
    """
    root = Path(root)
    if not root.is_dir():
        raise NotADirectoryError(f"{root}: not a folder")
    splits = _subfolders(root)
    if not splits:
        raise ValueError(f"{root}: no split folders (expected <root>/<split>/<class>/*.txt)")
    result: dict[str, LabelledSequences] = {}
    for split in splits:
        classes = _subfolders(split)
        if not classes:
            raise ValueError(f"{split}: no class folders (expected {split}/<class>/*.txt)")
        ids: list[str] = []
        seqs: list[str] = []
        labels: list[Label] = []
        for class_dir in classes:
            files = sorted(class_dir.glob("*.txt"), key=_natural_key)
            if not files:
                raise ValueError(f"{class_dir}: no .txt sequence files")
            for file in files:
                lines = [line for line in _read_text(os.fspath(file)).splitlines() if line.strip()]
                if len(lines) != 1:
                    raise ValueError(f"{file}: expected one sequence line, found {len(lines)}")
                seqs.append(_clean_sequence(lines[0], f"{file} line 1"))
                ids.append(f"{split.name}/{class_dir.name}/{file.name}")
                labels.append(class_dir.name)
        result[split.name] = LabelledSequences(ids, seqs, labels)
    return result


def stratified_split(
    labels: Sequence[Label] | np.ndarray,
    fractions: tuple[float, float, float] = (0.7, 0.1, 0.2),
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Split indices into train / validation / test, keeping each class's share in every part.

    Each class is shuffled with `numpy.random.default_rng(seed)` and cut by largest remainders, so
    part sizes per class differ from `fractions * n_class` by less than one. Returns sorted index arrays.
    """
    fractions_arr = np.asarray(fractions, dtype=np.float64)
    if fractions_arr.shape != (3,) or (fractions_arr < 0).any() or not np.isclose(fractions_arr.sum(), 1.0):
        raise ValueError(f"fractions must be three non-negative numbers summing to 1, got {fractions}")
    array = np.asarray(labels)
    if array.ndim != 1 or array.size == 0:
        raise ValueError(f"labels must be a non-empty 1-d sequence, got shape {array.shape}")
    classes, codes = np.unique(array, return_inverse=True)
    rng = np.random.default_rng(seed)
    parts: list[list[np.ndarray]] = [[], [], []]
    for code in range(classes.size):
        members = rng.permutation(np.flatnonzero(codes == code))
        ends = np.cumsum(_largest_remainder(members.size, fractions_arr))
        for part, chunk in zip(parts, np.split(members, ends[:-1])):
            part.append(chunk)
    train, val, test = (np.sort(np.concatenate(part)) for part in parts)
    return train, val, test


def _read_text(source: str) -> str:
    """The whole file as text with universal newlines, gunzipped when it starts with the gzip magic."""
    with open(source, "rb") as fh:
        compressed = fh.read(2) == _GZIP_MAGIC
    try:
        if compressed:
            with gzip.open(source, "rt", encoding="utf-8-sig") as fh:
                text = fh.read()
        else:
            with open(source, encoding="utf-8-sig") as fh:
                text = fh.read()
    except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
        raise ValueError(f"{source}: truncated or corrupt gzip data ({exc})") from exc
    except UnicodeDecodeError as exc:
        raise ValueError(f"{source}: not a text file (it holds bytes that are not UTF-8)") from exc
    if not text.strip():
        raise ValueError(f"{source}: the file is empty")
    return text


def _parse(source: str, fmt: str | None) -> Sequences:
    """Parse FASTA or FASTQ (`fmt` None: decided by the first character) with Bio.SeqIO."""
    text = _read_text(source)
    first = text.lstrip()[0]
    detected = {">": "fasta", "@": "fastq"}.get(first)
    if detected is None or (fmt is not None and detected != fmt):
        expected = {"fasta": "'>' (FASTA)", "fastq": "'@' (FASTQ)", None: "'>' (FASTA) or '@' (FASTQ)"}[fmt]
        raise ValueError(f"{source}: not {(fmt or 'FASTA/FASTQ').upper()}: the first record starts with "
                         f"{first!r}, expected {expected}")
    ids: list[str] = []
    seqs: list[str] = []
    records = SeqIO.parse(io.StringIO(text), detected)
    while True:
        where = f"{source} record {len(seqs) + 1}"
        try:
            record = next(records)
        except StopIteration:
            break
        except ValueError as exc:
            raise ValueError(f"{where}: malformed {detected.upper()} ({exc})") from exc
        seqs.append(_clean_sequence(str(record.seq), f"{where} ({record.id!r})"))
        ids.append(record.id)
    return Sequences(ids, seqs)


def _clean_sequence(raw: str, where: str) -> str:
    """Strip whitespace and check the sequence is non-empty letters (IUPAC codes, any case)."""
    seq = "".join(raw.split())
    if not seq:
        raise ValueError(f"{where}: empty sequence")
    if not _SEQUENCE.fullmatch(seq):
        bad = next(i for i, char in enumerate(seq) if not char.isascii() or not char.isalpha())
        raise ValueError(f"{where}: sequence holds {seq[bad]!r} at position {bad + 1}; expected letters")
    return seq


def _column(header: list[str], names: tuple[str, ...], where: str) -> int:
    for name in names:
        if name in header:
            return header.index(name)
    raise ValueError(f"{where}: header {header} has no {' / '.join(names)} column")


def _as_labels(labels: list[str]) -> list[Label]:
    """Integers when every label is an integer literal ("0", "1"), else the strings as read."""
    if all(_INTEGER.fullmatch(label) for label in labels):
        return [int(label) for label in labels]
    return list(labels)


def _subfolders(folder: Path) -> list[Path]:
    """Visible subfolders, sorted (hidden ones such as .ipynb_checkpoints are skipped)."""
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def _natural_key(path: Path) -> tuple[int, int, str]:
    stem = path.stem
    return (0, int(stem), path.name) if stem.isdigit() else (1, 0, path.name)


def _largest_remainder(n: int, fractions: np.ndarray) -> np.ndarray:
    """Integer counts summing to n, each within one of `fractions * n`."""
    exact = fractions * n
    counts = np.floor(exact).astype(np.int64)
    order = np.argsort(-(exact - counts), kind="stable")
    counts[order[: n - counts.sum()]] += 1
    return counts
