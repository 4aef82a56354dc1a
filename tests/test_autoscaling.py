"""Autoscaling that scales: on Ray's fake multi-node autoscaler, a cluster with no GPU node
launches one for the cohort's model stage, runs the model there, and lets it go when idle.

The cluster is this test's own ``ray start --head --block`` (``RAY_FAKE_CLUSTER=1``: the
autoscaler starts worker "nodes" as local raylets), in its own process group and temp
folder, stopped by its process group id - never ``ray stop``, which would kill every Ray
on the machine. The model actors request a GPU that only the ``gpu`` worker type has; the
fake GPU is not a CUDA device, so the predictor runs on that node's CPU, which is all this
test needs: where the work was placed and that the node came and went.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time

import pytest

pytestmark = pytest.mark.slow

CONFIG = """\
cluster_name: raytag_fake
max_workers: 1
provider:
    type: fake_multinode
    use_node_id_as_ip: True
    disable_node_updaters: True
    disable_launch_config_check: True
    gcs_address: "{gcs}"
available_node_types:
    ray.head.default:
        resources: {{CPU: 2}}
        node_config: {{}}
        max_workers: 0
    ray.worker.gpu:
        resources: {{CPU: 1, GPU: 1}}
        node_config: {{}}
        min_workers: 0
        max_workers: 1
head_node_type: ray.head.default
auth: {{}}
upscaling_speed: 1.0
idle_timeout_minutes: 0.1
docker: {{}}
initialization_commands: []
setup_commands: []
head_setup_commands: []
worker_setup_commands: []
head_start_ray_commands: []
worker_start_ray_commands: []
file_mounts: {{}}
cluster_synced_files: []
file_mounts_sync_continuously: false
rsync_exclude: []
rsync_filter: []
"""

JOB = textwrap.dedent("""
    import json, sys, time
    import ray
    for attempt in range(60):
        try:
            ray.init(address=sys.argv[1], log_to_driver=False)
            break
        except Exception:
            time.sleep(2)
    from raytag.io.tables import read_results
    from raytag.pipeline.run import gpu_capacity, run_cohort
    capacity = gpu_capacity()
    gpus_before = sum(1 for n in ray.nodes() if n["Alive"] and n["Resources"].get("GPU"))
    summary = run_cohort(sys.argv[2], sys.argv[3], echo=lambda s: None)
    rows = read_results(sys.argv[3], columns=["status", "model_node", "decode_node"])
    gpu_nodes = sorted({n["NodeID"] for n in ray.nodes() if n["Resources"].get("GPU")})
    head = sorted({n["NodeID"] for n in ray.nodes() if not n["Resources"].get("GPU")})
    released_after = None
    for second in range(180):
        if not any(n["Alive"] and n["Resources"].get("GPU") for n in ray.nodes()):
            released_after = second
            break
        time.sleep(1)
    print(json.dumps({
        "capacity": capacity, "gpus_before": gpus_before,
        "model_resources": summary["model_resources"],
        "status": rows.column("status").to_pylist(),
        "model_nodes": sorted(set(rows.column("model_node").to_pylist())),
        "gpu_nodes": gpu_nodes, "head_nodes": head, "released_after": released_after}))
""")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("", 0))
        return s.getsockname()[1]


@pytest.fixture()
def fake_cluster():
    import ray

    ip = ray.util.get_node_ip_address()
    port = _free_port()
    # a short path: Ray's unix socket paths must stay under ~100 characters
    temp = tempfile.mkdtemp(prefix="rtfake", dir="/tmp")
    config = os.path.join(temp, "autoscaling.yaml")
    with open(config, "w") as f:
        f.write(CONFIG.format(gcs=f"{ip}:{port}"))
    env = os.environ | {"RAY_FAKE_CLUSTER": "1", "AUTOSCALER_UPDATE_INTERVAL_S": "1",
                        "RAY_AUTH_MODE": "disabled"}
    env.pop("RAY_ADDRESS", None)
    ray_cli = os.path.join(os.path.dirname(sys.executable), "ray")
    head = subprocess.Popen(
        [ray_cli, "start", "--head", "--block", f"--port={port}", "--num-cpus=2",
         f"--autoscaling-config={config}", f"--temp-dir={temp}", "--include-dashboard=false"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        yield {"address": f"{ip}:{port}", "config": config, "env": env, "temp": temp}
    finally:
        # The head, its services and every fake node share the head's process group.
        for sig, wait in ((signal.SIGTERM, 15), (signal.SIGKILL, 5)):
            try:
                os.killpg(head.pid, sig)
            except ProcessLookupError:
                break
            deadline = time.time() + wait
            while time.time() < deadline and head.poll() is None:
                time.sleep(0.5)
        _kill_stragglers(temp)


def _kill_stragglers(temp: str) -> None:
    """Processes of this cluster that left the group (by their temp folder, PID by PID)."""
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read().decode(errors="replace")
        except OSError:
            continue
        if temp in cmd:
            try:
                os.kill(int(pid), signal.SIGKILL)
            except ProcessLookupError:
                pass


def test_gpu_node_is_launched_for_the_model_stage_and_released(fake_cluster, tmp_path):
    from raytag.phantom.cohort import SynthConfig
    from raytag.pipeline.synth import synthesise

    cohort, out = tmp_path / "cohort", tmp_path / "out"
    synthesise(str(cohort), SynthConfig(3, seed=9103, n_frames=6), workers=1)
    env = fake_cluster["env"] | {"RAYTAG_AUTOSCALING_CONFIG": fake_cluster["config"]}
    proc = subprocess.run([sys.executable, "-c", JOB, fake_cluster["address"], str(cohort),
                           str(out)], env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    r = json.loads(proc.stdout.strip().splitlines()[-1])
    assert r["gpus_before"] == 0, "the cluster must start without a GPU node"
    assert r["capacity"] == 1, "the autoscaler's GPU worker type was not seen"
    assert r["model_resources"].get("num_gpus") == 1
    assert r["status"].count("ok") == 9
    assert len(r["gpu_nodes"]) == 1, "the autoscaler did not launch the GPU node"
    assert r["model_nodes"] == r["gpu_nodes"], "the model stage ran off the GPU node"
    assert r["released_after"] is not None, "the idle GPU node was not released"
