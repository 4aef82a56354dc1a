"""Labelled slices from a synthetic cohort and from the original study's HDF5 layout."""

from __future__ import annotations

import numpy as np
import pytest

from raytag import geometry
from raytag.io.labelled import read_study_hdf5, read_synthetic_cohort
from raytag.phantom.cohort import SynthConfig, generate_participant
from raytag.pipeline.synth import synthesise

h5py = pytest.importorskip("h5py")


@pytest.fixture(scope="module")
def slices():
    gp = generate_participant(0, SynthConfig(1, seed=21), keep_images=True)
    return gp.images


def test_synthetic_cohort_yields_ok_slices_with_truth(tmp_path):
    synthesise(str(tmp_path), SynthConfig(3, seed=2, faults={"missing_slice": 0.34}), workers=1)
    items = list(read_synthetic_cohort(str(tmp_path)))
    # 3 participants x 3 slices, minus the slices the missing_slice fault removed.
    assert 6 <= len(items) <= 9
    for it in items:
        assert it.record.ok and it.landmarks_px.shape == (20, 168, 2)
        np.testing.assert_allclose(it.bbox_px, geometry.roi_box(it.landmarks_px[0]))
        assert 0 < it.es_frame < 20 and it.group in ("reference", "impaired")
    assert len(list(read_synthetic_cohort(str(tmp_path), limit=1))) <= 3


def _write_study_file(path, slices, ed_index=0, floats=False, n_frames=20):
    """The original code's layout, padded to 256x256, written by hand here."""
    n = len(slices)
    images = np.zeros((n, 20, 256, 256), dtype=np.float32 if floats else np.uint16)
    coords = np.zeros((n, 20, 2, 168))
    boxes = np.zeros((n, 4))
    for i, s in enumerate(slices):
        padded, (r0, c0) = geometry.pad_to_square(s["frames"][:n_frames])
        pts = geometry.points_to_padded(s["landmarks"][:n_frames], (r0, c0))
        images[i, :n_frames] = padded / (padded.max() if floats else 1)
        coords[i, :n_frames] = np.transpose(pts, (0, 2, 1))  # (T, 2, 168): x row, y row
        boxes[i] = geometry.roi_box(pts[0])
        images[i] = np.roll(images[i], ed_index, axis=0)
        coords[i] = np.roll(coords[i], ed_index, axis=0)
    with h5py.File(path, "w") as f:
        f["image_seqs"] = images
        f["landmark_coords"] = coords
        f["bbox_corners"] = boxes
        f["px_spaces"] = np.full(n, 1.3671875)
        f["es_frame_idx"] = np.array([(s["es_frame"] + ed_index) % 20 for s in slices])
        f["ed_frame_idx"] = np.full(n, ed_index)
        f["eids"] = np.array([b"9000042"] * n)


def test_study_hdf5_layout(tmp_path, slices):
    path = tmp_path / "train.h5"
    _write_study_file(path, slices)
    items = list(read_study_hdf5(str(path)))
    assert len(items) == 3
    for it, s in zip(items, slices, strict=True):
        padded, (r0, c0) = geometry.pad_to_square(s["frames"])
        np.testing.assert_array_equal(it.record.frames, padded)
        np.testing.assert_allclose(it.landmarks_px,
                                   geometry.points_to_padded(s["landmarks"], (r0, c0)))
        np.testing.assert_allclose(it.bbox_px, geometry.roi_box(it.landmarks_px[0]))
        assert it.es_frame == s["es_frame"] and it.record.eid == "9000042"
        assert it.record.frame_valid.all() and it.record.qc_flags == []
        np.testing.assert_array_equal(it.record.pixel_spacing_mm, [1.3671875] * 2)


def test_study_hdf5_rolls_ed_scales_floats_and_marks_padding(tmp_path, slices):
    path = tmp_path / "odd.h5"
    _write_study_file(path, slices[:1], ed_index=3, floats=True, n_frames=16)
    (it,) = list(read_study_hdf5(str(path)))
    assert "ed_rolled_to_frame_0" in it.record.qc_flags
    assert "float_pixels_scaled" in it.record.qc_flags
    assert it.record.frame_valid.tolist() == [True] * 16 + [False] * 4
    assert np.isnan(it.landmarks_px[16:]).all()
    assert it.es_frame == slices[0]["es_frame"]
    r0, c0 = geometry.pad_offsets(slices[0]["frames"].shape[-2:])
    np.testing.assert_allclose(it.landmarks_px[:16], slices[0]["landmarks"][:16] + [c0, r0])


def test_study_hdf5_wrong_layout(tmp_path):
    with h5py.File(tmp_path / "x.h5", "w") as f:
        f["something"] = np.zeros(3)
    with pytest.raises(ValueError, match="not the study HDF5 layout"):
        list(read_study_hdf5(str(tmp_path / "x.h5")))
