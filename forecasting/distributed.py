"""A panel's forecasts and backtests in tasks of series, run in this process or spread over Dask workers.

The series of a long panel (`id_col`) are split into tasks of `SERIES_PER_TASK`; each task runs the
fitted forecaster on its series alone (one batched pass) and returns their rows. With a Dask client
(`--workers N`, `--scheduler ADDRESS`, or a `dask.distributed.Client` of your own) the tasks go to the
workers through `titans_ts.distributed.ordered_map`: the forecaster's file is sent to every worker once and
loaded there once, and the rows come back in task order. A series' forecasts do not depend on which other
series share its batch, so the result is the frame one process gives, row for row; a worker that dies has
its tasks rerun by Dask, and no row is lost or repeated.
"""
from __future__ import annotations

import copy
import functools
import os
import tempfile
from typing import Any

import polars as pl
from sklearn.utils.validation import check_is_fitted

from titans_ts.distributed import batched, ordered_map

from .forecaster import TitansForecaster

SERIES_PER_TASK = 64


def to_bytes(f: TitansForecaster) -> bytes:
    """The forecaster's file (`TitansForecaster.save`) as bytes, to send to workers."""
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "model.titans")
        f.save(path)
        with open(path, "rb") as fh:
            return fh.read()


@functools.lru_cache(maxsize=2)
def _from_bytes(blob: bytes) -> TitansForecaster:
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "model.titans")
        with open(path, "wb") as fh:
            fh.write(blob)
        return TitansForecaster.load(path)


def model_of(shared: TitansForecaster | bytes) -> TitansForecaster:
    """The forecaster itself (in this process) or the one in its file's bytes, loaded once per process."""
    return shared if isinstance(shared, TitansForecaster) else _from_bytes(shared)


def _rows_of(y, id_col: str, keys: list):
    """The rows of `y` (polars or pandas) that belong to the series `keys`."""
    if isinstance(y, pl.DataFrame):
        return y.filter(pl.col(id_col).is_in(keys))
    return y[y[id_col].isin(keys)]


def _tasks(f: TitansForecaster, keys: list) -> list[list]:
    """The series keys in tasks of `SERIES_PER_TASK` (all of them in one for a model of one series)."""
    return list(batched(keys, SERIES_PER_TASK if f.like_.id_col is not None else max(1, len(keys))))


def _shared(f: TitansForecaster, client: Any) -> TitansForecaster | bytes:
    return f if client is None else to_bytes(f)


def backtest_part(shared: TitansForecaster | bytes, task: tuple, start: int = 0, stride: int | None = None,
                  memorize: bool = True) -> pl.DataFrame:
    """`TitansForecaster.backtest` of one task's rows `task = (y_part,)`."""
    return model_of(shared).backtest(task[0], start=start, stride=stride, memorize=memorize)


def backtest(f: TitansForecaster, y, start: int = 0, stride: int | None = None, memorize: bool = True,
             client: Any = None) -> pl.DataFrame:
    """`f.backtest(y, start, stride, memorize)` with the series of `y` in tasks, spread over the workers of
    a Dask `client` (None: in this process); the same frame, row for row. Called as
    `f.backtest(y, client=client)`."""
    check_is_fitted(f, "net_")
    id_col = f.like_.id_col
    if id_col is None:
        parts = [(y,)]
    else:
        if not isinstance(y, pl.DataFrame) and type(y).__module__.split(".")[0] != "pandas":
            raise TypeError(f"y must be a polars or pandas frame with the column {id_col!r}, got {type(y).__name__}")
        if id_col not in y.columns:
            raise ValueError(f"y has no column {id_col!r}")
        keys = list(dict.fromkeys(y[id_col].to_list()))
        parts = [(_rows_of(y, id_col, task),) for task in _tasks(f, keys)]
    run = functools.partial(backtest_part, start=start, stride=stride, memorize=memorize)
    frames = list(ordered_map(run, parts, client, _shared(f, client)))
    return pl.concat(frames).sort("series", "origin", "channel", nulls_last=False, maintain_order=True)


def forecast_part(shared: TitansForecaster | bytes, keys: list, coverage: float = 0.9) -> pl.DataFrame:
    """The next `horizon` steps of the series `keys`: the forecast and its `<column>_lower`/`_upper` interval."""
    f = model_of(shared)
    if f.like_.id_col is not None:  # these series alone
        f = _alone(f, keys)
    point = pl.DataFrame(f.predict())
    lo, hi = (pl.DataFrame(x) for x in f.predict_interval(coverage))
    values = [c for c in point.columns if c not in (f.like_.time_col, f.like_.id_col)]
    return point.with_columns(*[lo[c].alias(f"{c}_lower") for c in values], *[hi[c].alias(f"{c}_upper") for c in values])


def _alone(f: TitansForecaster, keys: list) -> TitansForecaster:
    """A shallow copy of `f` that holds the streams of `keys` only (sharing the network)."""
    g = copy.copy(f)
    g.streams_ = f.streams_.subset(keys)
    return g


def forecast(f: TitansForecaster, coverage: float = 0.9, client: Any = None) -> pl.DataFrame:
    """Every fitted series' next `horizon` steps with `coverage` intervals (a polars frame: id and time
    columns, then `<column>`, `<column>_lower`, `<column>_upper`), in tasks of series spread over the
    workers of a Dask `client` (None: in this process)."""
    check_is_fitted(f, "net_")
    if f.like_.kind != "polars":
        raise TypeError(f"forecast needs a forecaster fitted on a polars frame, this one was fitted on {f.like_.kind}")
    run = functools.partial(forecast_part, coverage=coverage)
    return pl.concat(list(ordered_map(run, _tasks(f, f.streams_.keys), client, _shared(f, client))))
