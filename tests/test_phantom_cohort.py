"""Synthetic cohorts: UK Biobank layout, round trip through the ingest, determinism, faults."""

from __future__ import annotations

import json

import numpy as np
import pytest

from raytag import geometry
from raytag.cli import main
from raytag.io import read_participant, storage
from raytag.phantom import kinematics as kin
from raytag.phantom.cohort import (
    TRUTH_SCHEMA,
    SynthConfig,
    generate_participant,
    parse_faults,
)
from raytag.phantom.params import SliceParams
from raytag.pipeline.synth import synthesise
from raytag.strain import compute_strains


@pytest.fixture(scope="module")
def clean():
    return generate_participant(0, SynthConfig(1, seed=7), keep_images=True)


def test_layout_and_round_trip_through_the_ingest(clean):
    assert clean.name == "9000000_20211_2_0.zip" and clean.fault is None
    records = read_participant((clean.name, clean.data))
    assert [r.slice_label for r in records] == ["basal", "mid", "apical"]
    for rec, image, row in zip(records, clean.images, clean.truth_rows, strict=True):
        assert rec.ok and rec.qc_flags == [] and rec.n_candidate_series == 1
        np.testing.assert_array_equal(rec.frames, image["frames"])  # same order, same pixels
        params = SliceParams(**{k: tuple(v) if isinstance(v, list) else v
                                for k, v in json.loads(row["params_json"]).items()})
        np.testing.assert_allclose(rec.trigger_time_ms, kin.frame_times_ms(params), atol=1e-3)
        np.testing.assert_array_equal(rec.pixel_spacing_mm, [params.spacing_mm] * 2)
        assert rec.shape == (params.rows, params.cols)
    # Slice positions along the normal are monotonic basal -> apical.
    positions = [r.slice_position_mm for r in records]
    assert np.all(np.diff(positions) < 0)


def test_truth_rows_are_exact(clean):
    for row, image in zip(clean.truth_rows, clean.images, strict=True):
        pts = np.array(row["landmarks_px"], dtype=float).reshape(20, 168, 2)
        np.testing.assert_array_equal(pts, image["landmarks"])
        np.testing.assert_allclose(row["bbox_px"], geometry.roi_box(pts[0]))
        s = compute_strains(pts)  # recomputed independently of the row's stored values
        assert row["es_frame"] == s["es_frame"]
        for name in ("radial", "circ_global", "circ_subendo", "circ_midwall", "circ_subepi"):
            np.testing.assert_allclose(row[name], s[name], atol=1e-12)
            assert row[f"es_{name}"] == pytest.approx(float(s[f"es_{name}"]), abs=1e-12)
        assert row["status"] == row["expected_status"] == "ok"
        assert row["group"] in ("reference", "impaired")
        # Landmarks sit on the myocardium: spoke 0 endo -> epi points away from the centre.
        centre = pts[0].mean(axis=0)
        assert np.linalg.norm(pts[0, 6] - centre) > np.linalg.norm(pts[0, 0] - centre)


def test_same_seed_same_bytes_and_faults_do_not_change_anatomy(clean):
    again = generate_participant(0, SynthConfig(1, seed=7))
    assert again.data == clean.data
    other_seed = generate_participant(0, SynthConfig(1, seed=8))
    assert other_seed.data != clean.data
    with_fault = generate_participant(0, SynthConfig(1, seed=7, faults={"duplicate_series": 1}))
    recs = read_participant((with_fault.name, with_fault.data))
    for rec, image in zip(recs, clean.images, strict=True):
        np.testing.assert_array_equal(rec.frames, image["frames"])


def _records(fault: str, index: int = 3):
    gp = generate_participant(index, SynthConfig(index + 1, seed=1, faults={fault: 1.0}))
    assert gp.fault == fault
    return gp, read_participant((gp.name, gp.data))


def test_fault_missing_slice():
    gp, recs = _records("missing_slice")
    failed = [r for r in recs if not r.ok]
    assert len(failed) == 1 and "has no tagging series" in failed[0].error
    expected = {r["slice_index"]: r["expected_status"] for r in gp.truth_rows}
    assert expected[failed[0].slice_index] == "failed"
    assert sorted(expected.values()) == ["failed", "ok", "ok"]


@pytest.mark.parametrize("fault,reason", [("truncated_file", "truncated or corrupt zip"),
                                          ("corrupt_zip", "not a zip archive")])
def test_fault_broken_zip(fault, reason):
    gp, recs = _records(fault)
    assert len(recs) == 1 and recs[0].status == "failed" and reason in recs[0].error
    assert all(r["expected_status"] == "failed" for r in gp.truth_rows)


