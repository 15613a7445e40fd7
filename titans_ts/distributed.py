"""Work spread over Dask, shared by both command lines: a client for `--workers N` / `--scheduler ADDRESS`,
and `ordered_map`, which runs tasks here in turn or on the workers and hands the results back in order.

With a client, at most a few tasks per worker are in flight, so the input is never held whole in one
process. Dask reruns the tasks of a worker that dies; since results are taken from the tasks in order,
none is lost or repeated. Nothing here imports Dask until a client is asked for (the `dask` extra).
"""
from __future__ import annotations

import contextlib
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from itertools import islice
from typing import Any

from titans_ts.config import check_positive_int

TASKS_PER_WORKER = 2  # in flight per worker: one running, one waiting


def batched(items: Iterable, size: int) -> Iterator[list]:
    """Lists of `size` consecutive items (the last may be shorter)."""
    it = iter(items)
    while batch := list(islice(it, size)):
        yield batch


@contextlib.contextmanager
def dask_client(workers: int | None = None, scheduler: str | None = None) -> Iterator[Any]:
    """A Dask client on a new local cluster of `workers` processes or on the scheduler at `scheduler`;
    None when neither is given (work stays in this process). Needs the `dask` extra."""
    if workers is None and scheduler is None:
        yield None
        return
    if workers is not None and scheduler is not None:
        raise ValueError("give --workers or --scheduler, not both")
    if workers is not None:
        check_positive_int("--workers", workers)
    try:
        from dask.distributed import Client, LocalCluster
    except ImportError:
        raise ValueError("--workers and --scheduler need Dask: pip install 'titans-ts[dask]'") from None
    if scheduler is not None:
        with Client(scheduler) as client:
            yield client
        return
    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster, \
            Client(cluster) as client:
        yield client


def n_workers(client: Any) -> int:
    """How many workers the client's cluster has now (at least 1)."""
    return max(1, len(client.scheduler_info()["workers"]))


def ordered_map(fn: Callable, tasks: Iterable, client: Any = None, shared: Any = None) -> Iterator[Any]:
    """fn(task) for every task, in order (fn(shared, task) when `shared` is given): here in turn, or (with a
    Dask client) on its workers with at most `TASKS_PER_WORKER` tasks per worker submitted ahead of the one
    being collected. `shared` (e.g. a model's bytes) is sent to every worker once, not with each task."""
    args = () if shared is None else (shared,)
    if client is None:
        yield from (fn(*args, task) for task in tasks)
        return
    if args:
        args = (client.scatter(shared, broadcast=True, hash=False),)
    ahead = TASKS_PER_WORKER * n_workers(client)
    pending: deque = deque()
    for task in tasks:
        pending.append(client.submit(fn, *args, task, pure=False))
        if len(pending) >= ahead:
            yield pending.popleft().result()
    while pending:
        yield pending.popleft().result()
