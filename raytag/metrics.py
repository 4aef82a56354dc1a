"""Metrics (numpy only, the pure core): landmark RMSE in mm, ROI IoU, ES strain agreement,
the summary of a prediction set, and the zoom window that figures show a slice through.

Shared by the training loop, ``raytag evaluate``, the benchmarks, the model card and the
report, so every number is computed one way.
"""

from __future__ import annotations

import numpy as np

from raytag import geometry
from raytag.strain import compute_strains

__all__ = ["landmark_rmse_mm", "box_iou", "strain_agreement", "summarise", "zoom_window",
           "ZOOM_ENLARGE"]

box_iou = geometry.box_iou

#: Figures zoom to the ROI box enlarged by this fraction of its size (on both sides).
ZOOM_ENLARGE = 0.5


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
    keys = ("circ_global", "radial", "circ_midwall")
    return {f"{k}_error": sp[f"es_{k}"] - st[f"es_{k}"] for k in keys} | {
        f"{k}_true": st[f"es_{k}"] for k in keys}


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson's r (NaN with fewer than 3 pairs or no spread)."""
    if len(a) < 3 or np.std(a) == 0 or np.std(b) == 0:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])


def summarise(pred_mm, true_mm, valid, es_frame, pred_box=None, true_box=None) -> dict:
    """Mean/SD summary: RMSE at ED and ES, ES strain bias and SD, IoU when boxes are given."""
    es = np.asarray(es_frame)
    rmse_ed = landmark_rmse_mm(pred_mm, true_mm, np.zeros_like(es))
    rmse_es = landmark_rmse_mm(pred_mm, true_mm, es)
    agree = strain_agreement(pred_mm, true_mm, valid, es)
    centre = np.hypot(*(np.nanmean(pred_mm[:, 0], axis=1) - np.nanmean(true_mm[:, 0], axis=1)).T)
    out = {
        "n_slices": int(len(es)),
        # slices whose ES landmarks could be compared (the means below are over these)
        "n_measured": int(np.sum(np.isfinite(rmse_es))),
        "centre_error_mm_median": float(np.nanmedian(centre)),
        "centre_error_mm_p90": float(np.nanpercentile(centre, 90)),
        "rmse_ed_mm_mean": float(np.nanmean(rmse_ed)), "rmse_ed_mm_sd": float(np.nanstd(rmse_ed)),
        "rmse_es_mm_mean": float(np.nanmean(rmse_es)), "rmse_es_mm_sd": float(np.nanstd(rmse_es)),
    }
    for k in ("circ_global", "radial", "circ_midwall"):
        err = agree[f"{k}_error"]
        out[f"es_{k}_bias"] = float(np.nanmean(err))
        out[f"es_{k}_sd"] = float(np.nanstd(err, ddof=1)) if np.sum(np.isfinite(err)) > 1 else 0.0
        true = agree[f"{k}_true"]
        ok = np.isfinite(err) & np.isfinite(true)
        # Beside every error, the truth's own spread and the correlation: an error SD is
        # only worth something below the truth SD (a constant predictor's error SD).
        out[f"es_{k}_true_sd"] = float(np.std(true[ok], ddof=1)) if ok.sum() > 1 else 0.0
        out[f"es_{k}_r"] = _pearson(true[ok] + err[ok], true[ok])
    if pred_box is not None and true_box is not None:
        iou = geometry.box_iou(np.asarray(pred_box), np.asarray(true_box))
        out["iou_mean"], out["iou_sd"] = float(np.mean(iou)), float(np.std(iou))
        out["iou_min"] = float(np.min(iou))
    return out


def zoom_window(box: np.ndarray, pts: np.ndarray, shape_rc: tuple[int, int]):
    """(xlo, xhi, ylo, yhi) in data coords: box enlarged, grown to hold ``pts``, clipped."""
    x1, y1, x2, y2 = (float(v) for v in box)
    gx, gy = 0.5 * ZOOM_ENLARGE * (x2 - x1), 0.5 * ZOOM_ENLARGE * (y2 - y1)
    xlo, xhi, ylo, yhi = x1 - gx, x2 + gx, y1 - gy, y2 + gy
    finite = pts[np.all(np.isfinite(pts), axis=-1)]
    if finite.size:  # never hide a landmark of a shown frame
        xlo, ylo = min(xlo, finite[:, 0].min() - 2.0), min(ylo, finite[:, 1].min() - 2.0)
        xhi, yhi = max(xhi, finite[:, 0].max() + 2.0), max(yhi, finite[:, 1].max() + 2.0)
    rows, cols = shape_rc
    xlo, xhi = max(xlo, -0.5), min(xhi, cols - 0.5)
    ylo, yhi = max(ylo, -0.5), min(yhi, rows - 0.5)
    if not (xhi > xlo and yhi > ylo):  # degenerate: show the whole image
        xlo, xhi, ylo, yhi = -0.5, cols - 0.5, -0.5, rows - 0.5
    return xlo, xhi, ylo, yhi
