"""The forecaster's file: weights, scaler, calibration and every series' stream in one safetensors bundle
(`titans_ts.io`), which runs no code on load. Each series' stream is written on its own (`stream.<i>.…`),
so a file does not depend on how the streams were batched."""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch

from titans_ts import MemoryState
from titans_ts.io import load_bundle, save_bundle

from .frames import Panel
from .scaling import Scaler
from .streams import Streams

KIND = "TitansForecaster"


@dataclass
class Saved:
    """What a forecaster file holds."""

    params: dict
    like: Panel
    net: dict[str, torch.Tensor]
    offsets: np.ndarray
    streams: Streams


def save(path: str | os.PathLike, saved: Saved) -> None:
    """Write `saved` to `path` (atomically)."""
    tensors = {f"net.{k}": v for k, v in saved.net.items()}
    s, streams = saved.streams, []
    tensors.update(mean=torch.tensor(s.scaler.mean), std=torch.tensor(s.scaler.std),
                   offsets=torch.tensor(saved.offsets))
    if s.scaler.cycle is not None:
        tensors["cycle"] = torch.tensor(s.scaler.cycle)
    for i, key in enumerate(s.keys):
        tensors.update({f"stream.{i}.mem.{k}": v for k, v in s.memory(key).items()})
        tensors.update({f"stream.{i}.{name}": getattr(s, name)[i].clone() for name in ("context", "point", "quant")})
        streams.append({"key": key, "seen": int(s.seen[i]),
                        "last_time": None if np.isnat(s.last_time[i]) else int(s.last_time[i].astype("int64")),
                        "step": None if np.isnat(s.step[i]) else int(s.step[i].astype("int64"))})
    like = {"columns": saved.like.columns, "kind": saved.like.kind, "time_col": saved.like.time_col,
            "id_col": saved.like.id_col, "meta": saved.like.meta}
    save_bundle(path, tensors, {"params": saved.params, "like": like, "streams": streams}, kind=KIND)


def load(path: str | os.PathLike) -> Saved:
    """Read a file written by `save`. A file written before each series had its own statistics holds one
    set for all of them (`mean` (C,)): every series reads it."""
    tensors, meta = load_bundle(path, kind=KIND)
    like = meta["like"]
    panel = Panel({}, {}, like["columns"], like["kind"], like["time_col"], like["id_col"], like["meta"])
    memories, keys = [], []
    for i, s in enumerate(meta["streams"]):
        p = f"stream.{i}.mem."
        memories.append(MemoryState({k[len(p):]: v for k, v in tensors.items() if k.startswith(p)}))
        keys.append(s["key"])
    stack = lambda name: torch.stack([tensors[f"stream.{i}.{name}"] for i in range(len(keys))])  # noqa: E731
    ns = lambda name, kind: np.array([np.datetime64("NaT") if s[name] is None else s[name]  # noqa: E731
                                      for s in meta["streams"]], dtype=f"{kind}64[ns]")
    net = {k[4:]: v for k, v in tensors.items() if k.startswith("net.")}
    if "recall.cue.weight" in net and "recall.context.weight" not in net:
        _before_learnt_keys(net, memories, meta["params"]["d_model"])
    context = stack("context")
    streams = Streams.join(keys, context.shape[1], memories, scaler=_scaler(tensors, len(keys)), context=context,
                           point=stack("point"), quant=stack("quant"),
                           seen=np.array([s["seen"] for s in meta["streams"]], dtype=np.int64), last_time=ns("last_time", "datetime"), step=ns("step", "timedelta"))
    return Saved(meta["params"], panel, net, tensors["offsets"].numpy(), streams)


def _scaler(tensors: dict[str, torch.Tensor], n_series: int) -> Scaler:
    """The streams' statistics, one row per series (a file with one set for all: that set in every row)."""
    per_series = lambda name, dims: np.broadcast_to(  # noqa: E731
        tensors[name].numpy(), (n_series, *tensors[name].shape[-dims:])).copy()
    cycle = per_series("cycle", 2) if "cycle" in tensors else None
    return Scaler(per_series("mean", 1), per_series("std", 1), cycle)


def _before_learnt_keys(net: dict[str, torch.Tensor], memories: list[MemoryState], d_model: int) -> None:
    """A file written before the recall memory's keys had a learnt part (a map of the encoder's output):
    that map at zero, and zero encoder outputs kept in every stream, compute what such a model computed."""
    net["recall.context.weight"] = torch.zeros(net["recall.cue.weight"].shape[0], d_model)
    for m in memories:
        if "made" in m:
            m["context"] = torch.zeros(*m["made"].shape[:2], d_model)
