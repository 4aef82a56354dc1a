"""One way to get a Ray: join the cluster in ``RAY_ADDRESS`` (inside ``ray job submit``),
else start a local Ray on this machine."""

from __future__ import annotations

import os

__all__ = ["ensure_ray"]


def ensure_ray(num_cpus: int | None = None) -> bool:
    """Initialise Ray unless it already is; returns True when this call started it."""
    import ray

    if ray.is_initialized():
        return False
    if os.environ.get("RAY_ADDRESS"):
        ray.init(address=os.environ["RAY_ADDRESS"])
    else:
        ray.init(num_cpus=num_cpus, include_dashboard=False)
    return True
