"""The genomics benchmark's --quick smoke run on the shared data: a table and JSON with both models."""
import json
from pathlib import Path

import pytest

from titans_ts.genomics.benchmark import main

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "genomics"


@pytest.mark.skipif(not (DATA / "gb_human_nontata_promoters_test.tsv").exists(), reason="shared data not present")
def test_quick_benchmark_writes_table_and_json(tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert main(["--quick", "--threads", "1", "--data-dir", str(DATA), "--datasets", "nontata", "ecoli",
                 "--seed", "3", "--set", "mutation=0.1", "--json", str(out)]) == 0
    assert "6-mer logreg" in capsys.readouterr().out
    report = json.loads(out.read_text())
    rows = {(r["dataset"], r["model"]): r for r in report["rows"]}
    assert set(rows) == {(d, m) for d in ("nontata", "ecoli")
                         for m in ("titans-mag", "6-mer logreg", "6-mer+pos logreg")}
    assert all(0 <= r["accuracy"] <= 1 and r["infer_seq_s"] > 0 for r in rows.values())
    # every model is also scored on the validation part, where configurations may be compared
    assert all(0 <= r["val_accuracy"] <= 1 and 0 < r["val_log_loss"] < 10 for r in rows.values())
    assert rows[("ecoli", "titans-mag")]["independent_recall"] is not None
    assert "split" in report["meta"] and "date" in report["meta"]
    assert report["meta"]["titans_params"]["random_state"] == 3
    assert report["meta"]["titans_params"]["mutation"] == 0.1


@pytest.mark.parametrize("item, message", [("mutation=2", "mutation must be a probability"),
                                           ("mutation=x", "VALUE must be JSON"),
                                           ("bogus=1", "bogus")])
def test_a_bad_set_exits_2_with_one_line(item, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--quick", "--set", item])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
