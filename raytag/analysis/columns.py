"""The report's data, column by column: numpy arrays, never a Python dict per row.

A results table of 300,000 slices is ~17 GB as Python lists of landmarks, ~40 MB as the
scalar columns a report needs. So: :func:`load_slices` reads only the scalar columns
(keys, labels, status, reasons, ES strains); :func:`pair` joins results to a reference by
key; :func:`landmark_metrics` streams the landmark columns in batches (RMSE at ED/ES, ROI
IoU, and the reference's strains where it has only landmarks), keeping per reference
slice only its ED and ES landmarks; curves and QC cases' full rows are read only for
the slices a figure shows. Memory then grows with the scalar columns, not with landmarks.

Conventions as the results table (docs/conventions.md): landmarks ``(T, 168, 2)`` flattened in
(frame, landmark, xy) order, original pixels, ``pixel_spacing_mm`` (row, col), Green strain.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from raytag import geometry
from raytag.constants import N_LANDMARKS, SLICE_LABELS, STATUS_OK
from raytag.io.tables import iter_results, read_results
from raytag.metrics import landmark_rmse_mm
from raytag.strain import compute_strains

__all__ = ["STRAINS", "REGIONS", "Slices", "Pairs", "load_slices", "pair",
           "landmark_metrics", "list_column", "read_rows", "read_curves"]

#: Regions in the paper's order (slice_index 1, 2, 3).
REGIONS = tuple(SLICE_LABELS[i] for i in sorted(SLICE_LABELS))
#: Table 2's strains: results column -> display name.
STRAINS = {
    "es_circ_global": "Circ global",
    "es_circ_subendo": "Circ subendo",
    "es_circ_midwall": "Circ midwall",
    "es_circ_subepi": "Circ subepi",
    "es_radial": "Radial",
}
_SCALARS = ["eid", "instance", "slice_index", "slice_label", "status", "reason", "stage",
            "error", "es_frame", "model_version", "source_uri", *STRAINS]


#: The region shown for rows without a slice (a participant that failed as a whole).
UNKNOWN_REGION = "whole participant"

def _ints(col: pa.ChunkedArray) -> np.ndarray:
    """Nullable integers -> int64 with 0 for null (the report's key convention)."""
    return pc.fill_null(col.cast(pa.int64()), 0).to_numpy()


def _strs(col: pa.ChunkedArray, null: str | None = None) -> np.ndarray:
    return np.array([null if v is None else v for v in col.cast(pa.string()).to_pylist()],
                    dtype=object)


def _floats(col: pa.ChunkedArray) -> np.ndarray:
    return pc.fill_null(col.cast(pa.float64()), math.nan).to_numpy()


@dataclass
class Slices:
    """Scalar columns of a results (or reference) table, sorted by key.

    ``eid`` str, ``instance``/``slice_index`` int (0 where null), ``label`` (basal/mid/
    apical; :data:`UNKNOWN_REGION` for a participant that failed before its slices were
    read), ``status``, ``reason``, ``stage``, ``error``, ``source_uri``,
    ``model_version`` (object arrays, None where null), ``es_frame`` int (-1 where null),
    ``strains`` {column: float64 (N,), NaN where null}, and ``uri`` the table's location.
    """

    uri: str
    eid: np.ndarray
    instance: np.ndarray
    slice_index: np.ndarray
    label: np.ndarray
    status: np.ndarray
    reason: np.ndarray
    stage: np.ndarray
    error: np.ndarray
    es_frame: np.ndarray
    model_version: np.ndarray
    source_uri: np.ndarray
    strains: dict[str, np.ndarray]
    has_strains: bool = True
    _index: dict | None = field(default=None, repr=False)

    @property
    def n(self) -> int:
        return len(self.eid)

    @property
    def ok(self) -> np.ndarray:
        return self.status == STATUS_OK

    def key(self, i: int) -> tuple[str, int, int]:
        return (str(self.eid[i]), int(self.instance[i]), int(self.slice_index[i]))

    def index(self) -> dict[tuple[str, int, int], int]:
        """key -> row (the first, should a key repeat)."""
        if self._index is None:
            self._index = {}
            for i in range(self.n):
                self._index.setdefault(self.key(i), i)
        return self._index


def load_slices(uri: str) -> Slices:
    """The scalar columns of a results table or reference (see :class:`Slices`)."""
    t = read_results(uri, columns=_SCALARS)
    eid = _strs(t["eid"], "")
    instance, slice_index = _ints(t["instance"]), _ints(t["slice_index"])
    order = np.lexsort((slice_index, instance, eid))
    labels = _strs(t["slice_label"])
    labels = np.array([lab if lab else SLICE_LABELS.get(int(i), UNKNOWN_REGION)
                       for lab, i in zip(labels, slice_index, strict=True)], dtype=object)
    strains = {c: _floats(t[c])[order] for c in STRAINS}
    has = all(t[c].null_count < t.num_rows for c in STRAINS) if t.num_rows else True
    es = pc.fill_null(t["es_frame"].cast(pa.int64()), -1).to_numpy()
    return Slices(uri, eid[order], instance[order], slice_index[order], labels[order],
                  _strs(t["status"])[order], _strs(t["reason"])[order],
                  _strs(t["stage"])[order], _strs(t["error"])[order], es[order],
                  _strs(t["model_version"])[order], _strs(t["source_uri"])[order], strains,
                  has)


@dataclass
class Pairs:
    """``ok`` results joined to their reference slices: ``res``/``ref`` row indices,
    ``label``, predicted and reference ES strains and their ``error`` (pred - ref) per
    column, and (after :func:`landmark_metrics`) ``rmse_ed``/``rmse_es`` (mm) and ``iou``
    (NaN where not measurable)."""

    res: np.ndarray
    ref: np.ndarray
    label: np.ndarray
    pred: dict[str, np.ndarray]
    refs: dict[str, np.ndarray]
    rmse_ed: np.ndarray
    rmse_es: np.ndarray
    iou: np.ndarray

    @property
    def n(self) -> int:
        return len(self.res)

    @property
    def error(self) -> dict[str, np.ndarray]:
        return {c: self.pred[c] - self.refs[c] for c in STRAINS}


def pair(results: Slices, reference: Slices) -> tuple[Pairs, int]:
    """``ok`` result slices with a reference slice (results' key order); and how many ``ok``
    result slices have none."""
    index = reference.index()
    res, ref = [], []
    unmatched = 0
    for i in np.nonzero(results.ok)[0]:
        j = index.get(results.key(i))
        if j is None:
            unmatched += 1
        else:
            res.append(i)
            ref.append(j)
    res, ref = np.array(res, dtype=np.int64), np.array(ref, dtype=np.int64)
    nan = np.full(len(res), math.nan)
    return Pairs(res, ref, results.label[res] if len(res) else np.array([], dtype=object),
                 {c: results.strains[c][res] for c in STRAINS},
                 {c: reference.strains[c][ref] for c in STRAINS},
                 nan.copy(), nan.copy(), nan.copy()), unmatched


def list_column(col, width: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """A list<float> column -> ``(values (B, W) float64 with NaN for nulls, ok (B,))``.

    ``ok`` marks rows holding exactly ``W`` values (``width``, default the longest row);
    other rows come back as NaN. No Python list per row: offsets and flat values only.
    """
    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks()
    offsets = col.offsets.to_numpy()
    lengths = np.diff(offsets)
    lengths = np.where(col.is_null().to_numpy(zero_copy_only=False), 0, lengths)
    width = int(lengths.max(initial=0)) if width is None else width
    # .values is the whole buffer under a sliced array (a batch of a bigger chunk): take
    # only this array's span of it
    span = col.values.slice(int(offsets[0]), int(offsets[-1] - offsets[0]))
    flat = pc.fill_null(span, math.nan).to_numpy(zero_copy_only=False).astype(
        np.float64, copy=False)
    out = np.full((len(col), width), math.nan)
    ok = lengths == width
    if width and ok.any():
        starts = offsets[:-1][ok] - offsets[0]
        out[ok] = flat[starts[:, None] + np.arange(width)[None, :]]
    return out, ok


def _mm(batch: pa.Table) -> tuple[np.ndarray, np.ndarray]:
    """Landmarks of a batch in mm ``(B, T, 168, 2)`` and which rows have them."""
    flat, ok = list_column(batch["landmarks_px"])
    t = flat.shape[1] // (N_LANDMARKS * 2) if flat.shape[1] % (N_LANDMARKS * 2) == 0 else 0
    ok &= t > 0
    pts = flat.reshape(len(flat), max(t, 1), N_LANDMARKS, 2) if t else \
        np.full((len(flat), 1, N_LANDMARKS, 2), math.nan)
    spacing, has = list_column(batch["pixel_spacing_mm"], 2)
    ok &= has
    return geometry.px_to_mm(pts, np.where(has[:, None], spacing, 1.0)), ok


_KEYS = ["eid", "instance", "slice_index"]
_GEOMETRY = [*_KEYS, "landmarks_px", "pixel_spacing_mm", "bbox_px", "es_frame"]


def _rows(batch: pa.Table, slices: Slices) -> np.ndarray:
    """Row index in ``slices`` of each batch row (-1 when absent)."""
    index = slices.index()
    eid = batch["eid"].cast(pa.string()).to_pylist()
    inst = _ints(batch["instance"])
    idx = _ints(batch["slice_index"])
    return np.array([index.get((e or "", int(a), int(b)), -1)
                     for e, a, b in zip(eid, inst, idx, strict=True)], dtype=np.int64)


def landmark_metrics(pairs: Pairs, results: Slices, reference: Slices,
                     batch_rows: int = 256) -> None:
    """Fill ``pairs.rmse_ed``/``rmse_es``/``iou``; where the reference has no ES strains,
    compute them from its landmarks (in mm, at its ``es_frame``) with the one strain
    implementation. Streams both tables in batches; keeps per paired reference slice its
    ED and ES landmarks (5.4 KB each) and box."""
    if not pairs.n:
        return
    slot = np.full(reference.n, -1, dtype=np.int64)  # reference row -> pair
    slot[pairs.ref] = np.arange(pairs.n)
    ref_ed = np.full((pairs.n, N_LANDMARKS, 2), math.nan)
    ref_es = np.full((pairs.n, N_LANDMARKS, 2), math.nan)
    ref_box = np.full((pairs.n, 4), math.nan)
    ref_frame = np.full(pairs.n, -1, dtype=np.int64)
    compute = not reference.has_strains
    for batch in iter_results(reference.uri, _GEOMETRY, batch_rows):
        rows = _rows(batch, reference)
        k = np.where(rows >= 0, slot[np.maximum(rows, 0)], -1)
        use = k >= 0
        if not use.any():
            continue
        pts, ok = _mm(batch)
        es = pc.fill_null(batch["es_frame"].cast(pa.int64()), -1).to_numpy()
        box, has_box = list_column(batch["bbox_px"], 4)
        for b in np.nonzero(use & ok)[0]:
            p = k[b]
            ref_ed[p] = pts[b, 0]
            ref_frame[p] = es[b]
            if 0 <= es[b] < pts.shape[1]:
                ref_es[p] = pts[b, es[b]]
        ref_box[k[use & has_box]] = box[use & has_box]
        if compute and (use & ok).any():
            sel = np.nonzero(use & ok)[0]
            s = compute_strains(pts[sel], frame_valid=np.isfinite(pts[sel]).all(axis=(-1, -2)),
                                es_frame=es[sel])
            for c in STRAINS:
                pairs.refs[c][k[sel]] = s[c]
    slot_res = np.full(results.n, -1, dtype=np.int64)
    slot_res[pairs.res] = np.arange(pairs.n)
    for batch in iter_results(results.uri, _GEOMETRY, batch_rows):
        rows = _rows(batch, results)
        k = np.where(rows >= 0, slot_res[np.maximum(rows, 0)], -1)
        use = k >= 0
        if not use.any():
            continue
        pts, ok = _mm(batch)
        box, has_box = list_column(batch["bbox_px"], 4)
        sel = np.nonzero(use & ok)[0]
        if len(sel):
            p = k[sel]
            pred = pts[sel]
            pairs.rmse_ed[p] = landmark_rmse_mm(pred[:, :1], ref_ed[p][:, None],
                                                np.zeros(len(p), dtype=int))
            frame = ref_frame[p]
            has_es = (frame >= 0) & (frame < pred.shape[1])
            if has_es.any():
                q = np.nonzero(has_es)[0]
                pairs.rmse_es[p[q]] = landmark_rmse_mm(
                    pred[q, frame[q]][:, None], ref_es[p[q]][:, None], np.zeros(len(q), int))
        sel = np.nonzero(use & has_box)[0]
        if len(sel):
            p = k[sel]
            good = np.isfinite(ref_box[p]).all(axis=1)
            if good.any():
                pairs.iou[p[good]] = geometry.box_iou(box[sel[good]], ref_box[p[good]])


def read_rows(uri: str, keys: list[tuple[str, int, int]]) -> dict[tuple, dict]:
    """The full rows of a few slices, by key (for the QC case figures): the key columns
    are scanned, and only the Parquet row groups holding a wanted slice are read whole."""
    if not keys:
        return {}
    import pyarrow.dataset as pads
    import pyarrow.parquet as pq

    from raytag.io.tables import results_dataset

    wanted = set(keys)
    out: dict[tuple, dict] = {}
    dataset = results_dataset(uri)
    if dataset is None:
        return out
    names = [c for c in _ALL if c in dataset.schema.names]
    for fragment in dataset.get_fragments():
        # hive-partitioned tables keep some columns in the folder names only
        fixed = pads.get_partition_keys(fragment.partition_expression) or {}
        pf = pq.ParquetFile(fragment.path, filesystem=dataset.filesystem)
        in_file = set(pf.schema_arrow.names)
        for rg in range(pf.num_row_groups):
            k = pf.read_row_group(rg, columns=[c for c in _KEYS if c in in_file])
            n = k.num_rows
            cols = {c: k[c].to_pylist() if c in in_file else [fixed.get(c)] * n for c in _KEYS}
            hits = [(str(e), int(i or 0), int(s or 0)) in wanted for e, i, s in zip(
                cols["eid"], cols["instance"], cols["slice_index"], strict=True)]
            if not any(hits):
                continue
            table = pf.read_row_group(rg, columns=[c for c in names if c in in_file])
            for row in table.take([i for i, h in enumerate(hits) if h]).to_pylist():
                row = {c: fixed.get(c) for c in names if c not in in_file} | row
                out.setdefault((str(row["eid"]), int(row["instance"] or 0),
                                int(row["slice_index"] or 0)), row)
    return out


def read_curves(uri: str, slices: Slices, rows: np.ndarray,
                names=("circ_global", "radial"), batch_rows: int = 4096) -> dict:
    """Strain curves ``{name: (len(rows), T)}`` of the given rows of ``slices`` (NaN where
    missing), read in batches."""
    want = np.full(slices.n, -1, dtype=np.int64)
    want[rows] = np.arange(len(rows))
    out: dict[str, np.ndarray] = {}
    for batch in iter_results(uri, [*_KEYS, *names], batch_rows):
        k = _rows(batch, slices)
        k = np.where(k >= 0, want[np.maximum(k, 0)], -1)
        use = k >= 0
        if not use.any():
            continue
        for name in names:
            values, ok = list_column(batch[name])
            if name not in out:
                out[name] = np.full((len(rows), values.shape[1]), math.nan)
            if values.shape[1] != out[name].shape[1]:
                continue  # a different cine length: not averaged with the others
            m = use & ok
            out[name][k[m]] = values[m]
    return out


_ALL = ["eid", "instance", "slice_index", "slice_label", "status", "es_frame", "bbox_px",
        "landmarks_px", "pixel_spacing_mm", "source_uri", "circ_global", "radial"]
