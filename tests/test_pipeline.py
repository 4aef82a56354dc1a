"""The cohort pipeline: stages (with an oracle that knows the truth), the ledger against a
flaky filesystem, S3 end to end exactly once and readable by every reader, changed inputs
and retried failures, resume after kill -9, model actors placed on GPU nodes, the demo."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time

import numpy as np
import pyarrow as pa
import pytest

from raytag import geometry
from raytag.cli import TRACKERS, build_parser
from raytag.constants import N_FRAMES, PAD_SIZE, REFINE_PASSES, TRUTH_FILE
from raytag.failures import Reason
from raytag.io import storage
from raytag.io.ledger import Entry, Ledger, participant_key
from raytag.phantom.cohort import SynthConfig
from raytag.pipeline.run import (
    LOCAL_MAX_PARTICIPANTS,
    build_index,
    choose_engine,
    plan_work,
    pool_size,
    read_results,
    run_cohort,
    task_cpus,
)
from raytag.pipeline.stages import (
    OUTPUT_SCHEMA,
    PredictNetworks,
    decode_participants,
    measure_batch,
)
from raytag.pipeline.synth import synthesise
from raytag.results import RESULTS_SCHEMA
from raytag.tracking import measure as tracking_measure

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


def truth_by_key(cohort_uri: str) -> dict:
    return {(r["eid"], r["slice_index"]): r for r in
            storage.read_table(storage.join(cohort_uri, TRUTH_FILE)).to_pylist()}


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("cohort"))
    synthesise(out, SynthConfig(8, seed=31, faults=FAULTS), workers=1)
    return out


def test_every_cli_tracker_is_one_the_core_runs():
    # the CLI offers raytag.constants.TRACKERS; measure_slice must accept each of them
    # (a cine without tags ends as the network's track, flagged) and refuse any other
    frames = np.zeros((N_FRAMES, 32, 32), dtype=np.float32)
    valid = np.ones(N_FRAMES, dtype=bool)
    net = np.random.default_rng(0).uniform(8, 24, (N_FRAMES, 168, 2))
    for tracker in TRACKERS:
        m = tracking_measure.measure_slice(frames, valid, (1.5, 1.5), net, tracker)
        assert m.tracker == "network" and "no_tag_grid" in m.qc_flags
    with pytest.raises(ValueError, match="tracker must be one of"):
        tracking_measure.measure_slice(frames, valid, (1.5, 1.5), net, "magic")


def test_run_settings_refuse_bad_values_before_anything_starts():
    from raytag.pipeline.settings import RunSettings

    for bad in ({"tracker": "magic"}, {"retry_failed": "sometimes"}, {"rows_per_file": 0},
                {"limit": 0}, {"gpus": -1}, {"refine_passes": -1}, {"localiser_views": 4},
                {"flush_seconds": 0}, {"engine": "warp"}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            RunSettings(**bad)
    with pytest.raises(ValueError, match="tracker"):
        run_cohort("in", "out", tracker="magic")  # refused before Ray or the input is read


# -- stages without Ray ---------------------------------------------------------------------


class _OraclePredictor:
    """Stands in for the networks: answers every slice with its truth, in *padded* pixels,
    so the pipeline's own unpadding is what brings the answer back to original pixels."""

    model_version = "oracle"

    def __init__(self, cohort_uri, records):
        truth = truth_by_key(cohort_uri)
        self.answers = {}
        for r in records:
            if r.ok:
                t = truth[(r.eid, r.slice_index)]
                row_off, col_off = geometry.pad_offsets(r.frames.shape[-2:], PAD_SIZE)
                shift = np.array([col_off, row_off], dtype=float)
                pts = np.array(t["landmarks_px"], dtype=float).reshape(20, 168, 2) + shift
                box = np.array(t["bbox_px"], dtype=float) + np.concatenate([shift, shift])
                padded, _ = geometry.pad_to_square(r.frames, PAD_SIZE)
                self.answers[_digest(padded)] = (box, pts)

    def predict_padded(self, padded, valid, boxes=None):
        out = [self.answers[_digest(frames)] for frames in padded]
        return np.stack([o[0] for o in out]), np.stack([o[1] for o in out]), None


