"""Cohort pipeline throughput and memory: Ray Data pipeline vs the same work in-process.

    python benchmarks/pipeline_throughput.py [--participants 24] [--memory 50 200]
                                             [--weights DIR] [--json OUT]

In one run on this machine:

1. decode only (``read_participant``), in-process: frames/s on one core;
2. an in-process loop doing decode -> predict -> strain for every zip (one core for the
   Python loop, torch's threads for the networks);
3. ``raytag run`` on a local Ray (all cores) over the same cohort, Ray start-up excluded;
   the ratio 3/2 is the figure to watch (Ray should cost nothing on one machine);
4. for each ``--memory`` cohort size: peak RSS of the driver and the peak summed RSS of all
   Ray worker processes during ``raytag run`` (bounded memory: it should not grow with N).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import threading
import time

import psutil

from raytag import geometry
from raytag.io import read_participant, storage
from raytag.models.weights import load_predictor
from raytag.phantom.cohort import SynthConfig
from raytag.pipeline.synth import synthesise
from raytag.strain import compute_strains


def in_process(zips: list[str], weights: str | None) -> dict:
    predictor = load_predictor(weights, device="cpu")
    t0 = time.perf_counter()
    slices = frames = 0
    for uri in zips:
        records = [r for r in read_participant(uri) if r.ok]
        if records:
            out = predictor.predict(records)
            for i, r in enumerate(records):
                compute_strains(geometry.px_to_mm(out.landmarks_px[i], r.pixel_spacing_mm),
                                frame_valid=r.frame_valid)
            frames += int(sum(r.frame_valid.sum() for r in records))
        slices += len(records)
    s = time.perf_counter() - t0
    return {"seconds": s, "slices_per_s": slices / s, "frames_per_s": frames / s}


def decode_only(zips: list[str]) -> dict:
    t0 = time.perf_counter()
    frames = sum(int(r.frame_valid.sum()) for u in zips for r in read_participant(u) if r.ok)
    s = time.perf_counter() - t0
    return {"frames_per_s_one_core": frames / s}


class _RssSampler:
    """Peaks of this driver's RSS and of the summed RSS of Ray workers, sampled at 5 Hz."""

    def __init__(self):
        self.peak = 0
        self.driver_peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        me = os.getpid()
        while not self._stop.is_set():
            total = 0
            for p in psutil.process_iter(["pid", "cmdline"]):
                try:
                    cmd = " ".join(p.info["cmdline"] or [])
                    if p.info["pid"] != me and ("ray::" in cmd or "default_worker" in cmd):
                        total += p.memory_info().rss
                except (psutil.NoSuchProcess, psutil.AccessDenied):
                    pass
            self.peak = max(self.peak, total)
            self.driver_peak = max(self.driver_peak, psutil.Process(me).memory_info().rss)
            time.sleep(0.2)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--participants", type=int, default=24)
    ap.add_argument("--memory", type=int, nargs="*", default=[50, 200])
    ap.add_argument("--weights", default=None)
    ap.add_argument("--json", default=None)
    ap.add_argument("--memory-only", action="store_true", help="skip steps 1-3")
    args = ap.parse_args()
    scratch = tempfile.mkdtemp(prefix="raytag-pipe-")

    import ray

    from raytag.pipeline.run import run_cohort

    cohort = storage.join(scratch, "cohort")
    synthesise(cohort, SynthConfig(args.participants, seed=5), workers=1)
    zips = storage.list_files(cohort, ".zip")
    result = {"machine": {"cpus": os.cpu_count(), "processor": platform.machine()},
              "participants": args.participants}
    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
    if not args.memory_only:
        result["decode"] = decode_only(zips)
        result["in_process"] = in_process(zips, args.weights)
        t0 = time.perf_counter()
        summary = run_cohort(cohort, storage.join(scratch, "out"), weights=args.weights,
                             echo=lambda s: None)
        s = time.perf_counter() - t0
        ok_frames = summary["by_status"].get("ok", 0) * 20
        result["ray"] = {"seconds": s, "slices_per_s": summary["rows"] / s,
                         "frames_per_s": ok_frames / s, "model_actors": summary["model_actors"]}
        result["ray_vs_in_process"] = result["ray"]["slices_per_s"] / \
            result["in_process"]["slices_per_s"]
    result["memory"] = []
    for n in args.memory:
        src = storage.join(scratch, f"mem{n}")
        synthesise(src, SynthConfig(n, seed=6), workers=1)
        with _RssSampler() as sampler:
            t0 = time.perf_counter()
            run_cohort(src, storage.join(scratch, f"mem{n}-out"), weights=args.weights,
                       echo=lambda s: None)
            secs = time.perf_counter() - t0
        result["memory"].append({
            "participants": n, "seconds": secs,
            "driver_peak_rss_mb": sampler.driver_peak / 2**20,
            "workers_peak_rss_mb": sampler.peak / 2**20,
        })
    ray.shutdown()
    print(json.dumps(result, indent=1, default=float))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1, default=float)


if __name__ == "__main__":
    main()
