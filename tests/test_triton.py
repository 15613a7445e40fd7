"""Equality 2 of DESIGN.md: the Triton kernels equal the chunked PyTorch path (outputs, final state,
gradients of every input). Without a GPU they run under the Triton interpreter (TRITON_INTERPRET=1)."""
import os
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")  # before Triton is imported: kernels run on the CPU
pytest.importorskip("triton")

from titans_ts.kernels import memory_chunk, memory_update, resolve_backend  # noqa: E402
from titans_ts.kernels import triton_chunk  # noqa: E402

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


def make_inputs(B=2, H=2, T=37, D=8, depth=2, hidden=16, dtype=torch.float32, seed=0, loud=False):
    """Small, well-conditioned inputs (weights ~ 1/√fan-in), rounded to `dtype`, held in float32; `loud`
    scales keys and weights up so that every layer's step scale ρ is below 1."""
    g = torch.Generator().manual_seed(seed)
    rand = lambda *s: torch.randn(*s, generator=g)  # noqa: E731
    q, k = (F.normalize(rand(B, H, T, D), dim=-1) * (1.5 if loud else 1) for _ in range(2))
    gates = [0.3 * torch.rand(B, H, T, generator=g), torch.rand(B, H, T, generator=g),
             0.2 * torch.rand(B, H, T, generator=g)]
    dims = [D] + [hidden] * (depth - 1) + [D]
    w = [rand(B, H, a, b) * (3 if loud else 1) / a ** 0.5 for a, b in zip(dims, dims[1:])]
    s = [0.1 * rand(*x.shape) for x in w]
    return [t.to(dtype).float().to(DEVICE) for t in (q, k, rand(B, H, T, D), *gates, *w, *s)]


def run(fn, tensors, chunk, dtype, anchored=False):
    """Outputs and gradients of a loss touching y, the final weights and the final momentum; `anchored`
    forgets towards random anchors (one (H, d_in, d_out) per layer) and adds their gradients."""
    leaves = [t.to(dtype).requires_grad_() for t in tensors]
    L = (len(leaves) - 6) // 2
    if anchored:
        g = torch.Generator().manual_seed(2)
        leaves += [torch.randn(x.shape[1:], generator=g).to(x).requires_grad_() for x in leaves[6: 6 + L]]
    y, w, s = fn(*leaves[:6], tuple(leaves[6: 6 + L]), tuple(leaves[6 + L: 6 + 2 * L]), chunk,
                 tuple(leaves[6 + 2 * L:]) or None)
    g = torch.Generator().manual_seed(1)
    probes = [torch.randn(x.shape, generator=g).to(x) for x in (y, *w, *s)]
    loss = sum((x * p).float().sum() for x, p in zip((y, *w, *s), probes))
    grads = torch.autograd.grad(loss, leaves)
    return [x.detach().float() for x in (y, *w, *s, *grads)]


def relative_errors(got, want) -> list[float]:
    """Max error / the largest value, tensor by tensor: y, weights, momentum, then the gradients of q, k, v,
    θ, η, α, initial weights, initial momentum."""
    return [(a - b).abs().max().item() / (b.abs().max().item() + 1e-6) for a, b in zip(got, want)]


def assert_match(got, want, rel):
    """Every tensor's relative error (`relative_errors`) ≤ `rel` (one bound, or one per tensor)."""
    bounds = rel if isinstance(rel, list) else [rel] * len(want)
    for i, (err, bound) in enumerate(zip(relative_errors(got, want), bounds)):
        assert err <= bound, f"tensor {i}: relative error {err:.2e} above {bound:.2e}"


