"""titans_ts.datasets.synthetic: generated data has the structure it promises."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from titans_ts.datasets import synthetic
from titans_ts.datasets.synthetic import (
    ANOMALY_KINDS,
    anomaly_stream,
    load_jaspar,
    planted_motif_dna,
    recurring_motifs,
)

JASPAR = (Path(__file__).resolve().parents[1].parent / "shared" / "data" / "genomics" / "jaspar"
          / "JASPAR2024_CORE_vertebrates_latest.jaspar")
needs_jaspar = pytest.mark.skipif(not JASPAR.is_file(), reason=f"shared JASPAR file {JASPAR} is absent")


# --- recurring motifs ------------------------------------------------------------------------------

def test_recurring_motifs_shapes_and_determinism():
    data = recurring_motifs(n_steps=3000, n_channels=3, n_motifs=5, motif_len=24, window=48, seed=7)
    assert data.values.shape == (3000, 3) and data.values.dtype == np.float64
    assert data.motifs.shape == (5, 24, 3)
    same = recurring_motifs(n_steps=3000, n_channels=3, n_motifs=5, motif_len=24, window=48, seed=7)
    other = recurring_motifs(n_steps=3000, n_channels=3, n_motifs=5, motif_len=24, window=48, seed=8)
    assert np.array_equal(data.values, same.values) and data.occurrences == same.occurrences
    assert not np.allclose(data.values, other.values)


def test_recurrences_equal_their_motif_up_to_noise():
    noise = 0.05
    data = recurring_motifs(n_steps=4096, n_motifs=4, motif_len=32, window=64, noise=noise, seed=0)
    recurrences = [o for o in data.occurrences if o.is_recurrence]
    assert len(recurrences) >= 10
    assert [o.motif_id for o in data.occurrences[:4]] == [0, 1, 2, 3]
    assert not any(o.is_recurrence for o in data.occurrences[:4])
    for occurrence in data.occurrences:
        segment = data.values[occurrence.start:occurrence.start + 32]
        residual = segment - data.motifs[occurrence.motif_id]
        assert np.abs(residual).max() < 5 * noise
        # the motif itself is far from noise: another motif would not fit
        others = [m for i, m in enumerate(data.motifs) if i != occurrence.motif_id]
        assert all(np.abs(segment - m).max() > 10 * noise for m in others)
    background = data.values[~_occupied(data)]
    assert abs(background.std() - noise) < 0.1 * noise


def test_recurrences_lie_beyond_the_window():
    window = 80
    data = recurring_motifs(n_steps=5000, n_motifs=3, motif_len=16, window=window, seed=3)
    starts = [o.start for o in data.occurrences]
    assert all(b - (a + 16) > window for a, b in zip(starts, starts[1:]))
    last_end: dict[int, int] = {}
    for occurrence in data.occurrences:
        assert occurrence.is_recurrence == (occurrence.motif_id in last_end)
        if occurrence.is_recurrence:
            assert occurrence.start - last_end[occurrence.motif_id] > window
        last_end[occurrence.motif_id] = occurrence.start + 16
    mask = data.recurrence_mask()
    assert mask.sum() == 16 * sum(o.is_recurrence for o in data.occurrences)


def test_motifs_are_smooth_with_unit_peak():
    motifs = recurring_motifs(motif_len=64, n_motifs=6, seed=1).motifs
    np.testing.assert_allclose(np.abs(motifs).max(axis=1), 1.0)
    assert np.abs(np.diff(motifs, axis=1)).max() < 0.35


def test_autocorrelated_background_and_varied_recurrences():
    plain = recurring_motifs(n_steps=20_000, n_motifs=4, motif_len=32, window=64, noise=0.2, seed=5)
    hard = recurring_motifs(n_steps=20_000, n_motifs=4, motif_len=32, window=64, noise=0.2, seed=5, ar=0.9,
                            variation=0.3)
    background = hard.values[~_occupied(hard), 0]
    assert abs(background.std() - 0.2) < 0.03  # the same spread as white noise of std `noise`
    lag1 = np.corrcoef(background[:-1], background[1:])[0, 1]
    assert 0.85 < lag1 < 0.95 and abs(np.corrcoef(plain.values[:-1, 0], plain.values[1:, 0])[0, 1]) < 0.9
    # what is left of an occurrence less its motif: the background for a first showing, more for a recurrence
    left = {flag: [np.std(hard.values[o.start: o.start + 32] - hard.motifs[o.motif_id])
                   for o in hard.occurrences if o.is_recurrence == flag] for flag in (False, True)}
    assert max(left[False]) < 0.3 and np.median(left[True]) > 1.3 * np.median(left[False])
    assert [o.is_recurrence for o in hard.occurrences[:4]] == [False] * 4


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"ar": 1.0}, "ar must be in \\[0, 1\\)"),
    ({"variation": -0.1}, "variation must be >= 0"),
    ({"window": 64, "gap_min": 64}, "need window < gap_min <= gap_max"),
    ({"n_steps": 500}, "cannot hold every motif once plus one recurrence"),
    ({"noise": -1.0}, "noise must be >= 0"),
    ({"n_motifs": 0}, "n_motifs must be positive"),
    ({"motif_len": 2}, "motif_len must be >= 4"),
])
def test_recurring_motifs_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        recurring_motifs(**kwargs)


def _occupied(data: synthetic.RecurringMotifs) -> np.ndarray:
    mask = np.zeros(len(data.values), dtype=bool)
    for occurrence in data.occurrences:
        mask[occurrence.start:occurrence.start + data.motifs.shape[1]] = True
    return mask


# --- anomaly stream --------------------------------------------------------------------------------

def test_anomaly_stream_labels_match_inserted_anomalies():
    period, event_every, noise = 24, 4, 0.1
    data = anomaly_stream(n_steps=4096, n_channels=2, period=period, event_every=event_every, noise=noise, seed=5)
    assert data.values.shape == (4096, 2) and data.labels.shape == (4096,)
    assert data.labels.dtype.kind == "i" and set(np.unique(data.labels)) == {0, 1}
    assert [a.kind for a in data.kinds] == list(ANOMALY_KINDS) * 2
    expected = np.zeros(4096, dtype=np.int64)
    for anomaly in data.kinds:
        expected[anomaly.start:anomaly.end] = 1
    assert np.array_equal(data.labels, expected)
    assert data.labels[:1024].sum() == 0
    # the clean series repeats every period * event_every steps, so a one-cycle difference is pure
    # noise except where an anomaly sits (now or one cycle ago)
    cycle = period * event_every
    diff = np.abs(data.values[cycle:] - data.values[:-cycle]).max(axis=1)
    touched = (data.labels[cycle:] == 1) | (data.labels[:-cycle] == 1)
    assert diff[~touched].max() < 6 * np.sqrt(2) * noise
    for anomaly in data.kinds:
        inside = diff[anomaly.start - cycle:anomaly.end - cycle]
        floor = {"spike": 3.5, "level_shift": 1.2, "pattern_change": 1.0, "missing_recurrence": 1.2}[anomaly.kind]
        assert inside.max() > floor, anomaly


def test_anomaly_stream_determinism_and_errors():
    a, b = anomaly_stream(seed=1), anomaly_stream(seed=1)
    assert np.array_equal(a.values, b.values) and a.kinds == b.kinds
    assert a.kinds != anomaly_stream(seed=2).kinds
    with pytest.raises(ValueError, match="steps per anomaly"):
        anomaly_stream(n_steps=1000, n_anomalies=8)
    with pytest.raises(TypeError, match="n_steps must be an int"):
        anomaly_stream(n_steps=4096.0)


# --- planted DNA motifs and JASPAR -----------------------------------------------------------------

def test_planted_string_motifs():
    motifs = ["TATAATGCGCAT", "ttgacaCCGGTA"]
    seqs, labels = planted_motif_dna(200, 60, motifs, seed=0)
    assert len(seqs) == 200 and labels.shape == (200,) and labels.sum() == 100
    assert all(len(s) == 60 and set(s) <= set("ACGT") for s in seqs)
    has_motif = np.array([any(m.upper() in s for m in motifs) for s in seqs])
    assert np.array_equal(has_motif, labels == 1)
    again = planted_motif_dna(200, 60, motifs, seed=0)
    assert again[0] == seqs and np.array_equal(again[1], labels)
    assert planted_motif_dna(200, 60, motifs, seed=1)[0] != seqs


def test_planted_one_hot_matrix_equals_string():
    matrix = np.eye(4)[[0, 3, 2, 2, 1, 0, 3, 3]]  # ATGGCATT
    seqs, labels = planted_motif_dna(50, 30, [matrix], seed=2, positive_fraction=0.2)
    assert labels.sum() == 10
    assert all(("ATGGCATT" in s) for s, y in zip(seqs, labels) if y == 1)


@needs_jaspar
def test_load_jaspar_and_plant_real_motif():
    matrices = load_jaspar(JASPAR)
    assert len(matrices) == 879
    runx1 = matrices["MA0002.3 Runx1"]
    assert runx1.shape == (9, 4)
    np.testing.assert_allclose(runx1[0], np.array([123, 1072, 149, 656]) / 2000)
    assert all(np.allclose(m.sum(axis=1), 1.0) and m.shape[1] == 4 for m in matrices.values())
    seqs, labels = planted_motif_dna(400, 50, [runx1], seed=0)
    log_odds = np.log((runx1 + 1e-3) / 0.25)
    index = {base: i for i, base in enumerate("ACGT")}
    best = np.array([max(sum(log_odds[j, index[s[k + j]]] for j in range(9)) for k in range(42)) for s in seqs])
    assert best[labels == 1].mean() > best[labels == 0].mean() + 2.0


def test_load_jaspar_rejects_other_files(tmp_path):
    path = tmp_path / "motifs.jaspar"
    path.write_text("this is not a matrix\n")
    with pytest.raises(ValueError, match="motifs.jaspar"):
        load_jaspar(path)


@pytest.mark.parametrize(("motifs", "match"), [
    (["ACGTN"], r"motif 0 \('ACGTN'\) must be a non-empty string over A, C, G, T"),
    (["A" * 31], "motif 0 has length 31 > sequence length 30"),
    ([np.ones((5, 3))], r"motif 0 must be an \(L, 4\) matrix"),
    (["ACG", -np.ones((2, 4))], "motif 1: weights must be finite"),
    ([], "at least one motif"),
])
def test_planted_motif_dna_rejects_bad_motifs(motifs, match):
    with pytest.raises(ValueError, match=match):
        planted_motif_dna(10, 30, motifs)