def _digest(frames: np.ndarray) -> str:
    return hashlib.sha1(np.ascontiguousarray(frames, dtype=np.uint16).tobytes()).hexdigest()


def _decoded(cohort, n=4):
    zips = storage.list_files(cohort, ".zip")[:n]
    return decode_participants({"uri": np.array(zips, dtype=object),
                                "fingerprint": np.array(["f"] * len(zips), dtype=object)})


def test_stages_put_the_truth_back_in_original_pixels(cohort):
    """Oracle networks answering in padded pixels -> the results table holds exactly the
    truth's boxes and landmarks (a one-pixel slip in the unpad shift fails this)."""
    from raytag.results import batch_to_records

    batch = _decoded(cohort)
    records = batch_to_records(batch)
    predict = PredictNetworks()
    assert predict.predictor.refine_passes == REFINE_PASSES
    from raytag.models.predictor import Predictor

    oracle = _OraclePredictor(cohort, records)
    predict.predictor.predict_padded = oracle.predict_padded
    assert isinstance(predict.predictor, Predictor)
    out = measure_batch(predict(batch), tracker="network")
    assert out.schema == OUTPUT_SCHEMA and out.num_rows == len(records)
    truth = truth_by_key(cohort)
    ok = [r for r in out.to_pylist() if r["status"] == "ok"]
    assert ok
    for r in ok:
        t = truth[(r["eid"], r["slice_index"])]
        np.testing.assert_allclose(r["bbox_px"], t["bbox_px"], atol=1e-9)
        np.testing.assert_allclose(r["landmarks_px"], t["landmarks_px"], atol=1e-9)
        assert r["es_circ_global"] == pytest.approx(t["es_circ_global"], abs=1e-9)
        assert r["tracker"] == "network" and len(r["tag_contrast"]) == 20
        # the truth track conserves its tag phase: no phase flag
        assert "phase_inconsistent" not in r["qc_flags"]


def test_model_failure_costs_only_its_slice(cohort, monkeypatch):
    batch = _decoded(cohort)
    predict = PredictNetworks(refine_passes=0)
    assert "refine" not in predict.predictor.model_version
    assert build_parser().parse_args(["run", "--input", "a", "--output", "b",
                                      "--refine-passes", "0"]).refine_passes == 0
    views = PredictNetworks(localiser_views=8).predictor
    assert views.localiser_views == 8 and views.model_version.endswith(" views8")
    assert build_parser().parse_args(["run", "--input", "a", "--output", "b",
                                      "--localiser-views", "8"]).localiser_views == 8
    ok = [i for i, s in enumerate(batch["status"]) if s == "ok"]
    bad = ok[0]
    bad_frames = batch["frames"][bad]
    real = predict.predictor.predict_network

    def flaky(records, boxes=None):
        if any(r.frames is not None and r.frames.shape == bad_frames.shape
               and np.array_equal(r.frames, bad_frames) for r in records):
            raise RuntimeError("CUDA out of memory (simulated)")
        return real(records, boxes)

    monkeypatch.setattr(predict.predictor, "predict_network", flaky)
    out = measure_batch(predict(batch), tracker="network").to_pylist()
    failed = [r for r in out if r["stage"] == "model"]
    assert len(failed) == 1 and failed[0]["reason"] == Reason.MODEL_ERROR.value
    assert "CUDA out of memory (simulated)" in failed[0]["error"]
    assert sum(r["status"] == "ok" for r in out) == len(ok) - 1


