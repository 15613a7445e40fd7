"""The kernel benchmark's FLOP count: the matmuls the chunk path makes, counted once each."""
import importlib.util
from pathlib import Path

import torch

spec = importlib.util.spec_from_file_location("memory_throughput",
                                              Path(__file__).parents[1] / "benchmarks" / "memory_throughput.py")
mt = importlib.util.module_from_spec(spec)
spec.loader.exec_module(mt)


def test_matmul_flops_counts_each_matmul_once():
    a, b, c = torch.randn(3, 5, 7), torch.randn(3, 7, 2), torch.randn(3, 5, 2)

    def fn():
        torch.bmm(a, b)
        c.baddbmm_(a, b)  # runs one addmm_ per batch element inside: not counted again
        a[0] @ b[0]
        torch.addmm(c[0], a[0], b[0])
        a * a  # not a matmul

    assert mt.matmul_flops(fn) == 2 * (3 * 5 * 7 * 2) * 2 + 2 * (5 * 7 * 2) * 2


def test_update_flops_of_the_chunk_path():
    """One chunk step of a depth-2 memory (d 4, hidden 8, chunk 2, one sequence): reading the queries and
    the keys' forward (2C rows, both layers), the surprise chain (C rows, layer 2), and the [S | W] write of
    each layer, aᵀ[γθ g | c g] — the count the benchmark's GFLOP/s divide by."""
    B, T, D, Hd, C = 1, 2, 4, 8, 2
    q, k, v = (torch.randn(B, 1, T, D) for _ in range(3))
    w = (torch.randn(B, 1, D, Hd), torch.randn(B, 1, Hd, D))
    s = tuple(torch.zeros_like(x) for x in w)
    gates = [torch.rand(B, 1, T) for _ in range(3)]
    with torch.no_grad():
        flops = mt.matmul_flops(lambda: mt.memory_update(q, k, v, *gates, w, s, C, backend="chunk"))
    every, later = D * Hd + Hd * D, Hd * D
    assert flops == 2 * (2 * C * every + C * later + 2 * C * every)  # the decay weights take no matmul
