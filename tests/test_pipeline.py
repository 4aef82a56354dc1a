"""The cohort pipeline: stages, exactly-once ledger, S3 end to end, resume after a kill,
model actors placed on GPU nodes, and the demo."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import textwrap
import time

import numpy as np
import pyarrow as pa
import pytest

from raytag.cli import build_parser
from raytag.constants import REFINE_PASSES, TRUTH_FILE
from raytag.io import storage
from raytag.phantom.cohort import SynthConfig
from raytag.pipeline.ledger import Ledger
from raytag.pipeline.run import build_index, pool_size, read_results, run_cohort
from raytag.pipeline.stages import (
    OUTPUT_SCHEMA,
    DecodeSlices,
    PredictSlices,
    StrainQC,
)
from raytag.pipeline.synth import synthesise
from raytag.pipeline.telemetry import failure_reason
from raytag.results import RESULTS_SCHEMA

FAULTS = {"corrupt_zip": 0.25, "missing_slice": 0.25}


def expected_keys(cohort_uri: str) -> set[tuple]:
    """Every (eid, instance, slice_index) the results must hold exactly once.

    Broken zips give one row with a null slice index; otherwise one row per slice b1..b3
    (a missing slice is a failed row of its own).
    """
    truth = storage.read_table(storage.join(cohort_uri, TRUTH_FILE)).to_pylist()
    keys = set()
    for r in truth:
        if r["fault"] in ("corrupt_zip", "truncated_file"):
            keys.add((r["eid"], r["instance"], None))
        else:
            keys.add((r["eid"], r["instance"], r["slice_index"]))
    return keys


def result_keys(table: pa.Table) -> list[tuple]:
    return list(zip(table.column("eid").to_pylist(), table.column("instance").to_pylist(),
                    table.column("slice_index").to_pylist(), strict=True))


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("cohort"))
    synthesise(out, SynthConfig(8, seed=31, faults=FAULTS), workers=1)
    return out


# -- stages without Ray ---------------------------------------------------------------------


def test_stages_turn_problems_into_rows(cohort, monkeypatch):
    zips = storage.list_files(cohort, ".zip")
    decoded = DecodeSlices()(pa.table({"uri": zips[:4]}))
    statuses = decoded.column("status").to_pylist()
    assert "ok" in statuses
    ok = [r for r in decoded.to_pylist() if r["status"] == "ok"]
    assert len(ok[0]["frames"]) == 20 * 256 * 256 * 2
    predict = PredictSlices()
    assert predict.predictor.refine_passes == REFINE_PASSES
    assert predict.predictor.model_version.endswith(f"refine{REFINE_PASSES}")
    paper = PredictSlices(refine_passes=0)  # the paper's single pass: no suffix
    assert paper.predictor.refine_passes == 0 and "refine" not in paper.predictor.model_version
    args = build_parser().parse_args(["run", "--input", "a", "--output", "b",
                                      "--refine-passes", "0"])
    assert args.refine_passes == 0
    # One slice makes the model raise: only that slice fails, the batch survives.
    bad_eid, bad_slice = ok[0]["eid"], ok[0]["slice_index"]
    real = predict._predict

    def flaky(rows):
        if any((r["eid"], r["slice_index"]) == (bad_eid, bad_slice) for r in rows):
            raise RuntimeError("CUDA out of memory (simulated)")
        return real(rows)

    monkeypatch.setattr(predict, "_predict", flaky)
    predicted = predict(decoded)
    assert "frames" not in predicted.column_names
    rows = predicted.to_pylist()
    failed = [r for r in rows if r["stage"] == "model"]
    assert [(r["eid"], r["slice_index"]) for r in failed] == [(bad_eid, bad_slice)]
    assert "CUDA out of memory (simulated)" in failed[0]["error"]
    assert sum(r["status"] == "ok" for r in rows) == len(ok) - 1
    out = StrainQC()(predicted)
    assert out.schema == OUTPUT_SCHEMA and out.num_rows == decoded.num_rows
    assert set(RESULTS_SCHEMA.names) <= set(out.schema.names)
    done = [r for r in out.to_pylist() if r["status"] == "ok"]
    assert all(len(r["landmarks_px"]) == 20 * 168 * 2 and len(r["radial"]) == 20 for r in done)
    assert all(r["model_version"] for r in done)


def test_strain_stage_failure_is_a_row():
    row = {"eid": "9000001", "instance": 2, "slice_index": 2, "status": "ok", "error": None,
           "stage": None, "qc_flags": [], "n_frames": 20, "pixel_spacing_mm": [1.4, 1.4],
           "source_uri": "x", "n_candidate_series": 1, "series_uid": "1.2",
           "frame_valid": [True] * 20, "pad_offsets": [0, 41], "decode_node": "a",
           "bbox_px": [1.0, 2.0, 3.0, 4.0], "landmarks": b"\x00" * 12, "model_node": "b",
           "model_version": "v"}
    out = StrainQC()(pa.Table.from_pylist([row])).to_pylist()[0]
    assert out["status"] == "failed" and out["stage"] == "strain"
    assert out["error"].startswith("strain error:")


def test_failure_reasons_are_bounded():
    assert failure_reason("empty object (0 bytes), not a zip archive") == "empty object"
    assert failure_reason("slice b2 (mid) has no tagging series in the zip") == "slice missing"
    assert failure_reason("something new") == "other" and failure_reason(None) == ""


def test_pool_size_never_takes_every_cpu():
    assert pool_size({"CPU": 2}) == (1, {"num_cpus": 1})
    assert pool_size({"CPU": 16}) == (8, {"num_cpus": 1})
    assert pool_size({"CPU": 4}, requested=10) == (3, {"num_cpus": 1})
    assert pool_size({"CPU": 32, "GPU": 4}) == (4, {"num_gpus": 1, "num_cpus": 1})


def test_ledger_recovers_from_a_kill_mid_chunk(tmp_path):
    out = str(tmp_path / "out")
    ledger = Ledger(out)
    storage.write_bytes(storage.join(ledger.staging_uri(0), "instance=2/slice_label=mid/"
                                      "c000000_u_000000-0.parquet"), b"x")
    assert ledger.commit(0, [("9000001", 2)], {"ok": 3}, 3) == [
        "instance=2/slice_label=mid/c000000_u_000000-0.parquet"]
    # Chunk 1 was moved but never committed; chunk 2 was still in staging.
    storage.write_bytes(storage.join(out, "instance=2/slice_label=mid/c000001_v_0-0.parquet"),
                        b"y")
    storage.write_bytes(storage.join(ledger.staging_uri(2), "a/c000002_w_0-0.parquet"), b"z")
    assert ledger.next_chunk() == 3  # never reuse a number a leftover file carries
    assert ledger.recover() == 2
    files = storage.list_files(out)
    assert [storage.basename(f) for f in files] == ["c000000.json",
                                                     "c000000_u_000000-0.parquet"]
    assert ledger.done_keys() == {("9000001", 2)} and ledger.next_chunk() == 1


# -- with Ray --------------------------------------------------------------------------------


def test_end_to_end_on_s3_exactly_once(cohort, s3_endpoint, s3_bucket, ray_local):
    import boto3

    s3 = boto3.client("s3", endpoint_url=s3_endpoint)
    for uri in storage.list_files(cohort):
        s3.upload_file(uri, s3_bucket, f"in/{storage.basename(uri)}")
    src, out = f"s3://{s3_bucket}/in", f"s3://{s3_bucket}/results"
    summary = run_cohort(src, out, chunk_participants=3, echo=lambda s: None)
    table = read_results(out)
    for field in RESULTS_SCHEMA:  # every contract column, with its type
        assert table.schema.field(field.name).type == field.type, field.name
    keys = result_keys(table)
    assert len(keys) == len(set(keys)) and set(keys) == expected_keys(cohort)
    assert summary["duplicate_keys"] == 0 and summary["participants"] == 8
    failed = [r for r in table.to_pylist() if r["status"] == "failed"]
    assert failed and all(r["error"] and r["stage"] == "ingest" for r in failed)
    assert {failure_reason(r["error"]) for r in failed} <= {"not a zip archive", "slice missing"}
    # Partitioned by instance and slice label, a few files per chunk (not one per row).
    files = [f for f in storage.list_files(out, ".parquet")]
    assert all("/instance=2/slice_label=" in f for f in files)
    assert len(files) <= 3 * 4  # 3 chunks x (3 labels + failures)
    # Rerunning does nothing and changes nothing.
    again = run_cohort(src, out, echo=lambda s: None)
    assert again["processed_participants"] == 0
    assert sorted(result_keys(read_results(out)), key=str) == sorted(keys, key=str)


_KILL_SCRIPT = textwrap.dedent("""
    import sys, tempfile, ray
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             _temp_dir=tempfile.mkdtemp(prefix="rk", dir="/tmp"))
    from raytag.pipeline.run import run_cohort
    run_cohort(sys.argv[1], sys.argv[2], chunk_participants=2, echo=print)
