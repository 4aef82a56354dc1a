"""The results table (docs/results.md): one row per slice, a public contract.

Column names here are public: add columns freely, never rename these. The schema is pure
pyarrow so that the pipeline, the demo and the report all write and read the same table.

Also the one mapping between :class:`~raytag.io.records.SliceRecord` s and the columnar
batches that carry them between the cohort pipeline's stages (:func:`records_to_batch`,
:func:`batch_to_records`): frames travel as numpy arrays (a variable-shaped tensor column),
float64 stays float64, so what the model stage sees is exactly what the ingest read.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pyarrow as pa

from raytag.constants import N_FRAMES, STATUS_OK
from raytag.io.records import SliceRecord
from raytag.strain import CURVE_NAMES

__all__ = ["RESULTS_SCHEMA", "result_row", "rows_to_table", "measured_model_versions",
           "records_to_batch", "batch_to_records"]

_f64_list = pa.list_(pa.float64())

RESULTS_SCHEMA = pa.schema(
    [
        ("eid", pa.string()),
        ("instance", pa.int64()),
        ("slice_index", pa.int64()),
        ("slice_label", pa.string()),
        ("status", pa.string()),
        ("error", pa.string()),
        ("stage", pa.string()),
        ("qc_flags", pa.list_(pa.string())),
        ("n_frames", pa.int64()),
        ("pixel_spacing_mm", _f64_list),
        ("bbox_px", _f64_list),
        ("landmarks_px", _f64_list),
        ("es_frame", pa.int64()),
        *[(name, _f64_list) for name in CURVE_NAMES],
        *[(f"es_{name}", pa.float64()) for name in CURVE_NAMES],
        ("model_version", pa.string()),
        ("source_uri", pa.string()),
        ("n_candidate_series", pa.int64()),
        ("series_uid", pa.string()),
        # added after the first release (never renamed):
        ("reason", pa.string()),
        ("array", pa.int64()),
        ("tracker", pa.string()),
        ("tag_contrast", _f64_list),
        ("phase_residual_px", pa.float64()),
        ("strain_uncertainty", pa.float64()),
        ("decode_node", pa.string()),
        ("model_node", pa.string()),
    ]
)


def _floats(a) -> list[float | None] | None:
    """A flat list of floats with NaN/inf as None (null in Parquet)."""
    if a is None:
        return None
    arr = np.asarray(a, dtype=np.float64).ravel()
    finite = np.isfinite(arr)
    values = arr.tolist()
    if finite.all():  # the common case, without a per-element Python check
        return values
    return [v if ok else None for v, ok in zip(values, finite.tolist(), strict=True)]


def _float(v) -> float | None:
    return float(v) if v is not None and np.isfinite(v) else None


def result_row(
    record: SliceRecord,
    strains: Mapping[str, np.ndarray] | None = None,
    landmarks_px: np.ndarray | None = None,
    bbox_px: Sequence[float] | None = None,
    model_version: str = "",
    measurement=None,
) -> dict:
    """One results-table row from an ingested record and (for ``ok`` rows) its measurements.

    ``strains`` is one slice's output of :func:`raytag.strain.compute_strains` (curves
    ``(T,)``, ``es_frame`` scalar); ``landmarks_px`` ``(T, 168, 2)`` in original pixels,
    flattened in (frame, landmark, xy) order; ``bbox_px`` (x1, y1, x2, y2). ``measurement``:
    a :class:`~raytag.tracking.measure.SliceMeasurement` (tracker, tag QC; its flags join
    ``qc_flags``). NaN becomes null.
    """
    row = {
        "eid": record.eid,
        "instance": record.instance,
        "slice_index": record.slice_index,
        "slice_label": record.slice_label,
        "status": record.status,
        "error": record.error,
        "reason": record.reason,
        "stage": record.stage,
        "qc_flags": list(record.qc_flags),
        "n_frames": record.n_frames,
        "pixel_spacing_mm": _floats(record.pixel_spacing_mm),
        "bbox_px": _floats(bbox_px),
        "landmarks_px": _floats(landmarks_px),
        "es_frame": None,
        "model_version": model_version,
        "source_uri": record.source_uri,
        "n_candidate_series": record.n_candidate_series,
        "series_uid": record.series_uid,
        "array": record.array,
        "tracker": None,
        "tag_contrast": None,
        "phase_residual_px": None,
        "strain_uncertainty": None,
    }
    for name in CURVE_NAMES:
        row[name] = None
        row[f"es_{name}"] = None
    if strains is not None and record.status == STATUS_OK:
        es = int(strains["es_frame"])
        row["es_frame"] = es if es >= 0 else None
        for name in CURVE_NAMES:
            row[name] = _floats(strains[name])
            row[f"es_{name}"] = _float(float(strains[f"es_{name}"]))
    if measurement is not None and record.status == STATUS_OK:
        row["tracker"] = measurement.tracker
        row["tag_contrast"] = _floats(measurement.tag_contrast)
        row["phase_residual_px"] = _float(measurement.phase_residual_px)
        row["strain_uncertainty"] = _float(measurement.strain_uncertainty)
        row["qc_flags"] = row["qc_flags"] + [f for f in measurement.qc_flags
                                             if f not in row["qc_flags"]]
    return row


def rows_to_table(rows: Sequence[Mapping]) -> pa.Table:
    """A table with exactly :data:`RESULTS_SCHEMA` (missing keys become null)."""
    return pa.Table.from_pylist([dict(r) for r in rows], schema=RESULTS_SCHEMA)


def measured_model_versions(versions: Sequence[str | None], statuses: Sequence[str]) -> list[str]:
    """Distinct ``model_version`` values of the measured rows (status ``ok``), sorted.

    A row that failed before tracking carries the networks' part of the version without
    the ``tracker=`` suffix (no tracker ran on it), so listing every row's version would
    name one model twice. When no row was measured, every row's version is listed, so a
    run whose slices all failed still says which model it ran. Empty and missing dropped.
    """
    measured = {v for v, s in zip(versions, statuses, strict=True) if v and s == STATUS_OK}
    return sorted(measured or {v for v in versions if v})


# --- SliceRecords <-> columnar batches (the pipeline's transit format) --------------------

_INT_FIELDS = ("instance", "array", "slice_index", "n_frames", "n_candidate_series")
_STR_FIELDS = ("eid", "status", "error", "reason", "stage", "source_uri", "series_uid")
#: Stand-in pixels of a failed record (a tensor column needs an array in every row).
_NO_FRAMES = np.zeros((N_FRAMES, 1, 1), dtype=np.uint16)


def records_to_batch(records: Sequence[SliceRecord], **extra: Sequence) -> dict[str, np.ndarray]:
    """Records -> a numpy batch (one row per record) for Ray Data's ``map_batches``.

    Integers that may be missing travel as float64 with NaN (how Ray Data's numpy batches
    represent nullable integers anyway); strings as object arrays, ``""`` for None; ``frames`` as
    a list of uint16 ``(T, rows, cols)`` arrays (shapes may differ: a variable-shaped tensor
    column); ``frame_valid`` bool ``(B, T)``; ``pixel_spacing_mm`` float64 ``(B, 2)``.
    ``extra`` columns are passed through unchanged (one value per record).
    """
    b = len(records)
    out: dict[str, np.ndarray] = {}
    for name in _INT_FIELDS:
        out[name] = np.array([np.nan if getattr(r, name) is None else float(getattr(r, name))
                              for r in records], dtype=np.float64)
    for name in _STR_FIELDS:  # "" stands for None: a column of only None has no Arrow type
        out[name] = np.array([getattr(r, name) or "" for r in records], dtype=object)
    out["qc_flags"] = np.array(["\n".join(r.qc_flags) for r in records], dtype=object)
    out["frame_valid"] = np.stack([r.frame_valid if r.frame_valid is not None
                                   else np.zeros(N_FRAMES, bool) for r in records]) \
        if b else np.zeros((0, N_FRAMES), bool)
    out["pixel_spacing_mm"] = np.stack([np.asarray(r.pixel_spacing_mm, dtype=np.float64)
                                        if r.pixel_spacing_mm is not None
                                        else np.full(2, np.nan) for r in records]) \
        if b else np.zeros((0, 2))
    frames = np.empty(b, dtype=object)
    for i, r in enumerate(records):
        frames[i] = r.frames if r.frames is not None else _NO_FRAMES
    out["frames"] = frames
    for name, values in extra.items():
        out[name] = np.asarray(values) if not isinstance(values, np.ndarray) else values
    return out


def _int(v) -> int | None:
    return None if v is None or (isinstance(v, float) and np.isnan(v)) else int(v)


def _str(v) -> str | None:
    return None if v is None or v == "" or (isinstance(v, float) and np.isnan(v)) else str(v)


def batch_to_records(batch: Mapping[str, np.ndarray]) -> list[SliceRecord]:
    """The inverse of :func:`records_to_batch` (extra columns are left in the batch)."""
    n = len(batch["eid"])
    out = []
    for i in range(n):
        ok = _str(batch["status"][i]) == STATUS_OK
        flags = _str(batch["qc_flags"][i]) or ""
        rec = SliceRecord(
            eid=_str(batch["eid"][i]) or "", instance=_int(batch["instance"][i]),
            slice_index=_int(batch["slice_index"][i]), status=_str(batch["status"][i]),
            error=_str(batch["error"][i]), reason=_str(batch["reason"][i]),
            stage=_str(batch["stage"][i]), qc_flags=flags.split("\n") if flags else [],
            n_frames=_int(batch["n_frames"][i]) or 0, source_uri=_str(batch["source_uri"][i])
            or "", series_uid=_str(batch["series_uid"][i]),
            n_candidate_series=_int(batch["n_candidate_series"][i]) or 0,
            array=_int(batch["array"][i]),
        )
        spacing = np.asarray(batch["pixel_spacing_mm"][i], dtype=np.float64)
        rec.pixel_spacing_mm = spacing if np.isfinite(spacing).all() else None
        if ok:
            rec.frames = np.asarray(batch["frames"][i], dtype=np.uint16)
            rec.frame_valid = np.asarray(batch["frame_valid"][i], dtype=bool)
        out.append(rec)
    return out
