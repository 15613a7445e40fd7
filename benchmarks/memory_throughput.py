"""Memory throughput: `titans_ts.NeuralMemory` against `titans_pytorch.NeuralMemory` (issue 3).

    python benchmarks/memory_throughput.py --json memory_throughput.json      # the full table
    python benchmarks/memory_throughput.py --quick                            # a tiny smoke run

Same shapes for both: batch 4, d_model 64, one head, memory depth 2, expansion 4, chunk 64. titans-pytorch
runs twice: with batch_size = chunk_size (weights updated after every chunk, the paper's semantics) and
with its default (batch_size=None). Every timing is the median of `--repeats` runs, the models timed in
turn inside each repeat so that load on the machine hits all of them alike. Also reported: GFLOP/s of
`memory_update` alone beside torch.matmul on the same shapes, the log-log slope of time against T, and
the peak resident memory of one training step, each measured in a fresh subprocess.
Needs the `bench` extra: `pip install titans-pytorch`.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from typing import Callable

import torch
import torch.nn.functional as F

from titans_ts import NeuralMemory
from titans_ts.kernels import memory_update

D_MODEL, HEADS, DEPTH, EXPANSION, CHUNK = 64, 1, 2, 4, 64
MODELS = ("titans_ts", "titans_pytorch_paper", "titans_pytorch_default")


def build(name: str) -> torch.nn.Module:
    torch.manual_seed(0)
    if name == "titans_ts":
        return NeuralMemory(d_model=D_MODEL, heads=HEADS, memory_depth=DEPTH, expansion=EXPANSION, chunk_size=CHUNK)
    from titans_pytorch import NeuralMemory as PeerMemory
    batch_size = CHUNK if name == "titans_pytorch_paper" else None
    return PeerMemory(dim=D_MODEL, heads=HEADS, chunk_size=CHUNK, batch_size=batch_size,
                      default_model_kwargs=dict(depth=DEPTH, expansion_factor=float(EXPANSION)))


def step(model: torch.nn.Module, x: torch.Tensor, train: bool) -> None:
    """Inference: one no-grad call. Training: forward, a loss, backward into every parameter."""
    if not train:
        with torch.no_grad():
            model(x)
        return
    y, _ = model(x)
    y.square().mean().backward()
    model.zero_grad(set_to_none=True)


def seconds(fn: Callable[[], None]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def slope(ts: list[int], secs: list[float]) -> float:
    """Least-squares slope of log(time) against log(T)."""
    lx, ly = [math.log(t) for t in ts], [math.log(s) for s in secs]
    mx, my = statistics.fmean(lx), statistics.fmean(ly)
    return sum((a - mx) * (b - my) for a, b in zip(lx, ly)) / sum((a - mx) ** 2 for a in lx)


def throughput(batch: int, lengths: list[int], repeats: int) -> dict:
    """Median seconds per call for every model, mode and length; models alternate inside each repeat."""
    models = {name: build(name) for name in MODELS}
    out = {}
    for mode in ("inference", "training"):
        for T in lengths:
            x = torch.randn(batch, T, D_MODEL)
            times = {name: [] for name in models}
            for name, m in models.items():
                step(m, x, mode == "training")  # warm-up
            for _ in range(repeats):
                for name, m in models.items():
                    times[name].append(seconds(lambda: step(m, x, mode == "training")))
            print(f"  {mode} T={T}: " + ", ".join(f"{n} {statistics.median(ts):.2f}s" for n, ts in times.items()),
                  file=sys.stderr, flush=True)
            for name, ts in times.items():
                med = statistics.median(ts)
                out.setdefault(name, {}).setdefault(mode, {})[T] = {"seconds": med, "tokens_per_s": batch * T / med}
    return out


MATMULS = ("aten::mm", "aten::bmm", "aten::baddbmm", "aten::baddbmm_", "aten::addmm", "aten::addmm_")


def matmul_flops(fn: Callable[[], None]) -> float:
    """FLOPs of the matmuls `fn` runs, counted from the shapes of the calls it makes (outermost matmul
    ops only: on the CPU `baddbmm_` runs one `addmm_` per batch element), so the count follows the code."""
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU], record_shapes=True) as prof:
        fn()
    total = 0
    for e in prof.events():
        parent = e.cpu_parent
        while parent is not None and parent.name not in MATMULS:
            parent = parent.cpu_parent
        if e.name not in MATMULS or parent is not None:
            continue
        a, b = e.input_shapes[1:3] if e.name.startswith(("aten::addmm", "aten::baddbmm")) else e.input_shapes[:2]
        total += 2 * math.prod(a) * b[-1]
    return float(total)


def matmul_gflops(batch: int, hidden: int, repeats: int) -> float:
    """torch.matmul alone on the update's shapes: the matmuls of one chunk step, many times over."""
    C, D, b = CHUNK, D_MODEL, (batch, HEADS)
    pairs = [((*b, 2 * C, D), (*b, D, hidden)), ((*b, 2 * C, hidden), (*b, hidden, D)), ((*b, C, D), (*b, D, hidden)),
             ((*b, D, C), (*b, C, hidden)), ((*b, D, C), (*b, C, hidden)),
             ((*b, hidden, C), (*b, C, D)), ((*b, hidden, C), (*b, C, D))]
    mats = [(torch.randn(x), torch.randn(y)) for x, y in pairs]
    flops = sum(2 * x.shape[-2] * x.shape[-1] * y.shape[-1] * x.shape[0] * x.shape[1] for x, y in mats)
    n = 64

    def run():
        for _ in range(n):
            for x, y in mats:
                torch.matmul(x, y)
    run()
    return n * flops / statistics.median(seconds(run) for _ in range(repeats)) / 1e9


