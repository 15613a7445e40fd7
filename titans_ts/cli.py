"""What every titans-ts command line shares: one-line errors with exit status 2, outputs that are
written whole or not at all, and the device flags of the commands that train."""
from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path

from titans_ts.state import write_atomic


class UsageError(Exception):
    """Bad input from the user: reported as one line on stderr, exit status 2."""


class ArgumentParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr (exit status 2), not the usage block."""

    def error(self, message: str):
        raise UsageError(message)


def run(main: Callable[[list[str] | None], int], argv: list[str] | None, prog: str,
        expected: tuple[type[BaseException], ...] = ()) -> int:
    """Call `main`; user errors (UsageError, ValueError, TypeError, OSError and `expected`) become
    `prog: error: …` on stderr and exit status 2, with no traceback."""
    try:
        return main(argv)
    except BrokenPipeError:  # the reader (e.g. `head`) closed the pipe: stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except (UsageError, ValueError, TypeError, OSError, *expected) as err:
        message = " ".join(str(err).split()) or type(err).__name__
        if isinstance(err, OSError) and err.filename is not None:
            message = f"{err.filename}: {err.strerror}"
        print(f"{prog}: error: {message}", file=sys.stderr)
        return 2


def add_dask_args(p: argparse.ArgumentParser, what: str) -> None:
    """`--workers N` / `--scheduler ADDRESS` (one or neither): spread `what` over Dask (`titans_ts.distributed`)."""
    where = p.add_mutually_exclusive_group()
    where.add_argument("--workers", type=int, metavar="N",
                       help=f"spread {what} over a local Dask cluster of N worker processes (needs the dask extra)")
    where.add_argument("--scheduler", metavar="ADDRESS",
                       help=f"spread {what} over the Dask cluster at ADDRESS, e.g. tcp://host:8786")


def write_output(path: str | os.PathLike, write: Callable[[str], None]) -> None:
    """Write through `write(tmp_path)` and rename into place: a failure leaves no half-written file."""
    path = Path(path)
    if not path.parent.is_dir():
        raise UsageError(f"cannot write {path}: folder {path.parent} does not exist")
    write_atomic(path, write)


def add_device_flags(parser: argparse.ArgumentParser) -> None:
    """--accelerator, --devices, --strategy and --precision: Lightning's, as the estimators take them. A flag
    left out leaves the estimator's default; the estimator checks the values and names the bad one."""
    group = parser.add_argument_group("devices (Lightning's)")
    group.add_argument("--accelerator", default=argparse.SUPPRESS,
                       help="auto, cpu, gpu, cuda or mps (default auto: a GPU where there is one)")
    group.add_argument("--devices", type=_devices, default=argparse.SUPPRESS,
                       help="how many devices: a count, or -1 or auto for all (default 1)")
    group.add_argument("--strategy", default=argparse.SUPPRESS,
                       help="auto, or ddp to train one model over several devices (default auto)")
    group.add_argument("--precision", default=argparse.SUPPRESS,
                       help="32-true, 64-true, 16-mixed, bf16-mixed, 16-true or bf16-true (default 32-true)")


def device_params(args: argparse.Namespace) -> dict[str, object]:
    """The device flags given, as estimator parameters."""
    return {name: getattr(args, name) for name in ("accelerator", "devices", "strategy", "precision")
            if hasattr(args, name)}


def _devices(text: str) -> int | str:
    try:
        return int(text)
    except ValueError:
        return text
