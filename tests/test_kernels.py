"""Equality 1 of DESIGN.md: the chunked path equals the token-by-token loop, values and gradients."""
import pytest
import torch
import torch.nn.functional as F

from titans_ts.kernels import chunk as chunk_module
from titans_ts.kernels import causal_conv_silu, memory_chunk, memory_naive, memory_surprise, memory_update, mlp_forward


def make_inputs(B=2, H=2, T=21, D=4, depth=2, hidden=8, dtype=torch.float64, seed=0, grad=False, loud=False):
    """Random inputs; `loud` makes keys and weights large enough that every layer's step scale ρ < 1."""
    g = torch.Generator().manual_seed(seed)
    rand = lambda *s: torch.randn(*s, generator=g, dtype=dtype)  # noqa: E731
    q, k = (F.normalize(rand(B, H, T, D), dim=-1) * (1.5 if loud else 1) for _ in range(2))
    v = rand(B, H, T, D)
    theta = 0.2 * torch.rand(B, H, T, generator=g, dtype=dtype)
    eta, alpha = (torch.rand(B, H, T, generator=g, dtype=dtype) for _ in range(2))
    dims = [D] + [hidden] * (depth - 1) + [D]
    w = tuple((2 if loud else 0.5) * rand(B, H, a, b) for a, b in zip(dims, dims[1:]))
    s = tuple(0.1 * rand(*x.shape) for x in w)
    tensors = [q, k, v, theta, eta, alpha, *w, *s]
    if grad:
        for t in tensors:
            t.requires_grad_()
    return tensors, len(w)


def call(fn, tensors, L, chunk):
    q, k, v, th, et, al = tensors[:6]
    return fn(q, k, v, th, et, al, tuple(tensors[6: 6 + L]), tuple(tensors[6 + L:]), chunk)


@pytest.mark.parametrize("loud", [False, True], ids=["quiet", "loud"])
@pytest.mark.parametrize("depth", [1, 2, 3])
@pytest.mark.parametrize("T,chunk", [(21, 5), (20, 4), (7, 1), (3, 8)])
def test_chunk_equals_naive_float64(depth, T, chunk, loud):
    tensors, L = make_inputs(T=T, depth=depth, loud=loud)
    y0, w0, s0 = call(memory_naive, tensors, L, chunk)
    y1, w1, s1 = call(memory_chunk, tensors, L, chunk)
    assert y1.shape == (2, 2, T, 4)
    torch.testing.assert_close(y1, y0, atol=1e-6, rtol=0)
    for a, b in zip(w1 + s1, w0 + s0):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=0)


def test_chunk_equals_naive_float32():
    tensors, L = make_inputs(T=64, D=8, hidden=32, dtype=torch.float32)
    y0, w0, s0 = call(memory_naive, tensors, L, 16)
    y1, w1, s1 = call(memory_chunk, tensors, L, 16)
    torch.testing.assert_close(y1, y0, atol=1e-4, rtol=0)
    for a, b in zip(w1 + s1, w0 + s0):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=0)


@pytest.mark.parametrize("loud", [False, True], ids=["quiet", "loud"])
@pytest.mark.parametrize("depth", [1, 2, 3])
@pytest.mark.parametrize("T,chunk", [(13, 4), (8, 4), (5, 1)])
def test_chunk_gradients_equal_naive(depth, T, chunk, loud):
    """The hand-written backward of `ChunkUpdate` against autograd through the loop, for every input."""
    tensors, L = make_inputs(T=T, depth=depth, grad=True, loud=loud)
    outs = []
    for fn in (memory_naive, memory_chunk):
        y, w, s = call(fn, tensors, L, chunk)
        loss = (y.sin().sum() + sum((x * x).sum() for x in w) + sum(x.cos().sum() for x in s))
        outs.append(torch.autograd.grad(loss, tensors))
    for g_naive, g_chunk in zip(*outs):
        torch.testing.assert_close(g_chunk, g_naive, atol=1e-6, rtol=1e-9)  # loud gradients reach 1e9


