"""M4 competition files (Makridakis et al. 2020) in their wide layout.

A file holds one series per row: its id (`V1`, e.g. `W1`), then its values, shorter rows padded with
empty fields. `read_m4` reads a training file and, when given, its test file (the next `horizon` values of
every series, in the same order of ids). The competition's metrics are `titans_ts.forecasting.metrics`.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import polars as pl

#: the competition's horizon and seasonality per frequency
M4_HORIZON = {"Yearly": 6, "Quarterly": 8, "Monthly": 18, "Weekly": 13, "Daily": 14, "Hourly": 48}
M4_SEASONALITY = {"Yearly": 1, "Quarterly": 4, "Monthly": 12, "Weekly": 1, "Daily": 1, "Hourly": 24}


@dataclass(frozen=True)
class M4Series:
    """Series of one M4 file: `ids`, `train` (one float64 array each, its own length) and `test` (an array
    (S, horizon), or None without a test file)."""

    ids: list[str]
    train: list[np.ndarray]
    test: np.ndarray | None

    def long(self, held: int = 0) -> pl.DataFrame:
        """The training rows as a long frame (`id`, `value`), each series less its last `held` values (a
        horizon held back for validation)."""
        parts = [v[: len(v) - held] for v in self.train]
        return pl.DataFrame({"id": np.repeat(self.ids, [len(v) for v in parts]), "value": np.concatenate(parts)})


def _rows(path: str | os.PathLike[str]) -> tuple[list[str], list[np.ndarray]]:
    source = os.fspath(path)
    try:
        frame = pl.read_csv(source, infer_schema=False)
    except (pl.exceptions.PolarsError, OSError) as err:
        raise ValueError(f"{source}: not a readable M4 CSV ({err})") from None
    if frame.width < 2 or frame.is_empty():
        raise ValueError(f"{source}: no series (an M4 file has an id column and at least one value per row)")
    ids = frame[:, 0].to_list()
    try:
        values = frame[:, 1:].select(pl.all().str.strip_chars().replace("", None).cast(pl.Float64)).to_numpy()
    except pl.exceptions.PolarsError:
        raise ValueError(f"{source}: a value that is not a number") from None
    series = []
    for i, row in enumerate(values):
        n = int(np.flatnonzero(~np.isnan(row))[-1]) + 1 if (~np.isnan(row)).any() else 0
        if n == 0 or np.isnan(row[:n]).any():
            raise ValueError(f"{source}: series {ids[i]!r} (line {i + 2}) has {'no values' if n == 0 else 'a gap'}")
        series.append(row[:n])
    return ids, series


def read_m4(train: str | os.PathLike[str], test: str | os.PathLike[str] | None = None) -> M4Series:
    """An M4 training file and, optionally, its test file (checked to hold the same ids, each a whole horizon)."""
    ids, series = _rows(train)
    if test is None:
        return M4Series(ids, series, None)
    test_ids, future = _rows(test)
    if test_ids != ids:
        raise ValueError(f"{os.fspath(test)}: its ids are not those of {os.fspath(train)}, in the same order")
    if len({len(v) for v in future}) != 1:
        raise ValueError(f"{os.fspath(test)}: the series' horizons differ")
    return M4Series(ids, series, np.stack(future))

