"""Split-conformal offsets against MAPIE's split conformal regressor (the reference implementation)."""
import numpy as np
import pytest
import torch
from sklearn.dummy import DummyRegressor

from titans_ts.forecasting.conformal import conformal_offsets

mapie_regression = pytest.importorskip("mapie.regression")


@pytest.mark.parametrize("n,level", [(37, 0.9), (200, 0.8), (500, 0.95), (61, 0.5)])
def test_upper_offset_brackets_mapies_split_conformal_bound(n, level):
    """On absolute residuals, MAPIE's bound is the k-th smallest, k = ⌈level·(n + 1)⌉; the offset reads the
    same corrected level k / n with linear interpolation: from that bound, (1 − k/n) of the way to the next."""
    scores = np.abs(np.random.default_rng(n).standard_normal(n)) * 3
    zero = DummyRegressor(strategy="constant", constant=0.0).fit(np.zeros((2, 1)), [0.0, 0.0])
    mapie = mapie_regression.SplitConformalRegressor(zero, confidence_level=level, prefit=True)
    mapie.conformalize(np.zeros((n, 1)), scores)
    bound = mapie.predict_interval(np.zeros((1, 1)))[1][0, 1, 0]
    ours = conformal_offsets(torch.tensor(scores)[None, None], [level])[0, 0]
    k = int(np.ceil(level * (n + 1)))
    ordered = np.sort(scores)
    assert bound == pytest.approx(ordered[k - 1])
    assert ours == pytest.approx(bound + (1 - k / n) * (ordered[k] - bound), abs=1e-12)
    assert bound <= ours <= ordered[k]


def test_lower_levels_mirror_the_upper_ones():
    """δ at level 1 − q of the residuals is −δ at level q of their negatives: the interval is symmetric in
    the finite-sample correction."""
    r = torch.randn(3, 4, 90, dtype=torch.float64)
    levels = [0.1, 0.2, 0.05]
    lower = conformal_offsets(r, levels)
    upper = conformal_offsets(-r, [1 - q for q in levels])
    np.testing.assert_allclose(lower, -upper, atol=1e-12)
