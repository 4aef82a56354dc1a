"""``raytag evaluate``: a checkpoint pair end to end on a held-out labelled set.

Runs the :class:`~raytag.models.predictor.Predictor` (localiser box -> crops -> tracker ->
original pixels) on every slice and compares with the truth: ROI IoU, landmark RMSE (mm) at
ED and ES, ES strain bias and SD (global circ, midwall circ, radial) overall and per slice
level. Writes ``metrics.json`` and ``metrics.md`` (a short table) to ``out``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence

import numpy as np

from raytag import geometry, logs
from raytag.constants import SLICE_LABELS
from raytag.io import storage
from raytag.io.labelled import LabelledSlice, read_study_hdf5, read_synthetic_cohort
from raytag.metrics import summarise
from raytag.models.predictor import Predictor
from raytag.train.split import split_participants

__all__ = ["evaluate", "labelled_split", "predict_labelled"]


def labelled_split(data_uri: str, split: str = "all", seed: int = 0,
                   limit: int | None = None) -> list[LabelledSlice]:
    """The labelled slices of ``split`` (``all``, or ``train``/``val``/``test`` as in training)."""
    reader = read_study_hdf5 if str(data_uri).endswith((".h5", ".hdf5")) else \
        read_synthetic_cohort
    items = list(reader(data_uri, limit=limit))
    if split == "all":
        return items
    assign = split_participants([it.record.eid for it in items], seed)
    return [it for it in items if assign[it.record.eid] == split]


def predict_labelled(predictor: Predictor, items: Sequence[LabelledSlice],
                     batch_size: int = 8, progress: bool = False) -> dict[str, np.ndarray]:
    """Run ``predictor`` on labelled slices; predictions and truth side by side.

    Returns float64 arrays: ``pred_mm``/``true_mm`` ``(B, T, 168, 2)`` landmarks in mm,
    ``pred_box``/``true_box`` ``(B, 4)`` in original pixels, ``valid`` ``(B, T)`` bool,
    ``es`` ``(B,)`` int (the truth's ES frame), ``slice_index`` ``(B,)`` int.
    """
    if not items:
        raise ValueError("no labelled slices to evaluate")
    pred_pts, pred_box = [], []
    bar = logs.Progress(len(items), "evaluate", unit="slice") if progress else None
    for i in range(0, len(items), batch_size):
        batch = items[i : i + batch_size]
        out = predictor.predict([it.record for it in batch])
        pred_pts.append(out.landmarks_px)
        pred_box.append(out.bbox_px)
        if bar:
            bar.update(len(batch))
    if bar:
        bar.close()
    spacing = np.stack([it.record.pixel_spacing_mm for it in items])
    return {
        "pred_mm": geometry.px_to_mm(np.concatenate(pred_pts), spacing),
        "true_mm": geometry.px_to_mm(np.stack([it.landmarks_px for it in items]), spacing),
        "pred_box": np.concatenate(pred_box),
        "true_box": np.stack([it.bbox_px for it in items]),
        "valid": np.stack([it.record.frame_valid for it in items]),
        "es": np.array([it.es_frame for it in items]),
        "slice_index": np.array([it.record.slice_index or 0 for it in items]),
    }


def evaluate(predictor: Predictor, items: Iterable[LabelledSlice], batch_size: int = 8,
             progress: bool = True) -> dict:
    """Metrics of ``predictor`` on ``items`` (overall and per slice level)."""
    a = predict_labelled(predictor, list(items), batch_size, progress)
    keys = ("pred_mm", "true_mm", "valid", "es", "pred_box", "true_box")
    result = {"overall": summarise(*(a[k] for k in keys)),
              "model_version": predictor.model_version}
    for idx, label in SLICE_LABELS.items():
        m = a["slice_index"] == idx
        if m.sum() >= 2:
            result[label] = summarise(*(a[k][m] for k in keys))
    return result


def write_report(metrics: dict, out_dir: str) -> tuple[str, str]:
    """``metrics.json`` and ``metrics.md`` under ``out_dir``; returns their URIs."""
    json_uri, md_uri = storage.join(out_dir, "metrics.json"), storage.join(out_dir, "metrics.md")
    storage.write_bytes(json_uri, json.dumps(metrics, indent=1).encode())
    storage.write_bytes(md_uri, format_table(metrics).encode())
    return json_uri, md_uri


def format_table(metrics: dict) -> str:
    rows = ["| set | n | IoU | RMSE ED mm | RMSE ES mm | ES circ bias +- SD "
            "| ES radial bias +- SD |", "|---|---|---|---|---|---|---|"]
    for name, m in metrics.items():
        if not isinstance(m, dict):
            continue
        rows.append(
            f"| {name} | {m['n_slices']} | {m.get('iou_mean', float('nan')):.3f} | "
            f"{m['rmse_ed_mm_mean']:.2f} +- {m['rmse_ed_mm_sd']:.2f} | "
            f"{m['rmse_es_mm_mean']:.2f} +- {m['rmse_es_mm_sd']:.2f} | "
            f"{m['es_circ_global_bias']:+.3f} +- {m['es_circ_global_sd']:.3f} | "
            f"{m['es_radial_bias']:+.3f} +- {m['es_radial_sd']:.3f} |")
    return "\n".join(rows) + f"\n\nmodel: {metrics.get('model_version', '')}\n"
