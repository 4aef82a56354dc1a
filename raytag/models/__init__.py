"""The networks (PyTorch): ROI localiser and RNN-CNN landmark tracker, their presets,
loss, normalisation, checkpoints and the batched predictor.

Public API (docs/conventions.md): :func:`build_localiser`, :func:`build_tracker`.
"""

from __future__ import annotations

from raytag.models.networks import (
    CentreLocaliser,
    EDNet,
    Localiser,
    Tracker,
    count_parameters,
    split_xy,
)
from raytag.models.presets import (
    PRESETS,
    CentreLocaliserConfig,
    LocaliserConfig,
    TrackerConfig,
    ed_config,
    preset_configs,
)

__all__ = [
    "build_localiser",
    "build_tracker",
    "Localiser",
    "CentreLocaliser",
    "EDNet",
    "build_ed",
    "CentreLocaliserConfig",
    "Tracker",
    "LocaliserConfig",
    "TrackerConfig",
    "PRESETS",
    "count_parameters",
    "split_xy",
]


def build_localiser(preset: str = "paper") -> Localiser | CentreLocaliser:
    """The ROI localisation CNN of a preset (``paper``, ``lite``, ...), freshly initialised:
    a :class:`Localiser` (corner regression) or :class:`CentreLocaliser` (heatmap), as the
    preset's config says."""
    config = preset_configs(preset)[0]
    return (CentreLocaliser if config.arch == "centre" else Localiser)(config)


def build_ed(preset: str = "lite") -> EDNet:
    """The ED-geometry network of a preset, freshly initialised."""
    return EDNet(ed_config(preset))


def build_tracker(preset: str = "paper") -> Tracker:
    """The RNN-CNN landmark tracker of a preset (``paper``, ``lite``), freshly initialised."""
    return Tracker(preset_configs(preset)[1])
