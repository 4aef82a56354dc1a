"""Network sizes as data: one class per network, presets are configs (not subclasses).

``paper``: the sizes of Ferdian et al. 2020 (localiser 32-128-128-128-128 / FC 1024;
tracker 32-64-64-128 / FC 1024 / LSTM 1024, ~35.6 M parameters). ``lite``: fewer channels
and 256-wide FC/LSTM layers, so it trains and runs at a useful speed on 2 CPU cores.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from raytag.constants import CROP_SIZE, N_FRAMES, N_LANDMARKS, PAD_SIZE

__all__ = ["LocaliserConfig", "TrackerConfig", "PRESETS", "preset_configs"]


@dataclass(frozen=True)
class LocaliserConfig:
    """ROI CNN: blocks of [3x3 valid conv -> BN -> ReLU -> 3x3/2 max-pool], FC, dropout, FC 4."""

    input_size: int = PAD_SIZE
    channels: tuple[int, ...] = (32, 128, 128, 128, 128)
    fc: int = 1024
    dropout: float = 0.2

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


PRESETS: dict[str, tuple[LocaliserConfig, TrackerConfig]] = {
    "paper": (LocaliserConfig(), TrackerConfig()),
    "lite": (
        LocaliserConfig(channels=(16, 32, 32, 32, 32), fc=256, dropout=0.2),
        TrackerConfig(channels=(16, 32, 32, 32), fc=256, lstm=256, head=256),
    ),
}


def preset_configs(preset: str) -> tuple[LocaliserConfig, TrackerConfig]:
    """The two configs of a named preset; ``ValueError`` naming the known presets."""
    try:
        return PRESETS[preset]
    except KeyError:
        raise ValueError(f"unknown preset {preset!r}; known: {', '.join(sorted(PRESETS))}") \
            from None
