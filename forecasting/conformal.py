"""Split-conformal calibration of the forecast quantiles: how far each quantile must move so that, on
held-out steps, the truth falls below it as often as its level says (with the finite-sample correction)."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch


def conformal_offsets(residuals: torch.Tensor, levels: Sequence[float]) -> np.ndarray:
    """Offsets δ (Q, H): δ[i, h] is the corrected `levels[i]`-quantile of `residuals[i, h]` (Q, H, N), the
    held-out truth less the forecast quantile of level i at horizon step h.

    With n residuals the quantile is read at ⌈q(n + 1)⌉ / n for q ≥ 0.5 and at (⌊q(n + 1)⌋ − 1) / n below
    (clipped to [0, 1]): the shifted quantile then holds the truth with at least probability q (upper
    levels) or at most q (lower ones) on exchangeable data, as split conformal prediction does.
    """
    r = residuals.double()
    q = torch.tensor(levels, dtype=torch.float64)[:, None, None]
    n = r.shape[-1]
    upper = ((q * (n + 1)).ceil() / n).clamp(0, 1) if n else q
    lower = ((q * (n + 1) - 1).floor() / n).clamp(0, 1)
    adj = torch.where(q >= 0.5, upper, lower)
    return torch.stack([torch.quantile(r[i], adj[i, 0, 0].item(), dim=-1) for i in range(len(levels))]).numpy()
