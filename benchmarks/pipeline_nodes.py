"""`raytag run` on a simulated cluster of 1 vs 2 nodes (``ray.cluster_utils.Cluster``).

    python benchmarks/pipeline_nodes.py [--participants 24]

Both layouts share this machine's cores (1 node x 2 CPUs, then 2 nodes x 1 CPU), so this
measures what spreading the stages over nodes costs (object transfer between raylets,
scheduling), not scale-out; it also records where decode tasks and model actors ran (rows
per node id, with each layout's node ids and which is the head), and the configuration
(weights' model version, tracker, refinement passes, commit, machine).

Ray's ``Cluster`` writes its address file under ``$RAY_TMPDIR/ray``: this script points
``RAY_TMPDIR`` at a private folder first, so it never touches another Ray's ``/tmp/ray``.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from collections import Counter

from provenance import commit, machine, save_json  # benchmarks/provenance.py (run as a script)

from raytag.io import storage
from raytag.phantom.cohort import SynthConfig
from raytag.pipeline.synth import synthesise


def run_layout(cohort: str, nodes: list[int], out: str) -> dict:
    import ray
    from ray.cluster_utils import Cluster

    from raytag.pipeline.run import read_results, run_cohort

    os.makedirs(os.path.join(os.environ["RAY_TMPDIR"], "ray"), exist_ok=True)
    cluster = Cluster(initialize_head=True, head_node_args={
        "num_cpus": nodes[0], "include_dashboard": False})
    head = cluster.head_node.node_id
    for cpus in nodes[1:]:
        cluster.add_node(num_cpus=cpus)
    ray.init(address=cluster.address, log_to_driver=False)
    node_ids = [n["NodeID"] for n in ray.nodes() if n["Alive"]]
    try:
        t0 = time.perf_counter()
        summary = run_cohort(cohort, out)
        seconds = time.perf_counter() - t0
        placed = read_results(out, columns=["decode_node", "model_node"]).to_pylist()
    finally:
        ray.shutdown()
        cluster.shutdown()
    return {"nodes": nodes, "node_ids": node_ids, "head_node": head, "seconds": seconds,
            "slices_per_s": summary["rows"] / seconds,
            "model_versions": summary.get("model_versions"),
            "tracker": summary.get("tracker"),
            "decode_rows_per_node": dict(Counter(p["decode_node"] for p in placed)),
            "model_rows_per_node": dict(Counter(p["model_node"] for p in placed
                                                if p["model_node"]))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--participants", type=int, default=24)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    scratch = tempfile.mkdtemp(prefix="raytag-nodes-")
    os.environ["RAY_TMPDIR"] = tempfile.mkdtemp(prefix="rn", dir="/tmp")  # short: sockets
    cohort = storage.join(scratch, "cohort")
    synthesise(cohort, SynthConfig(args.participants, seed=5), workers=1)
    rows = [run_layout(cohort, [2], storage.join(scratch, "one")),
            run_layout(cohort, [1, 1], storage.join(scratch, "two"))]
    from raytag.constants import REFINE_PASSES

    result = {"participants": args.participants, "layouts": rows, "commit": commit(),
              "refine_passes": REFINE_PASSES, "weights": "shipped", "machine": machine(),
              "two_vs_one": rows[1]["slices_per_s"] / rows[0]["slices_per_s"]}
    print(json.dumps(result, indent=1))
    save_json(result, args.json)


if __name__ == "__main__":
    main()
