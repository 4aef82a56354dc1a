"""Cluster launcher config and runtime env: validated by Ray's own autoscaler schema."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import ray
import yaml

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def aws():
    return yaml.safe_load((ROOT / "cluster" / "aws.yaml").read_text())


def _validate(config: dict) -> None:
    from ray.autoscaler._private.util import prepare_config, validate_config

    validate_config(prepare_config(copy.deepcopy(config)))


def test_aws_config_passes_rays_schema(aws):
    _validate(aws)  # no cloud credentials needed: schema + node-type consistency


@pytest.mark.parametrize("mutate,error", [
    (lambda c: c["available_node_types"]["gpu"].__setitem__("max_workers", "eight"),
     "is not of type 'integer'"),
    (lambda c: c.__setitem__("head_node_type", "nope"), "head_node_type"),
])
def test_broken_aws_configs_are_rejected(aws, mutate, error):
    bad = copy.deepcopy(aws)
    mutate(bad)
    with pytest.raises(Exception, match=error):
        _validate(bad)


def test_aws_config_semantics(aws):
    import raytag

    assert aws["docker"]["image"].endswith(f"/raytag:{raytag.__version__}")  # the Dockerfile's
    assert aws["setup_commands"] == []  # nothing installed at node start: it is in the image
    assert ".venv" in aws["rsync_exclude"] and ".gitignore" in aws["rsync_filter"]
    assert aws["available_node_types"]["gpu"]["resources"].get("GPU") == 1
    assert any("--shm-size" in o for o in aws["docker"]["run_options"])
    head_start = " ".join(aws["head_start_ray_commands"])
    assert "--num-cpus=0" in head_start and "--metrics-export-port" in head_start
    # the dashboard embeds Grafana from cluster/monitoring.sh, which runs from the synced repo
    assert "RAY_GRAFANA_HOST=http://127.0.0.1:3000" in head_start
    assert "RAY_PROMETHEUS_HOST=http://127.0.0.1:9090" in head_start
    assert aws["file_mounts"]["/home/ray/raytag"] == "."
    assert (ROOT / "cluster" / "monitoring.sh").is_file()
    assert "--metrics-export-port" in " ".join(aws["worker_start_ray_commands"])
    types = aws["available_node_types"]
    assert types["gpu"]["min_workers"] == 0 and types["gpu"]["max_workers"] > 0
    assert types["gpu"]["node_config"]["InstanceType"].startswith(("g", "p"))
    assert aws["idle_timeout_minutes"] > 0
    text = (ROOT / "cluster" / "aws.yaml").read_text()
    assert "RAY_AUTH_MODE" not in text  # token authentication stays on


def test_runtime_env_is_valid_for_ray():
    from ray.runtime_env import RuntimeEnv

    env = yaml.safe_load((ROOT / "cluster" / "runtime_env.yaml").read_text())
    RuntimeEnv(**env)  # raises on unknown fields or wrong types
    assert "pip" not in env  # the image has raytag and its locked dependencies
    assert env["env_vars"]["AWS_REGION"]


def test_dockerfile_builds_on_the_pinned_ray_and_installs_raytag_from_the_repo():
    import re

    text = (ROOT / "Dockerfile").read_text()
    base = re.search(r"^FROM\s+(\S+)", text, re.M).group(1)
    assert base == f"rayproject/ray:{ray.__version__}-py311-gpu"
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert f'"ray[data,train,default]=={ray.__version__}"' in pyproject
    installs = [ln for ln in re.sub(r"\\\n\s*", " ", text).splitlines()
                if "pip install" in ln]
    assert installs, "the Dockerfile installs nothing"
    for line in installs:
        args = line.split("pip install", 1)[1].split("&&")[0].split()
        assert "-c" in args, f"unconstrained install: {line}"
        targets = [a.strip('"') for a in args if not a.startswith("-")
                   and not a.endswith("constraints.txt")]
        assert targets and all(t.startswith("/home/ray/raytag") for t in targets), line
    for line in (ROOT / "cluster" / "image" / "constraints.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            assert re.fullmatch(r"[A-Za-z0-9_.-]+==[\w.+]+", line.strip()), line
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert ".venv" in ignored and ".git" in ignored
