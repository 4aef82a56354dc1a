"""A real local Ray head (``ray start --head``), a cohort job through JobSubmissionClient.

The head is started with a private temp dir and ports, and stopped by killing its own
process group afterwards (never ``ray stop``, which would stop every Ray on the machine).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

from raytag.phantom.cohort import SynthConfig
from raytag.pipeline.synth import synthesise

ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def ray_head():
    # Private ports throughout, so another Ray on this machine (defaults) cannot collide.
    ports = {"gcs": _free_port(), "dashboard": _free_port(), "metrics": _free_port(),
             "agent": _free_port()}
    temp_dir = tempfile.mkdtemp(prefix="rh", dir="/tmp")
    ray_bin = str(Path(sys.executable).with_name("ray"))
    # Token authentication stays on, as in the shipped configs: the head creates (or reuses)
    # ~/.ray/auth_token, and clients in token mode read it from there.
    saved_mode = os.environ.get("RAY_AUTH_MODE")
    os.environ["RAY_AUTH_MODE"] = "token"
    proc = subprocess.Popen(
        [ray_bin, "start", "--head", "--block", f"--port={ports['gcs']}",
         f"--dashboard-port={ports['dashboard']}", "--dashboard-host=127.0.0.1",
         "--include-dashboard=true", f"--metrics-export-port={ports['metrics']}",
         f"--dashboard-agent-listen-port={ports['agent']}",
         "--num-cpus=2", f"--temp-dir={temp_dir}", "--disable-usage-stats"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        env=dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}"))
    url = f"http://127.0.0.1:{ports['dashboard']}"
    try:
        from ray.job_submission import JobSubmissionClient

        deadline, client = time.time() + 120, None
        while time.time() < deadline:
            try:
                client = JobSubmissionClient(url)
                client.list_jobs()
                break
            except Exception:  # noqa: BLE001 - the dashboard is still starting
                client = None
                time.sleep(1)
        assert client is not None, "the Ray head's job API never came up"
        yield client, ports
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        if saved_mode is None:
            os.environ.pop("RAY_AUTH_MODE", None)
        else:
            os.environ["RAY_AUTH_MODE"] = saved_mode


def _scrape(port: int) -> str:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
            return r.read().decode()
    except OSError:
        return ""


def test_cohort_job_through_the_job_api(ray_head, tmp_path):
    from ray.job_submission import JobStatus

    from raytag.pipeline.run import read_results

    client, ports = ray_head
    cohort, out = tmp_path / "cohort", tmp_path / "results"
    synthesise(str(cohort), SynthConfig(6, seed=12, faults={"corrupt_zip": 0.2}), workers=1)
    job_id = f"raytag-test-{os.getpid()}"
    entry = (f"{sys.executable} {ROOT / 'jobs' / 'process_cohort.py'} --input {cohort} "
             f"--output {out} --chunk 2")
    submitted = None
    for _ in range(60):  # the head's job agent may still be starting
        try:
            submitted = client.submit_job(entrypoint=entry, submission_id=job_id)
            break
        except RuntimeError as exc:
            if "No available agent" not in str(exc):
                raise
            time.sleep(2)
    assert submitted == job_id
    with pytest.raises(Exception, match="already"):  # a stable id makes resubmission safe
        client.submit_job(entrypoint=entry, submission_id=job_id)
    seen_metrics, status = "", None
    deadline = time.time() + 420
    while time.time() < deadline:
        status = client.get_job_status(job_id)
        text = _scrape(ports["metrics"])
        if "ray_raytag_" in text:
            seen_metrics = text
        if status in (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.STOPPED):
            break
        time.sleep(2)
    logs = client.get_job_logs(job_id)
    assert status == JobStatus.SUCCEEDED, logs[-3000:]
    table = read_results(str(out))
    keys = list(zip(table.column("eid").to_pylist(), table.column("slice_index").to_pylist(),
                    strict=True))
    assert len(keys) == len(set(keys)) and len({k[0] for k in keys}) == 6
    assert '"duplicate_keys": 0' in logs
    # raytag's own metrics reached Prometheus' endpoint while (or after) the job ran.
    for _ in range(15):
        if "ray_raytag_" in seen_metrics:
            break
        time.sleep(2)
        seen_metrics = _scrape(ports["metrics"])
    assert "ray_raytag_slices_total" in seen_metrics
    assert "ray_raytag_stage_seconds_bucket" in seen_metrics
