"""Labelled slices for training and evaluation: images + truth landmarks, from any source.

Sources, one record type (:class:`LabelledSlice`):

- a synthetic cohort written by ``raytag synth`` (zips + ``truth.parquet``);
- the original study's training HDF5 layout (UK Biobank application 2964 derived data):
  ``image_seqs (N, 20, 256, 256)``, ``landmark_coords (N, 20, 2, 168)`` (x row, then y
  row), ``bbox_corners (N, 4)``, ``px_spaces (N)``, ``es_frame_idx (N)``,
  ``ed_frame_idx (N)``; optional ``eids (N)``. Needs the ``h5`` extra (h5py).

HDF5 conventions assumed (the layout carries no metadata; stated so users can check):
images are already padded to 256x256 and are taken as the original matrix; landmark x is
the column and y the row, 0-based pixel centres; ``bbox_corners`` are ``(x1, y1, x2, y2)``
(recomputed from the ED landmarks by the paper's rule when absent); spacing is isotropic;
all-zero frames are padding (invalid). A cine whose ED index is not 0 is rolled so ED comes
first (flag ``ed_rolled_to_frame_0``).
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from raytag import geometry
from raytag.constants import N_FRAMES, N_LANDMARKS, SLICE_LABELS, TRUTH_FILE
from raytag.io import storage
from raytag.io.participant import read_participant
from raytag.io.records import SliceRecord

__all__ = ["LabelledSlice", "read_synthetic_cohort", "read_study_hdf5"]


@dataclass
class LabelledSlice:
    """An ingested slice with its truth.

    ``record``: the :class:`~raytag.io.records.SliceRecord` (frames uint16 ``(20, rows,
    cols)``, validity, spacing...). ``landmarks_px`` float64 ``(20, 168, 2)`` original
    pixels, NaN on invalid frames. ``bbox_px`` ``(4,)`` the paper's ROI box at ED.
    ``es_frame`` the annotated ES frame. ``group`` the covariate group when known.
    """

    record: SliceRecord
    landmarks_px: np.ndarray
    bbox_px: np.ndarray
    es_frame: int
    group: str | None = None


def read_synthetic_cohort(uri: str, limit: int | None = None) -> Iterator[LabelledSlice]:
    """Labelled ``ok`` slices of a ``raytag synth`` cohort (zips + truth.parquet), in EID order."""
    truth = storage.read_table(storage.join(uri, TRUTH_FILE)).to_pylist()
    by_key = {(r["eid"], r["instance"], r["slice_index"]): r for r in truth}
    zips = storage.list_files(uri, ".zip")
    for n, zip_uri in enumerate(zips):
        if limit is not None and n >= limit:
            return
        for rec in read_participant(zip_uri):
            row = by_key.get((rec.eid, rec.instance, rec.slice_index))
            if not rec.ok or row is None:
                continue
            pts = np.array(row["landmarks_px"], dtype=np.float64).reshape(N_FRAMES, N_LANDMARKS, 2)
            yield LabelledSlice(rec, pts, np.array(row["bbox_px"], dtype=np.float64),
                                int(row["es_frame"]), row.get("group"))


def _to_uint16(images: np.ndarray, flags: list[str]) -> np.ndarray:
    if images.dtype.kind in "ui":
        return np.clip(images, 0, np.iinfo(np.uint16).max).astype(np.uint16)
    images = np.nan_to_num(images.astype(np.float64))
    if images.max() <= 1.0:  # normalised floats: spread over the 12-bit range
        images = images * 4095.0
        flags.append("float_pixels_scaled")
    else:
        flags.append("float_pixels_rounded")
    return np.clip(np.rint(images), 0, np.iinfo(np.uint16).max).astype(np.uint16)


def read_study_hdf5(uri: str, limit: int | None = None) -> Iterator[LabelledSlice]:
    """Labelled slices from the original study's HDF5 layout (see the module docstring)."""
    try:
        import h5py
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("reading the study HDF5 layout needs h5py: "
                          "pip install 'raytag[h5]'") from exc
    data = storage.read_bytes(uri)
    with h5py.File(io.BytesIO(data), "r") as f:
        missing = [k for k in ("image_seqs", "landmark_coords", "px_spaces") if k not in f]
        if missing:
            raise ValueError(f"{uri}: not the study HDF5 layout, missing {missing}")
        n = f["image_seqs"].shape[0]
        for i in range(n if limit is None else min(n, limit)):
            flags: list[str] = []
            frames = _to_uint16(np.asarray(f["image_seqs"][i]), flags)
            coords = np.asarray(f["landmark_coords"][i], dtype=np.float64)  # (T, 2, 168)
            pts = np.transpose(coords, (0, 2, 1))  # -> (T, 168, 2)
            ed = int(f["ed_frame_idx"][i]) if "ed_frame_idx" in f else 0
            es = int(f["es_frame_idx"][i]) if "es_frame_idx" in f else -1
            if ed != 0:
                frames, pts = np.roll(frames, -ed, axis=0), np.roll(pts, -ed, axis=0)
                es = (es - ed) % len(frames) if es >= 0 else es
                flags.append("ed_rolled_to_frame_0")
            t = frames.shape[0]
            valid = frames.reshape(t, -1).any(axis=1)
            valid[0] = True  # ED is the reference frame by definition
            out_frames = np.zeros((N_FRAMES, *frames.shape[1:]), dtype=np.uint16)
            out_pts = np.full((N_FRAMES, N_LANDMARKS, 2), np.nan)
            keep = min(t, N_FRAMES)
            out_frames[:keep], out_pts[:keep] = frames[:keep], pts[:keep]
            frame_valid = np.zeros(N_FRAMES, dtype=bool)
            frame_valid[:keep] = valid[:keep]
            out_pts[~frame_valid] = np.nan
            spacing = float(f["px_spaces"][i])
            eid = (f["eids"][i].decode() if isinstance(f["eids"][i], bytes) else str(f["eids"][i])
                   ) if "eids" in f else f"hdf5-{i}"
            if "bbox_corners" in f:
                box = np.asarray(f["bbox_corners"][i], dtype=np.float64)
            else:
                box = geometry.roi_box(out_pts[0])
            slice_index = int(f["slice_index"][i]) if "slice_index" in f else None
            rec = SliceRecord(
                eid=eid, instance=None, slice_index=slice_index if slice_index in SLICE_LABELS
                else None, qc_flags=flags, frames=out_frames, frame_valid=frame_valid,
                trigger_time_ms=np.full(N_FRAMES, np.nan),
                pixel_spacing_mm=np.array([spacing, spacing]), n_frames=int(valid.sum()),
                source_uri=f"{uri}#{i}",
            )
            yield LabelledSlice(rec, out_pts, box, es)
