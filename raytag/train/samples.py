"""Labelled slices -> training samples: preprocessed once (padding, normalisation, crops).

One sample per slice (numpy, ready for a Ray Dataset row):

- ``ed`` float16 ``(256, 256)``: the normalised, padded ED frame (regression localiser input);
- ``loc`` float16 ``(3, 128, 128)``: the centre localiser's input
  (:func:`raytag.models.networks.localiser_inputs`);
- ``ed_points`` float32 ``(168, 2)``: truth ED landmarks in padded pixels (box augmentation);
- ``box`` float32 ``(4,)``: the truth ROI box in padded pixels (localiser target);
- ``crops`` float16 ``(20, 128, 128)``: every frame cropped with the truth ED box;
- ``points`` float32 ``(20, 168, 2)``: truth landmarks in crop pixels (NaN on padding);
- ``valid`` bool ``(20,)``; ``mm_per_crop_px`` float32 ``(2,)`` = (x, y) mm per crop pixel;
- ``es_frame`` int, ``eid`` str, ``slice_index`` int, ``group`` str.

The predictor applies the same padding, normalisation and crop, so training and inference
see the same inputs.
"""

from __future__ import annotations

import numpy as np
import torch

from raytag import geometry
from raytag.constants import CROP_SIZE, PAD_SIZE
from raytag.io.labelled import LabelledSlice
from raytag.models.networks import localiser_inputs
from raytag.models.normalise import NORMALISATION, normalise_cines
from raytag.models.presets import CentreLocaliserConfig

__all__ = ["make_sample", "mm_per_crop_px"]


def mm_per_crop_px(box: np.ndarray, spacing_mm: np.ndarray, size: int = CROP_SIZE) -> np.ndarray:
    """``(x, y)`` millimetres per crop pixel: box width/height over ``size`` times spacing."""
    box = np.asarray(box, dtype=np.float64)
    spacing = np.asarray(spacing_mm, dtype=np.float64)  # (row, col)
    return np.stack([(box[..., 2] - box[..., 0]) / size * spacing[..., 1],
                     (box[..., 3] - box[..., 1]) / size * spacing[..., 0]], axis=-1)


def make_sample(item: LabelledSlice, normalisation: dict = NORMALISATION) -> dict:
    """Preprocess one labelled slice (see the module docstring for the fields)."""
    rec = item.record
    padded, offsets = geometry.pad_to_square(rec.frames, PAD_SIZE)
    valid_t = torch.as_tensor(rec.frame_valid[None])
    norm_t = normalise_cines(torch.as_tensor(padded[None]), valid_t, normalisation)
    loc = localiser_inputs(norm_t, valid_t, CentreLocaliserConfig().input_size)[0].numpy()
    norm = norm_t[0].numpy()
    points = geometry.points_to_padded(item.landmarks_px, offsets)
    shift = np.array([offsets[1], offsets[0]], dtype=np.float64)
    box = np.asarray(item.bbox_px, dtype=np.float64) + np.concatenate([shift, shift])
    crops = geometry.crop_resample(norm, box)
    crop_points = geometry.points_to_crop(points, box)
    crop_points[~rec.frame_valid] = np.nan
    return {
        "ed": norm[0].astype(np.float16),
        "loc": loc.astype(np.float16),
        "ed_points": points[0].astype(np.float32),
        "box": box.astype(np.float32),
        "crops": crops.astype(np.float16),
        "points": crop_points.astype(np.float32),
        "valid": rec.frame_valid.copy(),
        "mm_per_crop_px": mm_per_crop_px(box, rec.pixel_spacing_mm).astype(np.float32),
        "es_frame": int(item.es_frame),
        "eid": rec.eid,
        "slice_index": int(rec.slice_index or 0),
        "group": item.group or "",
    }
