"""Memory and actor starts of ``raytag run`` as the cohort grows (bounded: it should not).

    python benchmarks/pipeline_memory.py --participants 200 1000 \\
        --json benchmarks/results/pipeline_memory.json

For each size: a fresh synthetic cohort, then ``raytag run`` in this process on a local
Ray it starts itself, while a sampler reads, five times a second, the memory of *this
run's* processes only: the driver and every process descended from it (Ray's GCS, raylet,
workers), never another Ray on the machine. USS (memory unique to a process) and PSS
(shared pages divided among their sharers) are summed, so shared pages count once; the
peaks are recorded. Afterwards the Ray state API counts the model actors created and
their restarts (one streaming execution: actors start once, at the beginning).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import threading
import time

import psutil
from provenance import commit, machine, save_json  # benchmarks/provenance.py (run as a script)


class TreeMemory:
    """Peak summed USS and PSS of a process and its descendants, and the driver's own."""

    def __init__(self, pid: int, every_s: float = 0.2):
        self.root = psutil.Process(pid)
        self.every_s = every_s
        self.peak_uss = self.peak_pss = self.driver_peak_uss = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> None:
        uss = pss = 0
        for p in [self.root, *self.root.children(recursive=True)]:
            try:
                info = p.memory_full_info()
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
            uss += info.uss
            pss += getattr(info, "pss", info.uss)
            if p.pid == self.root.pid:
                self.driver_peak_uss = max(self.driver_peak_uss, info.uss)
        self.peak_uss, self.peak_pss = max(self.peak_uss, uss), max(self.peak_pss, pss)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._sample()
            time.sleep(self.every_s)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def _model_actors() -> dict:
    """Model actors this Ray created, and their restarts (the GCS actor table: no
    dashboard needed)."""
    import ray._private.state as state

    actors = [a for a in state.state.actor_table(None).values()
              if "PredictNetworks" in (a.get("ActorClassName") or "")]
    return {"created": len(actors),
            "restarts": int(sum(a.get("NumRestarts") or 0 for a in actors))}


def measure(n: int, scratch: str, weights: str | None, family: str) -> dict:
    import ray

    from raytag.phantom.cohort import SynthConfig
    from raytag.pipeline.run import run_cohort
    from raytag.pipeline.synth import synthesise

    cohort = os.path.join(scratch, f"cohort-{n}")
    synthesise(cohort, SynthConfig(n, seed=6, family=family), workers=1)
    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
    try:
        with TreeMemory(os.getpid()) as mem:
            t0 = time.perf_counter()
            summary = run_cohort(cohort, os.path.join(scratch, f"out-{n}"), weights=weights,
                                 echo=lambda s: None)
            seconds = time.perf_counter() - t0
        actors = _model_actors()
    finally:
        ray.shutdown()
    return {"participants": n, "rows": summary["rows"], "seconds": seconds,
            "slices_per_s": summary["rows"] / seconds,
            "peak_uss_mb": mem.peak_uss / 2**20, "peak_pss_mb": mem.peak_pss / 2**20,
            "driver_peak_uss_mb": mem.driver_peak_uss / 2**20,
            "model_actors": summary["model_actors"], "model_actors_created": actors["created"],
            "model_actor_restarts": actors["restarts"]}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--participants", type=int, nargs="+", default=[200, 1000])
    ap.add_argument("--weights", default=None)
    ap.add_argument("--family", default="thorax")
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    result = {"machine": machine(), "commit": commit(), "weights": args.weights or "shipped",
              "family": args.family, "runs": []}
    with tempfile.TemporaryDirectory(prefix="raytag-mem-") as scratch:
        for n in args.participants:
            result["runs"].append(measure(n, scratch, args.weights, args.family))
            print(json.dumps(result["runs"][-1]))
    first, last = result["runs"][0], result["runs"][-1]
    result["peak_pss_ratio_last_over_first"] = last["peak_pss_mb"] / first["peak_pss_mb"]
    save_json(result, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
