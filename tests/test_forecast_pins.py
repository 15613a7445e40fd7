"""Pinned forecasts of tiny fits: the forecaster's code may move between modules, its numbers may not.

A fit's numbers depend on the instruction set (AVX2 and AVX-512 sum in other orders and move them by about
1e-8), so they are held to rtol 1e-5: far above that rounding, far below any change of the computation
(a changed initialisation, step or scale moves them by 1e-3 and more)."""
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from titans_ts.forecasting import TitansForecaster

TINY = dict(horizon=3, lookback=8, patch=2, d_model=8, n_layers=1, heads=1, chunk_size=4, max_epochs=1,
            batch_size=16, random_state=0, recall=False, period=None)
RTOL = 1e-5


def assert_pinned(got, pinned):
    np.testing.assert_allclose(got, pinned, rtol=RTOL, atol=RTOL)


def series(n=120):
    t = np.arange(n)[:, None]
    return np.sin(2 * np.pi * t / 12 + np.arange(2)) + 0.05 * np.cos(t / 5)


@pytest.mark.parametrize("params", [{}, {"carry_memory": True}, {"recall": True, "variant": "mac"}],
                         ids=["fresh", "carried", "recall-mac"])
def test_tiny_fit_predicts_the_pinned_values(params):
    f = TitansForecaster(**{**TINY, **params}).fit(series()[:100])
    f.update(series()[100:110])
    got = np.concatenate([f.predict().ravel(), f.predict_interval(0.8)[1].ravel()])
    assert_pinned(got, PINS[f"{sorted(params.items())}"])


def test_tiny_panel_predicts_the_pinned_values():
    y = series()
    long = pl.DataFrame({"id": ["a"] * 100 + ["b"] * 90, "v": np.concatenate([y[:100, 0], y[:90, 1]])})
    f = TitansForecaster(**TINY, id_col="id").fit(long)
    assert_pinned(f.predict()["v"].to_numpy(), PINS["panel"])


PINS = {
    '[]': [
        0.8199540247207863, 0.8434231890824687, 0.9590387900398384, 0.5030685364986296, 0.8345468245584357,
        0.023758335252573717, 0.8356639206158982, 0.8649232932786564, 0.9908978486788171, 0.5411296503394418,
        0.8809097192420037, 0.0761783269140062],
    "[('carry_memory', True)]": [
        0.8230362776963227, 0.8467279262702374, 0.961411578575122, 0.503379811511823, 0.8327802631137282,
        0.01846651070502022, 0.8387348791061275, 0.8652652672590988, 0.9950907708991001, 0.5396896952760487,
        0.8856701261249091, 0.07421852378873589],
    "[('recall', True), ('variant', 'mac')]": [
        0.8269146944397527, 0.8497932342674852, 0.9691406816411953, 0.5086193942482944, 0.842306247331574,
        0.02073531307099529, 0.8464963389700834, 0.8739226794102783, 1.0140808641513033, 0.5568049321461175,
        0.9125273895795544, 0.09488988793436966],
    'panel': [  # each series read in its own scale
        0.896995732170528, 0.5213606215463136, 0.022458658934802162, -0.8254106958859521, -0.988111757943009,
        -0.8886393881436359],
}


def test_a_file_saved_before_the_split_loads_and_continues():
    """tests/data/forecaster_v1_panel.titans: a two-series panel (a: 100 hourly rows, b: 90) saved by the
    forecaster before its streams were batched; the values are what that forecaster predicted."""
    import pandas as pd

    f = TitansForecaster.load(Path(__file__).parent / "data" / "forecaster_v1_panel.titans")
    assert_pinned(f.predict()["v"].to_numpy(), [
        0.9457888370804851, 0.7905491512297943, 0.5549528412093241, -0.8660441991171467, -0.7178376631855204,
        -0.5484755808381284])
    last = pd.Timestamp("2024-01-01") + pd.Timedelta(hours=89)
    f.update(pl.DataFrame({"id": ["b", "b"], "t": [last + pd.Timedelta(hours=1), last + pd.Timedelta(hours=2)],
                           "v": [0.5, 0.4]}))
    assert_pinned(f.predict()["v"].to_numpy(), [
        0.9457888370804851, 0.7905491512297943, 0.5549528412093241, 1.2772196837467018, 1.980095098558118,
        2.6147195230391334])