""")


def test_rerun_after_a_killed_driver_is_exactly_once(cohort, tmp_path, ray_local):
    out = str(tmp_path / "results")
    proc = subprocess.Popen([sys.executable, "-c", _KILL_SCRIPT, cohort, out],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    commits = tmp_path / "results" / "_raytag" / "commits"
    deadline = time.time() + 300
    try:
        while time.time() < deadline and not (commits.exists() and any(commits.iterdir())):
            time.sleep(0.5)
        assert commits.exists() and any(commits.iterdir()), "first chunk never committed"
    finally:
        os.killpg(proc.pid, 9)  # the driver and everything it started, mid-run
        proc.wait()
    ledger = Ledger(out)
    done_before = ledger.done_keys()
    assert 0 < len(done_before) < 8
    summary = run_cohort(cohort, out, chunk_participants=4, echo=lambda s: None)
    assert summary["processed_participants"] == 8 - len(done_before)
    keys = result_keys(read_results(out))
    assert len(keys) == len(set(keys)) and set(keys) == expected_keys(cohort)


_GPU_SCRIPT = textwrap.dedent("""
    import json, sys, tempfile
    import ray
    from ray.cluster_utils import Cluster
    cluster = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 1, "temp_dir": tempfile.mkdtemp(prefix="rg", dir="/tmp"),
        "include_dashboard": False})
    gpu_node = cluster.add_node(num_cpus=1, num_gpus=1)
    ray.init(address=cluster.address, log_to_driver=False)
    from raytag.pipeline.run import read_results, run_cohort
    run_cohort(sys.argv[1], sys.argv[2], limit=3, echo=lambda s: None)
    t = read_results(sys.argv[2], columns=["status", "decode_node", "model_node"]).to_pylist()
    print(json.dumps({"gpu_node": gpu_node.node_id, "rows": t}))
    ray.shutdown()
    cluster.shutdown()
