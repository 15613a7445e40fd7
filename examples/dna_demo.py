"""titans-dna in one minute: train, predict and evaluate on the bundled E. coli promoter sample.

Run with `make demo` (or `python examples/dna_demo.py`). The same steps from a shell:
    titans-dna train --data SAMPLE.tsv --model promoters.titans --epochs 3
    titans-dna predict --model promoters.titans SAMPLE.tsv --out predictions.tsv
    titans-dna evaluate --model promoters.titans --data SAMPLE.tsv --json metrics.json
"""
import tempfile
from pathlib import Path

from titans_ts.datasets import bundled_dna_path
from titans_ts.genomics.cli import main

sample = bundled_dna_path()
notice = sample.with_name("dna_promoters_sample.LICENSE.txt").read_text().split("\n\n")[0]  # what, whence, changes
licence = sample.with_name("dna_promoters_sample.LICENSE.txt")
print(f"Data: {sample.name}\n{notice}\n(MIT licence, full text in {licence})\n")

with tempfile.TemporaryDirectory() as tmp:
    model, predictions = Path(tmp) / "promoters.titans", Path(tmp) / "predictions.tsv"
    steps = [["train", "--data", str(sample), "--model", str(model), "--epochs", "3", "--quiet"],
             ["predict", "--model", str(model), str(sample), "--out", str(predictions)],
             ["evaluate", "--model", str(model), "--data", str(sample)]]
    for args in steps:
        print("$ titans-dna " + " ".join(a if "/" not in a else Path(a).name for a in args))
        if main(args) != 0:
            raise SystemExit(1)
        if args[0] == "predict":
            print("".join(predictions.read_text().splitlines(keepends=True)[:4]), end="")
    print("(evaluated on the training sample itself: a smoke run, not a benchmark; see BENCHMARKS.md)")
