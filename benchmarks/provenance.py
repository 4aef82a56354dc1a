"""Where a benchmark result was measured: the commit and the machine (every results file
records both, so a figure can be traced and rerun), and writing the results file."""

from __future__ import annotations

import json
import os
import platform
import subprocess

HERE = os.path.dirname(os.path.abspath(__file__))


def commit() -> str:
    """The checkout's short commit hash, or ``unknown`` outside a git checkout."""
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, check=True, cwd=HERE).stdout.strip()
    except Exception:  # noqa: BLE001 - no git, or not a checkout
        return "unknown"


def machine() -> dict:
    """CPU count, processor architecture and Python version of this machine."""
    return {"cpus": os.cpu_count(), "processor": platform.machine(),
            "python": platform.python_version()}


def save_json(result, path: str | None) -> None:
    """Write ``result`` to the results file ``path`` (indented; numpy scalars as floats);
    nothing when ``path`` is None (the benchmark's ``--json`` was not given)."""
    if path:
        with open(path, "w") as f:
            json.dump(result, f, indent=1, default=float)
