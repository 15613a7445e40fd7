"""A panel's forecasts and backtests in tasks of series, run in this process or spread over Dask workers.

The series of a long panel (`id_col`) are split into tasks of `SERIES_PER_TASK`; each task runs the
fitted forecaster on its series alone (one batched pass) and returns their rows. With a Dask client
(`--workers N`, `--scheduler ADDRESS`, or a `dask.distributed.Client` of your own) the tasks go to the
workers through `titans_ts.distributed.ordered_map`, each with a copy of the forecaster that holds its own
series' streams (sent as Dask sends any task, between the processes of one cluster), and the rows come
back in task order. A series' forecasts do not depend on which other
series share its batch, so the result is the frame one process gives, row for row; a worker that dies has
its tasks rerun by Dask, and no row is lost or repeated.
"""
from __future__ import annotations

import copy
import functools
from collections.abc import Iterator
from typing import Any

import polars as pl
from sklearn.utils.validation import check_is_fitted

from titans_ts.distributed import batched, ordered_map

from .forecaster import TitansForecaster

SERIES_PER_TASK = 64


def alone(f: TitansForecaster, keys: list) -> TitansForecaster:
    """A shallow copy of `f` that holds the streams of the series `keys` only (sharing the network)."""
    g = copy.copy(f)
    g.streams_ = f.streams_.subset(keys)
    return g


def _tasks(f: TitansForecaster, keys: list) -> Iterator[tuple[list, TitansForecaster]]:
    """(keys, forecaster holding those series' streams only) per task of `SERIES_PER_TASK` series: a series'
    memory state is far larger than the network, so a worker receives the states of its own series only."""
    if f.like_.id_col is None:
        yield keys, f
        return
    for task in batched(keys, SERIES_PER_TASK):
        yield task, alone(f, task)


def _rows_of(y, id_col: str | None, keys: list):
    """The rows of `y` (polars or pandas) that belong to the series `keys` (all of them without an id)."""
    if id_col is None:
        return y
    if isinstance(y, pl.DataFrame):
        return y.filter(pl.col(id_col).is_in(keys))
    return y[y[id_col].isin(keys)]


def backtest_part(task: tuple, start: int = 0, stride: int | None = None, memorize: bool = True) -> pl.DataFrame:
    """`TitansForecaster.backtest` of one task `(y_part, model)`."""
    y, model = task
    return model.backtest(y, start=start, stride=stride, memorize=memorize)


def backtest(f: TitansForecaster, y, start: int = 0, stride: int | None = None, memorize: bool = True,
             client: Any = None) -> pl.DataFrame:
    """`f.backtest(y, start, stride, memorize)` with the series of `y` in tasks, spread over the workers of
    a Dask `client` (None: in this process); the same frame, row for row. Called as
    `f.backtest(y, client=client)`."""
    check_is_fitted(f, "net_")
    id_col = f.like_.id_col
    if id_col is None:
        keys = [None]
    else:
        if not isinstance(y, pl.DataFrame) and type(y).__module__.split(".")[0] != "pandas":
            raise TypeError(f"y must be a polars or pandas frame with the column {id_col!r}, got {type(y).__name__}")
        if id_col not in y.columns:
            raise ValueError(f"y has no column {id_col!r}")
        keys = list(dict.fromkeys(y[id_col].to_list()))
        unknown = [k for k in keys if k not in f.streams_.rows]
        if unknown:
            raise ValueError(f"y holds series the forecaster was not fitted on: {unknown[:5]}")
    parts = ((_rows_of(y, id_col, task), model) for task, model in _tasks(f, keys))
    run = functools.partial(backtest_part, start=start, stride=stride, memorize=memorize)
    frames = list(ordered_map(run, parts, client))
    return pl.concat(frames).sort("series", "origin", "channel", nulls_last=False, maintain_order=True)


def forecast_part(task: tuple, coverage: float = 0.9) -> pl.DataFrame:
    """The next `horizon` steps of one task's `(keys, model)`: the forecast and its `<column>_lower` and
    `<column>_upper` interval."""
    f = task[1]
    point = f.predict()
    lo, hi = f.predict_interval(coverage)
    values = f.columns_
    return point.with_columns(*[lo[c].alias(f"{c}_lower") for c in values], *[hi[c].alias(f"{c}_upper") for c in values])


def forecast(f: TitansForecaster, coverage: float = 0.9, client: Any = None) -> pl.DataFrame:
    """Every fitted series' next `horizon` steps with `coverage` intervals (a polars frame: id and time
    columns, then `<column>`, `<column>_lower`, `<column>_upper`), in tasks of series spread over the
    workers of a Dask `client` (None: in this process). Needs a forecaster fitted on a polars frame."""
    check_is_fitted(f, "net_")
    if f.like_.kind != "polars":
        raise TypeError(f"forecast needs a forecaster fitted on a polars frame, this one was fitted on {f.like_.kind}")
    run = functools.partial(forecast_part, coverage=coverage)
    return pl.concat(list(ordered_map(run, _tasks(f, f.streams_.keys), client)))
