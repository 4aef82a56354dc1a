"""Validation and test metrics (numpy): ROI IoU, landmark RMSE in mm, ES strain agreement.

Shared by the training loop, ``raytag evaluate`` and the shipped-weights card, so every
number is computed one way.
"""

from __future__ import annotations

import numpy as np

from raytag import geometry
from raytag.strain import compute_strains

__all__ = ["landmark_rmse_mm", "strain_agreement", "summarise"]


def landmark_rmse_mm(pred_mm: np.ndarray, true_mm: np.ndarray, frame: np.ndarray) -> np.ndarray:
    """Per-slice RMSE ``(B,)`` over the 168 landmarks at ``frame`` ``(B,)`` (points in mm)."""
    idx = np.arange(len(pred_mm))
    d2 = np.sum((pred_mm[idx, frame] - true_mm[idx, frame]) ** 2, axis=-1)  # (B, 168)
    return np.sqrt(np.mean(d2, axis=-1))


def strain_agreement(pred_mm: np.ndarray, true_mm: np.ndarray, valid: np.ndarray,
                     es_frame: np.ndarray) -> dict[str, np.ndarray]:
    """Per-slice ES strain errors (pred - truth) at the *truth* ES frame, ``(B,)`` each."""
    es = np.asarray(es_frame)
    sp = compute_strains(pred_mm, frame_valid=valid, es_frame=es)
    st = compute_strains(true_mm, frame_valid=valid, es_frame=es)
    return {f"{k}_error": sp[f"es_{k}"] - st[f"es_{k}"]
            for k in ("circ_global", "radial", "circ_midwall")} | {
        "circ_global_true": st["es_circ_global"], "radial_true": st["es_radial"]}


def summarise(pred_mm, true_mm, valid, es_frame, pred_box=None, true_box=None) -> dict:
    """Mean/SD summary: RMSE at ED and ES, ES strain bias and SD, IoU when boxes are given."""
    es = np.asarray(es_frame)
    rmse_ed = landmark_rmse_mm(pred_mm, true_mm, np.zeros_like(es))
    rmse_es = landmark_rmse_mm(pred_mm, true_mm, es)
    agree = strain_agreement(pred_mm, true_mm, valid, es)
    out = {
        "n_slices": int(len(es)),
        "rmse_ed_mm_mean": float(np.nanmean(rmse_ed)), "rmse_ed_mm_sd": float(np.nanstd(rmse_ed)),
        "rmse_es_mm_mean": float(np.nanmean(rmse_es)), "rmse_es_mm_sd": float(np.nanstd(rmse_es)),
    }
    for k in ("circ_global", "radial", "circ_midwall"):
        err = agree[f"{k}_error"]
        out[f"es_{k}_bias"] = float(np.nanmean(err))
        out[f"es_{k}_sd"] = float(np.nanstd(err, ddof=1)) if np.sum(np.isfinite(err)) > 1 else 0.0
    if pred_box is not None and true_box is not None:
        iou = geometry.box_iou(np.asarray(pred_box), np.asarray(true_box))
        out["iou_mean"], out["iou_sd"] = float(np.mean(iou)), float(np.std(iou))
        out["iou_min"] = float(np.min(iou))
    return out
