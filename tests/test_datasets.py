"""titans_ts.datasets: ETT loading and splits, bundled samples, and the package's import boundary."""
from __future__ import annotations

import ast
import csv
import gzip
import hashlib
import sys
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from titans_ts.datasets import (
    Borders,
    bundled_dna_path,
    bundled_ett_path,
    ett_borders,
    ett_online_borders,
    ett_splits,
    load_bundled_dna,
    load_bundled_ett,
    load_ett,
)

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
ETTH1 = SHARED / "ett" / "ETTh1.csv"
ECOLI = SHARED / "genomics" / "ecoli_promoters"
ETTH1_SHA256 = "f18de3ad269cef59bb07b5438d79bb3042d3be49bdeecf01c1cd6d29695ee066"
CHANNELS = ["HUFL", "HULL", "MUFL", "MULL", "LUFL", "LULL", "OT"]
needs_shared = pytest.mark.skipif(not SHARED.is_dir(), reason=f"shared data folder {SHARED} is absent")


def raw_etth1() -> tuple[list[str], np.ndarray]:
    """ETTh1 read independently of the code under test: dates as strings, values (rows, 7)."""
    with open(ETTH1, newline="") as fh:
        rows = list(csv.reader(fh))[1:]
    return [row[0] for row in rows], np.array([[float(v) for v in row[1:]] for row in rows])


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


# --- borders ---------------------------------------------------------------------------------------

def test_standard_borders_hourly_follow_informer():
    assert ett_borders(17420, 96) == Borders((0, 8640), (8544, 11520), (11424, 14400))
    assert ett_borders(14400, 0) == Borders((0, 8640), (8640, 11520), (11520, 14400))


def test_standard_borders_15min_are_four_times_hourly():
    assert ett_borders(69680, 96, freq="15min") == Borders((0, 34560), (34464, 46080), (45984, 57600))


def test_online_borders_follow_fsnet():
    assert ett_online_borders(17420, 0) == Borders((0, 2880), (2880, 3600), (3600, 14400))
    assert ett_online_borders(17420, 60) == Borders((0, 2880), (2820, 3600), (3540, 14400))


@pytest.mark.parametrize(("args", "error", "match"), [
    ((14399, 96), ValueError, "needs at least 14400 rows"),
    ((17420, 8641), ValueError, r"lookback must be in \[0, 8640\]"),
    ((17420, -1), ValueError, "lookback"),
    ((17420, 96, "D"), ValueError, "freq must be one of"),
    ((17420, 96.0), TypeError, "lookback must be an int"),
])
def test_borders_reject_bad_arguments(args, error, match):
    with pytest.raises(error, match=match):
        ett_borders(*args)


# --- load_ett and ett_splits on the real file ------------------------------------------------------

@needs_shared
def test_load_ett_reads_etth1():
    frame = load_ett(ETTH1)
    assert frame.shape == (17420, 8)
    assert frame.columns == ["date", *CHANNELS]
    assert frame.schema["date"] == pl.Datetime("us")
    assert all(frame.schema[c] == pl.Float64 for c in CHANNELS)
    assert frame["date"][0] == datetime(2016, 7, 1, 0, 0)
    assert frame["date"][-1] == datetime(2018, 6, 26, 19, 0)
    assert frame["OT"][0] == 30.5310001373291
    assert frame["HUFL"][1] == 5.692999839782715


