"""A real local Ray head (``ray start --head``), a cohort job through JobSubmissionClient.

The head is started with a private temp dir and ports, and stopped by killing its own
process group afterwards (never ``ray stop``, which would stop every Ray on the machine).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.request
from pathlib import Path

import pytest
from conftest import free_port

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def ray_head():
    # Private ports throughout, so another Ray on this machine (defaults) cannot collide.
    ports = {"gcs": free_port(), "dashboard": free_port(), "metrics": free_port(),
             "agent": free_port()}
    temp_dir = tempfile.mkdtemp(prefix="rh", dir="/tmp")
    ray_bin = str(Path(sys.executable).with_name("ray"))
    # Token authentication stays on, as in the shipped configs: the head creates (or reuses)
    # ~/.ray/auth_token, and clients in token mode read it from there.
    env = dict(os.environ, RAY_AUTH_MODE="token",
               PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    proc = subprocess.Popen(
        [ray_bin, "start", "--head", "--block", f"--port={ports['gcs']}",
         f"--dashboard-port={ports['dashboard']}", "--dashboard-host=127.0.0.1",
         "--include-dashboard=true", f"--metrics-export-port={ports['metrics']}",
         f"--dashboard-agent-listen-port={ports['agent']}",
         "--num-cpus=2", f"--temp-dir={temp_dir}", "--disable-usage-stats"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True, env=env)
    try:
        yield f"http://127.0.0.1:{ports['dashboard']}", ports, env, temp_dir
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


# The client runs in its own process: Ray reads RAY_AUTH_MODE once per process, and this
# test process may already have imported Ray with token mode off.
_CLIENT = textwrap.dedent("""
    import json, sys, time
    from ray.job_submission import JobStatus, JobSubmissionClient
    url, entry, job_id = sys.argv[1:4]
    deadline = time.time() + 240
    while True:
        try:
            client = JobSubmissionClient(url)
            client.submit_job(entrypoint=entry, submission_id=job_id)
            break
        except Exception as exc:  # the dashboard or its job agent is still starting
            if time.time() > deadline:
                raise
            time.sleep(2)
    try:
        client.submit_job(entrypoint=entry, submission_id=job_id)
        duplicate_rejected = False
    except Exception as exc:
        duplicate_rejected = "already" in str(exc)
    while time.time() < deadline + 400:
        status = client.get_job_status(job_id)
        if status in (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.STOPPED):
            break
        time.sleep(2)
    print(json.dumps({"status": str(status), "duplicate_rejected": duplicate_rejected,
                      "logs": client.get_job_logs(job_id)[-4000:]}))
""")


def _scrape(port: int) -> str:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
            return r.read().decode()
    except OSError:
        return ""


def _submit(url: str, env: dict, entry: str, job_id: str) -> dict:
    done = subprocess.run([sys.executable, "-c", _CLIENT, url, entry, job_id], env=env,
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["status"].endswith("SUCCEEDED"), report["logs"]
    assert report["duplicate_rejected"]  # a stable submission id makes resubmission safe
    return report


def test_synth_and_cohort_jobs_through_the_job_api(ray_head, tmp_path):
    from raytag.io import storage
    from raytag.pipeline.run import read_results

    url, ports, env, temp_dir = ray_head
    cohort, out = tmp_path / "cohort", tmp_path / "results"
    # 1. a synthetic cohort, written by a job (Ray tasks on the cluster)
    _submit(url, env, f"{sys.executable} {ROOT / 'jobs' / 'synth_cohort.py'} --participants 6 "
            f"--seed 12 --faults corrupt_zip=0.2 --out {cohort} --workers 2",
            f"raytag-synth-{os.getpid()}")
    truth = storage.read_table(str(cohort / "truth.parquet"))
    assert len(set(truth.column("eid").to_pylist())) == 6
    # 2. the cohort through the pipeline, as a second job
    report = _submit(url, env, f"{sys.executable} {ROOT / 'jobs' / 'process_cohort.py'} "
                     f"--input {cohort} --output {out} --rows-per-file 6",
                     f"raytag-cohort-{os.getpid()}")
    assert '"duplicate_keys": 0' in report["logs"]
    table = read_results(str(out))
    keys = list(zip(table.column("eid").to_pylist(), table.column("slice_index").to_pylist(),
                    strict=True))
    assert len(keys) == len(set(keys)) and len({k[0] for k in keys}) == 6
    # raytag's own metrics reach the node's Prometheus endpoint.
    text = ""
    for _ in range(30):
        text = _scrape(ports["metrics"])
        if "ray_raytag_slices_total" in text:
            break
        time.sleep(2)
    assert "ray_raytag_slices_total" in text
    assert "ray_raytag_stage_seconds_bucket" in text
    # ... with the SessionName label the dashboards filter on
    series = [line for line in text.splitlines() if line.startswith("ray_raytag_slices_total{")]
    assert series and all('SessionName="session_' in line for line in series), series[:3]
    # cluster/monitoring.sh provisions raytag's dashboard into this head's generated Grafana
    # config, beside the Prometheus config Ray generated for the session
    session = Path(temp_dir) / "session_latest" / "metrics"
    done = subprocess.run(["bash", str(ROOT / "cluster" / "monitoring.sh")],
                          env=dict(os.environ, RAY_TMP=temp_dir, RAYTAG_PROVISION_ONLY="1"),
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    provisioned = session / "grafana" / "dashboards" / "raytag.json"
    assert provisioned.read_bytes() == (ROOT / "dashboards" / "raytag.json").read_bytes()
    assert (session / "prometheus" / "prometheus.yml").is_file()