def test_rows_say_when_the_registration_was_skipped(cohort):
    batch = PredictNetworks()(_decoded(cohort, 2))
    on = [r for r in measure_batch(batch, tracker="tags").to_pylist() if r["status"] == "ok"]
    off = [r for r in measure_batch(batch, tracker="tags", register_frames=False).to_pylist()
           if r["status"] == "ok"]
    assert on and len(on) == len(off)
    assert all(r["model_version"].endswith("tracker=tags") for r in on)
    assert all(r["model_version"].endswith("tracker=tags register=off") for r in off)
    assert any(not np.allclose(a["landmarks_px"], b["landmarks_px"])
               for a, b in zip(on, off, strict=True))
    args = build_parser().parse_args(["run", "--input", "a", "--output", "b"])
    assert args.register_frames is True
    assert build_parser().parse_args(["run", "--input", "a", "--output", "b",
                                      "--no-register-frames"]).register_frames is False
    from raytag.pipeline.settings import RunSettings

    assert RunSettings().register_frames is True


def test_strain_stage_failure_is_a_row(cohort, monkeypatch):
    batch = _decoded(cohort, 2)
    batch = PredictNetworks()(batch)

    def broken(*args, **kwargs):
        raise FloatingPointError("simulated")

    monkeypatch.setattr("raytag.pipeline.stages.measure_slice", broken)
    rows = measure_batch(batch).to_pylist()
    strain = [r for r in rows if r["stage"] == "strain"]
    assert strain and all(r["status"] == "failed" and r["reason"] == "strain_error"
                          and r["error"].startswith("strain error:") for r in strain)


def test_pool_size_never_takes_every_cpu_and_asks_for_gpus_it_can_get():
    # CPU only: one actor per core at half a core each, so at most half the CPUs are
    # reserved and a decode or tracking task (half a core there too) always fits
    for cpus in (1, 2, 16):
        n, res = pool_size({"CPU": cpus})
        assert n == cpus and res == {"num_cpus": 0.5}
        assert cpus - n * res["num_cpus"] >= task_cpus(res)
    assert pool_size({"CPU": 4}, requested=10) == (4, {"num_cpus": 0.5})
    assert pool_size({"CPU": 4}, requested=1) == (1, {"num_cpus": 0.5})
    assert task_cpus({"num_gpus": 1, "num_cpus": 1}) == 1.0
    assert pool_size({"CPU": 32, "GPU": 4}, capacity=4) == (4, {"num_gpus": 1, "num_cpus": 1})
    # an autoscaling cluster with no GPU node yet, but GPU node types: ask for GPUs
    assert pool_size({"CPU": 8}, capacity=8) == (8, {"num_gpus": 1, "num_cpus": 1})
    assert pool_size({"CPU": 8}, gpus=2) == (2, {"num_gpus": 1, "num_cpus": 1})


# -- the ledger ---------------------------------------------------------------------------


def _table(uris):
    rows = [{"eid": "9000001", "instance": 2, "slice_index": i + 1, "status": "ok",
             "source_uri": u} for u in uris for i in range(1)]
    return pa.Table.from_pylist(rows, schema=RESULTS_SCHEMA)


def _entry(uri, fp="1-1", status=None, reasons=()):
    eid = storage.basename(uri).split("_")[0]
    return Entry(participant_key(eid, 2, 0), uri, fp, 1, status or {"ok": 1}, list(reasons))


def test_ledger_recovers_a_killed_write_and_never_touches_foreign_files(tmp_path):
    out = str(tmp_path / "out")
    ledger = Ledger(out)
    ledger.write(_table(["a/9000001_20211_2_0.zip"]), [_entry("a/9000001_20211_2_0.zip")])
    # a second write killed after its staging file, before its commit record
    intent = {"id": "00000000000000000009-000001", "staging": "_raytag/staging/part-x.parquet",
              "file": "results/part-x.parquet"}
    storage.write_bytes(storage.join(out, "_raytag/intents/x.json"), json.dumps(intent).encode())
    storage.write_bytes(storage.join(out, intent["staging"]), b"half a file")
    # someone else's files, named like ours
    for foreign in ("results/part-y.parquet", "results/c000042_user_notes.txt",
                    "mydir/c000001_backup.csv", "_raytag/staging/notes.txt"):
        storage.write_bytes(storage.join(out, foreign), b"not raytag's")
    assert ledger.recover() == 1
    left = {f[len(out) + 1:] for f in storage.list_files(out)}
    assert "_raytag/staging/part-x.parquet" not in left and "_raytag/intents/x.json" not in left
    assert {"results/part-y.parquet", "results/c000042_user_notes.txt",
            "mydir/c000001_backup.csv", "_raytag/staging/notes.txt"} <= left
    # readers read committed files only
    assert read_results(out).num_rows == 1


