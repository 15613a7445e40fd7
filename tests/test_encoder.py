"""Equalities 3–5 of DESIGN.md for every variant: streaming == one call, causality, state save/load."""
import random

import pytest
import torch

from titans_ts import VARIANTS, MemoryState, NeuralMemory, TitansConfig, TitansEncoder


def stream(enc, x, lengths, state=None):
    ys, start = [], 0
    for n in lengths:
        y, state = enc(x[:, start: start + n], state)
        ys.append(y)
        start += n
    return torch.cat(ys, dim=1), state


@pytest.mark.parametrize("variant", VARIANTS)
def test_streaming_in_random_pieces_equals_one_call(variant, make_encoder):
    enc = make_encoder(variant)
    x = torch.randn(2, 61, 16, dtype=torch.float64)
    y, state = enc(x)
    rng = random.Random(variant)
    for _ in range(3):
        lengths = [1, 7, 4, 3]  # a single token, a chunk cut in two, a whole chunk (4), ...
        while sum(lengths) < 61:
            lengths.append(min(rng.choice([1, 2, 5, 8, 13]), 61 - sum(lengths)))
        lengths[-1] -= sum(lengths) - 61
        ys, s2 = stream(enc, x, [n for n in lengths if n > 0])
        torch.testing.assert_close(ys, y, atol=1e-10, rtol=0)
        assert set(s2) == set(state)
        for key in state:
            torch.testing.assert_close(s2[key], state[key], atol=1e-10, rtol=0)


@pytest.mark.parametrize("variant", VARIANTS)
def test_causality(variant, make_encoder):
    enc = make_encoder(variant)
    x = torch.randn(1, 40, 16, dtype=torch.float64)
    y, _ = enc(x)
    for t in (0, 13, 27, 39):
        x2 = x.clone()
        x2[:, t] += torch.randn(16, dtype=torch.float64)
        y2, _ = enc(x2)
        assert torch.equal(y2[:, :t], y[:, :t]), f"output before {t} changed"
        assert not torch.allclose(y2[:, t], y[:, t])


@pytest.mark.parametrize("variant", VARIANTS)
def test_state_save_load_continues_identically(variant, make_encoder, tmp_path):
    enc = make_encoder(variant)
    x = torch.randn(2, 30, 16, dtype=torch.float64)
    _, state = enc(x[:, :17])
    state.save(tmp_path / "s.safetensors")
    loaded = MemoryState.load(tmp_path / "s.safetensors")
    assert set(loaded) == set(state)
    for key in state:
        assert torch.equal(loaded[key], state[key]) and loaded[key].dtype == state[key].dtype
    y_orig, _ = enc(x[:, 17:], state)
    y_loaded, _ = enc(x[:, 17:], loaded)
    assert torch.equal(y_orig, y_loaded)