def test_partial_chunk_leaves_memory_untouched():
    tensors, L = make_inputs(T=3)
    _, w, s = call(memory_chunk, tensors, L, 8)
    assert all(torch.equal(a, b) for a, b in zip(w + s, tensors[6:]))


def test_retrieval_uses_chunk_start_weights():
    """A token's read never sees its own chunk: outputs of chunk 0 equal M_0(q)."""
    tensors, L = make_inputs(T=12)
    y, _, _ = call(memory_chunk, tensors, L, 4)
    torch.testing.assert_close(y[:, :, :4], mlp_forward(tuple(tensors[6: 6 + L]), tensors[0][:, :, :4]))


def test_entry_point_backends_agree_and_reject_unknown():
    tensors, L = make_inputs(T=10)
    q, k, v, th, et, al = tensors[:6]
    args = (q, k, v, th, et, al, tuple(tensors[6: 6 + L]), tuple(tensors[6 + L:]), 4)
    torch.testing.assert_close(memory_update(*args, backend="naive")[0], memory_update(*args)[0])
    with pytest.raises(ValueError, match="backend"):
        memory_update(*args, backend="cuda-magic")


def test_chunk_gradient_of_outputs_alone():
    """Upstream gradient on y only (the final state unused): missing gradients count as zero."""
    tensors, L = make_inputs(T=12, grad=True)
    grads = [torch.autograd.grad(call(fn, tensors, L, 4)[0].sum(), tensors) for fn in (memory_naive, memory_chunk)]
    for g_naive, g_chunk in zip(*grads):
        torch.testing.assert_close(g_chunk, g_naive, atol=1e-6, rtol=0)


@pytest.mark.parametrize("C", [64, 37, 1])
def test_chunk_coefficients_equal_the_products_they_stand_for(C):
    """c, γθ, β_C, A_C and Σ f β of float32 gates (η from 1e-6 to near 1, so that long products underflow)
    against the sums of products written out in float64, token by token."""
    g = torch.Generator().manual_seed(C)
    theta = torch.rand(3, C, generator=g)
    eta = torch.rand(3, C, generator=g) ** torch.tensor([1.0, 0.02, 40.0])[:, None]  # middling, near 1, near 0
    eta[2, ::3] = 1e-6
    alpha = 0.3 * torch.rand(3, C, generator=g)
    c, gt, beta_c, keep_c, fbeta = chunk_module.chunk_coefficients(theta, eta, alpha)
    th, et, keep = theta.double(), eta.double(), 1 - alpha.double()
    prod = lambda x, a, b: x[:, a:b].prod(-1)  # noqa: E731  ∏_{a≤m<b}, 1 when empty
    f = torch.stack([prod(keep, i + 1, C) for i in range(C)], -1)  # f_i = ∏_{i<m≤C} (1 − α_m)
    beta = torch.stack([prod(et, 0, i + 1) for i in range(C)], -1)  # β_i = ∏_{m≤i} η_m
    want_c = th * torch.stack([sum(f[:, i] * prod(et, j + 1, i + 1) for i in range(j, C)) for j in range(C)], -1)
    want_gt = th * torch.stack([prod(et, j + 1, C) for j in range(C)], -1)
    for got, want in ((c, want_c), (gt, want_gt), (beta_c, beta[:, -1]), (keep_c, prod(keep, 0, C)),
                      (fbeta, (f * beta).sum(-1))):
        torch.testing.assert_close(got.double(), want, atol=1e-7, rtol=1e-5)


def test_inference_keeps_no_states(monkeypatch):
    """Under torch.no_grad the chunk path saves nothing for a backward and builds no graph."""
    tensors, L = make_inputs(T=12, grad=True)
    saves = []
    scan = chunk_module.scan
    monkeypatch.setattr(chunk_module, "scan", lambda *a, save=False: saves.append(save) or scan(*a, save=save))
    with torch.no_grad():
        y, w, s = call(memory_chunk, tensors, L, 4)
    assert saves == [False] and y.grad_fn is None and all(x.grad_fn is None for x in w + s)


