"""The networks (PyTorch): ROI localiser and RNN-CNN landmark tracker, their presets,
loss, normalisation, checkpoints and the batched predictor.

Public API (DESIGN.md): :func:`build_localiser`, :func:`build_tracker`.
"""

from __future__ import annotations

from raytag.models.networks import Localiser, Tracker, count_parameters, split_xy
from raytag.models.presets import PRESETS, LocaliserConfig, TrackerConfig, preset_configs

__all__ = [
    "build_localiser",
    "build_tracker",
    "Localiser",
    "Tracker",
    "LocaliserConfig",
    "TrackerConfig",
    "PRESETS",
    "count_parameters",
    "split_xy",
]


def build_localiser(preset: str = "paper") -> Localiser:
    """The ROI localisation CNN of a preset (``paper``, ``lite``), freshly initialised."""
    return Localiser(preset_configs(preset)[0])


def build_tracker(preset: str = "paper") -> Tracker:
    """The RNN-CNN landmark tracker of a preset (``paper``, ``lite``), freshly initialised."""
    return Tracker(preset_configs(preset)[1])
