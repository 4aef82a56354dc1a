"""The paper's learning-rate schedules, as functions of the epoch number (1-based)."""

from __future__ import annotations

import math

from raytag.constants import DEFAULT_LR

__all__ = ["localiser_lr", "tracker_lr"]


def localiser_lr(epoch: int, base: float = DEFAULT_LR["localiser"]) -> float:
    """Adam (base 1e-3 by default) divided by sqrt(2) every 5th epoch after the 10th
    (15, 20, 25, ...)."""
    return base / math.sqrt(2) ** max(0, (epoch - 10) // 5)


def tracker_lr(epoch: int, base: float = DEFAULT_LR["tracker"]) -> float:
    """Adam (1e-4 by default), divided by sqrt(2) every 10th epoch (10, 20, 30, ...)."""
    return base / math.sqrt(2) ** (epoch // 10)
