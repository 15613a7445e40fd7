"""titans_ts.datasets.sequences: real DNA files, crafted bad files, and the stratified split."""
from __future__ import annotations

import gzip
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from titans_ts.datasets import (
    read_classes,
    read_fasta,
    read_fastq,
    read_genomic_benchmarks,
    read_labelled,
    read_sequences,
    stratified_split,
)

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
GENOMICS = SHARED / "genomics"
ECOLI = GENOMICS / "ecoli_promoters"
needs_shared = pytest.mark.skipif(not SHARED.is_dir(), reason=f"shared data folder {SHARED} is absent")


def write(path: Path, data: str | bytes) -> Path:
    if isinstance(data, str):
        data = data.encode()
    path.write_bytes(data)
    return path


# --- real files ------------------------------------------------------------------------------------

@needs_shared
def test_genomic_benchmarks_tsv():
    ids, seqs, labels = read_labelled(GENOMICS / "gb_human_nontata_promoters_test.tsv")
    assert len(seqs) == len(labels) == len(ids) == 9034
    assert Counter(labels) == {1: 4915, 0: 4119}
    assert {len(s) for s in seqs} == {251}
    assert sum("N" in s for s in seqs) == 1
    assert ids[0] == "gb_human_nontata_promoters_test.tsv:2"
    assert seqs[0].startswith("GTATTCTCCCCTAACAAGACC")


@needs_shared
def test_dnabert_csv():
    _, seqs, labels = read_labelled(GENOMICS / "dnabert_prom_core_dev.csv")
    assert len(seqs) == 5919
    assert set(labels) == {0, 1}
    assert {len(s) for s in seqs} == {70}
    assert seqs[0] == "TTTTTAAAAGTAAACACTGTTTTCATTAGGACCAAGCTAATCCTTATTGAGAATTTCTAAAGGGACATTA"


@needs_shared
def test_ecoli_fasta_keeps_case_and_drops_crlf():
    positive = read_fasta(ECOLI / "positive.fa")
    negative = read_fasta(ECOLI / "negative.fa")
    independent = read_fasta(ECOLI / "independent.fa")
    assert (len(positive.seqs), len(negative.seqs), len(independent.seqs)) == (2860, 2860, 256)
    assert all(len(s) == 81 for s in positive.seqs + negative.seqs + independent.seqs)
    assert positive.ids[0] == "ECK125137714_aaeBp3_reverse_3388263_[ICWHO|W|Inferred"
    # the case trap is kept: promoters are lower case (but for one base), background upper case
    assert positive.seqs[0] == "caaccagcaagagaacatctggcctgcgggcaccactgctacagtggtggtcactggcaaAcaagatcgcgacgaaagcca"
    assert all(sum(c.islower() for c in s) >= 80 for s in positive.seqs)
    assert all(s.isupper() for s in negative.seqs)
    assert negative.seqs[0].startswith("CGCAGCGGGTTTACCCTCTGACCGTTTC")
    assert not any("\r" in s or "\r" in i for s, i in zip(negative.seqs, negative.ids))


@needs_shared
def test_read_classes_labels_by_key():
    ids, seqs, labels = read_classes({"promoter": ECOLI / "positive.fa", "background": ECOLI / "negative.fa"})
    assert labels[:2860] == ["promoter"] * 2860 and labels[2860:] == ["background"] * 2860
    assert seqs[2860] == read_fasta(ECOLI / "negative.fa").seqs[0]
    assert len(ids) == 5720


# --- crafted files ---------------------------------------------------------------------------------

def test_fasta_gzip_detected_by_magic_bytes_not_name(tmp_path):
    text = ">a first\r\nACGT\r\nac gt\r\n>b\r\nNNNN\r\n"
    compressed = write(tmp_path / "plain_name.fa", gzip.compress(text.encode()))
    plain = write(tmp_path / "looks_compressed.fa.gz", text)
    for path in (compressed, plain):
        assert read_fasta(path) == (["a", "b"], ["ACGTacgt", "NNNN"])
        assert read_sequences(path) == (["a", "b"], ["ACGTacgt", "NNNN"])


def test_fastq_plain_and_gzip(tmp_path):
    text = "@r1 lane1\nACGTN\n+\nIIII#\n@r2\nttga\n+r2\nIIII\n"
    for path in (write(tmp_path / "reads.fq", text), write(tmp_path / "reads.fq.gz", gzip.compress(text.encode()))):
        assert read_fastq(path) == (["r1", "r2"], ["ACGTN", "ttga"])
        assert read_sequences(path).seqs == ["ACGTN", "ttga"]