def test_fault_duplicate_series_picks_the_complete_one():
    gp, recs = _records("duplicate_series")
    flagged = [r for r in recs if "repeated_series" in r.qc_flags]
    assert len(flagged) == 1 and flagged[0].n_candidate_series == 2
    assert all(r.ok and r.n_frames == 20 and r.frame_valid.all() for r in recs)


def test_fault_fewer_frames():
    gp, recs = _records("fewer_frames")
    short = [r for r in recs if r.n_frames < 20]
    assert len(short) == 1 and "padded_frames" in short[0].qc_flags
    row = next(r for r in gp.truth_rows if r["slice_index"] == short[0].slice_index)
    assert row["n_frames"] == short[0].n_frames
    pts = np.array(row["landmarks_px"], dtype=float).reshape(20, 168, 2)
    assert np.isnan(pts[short[0].n_frames:]).all() and np.isfinite(pts[: short[0].n_frames]).all()


def test_parse_faults_and_config_validation():
    assert parse_faults("missing_slice=0.1, corrupt_zip=0.05") == {
        "missing_slice": 0.1, "corrupt_zip": 0.05}
    assert parse_faults("") == {}
    with pytest.raises(ValueError, match="unknown fault 'bogus'"):
        parse_faults("bogus=0.1")
    with pytest.raises(ValueError, match="must be a number"):
        parse_faults("missing_slice=lots")
    with pytest.raises(ValueError, match="sum to at most 1"):
        SynthConfig(1, faults={"missing_slice": 0.7, "corrupt_zip": 0.6})


def test_synth_cli_writes_cohort_truth_and_preview(tmp_path, capsys):
    out, png = tmp_path / "c", tmp_path / "p.png"
    code = main(["synth", "--participants", "3", "--out", str(out), "--seed", "1",
                 "--workers", "1", "--faults", "missing_slice=0.34", "--preview", str(png)])
    assert code == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["participants"] == 3 and summary["slices"] == 9
    zips = storage.list_files(out, ".zip")
    assert [storage.basename(z) for z in zips] == [f"900000{i}_20211_2_0.zip" for i in range(3)]
    truth = storage.read_table(out / "truth.parquet")
    assert truth.schema == TRUTH_SCHEMA and truth.num_rows == 9
    keys = list(zip(truth["eid"].to_pylist(), truth["slice_index"].to_pylist(), strict=True))
    assert len(set(keys)) == 9
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 50_000
    assert main(["synth", "--participants", "1", "--faults", "nope=1"]) == 2
    assert main(["synth", "--participants", "1"]) == 2  # neither --out nor --preview


def test_parallel_synthesis_is_byte_identical_to_serial(tmp_path, ray_local):
    config = SynthConfig(5, seed=3, faults={"fewer_frames": 0.3})
    serial = synthesise(str(tmp_path / "serial"), config, workers=1, chunk_size=2)
    parallel = synthesise(str(tmp_path / "ray"), config, workers=2, chunk_size=2)
    assert serial["slices"] == parallel["slices"] == 15
    for a, b in zip(storage.list_files(tmp_path / "serial", ".zip"),
                    storage.list_files(tmp_path / "ray", ".zip"), strict=True):
        assert storage.basename(a) == storage.basename(b)
        assert storage.read_bytes(a) == storage.read_bytes(b)
    assert storage.read_table(tmp_path / "serial" / "truth.parquet").equals(
        storage.read_table(tmp_path / "ray" / "truth.parquet"))


def test_synthesis_to_s3(s3_endpoint, s3_bucket):
    summary = synthesise(f"s3://{s3_bucket}/cohort", SynthConfig(2, seed=4), workers=1)
    zips = storage.list_files(f"s3://{s3_bucket}/cohort", ".zip")
    assert len(zips) == 2 and summary["truth"] == f"s3://{s3_bucket}/cohort/truth.parquet"
    assert all(r.ok for r in read_participant(zips[1]))
    assert storage.read_table(summary["truth"]).num_rows == 6


def test_longer_cines_are_truncated_like_the_ingest():
    gp = generate_participant(0, SynthConfig(1, seed=2, n_frames=24))
    recs = read_participant((gp.name, gp.data))
    for rec, row in zip(recs, gp.truth_rows, strict=True):
        assert rec.n_frames == row["n_frames"] == 24 and "truncated_frames" in rec.qc_flags
        assert len(row["landmarks_px"]) == 20 * 168 * 2 and len(row["circ_global"]) == 20
