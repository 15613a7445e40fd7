"""`MemoryState`: everything a stream needs to continue, as a flat mapping of named tensors.

Keys are dotted paths (`layers.0.memory.w.1`, `layers.0.attn.k`, ...): the memory weights θ-updated
at test time, their momentum, attention KV caches, causal-conv tails and the buffered partial chunk.
A flat mapping makes `detach`, `to` and a code-free file format (safetensors) one line each.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load, save_file
from torch import Tensor

_FORMAT = "titans_ts.MemoryState/1"


class MemoryState(dict[str, Tensor]):
    """A stream's state: `name -> Tensor`. Returned by every stateful module, passed back to continue."""

    def scope(self, prefix: str) -> MemoryState | None:
        """The entries under `prefix.` with the prefix removed, or None if there are none."""
        p = prefix + "."
        sub = MemoryState({k[len(p):]: v for k, v in self.items() if k.startswith(p)})
        return sub or None

    @classmethod
    def join(cls, **parts: dict[str, Tensor] | Tensor) -> MemoryState:
        """Nest sub-states (or single tensors) under their keyword names."""
        out = cls()
        for name, part in parts.items():
            if isinstance(part, Tensor):
                out[name] = part
            else:
                out.update({f"{name}.{k}": v for k, v in part.items()})
        return out

    def detach(self) -> MemoryState:
        """Cut the autograd history (truncated back-propagation through time)."""
        return MemoryState({k: v.detach() for k, v in self.items()})

    def to(self, device: str | torch.device | None = None, dtype: torch.dtype | None = None) -> MemoryState:
        """Move every tensor to `device`; cast floating ones to `dtype` (counters stay integers)."""
        return MemoryState({k: v.to(device=device, dtype=dtype if v.is_floating_point() else None)
                            for k, v in self.items()})

    @property
    def batch_size(self) -> int:
        """Batch size of the stream (the leading dimension of every non-scalar tensor)."""
        return next(v.shape[0] for v in self.values() if v.dim())

    def save(self, path: str | os.PathLike) -> None:
        """Write atomically (temporary file renamed into place) in safetensors: loading runs no code."""
        write_atomic(path, lambda tmp: save_file({k: v.detach().contiguous() for k, v in self.items()},
                                                 tmp, metadata={"format": _FORMAT}))

    @classmethod
    def load(cls, path: str | os.PathLike, device: str | torch.device = "cpu") -> MemoryState:
        """Read a state written by `save`; anything else is refused with a ValueError."""
        try:
            tensors, _ = read_safetensors(path)
        except (SafetensorError, OSError, ValueError) as err:
            raise ValueError(f"{path}: not a titans_ts MemoryState file ({err})") from None
        return cls({k: v.to(device) for k, v in tensors.items()})


def write_atomic(path: str | os.PathLike, write) -> None:
    """Call `write(tmp_path)` and rename the result onto `path`, so a crash never leaves a torn file."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent if str(path.parent) else ".", prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # the permissions a plain open() would give, not mkstemp's 0600
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_safetensors(path: str | os.PathLike) -> tuple[dict[str, Tensor], dict[str, str]]:
    """The tensors and metadata of a safetensors file, read in one go: a save renamed over the file
    meanwhile cannot mix the header of one version with the data of another."""
    data = Path(path).read_bytes()
    tensors = load(data)  # SafetensorError unless the whole file is well formed
    size = int.from_bytes(data[:8], "little")
    try:
        header = json.loads(data[8: 8 + size])
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"unreadable safetensors header ({err})") from None
    return tensors, header.get("__metadata__") or {}
