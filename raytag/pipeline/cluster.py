"""One way to get a Ray: join the cluster in ``RAY_ADDRESS`` (inside ``ray job submit``),
else start a local Ray on this machine."""

from __future__ import annotations

import os

from raytag import logs

__all__ = ["ensure_ray"]


def ensure_ray(num_cpus: int | None = None, dashboard: bool = False) -> bool:
    """Initialise Ray unless it already is; returns True when this call started it.

    Ray's own log lines reach the terminal only at ``-v`` (:func:`raytag.logs.ray_init_kwargs`).
    ``dashboard``: a local Ray starts its dashboard and its URL is printed.
    """
    import ray

    if ray.is_initialized():
        return False
    if os.environ.get("RAY_ADDRESS"):
        ctx = ray.init(address=os.environ["RAY_ADDRESS"], **logs.ray_init_kwargs())
    else:
        ctx = ray.init(num_cpus=num_cpus, include_dashboard=dashboard, **logs.ray_init_kwargs())
    logs.quiet_ray_data()
    url = getattr(ctx, "dashboard_url", None)
    if dashboard and url:
        logs.echo(f"Ray dashboard: http://{url}")
    return True
