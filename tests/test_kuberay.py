"""Static checks of the KubeRay manifests in ``cluster/kuberay/``.

No Kubernetes cluster or KubeRay CRD is needed: the manifests are validated against a
HAND-WRITTEN minimal JSON Schema of the ``ray.io/v1`` fields raytag relies on (not the full
KubeRay CRD, which no PyPI package ships), plus semantic checks KubeRay or raytag depend on
(string rayStartParams, head ``num-cpus: "0"``, GPU limits and tolerations, image tag pinned
to the installed Ray, token auth on, no public Service, ``/dev/shm`` in every Ray pod).
"""

from __future__ import annotations

import copy
import re
from pathlib import Path

import pytest

yaml = pytest.importorskip("yaml")
jsonschema = pytest.importorskip("jsonschema")

import ray  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
KUBERAY = ROOT / "cluster" / "kuberay"
TOKEN_SECRET = "raytag-ray-token"

# --- hand-written minimal schema (only the fields raytag's manifests rely on) -----------

_STR_MAP = {"type": "object", "additionalProperties": {"type": "string"}}

_CONTAINER = {
    "type": "object",
    "required": ["name", "image"],
    "properties": {
        "name": {"type": "string", "minLength": 1},
        "image": {"type": "string", "minLength": 1},
        "env": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["name"],
                "properties": {
                    "name": {"type": "string"},
                    "value": {"type": "string"},
                    "valueFrom": {"type": "object"},
                },
            },
        },
        "resources": {
            "type": "object",
            "properties": {
                "requests": {"type": "object"},
                "limits": {"type": "object"},
            },
        },
        "volumeMounts": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["name", "mountPath"],
                "properties": {"name": {"type": "string"}, "mountPath": {"type": "string"}},
            },
        },
    },
}

_POD_TEMPLATE = {
    "type": "object",
    "required": ["spec"],
    "properties": {
        "spec": {
            "type": "object",
            "required": ["containers"],
            "properties": {
                "containers": {"type": "array", "minItems": 1, "items": _CONTAINER},
                "volumes": {"type": "array", "items": {"type": "object", "required": ["name"]}},
                "tolerations": {"type": "array", "items": {"type": "object"}},
                "restartPolicy": {"enum": ["Always", "OnFailure", "Never"]},
            },
        }
    },
}

RAYCLUSTER_SPEC = {
    "type": "object",
    "required": ["rayVersion", "headGroupSpec", "workerGroupSpecs", "enableInTreeAutoscaling"],
    "properties": {
        "rayVersion": {"type": "string"},
        "enableInTreeAutoscaling": {"type": "boolean"},
        "autoscalerOptions": {
            "type": "object",
            "properties": {
                "upscalingMode": {"enum": ["Default", "Aggressive", "Conservative"]},
                "idleTimeoutSeconds": {"type": "integer", "minimum": 0},
            },
        },
        "headGroupSpec": {
            "type": "object",
            "required": ["rayStartParams", "template"],
            "properties": {
                "serviceType": {"enum": ["ClusterIP", "NodePort", "LoadBalancer"]},
                "rayStartParams": _STR_MAP,
                "template": _POD_TEMPLATE,
            },
        },
        "workerGroupSpecs": {
            "type": "array",
            "items": {
                "type": "object",
                "required": [
                    "groupName",
                    "replicas",
                    "minReplicas",
                    "maxReplicas",
                    "rayStartParams",
                    "template",
                ],
                "properties": {
                    "groupName": {"type": "string", "minLength": 1},
                    "replicas": {"type": "integer", "minimum": 0},
                    "minReplicas": {"type": "integer", "minimum": 0},
                    "maxReplicas": {"type": "integer", "minimum": 0},
                    "rayStartParams": _STR_MAP,
                    "template": _POD_TEMPLATE,
                },
            },
        },
    },
}

