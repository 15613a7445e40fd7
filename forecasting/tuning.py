"""Optuna search over TitansForecaster settings: TPE sampling, pruning on per-epoch validation loss,
and a storage (SQLite URL or journal file) that several processes can share; trials run in this process
or at once on the workers of a Dask client."""
from __future__ import annotations

import functools
import os
import warnings
from typing import Any

import lightning.pytorch as pl
import optuna

from titans_ts.config import VARIANTS
from titans_ts.distributed import ordered_map

from .forecaster import TitansForecaster


class PruneOnValidation(pl.Callback):
    """Report each epoch's validation loss to the trial; stop the trial when the pruner says so."""

    def __init__(self, trial: optuna.Trial):
        self.trial = trial

    def on_validation_epoch_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        loss = trainer.callback_metrics.get("val_loss")
        if trainer.sanity_checking or loss is None:
            return
        self.trial.report(float(loss), trainer.current_epoch)
        if self.trial.should_prune():
            raise optuna.TrialPruned(f"validation loss {float(loss):.4f} at epoch {trainer.current_epoch}")


def storage_for(storage: str | None):
    """None (in memory), a database URL (sqlite:///study.db) or a journal file path (*.log, *.journal); an
    Optuna storage object (e.g. `DaskStorage`) as it is."""
    if not isinstance(storage, str) or "://" in storage:
        return storage
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    return JournalStorage(JournalFileBackend(storage))


def suggest(trial: optuna.Trial) -> dict:
    """The search space: the Titans variant and memory, the width and the learning rate."""
    return dict(variant=trial.suggest_categorical("variant", list(VARIANTS)),
                d_model=trial.suggest_categorical("d_model", [16, 32, 64]),
                n_layers=trial.suggest_int("n_layers", 1, 3),
                chunk_size=trial.suggest_categorical("chunk_size", [8, 16, 32]),
                memory_depth=trial.suggest_int("memory_depth", 1, 2),
                lr=trial.suggest_float("lr", 1e-4, 1e-2, log=True))


def _study(storage, study_name: str, seed: int) -> optuna.Study:
    return optuna.create_study(study_name=study_name, storage=storage_for(storage), load_if_exists=True,
                               direction="minimize", sampler=optuna.samplers.TPESampler(seed=seed),
                               pruner=optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=1))


def _objective(y, settings: dict, trial: optuna.Trial) -> float:
    f = TitansForecaster(**{**suggest(trial), **settings})  # fixed settings override the search space
    f.fit(y, callbacks=(PruneOnValidation(trial),))
    return f.best_loss_


def run_trial(y, task: tuple) -> None:
    """One trial of the shared study `task = (storage, study_name, settings, seed)` on `y` (a Dask task)."""
    storage, study_name, settings, seed = task
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    _study(storage, study_name, seed).optimize(functools.partial(_objective, y, settings), n_trials=1)


def dask_storage(client: Any):
    """Optuna's storage kept by the Dask scheduler (`optuna_integration.DaskStorage`), or None where the
    installed Optuna has none."""
    try:
        from optuna_integration.dask import DaskStorage
    except ImportError:
        return None
    with warnings.catch_warnings():  # experimental in Optuna: the study it keeps is what we need
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return DaskStorage(client=client)


def tune_forecaster(y, horizon: int, lookback: int = 96, n_trials: int = 20, storage: str | None = None,
                    study_name: str = "titans-ts", max_epochs: int = 10, time_col: str | None = None,
                    seed: int = 0, client: Any = None, **fixed) -> optuna.Study:
    """Minimise the validation loss of `TitansForecaster(horizon, lookback, ...)` fitted on `y`.

    Workers started with the same `storage` and `study_name` share one study. `fixed` settings are
    passed to every trial unchanged (e.g. `batch_size=32`). With a `dask.distributed.Client`, the trials
    run on its workers at once (`y` sent to each worker once), each with its own sampler seed, sharing the
    study through `storage` (a database URL, or a journal file every worker reaches) or, without one,
    through the scheduler (`optuna_integration.DaskStorage`, where installed).
    """
    if isinstance(n_trials, bool) or not isinstance(n_trials, int) or n_trials < 1:
        raise ValueError(f"n_trials must be an integer >= 1, got {n_trials!r}")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    settings = dict(horizon=horizon, lookback=lookback, max_epochs=max_epochs, time_col=time_col,
                    random_state=seed, **fixed)
    if client is None:
        study = _study(storage, study_name, seed)
        study.optimize(functools.partial(_objective, y, settings), n_trials=n_trials)
        return study
    if isinstance(storage, str) and "://" not in storage:
        storage = os.path.abspath(storage)  # a journal file: the same one from every worker's directory
    shared = storage if storage is not None else dask_storage(client)
    if shared is None:
        raise ValueError("tuning on Dask workers shares one study: give a storage every worker reaches (a database "
                         "URL, or a journal file on a shared disk), or install optuna-integration for DaskStorage")
    _study(shared, study_name, seed)  # created once, before the workers load it
    tasks = [(shared, study_name, settings, seed + i) for i in range(n_trials)]
    for _ in ordered_map(run_trial, tasks, client, y):
        pass
    return _study(shared, study_name, seed)