@pytest.mark.parametrize("variant", VARIANTS)
def test_gradients_reach_every_parameter(variant, make_encoder):
    enc = make_encoder(variant)
    y, _ = enc(torch.randn(2, 19, 16, dtype=torch.float64))
    y.pow(2).mean().backward()
    missing = [n for n, p in enc.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing


@pytest.mark.parametrize("variant", VARIANTS)
def test_long_input_stays_finite(variant):
    torch.manual_seed(0)
    enc = TitansEncoder(TitansConfig(d_model=8, n_layers=1, heads=1, variant=variant, window=64,
                                     chunk_size=64, memory_depth=1, persistent_tokens=1))
    with torch.no_grad():
        y, state = enc(torch.randn(1, 100_000, 8))
    assert y.shape == (1, 100_000, 8)
    assert torch.isfinite(y).all() and all(torch.isfinite(t).all() for t in state.values())


@pytest.mark.parametrize("variant", VARIANTS)
def test_each_variant_learns_a_toy_sequence_task(variant):
    """Predict x_{t-3}: needs memory of the recent past. Loss must fall at least 5-fold."""
    torch.manual_seed(0)
    enc = TitansEncoder(TitansConfig(d_model=16, n_layers=1, heads=2, variant=variant, window=8, chunk_size=4))
    head = torch.nn.Linear(16, 4)
    inp = torch.nn.Linear(4, 16)
    params = [*enc.parameters(), *head.parameters(), *inp.parameters()]
    opt = torch.optim.Adam(params, lr=3e-3)
    x = torch.randn(16, 32, 4)

    def loss_fn():
        y, _ = enc(inp(x))
        return (head(y)[:, 3:] - x[:, :-3]).pow(2).mean()

    first = loss_fn().item()
    for _ in range(150):
        opt.zero_grad()
        loss = loss_fn()
        loss.backward()
        opt.step()
    assert loss_fn().item() < first / 5


def test_memorize_false_leaves_memory_untouched(make_encoder):
    enc = make_encoder("mal")
    x = torch.randn(1, 20, 16, dtype=torch.float64)
    _, s0 = enc(x[:, :9])
    _, s1 = enc(x[:, 9:], s0, memorize=False)
    for key in s0:
        if ".memory.w." in key or ".memory.s." in key or ".memory.buf." in key:
            assert torch.equal(s0[key], s1[key])
    assert not torch.equal(s0["layers.0.attn.pos"], s1["layers.0.attn.pos"])


def test_bad_inputs(make_encoder):
    enc = make_encoder("mag")
    with pytest.raises(ValueError, match=r"shape \(batch, time >= 1, 16\)"):
        enc(torch.randn(2, 5, 15, dtype=torch.float64))
    with pytest.raises(ValueError, match="time >= 1"):
        enc(torch.randn(2, 0, 16, dtype=torch.float64))
    with pytest.raises(TypeError, match="floating-point"):
        enc(torch.ones(2, 5, 16, dtype=torch.long))
    _, state = enc(torch.randn(2, 5, 16, dtype=torch.float64))
    with pytest.raises(ValueError, match="batch size 2"):
        enc(torch.randn(3, 5, 16, dtype=torch.float64), state)
    with pytest.raises(TypeError, match="TitansConfig"):
        TitansEncoder({"d_model": 16})


@pytest.mark.parametrize("field,value,pattern", [
    ("window", 0, "TitansConfig.window"),
    ("chunk_size", 0, "TitansConfig.chunk_size"),
    ("variant", "mlp", "TitansConfig.variant"),
    ("heads", 3, r"TitansConfig.d_model \(64\) must be divisible by heads \(3\)"),
    ("memory_depth", 0, "TitansConfig.memory_depth"),
    ("n_layers", 1.5, "TitansConfig.n_layers"),
    ("persistent_tokens", -1, "TitansConfig.persistent_tokens"),
    ("memory_lr", 0.0, "TitansConfig.memory_lr"),
    ("alpha_init", 1.0, r"TitansConfig.alpha_init must be in \(0, 1\), got 1.0"),
    ("alpha_init", 0, "TitansConfig.alpha_init"),
    ("forget_toward", "init", r"TitansConfig.forget_toward must be one of \('zero', 'initial'\)"),
    ("dropout", 1.0, "TitansConfig.dropout"),
    ("backend", "gpu", "TitansConfig.backend"),
])
def test_bad_config_names_the_field(field, value, pattern):
    with pytest.raises(ValueError, match=pattern):
        TitansConfig(**{field: value})


@pytest.mark.parametrize("variant", VARIANTS)
def test_forget_toward_reaches_every_memory(variant):
    enc = TitansEncoder(TitansConfig(d_model=16, heads=2, n_layers=2, variant=variant, forget_toward="initial"))
    memories = [m for m in enc.modules() if isinstance(m, NeuralMemory)]
    assert len(memories) >= 2 and all(m.forget_toward == "initial" for m in memories)
    assert all(m.forget_toward == "zero" for m in TitansEncoder(TitansConfig(d_model=16, heads=2)).modules()
               if isinstance(m, NeuralMemory))


def test_mac_segments_must_hold_whole_chunks():
    with pytest.raises(ValueError, match=r"TitansConfig.window \(10\) must be a multiple of chunk_size \(4\)"):
        TitansConfig(variant="mac", window=10, chunk_size=4)


@pytest.mark.parametrize("variant", VARIANTS)
def test_surprise_rides_on_the_same_stream(variant, make_encoder):
    enc = make_encoder(variant)
    x = torch.randn(2, 30, 16, dtype=torch.float64)
    y0, s0 = enc(x[:, :13])
    score, y, state = enc.surprise(x[:, 13:], s0)
    y_ref, s_ref = enc(x[:, 13:], s0)
    for part in score:
        assert part.shape == (2, 17, 2) and (part >= 0).all()
    torch.testing.assert_close(y, y_ref)
    assert all(torch.equal(state[k], s_ref[k]) for k in s_ref)
    # streamed in two pieces, the scores are those of one call
    a, _, mid = enc.surprise(x[:, 13:20], s0)
    b, _, _ = enc.surprise(x[:, 20:], mid)
    for pa, pb, whole in zip(a, b, score):
        torch.testing.assert_close(torch.cat([pa, pb], dim=1), whole, atol=1e-10, rtol=0)


@pytest.mark.parametrize("dim", [8, 9])
def test_rotary_turns_each_pair_by_its_angle(dim):
    """Feature pairs (i, i + D/2) turn by pos · 10000^(−i/(D/2)), written out; an odd D's last feature stays;
    so scores of turned q and k depend on the positions' difference only."""
    from titans_ts.attention import rotary

    torch.manual_seed(0)
    half = dim // 2
    x = torch.randn(2, 3, 5, dim, dtype=torch.float64)
    pos = torch.tensor([0, 1, 7, 100, 1000])
    (got,) = rotary(pos, x)
    angle = pos[:, None].double() * 10000.0 ** (-torch.arange(half, dtype=torch.float64) / half)
    a, b = x[..., :half], x[..., half: 2 * half]
    want = torch.cat([a * angle.cos() - b * angle.sin(), a * angle.sin() + b * angle.cos(), x[..., 2 * half:]], -1)
    torch.testing.assert_close(got, want, atol=1e-12, rtol=0)
    q, k = x, x.flip(0)
    scores = [(rotary(pos + s, q)[0] * rotary(pos + s - 3, k)[0]).sum(-1) for s in (0, 37)]  # k 3 steps behind
    torch.testing.assert_close(scores[0], scores[1], atol=1e-9, rtol=0)
    assert not torch.allclose(scores[0], (rotary(pos, q)[0] * rotary(pos - 4, k)[0]).sum(-1))


@pytest.mark.parametrize("pieces", [[7], [32], [33], [150], [5, 40, 3, 70], [1, 1, 9, 1, 40, 1]], ids=str)
def test_sliding_window_attention_equals_the_masked_softmax_written_out(pieces):
    """Both paths (one masked block up to `DENSE` windows, blocks beyond), with a KV cache across pieces,
    against softmax over [persistent ‖ the w most recent positions] formed whole in float64."""
    from titans_ts.attention import DENSE, Attention, rotary

    torch.manual_seed(0)
    w, heads, d = 8, 2, 16
    att = Attention(d, heads, w, persistent_tokens=3).double()
    x = torch.randn(2, sum(pieces), d, dtype=torch.float64)
    assert {n <= DENSE * w for n in pieces} == {True, False} or len(pieces) == 1  # mixed pieces take both paths
    y, state, start = [], None, 0
    for n in pieces:
        out, state = att(x[:, start: start + n], state)
        y.append(out)
        start += n
    T = x.shape[1]
    q, k, v = (att._split(t) for t in att.qkv(x).chunk(3, dim=-1))
    q, k = rotary(torch.arange(T), q, k)
    kp, vp = att._persistent_kv(2)
    t = torch.arange(T)
    allowed = torch.cat([torch.ones(T, 3, dtype=torch.bool), (t[None] <= t[:, None]) & (t[None] > t[:, None] - w)], 1)
    scores = (q @ torch.cat([kp, k], 2).mT / (d // heads) ** 0.5).masked_fill(~allowed, float("-inf"))
    want = att._merge(scores.softmax(-1) @ torch.cat([vp, v], 2))
    torch.testing.assert_close(torch.cat(y, 1), want, atol=1e-12, rtol=0)