def update_gflops(batch: int, T: int, repeats: int) -> dict:
    """GFLOP/s inside `memory_update` (chunk path) for inference and for forward + backward."""
    hidden, D = D_MODEL * EXPANSION, D_MODEL // HEADS
    g = torch.Generator().manual_seed(0)
    q, k = (F.normalize(torch.randn(batch, HEADS, T, D, generator=g), dim=-1) for _ in range(2))
    v = torch.randn(batch, HEADS, T, D, generator=g)
    gate = lambda scale: scale * torch.rand(batch, HEADS, T, generator=g)  # noqa: E731
    theta, eta, alpha = gate(0.1), gate(1.0), gate(0.01)
    w = (torch.randn(batch, HEADS, D, hidden) / D ** 0.5, torch.randn(batch, HEADS, hidden, D) / hidden ** 0.5)
    s = tuple(torch.zeros_like(x) for x in w)
    leaves = [t.requires_grad_() for t in (q, k, v, theta, eta, alpha, *w, *s)]

    def infer():
        with torch.no_grad():
            memory_update(q, k, v, theta, eta, alpha, w, s, CHUNK, backend="chunk")

    def train():
        y, w2, s2 = memory_update(q, k, v, theta, eta, alpha, w, s, CHUNK, backend="chunk")
        torch.autograd.grad(y.sum() + sum(x.sum() for x in w2 + s2), leaves)

    out = {"matmul_gflops": matmul_gflops(batch, hidden, repeats)}
    for name, fn in (("inference", infer), ("training", train)):
        out[f"{name}_gflop"] = matmul_flops(fn) / 1e9  # also the warm-up
        sec = statistics.median(seconds(fn) for _ in range(repeats))
        out[f"{name}_gflops"] = out[f"{name}_gflop"] / sec
    return out


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field))


def peak_child(name: str, batch: int, T: int) -> None:
    """(In a subprocess) resident-memory growth of one training step, in MiB, printed as JSON.

    The high-water mark is reset (/proc/self/clear_refs) after the model and input exist, so the
    import and warm-up peaks do not count; the step's peak is VmHWM minus the RSS at that moment."""
    model = build(name)
    x = torch.randn(batch, T, D_MODEL)
    step(model, x[:, : CHUNK * 2], True)  # load lazily initialised code paths before the baseline
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    base = _status_kib("VmRSS:")
    step(model, x, True)
    print(json.dumps({"peak_mib": (_status_kib("VmHWM:") - base) / 1024}))


def peak_memory(batch: int, T: int) -> dict:
    out = {}
    for name in MODELS:
        cmd = [sys.executable, __file__, "--threads", str(torch.get_num_threads()),
               "--peak-child", name, str(batch), str(T)]
        run = subprocess.run(cmd, capture_output=True, text=True)
        lines = run.stdout.strip().splitlines()
        ok = run.returncode == 0 and lines
        out[name] = json.loads(lines[-1])["peak_mib"] if ok else f"failed (rc {run.returncode})"
    return out


