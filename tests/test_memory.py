"""NeuralMemory on its own: streaming, test-time learning, state handling, validation."""
import pytest
import torch

from titans_ts import MemoryState, NeuralMemory


def test_streaming_equals_one_call_and_partial_chunk_waits():
    torch.manual_seed(0)
    mem = NeuralMemory(16, heads=2, memory_depth=2, expansion=2, chunk_size=4).double()
    x = torch.randn(2, 23, 16, dtype=torch.float64)
    y, state = mem(x)
    assert state["buf.k"].shape[2] == 23 % 4
    ys, st = [], None
    for a, b in [(0, 1), (1, 8), (8, 12), (12, 23)]:
        out, st = mem(x[:, a:b], st)
        ys.append(out)
    torch.testing.assert_close(torch.cat(ys, 1), y, atol=1e-12, rtol=0)
    for key in state:
        torch.testing.assert_close(st[key], state[key], atol=1e-12, rtol=0)


@pytest.mark.parametrize("depth", [1, 2])
def test_test_time_learning_is_real(depth):
    """Stream K random associations: recall error falls with updates on, stays put with them off."""
    torch.manual_seed(depth)
    mem = NeuralMemory(32, heads=1, memory_depth=depth, expansion=2, chunk_size=8, conv_kernel=1).double()
    x = torch.randn(1, 64, 32, dtype=torch.float64)  # K = 64 associations k(x_i) -> v(x_i)
    state = mem.initial_state(1, dtype=torch.float64)
    with torch.no_grad():
        recall = lambda st: mem.surprise(x, st, memorize=False)[0].momentary.mean()  # noqa: E731
        before = recall(state)
        on, off = state, state
        for _ in range(20):  # stream the associations repeatedly, as a recurring pattern would
            _, on = mem(x, on)
            _, off = mem(x, off, memorize=False)
        after_on, after_off = recall(on), recall(off)
    assert after_on < before / 4
    assert torch.equal(after_off, before)


def test_lookup_reads_without_writing():
    torch.manual_seed(0)
    mem = NeuralMemory(8, heads=2, chunk_size=2)
    x = torch.randn(3, 6, 8)
    _, state = mem(x)
    snapshot = {k: v.clone() for k, v in state.items()}
    out = mem.lookup(torch.randn(3, 5, 8), state)
    assert out.shape == (3, 5, 8)
    assert all(torch.equal(snapshot[k], state[k]) for k in state)


def test_state_detach_to_and_files(tmp_path):
    torch.manual_seed(0)
    mem = NeuralMemory(8, heads=2, chunk_size=2)
    _, state = mem(torch.randn(1, 5, 8))
    assert any(t.requires_grad for t in state.values())
    assert not any(t.requires_grad for t in state.detach().values())
    as64 = state.to(dtype=torch.float64)
    assert all(t.dtype == torch.float64 for t in as64.values())
    state.save(tmp_path / "m.safetensors")
    loaded = MemoryState.load(tmp_path / "m.safetensors")
    assert all(torch.equal(loaded[k], state[k]) for k in state)


def test_load_refuses_a_pickle_and_runs_nothing(tmp_path):
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    torch.save({"w": Payload()}, tmp_path / "evil.pt")
    with pytest.raises(ValueError, match="not a titans_ts MemoryState file"):
        MemoryState.load(tmp_path / "evil.pt")
    assert not marker.exists()


@pytest.mark.parametrize("kwargs,pattern", [
    (dict(d_model=10, heads=3), r"d_model \(10\) must be divisible by heads \(3\)"),
    (dict(d_model=8, chunk_size=0), "NeuralMemory.chunk_size"),
    (dict(d_model=8, memory_depth=0), "NeuralMemory.memory_depth"),
    (dict(d_model=8, max_lr=2.0), "NeuralMemory.max_lr"),
    (dict(d_model=8, alpha_init=0.0), r"NeuralMemory.alpha_init must be in \(0, 1\)"),
    (dict(d_model=8, backend="tpu"), "NeuralMemory.backend"),
    (dict(d_model=8, forget_toward="one"), "NeuralMemory.forget_toward must be one of"),
])
def test_bad_arguments(kwargs, pattern):
    with pytest.raises(ValueError, match=pattern):
        NeuralMemory(**kwargs)


def test_alpha_init_sets_the_forgetting_gate():
    """α_t = σ(bias) for a zero input: the bias starts at logit(alpha_init); the default is σ(−8)."""
    assert NeuralMemory(8, heads=2).to_gates.bias[4:].tolist() == [-8.0, -8.0]
    mem = NeuralMemory(8, heads=2, alpha_init=0.01)
    _, _, alpha = mem._gates(torch.zeros(1, 3, 8))
    torch.testing.assert_close(alpha, torch.full((1, 2, 3), 0.01))


