"""The three Ray Data stages of a cohort run, over numpy batches (one row per slice).

1. :func:`decode_participants` (CPU tasks): ``{"uri", "fingerprint"}`` -> the participants'
   slice records (:func:`raytag.io.read_participant`), as columns
   (:func:`raytag.results.records_to_batch`): frames as uint16 arrays, never bytes.
2. :class:`PredictNetworks` (actor pool, a GPU each when the cluster has them): the
   networks through :meth:`raytag.models.predictor.Predictor.predict_network`, the path
   ``raytag evaluate`` and the benchmarks measure; adds ``bbox_px``, ``net_landmarks``
   and ``net_ed`` (the ED-geometry network's, NaN without one).
3. :func:`measure_batch` (CPU tasks): per slice the tracker (HARP runs here, off the
   GPU), strain and tag QC through :func:`raytag.tracking.measure.measure_slice` (the
   predictor's own second half), then results rows (:func:`raytag.results.result_row`).

Every stage turns per-row problems into ``failed`` rows with a ``reason`` and ``stage``;
one bad participant or slice never costs the others. Each row carries its participant's
row count (``participant_rows``) so the writer can commit participants whole.
"""

from __future__ import annotations

import socket
import time

import numpy as np
import pyarrow as pa

from raytag.constants import N_FRAMES, N_LANDMARKS, STATUS_FAILED
from raytag.failures import Reason
from raytag.io import read_participant
from raytag.io.records import SliceRecord
from raytag.pipeline import telemetry
from raytag.results import RESULTS_SCHEMA, batch_to_records, records_to_batch, result_row
from raytag.tracking.measure import measure_slice

__all__ = ["decode_participants", "PredictNetworks", "measure_batch", "TRANSIT_COLUMNS",
           "OUTPUT_SCHEMA", "qc_flags_for"]

#: Columns a results row carries to the writer besides the contract.
TRANSIT_COLUMNS = [("participant_rows", pa.int64()), ("fingerprint", pa.string())]
OUTPUT_SCHEMA = pa.schema(list(RESULTS_SCHEMA) + [pa.field(n, t) for n, t in TRANSIT_COLUMNS])


def _node_id() -> str:
    """The Ray node running this code (the host name outside Ray, e.g. in unit tests)."""
    try:
        import ray

        if ray.is_initialized():  # asking the runtime context would start a Ray otherwise
            return ray.get_runtime_context().get_node_id()
    except Exception:  # noqa: BLE001
        pass
    return socket.gethostname()


def _read(uri: str) -> list[SliceRecord]:
    try:
        return read_participant(uri)
    except Exception as exc:  # noqa: BLE001 - read_participant never raises; this is the net
        rec = SliceRecord(eid=str(uri).rsplit("/", 1)[-1], instance=None, slice_index=None,
                          source_uri=str(uri))
        return [rec.fail(f"decode error: {type(exc).__name__}: {str(exc)[:300]}",
                         reason=Reason.UNEXPECTED)]


def _refused(uri: str, problem: str) -> list[SliceRecord]:
    """A listed input that must not be read (a name that is not UTF-8, a symlink leaving
    the input folder): one failed row keyed by its (printable) name."""
    from raytag.io.ukb_names import parse_zip_name

    try:
        v = parse_zip_name(uri)
        rec = SliceRecord(eid=v.eid, instance=v.instance, slice_index=None, source_uri=uri,
                          array=v.array)
    except Exception:  # noqa: BLE001 - a bad name is this row's key as it is
        rec = SliceRecord(eid=uri.rsplit("/", 1)[-1].rsplit(".", 1)[0], instance=None,
                          slice_index=None, source_uri=uri)
    reason = Reason.BAD_NAME if "UTF-8" in problem else Reason.UNSAFE_INPUT
    return [rec.fail(f"input refused: {problem}", reason=reason)]


