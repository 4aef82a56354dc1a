"""Scanner settings of a synthetic visit, drawn across what real protocols vary.

UK Biobank's protocol (docs/realism.md) is one point of these ranges: 256x174 matrix, ~1.37 mm
pixels, 6 mm tags at +-45 deg, 12 deg flip, 20 frames of 41 ms. Families ``thorax`` and
``patchwork`` draw from here so that a network trained on them has seen other matrices,
resolutions, tag grids, fading rates, noise levels, coil shading and ringing.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["MATRICES", "AcquisitionDraw", "sample_acquisition"]

#: Stored matrices (rows, cols) and how often each is drawn: UK Biobank's 256x174 most.
MATRICES = (((256, 174), 0.4), ((256, 208), 0.2), ((256, 256), 0.2), ((208, 256), 0.1),
            ((174, 256), 0.1))


@dataclass(frozen=True)
class AcquisitionDraw:
    """One visit's scanner settings (shared by its three slices)."""

    rows: int
    cols: int
    spacing_mm: float
    n_frames: int
    frame_ms: float
    rr_ms: float
    tag_spacing_mm: float
    tag_angle_deg: float
    tag_modulation: float
    flip_deg: float
    pulses_per_frame: int
    signal: float
    snr: float
    bias: float
    ringing: float
    ringing_axis: int
    blur_px: float


def sample_acquisition(rng: np.random.Generator, n_frames: int | None = None) -> AcquisitionDraw:
    """Scanner settings across what real protocols vary (docs/realism.md's ranges and beyond)."""
    (rows, cols) = MATRICES[rng.choice(len(MATRICES), p=[w for _, w in MATRICES])][0]
    fov_mm = rng.uniform(300.0, 400.0)
    spacing = float(np.clip(fov_mm / max(rows, cols), 1.2, 1.8))
    if n_frames is None:
        n_frames = 20 if rng.random() < 0.5 else int(rng.integers(15, 31))
    rr = rng.uniform(650.0, 1100.0)
    # Tags of at least 3.4 px, so the cross terms stay below Nyquist.
    tag_spacing = rng.uniform(max(5.0, 3.4 * spacing), 8.0)
    angle = 45.0 + rng.uniform(-15, 15) if rng.random() < 0.8 else rng.uniform(0, 90)
    return AcquisitionDraw(
        rows=rows, cols=cols, spacing_mm=spacing, n_frames=n_frames,
        frame_ms=rr * rng.uniform(0.82, 0.98) / n_frames, rr_ms=rr,
        tag_spacing_mm=tag_spacing, tag_angle_deg=angle,
        tag_modulation=rng.uniform(0.30, 0.50), flip_deg=rng.uniform(8.0, 16.0),
        pulses_per_frame=int(rng.integers(3, 8)), signal=rng.uniform(25.0, 80.0),
        snr=float(np.exp(rng.uniform(np.log(8.0), np.log(40.0)))),
        bias=rng.uniform(0.0, 0.5), ringing=rng.uniform(0.75, 1.0) if rng.random() < 0.5
        else 1.0, ringing_axis=int(rng.integers(0, 2)), blur_px=rng.uniform(0.2, 0.9),
    )
