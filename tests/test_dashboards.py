"""dashboards/raytag.json queries only metrics that exist, with labels those metrics carry.

Ray exports a ``ray.util.metrics`` metric ``NAME`` as ``ray_NAME`` (gauge), ``ray_NAME_total``
(counter) or ``ray_NAME_bucket|_sum|_count`` (histogram). Every ``ray_raytag_*`` name in the
dashboard must map back to ``raytag.pipeline.telemetry.METRIC_NAMES``, every raytag metric must
be shown somewhere, and any other ``ray_*`` name must be one of the Ray built-ins listed below.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from raytag.pipeline.telemetry import METRIC_NAMES

DASHBOARD = Path(__file__).resolve().parents[1] / "dashboards" / "raytag.json"

# raytag's own tag keys (see the table in raytag/pipeline/telemetry.py).
TAGS: dict[str, frozenset[str]] = {
    "raytag_participants": frozenset({"status"}),
    "raytag_slices": frozenset({"status", "reason"}),
    "raytag_frames": frozenset(),
    "raytag_model_frames_per_second": frozenset(),
    "raytag_stage_seconds": frozenset({"stage"}),
    "raytag_cohort_participants": frozenset({"state"}),
}
# Labels Ray / Prometheus add to every exported series (the dashboard filters on SessionName).
COMMON_LABELS = frozenset({"SessionName", "instance", "job"})

# Ray's built-in metrics the dashboard uses -- not raytag's, so not in METRIC_NAMES.
RAY_BUILTINS = frozenset({"ray_actors", "ray_node_gpus_utilization"})

_SUFFIXES = {"counter": ("_total",), "gauge": ("",), "histogram": ("_bucket", "_sum", "_count")}
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"' + r"|'(?:[^'\\]|\\.)*'")
_NAME = re.compile(r"\bray_[A-Za-z0-9_]+\b")
_SELECTOR = re.compile(r"\b(ray_[A-Za-z0-9_]+)\s*\{([^}]*)\}")
_MATCHER_KEY = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\s*(?:=~|!~|!=|=)")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring)\s*\(([^)]*)\)")


def exported_names(metric_names: dict[str, str]) -> dict[str, str]:
    """Exported Prometheus series name -> raytag metric name."""
    return {f"ray_{name}{suffix}": name
            for name, kind in metric_names.items() for suffix in _SUFFIXES[kind]}


def _allowed_labels(name: str, metric_names: dict[str, str]) -> frozenset[str]:
    labels = TAGS.get(name, frozenset()) | COMMON_LABELS
    return labels | {"le"} if metric_names[name] == "histogram" else labels


def check_expr(expr: str, metric_names: dict[str, str] = METRIC_NAMES) -> tuple[set[str], list]:
    """(raytag metrics used, problems) for one PromQL expression."""
    exported = exported_names(metric_names)
    code = _STRING.sub('""', expr)  # label values can't be mistaken for names or labels
    used, problems = set(), []
    names = set(_NAME.findall(code))
    for series in sorted(names):
        if series in exported:
            used.add(exported[series])
        elif series.startswith("ray_raytag_"):
            problems.append(f"{series}: not an exported raytag metric")
        elif series not in RAY_BUILTINS:
            problems.append(f"{series}: not in RAY_BUILTINS")
    for series, matchers in _SELECTOR.findall(code):
        if series in exported:
            base = exported[series]
            extra = set(_MATCHER_KEY.findall(matchers)) - _allowed_labels(base, metric_names)
            if extra:
                problems.append(f"{series}: unknown label(s) {sorted(extra)}")
    if names and names <= set(exported):  # only raytag metrics: grouping labels are checkable
        allowed = frozenset().union(*(_allowed_labels(exported[n], metric_names) for n in names))
        for group in _GROUPING.findall(code):
            extra = {g.strip() for g in group.split(",") if g.strip()} - allowed
            if extra:
                problems.append(f"grouping by unknown label(s) {sorted(extra)}")
    return used, problems


def _load() -> dict:
    return json.loads(DASHBOARD.read_text())


def _panels(dash: dict) -> list[dict]:
    out = []
    for p in dash["panels"]:
        out.append(p)
        out.extend(p.get("panels", []))  # panels inside collapsed rows
    return [p for p in out if p.get("type") != "row"]


def test_tags_cover_metric_names():
    assert set(TAGS) == set(METRIC_NAMES)
    assert set(METRIC_NAMES.values()) <= set(_SUFFIXES)


def test_dashboard_shape():
    dash = _load()
    assert 36 <= dash["schemaVersion"] <= 41
    variables = {v["name"]: v for v in dash["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    panels = _panels(dash)
    assert len(panels) >= 8
    assert len({p["id"] for p in panels}) == len(panels)
    for p in panels:
        assert p.get("title"), p
        assert p["datasource"]["uid"] == "${datasource}", p["title"]
        assert p.get("targets"), p["title"]
        for t in p["targets"]:
            assert t.get("expr", "").strip(), p["title"]


def test_every_expr_is_valid_and_every_metric_is_used():
    dash = _load()
    used, problems = set(), []
    for p in _panels(dash):
        for t in p["targets"]:
            u, errs = check_expr(t["expr"])
            used |= u
            problems += [f"{p['title']}: {e}" for e in errs]
    for v in dash["templating"]["list"]:  # variable queries must name real metrics too
        query = v.get("query")
        query = query.get("query", "") if isinstance(query, dict) else query or ""
        problems += [f"variable {v['name']}: {e}" for e in check_expr(query)[1]]
    assert not problems
    assert used == set(METRIC_NAMES), f"unused: {set(METRIC_NAMES) - used}"


def test_builtins_are_used():
    text = " ".join(t["expr"] for p in _panels(_load()) for t in p["targets"])
    assert RAY_BUILTINS <= set(_NAME.findall(text))


@pytest.mark.parametrize("expr, needle", [
    ("sum(rate(ray_raytag_slices{status=\"failed\"}[5m]))", "ray_raytag_slices: not"),
    ("ray_raytag_frames", "ray_raytag_frames: not"),
    ("ray_raytag_stage_seconds_total", "ray_raytag_stage_seconds_total: not"),
    ("ray_raytag_model_frames_per_second_total", "not an exported"),
    ("ray_node_mem_used", "not in RAY_BUILTINS"),
    ("sum(ray_raytag_slices_total{stage=\"model\"})", "unknown label(s) ['stage']"),
    ("sum by (reason) (rate(ray_raytag_participants_total[5m]))", "grouping by unknown"),
    ("histogram_quantile(0.5, sum by (le) (rate(ray_raytag_frames_total[5m])))",
     "grouping by unknown"),
])
def test_checker_flags_wrong_queries(expr, needle):
    _, problems = check_expr(expr)
    assert any(needle in e for e in problems), problems


def test_checker_accepts_right_queries():
    for expr in (
        'sum by (reason) (rate(ray_raytag_slices_total{status="failed", reason!="ray_x"}[5m]))',
        "histogram_quantile(0.95, sum by (le, stage) (rate(ray_raytag_stage_seconds_bucket[5m])))",
        'ray_raytag_cohort_participants{state="done", SessionName=~"$SessionName"}',
    ):
        used, problems = check_expr(expr)
        assert used and not problems, (expr, problems)