def report(res: dict) -> None:
    lengths = res["lengths"]
    print(f"tokens/s (batch {res['batch']}, d_model {D_MODEL}, heads {HEADS}, depth {DEPTH}, expansion {EXPANSION}, "
          f"chunk {CHUNK}; median of {res['repeats']})")
    heads = ("mode", "T", "titans_ts", "tp paper", "tp default", "× paper", "× default")
    print(f"{heads[0]:<10} {heads[1]:>6} " + " ".join(f"{h:>11}" for h in heads[2:5]) + f" {heads[5]:>8} {heads[6]:>9}")
    tput = res["throughput"]
    for mode in ("inference", "training"):
        for T in lengths:
            r = [tput[name][mode][T]["tokens_per_s"] for name in MODELS]
            speedups = f" {r[0] / r[1]:>8.1f} {r[0] / r[2]:>9.1f}"
            print(f"{mode:<10} {T:>6} " + " ".join(f"{x:>11,.0f}" for x in r) + speedups)
    print("log-log slope of time against T:")
    for name in MODELS:
        slopes = res["slopes"][name]
        print(f"  {name:<24} inference {slopes['inference']:.2f}  training {slopes['training']:.2f}")
    g = res["gflops"]
    print(f"memory_update at T={res['gflops_T']}: inference {g['inference_gflops']:.1f} GFLOP/s, training "
          f"{g['training_gflops']:.1f} GFLOP/s; torch.matmul on the same shapes {g['matmul_gflops']:.1f} GFLOP/s "
          f"({g['inference_gflops'] / g['matmul_gflops']:.0%} / {g['training_gflops'] / g['matmul_gflops']:.0%})")
    T = res["gflops_T"]
    print(f"at T={T}, ms per call: the update's matmuls ({g['inference_gflop']:.2f} / {g['training_gflop']:.2f} GFLOP) at "
          f"torch.matmul's rate · titans_ts · one fifth of tp paper")
    for mode in ("inference", "training"):
        ms = {name: 1e3 * res["throughput"][name][mode][T]["seconds"] for name in MODELS}
        print(f"  {mode:<10} {1e3 * g[f'{mode}_gflop'] / g['matmul_gflops']:7.0f} {ms['titans_ts']:7.0f} "
              f"{ms['titans_pytorch_paper'] / 5:7.0f}")
    print(f"peak memory of a training step at T={res['peak_T']} (MiB above baseline):")
    for name, mib in res["peak_mib"].items():
        print(f"  {name:<24} {mib if isinstance(mib, str) else f'{mib:,.0f}'}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="tiny shapes, two repeats: a smoke run")
    ap.add_argument("--repeats", type=int, default=5, help="timed runs per measurement (median reported)")
    ap.add_argument("--json", help="write the results to this JSON file")
    ap.add_argument("--threads", type=int, help="torch threads (default: torch's own choice)")
    ap.add_argument("--peak-child", nargs=3, metavar=("MODEL", "BATCH", "T"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.peak_child:
        peak_child(args.peak_child[0], int(args.peak_child[1]), int(args.peak_child[2]))
        return
    batch, lengths, repeats = (2, [128, 256, 512], 2) if args.quick else (4, [1024, 4096, 16384], args.repeats)
    gflops_T = lengths[1]
    res = {"batch": batch, "lengths": lengths, "repeats": repeats, "torch": torch.__version__,
           "threads": torch.get_num_threads(), "machine": platform.processor() or platform.machine(),
           "load_average_before": os.getloadavg()}
    res["throughput"] = throughput(batch, lengths, repeats)
    res["slopes"] = {name: {mode: slope(lengths, [res["throughput"][name][mode][T]["seconds"] for T in lengths])
                            for mode in ("inference", "training")} for name in MODELS}
    res["gflops_T"], res["gflops"] = gflops_T, update_gflops(batch, gflops_T, max(repeats, 3))
    res["peak_T"], res["peak_mib"] = lengths[-1], peak_memory(batch, lengths[-1])
    res["load_average_after"] = os.getloadavg()
    report(res)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=2)


if __name__ == "__main__":
    main()
