"""What the forecaster accepts and returns: numpy arrays, pandas or polars frames, wide or long (panel).

Input is turned into `Panel`: float64 values per series, column names, time stamps where there are
any, and the kind of object it came as, so that forecasts go back out as the same kind.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import polars as pl


@dataclass
class Panel:
    """One or more series with the same columns; `values[i]` is (T_i, C), `times[i]` (T_i,) or None."""

    values: dict[object, np.ndarray]
    times: dict[object, np.ndarray | None]
    columns: list[str]
    kind: str  # "numpy1d", "numpy2d", "pandas", "polars"
    time_col: str | None = None
    id_col: str | None = None
    meta: dict = field(default_factory=dict)  # pandas: whether times were the index


_GROUP = "__titans_ts_series__"  # a working column: each row's series, numbered by first appearance


def _is_pandas(y) -> bool:
    return type(y).__module__.split(".")[0] == "pandas"


def to_panel(y, time_col: str | None = None, id_col: str | None = None, what: str = "y",
             missing: bool = False) -> Panel:
    """Validate and convert input; errors name the column or value at fault. With `missing`, a value not
    observed (NaN, or null in a frame) is kept as NaN; infinities are errors all the same."""
    if isinstance(y, (list, tuple)):
        y = np.asarray(y)
    if isinstance(y, np.ndarray):
        if id_col is not None or time_col is not None:
            raise ValueError(f"{what}: time_col / id_col need a pandas or polars frame, got a numpy array")
        if y.ndim not in (1, 2):
            raise ValueError(f"{what} must be 1-D (T,) or 2-D (T, C), got shape {y.shape}")
        if not (np.issubdtype(y.dtype, np.number) or y.dtype == bool):
            raise ValueError(f"{what} must be numeric, got dtype {y.dtype}")
        if len(y) == 0 or y.size == 0:
            raise ValueError(f"{what} has no rows (shape {y.shape})")
        values = y.reshape(len(y), -1).astype(np.float64)
        cols = [str(i) for i in range(values.shape[1])]
        _check_finite(values, cols, what, np.array([0]), missing)
        return Panel({None: values}, {None: None}, cols, "numpy1d" if y.ndim == 1 else "numpy2d")
    meta = {}
    if _is_pandas(y):
        import pandas as pd

        if isinstance(y, pd.Series):
            y = y.to_frame(name=str(y.name) if y.name is not None else "y")
        if not isinstance(y, pd.DataFrame):
            raise TypeError(f"{what}: unsupported pandas object {type(y).__name__}")
        if isinstance(y.index, pd.DatetimeIndex) and (time_col is None or time_col not in y.columns):
            meta["index_name"] = time_col or y.index.name or "time"
            y = y.reset_index(names=meta["index_name"])
            time_col = meta["index_name"]
        frame, kind = pl.from_pandas(y), "pandas"
    elif isinstance(y, pl.Series):
        frame, kind = y.to_frame(), "polars"
    elif isinstance(y, pl.DataFrame):
        frame, kind = y, "polars"
    else:
        raise TypeError(f"{what} must be a numpy array, pandas or polars frame, got {type(y).__name__}")
    if frame.height == 0:
        raise ValueError(f"{what} has no rows")
    if time_col is None:
        temporal = [c for c, t in frame.schema.items() if t.is_temporal()]
        if len(temporal) > 1:
            raise ValueError(f"{what} has several time columns {temporal}: name one with time_col")
        time_col = temporal[0] if temporal else None
    for name in (time_col, id_col):
        if name is not None and name not in frame.columns:
            raise ValueError(f"{what} has no column {name!r}")
    cols = [c for c in frame.columns if c not in (time_col, id_col)]
    if not cols:
        raise ValueError(f"{what} has no value columns")
    for c in cols:
        if not frame.schema[c].is_numeric():
            raise ValueError(f"{what}: column {c!r} is not numeric ({frame.schema[c]})")
    # all series at once: rows grouped by series (in order of first appearance), in time order within each
    if id_col is not None:
        frame = frame.with_row_index(_GROUP).with_columns(pl.col(_GROUP).first().over(id_col))
        frame = frame.sort([_GROUP, *([time_col] if time_col else [])], maintain_order=True)
        group = frame[_GROUP].to_numpy()
        starts = np.flatnonzero(np.r_[True, group[1:] != group[:-1]])
        keys = frame[id_col].gather(starts).to_list()
    else:
        frame = frame.sort(time_col, maintain_order=True) if time_col else frame
        starts, keys = np.array([0]), [None]
    ends = np.r_[starts[1:], frame.height]
    t = None if time_col is None else frame[time_col].cast(pl.Datetime("ns")).to_numpy()
    if t is not None:
        later = np.diff(t) > np.timedelta64(0)
        later[starts[1:] - 1] = True  # from one series to the next
        if not later.all():
            key = keys[np.searchsorted(starts, np.argmin(later), side="right") - 1]
            raise ValueError(f"{what}: time stamps in {time_col!r} repeat" + (f" for {id_col}={key!r}" if id_col else ""))
    v = frame.select(cols).cast(pl.Float64).to_numpy()
    _check_finite(v, cols, what, starts, missing)
    values = {k: v[a:b] for k, a, b in zip(keys, starts, ends)}
    times = {k: None if t is None else t[a:b] for k, a, b in zip(keys, starts, ends)}
    return Panel(values, times, [str(c) for c in cols], kind, time_col, id_col, meta)


def _check_finite(values: np.ndarray, cols: list[str], what: str, starts: np.ndarray, missing: bool) -> None:
    """ValueError at the first value that is not finite (with `missing`: that is infinite), its row counted
    within its series (which start at rows `starts`)."""
    bad = np.isinf(values) if missing else ~np.isfinite(values)
    if bad.any():
        at, col = np.argwhere(bad)[0]
        row = at - starts[np.searchsorted(starts, at, side="right") - 1]
        allowed = "finite or missing (NaN)" if missing else "finite (fill or drop missing values first)"
        raise ValueError(f"{what}: column {cols[col]!r} holds {values[at, col]} at row {row}: values must be {allowed}")


def step_of(times: np.ndarray | None) -> np.timedelta64 | None:
    """The series' sampling interval: the most common gap between consecutive time stamps."""
    if times is None or len(times) < 2:
        return None
    gaps, counts = np.unique(np.diff(times), return_counts=True)
    return gaps[counts.argmax()]


