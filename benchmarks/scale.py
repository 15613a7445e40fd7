"""Scale: long inputs and many processes (issue 26).

    python benchmarks/scale.py encoder --json scale_encoder.json   # Titans forward vs full causal attention
    python benchmarks/scale.py scan                                # `titans-dna scan` of the 2.3 Mb human region
    python benchmarks/scale.py predict --model m.titans            # 100,000 reads, --workers 2 against one process
    python benchmarks/scale.py update backtest                     # a 1,000-series panel: batched, and over Dask

Without `--model`, scan and predict use a classifier of the default shape trained for one epoch on the bundled
sample: as fast as a trained one, its calls meaningless.

`encoder`: a `TitansEncoder` (batch 1, d_model 64, one MAL layer, inference without gradients) over T tokens,
against `torch.nn.functional.scaled_dot_product_attention(is_causal=True)` of the same width and heads over the
whole sequence: the cost a full-attention layer would pay. Q, K, V come from one linear map of the input in both,
so each side pays its projections. `scan`: bases per second of a stream of windows along one long record, and
the peak resident memory of the process. `predict`: the `titans-dna predict` command on synthetic reads, in one
process and spread over Dask workers. Every time is the median of `--repeats` runs, the peers run in turn within
each repeat so that load on the machine hits them alike. A table goes to stdout, the results to `--json`.

`update` and `backtest` use one forecaster of the default shape fitted for one epoch on a panel of `--series`
series, pieces of `--rows` hourly rows cut from the ETTh1 channels (starts spread evenly along each channel,
so pieces overlap when the channels hold too few): `update` streams the next row of every series in one
batched call, against one call per series from the same state, and gives the memory state one series holds;
`backtest` rolls forecasts over each series' last `--tail` rows in one process and on `--workers` Dask
workers (the cluster started before the clock; sending each task its series' states counts).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F

from titans_ts import TitansConfig, TitansEncoder

D_MODEL, HEADS = 64, 4
HUMAN = Path(__file__).resolve().parents[1].parent / "shared/data/genomics/pretrain/hg38_chr2_1-2333275.fa.gz"
ETTH1 = Path(__file__).resolve().parents[1].parent / "shared/data/ett/ETTh1.csv"


def seconds(fn: Callable[[], object]) -> tuple[float, float]:
    """Wall-clock and CPU seconds of fn() (CPU time is steadier on a machine shared with other work)."""
    t0, c0 = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - t0, time.process_time() - c0


def medians(peers: dict[str, Callable[[], object]], repeats: int) -> dict[str, dict[str, float]]:
    """Median wall and CPU seconds of each peer, after one warm-up call each; the peers alternate inside each
    repeat."""
    for fn in peers.values():
        fn()
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in peers}
    for _ in range(repeats):
        for name, fn in peers.items():
            times[name].append(seconds(fn))
    return {name: {"wall": statistics.median(t[0] for t in ts), "cpu": statistics.median(t[1] for t in ts)}
            for name, ts in times.items()}


def encoder(T: int, repeats: int) -> dict:
    """Seconds of one forward at length T: the Titans MAL encoder and full causal attention."""
    torch.manual_seed(0)
    config = TitansConfig(d_model=D_MODEL, n_layers=1, heads=HEADS, variant="mal")
    titans = TitansEncoder(config).eval()
    qkv = torch.nn.Linear(D_MODEL, 3 * D_MODEL, bias=False)
    x = torch.randn(1, T, D_MODEL)

    def full_attention() -> torch.Tensor:
        q, k, v = qkv(x).unflatten(-1, (3 * HEADS, -1)).transpose(1, 2).chunk(3, dim=1)
        return F.scaled_dot_product_attention(q, k, v, is_causal=True)

    with torch.inference_mode():
        med = medians({"titans_mal": lambda: titans(x), "full_attention": full_attention}, repeats)
    return {"T": T, "config": config.to_dict(), "seconds": med,
            "speedup": {k: med["full_attention"][k] / med["titans_mal"][k] for k in ("wall", "cpu")}}


def _titans_dna(args: list[str]) -> tuple[float, str]:
    """Run `titans-dna ARGS` in a fresh process; its peak resident memory in MiB and its stderr."""
    code = ("import resource, sys; from titans_ts.genomics.cli import main; rc = main(); "
            "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr); sys.exit(rc)")
    run = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True)
    if run.returncode:
        raise RuntimeError(f"titans-dna {' '.join(args)} failed: {run.stderr.strip()}")
    return int(run.stderr.split()[-1]) / 1024, run.stderr


def scan(model: str, data: str, window: int | None, stride: int | None, repeats: int) -> dict:
    """Bases per second of `titans-dna scan` over every record of `data` (whole run, and as the command reports
    it, from its start-up on), and its peak resident memory (MiB)
    beside that of a scan of the first tenth of the first record: the same, if memory does not grow with
    the record."""
    from titans_ts.datasets import iter_sequences

    bases = sum(len(s) for _, s in iter_sequences(data))
    extra = [*(["--window", str(window)] if window else []), *(["--stride", str(stride)] if stride else [])]
    with tempfile.TemporaryDirectory() as tmp:
        out, head = os.path.join(tmp, "scan.tsv"), os.path.join(tmp, "head.fa")
        rid, seq = next(iter_sequences(data))
        Path(head).write_text(f">{rid}\n{seq[: len(seq) // 10]}\n")
        peak_head, _ = _titans_dna(["scan", "--model", model, head, "--out", out, *extra])
        runs, peaks, own = [], [], []
        for _ in range(repeats):
            t0 = time.perf_counter()
            peak, err = _titans_dna(["scan", "--model", model, data, "--out", out, *extra])
            runs.append(time.perf_counter() - t0)
            peaks.append(peak)
            own.append(float(re.search(r"\(([\d,]+) bases/s\)", err).group(1).replace(",", "")))
        windows = sum(1 for _ in open(out)) - 1
    med = statistics.median(runs)
    return {"data": data, "bases": bases, "windows": windows, "seconds": med, "bases_per_s": bases / med,
            "bases_per_s_after_start": statistics.median(own),
            "peak_rss_mib": max(peaks), "peak_rss_mib_first_tenth": peak_head}


def predict(model: str, n_reads: int, length: int, workers: int, repeats: int) -> dict:
    """Seconds of `titans-dna predict` on `n_reads` random reads: one process, then `--workers`; outputs equal."""
    import numpy as np

    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        reads = os.path.join(tmp, "reads.fa")
        with open(reads, "w") as fh:
            for i, codes in enumerate(rng.integers(0, 4, (n_reads, length))):
                fh.write(f">read{i}\n{''.join(np.array(list('ACGT'))[codes])}\n")
        outs = {name: os.path.join(tmp, f"{name}.tsv") for name in ("one_process", "workers")}
        flags = {"one_process": [], "workers": ["--workers", str(workers)]}
        runs = {name: (lambda name=name: _titans_dna(["predict", "--model", model, reads, "--out", outs[name],
                                                      *flags[name]])) for name in outs}
        times = {name: [] for name in runs}
        for _ in range(repeats):
            for name, fn in runs.items():
                times[name].append(seconds(fn)[0])
        same = Path(outs["one_process"]).read_bytes() == Path(outs["workers"]).read_bytes()
    med = {name: statistics.median(ts) for name, ts in times.items()}
    return {"reads": n_reads, "length": length, "workers": workers, "seconds": med, "identical_output": same,
            "speedup": med["one_process"] / med["workers"]}


def ett_panel(n_series: int, rows: int):
    """A long polars frame (series, date, value) of `n_series` pieces of `rows` rows of the ETTh1 channels."""
    import numpy as np
    import polars as pl

    from titans_ts.datasets import load_ett

    ett = load_ett(ETTH1)
    channels = [c for c in ett.columns if c != "date"]
    starts = np.linspace(0, ett.height - rows, -(-n_series // len(channels))).astype(int)
    pieces = [(c, a) for c in channels for a in starts][:n_series]
    return pl.concat([ett.slice(a, rows).select("date", value=pl.col(c)).with_columns(series=pl.lit(f"{c}@{a}"))
                      .select("series", "date", "value") for c, a in pieces])


def panel_forecaster(n_series: int, rows: int, tail: int):
    """The default forecaster fitted for one epoch on every series' rows before its last `tail`; the panel."""
    import polars as pl

    from titans_ts.forecasting import TitansForecaster

    panel = ett_panel(n_series, rows)
    head = panel.filter(pl.int_range(pl.len()).over("series") < rows - tail)
    t0 = time.perf_counter()
    f = TitansForecaster(max_epochs=1, id_col="series", random_state=0).fit(head)
    return f, panel.filter(pl.int_range(pl.len()).over("series") >= rows - tail), time.perf_counter() - t0


