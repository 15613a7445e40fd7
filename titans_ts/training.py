"""The one training loop of titans-ts, on Lightning: forecasting and genomics both fit through `fit`.

The caller supplies a model, data loaders and `step(model, batch) -> loss` (None skips the batch).
Lightning brings early stopping on validation loss, gradient clipping, seeded determinism, a progress
bar and the devices: `accelerator`, `devices`, `strategy` and `precision` are Lightning's Trainer
arguments, under the same names and spellings in every estimator (`titans_ts.devices`).

Several processes (`strategy="ddp"`, devices > 1 or several nodes): the losses are averaged over the
processes before they are logged, so every process keeps the same best epoch and stops at the same
one; a step may return None only where it does so on every process alike. A step that leaves some
parameters out of a batch's loss (a memory state carried from the last batch stands in for the initial
memory weights) says so (`unused_parameters`), and DDP then looks for them at every step. Where a launcher
(torchrun, SLURM, MPI) started the processes, "ddp" is Lightning's DDP as is, on as many nodes as the
launcher started processes on (`devices` per node): every process runs the caller's script and ends
with the trained model. Otherwise, in a plain Python process (a script, a notebook, a test),
Lightning's "ddp" would start the caller's command line again in each new process; instead the
processes are forked from the caller where the platform forks (spawned elsewhere), rank 0's trained
weights and the record of the fit come back to the caller's model, and the caller goes on alone.
Forking needs CUDA not yet initialised in the caller (Lightning says so if it is).
"""
from __future__ import annotations

import contextlib
import copy
import logging
import math
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import lightning.pytorch as pl
import torch
import torch.multiprocessing as mp
from lightning.pytorch.strategies import DDPStrategy, StrategyRegistry
from torch import Tensor, nn

from titans_ts.devices import DEVICE_DEFAULTS

Step = Callable[[nn.Module, Any], "Tensor | None"]  # the batch's loss, or None to skip it


@dataclass
class FitResult:
    """What a fit did: the best validation loss (train loss without validation) and per-epoch history."""

    best_loss: float
    epochs: int
    history: list[dict[str, float]] = field(default_factory=list)


class _Task(pl.LightningModule):
    def __init__(self, model: nn.Module, step: Step, lr: float, weight_decay: float):
        super().__init__()
        self.model, self.step, self.lr, self.weight_decay = model, step, lr, weight_decay
        self.record: dict[str, Any] = {"best": math.inf, "epochs": 0, "history": []}  # what `_KeepBest` saw

    # the record travels with the weights, so that a fit in launched processes hands it back to the caller
    def get_extra_state(self) -> dict[str, Any]:
        return self.record

    def set_extra_state(self, state: dict[str, Any]) -> None:
        self.record = state

    def training_step(self, batch: Any, batch_idx: int) -> Tensor | None:
        loss = self.step(self.model, batch)
        if loss is None:  # nothing to learn from this batch: no parameter gets a gradient, no optimizer step
            if self.trainer.world_size == 1:
                return None
            # Lightning refuses None from several processes: a loss that reaches no parameter skips alike
            return torch.zeros((), device=self.device, requires_grad=True)
        self.log("train_loss", loss, prog_bar=True, on_step=False, on_epoch=True, batch_size=_batch_size(batch),
                 sync_dist=True)  # the mean over processes: every process judges epochs alike
        return loss

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        loss = self.step(self.model, batch)
        if loss is not None:
            self.log("val_loss", loss, prog_bar=True, batch_size=_batch_size(batch), sync_dist=True)

    def configure_optimizers(self):
        return torch.optim.AdamW(self.model.parameters(), lr=self.lr, weight_decay=self.weight_decay)


def _batch_size(batch: Any) -> int:
    first = batch[0] if isinstance(batch, (tuple, list)) else batch
    return len(first)


class _KeepBest(pl.Callback):
    """Remember the weights of the best epoch (by `monitor`) in memory and restore them at the end; each
    epoch's metrics go to the task's `record`."""

    def __init__(self, monitor: str):
        self.monitor, self.state = monitor, None

    def on_validation_epoch_end(self, trainer: pl.Trainer, task: _Task) -> None:
        if trainer.sanity_checking:
            return
        self._record(trainer, task)

    def on_train_epoch_end(self, trainer: pl.Trainer, task: _Task) -> None:
        if self.monitor == "train_loss":
            self._record(trainer, task)

    def _record(self, trainer: pl.Trainer, task: _Task) -> None:
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
        if self.monitor not in metrics:
            return
        record = task.record
        record["history"].append({"epoch": trainer.current_epoch, **metrics})
        record["epochs"] = trainer.current_epoch + 1
        if metrics[self.monitor] < record["best"]:
            record["best"] = metrics[self.monitor]
            self.state = copy.deepcopy(task.model.state_dict())

    def on_fit_end(self, trainer: pl.Trainer, task: _Task) -> None:
        if self.state is not None:
            task.model.load_state_dict(self.state)


