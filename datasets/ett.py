"""ETT-format CSV files (`date,<channel>...`) and the split protocols published results use.

`load_ett` reads and validates a file; `ett_borders` gives the Informer / Time-Series-Library row
ranges, `ett_online_borders` the FSNet / OneNet online-learning ones; `ett_splits` cuts a file into
train / validation / test arrays scaled by statistics of the training rows only (no test leakage).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import polars as pl

#: rows in one 30-day "month" of the protocol, per sampling frequency
ROWS_PER_MONTH = {"h": 30 * 24, "15min": 30 * 24 * 4}


class Borders(NamedTuple):
    """Half-open row ranges `(start, end)` of the three splits (for the online protocol `test` is the stream)."""

    train: tuple[int, int]
    val: tuple[int, int]
    test: tuple[int, int]


@dataclass(frozen=True)
class ETTSplits:
    """Train / validation / test arrays of an ETT-format series, each (rows, channels) float64.

    `mean` / `std` are the StandardScaler statistics of the training rows (population std; a constant
    channel gets std 1). When `scaled` the arrays are `(x - mean) / std`, else the raw values. The
    validation and test arrays start `lookback` rows before their border so the first window has history.
    `*_dates` are the matching numpy datetime64 timestamps, `borders` the row ranges used.
    """

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    scaled: bool
    columns: tuple[str, ...]
    train_dates: np.ndarray
    val_dates: np.ndarray
    test_dates: np.ndarray
    borders: Borders


def load_ett(path: str | os.PathLike[str]) -> pl.DataFrame:
    """Read an ETT-format CSV (plain or gzip) into a frame: a datetime `date` column, float64 channels.

    Raises ValueError naming the column and line for a missing `date` column, an unparseable date, a
    non-numeric, missing or non-finite value, or dates that do not strictly increase.
    """
    source = os.fspath(path)
    try:
        raw = pl.read_csv(source, infer_schema=False)
    except pl.exceptions.NoDataError as exc:
        raise ValueError(f"{source}: the file is empty") from exc
    except pl.exceptions.PolarsError as exc:
        raise ValueError(f"{source}: not a readable CSV file ({exc})") from exc
    _require_date_and_channels(raw.columns, source)
    dates = raw["date"].str.strip_chars().str.to_datetime(strict=False)
    _raise_at_first(dates.is_null() & raw["date"].is_not_null(), raw["date"], source, "date",
                    "{value!r} is not a date", first_line=2)
    columns = [dates]
    for name in raw.columns:
        if name != "date":
            text = raw[name].str.strip_chars()
            values = text.cast(pl.Float64, strict=False)
            _raise_at_first(values.is_null() & text.is_not_null(), text, source, name, "{value!r} is not a number",
                            first_line=2)
            columns.append(values)
    return _validate(pl.DataFrame(columns), source, first_line=2)


def ett_borders(n_rows: int, lookback: int, freq: str = "h") -> Borders:
    """Row ranges of the Informer / Time-Series-Library protocol (12 / 4 / 4 months of 30 days).

    Hourly: train [0, 8640), validation [8640 - lookback, 11520), test [11520 - lookback, 14400);
    15-minute data: every border times 4. Rows after the test border are unused.
    """
    month = _rows_per_month(freq)
    return _borders(n_rows, lookback, (12 * month, 16 * month, 20 * month), "standard", freq)


def ett_online_borders(n_rows: int, lookback: int, freq: str = "h") -> Borders:
    """Row ranges of the FSNet / OneNet online protocol (4 / 1 / 15 months of 30 days).

    Hourly: warm-up train [0, 2880), validation [2880 - lookback, 3600), online stream
    [3600 - lookback, 14400) in `Borders.test`; with lookback 0 the stream starts at row 3600.
    15-minute data: every border times 4 (FSNet's code reuses the hourly borders there).
    """
    month = _rows_per_month(freq)
    return _borders(n_rows, lookback, (4 * month, 5 * month, 20 * month), "online", freq)


def ett_splits(
    path_or_frame: str | os.PathLike[str] | pl.DataFrame,
    lookback: int = 96,
    scale: bool = True,
    freq: str | None = None,
    protocol: str = "standard",
) -> ETTSplits:
    """Cut an ETT-format file or frame into scaled train / validation / test arrays.

    `freq` ("h" or "15min") is inferred from the dates when None; `protocol` is "standard"
    (`ett_borders`) or "online" (`ett_online_borders`). The scaler sees the training rows only.
    """
    if isinstance(path_or_frame, pl.DataFrame):
        _require_date_and_channels(path_or_frame.columns, "frame")
        frame = _validate(path_or_frame, "frame", first_line=None)
    else:
        frame = load_ett(path_or_frame)
    dates = frame["date"].to_numpy()
    freq = _infer_freq(dates) if freq is None else freq
    if protocol == "standard":
        borders = ett_borders(frame.height, lookback, freq)
    elif protocol == "online":
        borders = ett_online_borders(frame.height, lookback, freq)
    else:
        raise ValueError(f"protocol must be 'standard' or 'online', got {protocol!r}")
    values = frame.drop("date").to_numpy()
    train = values[slice(*borders.train)]
    mean = train.mean(axis=0)
    std = train.std(axis=0)
    std = np.where(std > 0.0, std, 1.0)
    if scale:
        values = (values - mean) / std
    return ETTSplits(
        train=values[slice(*borders.train)], val=values[slice(*borders.val)], test=values[slice(*borders.test)],
        mean=mean, std=std, scaled=scale, columns=tuple(c for c in frame.columns if c != "date"),
        train_dates=dates[slice(*borders.train)], val_dates=dates[slice(*borders.val)],
        test_dates=dates[slice(*borders.test)], borders=borders,
    )


def _require_date_and_channels(columns: list[str], source: str) -> None:
    if "date" not in columns:
        raise ValueError(f"{source}: no 'date' column (columns: {columns}); an ETT-format file is date,<channels...>")
    if len(columns) < 2:
        raise ValueError(f"{source}: no channel columns besides 'date'")


def _validate(frame: pl.DataFrame, source: str, first_line: int | None) -> pl.DataFrame:
    """Check a frame and return it with float64 channels: temporal `date`, numeric channels without
    missing or non-finite values, strictly increasing dates."""
    dates = frame["date"]
    if not dates.dtype.is_temporal():
        raise ValueError(f"{source}: column 'date' has dtype {dates.dtype}, expected a datetime")
    _raise_at_first(dates.is_null(), dates, source, "date", "missing value", first_line)
    not_after = (dates.diff().dt.total_microseconds() <= 0).fill_null(False)
    _raise_at_first(not_after, dates, source, "date", "{value} does not come after the previous date",
                    first_line)
    for name in frame.columns:
        if name != "date":
            column = frame[name]
            if not column.dtype.is_numeric():
                raise ValueError(f"{source}: column {name!r} has dtype {column.dtype}, expected numbers")
            _raise_at_first(column.is_null(), column, source, name, "missing value", first_line)
            _raise_at_first(~column.is_finite(), column, source, name, "{value} is not finite", first_line)
    return frame.with_columns(pl.exclude("date").cast(pl.Float64))


def _raise_at_first(bad: pl.Series, values: pl.Series, source: str, column: str, problem: str,
                    first_line: int | None) -> None:
    """Raise a ValueError at the first True of `bad` (file line when `first_line` is set, else row);
    `problem` may name the offending value as `{value}`."""
    if bad.any():
        row = int(bad.arg_true()[0])
        where = f"line {row + first_line}" if first_line is not None else f"row {row}"
        raise ValueError(f"{source}: column {column!r} {where}: {problem.format(value=values[row])}")


def _rows_per_month(freq: str) -> int:
    if freq not in ROWS_PER_MONTH:
        raise ValueError(f"freq must be one of {sorted(ROWS_PER_MONTH)}, got {freq!r}")
    return ROWS_PER_MONTH[freq]


def _borders(n_rows: int, lookback: int, ends: tuple[int, int, int], protocol: str, freq: str) -> Borders:
    for name, value in (("n_rows", n_rows), ("lookback", lookback)):
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool):
            raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    train_end, val_end, test_end = ends
    if n_rows < test_end:
        raise ValueError(f"the {protocol} ETT protocol ({freq}) needs at least {test_end} rows, got {n_rows}")
    if not 0 <= lookback <= train_end:
        raise ValueError(f"lookback must be in [0, {train_end}], got {lookback}")
    return Borders((0, train_end), (train_end - lookback, val_end), (val_end - lookback, test_end))


def _infer_freq(dates: np.ndarray) -> str:
    """'h' or '15min' from the median step of the dates; anything else must be named by the caller."""
    step = np.median(np.diff(dates[:1000]).astype("timedelta64[s]").astype(np.int64))
    for freq, seconds in (("h", 3600), ("15min", 900)):
        if step == seconds:
            return freq
    raise ValueError(f"cannot infer the ETT protocol frequency from a median step of {step} s; "
                     "pass freq='h' or '15min'")
