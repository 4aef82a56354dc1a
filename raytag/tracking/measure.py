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
  wall keeps them: :mod:`raytag.tracking.edfit`) around the network's heart, moved by
  HARP; the row's ``tracker`` says ``harp`` where the fit was not trustworthy and the
  network's ED landmarks were used instead.

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
from raytag.tracking.edfit import MIN_CONTRAST, MIN_RAYS_USED, fit_ed_geometry
from raytag.tracking.harp import CineHarmonics, track_harp

__all__ = ["TRACKERS", "SliceMeasurement", "measure_slice"]

#: ``tags``: a fit whose cavity centre lies farther than this (mm) from the network's is
#: not trusted (its contour leaked into a neighbouring blood pool). Set on disc and thorax
#: cohorts, where it halves the outliers; it trusts the network's centre, which the model
#: card names as the part to replace next.
MAX_SHIFT_MM = 4.0


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


def _tag_geometry(h: CineHarmonics, ed: np.ndarray, spacing_mm) -> tuple[np.ndarray, str]:
    """ED landmarks ``(168, 2)`` fitted to tag persistence around the network's ED
    centroid (its spoke 0 as the septum hint), and the tracker that reports them: ``tags``;
    or the network's own landmarks and ``harp`` when the fit is not trustworthy (no
    washed-out cavity, or its centre more than :data:`MAX_SHIFT_MM` from the network's).

    Why the fit replaces the network's geometry instead of only checking it: a network
    trained on synthetic images is out of its distribution on every real one, and keeping
    the network's geometry wherever it passed a physics check left the held-out family's
    ES circumferential error SD at 0.46 (model card).
    """
    centre = ed.mean(axis=0)
    hint = float(np.arctan2(*(ed[0] - centre)[::-1]))
    try:
        fit = fit_ed_geometry(h, centre, spacing_mm, septum_hint=hint)
    except ValueError:
        return ed, "harp"
    if fit.contrast < MIN_CONTRAST or fit.rays_used < MIN_RAYS_USED \
            or not np.isfinite(fit.landmarks).all():
        return ed, "harp"
    shift_mm = float(np.linalg.norm(fit.centre - centre) * np.mean(spacing_mm))
    if shift_mm > MAX_SHIFT_MM:  # the contour walked off (into a neighbouring pool)
        return ed, "harp"
    return fit.landmarks, "tags"


def measure_slice(frames: np.ndarray, frame_valid: np.ndarray, spacing_mm,
                  network_landmarks: np.ndarray, tracker: str = "network",
                  ed_landmarks: np.ndarray | None = None) -> SliceMeasurement:
    """Track (per ``tracker``), measure strain and tag QC for one slice.

    ``frames`` ``(T, rows, cols)`` original matrix; ``frame_valid`` ``(T,)``; ``spacing_mm``
    ``(row, col)``; ``network_landmarks`` ``(T, 168, 2)`` original px (the tracker's);
    ``ed_landmarks`` ``(168, 2)``: where HARP starts (the ED-geometry network's), else
    the tracker's frame 0.
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
        ed, tracker = _tag_geometry(h, ed, spacing_mm)
    harp = track_harp(frames, valid, ed, harmonics=h).landmarks
    reported = {"network": net, "harp": harp, "tags": harp}.get(tracker)
    if reported is None:  # hybrid: the tracker's motion, from the ED ring HARP follows
        reported = track_harp(frames, valid, ed, guide=net - net[0] + ed,
                              harmonics=h).landmarks
    strains = _strains(reported, spacing_mm, valid)
    es = int(strains["es_frame"])
    uncertainty = float("nan")
    if es >= 0:
        s_net = strains if reported is net else _strains(net, spacing_mm, valid)
        s_harp = strains if reported is harp else _strains(harp, spacing_mm, valid)
        uncertainty = float(abs(s_net["circ_global"][es] - s_harp["circ_global"][es]))
    contrast = qc.tag_contrast(h, reported)
    _, residual = qc.phase_residual_px(h, reported, contrast)
    flags += qc.qc_flags(contrast, es, residual, uncertainty)
    return SliceMeasurement(reported, strains, contrast, residual, uncertainty, flags, tracker)
