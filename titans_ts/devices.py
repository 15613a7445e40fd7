"""Lightning's device arguments as every titans-ts estimator and command line takes them: `accelerator`,
`devices`, `strategy` and `precision`, with one spelling, one set of defaults and one table of what each
may be. `titans_ts.training.fit` passes them to Lightning (its module docstring says what "ddp" does)."""
from __future__ import annotations

from typing import Any

from titans_ts.params import Constraint, Either, OneOf, integer

# one device by default, so that no fit starts processes unasked; "auto" takes a GPU where there is one
# (the memory update then runs the Triton kernels), the CPU elsewhere
DEVICE_DEFAULTS: dict[str, Any] = {"accelerator": "auto", "devices": 1, "strategy": "auto", "precision": "32-true"}
DEVICES: dict[str, Constraint] = {
    "accelerator": OneOf(("auto", "cpu", "gpu", "cuda", "mps")),
    "devices": Either(OneOf(("auto", -1)), integer(1)),
    "strategy": OneOf(("auto", "ddp", "ddp_spawn", "ddp_fork", "ddp_notebook")),
    "precision": OneOf(("32-true", "64-true", "16-mixed", "bf16-mixed", "16-true", "bf16-true")),
}


def device_args(estimator: object) -> dict[str, Any]:
    """An estimator's device parameters (named as in `DEVICE_DEFAULTS`), as `fit` takes them."""
    return {name: getattr(estimator, name) for name in DEVICE_DEFAULTS}
