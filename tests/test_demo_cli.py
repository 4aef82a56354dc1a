"""The CLI, the demo, the results-table contract and the foundation's ring phantom."""

from __future__ import annotations

import json

import numpy as np
import pytest

from raytag import __version__
from raytag.cli import main
from raytag.io import read_participant, storage
from raytag.io.records import SliceRecord
from raytag.io.ukb_writer import zip_name
from raytag.phantom import RingPhantom, contraction_profile
from raytag.results import RESULTS_SCHEMA, result_row, rows_to_table
from raytag.strain import compute_strains

CONTRACT_COLUMNS = [
    "eid", "instance", "slice_index", "slice_label", "status", "error", "qc_flags", "n_frames",
    "pixel_spacing_mm", "bbox_px", "landmarks_px", "es_frame", "radial", "circ_global",
    "circ_subendo", "circ_midwall", "circ_subepi", "es_radial", "es_circ_global",
    "es_circ_subendo", "es_circ_midwall", "es_circ_subepi", "model_version", "source_uri",
]


def test_version_and_help(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0 and __version__ in capsys.readouterr().out
    assert main([]) == 2
    assert "demo" in capsys.readouterr().out


def test_results_schema_has_every_contract_column():
    assert set(CONTRACT_COLUMNS) <= set(RESULTS_SCHEMA.names)


def test_ring_phantom_truth():
    ph = RingPhantom(r_endo_px=10.0, r_epi_px=16.0, endo_shortening=0.3, theta0_deg=90.0)
    pts = ph.landmarks()
    assert pts.shape == (20, 168, 2)
    # ED: ring r at radius 10 + r, spoke 0 straight down the image (90 deg, y down).
    d = pts[0] - np.asarray(ph.center_xy)
    np.testing.assert_allclose(np.hypot(*d.T), np.tile(10.0 + np.arange(7), 24))
    np.testing.assert_allclose(pts[0, 0], [ph.center_xy[0], ph.center_xy[1] + 10.0], atol=1e-12)
    # ES: endocardium at 70% of its ED radius; incompressible wall area.
    c = contraction_profile(20, ph.es_frame)
    assert c[0] == 0 and c[ph.es_frame] == 1 and c.argmax() == ph.es_frame
    r_endo_es, r_epi_es = 7.0, np.sqrt(7.0**2 + 16.0**2 - 10.0**2)
    d_es = pts[ph.es_frame] - np.asarray(ph.center_xy)
    np.testing.assert_allclose(np.hypot(*d_es.T)[[0, 6]], [r_endo_es, r_epi_es])
    s = compute_strains(pts)
    assert s["es_frame"] == ph.es_frame
    ring1_es = np.sqrt(7.0**2 + 11.0**2 - 10.0**2) / 11.0
    np.testing.assert_allclose(s["es_circ_subendo"], 0.5 * (ring1_es**2 - 1))
    np.testing.assert_allclose(s["es_radial"], 0.5 * (((r_epi_es - r_endo_es) / 6.0) ** 2 - 1))
    np.testing.assert_allclose(s["rings"], ph.truth_strains()["rings"], atol=1e-12)


def test_ring_phantom_images():
    ph = RingPhantom()
    frames = ph.frames(np.random.default_rng(0))
    assert frames.shape == (20, 256, 174) and frames.dtype == np.uint16
    assert 60 < frames.max() < 4096  # a realistic low range in a 12-bit container
    # Tags fade: the myocardial texture loses contrast from ED to the last frame.
    wall = np.zeros((256, 174), bool)
    pts = ph.landmarks()[0]
    wall[np.rint(pts[:, 1]).astype(int), np.rint(pts[:, 0]).astype(int)] = True
    assert frames[0][wall].std() > 2 * frames[-1][wall].std()


def test_result_row_for_ok_and_failed_records():
    failed = SliceRecord("9000001", 2, None).fail("empty object (0 bytes), not a zip archive")
    ph = RingPhantom()
    rec = SliceRecord("9000002", 2, 2, n_frames=20, pixel_spacing_mm=np.array([1.4, 1.3]))
    pts = ph.landmarks()
    pts[19] = np.nan  # a missing frame becomes null, never NaN in the table
    strains = compute_strains(pts, frame_valid=np.arange(20) < 19)
    table = rows_to_table([result_row(failed), result_row(rec, strains, pts, [1, 2, 3, 4], "v")])
    assert table.schema == RESULTS_SCHEMA
    a, b = table.to_pylist()
    assert a["status"] == "failed" and a["slice_index"] is None and a["es_circ_global"] is None
    assert a["error"] == "empty object (0 bytes), not a zip archive" and a["stage"] == "ingest"
    assert b["slice_label"] == "mid" and b["pixel_spacing_mm"] == [1.4, 1.3]
    assert b["es_frame"] == ph.es_frame and b["bbox_px"] == [1, 2, 3, 4]
    assert len(b["landmarks_px"]) == 20 * 168 * 2 and b["landmarks_px"][-1] is None
    assert b["landmarks_px"][:2] == pts[0, 0].tolist()
    assert b["circ_global"][19] is None and len(b["radial"]) == 20
    assert b["es_circ_global"] == pytest.approx(float(strains["es_circ_global"]))


def test_demo_end_to_end(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--participants", "2", "--seed", "3"]) == 0
    printed = capsys.readouterr().out
    assert "status {'ok': 6, 'failed': 1}" in printed
    table = storage.read_table(out / "results" / "results.parquet")
    assert table.schema == RESULTS_SCHEMA and table.num_rows == 7
    rows = table.to_pylist()
    failed = [r for r in rows if r["status"] == "failed"]
    assert [(r["eid"], r["slice_index"]) for r in failed] == [("9000002", None)]
    # Every good slice's strain equals the phantom's closed form, and its row is complete.
    from raytag.demo import synthesise_cohort

    truth = synthesise_cohort(str(tmp_path / "again"), 2, seed=3)
    for r in rows:
        if r["status"] != "ok":
            continue
        exact = truth[(r["eid"], r["slice_index"])].truth_strains()["rings"]
        es = r["es_frame"]
        assert r["es_circ_global"] == pytest.approx(exact[es].mean(), abs=1e-12)
        assert r["es_circ_midwall"] == pytest.approx(exact[es, 3], abs=1e-12)
        assert np.argmin(exact[1:].mean(axis=1)) + 1 == es
        assert len(r["landmarks_px"]) == 20 * 168 * 2 and len(r["bbox_px"]) == 4


def test_inspect_json_and_exit_status(tmp_path, capsys):
    from raytag.demo import synthesise_cohort

    synthesise_cohort(str(tmp_path), 1, broken=1)
    good, bad = tmp_path / zip_name(9000000), tmp_path / zip_name(9000001)
    assert main(["inspect", "--json", str(good)]) == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [x["slice_label"] for x in lines] == ["basal", "mid", "apical"]
    assert lines[0]["shape"] == [256, 174] and lines[0]["status"] == "ok"
    assert main(["inspect", str(bad)]) == 1
    assert "empty object (0 bytes)" in capsys.readouterr().out
    assert read_participant(good)[0].ok