def update(f, tail, repeats: int) -> dict:
    """Seconds to stream one new row of every series: one batched call, against one call per series."""
    import numpy as np
    import polars as pl

    rows = tail.filter(pl.int_range(pl.len()).over("series") == 0)
    singles = rows.partition_by("series", maintain_order=True)
    start = f.streams_

    def batched():
        f.streams_ = start
        f.update(rows)
        return f.predict()

    def one_by_one():
        f.streams_ = start
        for one in singles:
            f.update(one)
        return f.predict()

    same = np.abs(batched()["value"].to_numpy() - one_by_one()["value"].to_numpy()).max()
    med = medians({"batched": batched, "one_call_per_series": one_by_one}, repeats)
    f.streams_ = start
    key = start.keys[0]
    state = [*start.memory(key).values(), *(getattr(start, n)[0] for n in ("context", "point", "quant"))]
    return {"series": len(singles), "seconds": med, "max_abs_difference": float(same),
            "speedup": {k: med["one_call_per_series"][k] / med["batched"][k] for k in ("wall", "cpu")},
            "state_bytes_per_series": int(sum(t.numel() * t.element_size() for t in state))}


def backtest(f, tail, workers: int, repeats: int) -> dict:
    """Seconds of `f.backtest` over every series' tail in one process and on `workers` Dask workers."""
    from polars.testing import assert_frame_equal

    from titans_ts.distributed import dask_client

    with dask_client(workers) as client:
        peers = {"one_process": lambda: f.backtest(tail), "workers": lambda: f.backtest(tail, client=client)}
        assert_frame_equal(peers["workers"](), peers["one_process"]())  # the same frame, row for row
        med = medians(peers, repeats)
    return {"series": len(f.streams_.keys), "rows": tail.height, "workers": workers, "seconds": med,
            "identical_output": True, "speedup": {k: med["one_process"][k] / med["workers"][k] for k in ("wall", "cpu")}}