@pytest.mark.parametrize("depth", [1, 2])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["float32", "bfloat16"])
def test_triton_equals_chunk(depth, dtype):
    """T = 37 is not a multiple of the chunk (8): four chunks written, five read; 2 sequences × 2 heads.
    Against the float32 chunk path: to 1e-4 in float32; in bfloat16 as close as the chunk path itself
    computes in bfloat16 (within 1.5× its error, tensor by tensor: reductions such as η's gradient lose
    a few percent to bfloat16 rounding in either)."""
    tensors = make_inputs(depth=depth)
    want = run(memory_chunk, tensors, 8, torch.float32)
    got = run(triton_chunk.memory_triton, tensors, 8, dtype)
    assert got[0].shape == (2, 2, 37, 8)
    if dtype == torch.float32:
        assert_match(got, want, 1e-4)
    else:
        assert_match(got, want, [max(1e-2, 1.5 * e) for e in relative_errors(run(memory_chunk, tensors, 8, dtype), want)])


@pytest.mark.parametrize("depth", [1, 2])
def test_triton_step_scales_equal_chunk(depth):
    """Keys and hidden activations with ‖a‖² > 1: every layer's normalised step (ρ < 1) as in the chunk path."""
    tensors = make_inputs(depth=depth, T=21, loud=True)
    assert_match(run(triton_chunk.memory_triton, tensors, 5, torch.float32),
                 run(memory_chunk, tensors, 5, torch.float32), 1e-4)


@pytest.mark.parametrize("anchored", [False, True], ids=["zero", "anchor"])
def test_triton_hidden_tiles(monkeypatch, anchored):
    """Depth 2 with the hidden layer streamed in three tiles, the last one partial (40 = 16 + 16 + 8)."""
    monkeypatch.setattr(triton_chunk, "HIDDEN_TILE", 16)
    tensors = make_inputs(B=1, T=21, hidden=40, seed=3)
    assert_match(run(triton_chunk.memory_triton, tensors, 5, torch.float32, anchored),
                 run(memory_chunk, tensors, 5, torch.float32, anchored), 1e-5)


@pytest.mark.parametrize("depth", [1, 2])
def test_triton_anchored_forgetting_equals_chunk(depth):
    """Forgetting towards an anchor M̄: outputs, final state and gradients, M̄'s included."""
    tensors = make_inputs(depth=depth)
    got = run(triton_chunk.memory_triton, tensors, 8, torch.float32, anchored=True)
    want = run(memory_chunk, tensors, 8, torch.float32, anchored=True)
    assert len(got) == len(want) == 1 + 2 * depth + 6 + 3 * depth
    assert_match(got, want, 1e-4)


@pytest.mark.parametrize("depth", [1, 2])
def test_triton_inference_equals_chunk(depth):
    tensors = make_inputs(depth=depth, T=20)
    L = (len(tensors) - 6) // 2
    args = (*tensors[:6], tuple(tensors[6: 6 + L]), tuple(tensors[6 + L:]), 4)
    with torch.no_grad():
        got, want = memory_update(*args, backend="triton"), memory_update(*args, backend="chunk")
    for a, b in zip((got[0], *got[1], *got[2]), (want[0], *want[1], *want[2])):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_dispatch():
    tensors = make_inputs(depth=2)
    q, w = tensors[0], tuple(tensors[6:8])
    assert resolve_backend(q, w) == ("triton" if q.is_cuda else "chunk")
    assert resolve_backend(q, w + w[:1]) == "chunk"  # depth 3: no kernel, the chunk path
    assert resolve_backend(q, w, "naive") == "naive"
    with pytest.raises(ValueError, match="memory_depth"):
        triton_chunk.memory_triton(*tensors[:6], w + w[:1], w + w[:1], 8)


def test_package_imports_without_triton():
    code = ("import sys; sys.modules['triton'] = None\n"
            "import torch, titans_ts.kernels as K\n"
            "x = torch.randn(1, 1, 8, 4); g = torch.full((1, 1, 8), 0.5); w = (torch.randn(1, 1, 4, 4),)\n"
            "K.memory_update(x, x, x, g, g, g, w, w, 4)\n"
            "assert K.resolve_backend(x, w) == 'chunk'")
    subprocess.run([sys.executable, "-c", code], check=True)
