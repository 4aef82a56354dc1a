"""Tag-quality QC of a slice, whatever tracked it (numpy only).

- :func:`tag_contrast`: the tags' modulation in the myocardium, frame by frame (docs/realism.md's
  measure: the two first-harmonic band-pass magnitudes summed, over the low-passed local
  mean intensity, median over the wall). Real UK Biobank myocardium: 0.43 at ED, ~0.1 by
  frame 5, 0.06 late. A slice whose tags are gone early cannot be tracked late.
- :func:`phase_residual_px`: how far a reported track is from conserving its tag phase
  (a material point keeps its phase): per frame the median over the wall's interior
  landmarks of the wrapped phase change since ED, in pixels (phase / wave number, mean
  of the two harmonics); the slice value is the largest over the frames whose tags are
  still visible. A correct track stays near the band-pass smoothing floor (a few tenths
  of a pixel); a track off by a random amount averages a quarter tag period (~1.1 px).
- :func:`cavity_tag_ratio`: the ED endocardial radius in tag periods. HARP's band-pass
  averages each point over about a tag period, so in a small (apical) cavity the thin wall
  is averaged with the cavity and surroundings and the track drifts (docs/tracking.md).
- :func:`qc_flags`: the thresholds below turned into results-table flags.
"""

from __future__ import annotations

import numpy as np

from raytag.constants import N_CIRCUMFERENTIAL, N_TRANSMURAL
from raytag.landmarks import to_grid
from raytag.tracking.harmonics import circular_difference
from raytag.tracking.harp import CineHarmonics

__all__ = ["tag_contrast", "phase_residual_px", "qc_flags", "INTERIOR_RINGS",
           "MIN_VISIBLE_CONTRAST", "PHASE_RESIDUAL_FLAG_PX", "FADED_CONTRAST",
           "UNCERTAINTY_FLAG", "cavity_tag_ratio", "endocardial_radius_px",
           "SMALL_CAVITY_TAG_PERIODS"]

#: Rings whose phase is trusted (the borders mix in blood and surroundings).
INTERIOR_RINGS = (1, 2, 3, 4, 5)
#: Frames count as "tags visible" while the contrast is at least this fraction of ED's.
MIN_VISIBLE_CONTRAST = 0.25
#: ``phase_inconsistent`` above this residual (px): half way from a correct track's floor
#: (~0.3-0.5 px on the synthetic families) to a random track's quarter period (~1.1 px).
PHASE_RESIDUAL_FLAG_PX = 0.75
#: ``tags_faded_early``: contrast at ES below this fraction of ED's.
FADED_CONTRAST = 0.15
#: ``trackers_disagree``: network and HARP ES global circumferential strain differ by more.
UNCERTAINTY_FLAG = 0.04
#: ``cavity_small_for_tags``: ED endocardial radius below this many tag periods. Set on the
#: tuning cohorts (disc 7101/7111, thorax 7102/7112, end to end, tracker ``tags``): it
#: flags 11-19% of slices, among them the worst apical ones, and the unflagged ES circ
#: error SD is 0.017 / 0.017 / 0.028 / 0.029 against 0.021 / 0.018 / 0.033 / 0.049 for all.
SMALL_CAVITY_TAG_PERIODS = 1.8


def _interior(landmarks: np.ndarray) -> np.ndarray:
    """``(..., 168, 2)`` -> ``(..., 24 * len(INTERIOR_RINGS), 2)`` interior points."""
    idx = [N_TRANSMURAL * k + r for k in range(N_CIRCUMFERENTIAL) for r in INTERIOR_RINGS]
    return np.asarray(landmarks)[..., idx, :]


def tag_contrast(h: CineHarmonics, landmarks: np.ndarray) -> np.ndarray:
    """Tag modulation ``(T,)`` in the wall at ``landmarks`` ``(T, 168, 2)`` (NaN where the
    frame is invalid or the points are outside the analysis window)."""
    out = np.full(len(landmarks), np.nan)
    for t, pts in enumerate(landmarks):
        if not h.valid[t] or not np.isfinite(pts).all():
            continue
        p = _interior(pts)
        _, mag = h.sample(t, p)
        mean = h.local_intensity(t, p)
        ok = (mag.sum(axis=1) > 0) & (mean > 0)
        if ok.any():
            out[t] = float(np.median(mag[ok].sum(axis=1) / mean[ok]))
    return out


def phase_residual_px(h: CineHarmonics, landmarks: np.ndarray,
                      contrast: np.ndarray | None = None) -> tuple[np.ndarray, float]:
    """Per-frame residual ``(T,)`` (px, 0 at ED, NaN on invalid frames) and the slice value
    (max over frames with visible tags, NaN if none)."""
    lm = np.asarray(landmarks, dtype=np.float64)
    contrast = tag_contrast(h, lm) if contrast is None else contrast
    p0 = _interior(lm[0])
    ph0, _ = h.sample(0, p0)
    kn = np.linalg.norm(h.k, axis=1)
    per_frame = np.full(len(lm), np.nan)
    per_frame[0] = 0.0
    for t in range(1, len(lm)):
        if not h.valid[t] or not np.isfinite(lm[t]).all():
            continue
        ph, _ = h.sample(t, _interior(lm[t]))
        d = np.abs(circular_difference(ph, ph0)) / kn[None]
        per_frame[t] = float(np.nanmedian(d.mean(axis=1)))
    visible = np.isfinite(contrast) & (contrast >= MIN_VISIBLE_CONTRAST * contrast[0])
    visible[0] = False
    value = float(np.nanmax(per_frame[visible])) if visible.any() else float("nan")
    return per_frame, value


def endocardial_radius_px(ed_landmarks: np.ndarray) -> float:
    """Mean distance (px) of the endocardial ring (r = 0) of ``ed_landmarks`` ``(168, 2)`` px
    from its own centroid; NaN if a landmark is not finite."""
    ring = to_grid(np.asarray(ed_landmarks, dtype=np.float64))[:, 0]
    return float(np.hypot(*(ring - ring.mean(axis=0)).T).mean())


def cavity_tag_ratio(ed_landmarks: np.ndarray, wavelength_px: float) -> float:
    """:func:`endocardial_radius_px` of ``ed_landmarks`` over the tag period
    ``wavelength_px`` (px); NaN if either is not finite or the period is not positive."""
    ratio = endocardial_radius_px(ed_landmarks) / float(wavelength_px) \
        if wavelength_px > 0 else float("nan")
    return ratio if np.isfinite(ratio) else float("nan")


def qc_flags(contrast: np.ndarray, es_frame: int, residual_px: float,
             uncertainty: float | None = None,
             cavity_ratio: float | None = None) -> list[str]:
    """Flags for the results table from the measures above (see the thresholds);
    ``cavity_ratio``: :func:`cavity_tag_ratio` of the reported ED landmarks."""
    flags = []
    if np.isfinite(residual_px) and residual_px > PHASE_RESIDUAL_FLAG_PX:
        flags.append("phase_inconsistent")
    c0 = contrast[0] if len(contrast) else np.nan
    if 0 <= es_frame < len(contrast) and np.isfinite(c0) and c0 > 0 \
            and np.isfinite(contrast[es_frame]) and contrast[es_frame] < FADED_CONTRAST * c0:
        flags.append("tags_faded_early")
    if uncertainty is not None and np.isfinite(uncertainty) and uncertainty > UNCERTAINTY_FLAG:
        flags.append("trackers_disagree")
    if cavity_ratio is not None and np.isfinite(cavity_ratio) \
            and cavity_ratio < SMALL_CAVITY_TAG_PERIODS:
        flags.append("cavity_small_for_tags")
    return flags