def untrained_model(path: str) -> str:
    """A default-shaped classifier after one epoch on the bundled sample, written to `path`."""
    from titans_ts.datasets import load_bundled_dna
    from titans_ts.genomics import TitansDNAClassifier

    _, seqs, labels = load_bundled_dna()
    TitansDNAClassifier(epochs=1, random_state=0).fit(seqs, labels).save(path)
    return path


def report(res: dict) -> None:
    if "encoder" in res:
        e = res["encoder"]
        print(f"encoder forward, batch 1, T={e['T']:,}, d_model {D_MODEL}, {HEADS} heads (median of {res['repeats']})")
        for name, sec in e["seconds"].items():
            print(f"  {name:<16} {sec['wall']:8.3f} s wall ({sec['cpu']:.3f} s CPU)  {e['T'] / sec['wall']:10,.0f} tokens/s")
        print(f"  full attention / Titans: {e['speedup']['wall']:.1f}x wall, {e['speedup']['cpu']:.1f}x CPU")
    if "scan" in res:
        s = res["scan"]
        print(f"scan {Path(s['data']).name}: {s['bases']:,} bases, {s['windows']:,} windows, {s['seconds']:.1f} s, "
              f"{s['bases_per_s']:,.0f} bases/s ({s['bases_per_s_after_start']:,.0f} after start-up, as the command "
              f"reports), peak RSS {s['peak_rss_mib']:,.0f} MiB "
              f"(a tenth of the record: {s['peak_rss_mib_first_tenth']:,.0f} MiB)")
    if "predict" in res:
        p = res["predict"]
        print(f"predict {p['reads']:,} reads of {p['length']} bases: one process {p['seconds']['one_process']:.1f} s, "
              f"--workers {p['workers']} {p['seconds']['workers']:.1f} s ({p['speedup']:.2f}x), "
              f"identical output: {p['identical_output']}")
    if "update" in res:
        u = res["update"]
        print(f"update one row of each of {u['series']:,} series: batched {u['seconds']['batched']['wall']:.3f} s, "
              f"one call per series {u['seconds']['one_call_per_series']['wall']:.2f} s "
              f"({u['speedup']['wall']:.0f}x wall, {u['speedup']['cpu']:.0f}x CPU; forecasts differ by at most "
              f"{u['max_abs_difference']:.1e}); state {u['state_bytes_per_series'] / 1024:.0f} KiB per series")
    if "backtest" in res:
        b = res["backtest"]
        print(f"backtest {b['series']:,} series ({b['rows']:,} rows): one process {b['seconds']['one_process']['wall']:.1f} s, "
              f"--workers {b['workers']} {b['seconds']['workers']['wall']:.1f} s ({b['speedup']['wall']:.2f}x wall), "
              f"identical output: {b['identical_output']}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("sections", nargs="+", choices=("encoder", "scan", "predict", "update", "backtest"),
                    help="what to measure")
    ap.add_argument("--T", type=int, default=100_000, help="encoder: sequence length (default 100,000)")
    ap.add_argument("--model", help="scan, predict: a model written by `titans-dna train` (default: one epoch's)")
    ap.add_argument("--data", default=str(HUMAN), help="scan: FASTA of long records (default the 2.3 Mb human region)")
    ap.add_argument("--window", type=int, help="scan: window in bases (default the model's)")
    ap.add_argument("--stride", type=int, help="scan: stride in bases (default the model's)")
    ap.add_argument("--reads", type=int, default=100_000, help="predict: number of synthetic reads (default 100,000)")
    ap.add_argument("--length", type=int, default=150, help="predict: read length (default 150)")
    ap.add_argument("--workers", type=int, default=2, help="predict, backtest: Dask workers (default 2)")
    ap.add_argument("--series", type=int, default=1000, help="update, backtest: series in the panel (default 1,000)")
    ap.add_argument("--rows", type=int, default=240, help="update, backtest: rows of each series (default 240)")
    ap.add_argument("--tail", type=int, default=96,
                    help="update, backtest: each series' rows held out of the fit and backtested (default 96)")
    ap.add_argument("--repeats", type=int, default=3, help="timed runs per measurement (median reported)")
    ap.add_argument("--json", help="write the results to this JSON file")
    args = ap.parse_args()
    tmp = tempfile.TemporaryDirectory()
    if {"scan", "predict"} & set(args.sections) and not args.model:
        args.model = untrained_model(os.path.join(tmp.name, "one_epoch.titans"))
    res = {"repeats": args.repeats, "torch": torch.__version__, "threads": torch.get_num_threads(),
           "machine": platform.processor() or platform.machine(), "load_average_before": os.getloadavg()}
    if args.model:
        res["model"] = args.model
    if "encoder" in args.sections:
        res["encoder"] = encoder(args.T, args.repeats)
    if "scan" in args.sections:
        res["scan"] = scan(args.model, args.data, args.window, args.stride, args.repeats)
    if "predict" in args.sections:
        res["predict"] = predict(args.model, args.reads, args.length, args.workers, args.repeats)
    if {"update", "backtest"} & set(args.sections):
        f, tail, res["panel_fit_seconds"] = panel_forecaster(args.series, args.rows, args.tail)
        if "update" in args.sections:
            res["update"] = update(f, tail, args.repeats)
        if "backtest" in args.sections:
            res["backtest"] = backtest(f, tail, args.workers, args.repeats)
    res["load_average_after"] = os.getloadavg()
    report(res)
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2) + "\n")


if __name__ == "__main__":
    main()
