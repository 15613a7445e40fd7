"""RecallMemory: sparse window codes, a memory of what followed, written only with pairs that have arrived."""
import torch

from titans_ts.forecasting.recall import RecallMemory, cosine_basis

L, H = 12, 5


def memory(**kw) -> RecallMemory:
    torch.manual_seed(0)
    return RecallMemory(1, L, H, **dict(dict(features=512, chunk_size=4), **kw)).double()


def test_cosine_basis_is_orthonormal_and_lossless_at_full_size():
    full = cosine_basis(7, 7).double()
    torch.testing.assert_close(full.T @ full, torch.eye(7, dtype=torch.float64), atol=1e-6, rtol=0)
    part = cosine_basis(30, 8).double()
    torch.testing.assert_close(part.T @ part, torch.eye(8, dtype=torch.float64), atol=1e-6, rtol=0)
    x = torch.randn(3, 7, dtype=torch.float64)
    torch.testing.assert_close(x @ full @ full.T, x, atol=1e-6, rtol=0)


def test_codes_are_sparse_unit_and_blind_to_level_and_scale():
    m = memory()
    win = torch.randn(2, 9, 1, L, dtype=torch.float64)
    code = m.code(win)
    assert code.shape == (2, 1, 9, 512)
    torch.testing.assert_close(code.norm(dim=-1), torch.ones(2, 1, 9, dtype=torch.float64))
    share_on = (code > 0).double().mean().item()
    assert 0.005 < share_on < 0.06  # about 2% of the features on
    torch.testing.assert_close(m.code(3.0 * win + 7.0), code)
    other = m.code(torch.randn(2, 9, 1, L, dtype=torch.float64))
    assert (code * other).sum(-1).abs().mean() < 0.2  # unrelated windows barely share features


def test_a_written_pair_is_recalled_and_an_unwritten_one_is_not():
    m = memory(chunk_size=1)
    pattern = torch.randn(1, 1, 1, L, dtype=torch.float64)
    value = torch.randn(1, 1, 1, H, dtype=torch.float64)
    known = torch.ones(1, 1, dtype=torch.float64).bool()
    _, state = m(pattern, pattern, value, known)
    recalled, _ = m(pattern + 0.01 * torch.randn_like(pattern), pattern, value, known.logical_not(), state)
    unrelated, _ = m(torch.randn_like(pattern), pattern, value, known.logical_not(), state)
    # one write of a unit key k moves M(k) from 0 to 2θ v, θ = (1 − η) σ(·) ≈ 1/2 at the start; a near copy
    # of the key recalls nearly that
    rate, eta, _ = torch.sigmoid(m.gates).tolist()
    two_theta = 2 * (1 - eta) * rate
    torch.testing.assert_close(m(pattern, pattern, value, known.logical_not(), state)[0], two_theta * value,
                               atol=1e-6, rtol=0)
    cos = torch.nn.functional.cosine_similarity(recalled.flatten(), value.flatten(), dim=0)
    assert cos > 0.99 and 0.8 < recalled.norm() / value.norm() / two_theta < 1.2
    assert unrelated.norm() < 0.3 * value.norm()


def test_pairs_not_yet_known_write_nothing():
    m = memory()
    now, then = torch.randn(2, 2, 11, 1, L, dtype=torch.float64)
    missed = torch.randn(2, 11, 1, H, dtype=torch.float64)
    out, state = m(now, then, missed, torch.zeros(2, 11, dtype=torch.bool))
    assert torch.equal(out, torch.zeros_like(out))
    assert not state["w.0"].any() and not state["s.0"].any()


def test_streaming_in_pieces_equals_one_call():
    m = memory()
    now, then = torch.randn(2, 2, 23, 1, L, dtype=torch.float64)
    missed = torch.randn(2, 23, 1, H, dtype=torch.float64)
    known = torch.rand(2, 23) > 0.3
    whole, state = m(now, then, missed, known)
    outs, st = [], None
    for a, b in [(0, 1), (1, 8), (8, 12), (12, 23)]:
        out, st = m(now[:, a:b], then[:, a:b], missed[:, a:b], known[:, a:b], st)
        outs.append(out)
    torch.testing.assert_close(torch.cat(outs, 1), whole, atol=1e-12, rtol=0)
    for key in state:
        torch.testing.assert_close(st[key], state[key], atol=1e-12, rtol=0)
