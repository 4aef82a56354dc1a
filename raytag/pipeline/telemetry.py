"""raytag's own Prometheus metrics (``ray.util.metrics``), safe to call anywhere.

Exported by Ray with a ``ray_`` prefix (and ``_total`` on counters), e.g.
``ray_raytag_slices_total{status="failed",reason="not_a_zip"}`` (``reason`` is the
row's :class:`raytag.failures.Reason`). Outside a Ray
worker or driver every call is a no-op, so the stages run in plain Python tests too.

| metric | kind | tags |
|---|---|---|
| raytag_participants | counter | status (ok, partial, failed) |
| raytag_slices | counter | status, reason |
| raytag_frames | counter | - (frames through the networks) |
| raytag_model_frames_per_second | gauge | - (last batch, per actor) |
| raytag_stage_seconds | histogram | stage (decode, model, strain) |
| raytag_cohort_participants | gauge | state (total, done) (driver) |
"""

from __future__ import annotations

from functools import cache

__all__ = ["count_participant", "count_slice", "count_frames",
           "observe_stage", "set_progress", "METRIC_NAMES"]

METRIC_NAMES = {
    "raytag_participants": "counter", "raytag_slices": "counter", "raytag_frames": "counter",
    "raytag_model_frames_per_second": "gauge", "raytag_stage_seconds": "histogram",
    "raytag_cohort_participants": "gauge",
}
_BOUNDARIES = [0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0]

@cache
def _metrics():
    try:
        import ray
        from ray.util import metrics as m

        if not ray.is_initialized():
            return None
        return {
            "participants": m.Counter("raytag_participants", "participants processed",
                                      tag_keys=("status",)),
            "slices": m.Counter("raytag_slices", "slices processed",
                                tag_keys=("status", "reason")),
            "frames": m.Counter("raytag_frames", "frames through the networks"),
            "fps": m.Gauge("raytag_model_frames_per_second", "network frames/s, last batch"),
            "stage": m.Histogram("raytag_stage_seconds", "per-stage latency per item",
                                 boundaries=_BOUNDARIES, tag_keys=("stage",)),
            "cohort": m.Gauge("raytag_cohort_participants", "cohort progress",
                              tag_keys=("state",)),
        }
    except Exception:  # noqa: BLE001 - metrics must never break processing
        return None


def _safe(fn):
    def wrapper(*args, **kwargs):
        try:
            if _metrics() is not None:
                fn(_metrics(), *args, **kwargs)
        except Exception:  # noqa: BLE001
            pass
    return wrapper


@_safe
def count_participant(m, records) -> None:
    ok = sum(r.ok for r in records)
    status = "ok" if ok == len(records) else "failed" if ok == 0 else "partial"
    m["participants"].inc(1, tags={"status": status})


@_safe
def count_slice(m, status: str, reason: str | None) -> None:
    """``reason``: the row's :class:`~raytag.failures.Reason` value (a bounded set)."""
    m["slices"].inc(1, tags={"status": status, "reason": reason or ""})


@_safe
def count_frames(m, frames: int, seconds: float) -> None:
    m["frames"].inc(frames)
    if seconds > 0:
        m["fps"].set(frames / seconds)


@_safe
def observe_stage(m, stage: str, seconds: float) -> None:
    m["stage"].observe(seconds, tags={"stage": stage})


@_safe
def set_progress(m, total: int, done: int) -> None:
    m["cohort"].set(total, tags={"state": "total"})
    m["cohort"].set(done, tags={"state": "done"})