def test_chunk_runs_in_bfloat16():
    tensors, L = make_inputs(T=16, D=8, hidden=16, dtype=torch.float32)
    y32, w32, _ = call(memory_chunk, tensors, L, 8)
    y16, w16, _ = call(memory_chunk, [t.bfloat16() for t in tensors], L, 8)
    assert y16.dtype == w16[0].dtype == torch.bfloat16
    torch.testing.assert_close(y16.float(), y32, atol=0.1, rtol=0.05)


def surprise_reference(k, v, theta, eta, alpha, w, s, chunk):
    """Token by token with autograd: the loss each token meets and ‖η_t S_{t−1}‖, momentum formed explicitly."""
    w, s = list(w), list(s)
    losses, past = [], []
    for start in range(0, k.shape[2], chunk):
        w0, s0 = [x.detach().requires_grad_() for x in w], s
        for t in range(start, min(start + chunk, k.shape[2])):
            with torch.enable_grad():
                loss = (mlp_forward(tuple(w0), k[:, :, t: t + 1]) - v[:, :, t: t + 1]).pow(2).sum((-2, -1))
                grads = torch.autograd.grad(loss.sum(), w0)
            a, rho = k[:, :, t: t + 1], []  # each layer's input: its step scale 1 / max(1, ‖a‖²)
            for w_i in w0:
                rho.append(1 / a.pow(2).sum((-2, -1), keepdim=True).clamp_min(1))
                a = F.silu(a @ w_i.detach())
            et = eta[:, :, t, None, None]
            losses.append(loss.detach())
            past.append(sum((et * x).pow(2).sum((-2, -1)) for x in s).sqrt())
            s = [et * x - theta[:, :, t, None, None] * r * g for x, r, g in zip(s, rho, grads)]
            w = [(1 - alpha[:, :, t, None, None]) * x + y for x, y in zip(w, s)]
        if t - start + 1 < chunk:  # a partial chunk is scored, not written
            w, s = [x.detach() for x in w0], s0
    return torch.stack(losses, -1), torch.stack(past, -1), w, s


@pytest.mark.parametrize("loud", [False, True], ids=["quiet", "loud"])
@pytest.mark.parametrize("depth", [1, 2])
@pytest.mark.parametrize("T,chunk", [(21, 5), (8, 4), (3, 8)])
def test_surprise_equals_token_loop(depth, T, chunk, loud):
    (q, k, v, th, et, al, *state), L = make_inputs(T=T, depth=depth, loud=loud)
    w, s = tuple(state[:L]), tuple(state[L:])
    momentary, past, w_new, s_new = memory_surprise(k, v, th, et, al, w, s, chunk)
    ref_m, ref_p, ref_w, ref_s = surprise_reference(k, v, th, et, al, w, s, chunk)
    torch.testing.assert_close(momentary, ref_m, atol=1e-10, rtol=1e-10)
    torch.testing.assert_close(past, ref_p, atol=1e-10, rtol=1e-10)
    # the state it writes is the update's
    _, w_upd, s_upd = memory_chunk(q, k, v, th, et, al, w, s, chunk)
    for a, b, c in zip(w_new + s_new, w_upd + s_upd, ref_w + ref_s):
        torch.testing.assert_close(a, b, atol=1e-12, rtol=1e-12)
        torch.testing.assert_close(a, c, atol=1e-10, rtol=1e-10)