def decode_participants(batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """``{"uri": (B,), "fingerprint": (B,), "problem": (B,)}`` -> one row per slice of
    each participant (``problem``: why a listed input must not be read, "" if none)."""
    node = _node_id()
    records, counts, prints = [], [], []
    problems = batch.get("problem", [""] * len(batch["uri"]))
    for uri, fp, problem in zip(batch["uri"], batch["fingerprint"], problems, strict=True):
        t0 = time.perf_counter()
        recs = _refused(str(uri), str(problem)) if problem else _read(str(uri))
        telemetry.observe_stage("decode", time.perf_counter() - t0)
        telemetry.count_participant(recs)
        records += recs
        counts += [len(recs)] * len(recs)
        prints += [str(fp)] * len(recs)
    return records_to_batch(records, participant_rows=np.array(counts, dtype=np.int64),
                            fingerprint=np.array(prints, dtype=object),
                            decode_node=np.array([node] * len(records), dtype=object))


def _fail_rows(batch: dict, idx, message: str, reason: Reason, stage: str) -> None:
    for i in idx:
        batch["status"][i], batch["error"][i] = STATUS_FAILED, message[:500]
        batch["reason"][i], batch["stage"][i] = str(reason), stage


#: Slices per network call, (CPU, GPU). On CPU the networks run 11.3-12.4 slices/s in
#: batches of 1-6 but 10.5 in batches of 8 and 9.0 in 16 (lite, one torch thread as in a
#: CPU model actor: ``benchmarks/results/inference_speed_cpu_1thread.json``), so a Ray
#: batch (``predict_batch`` slices, fewer objects in flight) runs in chunks there; a GPU
#: wants large batches.
MODEL_CHUNK = {False: 4, True: 16}


class PredictNetworks:
    """Actor: loads the predictor once; adds ``bbox_px`` ``(B, 4)``, ``net_landmarks``
    ``(B, 20, 168, 2)`` and ``net_ed`` ``(B, 168, 2)`` (original px, NaN for failed rows or
    without an ED-geometry network), ``model_version``, ``model_node``.

    ``weights``: a folder or prefix holding ``localiser.pt`` and ``tracker.pt``; None for
    the shipped default weights. The torch device is CUDA when this process sees a GPU.
    ``max_batch``: slices per network call (None: :data:`MODEL_CHUNK` for the device).
    A batch that fails is retried slice by slice, so one bad slice fails alone.
    """

    def __init__(self, weights: str | None = None, max_batch: int | None = None,
                 refine_passes: int | None = None, localiser_views: int | None = None):
        from raytag.models.weights import load_predictor

        self.predictor = load_predictor(weights, refine_passes=refine_passes,
                                        localiser_views=localiser_views)
        self.max_batch = max_batch or MODEL_CHUNK[self.predictor.device.type == "cuda"]
        self.node = _node_id()

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        records = batch_to_records(batch)
        n = len(records)
        boxes = np.full((n, 4), np.nan)
        points = np.full((n, N_FRAMES, N_LANDMARKS, 2), np.nan)
        ed = np.full((n, N_LANDMARKS, 2), np.nan)
        todo = [i for i, r in enumerate(records) if r.ok]
        for start in range(0, len(todo), self.max_batch):
            idx = todo[start : start + self.max_batch]
            t0 = time.perf_counter()
            try:
                out = self.predictor.predict_network([records[i] for i in idx])
                boxes[idx], points[idx] = out.bbox_px, out.landmarks_px
                if out.ed_px is not None:
                    ed[idx] = out.ed_px
            except Exception:  # noqa: BLE001 - retry alone: one bad slice fails alone
                for i in idx:
                    try:
                        out = self.predictor.predict_network([records[i]])
                        boxes[i], points[i] = out.bbox_px[0], out.landmarks_px[0]
                        if out.ed_px is not None:
                            ed[i] = out.ed_px[0]
                    except Exception as exc:  # noqa: BLE001
                        _fail_rows(batch, [i], f"model error: {type(exc).__name__}: {exc}",
                                   Reason.MODEL_ERROR, "model")
            seconds = time.perf_counter() - t0
            telemetry.observe_stage("model", seconds)
            telemetry.count_frames(int(sum(records[i].frame_valid.sum() for i in idx)), seconds)
        batch["bbox_px"], batch["net_landmarks"], batch["net_ed"] = boxes, points, ed
        batch["model_version"] = np.array([self.predictor.model_version] * n, dtype=object)
        batch["model_node"] = np.array([self.node] * n, dtype=object)
        return batch


#: ES global circumferential strain above this is no contraction at all (healthy hearts
#: -0.15 to -0.25; the most impaired UK Biobank groups -0.10).
NO_CONTRACTION = -0.03


def qc_flags_for(strains: dict, points: np.ndarray, box: np.ndarray,
                 shape_rc: tuple[int, int] | None = None) -> list[str]:
    """Warnings on a measured slice (not failures): implausible strain or geometry, no
    contraction at ES, a ROI box mostly outside the image (``shape_rc``: rows, cols)."""
    flags = []
    es_circ, es_radial = float(strains["es_circ_global"]), float(strains["es_radial"])
    if not np.isfinite(es_circ) or not -0.5 < es_circ < 0.05:
        flags.append("implausible_circ_strain")
    elif es_circ > NO_CONTRACTION:
        flags.append("no_contraction")
    if not np.isfinite(es_radial) or not -0.2 < es_radial < 1.5:
        flags.append("implausible_radial_strain")
    ed = points[0]
    inside = ((ed[:, 0] >= box[0]) & (ed[:, 0] <= box[2]) & (ed[:, 1] >= box[1])
              & (ed[:, 1] <= box[3]))
    if not inside.all():
        flags.append("landmarks_outside_roi")
    if shape_rc is not None:
        rows, cols = shape_rc
        w, h = box[2] - box[0], box[3] - box[1]
        iw = max(0.0, min(box[2], cols - 0.5) - max(box[0], -0.5))
        ih = max(0.0, min(box[3], rows - 0.5) - max(box[1], -0.5))
        if w <= 0 or h <= 0 or iw * ih < 0.5 * w * h:
            flags.append("roi_outside_image")
    return flags


def measure_batch(batch: dict[str, np.ndarray], tracker: str = "network",
                  register_frames: bool = True) -> pa.Table:
    """Networks' output -> results rows (:data:`OUTPUT_SCHEMA`), one per slice.

    ``register_frames=False`` skips HARP's registration refinement; ``model_version`` then
    ends in ``register=off``, so rows measured either way can be told apart."""
    records = batch_to_records(batch)
    rows = []
    for i, rec in enumerate(records):
        t0 = time.perf_counter()
        version = str(batch["model_version"][i] or "")
        if rec.ok:
            version = f"{version} tracker={tracker}" + ("" if register_frames
                                                          else " register=off")
            try:
                box = np.asarray(batch["bbox_px"][i], dtype=np.float64)
                m = measure_slice(rec.frames, rec.frame_valid, rec.pixel_spacing_mm,
                                  batch["net_landmarks"][i], tracker, batch["net_ed"][i], box,
                                  register_frames)
                rec.qc_flags.extend(qc_flags_for(m.strains, m.landmarks_px, box,
                                                 rec.frames.shape[-2:]))
                row = result_row(rec, m.strains, m.landmarks_px, box, version, m)
            except Exception as exc:  # noqa: BLE001 - a strain failure is a row, never a crash
                rec.fail(f"strain error: {type(exc).__name__}: {str(exc)[:300]}", "strain",
                         Reason.STRAIN_ERROR)
                row = result_row(rec, model_version=version)
        else:
            row = result_row(rec, model_version=version)
        row |= {"decode_node": batch["decode_node"][i], "model_node": batch["model_node"][i],
                "participant_rows": int(batch["participant_rows"][i]),
                "fingerprint": str(batch["fingerprint"][i])}
        rows.append(row)
        telemetry.observe_stage("strain", time.perf_counter() - t0)
        telemetry.count_slice(row["status"], row["reason"])
    return pa.Table.from_pylist(rows, schema=OUTPUT_SCHEMA)

