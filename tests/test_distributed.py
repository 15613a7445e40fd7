"""`titans-dna predict|scan` over Dask (a LocalCluster of 2 worker processes): the same bytes as one process,
and a worker killed mid-run costs no row and repeats none."""
import functools
import os
import signal

import numpy as np
import pytest

from titans_ts import distributed as spread
from titans_ts.datasets import bundled_dna_path, read_labelled
from titans_ts.genomics import TitansDNAClassifier, distributed
from titans_ts.genomics.cli import main

pytest.importorskip("dask.distributed")
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    _, seqs, labels = read_labelled(bundled_dna_path())
    path = tmp_path_factory.mktemp("dask") / "tiny.titans"
    TitansDNAClassifier(d_model=16, n_layers=1, heads=2, window=8, chunk_size=8, k=3, stride=2, epochs=1,
                        random_state=0).fit(seqs[:64], labels[:64]).save(path)
    return str(path)


@pytest.fixture(scope="module")
def reads(tmp_path_factory):
    rng = np.random.default_rng(0)
    path = tmp_path_factory.mktemp("dask") / "reads.fa"
    records = [(f"read{i}", "".join(rng.choice(list("ACGTN"), int(rng.integers(20, 120))))) for i in range(600)]
    path.write_text("".join(f">{rid}\n{seq}\n" for rid, seq in records))
    return str(path), records


@pytest.fixture
def small_tasks(monkeypatch):
    monkeypatch.setattr(distributed, "READS_PER_TASK", 128)  # 600 reads: 5 tasks over 2 workers


def run(tmp_path, name, *args):
    out = tmp_path / f"{name}.tsv"
    assert main([*args, "--out", str(out)]) == 0
    return out.read_bytes()


def test_predict_on_workers_writes_the_bytes_of_one_process(model, reads, client, small_tasks, tmp_path):
    alone = run(tmp_path, "alone", "predict", "--model", model, reads[0])
    spread = run(tmp_path, "spread", "predict", "--model", model, reads[0], "--scheduler", client.scheduler.address)
    assert spread == alone and alone.count(b"\n") == 601
    assert [line.split(b"\t")[0] for line in alone.splitlines()[1:]] == [r[0].encode() for r in reads[1]]


def test_scan_on_workers_writes_the_bytes_of_one_process(model, reads, client, tmp_path, capsys):
    chroms = tmp_path / "chroms.fa"
    chroms.write_text("".join(f">chr{i}\n{seq * 20}\n" for i, (_, seq) in enumerate(reads[1][:3])))
    args = ["scan", "--model", model, str(chroms), "--window", "40", "--stride", "20"]
    alone = run(tmp_path, "alone", *args)
    assert "bases/s" in capsys.readouterr().err
    assert run(tmp_path, "spread", *args, "--scheduler", client.scheduler.address) == alone
    chrom = [line.split(b"\t")[0] for line in alone.splitlines()[1:]]
    assert chrom == sorted(chrom) and set(chrom) == {b"chr0", b"chr1", b"chr2"}  # records in input order


@pytest.mark.slow
def test_predict_on_a_new_local_cluster_writes_the_bytes_of_one_process(model, reads, tmp_path):
    alone = run(tmp_path, "alone", "predict", "--model", model, reads[0])
    assert run(tmp_path, "spread", "predict", "--model", model, reads[0], "--workers", "2") == alone


def test_a_worker_killed_mid_run_loses_no_row_and_repeats_none(model, reads, client):
    records = [(rid, seq, rid) for rid, seq in reads[1]]
    before = client.run(os.getpid)  # worker address -> process id
    victim = next(iter(before.values()))

    def tasks():
        for i, batch in enumerate(spread.batched(records, 50)):
            if i == 6:  # 4 tasks are out on the two workers: kill one of them under its work
                os.kill(victim, signal.SIGKILL)
            yield batch

    rows = "".join(spread.ordered_map(functools.partial(distributed.predict_rows, model), tasks(), client))
    assert rows == "".join(map(functools.partial(distributed.predict_rows, model), spread.batched(records, 50)))
    assert victim not in client.run(os.getpid).values()  # the nanny started a new worker process


def test_workers_and_scheduler_are_checked(model, reads, capsys):
    assert main(["predict", "--model", model, reads[0], "--workers", "0"]) == 2
    assert "--workers must be an integer >= 1" in capsys.readouterr().err
    assert main(["predict", "--model", model, reads[0], "--workers", "2", "--scheduler", "tcp://x:1"]) == 2
    assert "not allowed with argument" in capsys.readouterr().err
