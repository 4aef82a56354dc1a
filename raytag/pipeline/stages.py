"""The three Ray Data stages of a cohort run, as callables over pyarrow batches.

1. :class:`DecodeSlices` (CPU tasks): zip URIs -> one row per slice (ingest), frames padded
   to 256x256 and carried as bytes; failed participants/slices are rows too.
2. :class:`PredictSlices` (actor pool, GPU when there is one): both networks in one actor
   (crops are made on the device, so they never cross a stage boundary); a batch that fails
   is retried row by row, so one bad slice never costs the others.
3. :class:`StrainQC` (CPU tasks): strain, ES, QC flags -> rows with the results schema.

Every stage catches per-row problems and turns them into ``failed`` rows with ``stage`` set.
"""

from __future__ import annotations

import socket
import time

import numpy as np
import pyarrow as pa

from raytag import geometry
from raytag.constants import N_FRAMES, N_LANDMARKS, PAD_SIZE, STATUS_FAILED, STATUS_OK
from raytag.io import read_participant
from raytag.io.records import SliceRecord
from raytag.pipeline import telemetry
from raytag.results import RESULTS_SCHEMA, result_row
from raytag.strain import compute_strains

__all__ = ["DecodeSlices", "PredictSlices", "StrainQC", "DECODED_SCHEMA", "PREDICTED_SCHEMA",
           "OUTPUT_SCHEMA", "qc_flags_for"]

_RECORD_FIELDS = [
    ("eid", pa.string()), ("instance", pa.int64()), ("slice_index", pa.int64()),
    ("status", pa.string()), ("error", pa.string()), ("stage", pa.string()),
    ("qc_flags", pa.list_(pa.string())), ("n_frames", pa.int64()),
    ("pixel_spacing_mm", pa.list_(pa.float64())), ("source_uri", pa.string()),
    ("n_candidate_series", pa.int64()), ("series_uid", pa.string()),
    ("frame_valid", pa.list_(pa.bool_())), ("pad_offsets", pa.list_(pa.int64())),
    ("decode_node", pa.string()),
]
DECODED_SCHEMA = pa.schema(_RECORD_FIELDS + [("frames", pa.binary())])
PREDICTED_SCHEMA = pa.schema(_RECORD_FIELDS + [
    ("bbox_px", pa.list_(pa.float64())), ("landmarks", pa.binary()), ("model_node", pa.string()),
    ("model_version", pa.string()),
])
OUTPUT_SCHEMA = RESULTS_SCHEMA.append(pa.field("decode_node", pa.string())) \
    .append(pa.field("model_node", pa.string()))

_FRAME_SHAPE = (N_FRAMES, PAD_SIZE, PAD_SIZE)


def _node_id() -> str:
    """The Ray node running this code (the host name outside Ray, e.g. in unit tests)."""
    try:
        import ray

        return ray.get_runtime_context().get_node_id()
    except Exception:  # noqa: BLE001
        return socket.gethostname()


def _record_row(rec: SliceRecord) -> dict:
    row = {
        "eid": rec.eid, "instance": rec.instance, "slice_index": rec.slice_index,
        "status": rec.status, "error": rec.error, "stage": rec.stage,
        "qc_flags": list(rec.qc_flags), "n_frames": rec.n_frames,
        "pixel_spacing_mm": None if rec.pixel_spacing_mm is None
        else [float(v) for v in rec.pixel_spacing_mm],
        "source_uri": rec.source_uri, "n_candidate_series": rec.n_candidate_series,
        "series_uid": rec.series_uid, "frame_valid": None, "pad_offsets": None, "frames": None,
    }
    if rec.ok:
        padded, offsets = geometry.pad_to_square(rec.frames, PAD_SIZE)
        row["frames"] = np.ascontiguousarray(padded, dtype=np.uint16).tobytes()
        row["frame_valid"] = rec.frame_valid.tolist()
        row["pad_offsets"] = [int(o) for o in offsets]
    return row


class DecodeSlices:
    """``{"uri": [...]}`` -> one row per slice of each participant zip (DECODED_SCHEMA)."""

    def __call__(self, batch: pa.Table) -> pa.Table:
        node = _node_id()
        rows = []
        for uri in batch.column("uri").to_pylist():
            t0 = time.perf_counter()
            records = read_participant(uri)
            telemetry.observe_stage("decode", time.perf_counter() - t0)
            telemetry.count_participant(records)
            for rec in records:
                rows.append(_record_row(rec) | {"decode_node": node})
        return pa.Table.from_pylist(rows, schema=DECODED_SCHEMA)


def _fail(row: dict, reason: str, stage: str) -> dict:
    return row | {"status": STATUS_FAILED, "error": reason, "stage": stage}