def test_labelled_variants(tmp_path):
    headerless = write(tmp_path / "a.tsv", "ACGT\t1\n\n  ggcc \t0\n")
    assert read_labelled(headerless) == (["a.tsv:1", "a.tsv:3"], ["ACGT", "ggcc"], [1, 0])
    named = write(tmp_path / "b.csv", "\ufeffID,Seq,Label\r\nx1,AC,promoter\r\nx2,GT,background\r\n")
    assert read_labelled(named) == (["x1", "x2"], ["AC", "GT"], ["promoter", "background"])
    gzipped = write(tmp_path / "c.data", gzip.compress(b"seq\tlabel\nAAA\t-1\nCCC\t2\n"))
    assert read_labelled(gzipped) == (["c.data:2", "c.data:3"], ["AAA", "CCC"], [-1, 2])


@pytest.mark.parametrize(("reader", "name", "data", "match"), [
    (read_fasta, "empty.fa", "", "the file is empty"),
    (read_fasta, "blank.fa", "\n  \n", "the file is empty"),
    (read_fasta, "hole.fa", ">a\nACGT\n>b\n>c\nAC\n", r"record 2 \('b'\): empty sequence"),
    (read_fasta, "table.fa", "seq\tlabel\nACGT\t1\n", "not FASTA: the first record starts with 's', expected '>'"),
    (read_fasta, "reads.fa", "@r1\nACGT\n+\nIIII\n", "not FASTA"),
    (read_fasta, "digits.fa", ">a\nACGT\n>b\nAC1T\n", r"record 2 \('b'\): sequence holds '1' at position 3"),
    (read_fastq, "short_quality.fq", "@r1\nACGT\n+\nIIII\n@r2\nACGT\n+\nII\n", "record 2: malformed FASTQ"),
    (read_fastq, "cut.fq", "@r1\nACGT\n+\nIIII\n@r2\nACGT\n", "record 2: malformed FASTQ"),
    (read_fastq, "seqs.fq", ">a\nACGT\n", "not FASTQ"),
    (read_sequences, "binary.fa", b"\x00\xff\xfe\x80", "not a text file"),
    (read_sequences, "table.txt", "ACGT,1\n", "not FASTA/FASTQ"),
    (read_labelled, "nolabel.tsv", "seq\tlabel\nACGT\t1\nACGT\n",
     r"line 3: row has 1 tab-separated fields, expected 2 \(seq, label\); is the label missing\?"),
    (read_labelled, "emptylabel.csv", "sequence,label\nACGT,1\nACGT, \n", "line 3: empty label"),
    (read_labelled, "extra.csv", "ACGT,1\nACGT,1,x\n",
     r"line 2: row has 3 comma-separated fields, expected 2 \(sequence, label\)"),
    (read_labelled, "header.csv", "seq,class\nACGT,1\n", r"line 1: header \['seq', 'class'\] has no label column"),
    (read_labelled, "onlyheader.csv", "sequence,label\n", "no sequences, only a header"),
    (read_labelled, "emptyseq.tsv", "ACGT\t1\n \t0\n", "line 2: empty sequence"),
    (read_labelled, "empty.tsv", "", "the file is empty"),
])
def test_bad_files_name_file_and_place(tmp_path, reader, name, data, match):
    path = write(tmp_path / name, data)
    with pytest.raises(ValueError, match=match) as info:
        reader(path)
    assert str(path) in str(info.value)