def test_listing_errors_propagate_and_never_cost_committed_rows(tmp_path, monkeypatch):
    """A listing that fails must not read as 'no commits': recovery would then delete a
    committed file and a rerun skip its participants as done."""
    out = str(tmp_path / "out")
    ledger = Ledger(out)
    ledger.write(_table(["a/9000001_20211_2_0.zip"]), [_entry("a/9000001_20211_2_0.zip")])
    real = storage.list_file_infos

    def failing(uri, suffix="", allow_not_found=False):
        raise storage.StorageError(f"{uri}: cannot list: AWS Error ACCESS_DENIED")

    monkeypatch.setattr(storage, "list_file_infos", failing)
    with pytest.raises(storage.StorageError):
        Ledger(out).recover()
    with pytest.raises(storage.StorageError):
        Ledger(out).commits()
    # transient errors are retried, then the listing succeeds
    flaky = {"left": 2}

    def slow_down(uri, suffix="", allow_not_found=False):
        def call():
            if flaky["left"]:
                flaky["left"] -= 1
                raise OSError("AWS Error SLOW_DOWN during ListObjectsV2 operation")
            return real(uri, suffix, allow_not_found)
        return storage.retrying(call, sleep=lambda s: None)

    monkeypatch.setattr(storage, "list_file_infos", slow_down)
    assert Ledger(out).recover() == 0
    assert len(Ledger(out).commits()) == 1
    monkeypatch.setattr(storage, "list_file_infos", real)
    assert read_results(out).num_rows == 1


def test_plan_redoes_changed_inputs_and_retries_transient_failures(tmp_path):
    out = str(tmp_path / "out")
    ledger = Ledger(out)
    a, b, c, d = (f"in/90000{i}1_20211_2_0.zip" for i in range(4))
    ledger.write(_table([a, b, c]), [
        _entry(a, "10-1"), _entry(b, "10-1", {"failed": 1}, ["storage_error"]),
        _entry(c, "10-1", {"failed": 1}, ["not_a_zip"])])
    infos = [storage.FileInfo(a, 10, 2), storage.FileInfo(b, 10, 1), storage.FileInfo(c, 10, 1),
             storage.FileInfo(d, 10, 1)]
    plan = plan_work(infos, ledger, "transient")
    assert [i.uri for i in plan.pending] == [a, b, d]  # a changed, b transient, d new
    assert (plan.done, plan.changed, plan.retried, plan.vanished) == (1, 1, 1, 0)
    assert [i.uri for i in plan_work(infos, ledger, "all").pending] == [a, b, c, d]
    assert [i.uri for i in plan_work(infos, ledger, "none").pending] == [a, d]
    assert plan_work(infos[:1], ledger, "none").vanished == 2
    # a newer commit of a replaces it: compaction leaves one row per participant
    ledger.write(_table([a]), [_entry(a, "10-2")])
    assert ledger.compact() == 1
    table = read_results(out)
    assert sorted(table.column("source_uri").to_pylist()) == [a, b, c]
    assert Ledger(out).latest()[_entry(a).key][1].fingerprint == "10-2"


# -- with Ray --------------------------------------------------------------------------------


