"""titans_ts.datasets.benchmark_sets: the Umarov promoter sets and the Drosophila enhancer CSV, on files
written here (messy headers, gzip, bad rows) and on the real shared files (counts as in the data README)."""
from __future__ import annotations

import gzip
from collections import Counter
from pathlib import Path

import pytest

from titans_ts.datasets import UMAROV_SETS, read_drosophila_enhancers, read_umarov

GENOMICS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "genomics"
needs_shared = pytest.mark.skipif(not (GENOMICS / "umarov_promoters").is_dir(), reason="shared data absent")


def write_gz(path: Path, text: str) -> Path:
    path.write_bytes(gzip.compress(text.encode()))
    return path


def test_umarov_pairs_promoters_with_non_promoters_through_messy_headers(tmp_path):
    write_gz(tmp_path / "Mouse_tata.fa.gz", ">gt;FP000970 Tsc22d1_1   :+U  EU:NC; range  -200 to    50.\n"
                                           "ACGTAC\nGTTT\n>&gt;FP000885 Sox4_1\r\nacgtNN\r\n")
    write_gz(tmp_path / "Mouse_nonprom.fa.gz", ">polyimmunoglobulin receptor, pIgr, mediates   [AB001489 ]\n"
                                              "TTTTGG\n>ADAMTS-1     \nCCCAAA\n>\nGGGGTT\n")
    ids, seqs, labels = read_umarov(tmp_path, "mouse_tata")
    assert seqs == ["ACGTACGTTT", "acgtNN", "TTTTGG", "CCCAAA", "GGGGTT"]
    assert labels == [1, 1, 0, 0, 0]
    assert ids == ["Mouse_tata:1:FP000970", "Mouse_tata:2:FP000885", "Mouse_nonprom:1:polyimmunoglobulin",
                   "Mouse_nonprom:2:ADAMTS-1", "Mouse_nonprom:3:"]


def test_umarov_errors_name_the_set_or_the_file(tmp_path):
    with pytest.raises(ValueError, match="unknown Umarov set 'human'"):
        read_umarov(tmp_path, "human")
    with pytest.raises(FileNotFoundError, match="Mouse_tata.fa.gz"):
        read_umarov(tmp_path, "mouse_tata")
    write_gz(tmp_path / "Mouse_tata.fa.gz", ">a\nACGT\n")
    write_gz(tmp_path / "Mouse_nonprom.fa.gz", ">b\nAC-GT\n")
    with pytest.raises(ValueError, match=r"Mouse_nonprom.fa.gz record 1 .*'-' at position 3"):
        read_umarov(tmp_path, "mouse_tata")


def test_drosophila_csv_plain_and_gzip(tmp_path):
    text = "sequence,target\nACGTTTGA,positive\n ggccAATT ,negative\nNNACGT,positive\n"
    for path in (tmp_path / "d.csv", write_gz(tmp_path / "d.csv.gz", text)):
        if path.suffix == ".csv":
            path.write_text(text)
        ids, seqs, labels = read_drosophila_enhancers(path)
        assert seqs == ["ACGTTTGA", "ggccAATT", "NNACGT"] and labels == [1, 0, 1]
        assert ids == [f"{path.name}:{line}" for line in (2, 3, 4)]


@pytest.mark.parametrize("text, message", [
    ("seq,label\nACGT,positive\n", "no sequence / target column"),
    ("sequence,target\n", "no sequences, only a header"),
    ("sequence,target\nACGT,positive\nAC GT,negative\n", "line 3: a sequence that is not letters"),
    ("sequence,target\nACGT,positive\nACGT,maybe\n", "line 3: a target other than positive / negative"),
    ("sequence,target\nACGT,\n", "line 2: a target other than positive / negative"),
])
def test_drosophila_bad_rows_are_named(tmp_path, text, message):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(ValueError, match=message):
        read_drosophila_enhancers(path)


@needs_shared
@pytest.mark.parametrize("name, counts", [("mouse_tata", (1255, 3530)), ("arabidopsis_tata", (1497, 2879)),
                                          ("arabidopsis_nontata", (5905, 2879))])
def test_real_umarov_sets(name, counts):
    ids, seqs, labels = read_umarov(GENOMICS / "umarov_promoters", name)
    assert Counter(labels) == {1: counts[0], 0: counts[1]} and name in UMAROV_SETS
    assert {len(s) for s in seqs} == {251} and len(set(ids)) == len(ids)
    assert not any("gt;" in i for i in ids) and set("".join(seqs)) <= set("ACGTN")


@needs_shared
def test_real_drosophila_enhancers():
    ids, seqs, labels = read_drosophila_enhancers(GENOMICS / "drosophila_enhancers_stark_test.csv.gz")
    lengths = [len(s) for s in seqs]
    assert Counter(labels) == {1: 865, 0: 865} and (min(lengths), max(lengths)) == (258, 3061)
