"""The one training loop of titans-ts, on Lightning: forecasting and genomics both fit through `fit`.

The caller supplies a model, data loaders and `step(model, batch) -> loss` (None skips the batch).
Lightning brings early stopping on validation loss, gradient clipping, seeded determinism, a progress
bar and any accelerator / strategy (multi-GPU and multi-node DDP are Lightning's, passed straight through).
"""
from __future__ import annotations

import copy
import logging
import math
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import lightning.pytorch as pl
import torch
from torch import Tensor, nn

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

    def training_step(self, batch: Any, batch_idx: int) -> Tensor | None:
        loss = self.step(self.model, batch)
        if loss is not None:  # None: nothing to learn from this batch, no optimizer step
            self.log("train_loss", loss, prog_bar=True, on_step=False, on_epoch=True, batch_size=_batch_size(batch))
        return loss

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        loss = self.step(self.model, batch)
        if loss is not None:
            self.log("val_loss", loss, prog_bar=True, batch_size=_batch_size(batch))

    def configure_optimizers(self):
        return torch.optim.AdamW(self.model.parameters(), lr=self.lr, weight_decay=self.weight_decay)


def _batch_size(batch: Any) -> int:
    first = batch[0] if isinstance(batch, (tuple, list)) else batch
    return len(first)


class _KeepBest(pl.Callback):
    """Remember the weights of the best epoch (by `monitor`) in memory and restore them at the end."""

    def __init__(self, monitor: str):
        self.monitor, self.best, self.state, self.history = monitor, math.inf, None, []

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
        self.history.append({"epoch": trainer.current_epoch, **metrics})
        if metrics[self.monitor] < self.best:
            self.best = metrics[self.monitor]
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
    accelerator: str = "auto",
    devices: int | str | list[int] = "auto",
    strategy: str | Any = "auto",
    callbacks: Sequence[pl.Callback] = (),
    **trainer_kwargs: Any,
) -> FitResult:
    """Train `model` in place on `train` with `step`, early-stopping on `val` loss; restore the best epoch.

    Without `val` the training loss is monitored instead. `callbacks` join ours (e.g. an Optuna pruner).
    Extra keyword arguments go to `lightning.Trainer`
    (e.g. `precision="bf16-mixed"`, `num_nodes=2`).
    """
    if seed is not None:
        pl.seed_everything(seed, workers=True, verbose=False)
    monitor = "val_loss" if val is not None else "train_loss"
    keep = _KeepBest(monitor)
    callbacks = [keep, pl.callbacks.EarlyStopping(monitor, patience=patience, mode="min"), *callbacks]
    if progress:
        callbacks.append(pl.callbacks.TQDMProgressBar())
    quiet = logging.getLogger("lightning.pytorch")
    level = quiet.level
    quiet.setLevel(logging.WARNING)  # no "GPU available: False" banners
    try:
        with warnings.catch_warnings():
            # Lightning's noise that no caller can act on: the batches are built in memory, so loading them
            # in-process is deliberate; a step's None skips its batch by this loop's contract; and its tree
            # helpers call a torch API that torch has deprecated
            warnings.filterwarnings("ignore", message=".*(does not have many workers|returned `None`|treespec).*")
            trainer = pl.Trainer(
                max_epochs=max_epochs, accelerator=accelerator, devices=devices, strategy=strategy,
                gradient_clip_val=gradient_clip, deterministic=seed is not None, callbacks=callbacks,
                enable_progress_bar=progress, enable_checkpointing=False, logger=False,
                enable_model_summary=False, num_sanity_val_steps=0, **trainer_kwargs,
            )
            trainer.fit(_Task(model, step, lr, weight_decay), train, val)
    finally:
        quiet.setLevel(level)
    model.eval()
    return FitResult(best_loss=keep.best, epochs=trainer.current_epoch, history=keep.history)
