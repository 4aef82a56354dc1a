"""From a slice's network landmarks to its reported track, strain and tag QC (numpy only).

The second half of inference, shared by :meth:`raytag.models.predictor.Predictor.predict`
(evaluation, benchmarks, notebooks) and the cohort pipeline's CPU stage, so both run the
same code. Trackers (:data:`TRACKERS`):

- ``network``: the RNN-CNN's landmarks in every frame (the paper's method);
- ``harp``: the network's ED landmarks, moved through the cine by HARP
  (:func:`raytag.tracking.harp.track_harp`): motion from the tags, not from the anatomy;
- ``hybrid``: HARP started in every frame from the network's landmarks (the network
  arbitrates which tag is which, HARP makes the track phase-consistent);
- ``tags``: the ED geometry fitted to tag physics (the blood pool loses its tags, the
  wall keeps them: :mod:`raytag.tracking.edfit`) from the localiser's ROI centre, moved
  by HARP; the row's ``tracker`` says ``harp`` where there was nothing to fit (no
  washed-out cavity, too few rays with an edge) and the network's ED landmarks were used
  instead (flagged ``ed_geometry_unconfirmed``, as is a weak fit; ``roi_centre_disagrees``
  when the fitted ring lies more than a wall from the ROI box's centre).

Whatever the tracker, every slice gets tag QC: ``tag_contrast`` ``(T,)``,
``phase_residual_px`` of the reported track, and ``strain_uncertainty`` = the absolute
difference of the network's and HARP's ES global circumferential strain.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from raytag import geometry
from raytag.constants import TRACKERS
from raytag.strain import compute_strains
from raytag.tracking import qc
from raytag.tracking.edfit import MIN_CONTRAST, MIN_RAYS_USED, WALL_MM, EDFit, fit_ed_geometry
from raytag.tracking.harp import CineHarmonics, track_harp

__all__ = ["TRACKERS", "SliceMeasurement", "measure_slice", "tag_fit_flags"]

#: QC of the ``tags`` ED fit (flags, never a different measurement). The fit is
#: ``ed_geometry_unconfirmed`` when the tags gave none (the network's geometry reported) or
#: a weak one: wall-over-cavity persistence below WEAK_FIT_CONTRAST or fewer than
#: WEAK_FIT_RAYS of the rays with an edge (tuning cohorts disc 7101/7111, thorax
#: 7102/7112, 144 slices: lowest 2.16 and 0.90, no fallback). ``roi_centre_disagrees`` when
#: the fitted ring's centre lies more than one wall (:data:`~raytag.tracking.edfit.WALL_MM`) from
#: the ROI box's: box and tags disagree about where the LV is (tuning: at most 5.7 mm, no
#: slice flagged either way).
WEAK_FIT_CONTRAST = 2.0
WEAK_FIT_RAYS = 0.75

@dataclass
class SliceMeasurement:
    """One slice's reported measurement.

    ``landmarks_px`` ``(T, 168, 2)`` original px (NaN on invalid frames); ``strains``
    :func:`raytag.strain.compute_strains` of one slice (curves ``(T,)``, scalars);
    ``tag_contrast`` ``(T,)``; ``phase_residual_px``, ``strain_uncertainty`` floats (NaN when
    not measurable); ``qc_flags``; ``tracker`` the tracker whose track is reported (the
    network's when the cine has no usable tag grid).
    """

    landmarks_px: np.ndarray
    strains: dict
    tag_contrast: np.ndarray
    phase_residual_px: float
    strain_uncertainty: float
    qc_flags: list[str] = field(default_factory=list)
    tracker: str = "network"


def _strains(points_px: np.ndarray, spacing_mm, valid: np.ndarray) -> dict:
    return compute_strains(geometry.px_to_mm(points_px, spacing_mm), frame_valid=valid)


def tag_fit_flags(fit: EDFit | None, start_xy: np.ndarray, spacing_mm) -> list[str]:
    """QC flags of a ``tags`` ED fit started from ``start_xy`` (frame px; see the
    thresholds above); ``fit`` None: there was no fit."""
    if fit is None:
        return ["ed_geometry_unconfirmed"]
    flags = []
    if not (fit.contrast >= WEAK_FIT_CONTRAST and fit.rays_used >= WEAK_FIT_RAYS):
        flags.append("ed_geometry_unconfirmed")
    # the reported ring's centre (the fit re-centres twice, then fits once more from there)
    centre = np.asarray(fit.landmarks, dtype=np.float64).mean(axis=0)
    shift_mm = np.hypot(*((centre - start_xy) * np.asarray(spacing_mm)[::-1]))
    if not shift_mm <= WALL_MM:
        flags.append("roi_centre_disagrees")
    return flags


def _tag_geometry(h: CineHarmonics, ed: np.ndarray, spacing_mm,
                  start_xy: np.ndarray) -> tuple[np.ndarray, str, list[str]]:
    """ED landmarks ``(168, 2)`` fitted to tag persistence from ``start_xy`` (frame px, the
    ROI box's centre), the network's spoke 0 as the septum hint, the tracker that
    reports them: ``tags``; or the network's own landmarks and ``harp`` when there is no
    fit (no washed-out cavity, too few rays with an edge, frames 2-4 unusable); and the
    fit's QC flags (:func:`tag_fit_flags`).

    Why the fit replaces the network's geometry instead of only checking it: a network
    trained on synthetic images is out of its distribution on every real one, and keeping
    the network's geometry wherever it passed a physics check left the held-out family's
    ES circumferential error SD at 0.46 (model card). Why no check of the fit's centre
    against the ED network's (as before, 4 mm): that check trusted the network, and on
    images it has never seen the ED network's ring collapses or drifts, so the check sent
    good fits back to it; with air read as air (:func:`~raytag.tracking.edfit.
    persistence_map`) the check no longer changed the tuning cohorts' error (disc and
    thorax seeds 7101/7111/7102/7112: ES circ SD 0.020 / 0.039 without it, started from the
    box centre, against 0.026 / 0.039 with it, started from the network's centroid).
    """
    hint = float(np.arctan2(*(ed[0] - ed.mean(axis=0))[::-1]))
    try:
        fit = fit_ed_geometry(h, start_xy, spacing_mm, septum_hint=hint)
    except ValueError:
        return ed, "harp", tag_fit_flags(None, start_xy, spacing_mm)
    if fit.contrast < MIN_CONTRAST or fit.rays_used < MIN_RAYS_USED \
            or not np.isfinite(fit.landmarks).all():
        return ed, "harp", tag_fit_flags(None, start_xy, spacing_mm)
    return fit.landmarks, "tags", tag_fit_flags(fit, start_xy, spacing_mm)


def measure_slice(frames: np.ndarray, frame_valid: np.ndarray, spacing_mm,
                  network_landmarks: np.ndarray, tracker: str = "network",
                  ed_landmarks: np.ndarray | None = None,
                  roi_box: np.ndarray | None = None,
                  register_frames: bool = True) -> SliceMeasurement:
    """Track (per ``tracker``), measure strain and tag QC for one slice.

    ``frames`` ``(T, rows, cols)`` original matrix; ``frame_valid`` ``(T,)``; ``spacing_mm``
    ``(row, col)``; ``network_landmarks`` ``(T, 168, 2)`` original px (the tracker's);
    ``ed_landmarks`` ``(168, 2)``: where HARP starts (the ED-geometry network's), else
    the tracker's frame 0; ``roi_box`` ``(4,)`` (x0, y0, x1, y1) original px: the
    localiser's box, whose centre starts the ``tags`` fit (the ED landmarks' centroid
    when it is None or not finite); ``register_frames``: HARP's registration refinement
    (:mod:`raytag.tracking.register`; False: the phase field alone, about twice as fast).
    """
    if tracker not in TRACKERS:
        raise ValueError(f"tracker must be one of {TRACKERS}, got {tracker!r}")
    valid = np.asarray(frame_valid, dtype=bool)
    net = np.asarray(network_landmarks, dtype=np.float64)
    t = len(net)
    flags: list[str] = []
    ed = net[0] if ed_landmarks is None or not np.isfinite(ed_landmarks).all() \
        else np.asarray(ed_landmarks, dtype=np.float64)
    try:
        if not np.isfinite(ed).all():
            raise ValueError("no ED landmarks")
        h = CineHarmonics.analyse(frames, valid, ed.mean(axis=0))
    except ValueError:
        strains = _strains(net, spacing_mm, valid)
        return SliceMeasurement(net, strains, np.full(t, np.nan), float("nan"), float("nan"),
                                ["no_tag_grid"], "network")
    if tracker == "tags":
        box = None if roi_box is None else np.asarray(roi_box, dtype=np.float64)
        start = ed.mean(axis=0) if box is None or not np.isfinite(box).all() \
            else np.array([(box[0] + box[2]) / 2, (box[1] + box[3]) / 2])
        ed, tracker, fit_flags = _tag_geometry(h, ed, spacing_mm, start)
        flags += fit_flags
    harp = track_harp(frames, valid, ed, harmonics=h, refine=register_frames).landmarks
    reported = {"network": net, "harp": harp, "tags": harp}.get(tracker)
    if reported is None:  # hybrid: the tracker's motion, from the ED ring HARP follows
        reported = track_harp(frames, valid, ed, guide=net - net[0] + ed,
                              harmonics=h, refine=register_frames).landmarks
    strains = _strains(reported, spacing_mm, valid)
    es = int(strains["es_frame"])
    uncertainty = float("nan")
    if es >= 0:
        s_net = strains if reported is net else _strains(net, spacing_mm, valid)
        s_harp = strains if reported is harp else _strains(harp, spacing_mm, valid)
        uncertainty = float(abs(s_net["circ_global"][es] - s_harp["circ_global"][es]))
    contrast = qc.tag_contrast(h, reported)
    _, residual = qc.phase_residual_px(h, reported, contrast)
    flags += qc.qc_flags(contrast, es, residual, uncertainty,
                         qc.cavity_tag_ratio(reported[0], h.wavelength_px))
    return SliceMeasurement(reported, strains, contrast, residual, uncertainty, flags, tracker)