def test_truncated_gzip(tmp_path):
    whole = gzip.compress((">a\nACGT\n" * 2000).encode())
    path = write(tmp_path / "cut.fa.gz", whole[: len(whole) // 2])
    with pytest.raises(ValueError, match="truncated or corrupt gzip data") as info:
        read_fasta(path)
    assert str(path) in str(info.value)
    with pytest.raises(ValueError, match="truncated or corrupt gzip data"):
        read_labelled(path)


def test_read_classes_needs_entries():
    with pytest.raises(ValueError, match="at least one"):
        read_classes({})


# --- Genomic Benchmarks folders --------------------------------------------------------------------

def make_benchmark(root: Path) -> Path:
    for split, classes in {"train": {"positive": ["ACGT", "GGGG", "TTTT"], "negative": ["CCCC"]},
                           "test": {"positive": ["AAAA"], "negative": ["acgt\n"]}}.items():
        for name, seqs in classes.items():
            folder = root / split / name
            folder.mkdir(parents=True)
            for number, seq in zip((2, 10, 1), seqs):
                (folder / f"{number}.txt").write_text(seq)
    return root


def test_genomic_benchmarks_folder(tmp_path):
    data = read_genomic_benchmarks(make_benchmark(tmp_path / "human_demo"))
    assert sorted(data) == ["test", "train"]
    ids, seqs, labels = data["train"]
    assert ids == ["train/negative/2.txt", "train/positive/1.txt", "train/positive/2.txt", "train/positive/10.txt"]
    assert seqs == ["CCCC", "TTTT", "ACGT", "GGGG"]
    assert labels == ["negative", "positive", "positive", "positive"]
    assert data["test"].seqs == ["acgt", "AAAA"]


def test_genomic_benchmarks_errors(tmp_path):
    root = make_benchmark(tmp_path / "bench")
    (root / "train" / "positive" / "3.txt").write_text("\n")
    with pytest.raises(ValueError, match=r"3\.txt: the file is empty"):
        read_genomic_benchmarks(root)
    (root / "train" / "positive" / "3.txt").write_text("ACGT\nACGT\n")
    with pytest.raises(ValueError, match="found 2"):
        read_genomic_benchmarks(root)
    (tmp_path / "flat" / "train").mkdir(parents=True)
    with pytest.raises(ValueError, match="no class folders"):
        read_genomic_benchmarks(tmp_path / "flat")
    with pytest.raises(NotADirectoryError):
        read_genomic_benchmarks(tmp_path / "missing")


# --- stratified split ------------------------------------------------------------------------------

@needs_shared
def test_stratified_split_on_real_labels():
    labels = np.array(read_labelled(GENOMICS / "gb_human_nontata_promoters_test.tsv").labels)
    train, val, test = stratified_split(labels, (0.7, 0.1, 0.2), seed=0)
    assert len(train) + len(val) + len(test) == 9034
    assert np.array_equal(np.sort(np.concatenate([train, val, test])), np.arange(9034))
    for cls, n in ((1, 4915), (0, 4119)):
        for part, fraction in ((train, 0.7), (val, 0.1), (test, 0.2)):
            assert abs(np.sum(labels[part] == cls) - fraction * n) < 1
    again = stratified_split(labels, (0.7, 0.1, 0.2), seed=0)
    other = stratified_split(labels, (0.7, 0.1, 0.2), seed=1)
    assert all(np.array_equal(a, b) for a, b in zip((train, val, test), again))
    assert not np.array_equal(train, other[0])


@settings(max_examples=60, deadline=None)
@given(labels=st.lists(st.sampled_from(["a", "b", "c"]), min_size=1, max_size=60),
       cut=st.tuples(st.integers(0, 10), st.integers(0, 10), st.integers(0, 10)).filter(any),
       seed=st.integers(0, 2**32 - 1))
def test_stratified_split_partitions_every_class(labels, cut, seed):
    fractions = tuple(c / sum(cut) for c in cut)
    parts = stratified_split(labels, fractions, seed=seed)
    assert np.array_equal(np.sort(np.concatenate(parts)), np.arange(len(labels)))
    array = np.array(labels)
    for cls in set(labels):
        n = np.sum(array == cls)
        for part, fraction in zip(parts, fractions):
            assert abs(np.sum(array[part] == cls) - fraction * n) < 1


@pytest.mark.parametrize("fractions", [(0.7, 0.3), (0.5, 0.5, 0.5), (1.2, -0.1, -0.1)])
def test_stratified_split_rejects_bad_fractions(fractions):
    with pytest.raises(ValueError, match="three non-negative numbers summing to 1"):
        stratified_split([0, 1], fractions)


@pytest.mark.parametrize("labels", [[], [[0, 1], [1, 0]]])
def test_stratified_split_rejects_bad_labels(labels):
    with pytest.raises(ValueError, match="labels must be a non-empty 1-d sequence"):
        stratified_split(labels)


def test_labelled_file_of_empty_fields_is_refused(tmp_path):
    path = tmp_path / "commas.csv"
    path.write_text(",\n,,\n")  # found by hypothesis: no field holds anything
    with pytest.raises(ValueError, match="no sequences"):
        read_labelled(path)