class PredictSlices:
    """Actor: loads the predictor once; padded frames -> boxes and landmarks (original px).

    ``weights``: a folder or prefix holding ``localiser.pt`` and ``tracker.pt``; None for
    the shipped default weights (or, where none are shipped, untrained ``lite`` networks,
    labelled ``untrained`` in ``model_version``). The torch device is CUDA when
    ``torch.cuda.is_available()`` in this process, else CPU. ``refine_passes``: box
    refinement passes (None: :data:`raytag.constants.REFINE_PASSES`).
    """

    def __init__(self, weights: str | None = None, max_batch: int = 16,
                 refine_passes: int | None = None):
        from raytag.models.weights import load_predictor

        self.predictor = load_predictor(weights, refine_passes=refine_passes)
        self.max_batch = max_batch
        self.node = _node_id()

    def _predict(self, rows: list[dict]) -> list[dict]:
        padded = np.stack([np.frombuffer(r["frames"], dtype=np.uint16).reshape(_FRAME_SHAPE)
                           for r in rows])
        valid = np.array([r["frame_valid"] for r in rows], dtype=bool)
        boxes, points = self.predictor.predict_padded(padded, valid)
        out = []
        for r, box, pts in zip(rows, boxes, points, strict=True):
            row_off, col_off = r["pad_offsets"]
            shift = np.array([col_off, row_off], dtype=np.float64)
            out.append(r | {
                "bbox_px": (box - np.concatenate([shift, shift])).tolist(),
                "landmarks": (pts - shift).astype(np.float32).tobytes(),
            })
        return out

    def __call__(self, batch: pa.Table) -> pa.Table:
        rows = batch.to_pylist()
        todo = [i for i, r in enumerate(rows) if r["status"] == STATUS_OK]
        done: dict[int, dict] = {}
        for start in range(0, len(todo), self.max_batch):
            idx = todo[start : start + self.max_batch]
            t0 = time.perf_counter()
            try:
                for i, r in zip(idx, self._predict([rows[i] for i in idx]), strict=True):
                    done[i] = r
            except Exception:  # noqa: BLE001 - retry alone: one bad slice fails alone
                for i in idx:
                    try:
                        done[i] = self._predict([rows[i]])[0]
                    except Exception as exc:  # noqa: BLE001
                        done[i] = _fail(rows[i], f"model error: {type(exc).__name__}: {exc}",
                                        "model")
            seconds = time.perf_counter() - t0
            telemetry.observe_stage("model", seconds)
            telemetry.count_frames(int(sum(np.sum(rows[i]["frame_valid"]) for i in idx)), seconds)
        out = []
        for i, r in enumerate(rows):
            r = done.get(i, r)
            r.pop("frames", None)
            out.append(r | {"model_node": self.node,
                            "model_version": self.predictor.model_version})
        return pa.Table.from_pylist(out, schema=PREDICTED_SCHEMA)


def qc_flags_for(strains: dict, points: np.ndarray, box: np.ndarray) -> list[str]:
    """Warnings on a measured slice (not failures): implausible strain or geometry."""
    flags = []
    es_circ, es_radial = float(strains["es_circ_global"]), float(strains["es_radial"])
    if not np.isfinite(es_circ) or not -0.5 < es_circ < 0.05:
        flags.append("implausible_circ_strain")
    if not np.isfinite(es_radial) or not -0.2 < es_radial < 1.5:
        flags.append("implausible_radial_strain")
    ed = points[0]
    inside = ((ed[:, 0] >= box[0]) & (ed[:, 0] <= box[2]) & (ed[:, 1] >= box[1])
              & (ed[:, 1] <= box[3]))
    if not inside.all():
        flags.append("landmarks_outside_roi")
    return flags


class StrainQC:
    """Predicted rows -> results rows (OUTPUT_SCHEMA: the contract + node columns)."""

    def __call__(self, batch: pa.Table) -> pa.Table:
        out = []
        for r in batch.to_pylist():
            t0 = time.perf_counter()
            rec = SliceRecord(
                eid=r["eid"], instance=r["instance"], slice_index=r["slice_index"],
                status=r["status"], error=r["error"], stage=r["stage"],
                qc_flags=list(r["qc_flags"] or []), n_frames=r["n_frames"] or 0,
                pixel_spacing_mm=None if r["pixel_spacing_mm"] is None
                else np.array(r["pixel_spacing_mm"]),
                source_uri=r["source_uri"] or "", series_uid=r["series_uid"],
                n_candidate_series=r["n_candidate_series"] or 0,
            )
            extra = {"decode_node": r["decode_node"], "model_node": r.get("model_node")}
            version = r.get("model_version") or ""
            out.append(self._measure(rec, r, version) | extra)
            telemetry.observe_stage("strain", time.perf_counter() - t0)
            telemetry.count_slice(out[-1]["status"], out[-1]["error"])
        return pa.Table.from_pylist(out, schema=OUTPUT_SCHEMA)

    @staticmethod
    def _measure(rec: SliceRecord, r: dict, version: str) -> dict:
        if rec.status != STATUS_OK:
            return result_row(rec, model_version=version)
        try:
            pts = np.frombuffer(r["landmarks"], dtype=np.float32).astype(np.float64)
            pts = pts.reshape(N_FRAMES, N_LANDMARKS, 2)
            valid = np.array(r["frame_valid"], dtype=bool)
            strains = compute_strains(geometry.px_to_mm(pts, rec.pixel_spacing_mm),
                                      frame_valid=valid)
            box = np.array(r["bbox_px"])
            rec.qc_flags.extend(qc_flags_for(strains, pts, box))
            return result_row(rec, strains, pts, box, version)
        except Exception as exc:  # noqa: BLE001 - a strain failure is a row, never a crash
            rec.fail(f"strain error: {type(exc).__name__}: {exc}", "strain")
            return result_row(rec, model_version=version)