""")


def test_model_actors_go_to_the_gpu_node_and_decoding_elsewhere(cohort, tmp_path):
    # The node only *advertises* a GPU; the actors must still run (torch picks its device
    # from torch.cuda.is_available(), not from Ray's GPU ids).
    done = subprocess.run([sys.executable, "-c", _GPU_SCRIPT, cohort, str(tmp_path / "out")],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    rows = [r for r in report["rows"] if r["model_node"]]
    assert rows and all(r["model_node"] == report["gpu_node"] for r in rows)
    assert all(r["decode_node"] != report["gpu_node"] for r in report["rows"])


def test_index_manifest_input_and_demo(cohort, tmp_path, ray_local, capsys):
    manifest = str(tmp_path / "manifest.parquet")
    assert build_index(cohort, manifest) == 8
    m = storage.read_table(manifest)
    assert m.column_names == ["uri", "eid", "instance"]
    summary = run_cohort(manifest, str(tmp_path / "r"), limit=2, echo=lambda s: None)
    assert summary["participants"] == 2

    from raytag.demo import run_demo

    demo = run_demo(str(tmp_path / "demo"), n_participants=4, seed=2)
    printed = capsys.readouterr().out
    assert "raytag demo:" in printed and "agreement with truth" in printed
    assert demo["duplicate_keys"] == 0 and demo["participants"] == 4
    assert set(demo["agreement"]) <= {"basal", "mid", "apical"}
    assert np.isfinite(demo["slices_per_s"])
    # the demo ends with the report; its Table 2 recomputed from the results and the truth
    assert demo["report"] in printed and os.path.exists(demo["report"])
    doc = json.loads(open(os.path.join(os.path.dirname(demo["report"]), "report.json")).read())
    truth = {(r["eid"], r["slice_index"]): r for r in storage.read_table(
        str(tmp_path / "demo" / "cohort" / "truth.parquet")).to_pylist()}
    ok = [r for r in read_results(str(tmp_path / "demo" / "results")).to_pylist()
          if r["status"] == "ok"]
    for row in doc["tables"]["agreement"]:
        d = [r[row["column"]] - truth[(r["eid"], r["slice_index"])][row["column"]]
             for r in ok if r["slice_label"] == row["region"]]
        assert row["n"] == len(d)
        if d:
            assert row["bias"] == pytest.approx(statistics.mean(d), abs=1e-12)
        if len(d) > 1:
            assert row["precision"] == pytest.approx(statistics.stdev(d), abs=1e-12)
        if row["strain"] == "Circ global" and d:
            assert demo["agreement"][row["region"]]["es_circ_global"][0] == pytest.approx(
                row["bias"], abs=1e-12)
