"""``raytag run`` against the same work in a plain in-process loop, whole processes, paired.

    python benchmarks/pipeline_throughput.py --participants 24 200 [--pairs 3] \\
        [--engines ray local] [--weights DIR] [--family thorax] \\
        --json benchmarks/results/pipeline_throughput.json

For each cohort size: a fresh synthetic cohort, then ``--pairs`` pairs of runs taken in
turn (A B A B ...), each a new process, start-up included (Ray's start, imports, model
loading): A = ``raytag run --input C --output <new folder> -q --engine E`` for each engine
E (one round times every engine, then the loop), B =
``benchmarks/pipeline_loop.py --input C`` (decode -> ``Predictor.predict`` -> rows, one
core for Python, torch's threads for the networks). The figure is the throughput ratio
B_seconds / A_seconds per pair (> 1: Ray is faster), and its median; alternating keeps the
ratio fair when the machine's speed drifts. Recorded with it: the configuration (model
version, tracker, refine passes), which engine ``--engine auto`` picks at that size, the
commit and the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

from provenance import commit, machine, save_json  # benchmarks/provenance.py (run as a script)

from raytag.constants import DEFAULT_TRACKER, REFINE_PASSES
from raytag.io import storage
from raytag.phantom.cohort import SynthConfig
from raytag.pipeline.run import choose_engine
from raytag.pipeline.settings import ENGINES, RunSettings
from raytag.pipeline.synth import synthesise

HERE = os.path.dirname(os.path.abspath(__file__))


def _timed(cmd: list[str]) -> tuple[float, str]:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd[:3]} failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return seconds, proc.stdout


def compare(cohort: str, scratch: str, pairs: int, weights: str | None, tracker: str,
            engines: list[str]) -> dict:
    """``pairs`` rounds, each: one ``raytag run`` per engine, then the loop; every run's
    ratio is against the loop of its own round."""
    raytag = os.path.join(os.path.dirname(sys.executable), "raytag")
    extra = ["--weights", weights] if weights else []
    runs = {e: [] for e in engines}
    for i in range(pairs):
        timed = {}
        for engine in engines:
            out = os.path.join(scratch, f"run-{engine}-{i}")
            timed[engine] = _timed([raytag, "run", "--input", cohort, "--output", out, "-q",
                                    "--tracker", tracker, "--engine", engine, *extra])
        b, b_out = _timed([sys.executable, os.path.join(HERE, "pipeline_loop.py"),
                           "--input", cohort, "--tracker", tracker, *extra])
        loop = json.loads(b_out)
        for engine, (a, a_out) in timed.items():
            summary = json.loads(a_out.strip().splitlines()[-1])
            if summary["rows"] != loop["rows"]:
                raise RuntimeError(f"different work: run {summary['rows']} rows, loop "
                                   f"{loop['rows']}")
            runs[engine].append({"run_seconds": a, "loop_seconds": b,
                                 "ratio_loop_over_run": b / a, "rows": loop["rows"],
                                 "slices": loop["slices"], "engine": summary["engine"],
                                 "model_actors": summary["model_actors"],
                                 "model_versions": summary["model_versions"]})
    return {engine: {
        "pairs": r,
        "median_ratio_loop_over_run": statistics.median(x["ratio_loop_over_run"] for x in r),
        "median_run_slices_per_s": statistics.median(x["slices"] / x["run_seconds"] for x in r),
        "median_loop_slices_per_s": statistics.median(x["slices"] / x["loop_seconds"]
                                                      for x in r)}
        for engine, r in runs.items()}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--participants", type=int, nargs="+", default=[24, 200])
    ap.add_argument("--pairs", type=int, default=3)
    ap.add_argument("--weights", default=None)
    ap.add_argument("--tracker", default=DEFAULT_TRACKER)
    ap.add_argument("--family", default="thorax")
    ap.add_argument("--engines", nargs="+", default=["ray", "local"], choices=ENGINES[1:],
                    help="raytag run --engine values to time, each against the loop")
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    result = {"machine": machine(), "commit": commit(), "weights": args.weights or "shipped",
              "tracker": args.tracker, "refine_passes": REFINE_PASSES,
              "family": args.family, "cohorts": {}}
    with tempfile.TemporaryDirectory(prefix="raytag-pipe-") as scratch:
        for n in args.participants:
            cohort = storage.join(scratch, f"cohort-{n}")
            synthesise(cohort, SynthConfig(n, seed=5, family=args.family), workers=1)
            by_engine = compare(cohort, scratch, args.pairs, args.weights, args.tracker,
                                args.engines)
            # what `raytag run` (a subprocess with this environment) picks at this size
            result["cohorts"][str(n)] = {"engines": by_engine,
                                         "auto_engine": choose_engine(RunSettings(), n)}
            for engine, c in by_engine.items():
                print(f"{n} participants, engine {engine}: loop/run "
                      f"{c['median_ratio_loop_over_run']:.2f}", file=sys.stderr)
    print(json.dumps(result, indent=1))
    save_json(result, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
