"""RecallMemory: sparse codes of windows and encoder outputs, a memory of what followed, written only with pairs that have arrived."""
import torch

from titans_ts.forecasting.recall import RecallMemory, cosine_basis

L, H, D = 12, 5, 8


def memory(**kw) -> RecallMemory:
    torch.manual_seed(0)
    return RecallMemory(1, L, H, D, **dict(dict(features=512, chunk_size=4), **kw)).double()


def encoder_outputs(*shape: int) -> torch.Tensor:
    """Encoder outputs that the zero-initialised learnt part of the key maps to nothing."""
    return torch.randn(*shape, D, dtype=torch.float64)


def test_cosine_basis_is_orthonormal_and_lossless_at_full_size():
    full = cosine_basis(7, 7).double()
    torch.testing.assert_close(full.T @ full, torch.eye(7, dtype=torch.float64), atol=1e-6, rtol=0)
    part = cosine_basis(30, 8).double()
    torch.testing.assert_close(part.T @ part, torch.eye(8, dtype=torch.float64), atol=1e-6, rtol=0)
    x = torch.randn(3, 7, dtype=torch.float64)
    torch.testing.assert_close(x @ full @ full.T, x, atol=1e-6, rtol=0)


def test_codes_are_sparse_unit_and_blind_to_level_and_scale():
    m = memory()
    win, h = torch.randn(2, 9, 1, L, dtype=torch.float64), encoder_outputs(2, 9)
    code = m.code(win, h)
    assert code.shape == (2, 1, 9, 512)
    torch.testing.assert_close(code.norm(dim=-1), torch.ones(2, 1, 9, dtype=torch.float64))
    share_on = (code > 0).double().mean().item()
    assert 0.005 < share_on < 0.06  # about 2% of the features on
    torch.testing.assert_close(m.code(3.0 * win + 7.0, h), code)
    other = m.code(torch.randn(2, 9, 1, L, dtype=torch.float64), h)
    assert (code * other).sum(-1).abs().mean() < 0.2  # unrelated windows barely share features


def test_the_encoder_output_tells_the_same_window_apart_once_learnt():
    m = memory()
    win = torch.randn(1, 9, 1, L, dtype=torch.float64).expand(2, -1, -1, -1)  # one window in two contexts
    h = encoder_outputs(2, 9)
    same = m.code(win, h)
    torch.testing.assert_close(same[0], same[1])  # at the start the key is the window's alone
    with torch.no_grad():
        m.context.weight.normal_()
    apart = m.code(win, h)
    assert (apart[0] * apart[1]).sum(-1).mean() < 0.5


def test_a_written_pair_is_recalled_and_an_unwritten_one_is_not():
    m = memory(chunk_size=1)
    pattern = torch.randn(1, 1, 1, L, dtype=torch.float64)
    value = torch.randn(1, 1, 1, H, dtype=torch.float64)
    known = torch.ones(1, 1, dtype=torch.float64).bool()
    h = encoder_outputs(1, 1)
    _, state = m(pattern, pattern, h, h, value, known)
    recalled, _ = m(pattern + 0.01 * torch.randn_like(pattern), pattern, h, h, value, known.logical_not(), state)
    unrelated, _ = m(torch.randn_like(pattern), pattern, h, h, value, known.logical_not(), state)
    # one write of a unit key k moves M(k) from 0 to 2θ v, θ = (1 − η) σ(·) ≈ 1/2 at the start; a near copy
    # of the key recalls nearly that
    rate, eta, _ = torch.sigmoid(m.gates).tolist()
    two_theta = 2 * (1 - eta) * rate
    torch.testing.assert_close(m(pattern, pattern, h, h, value, known.logical_not(), state)[0], two_theta * value,
                               atol=1e-6, rtol=0)
    cos = torch.nn.functional.cosine_similarity(recalled.flatten(), value.flatten(), dim=0)
    assert cos > 0.99 and 0.8 < recalled.norm() / value.norm() / two_theta < 1.2
    assert unrelated.norm() < 0.3 * value.norm()


def test_pairs_not_yet_known_write_nothing():
    m = memory()
    now, then = torch.randn(2, 2, 11, 1, L, dtype=torch.float64)
    missed = torch.randn(2, 11, 1, H, dtype=torch.float64)
    out, state = m(now, then, encoder_outputs(2, 11), encoder_outputs(2, 11), missed, torch.zeros(2, 11, dtype=torch.bool))
    assert torch.equal(out, torch.zeros_like(out))
    assert not state["w.0"].any() and not state["s.0"].any()


def test_streaming_in_pieces_equals_one_call():
    m = memory()
    with torch.no_grad():
        m.context.weight.normal_()
    now, then = torch.randn(2, 2, 23, 1, L, dtype=torch.float64)
    h_now, h_then = encoder_outputs(2, 23), encoder_outputs(2, 23)
    missed = torch.randn(2, 23, 1, H, dtype=torch.float64)
    known = torch.rand(2, 23) > 0.3
    whole, state = m(now, then, h_now, h_then, missed, known)
    outs, st = [], None
    for a, b in [(0, 1), (1, 8), (8, 12), (12, 23)]:
        out, st = m(now[:, a:b], then[:, a:b], h_now[:, a:b], h_then[:, a:b], missed[:, a:b], known[:, a:b], st)
        outs.append(out)
    torch.testing.assert_close(torch.cat(outs, 1), whole, atol=1e-12, rtol=0)
    for key in state:
        torch.testing.assert_close(st[key], state[key], atol=1e-12, rtol=0)
