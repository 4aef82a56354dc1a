"""Synthetic-cohort generation throughput and size per participant.

    python benchmarks/synth_throughput.py [--participants 24] [--workers 2] [--out DIR]

Measures, in one run on this machine: (1) in-process generation (one core): participants/s
and the time split between rendering and writing; (2) the Ray driver with ``--workers``
tasks over twice as many participants (Ray start-up included, and reported separately).
Prints one JSON object; README numbers come from it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time

from raytag.io import storage
from raytag.phantom.cohort import SynthConfig, generate_participant
from raytag.pipeline.synth import synthesise


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--participants", type=int, default=24)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", default=None, help="scratch folder (default: a temp dir)")
    args = ap.parse_args()
    out = args.out or tempfile.mkdtemp(prefix="raytag-bench-")

    config = SynthConfig(args.participants, seed=123)
    generate_participant(0, config)  # warm-up: imports, caches
    t0 = time.perf_counter()
    sizes = [len(generate_participant(i, config).data) for i in range(args.participants)]
    generate_s = time.perf_counter() - t0

    serial = synthesise(storage.join(out, "serial"), config, workers=1)

    import ray

    t0 = time.perf_counter()
    ray.init(num_cpus=args.workers, include_dashboard=False, log_to_driver=False)
    ray_start_s = time.perf_counter() - t0
    big = SynthConfig(2 * args.participants, seed=123)
    parallel = synthesise(storage.join(out, "ray"), big, workers=args.workers)
    ray.shutdown()

    print(json.dumps({
        "machine": {"cpus": os.cpu_count(), "processor": platform.processor() or platform.machine(),
                    "python": platform.python_version()},
        "participants": args.participants,
        "generate_only_participants_per_s_one_core": round(args.participants / generate_s, 2),
        "generate_and_write_participants_per_s_one_core": serial["participants_per_s"],
        "mean_zip_mb_per_participant": round(sum(sizes) / len(sizes) / 1e6, 2),
        "ray_workers": args.workers,
        "ray_participants": big.n_participants,
        "ray_start_s": round(ray_start_s, 2),
        "ray_participants_per_s": parallel["participants_per_s"],
        "ray_speedup_vs_one_core": round(parallel["participants_per_s"]
                                         / serial["participants_per_s"], 2),
        "minutes_for_1000_participants_at_ray_rate": round(
            1000 / parallel["participants_per_s"] / 60, 1),
    }, indent=1))


if __name__ == "__main__":
    main()
