"""Model files that cannot run code when loaded: tensors in safetensors, everything else as JSON metadata.

Estimators in both domains save through `save_bundle` (atomic: a crash leaves the old file or the new
one, never a torn one) and read through `load_bundle`, which refuses anything but its own format.
"""
from __future__ import annotations

import json
import os
from typing import Any

from safetensors import SafetensorError
from safetensors.torch import save_file
from torch import Tensor

from titans_ts.state import read_safetensors, write_atomic

_KEY = "titans_ts"


def save_bundle(path: str | os.PathLike, tensors: dict[str, Tensor], meta: dict[str, Any], kind: str) -> None:
    """Write `tensors` and the JSON-serialisable `meta` to `path`, tagged with the model `kind`."""
    header = {_KEY: json.dumps({"kind": kind, "meta": meta})}
    write_atomic(path, lambda tmp: save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()},
                                             tmp, metadata=header))


def load_bundle(path: str | os.PathLike, kind: str) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """Read a file written by `save_bundle` for `kind`; anything else raises ValueError naming the file."""
    try:
        tensors, metadata = read_safetensors(path)
    except (SafetensorError, OSError, ValueError) as err:
        raise ValueError(f"{path}: not a titans-ts model file ({err})") from None
    header = metadata.get(_KEY)
    try:
        content = json.loads(header)
    except (TypeError, json.JSONDecodeError):
        raise ValueError(f"{path}: not a titans-ts model file (no titans_ts header)") from None
    if content.get("kind") != kind:
        raise ValueError(f"{path}: holds a {content.get('kind')!r} model, expected {kind!r}")
    return tensors, content["meta"]