@needs_shared
def test_ett_splits_scale_with_training_rows_only():
    dates, raw = raw_etth1()
    splits = ett_splits(ETTH1, lookback=96)
    assert splits.borders == Borders((0, 8640), (8544, 11520), (11424, 14400))
    assert (splits.train.shape, splits.val.shape, splits.test.shape) == ((8640, 7), (2976, 7), (2976, 7))
    assert splits.columns == tuple(CHANNELS)
    np.testing.assert_allclose(splits.mean, raw[:8640].mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(splits.std, raw[:8640].std(axis=0), rtol=1e-12)
    np.testing.assert_allclose(splits.train.mean(axis=0), 0.0, atol=1e-10)
    np.testing.assert_allclose(splits.train.std(axis=0), 1.0, atol=1e-10)
    # the later splits are scaled with the training statistics, not their own
    assert np.abs(splits.test.mean(axis=0)).max() > 0.1
    np.testing.assert_allclose(splits.val[0], (raw[8544] - splits.mean) / splits.std, rtol=1e-12)
    np.testing.assert_allclose(splits.test[-1], (raw[14399] - splits.mean) / splits.std, rtol=1e-12)
    assert str(splits.test_dates[0])[:19] == dates[11424].replace(" ", "T")
    assert len(splits.val_dates) == 2976 and len(splits.train_dates) == 8640


@needs_shared
def test_ett_splits_from_frame_online_and_unscaled():
    frame = load_ett(ETTH1)
    online = ett_splits(frame, lookback=0, protocol="online")
    assert online.borders == Borders((0, 2880), (2880, 3600), (3600, 14400))
    np.testing.assert_allclose(online.train.mean(axis=0), 0.0, atol=1e-10)
    raw = ett_splits(frame, lookback=96, scale=False)
    assert not raw.scaled
    np.testing.assert_array_equal(raw.test, frame.drop("date").to_numpy()[11424:14400])
    np.testing.assert_allclose((raw.test - raw.mean) / raw.std, ett_splits(frame).test, rtol=1e-12)


def test_ett_splits_infers_15min_frequency():
    n = 69680
    start = datetime(2016, 7, 1)
    dates = pl.datetime_range(start, start + timedelta(minutes=15 * (n - 1)), "15m", eager=True)
    frame = pl.DataFrame({"date": dates, "x": np.random.default_rng(0).standard_normal(n)})
    splits = ett_splits(frame, lookback=96)
    assert splits.borders == Borders((0, 34560), (34464, 46080), (45984, 57600))
    with pytest.raises(ValueError, match="cannot infer the ETT protocol frequency from a median step of 2700"):
        ett_splits(frame.gather_every(3))


def test_ett_splits_rejects_unknown_protocol_and_bad_frames():
    frame = pl.DataFrame({"date": pl.datetime_range(datetime(2020, 1, 1), datetime(2021, 8, 31), "1h", eager=True)})
    frame = frame.with_columns(x=pl.lit(1.0), label=pl.lit("a"))
    with pytest.raises(ValueError, match="frame: column 'label' has dtype String"):
        ett_splits(frame)
    with pytest.raises(ValueError, match="protocol must be 'standard' or 'online'"):
        ett_splits(frame.drop("label"), protocol="rolling")


def test_constant_channel_gets_unit_std():
    dates = pl.datetime_range(datetime(2020, 1, 1), datetime(2021, 8, 31), "1h", eager=True)
    frame = pl.DataFrame({"date": dates, "flat": np.full(len(dates), 3.0), "x": np.arange(len(dates), dtype=float)})
    splits = ett_splits(frame)
    assert splits.std[0] == 1.0 and splits.mean[0] == 3.0
    assert np.all(splits.train[:, 0] == 0.0)


# --- load_ett errors -------------------------------------------------------------------------------

GOOD = "date,HUFL,OT\n2016-07-01 00:00:00,1.5,30.5\n2016-07-01 01:00:00,1.6,27.8\n"


@pytest.mark.parametrize(("text", "match"), [
    ("time,HUFL,OT\n2016-07-01 00:00:00,1.5,30.5\n", r"no 'date' column \(columns: \['time', 'HUFL', 'OT'\]\)"),
    ("date\n2016-07-01 00:00:00\n", "no channel columns"),
    (GOOD + "2016-07-01 02:00:00,abc,1.0\n", r"column 'HUFL' line 4: 'abc' is not a number"),
    (GOOD + "2016-07-01 02:00:00,1.0,NaN\n", r"column 'OT' line 4: nan is not finite"),
    (GOOD + "2016-07-01 02:00:00,1.0,inf\n", r"column 'OT' line 4: inf is not finite"),
    (GOOD + "2016-07-01 02:00:00,,1.0\n", r"column 'HUFL' line 4: missing value"),
    (GOOD + "yesterday,1.0,1.0\n", r"column 'date' line 4: 'yesterday' is not a date"),
    (GOOD + ",1.0,1.0\n", r"column 'date' line 4: missing value"),
    (GOOD + "2016-07-01 01:00:00,1.0,1.0\n", r"column 'date' line 4: 2016-07-01 01:00:00 does not come after"),
    ("", "the file is empty"),
])
def test_load_ett_names_column_and_line(tmp_path, text, match):
    path = write(tmp_path / "bad.csv", text)
    with pytest.raises(ValueError, match=match) as info:
        load_ett(path)
    assert str(path) in str(info.value)


def test_load_ett_reads_gzip(tmp_path):
    path = tmp_path / "small.csv.gz"
    path.write_bytes(gzip.compress(GOOD.encode()))
    frame = load_ett(path)
    assert frame["OT"].to_list() == [30.5, 27.8]


# --- bundled samples -------------------------------------------------------------------------------

def test_bundled_ett_is_etth1_unchanged():
    path = bundled_ett_path()
    assert path.name == "ETTh1.csv.gz" and path.is_file()
    assert hashlib.sha256(gzip.decompress(path.read_bytes())).hexdigest() == ETTH1_SHA256
    frame = load_bundled_ett()
    assert frame.shape == (17420, 8) and frame.columns == ["date", *CHANNELS]
    licence = (path.parent / "ETTh1.LICENSE.txt").read_text()
    assert "CC BY-ND 4.0" in licence and "Zhou" in licence and ETTH1_SHA256 in licence


@needs_shared
def test_bundled_ett_matches_shared_file():
    assert load_bundled_ett().equals(load_ett(ETTH1))


def test_bundled_dna_sample_is_balanced_and_upper_case():
    ids, seqs, labels = load_bundled_dna()
    assert len(seqs) == 400
    assert labels.count("promoter") == 200 and labels.count("background") == 200
    assert all(len(s) == 81 and set(s) <= set("ACGT") for s in seqs)
    assert ids[0] == "dna_promoters_sample.tsv:2"
    licence = (bundled_dna_path().parent / "dna_promoters_sample.LICENSE.txt").read_text()
    assert "MIT License" in licence and "Daryl Hern" in licence


@needs_shared
def test_bundled_dna_sample_comes_from_the_ecoli_files():
    from titans_ts.datasets import read_fasta

    positives = {s.upper() for s in read_fasta(ECOLI / "positive.fa").seqs}
    negatives = set(read_fasta(ECOLI / "negative.fa").seqs)
    _, seqs, labels = load_bundled_dna()
    for seq, label in zip(seqs, labels):
        assert seq in (positives if label == "promoter" else negatives)
    licence = (bundled_dna_path().parent / "dna_promoters_sample.LICENSE.txt").read_text()
    assert (ECOLI / "LICENSE").read_text().strip() in licence


# --- import boundary -------------------------------------------------------------------------------

def test_datasets_imports_only_polars_numpy_biopython_and_stdlib():
    allowed = {"polars", "numpy", "Bio", "__future__"} | set(sys.stdlib_module_names)
    for module in sorted((REPO / "datasets").glob("*.py")):
        for node in ast.walk(ast.parse(module.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module]
            else:
                continue
            for name in names:
                assert name.split(".")[0] in allowed, f"{module.name} imports {name}"
