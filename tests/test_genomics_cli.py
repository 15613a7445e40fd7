"""`titans-dna` train / predict / evaluate / scan / surprise on the bundled sample, and its refusal of bad input."""
import csv
import gzip
import json
import subprocess
import sys

import pytest
import torch

from titans_ts.datasets import bundled_dna_path, read_labelled
from titans_ts.genomics.cli import main


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    torch.set_num_threads(1)
    path = tmp_path_factory.mktemp("cli") / "promoters.titans"
    assert main(["train", "--data", str(bundled_dna_path()), "--model", str(path), "--epochs", "2", "--quiet"]) == 0
    return path


def rows(text):
    return list(csv.reader(text.splitlines(), delimiter="\t"))


def test_train_writes_a_model_and_predict_writes_probabilities(model, tmp_path, capsys):
    capsys.readouterr()
    out = tmp_path / "pred.tsv"
    assert main(["predict", "--model", str(model), str(bundled_dna_path()), "--out", str(out)]) == 0
    table = rows(out.read_text())
    assert table[0] == ["id", "predicted_label", "p_background", "p_promoter"]
    assert len(table) == 401
    for _, label, p_bg, p_pr in table[1:]:
        assert label in ("background", "promoter") and abs(float(p_bg) + float(p_pr) - 1) < 1e-5
        assert (label == "promoter") == (float(p_pr) > float(p_bg))
    assert main(["predict", "--model", str(model), str(bundled_dna_path())]) == 0
    assert rows(capsys.readouterr().out) == table  # stdout when no --out


def test_evaluate_reports_metrics_as_json(model, tmp_path, capsys):
    report = tmp_path / "metrics.json"
    assert main(["evaluate", "--model", str(model), "--data", str(bundled_dna_path()), "--json", str(report)]) == 0
    metrics = json.loads(report.read_text())
    assert {"accuracy", "mcc", "auroc", "confusion"} <= set(metrics)
    assert metrics["accuracy"] > 0.6 and metrics["auroc"] > 0.6  # two epochs on 360 sequences: learnt something
    assert sum(map(sum, metrics["confusion"])) == 400
    assert "accuracy=" in capsys.readouterr().out


def test_train_from_one_fasta_per_class_gzip_found_by_content(tmp_path):
    _, seqs, labels = read_labelled(bundled_dna_path())
    for cls, opener in (("promoter", gzip.open), ("background", open)):
        with opener(tmp_path / f"{cls}.txt", "wt") as fh:  # no .fa / .gz in the names
            fh.writelines(f">{cls}{i}\n{s}\n" for i, (s, y) in enumerate(zip(seqs, labels)) if y == cls)
    out = tmp_path / "m.titans"
    args = ["train", "--class", f"promoter={tmp_path / 'promoter.txt'}", "--class",
            f"background={tmp_path / 'background.txt'}", "--model", str(out), "--epochs", "1", "--quiet"]
    assert main(args) == 0 and out.exists()
    assert main(["predict", "--model", str(out), str(tmp_path / "promoter.txt"), "--out", str(tmp_path / "p.tsv")]) == 0
    table = rows((tmp_path / "p.tsv").read_text())
    assert table[1][0] == "promoter0" and len(table) == 201


def test_scan_writes_windows_along_a_long_record(model, tmp_path):
    _, seqs, _ = read_labelled(bundled_dna_path())
    (tmp_path / "chr.fa").write_text(">chrT test record\n" + "".join(seqs[:10]) + "\n")  # 810 bases
    out = tmp_path / "scan.tsv"
    assert main(["scan", "--model", str(model), str(tmp_path / "chr.fa"), "--window", "80", "--stride", "40",
                 "--out", str(out)]) == 0
    table = rows(out.read_text())
    assert table[0] == ["#chrom", "start", "end", "predicted_label", "p_background", "p_promoter"]
    spans = [(int(r[1]), int(r[2])) for r in table[1:]]
    assert spans[0] == (0, 80) and spans[1] == (40, 120) and spans[-1][1] == 810
    assert all(r[0] == "chrT" and abs(float(r[4]) + float(r[5]) - 1) < 1e-5 for r in table[1:])