def test_end_to_end_on_s3_exactly_once_and_readable_everywhere(cohort, s3_endpoint, s3_bucket,
                                                              ray_local):
    import boto3

    s3 = boto3.client("s3", endpoint_url=s3_endpoint)
    for uri in storage.list_files(cohort):
        s3.upload_file(uri, s3_bucket, f"in/{storage.basename(uri)}")
    src, out = f"s3://{s3_bucket}/in", f"s3://{s3_bucket}/run"
    summary = run_cohort(src, out, rows_per_file=8, echo=lambda s: None)
    table = read_results(out)
    for field in RESULTS_SCHEMA:  # every contract column, with its type
        assert table.schema.field(field.name).type == field.type, field.name
    keys = result_keys(table)
    assert len(keys) == len(set(keys)) and set(keys) == expected_keys(cohort), [
        (r["eid"], r["reason"], r["error"]) for r in table.to_pylist()][:3]
    assert summary["duplicate_keys"] == 0 and summary["participants"] == 8
    failed = [r for r in table.to_pylist() if r["status"] == "failed"]
    assert failed and all(r["error"] and r["stage"] == "ingest" for r in failed)
    assert {r["reason"] for r in failed} <= {"not_a_zip", "slice_missing"}
    assert set(summary["failure_reasons"]) <= {"not_a_zip", "slice_missing"}
    # one model measured every ok row; the ingest failures (no tracker ran) do not add
    # a second, suffix-less version to the summary
    ok_versions = {r["model_version"] for r in table.to_pylist() if r["status"] == "ok"}
    assert len(ok_versions) == 1 and summary["model_versions"] == sorted(ok_versions)
    # the shipped weights put boxes and landmarks where the truth is
    truth = truth_by_key(cohort)
    ok = [r for r in table.to_pylist() if r["status"] == "ok"]
    iou = [geometry.box_iou(np.array([r["bbox_px"]]), np.array(
        [truth[(r["eid"], r["slice_index"])]["bbox_px"]]))[0] for r in ok]
    ed_err = [np.sqrt(np.mean(np.sum((np.reshape(r["landmarks_px"], (20, 168, 2))[0]
                                      - np.reshape(truth[(r["eid"], r["slice_index"])]
                                                   ["landmarks_px"], (20, 168, 2))[0]) ** 2,
                                     axis=-1))) for r in ok]
    assert np.median(iou) > 0.8 and np.median(ed_err) < 4.0, (iou, ed_err)
    # several participants per file, one file per commit
    files = storage.list_files(f"{out}/results", ".parquet")
    assert 1 < len(files) < 8
    # Rerunning does nothing and changes nothing.
    again = run_cohort(src, out, echo=lambda s: None)
    assert again["processed_participants"] == 0
    assert sorted(result_keys(read_results(out)), key=str) == sorted(keys, key=str)


def test_results_read_out_of_the_box(cohort, tmp_path, ray_local):
    import duckdb
    import pandas as pd
    import polars as pl

    out = str(tmp_path / "run")
    run_cohort(cohort, out, rows_per_file=6, echo=lambda s: None)
    ours = read_results(out)
    folder = os.path.join(out, "results")
    assert pd.read_parquet(folder).shape[0] == ours.num_rows
    assert pl.read_parquet(os.path.join(folder, "*.parquet")).height == ours.num_rows
    n = duckdb.sql(f"select count(*) from read_parquet('{folder}/*.parquet')").fetchall()[0][0]
    assert n == ours.num_rows
    assert ray_local.data.read_parquet(folder).count() == ours.num_rows


