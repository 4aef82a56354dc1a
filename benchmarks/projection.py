"""Projection: the whole UK Biobank tagging cohort through ``raytag run`` on a GPU cluster.

    python benchmarks/projection.py [--participants 100000] [--nodes 8] [--cores 16] \\
        [--s3-gbit-per-node 10] [--target-s 180] --json benchmarks/results/projection.json

Arithmetic on rates measured by the other benchmarks (their results files, this machine),
never on guesses presented as measurements; what is assumed is named in the output:

- decoding: frames per core-second (``decode_speed.json``: ``read_participant``);
- tracking: HARP frames per CPU-second (``trackers_truth_ed.json``), slowed by the default
  ``tags`` tracker's extra cost per slice over ``harp`` (``transfer.json``, end to end with
  the same networks, median over families);
- input bytes per frame: measured on a fresh synthetic cohort written here (the same DICOM
  layout and compression as the pipeline reads);
- assumed: the node count and cores, S3 bandwidth per node, one core per node kept for the
  model actor's host side and the driver, and that the GPU stage keeps up (not measured:
  no GPU was lent; the output says what rate per GPU it would need).

Each stage's time is its total work over the cluster's capacity for it; the stages stream
concurrently, so the run takes about the slowest stage's time (the CPU stages share the
cores, so their core-seconds add). The output says which stage decides it.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile

from provenance import commit, machine  # benchmarks/provenance.py (run as a script)

from raytag.constants import N_FRAMES
from raytag.io import storage
from raytag.phantom.cohort import SynthConfig
from raytag.pipeline.synth import synthesise

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
SLICES_PER_PARTICIPANT = 3


def _load(name: str) -> dict:
    with open(os.path.join(RESULTS, name)) as f:
        return json.load(f)


def bytes_per_frame(participants: int = 4) -> float:
    """Compressed input bytes per frame of a fresh synthetic cohort (zips on disk)."""
    with tempfile.TemporaryDirectory() as d:
        synthesise(d, SynthConfig(participants, seed=424242), workers=1)
        zips = storage.list_files(d, ".zip")
        total = sum(os.path.getsize(z) for z in zips)
    return total / (len(zips) * SLICES_PER_PARTICIPANT * N_FRAMES)


def project(participants: int, nodes: int, cores: int, s3_gbit: float, target_s: float,
            frame_bytes: float) -> dict:
    decode = _load("decode_speed.json")["per_second_median"]["read_participant"]
    harp = _load("trackers_truth_ed.json")["harp_throughput"]["frames_per_cpu_second"]
    fams = _load("transfer.json")["families"].values()
    # the tag-persistence fit's own cost: tags minus harp per slice (the same networks ran
    # for both), over HARP's per-slice cost
    extra = statistics.median(f["settings"]["end_to_end/tags"]["seconds_per_slice"]
                              - f["settings"]["end_to_end/harp"]["seconds_per_slice"]
                              for f in fams)
    overhead = 1 + max(extra, 0.0) / (N_FRAMES / harp)
    track = harp / overhead
    frames = participants * SLICES_PER_PARTICIPANT * N_FRAMES
    cpu_cores = nodes * (cores - 1)
    stages = {
        "s3_read": frames * frame_bytes / (nodes * s3_gbit * 1e9 / 8),
        "cpu_decode_and_track": frames * (1 / decode + 1 / track) / cpu_cores,
    }
    slowest = max(stages, key=stages.get)
    gpus = nodes  # one GPU per node
    return {
        "assumptions": {"participants": participants, "slices_per_participant":
                        SLICES_PER_PARTICIPANT, "frames_per_slice": N_FRAMES,
                        "nodes": nodes, "cores_per_node": cores,
                        "cores_for_cpu_stages_per_node": cores - 1,
                        "s3_gbit_per_node": s3_gbit, "gpus": gpus,
                        "gpu_stage": "assumed to keep up (not measured here)"},
        "measured": {"decode_frames_per_core_s": decode,
                     "harp_frames_per_cpu_s": harp, "tags_over_harp_cost": overhead,
                     "track_frames_per_cpu_s": track, "input_bytes_per_frame": frame_bytes},
        "frames": frames,
        "stage_seconds": stages,
        "decided_by": slowest,
        "projected_seconds": stages[slowest],
        "target_seconds": target_s,
        "meets_target": stages[slowest] <= target_s,
        "cpu_core_seconds": {"decode": frames / decode, "track": frames / track},
        "gpu_slices_per_s_needed": participants * SLICES_PER_PARTICIPANT / target_s / gpus,
        "track_frames_per_cpu_s_needed": frames / (target_s * cpu_cores - frames / decode),
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--participants", type=int, default=100_000)
    ap.add_argument("--nodes", type=int, default=8)
    ap.add_argument("--cores", type=int, default=16)
    ap.add_argument("--s3-gbit-per-node", type=float, default=10.0)
    ap.add_argument("--target-s", type=float, default=180.0)
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    out = project(args.participants, args.nodes, args.cores, args.s3_gbit_per_node,
                  args.target_s, bytes_per_frame())
    out["machine"], out["commit"] = machine(), commit()
    print(json.dumps(out, indent=1))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
