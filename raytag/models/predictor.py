"""Batched inference: slice records -> ROI box, landmarks, strain (the networks, once loaded).

Pipeline per batch (no per-frame Python loops):

1. zero-pad every cine to 256x256 (:func:`raytag.geometry.pad_to_square`, offsets kept);
2. per-cine normalisation (:mod:`raytag.models.normalise`, as recorded in the checkpoint);
3. localiser on the ED frame -> box in padded pixels (corners sorted, minimum size);
4. crop every frame with its ED box and resample to 128x128 bicubically with separate x/y
   scales, as two batched matrix products in torch (matrices from
   :func:`raytag.geometry.crop_weights`, the same sampling as the numpy path);
5. tracker -> landmarks in crop pixels -> original pixels (exact inverse maps of
   :mod:`raytag.geometry`); padded (invalid) frames get NaN landmarks, never a guess;
6. per slice, the tracker chosen (``network``, ``harp`` or ``hybrid``), strain curves, ES
   and tag QC with :func:`raytag.tracking.measure.measure_slice` (numpy, shared with the
   cohort pipeline's CPU stage).

Runs under ``torch.inference_mode``; on CUDA with bf16 autocast by default, on CPU in fp32.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from raytag import __version__, geometry
from raytag.constants import (
    CROP_SIZE,
    LOCALISER_VIEW_CHOICES,
    LOCALISER_VIEWS,
    N_FRAMES,
    PAD_SIZE,
    REFINE_PASSES,
)
from raytag.io.records import SliceRecord
from raytag.models.checkpoint import Checkpoint, load_checkpoint
from raytag.models.networks import CentreLocaliser, EDNet, Localiser, Tracker, split_xy
from raytag.models.normalise import NORMALISATION, normalise_cines
from raytag.strain import compute_strains
from raytag.tracking.measure import TRACKERS, SliceMeasurement, measure_slice

__all__ = ["Predictor", "Prediction", "NetworkOutput", "MIN_BOX_PX", "finish_prediction"]

#: A predicted box narrower than this (padded px) is widened about its centre.
MIN_BOX_PX = 16.0


@dataclass
class NetworkOutput:
    """The networks' part for B slices: ``bbox_px`` ``(B, 4)``, ``landmarks_px``
    ``(B, T, 168, 2)`` (NaN on invalid frames) and, with an ED-geometry network,
    ``ed_px`` ``(B, 168, 2)``, in original pixels."""

    bbox_px: np.ndarray
    landmarks_px: np.ndarray
    model_version: str
    ed_px: np.ndarray | None = None


@dataclass
class Prediction:
    """Outputs for a batch of B slices (numpy, original pixel space).

    ``bbox_px`` ``(B, 4)``; ``landmarks_px`` ``(B, T, 168, 2)`` the reported track (NaN on
    invalid frames); ``strains``: :func:`raytag.strain.compute_strains` output stacked over
    slices (curves ``(B, T)``, ``es_frame`` ``(B,)``, ES values ``(B,)``); ``model_version``;
    ``measurements``: per slice :class:`~raytag.tracking.measure.SliceMeasurement` (tag
    contrast, phase residual, tracker uncertainty, QC flags, tracker used), or None when
    the prediction was made without them (``tracking=None``).
    """

    bbox_px: np.ndarray
    landmarks_px: np.ndarray
    strains: dict
    model_version: str
    measurements: list[SliceMeasurement] | None = None


def finish_prediction(records: Sequence[SliceRecord], net: NetworkOutput,
                      tracking: str | None) -> Prediction:
    """Network output -> the reported prediction: per slice the ``tracking`` track, strain
    and tag QC (:func:`~raytag.tracking.measure.measure_slice`); ``tracking=None`` reports
    the network's landmarks without tag analysis (the paper's pipeline, fastest)."""
    spacing = np.stack([r.pixel_spacing_mm for r in records])  # (row, col)
    valid = np.stack([r.frame_valid for r in records])
    if tracking is None:
        strains = compute_strains(geometry.px_to_mm(net.landmarks_px, spacing),
                                  frame_valid=valid)
        return Prediction(net.bbox_px, net.landmarks_px, strains, net.model_version)
    eds = net.ed_px if net.ed_px is not None else [None] * len(records)
    ms = [measure_slice(r.frames, r.frame_valid, r.pixel_spacing_mm, pts, tracking, ed, box)
          for r, pts, ed, box in zip(records, net.landmarks_px, eds, net.bbox_px, strict=True)]
    strains = {k: np.stack([np.asarray(m.strains[k]) for m in ms]) for k in ms[0].strains}
    return Prediction(net.bbox_px, np.stack([m.landmarks_px for m in ms]), strains,
                      f"{net.model_version} tracker={tracking}", ms)


def _default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


class Predictor:
    """Both networks loaded once; :meth:`predict` maps slice records to measurements.

    ``amp``: autocast dtype on CUDA (``torch.bfloat16`` default, ``torch.float16`` or None
    for fp32); ignored on CPU, where fp32 is both faster and exact.

    ``refine_passes`` (beyond the paper; default 0, :data:`~raytag.constants.REFINE_PASSES`
    says why): after tracking, the ROI box is recomputed from the
    tracked ED landmarks (:func:`raytag.geometry.roi_box`, the rule that made the training
    boxes) and the tracker runs again on that crop, this many times. The tracker was trained
    on crops around truth boxes, so a localiser error (anisotropic especially) shows up as
    a distorted crop it has not seen; one pass re-centres the crop on what it tracked.
    Each pass costs one more tracker forward. The reported box is the last one used.

    ``localiser_views``: 1 or 8, the centre localiser's test-time views
    (:meth:`~raytag.models.networks.CentreLocaliser.locate_views`); ignored by the corner
    localiser.

    ``tracking``: what moves the landmarks after the networks (see
    :mod:`raytag.tracking.measure`): ``network``, ``harp`` or ``hybrid``, each with tag QC;
    None for the network's landmarks without tag analysis (``raytag run --tracker``).
    """

    def __init__(
        self,
        localiser: Localiser | CentreLocaliser,
        tracker: Tracker,
        normalisation: dict = NORMALISATION,
        model_version: str = "untrained",
        device: str | torch.device | None = None,
        amp: torch.dtype | None = torch.bfloat16,
        refine_passes: int = REFINE_PASSES,
        tracking: str | None = "network",
        ed_net: EDNet | None = None,
        localiser_views: int = LOCALISER_VIEWS,
    ):
        if localiser_views not in LOCALISER_VIEW_CHOICES:
            raise ValueError(f"localiser_views must be one of {LOCALISER_VIEW_CHOICES}, got "
                             f"{localiser_views}")
        self.localiser_views = int(localiser_views)
        if refine_passes < 0:
            raise ValueError("refine_passes must be >= 0")
        if tracking is not None and tracking not in TRACKERS:
            raise ValueError(f"tracking must be one of {TRACKERS} or None, got {tracking!r}")
        self.tracking = tracking
        self.refine_passes = int(refine_passes)
        self.device = torch.device(device) if device is not None else _default_device()
        self.localiser = localiser.eval().to(self.device)
        self.tracker = tracker.eval().to(self.device)
        self.ed_net = ed_net.eval().to(self.device) if ed_net is not None else None
        self.normalisation = dict(normalisation)
        self.model_version = model_version
        self.amp = amp if self.device.type == "cuda" else None
        if tracker.config.n_frames != N_FRAMES or tracker.config.input_size != CROP_SIZE:
            raise ValueError("tracker must take 20 frames of 128x128")

    @classmethod
    def from_checkpoints(cls, localiser_uri: str, tracker_uri: str, device=None,
                         amp: torch.dtype | None = torch.bfloat16,
                         refine_passes: int = REFINE_PASSES,
                         tracking: str | None = "network",
                         ed_uri: str | None = None,
                         localiser_views: int = LOCALISER_VIEWS) -> Predictor:
        loc: Checkpoint = load_checkpoint(localiser_uri, kind="localiser")
        trk: Checkpoint = load_checkpoint(tracker_uri, kind="tracker")
        ed = load_checkpoint(ed_uri, kind="ed") if ed_uri else None
        for other in (loc, ed):
            if other is not None and other.normalisation != trk.normalisation:
                raise ValueError(
                    f"checkpoints disagree on normalisation: {other.normalisation} vs "
                    f"{trk.normalisation}")
        version = f"raytag-{__version__} {loc.version} {trk.version}"
        if ed is not None:
            version += f" {ed.version}"
        if localiser_views > 1 and isinstance(loc.model, CentreLocaliser):
            version += f" views{localiser_views}"
        if refine_passes:
            version += f" refine{refine_passes}"
        return cls(loc.model, trk.model, trk.normalisation, version, device, amp,
                   refine_passes, tracking, ed.model if ed is not None else None,
                   localiser_views)

    # -- the batched core ---------------------------------------------------------------

    def predict_padded(
        self, padded: np.ndarray, frame_valid: np.ndarray, boxes: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """``(B, T, 256, 256)`` frames + ``(B, T)`` validity -> padded-space boxes, landmarks
        and (with an ED-geometry network) ED landmarks.

        Returns ``boxes`` ``(B, 4)``, ``landmarks`` ``(B, T, 168, 2)`` float64 (NaN on
        invalid frames) and ``ed`` ``(B, 168, 2)`` or None, all in padded pixels. Given
        ``boxes`` (padded px), the localiser and the refinement passes are skipped (e.g. to
        measure the tracker on truth boxes, localisation out of the loop). The refinement
        re-crops on the ED-geometry network's landmarks when there is one (it is the one
        trained to find the ED myocardium), else on the tracker's frame 0.
        """
        valid_np = np.asarray(frame_valid, dtype=bool)
        valid = torch.as_tensor(valid_np, device=self.device)
        frames = torch.as_tensor(np.ascontiguousarray(padded), device=self.device)
        x = normalise_cines(frames, valid, self.normalisation)
        if boxes is None:
            with torch.inference_mode(), self._autocast():
                if isinstance(self.localiser, CentreLocaliser):
                    boxes = self.localiser.locate(x, valid, views=self.localiser_views)
                else:
                    boxes = self.localiser.locate(x, valid)
                boxes = boxes.float().cpu().numpy()
            boxes = _sanitise_boxes(boxes.astype(np.float64))
            points, ed = self._track(x, valid, boxes)
            for _ in range(self.refine_passes):
                refined = geometry.roi_box(ed if ed is not None else points[:, 0])
                # keep the previous box where the ED landmarks give none (NaN or collapsed)
                ok = np.isfinite(refined).all(axis=1) & (refined[:, 2] - refined[:, 0] > 1) \
                    & (refined[:, 3] - refined[:, 1] > 1)
                if not ok.any():
                    break
                boxes = _sanitise_boxes(np.where(ok[:, None], refined, boxes))
                new_points, new_ed = self._track(x, valid, boxes)
                points = np.where(ok[:, None, None, None], new_points, points)
                if ed is not None:
                    ed = np.where(ok[:, None, None], new_ed, ed)
        else:
            boxes = np.asarray(boxes, dtype=np.float64)
            points, ed = self._track(x, valid, boxes)
        points[~valid_np] = np.nan
        return boxes, points, ed

    def _track(self, x: torch.Tensor, valid: torch.Tensor, boxes: np.ndarray):
        """Normalised padded cines ``(B, T, 256, 256)`` + padded boxes ``(B, 4)`` -> tracked
        landmarks ``(B, T, 168, 2)`` and ED-network landmarks ``(B, 168, 2)`` (or None),
        float64 in padded pixels."""
        wy, wx = geometry.crop_weights(boxes, PAD_SIZE, PAD_SIZE, CROP_SIZE)
        wy_t = torch.as_tensor(wy, device=self.device)
        wx_t = torch.as_tensor(wx, device=self.device)
        with torch.inference_mode(), self._autocast():
            crops = torch.einsum("bih,bthw,bjw->btij", wy_t, x, wx_t)
            flat = self.tracker(crops)
            ed = self.ed_net.locate(crops, valid) if self.ed_net is not None else None
        crop_pts = split_xy(flat.float(), self.tracker.config.n_landmarks).cpu().numpy()
        points = geometry.points_from_crop(crop_pts.astype(np.float64), boxes, CROP_SIZE)
        if ed is not None:
            ed = geometry.points_from_crop(ed.float().cpu().numpy().astype(np.float64)[:, None],
                                           boxes, CROP_SIZE)[:, 0]
        return points, ed

    def _autocast(self):
        if self.amp is None:
            return torch.autocast(self.device.type, enabled=False)
        return torch.autocast(self.device.type, dtype=self.amp)

    # -- records in, measurements out ---------------------------------------------------

    def predict_network(self, records: Sequence[SliceRecord],
                        boxes: np.ndarray | None = None) -> NetworkOutput:
        """The networks on a batch of ``ok`` records (any matrix sizes; each padded to 256):
        boxes and landmarks in original pixels. ``boxes`` ``(B, 4)`` original px: use these
        instead of the localiser's (see :meth:`predict_padded`)."""
        if not records:
            raise ValueError("no records to predict")
        bad = [r for r in records if not r.ok or r.frames is None]
        if bad:
            raise ValueError(f"{len(bad)} record(s) are not ok or have no frames")
        padded, offsets = zip(*(geometry.pad_to_square(r.frames, PAD_SIZE) for r in records),
                              strict=True)
        valid = np.stack([r.frame_valid for r in records])
        offs = np.asarray(offsets, dtype=np.float64)  # (B, 2) = (row_off, col_off)
        shift = np.stack([offs[:, 1], offs[:, 0]], axis=-1)  # (x, y)
        shift4 = np.concatenate([shift, shift], axis=-1)
        boxes, points, ed = self.predict_padded(np.stack(padded), valid,
                                                None if boxes is None else boxes + shift4)
        bbox = boxes - shift4
        return NetworkOutput(bbox, points - shift[:, None, None, :], self.model_version,
                             None if ed is None else ed - shift[:, None, :])

    def predict(self, records: Sequence[SliceRecord],
                boxes: np.ndarray | None = None) -> Prediction:
        """Measure a batch of ``ok`` slice records: networks, then :attr:`tracking`'s track,
        strain and tag QC per slice (:func:`finish_prediction`). ``boxes``: see
        :meth:`predict_network`."""
        return finish_prediction(records, self.predict_network(records, boxes), self.tracking)


def _sanitise_boxes(boxes: np.ndarray) -> np.ndarray:
    """Sort corners and enforce a minimum size, so every crop is well defined."""
    x1, x2 = np.minimum(boxes[:, 0], boxes[:, 2]), np.maximum(boxes[:, 0], boxes[:, 2])
    y1, y2 = np.minimum(boxes[:, 1], boxes[:, 3]), np.maximum(boxes[:, 1], boxes[:, 3])
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    half_w = np.maximum(x2 - x1, MIN_BOX_PX) / 2
    half_h = np.maximum(y2 - y1, MIN_BOX_PX) / 2
    return np.stack([cx - half_w, cy - half_h, cx + half_w, cy + half_h], axis=-1)