def test_surprise_without_memorizing_scores_every_chunk_at_the_given_state():
    (q, k, v, th, et, al, *state), L = make_inputs(T=12, depth=2)
    w, s = tuple(state[:L]), tuple(state[L:])
    momentary, past, w_new, s_new = memory_surprise(k, v, th, et, al, w, s, 4, memorize=False)
    assert all(a is b for a, b in zip(w_new + s_new, w + s))
    for a in (0, 4, 8):  # each chunk alone, from the given state
        m, p, _, _ = memory_surprise(k[:, :, a:a + 4], v[:, :, a:a + 4], th[:, :, a:a + 4], et[:, :, a:a + 4],
                                     al[:, :, a:a + 4], w, s, 4)
        torch.testing.assert_close(momentary[..., a:a + 4], m)
        torch.testing.assert_close(past[..., a:a + 4], p)


def test_surprise_in_bfloat16_tracks_float32():
    (q, k, v, th, et, al, *state), L = make_inputs(T=16, depth=2, dtype=torch.float32)
    w, s = tuple(state[:L]), tuple(state[L:])
    ref_m, ref_p, _, _ = memory_surprise(k, v, th, et, al, w, s, 4)
    bf = lambda xs: tuple(x.bfloat16() for x in xs)  # noqa: E731
    m, p, w_new, _ = memory_surprise(*bf((k, v, th, et, al)), bf(w), bf(s), 4)
    assert m.dtype == p.dtype == w_new[0].dtype == torch.bfloat16
    torch.testing.assert_close(m.float(), ref_m, rtol=0.1, atol=0.05 * ref_m.abs().max().item())
    torch.testing.assert_close(p.float(), ref_p, rtol=0.1, atol=0.05 * ref_p.abs().max().item())


def test_causal_conv_silu_equals_grouped_conv1d_values_and_gradients():
    """The shifted-product convolution and its own backward against torch's grouped conv1d."""
    g = torch.Generator().manual_seed(3)
    feats = torch.randn(3, 3 + 17, 6, generator=g, dtype=torch.float64, requires_grad=True)  # K − 1 = 3 past steps
    weight = torch.randn(6, 1, 4, generator=g, dtype=torch.float64, requires_grad=True)  # Conv1d's layout
    bias = torch.randn(6, generator=g, dtype=torch.float64, requires_grad=True)
    ref = F.silu(F.conv1d(feats.transpose(1, 2), weight, bias, groups=6).transpose(1, 2))
    out = causal_conv_silu(feats, weight[:, 0].t().contiguous(), bias)
    torch.testing.assert_close(out, ref, atol=1e-12, rtol=0)
    dy = torch.randn(ref.shape, generator=g, dtype=torch.float64)
    for a, b in zip(torch.autograd.grad(out, (feats, weight, bias), dy), torch.autograd.grad(ref, (feats, weight, bias), dy)):
        torch.testing.assert_close(a, b, atol=1e-12, rtol=0)
    with torch.no_grad():
        torch.testing.assert_close(causal_conv_silu(feats, weight[:, 0].t().contiguous(), bias), ref, atol=1e-12, rtol=0)


def test_step_scale_keeps_a_deep_memory_stable(monkeypatch):
    """At the largest learning rate a depth-2 memory with large hidden activations (weights 3× their
    1/√fan-in scale) learning noise for 160 chunks: the normalised step shrinks the weights and stays
    finite; the same update without it (ρ = 1) diverges to NaN."""
    g = torch.Generator().manual_seed(0)
    T, D, hidden, C = 2560, 8, 32, 16
    k = F.normalize(torch.randn(1, 1, T, D, generator=g), dim=-1)
    v = torch.randn(1, 1, T, D, generator=g)
    gates = (torch.full((1, 1, T), 0.5 / C), torch.zeros(1, 1, T), torch.zeros(1, 1, T))  # θ = max_lr / C, η = α = 0
    w = (3 * torch.randn(1, 1, D, hidden, generator=g) / D ** 0.5, 3 * torch.randn(1, 1, hidden, D, generator=g) / hidden ** 0.5)
    s = tuple(torch.zeros_like(x) for x in w)
    with torch.no_grad():
        _, w_end, _ = memory_chunk(k, k, v, *gates, w, s, C)
        assert all(torch.isfinite(x).all() and x.abs().max() < y.abs().max() for x, y in zip(w_end, w))
        monkeypatch.setattr(chunk_module, "step_scale", lambda a: torch.ones_like(a[..., :1]))
        _, w_plain, _ = memory_chunk(k, k, v, *gates, w, s, C)
    assert not torch.isfinite(w_plain[0]).all()