def test_surprise_writes_a_row_per_base_and_a_plot_of_one_record(model, tmp_path, capsys):
    _, seqs, _ = read_labelled(bundled_dna_path())
    (tmp_path / "reads.fa").write_text(f">r1 first\n{seqs[0]}\n>r2\n{seqs[1] + seqs[2]}\n")  # 81 and 162 bases
    out, png = tmp_path / "surprise.tsv", tmp_path / "surprise.png"
    assert main(["surprise", "--model", str(model), str(tmp_path / "reads.fa"), "--out", str(out),
                 "--plot", str(png), "--id", "r2"]) == 0
    table = rows(out.read_text())
    assert table[0] == ["id", "position", "momentary", "past"] and len(table) == 1 + 81 + 162
    assert [r[0] for r in table[1:]] == ["r1"] * 81 + ["r2"] * 162
    assert [int(r[1]) for r in table[1:]] == list(range(81)) + list(range(162))
    assert all(float(r[2]) > 0 and float(r[3]) >= 0 for r in table[1:])
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    capsys.readouterr()
    assert main(["surprise", "--model", str(model), str(tmp_path / "reads.fa")]) == 0
    assert rows(capsys.readouterr().out) == table  # stdout when no --out


@pytest.mark.parametrize("content, extra, message", [
    (">r1\nACGT\n>r2\nACGTNNXA\n", [], "record 2 ('r2'): invalid character 'X' at position 7"),
    (">r1\nACGT\n", ["--plot", "s.png", "--id", "r9"], "no record with id 'r9'"),
    (">r1\nACGT\n", ["--id", "r1"], "--id names the record to plot"),
])
def test_surprise_bad_input_exits_2_with_one_line_and_no_output(model, tmp_path, capsys, content, extra, message):
    (tmp_path / "in.fa").write_text(content)
    capsys.readouterr()
    args = ["surprise", "--model", str(model), str(tmp_path / "in.fa"), "--out", str(tmp_path / "s.tsv")]
    assert main(args + [str(tmp_path / a) if a.endswith(".png") else a for a in extra]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.fa"]


@pytest.mark.parametrize("content, message", [
    ("seq\tlabel\nACGTACGT\tpromoter\nACGXACGT\tbackground\n", "line 3: invalid character 'X' at position 4"),
    (">r1\nACGT\n>r2\n\n", "record 2 ('r2'): empty sequence"),
    ("", "the file is empty"),
    (b"\x1f\x8b\x08\x00truncated", "truncated or corrupt gzip"),
])
def test_bad_input_exits_2_with_one_line_and_no_output(model, tmp_path, capsys, content, message):
    bad = tmp_path / "bad.in"
    bad.write_bytes(content if isinstance(content, bytes) else content.encode())
    out = tmp_path / "out.tsv"
    capsys.readouterr()
    assert main(["predict", "--model", str(model), str(bad), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err and str(bad) in err
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["bad.in"]


def test_evaluate_refuses_labels_the_model_does_not_know(model, tmp_path, capsys):
    data = tmp_path / "other.tsv"
    data.write_text("seq\tlabel\nACGTACGT\tenhancer\n")
    assert main(["evaluate", "--model", str(model), "--data", str(data), "--json", str(tmp_path / "m.json")]) == 2
    assert "labels ['enhancer'] are not classes of the model" in capsys.readouterr().err
    assert not (tmp_path / "m.json").exists()


def test_command_line_errors_are_one_line_without_traceback(tmp_path):
    for args in (["train", "--data", str(tmp_path / "none.tsv"), "--model", str(tmp_path / "m.titans")],
                 ["frobnicate"]):
        run = subprocess.run([sys.executable, "-m", "titans_ts.genomics.cli", *args], capture_output=True, text=True)
        assert run.returncode == 2 and run.stderr.count("\n") == 1 and "Traceback" not in run.stderr, run.stderr
        assert run.stderr.startswith("titans-dna: error: ")
    assert list(tmp_path.iterdir()) == []
