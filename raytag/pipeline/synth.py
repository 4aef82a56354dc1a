"""``raytag synth``: write a synthetic cohort (zips + truth table), in parallel with Ray.

Participants are generated in chunks by Ray tasks; each task writes its zips straight to
the output (local folder or ``s3://``) and returns only truth rows, so the driver's memory
does not grow with the cohort's pixel data. Output is byte-identical whatever the number
of workers (each participant has its own random stream), and small cohorts or
``workers=1`` run in-process without starting Ray.
"""

from __future__ import annotations

import os
import time

from raytag import logs
from raytag.constants import TRUTH_FILE
from raytag.io import storage
from raytag.phantom.cohort import SynthConfig, truth_table, write_participants
from raytag.pipeline.cluster import ensure_ray

__all__ = ["synthesise", "default_workers", "SERIAL_BELOW"]

#: Cohorts smaller than this run in-process unless ``workers`` is given.
SERIAL_BELOW = 40


def default_workers() -> int:
    """Cores available to this process (Ray's own count when connected to a cluster)."""
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
               else os.cpu_count() or 1)


def synthesise(
    out_uri: str,
    config: SynthConfig,
    workers: int | None = None,
    chunk_size: int = 4,
) -> dict:
    """Write ``config.n_participants`` zips and ``<out_uri>/truth.parquet``; returns a summary.

    ``workers``: parallel Ray tasks (default: the cores available, or in-process for
    fewer than :data:`SERIAL_BELOW` participants); 1 runs in-process.
    Connects to the cluster in ``RAY_ADDRESS`` when set, else starts a local Ray.
    Progress: a bar on a terminal, else a line every few seconds (:mod:`raytag.logs`);
    """
    n = config.n_participants
    if workers is None:
        # Starting Ray costs several seconds: not worth it for a few participants.
        workers = 1 if n < SERIAL_BELOW else default_workers()
    chunks = [range(i, min(i + chunk_size, n)) for i in range(0, n, chunk_size)]
    t0 = time.perf_counter()
    rows: list[dict] = []
    with logs.Progress(n, "synth") as bar:
        if workers <= 1 or len(chunks) <= 1:
            for chunk in chunks:
                rows.extend(write_participants(chunk, config, out_uri))
                bar.update(len(chunk))
        else:
            rows = _run_with_ray(chunks, config, out_uri, workers, bar.update)
    table = truth_table(rows)
    storage.write_table(table, storage.join(out_uri, TRUTH_FILE))
    seconds = time.perf_counter() - t0
    faults: dict[str, int] = {}
    for r in rows:
        if r["fault"] and r["slice_index"] == 1:
            faults[r["fault"]] = faults.get(r["fault"], 0) + 1
    return {
        "participants": n,
        "slices": table.num_rows,
        "seconds": round(seconds, 2),
        "participants_per_s": round(n / seconds, 2) if seconds > 0 else None,
        "faults": faults,
        "truth": storage.join(out_uri, TRUTH_FILE),
    }


def _run_with_ray(chunks, config, out_uri, workers, advance) -> list[dict]:
    import ray

    started = ensure_ray(num_cpus=workers)
    try:
        task = ray.remote(num_cpus=1, max_retries=3)(write_participants)
        config_ref = ray.put(config)
        pending = {}
        queue = list(chunks)
        rows: list[dict] = []
        # Keep at most 2 tasks per worker in flight: bounded driver memory, steady progress.
        while queue or pending:
            while queue and len(pending) < 2 * workers:
                chunk = queue.pop(0)
                pending[task.remote(list(chunk), config_ref, out_uri)] = len(chunk)
            ready, _ = ray.wait(list(pending), num_returns=1)
            for ref in ready:
                rows.extend(ray.get(ref))
                advance(pending.pop(ref))
        return rows
    finally:
        if started:
            ray.shutdown()