def anchors(tensors, L, seed=5):
    """Random anchors M̄, one (H, d_in, d_out) per layer: broadcast over the batch like M_0."""
    g = torch.Generator().manual_seed(seed)
    return tuple(torch.randn(*x.shape[1:], generator=g, dtype=x.dtype) for x in tensors[6: 6 + L])


@pytest.mark.parametrize("depth", [1, 2, 3])
@pytest.mark.parametrize("T,chunk,loud", [(13, 4, False), (8, 4, True), (5, 1, False)])
def test_anchored_forgetting_chunk_equals_naive(depth, T, chunk, loud):
    """Forgetting towards an anchor (eq 14 with M_t − M̄): values and gradients of every input, M̄ included."""
    tensors, L = make_inputs(T=T, depth=depth, grad=True, loud=loud)
    anchor = tuple(m.requires_grad_() for m in anchors(tensors, L))
    outs = []
    for fn in (memory_naive, memory_chunk):
        y, w, s = fn(*tensors[:6], tuple(tensors[6: 6 + L]), tuple(tensors[6 + L:]), chunk, anchor)
        loss = y.sin().sum() + sum((x * x).sum() for x in w) + sum(x.cos().sum() for x in s)
        outs.append([y, *w, *torch.autograd.grad(loss, tensors + list(anchor))])
    for a, b in zip(*outs):
        torch.testing.assert_close(b, a, atol=1e-6, rtol=1e-9)


def test_anchor_of_zeros_is_the_papers_forgetting_and_a_chunk_without_writes_decays_to_the_anchor():
    tensors, L = make_inputs(T=12)
    zero = tuple(torch.zeros(x.shape[1:], dtype=x.dtype) for x in tensors[6: 6 + L])
    for a, b in zip(call(memory_chunk, tensors, L, 4), memory_chunk(*tensors[:6], tuple(tensors[6: 6 + L]),
                                                                   tuple(tensors[6 + L:]), 4, zero)):
        torch.testing.assert_close(b, a, atol=1e-12, rtol=0)
    # θ = 0 and no momentum: one chunk leaves W = A W₀ + (1 − A) M̄ with A = ∏ (1 − α_t)
    q, k, v, _, eta, alpha, *state = tensors
    w, s = tuple(state[:L]), tuple(torch.zeros_like(x) for x in state[L:])
    anchor = anchors(tensors, L)
    _, w_new, _ = memory_chunk(q[:, :, :4], k[:, :, :4], v[:, :, :4], torch.zeros_like(eta[:, :, :4]),
                               eta[:, :, :4], alpha[:, :, :4], w, s, 4, anchor)
    keep = (1 - alpha[:, :, :4]).prod(-1)[..., None, None]
    for x, x0, m in zip(w_new, w, anchor):
        torch.testing.assert_close(x, keep * x0 + (1 - keep) * m, atol=1e-12, rtol=0)


def test_surprise_writes_the_anchored_update():
    (q, k, v, th, et, al, *state), L = make_inputs(T=21, depth=2)
    w, s = tuple(state[:L]), tuple(state[L:])
    anchor = anchors([q, k, v, th, et, al, *state], L)
    *_, w_new, s_new = memory_surprise(k, v, th, et, al, w, s, 5, anchor=anchor)
    _, w_upd, s_upd = memory_chunk(q, k, v, th, et, al, w, s, 5, anchor)
    for a, b in zip(w_new + s_new, w_upd + s_upd):
        torch.testing.assert_close(a, b, atol=1e-12, rtol=1e-12)