@pytest.mark.parametrize("forget_toward", ["zero", "initial"])
def test_fast_forgetting_returns_the_memory_to_its_anchor(forget_toward):
    """With α_t ≈ 1/4 a memory keeps a few tokens: forgetting towards "zero" loses M_0, towards "initial"
    it keeps it (eq 14 with M_t − M_0), in every layer and for every backend the module can pick."""
    torch.manual_seed(0)
    mem = NeuralMemory(8, heads=2, chunk_size=4, alpha_init=0.25, forget_toward=forget_toward)
    _, state = mem(torch.randn(2, 64, 8))
    for i, m0 in enumerate(mem.initial):
        w = state[f"w.{i}"]
        if forget_toward == "zero":
            assert w.norm() < 0.05 * m0.expand_as(w).norm()
        else:
            assert (w - m0).norm() < 0.2 * m0.expand_as(w).norm()
    # from a detached state M_0 is reached only through the anchor: it learns there too
    mem(torch.randn(2, 8, 8), state.detach())[0].square().sum().backward()
    grads = [p.grad for p in mem.initial]
    assert all(g is None for g in grads) if forget_toward == "zero" else all(g.abs().sum() > 0 for g in grads)


def test_bad_input_shape_and_batch():
    mem = NeuralMemory(8)
    with pytest.raises(ValueError, match=r"\(batch, time, 8\)"):
        mem(torch.randn(2, 8))
    _, state = mem(torch.randn(2, 3, 8))
    with pytest.raises(ValueError, match="batch size 2"):
        mem(torch.randn(1, 3, 8), state)


def test_surprise_scores_each_token_before_its_chunk_is_learnt():
    torch.manual_seed(0)
    mem = NeuralMemory(16, heads=2, chunk_size=4).double()
    x = torch.randn(2, 11, 16, dtype=torch.float64)
    _, s0 = mem(x[:, :3])  # three tokens wait in the buffer
    (score, past), s1 = mem.surprise(x[:, 3:], s0)
    _, s_fwd = mem(x[:, 3:], s0)
    assert score.shape == past.shape == (2, 8, 2) and (past >= 0).all()
    for k in s_fwd:  # the same learning as forward
        torch.testing.assert_close(s1[k], s_fwd[k], atol=1e-12, rtol=1e-12)
    # the first token completes the buffered chunk: scored at the starting weights, as a read-only probe is
    probe, _ = mem.surprise(x[:, 3:4], s0, memorize=False)
    torch.testing.assert_close(score[:, :1], probe.momentary)
    # tokens of the next chunk meet the weights after that chunk was learnt, and inherit its momentum
    _, s_after = mem(x[:, 3:4], s0)
    probe, _ = mem.surprise(x[:, 4:8], s_after, memorize=False)
    torch.testing.assert_close(score[:, 1:5], probe.momentary)
    torch.testing.assert_close(past[:, 1:5], probe.past)
    momentum = sum(s_after[f"s.{i}"].pow(2).sum((-2, -1)) for i in range(2)).sqrt()  # (B, H)
    eta = torch.sigmoid(mem.to_gates(x[:, 4])[:, 2:4])  # η of the chunk's first token, per head
    torch.testing.assert_close(past[:, 1], eta * momentum)


def test_a_token_masked_out_is_read_but_learns_nothing():
    """memorize as a (B, T) mask scales each token's θ_t (eq 13): a 0 is the memory whose rate gate is shut
    at that token, exactly; momentum and forgetting go on through it."""
    torch.manual_seed(0)
    mem = NeuralMemory(d_model=8, heads=2, memory_depth=2, chunk_size=4).double()
    x = torch.randn(2, 11, 8, dtype=torch.float64)
    mask = (torch.rand(2, 11) > 0.4).double()
    mask[:, 0] = 0
    y, st = mem(x, memorize=mask)
    theta = mem._gates  # the rate gate, shut by hand where the mask is 0
    mem._gates = lambda u: (lambda th, eta, alpha: (th * mask[:, None], eta, alpha))(*theta(u))
    y_shut, st_shut = mem(x)
    del mem._gates
    torch.testing.assert_close(y, y_shut, atol=0, rtol=0)
    for k in st:
        torch.testing.assert_close(st[k], st_shut[k], atol=0, rtol=0)
    torch.testing.assert_close(mem(x, memorize=torch.ones(2, 11, dtype=torch.float64))[1]["w.0"], mem(x)[1]["w.0"])
    with pytest.raises(ValueError, match=r"memorize must be a flag or hold one weight per token, shape \(2, 11\)"):
        mem(x, memorize=mask[:, :5])


@pytest.mark.parametrize("variant", ["lmm", "mal", "mag", "mac"])
def test_a_write_mask_streams_in_pieces_as_in_one_call(variant):
    from titans_ts import TitansConfig, TitansEncoder

    torch.manual_seed(1)
    enc = TitansEncoder(TitansConfig(d_model=16, n_layers=2, heads=2, variant=variant, window=8,
                                     chunk_size=4)).double()
    x = torch.randn(3, 37, 16, dtype=torch.float64)
    mask = (torch.rand(3, 37) > 0.3).double()
    whole, state = enc(x, memorize=mask)
    first, mid = enc(x[:, :13], memorize=mask[:, :13])
    second, end = enc(x[:, 13:], mid, memorize=mask[:, 13:])
    torch.testing.assert_close(torch.cat([first, second], 1), whole, atol=1e-12, rtol=0)
    assert not torch.allclose(enc(x)[0], whole)  # the mask changed what was learnt
