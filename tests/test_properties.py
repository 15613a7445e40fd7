"""Inputs that never crash it: arbitrary shapes, dtypes, NaN/inf, huge values, text and bytes reach only the
documented exceptions (ValueError, TypeError, NotFittedError) with a message, and a failed call changes nothing."""
import os
import pickle
import string

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from titans_ts.datasets import planted_motif_dna, read_labelled, read_sequences
from titans_ts.forecasting import TitansForecaster
from titans_ts.forecasting.cli import main as ts_main
from titans_ts.genomics import TitansDNAClassifier
from titans_ts.genomics.cli import main as dna_main

# cases per property: 40 in the default suite; TITANS_PROPERTY_CASES=500 for a thorough run
CASES = int(os.environ.get("TITANS_PROPERTY_CASES", "40"))
FAST = settings(max_examples=CASES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
SMALL = dict(horizon=3, lookback=8, patch=2, d_model=8, n_layers=1, heads=1, chunk_size=4, max_epochs=1, random_state=0)

@pytest.fixture(scope="module")
def fitted():
    y = np.sin(np.arange(120)[:, None] / 3 + np.arange(2))
    return TitansForecaster(**SMALL).fit(y)


def numeric_arrays():
    shapes = hnp.array_shapes(min_dims=1, max_dims=3, min_side=0, max_side=12)
    floats = hnp.arrays(dtype=st.sampled_from([np.float64, np.float32]), shape=shapes,
                        elements=st.floats(width=32) | st.floats(-1e6, 1e6, width=32))
    ints = hnp.arrays(dtype=np.int64, shape=shapes, elements=st.integers(-2**62, 2**62))
    return floats | ints


@FAST
@given(y=numeric_arrays())
def test_update_only_raises_documented_errors_and_keeps_state(fitted, y):
    f = pickle.loads(pickle.dumps(fitted))
    before = f.predict().copy()
    try:
        f.update(y)
    except (ValueError, TypeError) as err:
        assert str(err)
        np.testing.assert_array_equal(f.predict(), before)
        assert f.streams_.seen[0] == 120
    else:
        assert y.ndim == 2 and y.shape[1] == 2 and not np.isinf(y).any()  # NaN: a missing value, streamed


@FAST
@given(y=st.one_of(numeric_arrays(), st.lists(st.floats(), max_size=5), st.text(max_size=5), st.none(),
                   st.dictionaries(st.text(max_size=2), st.integers(), max_size=2)))
def test_fit_only_raises_documented_errors(y):
    try:
        TitansForecaster(**dict(SMALL, max_epochs=1)).fit(y)
    except (ValueError, TypeError) as err:
        assert str(err)


@pytest.fixture(scope="module")
def classifier():
    seqs, labels = planted_motif_dna(40, 24, ["TATAAT"], seed=0)
    return TitansDNAClassifier(d_model=8, n_layers=1, heads=1, window=8, chunk_size=8, k=3, stride=1, epochs=1,
                               random_state=0).fit(seqs, labels)


@FAST
@given(seqs=st.one_of(st.lists(st.text(alphabet="ACGTNacgtnRYX-ä \n", max_size=40), max_size=4),
                      st.lists(st.one_of(st.integers(), st.none(), st.binary(max_size=4)), max_size=3),
                      st.text(max_size=8), st.none(), st.integers()))
def test_classifier_only_raises_documented_errors_and_keeps_its_model(classifier, seqs):
    probe = classifier.predict_proba(["ACGTACGTAC"])
    try:
        p = classifier.predict_proba(seqs)
    except (ValueError, TypeError) as err:
        assert str(err)
    else:
        assert p.shape == (len(seqs), 2) and np.allclose(p.sum(1), 1) and np.isfinite(p).all()
    np.testing.assert_array_equal(classifier.predict_proba(["ACGTACGTAC"]), probe)


@FAST
@given(data=st.binary(max_size=300) | st.text(alphabet=string.printable + "ÄßN\u3000é", max_size=300).map(str.encode))
def test_sequence_readers_only_raise_value_errors(tmp_path, data):
    path = tmp_path / "input.txt"
    path.write_bytes(data)
    for reader in (read_labelled, read_sequences):
        try:
            reader(path)
        except ValueError as err:
            assert str(err)


@settings(max_examples=max(15, CASES // 8), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=200))
def test_command_lines_exit_2_with_one_line_on_garbage(tmp_path, capsys, data):
    path = tmp_path / "garbage.csv"
    path.write_bytes(data)
    out = tmp_path / "out.csv"
    for main, args in ((ts_main, ["forecast", "--data", str(path), "--horizon", "3", "--lookback", "8",
                                  "--epochs", "1", "--quiet", "--out", str(out)]),
                       (dna_main, ["train", "--data", str(path), "--model", str(out), "--epochs", "1"])):
        capsys.readouterr()
        code = main(args)
        err = capsys.readouterr().err.strip().splitlines()
        if code != 0:
            assert code == 2 and len(err) == 1 and err[0].split(":")[0] in ("titans-ts", "titans-dna")
            assert not out.exists()
        out.unlink(missing_ok=True)
