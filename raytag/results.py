"""The results table (DESIGN.md "Results table"): one row per slice, a public contract.

Column names here are public: add columns freely, never rename these. The schema is pure
pyarrow so that the pipeline, the demo and the report all write and read the same table.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pyarrow as pa

from raytag.constants import STATUS_OK
from raytag.io.records import SliceRecord
from raytag.strain import CURVE_NAMES

__all__ = ["RESULTS_SCHEMA", "result_row", "rows_to_table"]

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


def result_row(
    record: SliceRecord,
    strains: Mapping[str, np.ndarray] | None = None,
    landmarks_px: np.ndarray | None = None,
    bbox_px: Sequence[float] | None = None,
    model_version: str = "",
) -> dict:
    """One results-table row from an ingested record and (for ``ok`` rows) its measurements.

    ``strains`` is one slice's output of :func:`raytag.strain.compute_strains` (curves
    ``(T,)``, ``es_frame`` scalar); ``landmarks_px`` ``(T, 168, 2)`` in original pixels,
    flattened in (frame, landmark, xy) order; ``bbox_px`` (x1, y1, x2, y2). NaN becomes null.
    """
    row = {
        "eid": record.eid,
        "instance": record.instance,
        "slice_index": record.slice_index,
        "slice_label": record.slice_label,
        "status": record.status,
        "error": record.error,
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
    }
    for name in CURVE_NAMES:
        row[name] = None
        row[f"es_{name}"] = None
    if strains is not None and record.status == STATUS_OK:
        es = int(strains["es_frame"])
        row["es_frame"] = es if es >= 0 else None
        for name in CURVE_NAMES:
            row[name] = _floats(strains[name])
            value = float(strains[f"es_{name}"])
            row[f"es_{name}"] = value if np.isfinite(value) else None
    return row


def rows_to_table(rows: Sequence[Mapping]) -> pa.Table:
    """A table with exactly :data:`RESULTS_SCHEMA` (missing keys become null)."""
    return pa.Table.from_pylist([dict(r) for r in rows], schema=RESULTS_SCHEMA)
