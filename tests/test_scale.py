"""Long records in bounded memory: `scan` reads a record block by block (same windows whatever the block),
its peak memory does not grow with the record's length, and `iter_sequences` streams a file record by record."""
import gzip
from pathlib import Path

import numpy as np
import pytest

from titans_ts.datasets import bundled_dna_path, iter_sequences, read_labelled, read_sequences
from titans_ts.genomics import TitansDNAClassifier, scan, scanning

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def clf():
    _, seqs, labels = read_labelled(bundled_dna_path())
    return TitansDNAClassifier(d_model=16, n_layers=1, heads=2, window=8, chunk_size=8, k=3, stride=4, epochs=1,
                               rc="augment", random_state=0).fit(seqs[:64], labels[:64])


def record(n, seed=0):
    return "".join(np.random.default_rng(seed).choice(list("ACGT"), n))


def test_windows_do_not_depend_on_the_block_the_encoder_reads(clf, monkeypatch):
    seq = record(1_000)
    whole = list(scan(clf, seq, window=80, stride=40))
    monkeypatch.setattr(scanning, "BLOCK", 100)  # rounded up to 120: blocks end inside and between windows
    blocks = list(scan(clf, seq, window=80, stride=40))
    assert [(w.start, w.end) for w in blocks] == [(w.start, w.end) for w in whole]
    assert whole[-1].end == 1_000 and len(whole) == 24
    np.testing.assert_allclose([w.probs for w in blocks], [w.probs for w in whole], atol=1e-5)
    with pytest.raises(ValueError, match="invalid character 'X' at position 1105 "):  # the record's, not the block's
        list(scan(clf, (seq + seq)[:1_104] + "X" + seq, window=80, stride=40))


def _peak_mib(fn) -> float:
    """Resident-memory high-water mark of fn() above the RSS before it (Linux: /proc/self/clear_refs)."""
    def field(name):
        return next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith(name))
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset VmHWM to the current RSS
    base = field("VmRSS:")
    fn()
    return (field("VmHWM:") - base) / 1024


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs Linux /proc")
def test_scan_peak_memory_does_not_grow_with_the_record(clf):
    short, long = record(10_000, 1), record(100_000, 2)
    consume = lambda seq: sum(1 for _ in scan(clf, seq, window=200, stride=100))  # noqa: E731
    consume(short)  # warm-up: allocator pools and lazily loaded code
    peaks = [_peak_mib(lambda: consume(seq)) for seq in (short, long, short, long)]
    assert max(peaks[1::2]) <= max(peaks[0::2]) + 2  # 10x the bases, no more memory (whole-record reading: +20 MiB)


def test_iter_sequences_streams_what_read_sequences_reads(tmp_path):
    path = tmp_path / "reads.txt"  # gzip found by content, not by name
    with gzip.open(path, "wt") as fh:
        fh.write(">a first\nACGT\nacgn\n>b\nTTTT\n")
    assert list(iter_sequences(path)) == list(zip(*read_sequences(path))) == [("a", "ACGTacgn"), ("b", "TTTT")]
    (tmp_path / "bad.fa").write_text(">a\nACGT\n>b\n\n")
    records = iter_sequences(tmp_path / "bad.fa")
    assert next(records) == ("a", "ACGT")  # the first record comes before the second is read
    with pytest.raises(ValueError, match=r"record 2 \('b'\): empty sequence"):
        next(records)
    (tmp_path / "table.csv").write_text("sequence,label\nACGT,a\n")
    with pytest.raises(ValueError, match="not FASTA/FASTQ"):
        next(iter_sequences(tmp_path / "table.csv"))