def fit(
    model: nn.Module,
    train: Iterable,
    val: Iterable | None = None,
    *,
    step: Step,
    max_epochs: int = 20,
    lr: float = 1e-3,
    weight_decay: float = 0.0,
    patience: int = 3,
    gradient_clip: float | None = 1.0,
    seed: int | None = 0,
    progress: bool = True,
    accelerator: str = DEVICE_DEFAULTS["accelerator"],
    devices: int | str | list[int] = DEVICE_DEFAULTS["devices"],
    strategy: str | Any = DEVICE_DEFAULTS["strategy"],
    precision: str = DEVICE_DEFAULTS["precision"],
    callbacks: Sequence[pl.Callback] = (),
    unused_parameters: bool = False,
    **trainer_kwargs: Any,
) -> FitResult:
    """Train `model` in place on `train` with `step`, early-stopping on `val` loss; restore the best epoch.

    Without `val` the training loss is monitored instead. `callbacks` join ours (e.g. an Optuna pruner).
    `unused_parameters`: the step may leave some parameters out of a batch's loss (see the module docstring).
    The device arguments are Lightning's (see the module docstring for "ddp"); extra keyword arguments
    go to `lightning.Trainer` (e.g. `num_nodes=2`). The model ends on the CPU.
    """
    if seed is not None:
        pl.seed_everything(seed, workers=True, verbose=False)
    monitor = "val_loss" if val is not None else "train_loss"
    callbacks = [_KeepBest(monitor), pl.callbacks.EarlyStopping(monitor, patience=patience, mode="min"), *callbacks]
    if progress:
        callbacks.append(pl.callbacks.TQDMProgressBar())
    settings = dict(max_epochs=max_epochs, accelerator=accelerator, devices=devices, gradient_clip_val=gradient_clip,
                    precision=precision, deterministic=seed is not None, callbacks=callbacks,
                    enable_progress_bar=progress, enable_checkpointing=False, logger=False,
                    enable_model_summary=False, num_sanity_val_steps=0, **trainer_kwargs)
    task = _Task(model, step, lr, weight_decay)
    with _quiet(), warnings.catch_warnings():
        # Lightning's noise that no caller can act on: the batches are built in memory, so loading them
        # in-process is deliberate; a step's None skips its batch by this loop's contract; and its tree
        # helpers call a torch API that torch has deprecated
        warnings.filterwarnings("ignore", message=".*(does not have many workers|returned `None`|treespec).*")
        trainer = _trainer(strategy, unused_parameters, **settings)
        trainer.fit(task, train, val)
    model.cpu().eval()
    record = task.record
    return FitResult(best_loss=record["best"], epochs=record["epochs"], history=record["history"])


def _trainer(strategy: str | Any, unused_parameters: bool, **settings: Any) -> pl.Trainer:
    """Lightning's Trainer, on as many nodes as a launcher started processes on (unless `num_nodes` says),
    and with "ddp" in a plain Python process forking (else spawning) its workers from the caller, where
    Lightning would run the caller's command line anew in each. With `unused_parameters`, a DDP strategy
    is Lightning's that finds the parameters a step left unused."""
    finding = f"{strategy}_find_unused_parameters_true"
    named = finding if unused_parameters and finding in StrategyRegistry else strategy
    trainer = pl.Trainer(strategy=named, **settings)
    environment = getattr(trainer.strategy, "cluster_environment", None)
    if environment is None:
        return trainer
    if environment.creates_processes_externally:
        nodes = environment.world_size() // trainer.num_devices
        if "num_nodes" in settings or nodes <= trainer.num_nodes:
            return trainer
        return pl.Trainer(strategy=named, num_nodes=nodes, **settings)
    if strategy != "ddp" or trainer.world_size == 1:
        return trainer
    start = "fork" if "fork" in mp.get_all_start_methods() else "spawn"
    return pl.Trainer(strategy=DDPStrategy(start_method=start, find_unused_parameters=unused_parameters), **settings)


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Lightning's info banners ("GPU available: False", "Initializing distributed") off."""
    logs = [logging.getLogger(name) for name in ("lightning.pytorch", "lightning.fabric")]
    levels = [log.level for log in logs]
    for log in logs:
        log.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for log, level in zip(logs, levels):
            log.setLevel(level)