def test_changed_input_is_redone_and_its_old_rows_replaced(cohort, tmp_path, ray_local):
    src = str(tmp_path / "in")
    os.makedirs(src)
    zips = storage.list_files(cohort, ".zip")[:3]
    for z in zips:
        storage.write_bytes(os.path.join(src, storage.basename(z)), storage.read_bytes(z))
    out = str(tmp_path / "run")
    first = run_cohort(src, out, rows_per_file=100, echo=lambda s: None)
    before = read_results(out)
    # replace one participant's zip by another participant's bytes (a re-export)
    target = os.path.join(src, storage.basename(zips[0]))
    other = storage.list_files(cohort, ".zip")[5]
    time.sleep(0.01)
    storage.write_bytes(target, storage.read_bytes(other))
    second = run_cohort(src, out, echo=lambda s: None)
    assert second["changed_inputs"] == 1 and second["processed_participants"] == 1
    after = read_results(out)
    assert after.num_rows == before.num_rows - _rows_of(before, target) + _rows_of(after, target)
    assert second["duplicate_keys"] == 0 and first["duplicate_keys"] == 0
    keys = result_keys(after)
    assert len(keys) == len(set(keys))


def test_auto_engine_uses_ray_wherever_there_is_one_and_local_for_small_jobs(monkeypatch):
    import types

    from raytag.pipeline.settings import RunSettings

    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    running = {"up": False}
    monkeypatch.setitem(sys.modules, "ray",
                        types.SimpleNamespace(is_initialized=lambda: running["up"]))
    auto = RunSettings()
    small, big = LOCAL_MAX_PARTICIPANTS, LOCAL_MAX_PARTICIPANTS + 1
    assert [choose_engine(auto, n) for n in (0, 1, small, big)] == ["local"] * 3 + ["ray"]
    # asked for explicitly, whatever the size
    assert choose_engine(RunSettings(engine="ray"), 1) == "ray"
    assert choose_engine(RunSettings(engine="local"), 10 * big) == "local"
    # anything that means "use Ray" wins over a small job
    assert choose_engine(auto, 1, dashboard=True) == "ray"
    assert choose_engine(RunSettings(gpus=1), 1) == "ray"
    assert choose_engine(RunSettings(model_actors=2), 1) == "ray"
    running["up"] = True  # e.g. a job that called ray.init itself
    assert choose_engine(auto, 1) == "ray"
    running["up"] = False
    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.1:6379")  # inside `ray job submit`
    assert choose_engine(auto, 1) == "ray"


def test_local_engine_gives_the_ray_engines_rows_exactly_once(cohort, tmp_path, ray_local):
    by_ray = run_cohort(cohort, str(tmp_path / "ray"), engine="ray", limit=5,
                        echo=lambda s: None)
    local = run_cohort(cohort, str(tmp_path / "local"), engine="local", limit=5,
                       rows_per_file=4, echo=lambda s: None)
    assert (by_ray["engine"], local["engine"]) == ("ray", "local")
    assert local["processed_participants"] == 5 and local["duplicate_keys"] == 0
    cols = ["eid", "instance", "slice_index", "status", "reason", "stage", "error",
            "qc_flags", "model_version", "es_circ_global", "es_radial"]

    def rows(out):
        t = read_results(out, columns=cols).to_pylist()
        return sorted(t, key=lambda r: (r["eid"], r["slice_index"] or -1))

    a, b = rows(str(tmp_path / "ray")), rows(str(tmp_path / "local"))
    assert [r["status"] for r in b].count("failed") > 0  # the faults went through it too
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        # float32 networks batch differently in the two engines: same answer to ~1e-6
        for c in ("es_circ_global", "es_radial"):
            assert (x[c] is None) == (y[c] is None)
            if x[c] is not None:
                assert abs(x[c] - y[c]) < 1e-4, (x, y)
        assert {k: v for k, v in x.items() if not k.startswith("es_")} == \
            {k: v for k, v in y.items() if not k.startswith("es_")}
    again = run_cohort(cohort, str(tmp_path / "local"), engine="local", limit=5,
                       echo=lambda s: None)
    assert again["processed_participants"] == 0 and again["rows"] == local["rows"]


def _rows_of(table, uri):
    return sum(u == uri for u in table.column("source_uri").to_pylist())