RAYJOB_SPEC = {
    "type": "object",
    "required": ["entrypoint", "shutdownAfterJobFinishes", "rayClusterSpec", "submissionMode"],
    "properties": {
        "entrypoint": {"type": "string", "minLength": 1},
        "jobId": {"type": "string"},
        "runtimeEnvYAML": {"type": "string"},
        "shutdownAfterJobFinishes": {"type": "boolean"},
        "ttlSecondsAfterFinished": {"type": "integer", "minimum": 0},
        "submissionMode": {"enum": ["K8sJobMode", "HTTPMode", "InteractiveMode", "SidecarMode"]},
        "submitterPodTemplate": _POD_TEMPLATE,
        "rayClusterSpec": RAYCLUSTER_SPEC,
    },
}


def _manifest_schema(kind: str, spec: dict) -> dict:
    return {
        "type": "object",
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "properties": {
            "apiVersion": {"const": "ray.io/v1"},
            "kind": {"const": kind},
            "metadata": {
                "type": "object",
                "required": ["name"],
                "properties": {
                    "name": {"type": "string", "pattern": r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"}
                },
            },
            "spec": spec,
        },
    }


SCHEMAS = {
    "RayCluster": _manifest_schema("RayCluster", RAYCLUSTER_SPEC),
    "RayJob": _manifest_schema("RayJob", RAYJOB_SPEC),
}


# --- validator: schema + semantic checks ------------------------------------------------


def _cluster_spec(doc: dict) -> dict:
    return doc["spec"]["rayClusterSpec"] if doc["kind"] == "RayJob" else doc["spec"]


def _ray_pod_templates(cluster_spec: dict):
    yield "head", cluster_spec["headGroupSpec"]["template"]
    for group in cluster_spec["workerGroupSpecs"]:
        yield group["groupName"], group["template"]


def _all_containers(doc: dict):
    for _, template in _ray_pod_templates(_cluster_spec(doc)):
        yield from template["spec"]["containers"]
    if doc["kind"] == "RayJob" and "submitterPodTemplate" in doc["spec"]:
        yield from doc["spec"]["submitterPodTemplate"]["spec"]["containers"]


def _env(container: dict) -> dict:
    return {e["name"]: e for e in container.get("env", [])}


def _walk(node, path=""):
    """Yield (path, key, value) for every mapping entry in a nested document."""
    if isinstance(node, dict):
        for k, v in node.items():
            yield path, k, v
            yield from _walk(v, f"{path}.{k}")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _walk(v, f"{path}[{i}]")


def validate(doc: dict) -> None:
    """Raise (jsonschema.ValidationError or AssertionError) if ``doc`` is not acceptable."""
    assert doc.get("kind") in SCHEMAS, f"unexpected kind {doc.get('kind')!r}"
    jsonschema.validate(doc, SCHEMAS[doc["kind"]])

    spec = _cluster_spec(doc)
    assert spec["rayVersion"] == ray.__version__, (spec["rayVersion"], ray.__version__)
    assert spec["enableInTreeAutoscaling"] is True

    head = spec["headGroupSpec"]
    # KubeRay requires every rayStartParams value to be a string (the schema checks it too).
    for params in [
        head["rayStartParams"],
        *(g["rayStartParams"] for g in spec["workerGroupSpecs"]),
    ]:
        for k, v in params.items():
            assert isinstance(v, str), f"rayStartParams[{k!r}] must be a string, got {v!r}"
    assert head["rayStartParams"].get("num-cpus") == "0", "the head must not run work"
    assert head.get("serviceType", "ClusterIP") == "ClusterIP"
    head_env = _env(head["template"]["spec"]["containers"][0])
    assert head_env.get("RAY_enable_autoscaler_v2", {}).get("value") == "1"

    groups = {g["groupName"]: g for g in spec["workerGroupSpecs"]}
    assert set(groups) == {"cpu-workers", "gpu-workers"}
    for g in groups.values():
        assert g["minReplicas"] <= g["replicas"] <= g["maxReplicas"], g["groupName"]

    cpu = groups["cpu-workers"]
    assert (cpu["minReplicas"], cpu["maxReplicas"]) == (0, 20)
    cpu_res = cpu["template"]["spec"]["containers"][0]["resources"]
    for part in ("requests", "limits"):
        assert str(cpu_res[part]["cpu"]) == "8" and cpu_res[part]["memory"] == "32Gi"

    gpu = groups["gpu-workers"]
    assert (gpu["minReplicas"], gpu["maxReplicas"]) == (0, 8)
    gpu_pod = gpu["template"]["spec"]
    gpu_limit = gpu_pod["containers"][0].get("resources", {}).get("limits", {})
    assert int(gpu_limit.get("nvidia.com/gpu", 0)) == 1, "GPU workers need a nvidia.com/gpu limit"
    assert any(
        t.get("key") == "nvidia.com/gpu" and t.get("effect") == "NoSchedule"
        for t in gpu_pod.get("tolerations", [])
    ), "GPU workers need a nvidia.com/gpu NoSchedule toleration"

    # /dev/shm (memory-backed emptyDir) in every Ray pod template, mounted in every container.
    for name, template in _ray_pod_templates(spec):
        pod = template["spec"]
        shm = {
            v["name"]
            for v in pod.get("volumes", [])
            if v.get("emptyDir", {}).get("medium") == "Memory"
        }
        assert shm, f"{name}: no memory-backed emptyDir volume"
        for c in pod["containers"]:
            mounts = {m["name"] for m in c.get("volumeMounts", []) if m["mountPath"] == "/dev/shm"}
            assert mounts & shm, f"{name}/{c['name']}: /dev/shm not mounted"

    # The raytag image (the Dockerfile: FROM the Ray version raytag pins), at raytag's version.
    import raytag

    dockerfile = (ROOT / "Dockerfile").read_text()
    assert f"FROM rayproject/ray:{ray.__version__}-" in dockerfile
    for c in _all_containers(doc):
        m = re.fullmatch(r"[\w.-]+(?:/[\w.-]+)*/raytag:([\w.-]+)", c["image"])
        assert m, f"unexpected image {c['image']!r}"
        assert m.group(1) == raytag.__version__, (c["image"], raytag.__version__)

    # Token authentication stays on; the token comes from the Secret in every container.
    for path, key, value in _walk(doc):
        if isinstance(value, str) and value.strip().lower() == "disabled":
            raise AssertionError(f"{path}.{key}: 'disabled' found (auth must stay on)")
    for c in _all_containers(doc):
        env = _env(c)
        if "RAY_AUTH_MODE" in env:
            assert env["RAY_AUTH_MODE"].get("value") == "token", c["name"]
        ref = env.get("RAY_AUTH_TOKEN", {}).get("valueFrom", {}).get("secretKeyRef", {})
        assert ref.get("name") == TOKEN_SECRET, f"{c['name']}: RAY_AUTH_TOKEN not from Secret"

    # Never a public Service.
    for path, key, value in _walk(doc):
        if key == "serviceType" or (key == "type" and path.endswith("spec")):
            assert value not in ("LoadBalancer", "NodePort"), f"{path}.{key} = {value}"

    if doc["kind"] == "RayJob":
        js = doc["spec"]
        assert js["shutdownAfterJobFinishes"] is True
        assert js["submissionMode"] == "K8sJobMode"
        assert js.get("ttlSecondsAfterFinished") == 600
        argv = js["entrypoint"].split()
        assert argv[0] == "python" and "--input" in argv and "--output" in argv
        # the script is the image's copy of this repository (/home/ray/raytag)
        assert argv[1].startswith("/home/ray/raytag/"), argv[1]
        script = ROOT / argv[1].removeprefix("/home/ray/raytag/")
        assert script.is_file(), f"entrypoint script {argv[1]} not in the repo"
        runtime_env = yaml.safe_load(js["runtimeEnvYAML"])
        assert isinstance(runtime_env, dict)
        assert "pip" not in runtime_env, "packages come from the image, never by name"


# --- fixtures and tests -----------------------------------------------------------------


def _load(name: str) -> list[dict]:
    with open(KUBERAY / name) as f:
        return [d for d in yaml.safe_load_all(f) if d is not None]


@pytest.fixture
def raycluster() -> dict:
    (doc,) = _load("raycluster.yaml")
    return doc


@pytest.fixture
def rayjob() -> dict:
    (doc,) = _load("rayjob.yaml")
    return doc


def test_raycluster_valid(raycluster):
    assert raycluster["kind"] == "RayCluster" and raycluster["metadata"]["name"] == "raytag"
    validate(raycluster)
    opts = raycluster["spec"]["autoscalerOptions"]
    assert opts == {"upscalingMode": "Default", "idleTimeoutSeconds": 300}
    head = raycluster["spec"]["headGroupSpec"]["rayStartParams"]
    assert head["dashboard-host"] == "0.0.0.0" and head["metrics-export-port"] == "8080"


def test_rayjob_valid(rayjob):
    assert rayjob["kind"] == "RayJob" and rayjob["metadata"]["name"] == "raytag-cohort"
    validate(rayjob)


def test_rayjob_cluster_matches_raycluster(raycluster, rayjob):
    """The RayJob's cluster is the standalone RayCluster's spec (same groups, images, limits)."""
    assert rayjob["spec"]["rayClusterSpec"] == raycluster["spec"]


def test_no_public_services_anywhere():
    """No manifest (comments aside) asks for a LoadBalancer or NodePort anywhere."""
    paths = sorted(KUBERAY.glob("*.yaml"))
    assert {p.name for p in paths} >= {"raycluster.yaml", "rayjob.yaml"}
    for path in paths:
        for doc in _load(path.name):
            if doc.get("kind") == "Service":
                assert doc["spec"].get("type", "ClusterIP") == "ClusterIP", path
            for where, key, value in _walk(doc):
                assert value not in ("LoadBalancer", "NodePort"), f"{path.name}{where}.{key}"


def test_ray_pin_matches_pyproject():
    text = (ROOT / "pyproject.toml").read_text()
    m = re.search(r'"ray\[[^\]]*\]==([\d.]+)"', text)
    assert m and m.group(1) == ray.__version__


def _set(doc, path, value):
    node = doc
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value


_HEAD = ("spec", "headGroupSpec")
_CPU = ("spec", "workerGroupSpecs", 0)
_GPU = ("spec", "workerGroupSpecs", 1)

MUTATIONS = {
    "int rayStartParams": (_HEAD + ("rayStartParams", "num-cpus"), 0),
    "head does work": (_HEAD + ("rayStartParams", "num-cpus"), "4"),
    "max < min": (_CPU + ("maxReplicas",), -1),
    "replicas > max": (_GPU + ("replicas",), 9),
    "min > max": (_GPU + ("minReplicas",), 10),
    "string maxReplicas": (_GPU + ("maxReplicas",), "8"),
    "autoscaling off": (("spec", "enableInTreeAutoscaling"), "true"),
    "rayVersion mismatch": (("spec", "rayVersion"), "2.9.0"),
    "image tag mismatch": (
        _GPU + ("template", "spec", "containers", 0, "image"),
        "rayproject/ray:2.9.0-py311-gpu",
    ),
    "no GPU toleration": (_GPU + ("template", "spec", "tolerations"), []),
    "no GPU limit": (_GPU + ("template", "spec", "containers", 0, "resources", "limits"), {}),
    "no shm volume": (_CPU + ("template", "spec", "volumes"), []),
    "LoadBalancer": (_HEAD + ("serviceType",), "LoadBalancer"),
    "auth disabled": (
        _HEAD + ("template", "spec", "containers", 0, "env", 1),
        {"name": "RAY_AUTH_MODE", "value": "disabled"},
    ),
    "token not from secret": (
        _CPU + ("template", "spec", "containers", 0, "env", 1),
        {"name": "RAY_AUTH_TOKEN", "value": "hard-coded"},
    ),
    "missing rayVersion": None,
}


@pytest.mark.parametrize("name", sorted(MUTATIONS))
def test_mutated_raycluster_rejected(raycluster, name):
    doc = copy.deepcopy(raycluster)
    validate(copy.deepcopy(doc))  # the unmutated manifest passes
    if MUTATIONS[name] is None:
        del doc["spec"]["rayVersion"]
    else:
        path, value = MUTATIONS[name]
        _set(doc, path, value)
    with pytest.raises((jsonschema.ValidationError, AssertionError)):
        validate(doc)


@pytest.mark.parametrize(
    "mutate",
    [
        lambda s: s.update(submissionMode="Kubernetes"),
        lambda s: s.update(shutdownAfterJobFinishes="yes"),
        lambda s: s.update(entrypoint="python /home/ray/raytag/jobs/no_such_script.py "
                                      "--input a --output b"),
        lambda s: s.pop("rayClusterSpec"),
        lambda s: s["rayClusterSpec"]["workerGroupSpecs"][0]["rayStartParams"].update(
            {"num-gpus": 0}
        ),
        lambda s: s.update(runtimeEnvYAML="pip: [raytag]\nenv_vars: {AWS_REGION: eu-west-2}"),
    ],
    ids=["bad-mode", "non-bool-shutdown", "missing-script", "no-cluster", "int-param",
         "pip-by-name"],
)
def test_mutated_rayjob_rejected(rayjob, mutate):
    doc = copy.deepcopy(rayjob)
    mutate(doc["spec"])
    with pytest.raises((jsonschema.ValidationError, AssertionError)):
        validate(doc)


def _ray_containers(spec: dict):
    yield spec["headGroupSpec"]["rayStartParams"], spec["headGroupSpec"]["template"]["spec"][
        "containers"][0]
    for group in spec["workerGroupSpecs"]:
        yield group["rayStartParams"], group["template"]["spec"]["containers"][0]


def test_pod_monitor_scrapes_every_ray_pod(raycluster, rayjob):
    """monitoring.yaml's PodMonitor reaches the metrics agent of every Ray container of both
    manifests: selected by KubeRay's pod label, through a named port that is the group's
    metrics-export-port."""
    (mon,) = _load("monitoring.yaml")
    assert mon["apiVersion"] == "monitoring.coreos.com/v1" and mon["kind"] == "PodMonitor"
    assert mon["metadata"]["labels"]["release"] == "prometheus"
    assert mon["spec"]["selector"] == {"matchLabels": {"ray.io/is-ray-node": "yes"}}
    (endpoint,) = mon["spec"]["podMetricsEndpoints"]
    for doc in (raycluster["spec"], rayjob["spec"]["rayClusterSpec"]):
        for params, container in _ray_containers(doc):
            ports = {p["name"]: p["containerPort"] for p in container.get("ports", [])}
            assert endpoint["port"] in ports, container["name"]
            assert str(ports[endpoint["port"]]) == params["metrics-export-port"]


def test_head_embeds_grafana_from_the_monitoring_stack(raycluster):
    env = {e["name"]: e.get("value") for e in
           raycluster["spec"]["headGroupSpec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["RAY_PROMETHEUS_HOST"].startswith("http://prometheus-kube-prometheus-prometheus.")
    assert env["RAY_GRAFANA_HOST"].startswith("http://prometheus-grafana.")
    assert env["RAY_GRAFANA_IFRAME_HOST"] == "http://127.0.0.1:3000"  # the port-forward