def _frame(keys: list, times: np.ndarray | None, data: dict[str, np.ndarray], like: Panel) -> pl.DataFrame:
    """One polars frame of S series' H rows each: the id and time columns `like` has, then `data` (S·H,)."""
    H = len(next(iter(data.values()))) // len(keys)
    cols = {}
    if like.id_col is not None:
        cols[like.id_col] = [k for k in keys for _ in range(H)]
    if like.time_col is not None:
        cols[like.time_col] = times.ravel()
    return pl.DataFrame({**cols, **data})


def _to_pandas(frame: pl.DataFrame, like: Panel):
    """A polars frame as pandas, its time column back as the index where the input had it there."""
    out = frame.to_pandas()
    if "index_name" in like.meta:
        out = out.set_index(like.meta["index_name"])
    return out


def from_values(keys: list, values: np.ndarray, times: np.ndarray | None, like: Panel, suffix: str = "") -> object:
    """Forecasts of every series (S, H, C) (at time stamps (S, H), or None) as the kind of object the
    series came in."""
    if like.kind.startswith("numpy"):
        v = values[0]
        return v[:, 0] if like.kind == "numpy1d" and v.shape[1] == 1 else v
    frame = _frame(keys, times, {f"{c}{suffix}": values[..., i].ravel() for i, c in enumerate(like.columns)}, like)
    return frame if like.kind == "polars" else _to_pandas(frame, like)


def quantile_frame(keys: list, values: np.ndarray, levels: list[float], times: np.ndarray | None, like: Panel):
    """Quantile forecasts (L, S, H, C) of a frame input: polars, `<column>_q<level>` columns after the id
    and time columns; pandas, (column, quantile) MultiIndex columns (as sktime) indexed by id and time."""
    data = {f"{c}_q{q:g}": values[j, ..., i].ravel() for i, c in enumerate(like.columns) for j, q in enumerate(levels)}
    frame = _frame(keys, times, data, like)
    if like.kind == "polars":
        return frame
    import pandas as pd

    index = [c for c in (like.id_col, like.time_col) if c is not None]  # id and time go to the index
    out = frame.to_pandas().set_index(index) if index else frame.to_pandas()
    out.columns = pd.MultiIndex.from_tuples([(c, q) for c in like.columns for q in levels], names=[None, "quantile"])
    return out