_KILL_SCRIPT = textwrap.dedent("""
    import os, signal, sys, tempfile, ray
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             _temp_dir=tempfile.mkdtemp(prefix="rk", dir="/tmp"))
    from raytag.io.ledger import Ledger
    from raytag.pipeline.run import run_cohort
    write = Ledger.write

    def write_then_die(self, *args, **kwargs):
        # SIGKILL to the driver and every Ray process it started (its process group),
        # right after the first commit: mid-run on any machine, whatever its speed
        write(self, *args, **kwargs)
        os.killpg(os.getpgid(0), signal.SIGKILL)

    Ledger.write = write_then_die
    run_cohort(sys.argv[1], sys.argv[2], rows_per_file=3, echo=print)
""")


def test_rerun_after_kill_9_is_exactly_once(cohort, tmp_path, ray_local):
    out = str(tmp_path / "run")
    log = open(tmp_path / "killed-run.log", "w")
    proc = subprocess.Popen([sys.executable, "-c", _KILL_SCRIPT, cohort, out],
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    commits = tmp_path / "run" / "_raytag" / "commits"
    try:
        proc.wait(timeout=300)  # it kills itself (and its Ray) after its first commit
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, 9)
            proc.wait()
    assert proc.returncode == -9, (tmp_path / "killed-run.log").read_text()[-3000:]
    assert commits.exists() and any(commits.iterdir())
    done_before = {e.key for c in Ledger(out).commits() for e in c.entries}
    assert 0 < len(done_before) < 8
    before = read_results(out)
    summary = run_cohort(cohort, out, echo=lambda s: None)
    assert summary["processed_participants"] == 8 - len(done_before)
    after = read_results(out)
    keys = result_keys(after)
    assert len(keys) == len(set(keys)) and set(keys) == expected_keys(cohort)
    # no good row lost: every row committed before the kill is still there, unchanged
    cols = ["eid", "slice_index", "es_circ_global", "status"]

    def rows(t):
        return {tuple(r.values()) for r in t.select(cols).to_pylist()}

    assert rows(before) <= rows(after)


_GPU_SCRIPT = textwrap.dedent("""
    import json, os, sys
    import ray
    from ray.cluster_utils import Cluster
    # RAY_TMPDIR (set by the test) is private: Cluster writes its address file there,
    # never into a /tmp/ray that other Rays on this machine read
    os.makedirs(os.path.join(os.environ["RAY_TMPDIR"], "ray"), exist_ok=True)
    cluster = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 1, "include_dashboard": False})
    gpu_node = cluster.add_node(num_cpus=1, num_gpus=1)
    ray.init(address=cluster.address, log_to_driver=False)
    from raytag.pipeline.run import read_results, run_cohort
    s = run_cohort(sys.argv[1], sys.argv[2], limit=3, echo=lambda s: None)
    t = read_results(sys.argv[2], columns=["status", "decode_node", "model_node"]).to_pylist()
    print(json.dumps({"gpu_node": gpu_node.node_id, "rows": t,
                      "resources": s["model_resources"]}))
    ray.shutdown()
    cluster.shutdown()
""")


@pytest.mark.ray
def test_model_actors_go_to_the_gpu_node_and_decoding_elsewhere(cohort, tmp_path):
    # The node only *advertises* a GPU; the actors must still run (torch picks its device
    # from torch.cuda.is_available(), not from Ray's GPU ids).
    private = tempfile.mkdtemp(prefix="rg", dir="/tmp")  # short: Ray's socket paths
    try:
        done = subprocess.run([sys.executable, "-c", _GPU_SCRIPT, cohort, str(tmp_path / "out")],
                              capture_output=True, text=True, timeout=600,
                              env={**os.environ, "RAY_TMPDIR": private})
    finally:
        shutil.rmtree(private, ignore_errors=True)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["resources"] == {"num_gpus": 1, "num_cpus": 1}
    rows = [r for r in report["rows"] if r["model_node"]]
    assert rows and all(r["model_node"] == report["gpu_node"] for r in rows)
    assert all(r["decode_node"] != report["gpu_node"] for r in report["rows"])


