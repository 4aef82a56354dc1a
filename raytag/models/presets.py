"""Network sizes as data: one class per network, presets are configs (not subclasses).

``paper``: the sizes of Ferdian et al. 2020 (localiser 32-128-128-128-128 / FC 1024;
tracker 32-64-64-128 / FC 1024 / LSTM 1024, ~35.6 M parameters). ``lite``: fewer channels
and 256-wide FC/LSTM layers, so it trains and runs at a useful speed on 2 CPU cores.

Localisers come in two architectures (``arch`` in the config, stored in checkpoints):
``regression`` (the paper's: ED frame -> four corners through FC layers) and ``centre``
(beyond the paper: a fully convolutional network that sees the ED frame, a systolic mean
and the cine's temporal variation, and predicts an LV-centre heatmap with box size and
offset per cell, so it does not tie the heart to where it sat in training images).
``lite`` and ``paper-centre`` use ``centre``; ``lite-regression`` is the earlier default.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from raytag.constants import CROP_SIZE, N_FRAMES, N_LANDMARKS, PAD_SIZE

__all__ = ["LocaliserConfig", "CentreLocaliserConfig", "TrackerConfig", "EDConfig", "PRESETS",
           "ED_PRESETS", "preset_configs", "ed_config"]


@dataclass(frozen=True)
class LocaliserConfig:
    """ROI CNN: blocks of [3x3 valid conv -> BN -> ReLU -> 3x3/2 max-pool], FC, dropout, FC 4."""

    arch: str = "regression"
    input_size: int = PAD_SIZE
    channels: tuple[int, ...] = (32, 128, 128, 128, 128)
    fc: int = 1024
    dropout: float = 0.2

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class CentreLocaliserConfig:
    """Heatmap localiser: padded cine -> 3 channels at ``input_size`` (ED, systolic mean,
    temporal SD) -> conv encoder (one stride-2 stage per channel entry after the first) ->
    features fused at ``input_size / 4`` -> heads: centre logits, (dx, dy) offset in cells,
    log box size. ``cell_px`` = padded pixels per heatmap cell."""

    arch: str = "centre"
    input_size: int = PAD_SIZE // 2
    channels: tuple[int, ...] = (24, 48, 64, 96, 96)
    head: int = 64
    pad_size: int = PAD_SIZE

    @property
    def cell_px(self) -> float:
        return self.pad_size / (self.input_size / 4)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class TrackerConfig:
    """RNN-CNN: shared per-frame CNN (3 valid convs + pools, 1 same conv), FC, LSTM, FC, FC.

    Outputs ``2 * n_landmarks`` per frame: all x then all y, in crop pixels.
    """

    input_size: int = CROP_SIZE
    n_frames: int = N_FRAMES
    n_landmarks: int = N_LANDMARKS
    channels: tuple[int, int, int, int] = (32, 64, 64, 128)
    fc: int = 1024
    lstm: int = 1024
    head: int = 1024
    leaky_slope: float = 0.1

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class EDConfig:
    """ED-geometry network (beyond the paper): the crop's ED frame, systolic mean and
    temporal SD (:func:`raytag.models.networks.localiser_inputs` at crop size) -> conv
    stages (stride 2 after the first) -> FC -> the 168 ED landmarks (crop pixels). One
    frame-triplet per slice instead of 20 frames: ~20x cheaper to train than the tracker,
    it gives HARP (:mod:`raytag.tracking`) the myocardium to follow."""

    arch: str = "ed"
    input_size: int = CROP_SIZE
    n_landmarks: int = N_LANDMARKS
    channels: tuple[int, ...] = (32, 64, 96, 128, 128)
    fc: int = 512

    def to_dict(self) -> dict:
        return asdict(self)


_LITE_TRACKER = TrackerConfig(channels=(16, 32, 32, 32), fc=256, lstm=256, head=256)

PRESETS: dict[str, tuple[LocaliserConfig | CentreLocaliserConfig, TrackerConfig]] = {
    "paper": (LocaliserConfig(), TrackerConfig()),
    "paper-centre": (CentreLocaliserConfig(), TrackerConfig()),
    "lite": (CentreLocaliserConfig(channels=(16, 32, 48, 64, 64), head=48), _LITE_TRACKER),
    "lite-regression": (LocaliserConfig(channels=(16, 32, 32, 32, 32), fc=256, dropout=0.2),
                        _LITE_TRACKER),
}


ED_PRESETS: dict[str, EDConfig] = {
    "paper": EDConfig(), "paper-centre": EDConfig(),
    "lite": EDConfig(channels=(16, 32, 48, 64, 96), fc=256),
    "lite-regression": EDConfig(channels=(16, 32, 48, 64, 96), fc=256),
}


def ed_config(preset: str) -> EDConfig:
    """The ED-geometry network's config of a preset."""
    preset_configs(preset)  # the same names, the same error
    return ED_PRESETS[preset]


def preset_configs(preset: str) -> tuple[LocaliserConfig | CentreLocaliserConfig,
                                         TrackerConfig]:
    """The two configs of a named preset; ``ValueError`` naming the known presets."""
    try:
        return PRESETS[preset]
    except KeyError:
        raise ValueError(f"unknown preset {preset!r}; known: {', '.join(sorted(PRESETS))}") \
            from None
