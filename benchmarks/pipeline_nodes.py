"""`raytag run` on a simulated cluster of 1 vs 2 nodes (``ray.cluster_utils.Cluster``).

    python benchmarks/pipeline_nodes.py [--participants 24]

Both layouts share this machine's cores (1 node x 2 CPUs, then 2 nodes x 1 CPU), so this
measures what spreading the stages over nodes costs (object transfer between raylets,
scheduling), not scale-out; it also shows where decode tasks and model actors ran.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections import Counter

from raytag.io import storage
from raytag.phantom.cohort import SynthConfig
from raytag.pipeline.synth import synthesise


def run_layout(cohort: str, nodes: list[int], out: str) -> dict:
    import ray
    from ray.cluster_utils import Cluster

    from raytag.pipeline.run import read_results, run_cohort

    cluster = Cluster(initialize_head=True, head_node_args={
        "num_cpus": nodes[0], "temp_dir": tempfile.mkdtemp(prefix="rb", dir="/tmp"),
        "include_dashboard": False})
    for cpus in nodes[1:]:
        cluster.add_node(num_cpus=cpus)
    ray.init(address=cluster.address, log_to_driver=False)
    try:
        t0 = time.perf_counter()
        summary = run_cohort(cohort, out)
        seconds = time.perf_counter() - t0
        placed = read_results(out, columns=["decode_node", "model_node"]).to_pylist()
    finally:
        ray.shutdown()
        cluster.shutdown()
    return {"nodes": nodes, "seconds": seconds, "slices_per_s": summary["rows"] / seconds,
            "decode_rows_per_node": sorted(Counter(p["decode_node"] for p in placed).values()),
            "model_rows_per_node": sorted(Counter(p["model_node"] for p in placed
                                                  if p["model_node"]).values())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--participants", type=int, default=24)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    scratch = tempfile.mkdtemp(prefix="raytag-nodes-")
    cohort = storage.join(scratch, "cohort")
    synthesise(cohort, SynthConfig(args.participants, seed=5), workers=1)
    rows = [run_layout(cohort, [2], storage.join(scratch, "one")),
            run_layout(cohort, [1, 1], storage.join(scratch, "two"))]
    result = {"participants": args.participants, "layouts": rows,
              "two_vs_one": rows[1]["slices_per_s"] / rows[0]["slices_per_s"]}
    print(json.dumps(result, indent=1))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