def test_index_manifest_input_and_demo(cohort, tmp_path, ray_local, capsys):
    manifest = str(tmp_path / "manifest.parquet")
    assert build_index(cohort, manifest) == 8
    m = storage.read_table(manifest)
    assert m.column_names == ["uri", "eid", "instance", "array", "size", "mtime_ns"]
    summary = run_cohort(manifest, str(tmp_path / "r"), limit=2, echo=lambda s: None)
    assert summary["participants"] == 2
    # the manifest's fingerprints are the folder listing's: no work on a rerun by folder
    again = run_cohort(cohort, str(tmp_path / "r"), limit=2, echo=lambda s: None)
    assert again["processed_participants"] == 0

    from raytag.demo import run_demo

    demo = run_demo(str(tmp_path / "demo"), n_participants=4, seed=2)
    printed = capsys.readouterr().err  # messages for people go to stderr
    assert "raytag demo:" in printed and "agreement with truth" in printed
    # progress for every long step, not only a summary at the end
    assert "synth: 4/4 participants" in printed and "raytag run: 4/4 participants" in printed
    assert demo["duplicate_keys"] == 0 and demo["participants"] == 4
    assert set(demo["agreement"]) == {"basal", "mid", "apical"}
    assert all(a["n"] > 0 for a in demo["agreement"].values())
    assert np.isfinite(demo["slices_per_s"])
    # the demo ends with the report; its Table 2 recomputed from the results and the truth
    assert demo["report"] in printed and os.path.exists(demo["report"])
    doc = json.loads(open(os.path.join(os.path.dirname(demo["report"]), "report.json")).read())
    truth = {(r["eid"], r["slice_index"]): r for r in storage.read_table(
        str(tmp_path / "demo" / "cohort" / "truth.parquet")).to_pylist()}
    ok = [r for r in read_results(demo["results"]).to_pylist() if r["status"] == "ok"]
    checked = 0
    for row in doc["tables"]["agreement"]:
        d = [r[row["column"]] - truth[(r["eid"], r["slice_index"])][row["column"]]
             for r in ok if r["slice_label"] == row["region"]]
        assert row["n"] == len(d) > 0
        assert row["bias"] == pytest.approx(statistics.mean(d), abs=1e-12)
        if len(d) > 1:
            assert row["precision"] == pytest.approx(statistics.stdev(d), abs=1e-12)
        if row["strain"] == "Circ global":
            assert demo["agreement"][row["region"]]["es_circ_global"][0] == pytest.approx(
                row["bias"], abs=1e-12)
            checked += 1
    assert checked == 3


def test_model_actor_runs_cpu_batches_in_chunks_with_the_same_answer(cohort):
    """On CPU a Ray batch goes through the networks MODEL_CHUNK slices at a time (smaller
    batches cost less CPU per slice there); the landmarks equal one whole-batch call's."""
    from raytag.pipeline.stages import MODEL_CHUNK

    batch = _decoded(cohort)
    n_ok = int(sum(s == "ok" for s in batch["status"]))
    chunk = MODEL_CHUNK[False]
    assert n_ok > chunk  # the test needs more than one chunk
    chunked = PredictNetworks()
    assert chunked.max_batch == chunk
    sizes = []
    real = chunked.predictor.predict_network

    def counting(records, boxes=None):
        sizes.append(len(records))
        return real(records, boxes)

    chunked.predictor.predict_network = counting
    a = chunked({k: v.copy() for k, v in batch.items()})
    assert sum(sizes) == n_ok and max(sizes) == chunk and len(sizes) == -(-n_ok // chunk)
    b = PredictNetworks(max_batch=64)({k: v.copy() for k, v in batch.items()})
    np.testing.assert_allclose(a["net_landmarks"], b["net_landmarks"], atol=1e-3,
                               equal_nan=True)
    np.testing.assert_allclose(a["bbox_px"], b["bbox_px"], atol=1e-3, equal_nan=True)
