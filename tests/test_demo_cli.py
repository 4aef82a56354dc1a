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
from raytag.phantom import kinematics as kin
from raytag.phantom.params import SliceParams
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


def test_result_row_for_ok_and_failed_records():
    failed = SliceRecord("9000001", 2, None).fail("empty object (0 bytes), not a zip archive")
    params = kin.fit_motion(SliceParams(2), -0.2, 0.25)
    rec = SliceRecord("9000002", 2, 2, n_frames=20, pixel_spacing_mm=np.array([1.4, 1.3]))
    pts = kin.landmarks(params)
    pts[19] = np.nan  # a missing frame becomes null, never NaN in the table
    strains = compute_strains(pts, frame_valid=np.arange(20) < 19)
    table = rows_to_table([result_row(failed), result_row(rec, strains, pts, [1, 2, 3, 4], "v")])
    assert table.schema == RESULTS_SCHEMA
    a, b = table.to_pylist()
    assert a["status"] == "failed" and a["slice_index"] is None and a["es_circ_global"] is None
    assert a["error"] == "empty object (0 bytes), not a zip archive" and a["stage"] == "ingest"
    assert b["slice_label"] == "mid" and b["pixel_spacing_mm"] == [1.4, 1.3]
    assert b["es_frame"] == int(strains["es_frame"]) and b["bbox_px"] == [1, 2, 3, 4]
    assert b["es_circ_global"] == pytest.approx(-0.2, abs=0.01)
    assert len(b["landmarks_px"]) == 20 * 168 * 2 and b["landmarks_px"][-1] is None
    assert b["landmarks_px"][:2] == pts[0, 0].tolist()
    assert b["circ_global"][19] is None and len(b["radial"]) == 20
    assert b["es_circ_global"] == pytest.approx(float(strains["es_circ_global"]))


def test_inspect_json_and_exit_status(tmp_path, capsys):
    from raytag.phantom.cohort import SynthConfig, generate_participant

    for i, faults in ((0, {}), (1, {"truncated_file": 1.0})):
        gp = generate_participant(i, SynthConfig(2, seed=0, faults=faults))
        storage.write_bytes(tmp_path / gp.name, gp.data)
    good, bad = tmp_path / zip_name(9000000), tmp_path / zip_name(9000001)
    assert main(["inspect", "--json", str(good)]) == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [x["slice_label"] for x in lines] == ["basal", "mid", "apical"]
    assert lines[0]["shape"] == [256, 174] and lines[0]["status"] == "ok"
    assert main(["inspect", str(bad)]) == 1
    assert "truncated or corrupt zip archive" in capsys.readouterr().out
    assert read_participant(good)[0].ok
