"""Projection: the whole UK Biobank tagging cohort through ``raytag run`` on a GPU cluster.

    python benchmarks/projection.py [--participants 100000] [--nodes 8] [--cores 16] \\
        [--s3-gbit-per-node 10] [--target-s 180] --json benchmarks/results/projection.json

Arithmetic on rates measured here, in this one run, never on guesses presented as
measurements; what is assumed is named in the output:

- decoding (frames per core-second, ``read_participant``) and HARP tracking (frames per
  CPU-second, ``track_harp`` from the truth ED landmarks, one thread), both measured on one
  fresh synthetic cohort, interleaved ``--repeats`` times: the projection uses the median
  repeat and also reports the slowest (absolute rates on this shared machine drift by a
  third between days, e.g. HARP 278 then 387 frames/CPU-s for code within 5% of each
  other, so rates from different runs are never combined);
- the default ``tags`` tracker's extra cost per slice over ``harp`` (a ratio from one run
  of ``transfer.json``, end to end with the same networks, median over families);
- input bytes per frame: of the same cohort's zips (the DICOM layout and compression the
  pipeline reads);
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
import time

import numpy as np
from provenance import commit, machine, save_json  # benchmarks/provenance.py (run as a script)

from raytag.constants import N_FRAMES
from raytag.io import read_participant
from raytag.phantom.cohort import SynthConfig, generate_participant
from raytag.tracking.harp import track_harp

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
SLICES_PER_PARTICIPANT = 3


def _load(name: str) -> dict:
    with open(os.path.join(RESULTS, name)) as f:
        return json.load(f)


def measure_rates(participants: int = 6, repeats: int = 5, seed: int = 424242,
                  family: str = "thorax") -> dict:
    """Decode and HARP rates on one fresh cohort of ``family`` (a textured torso: its zips
    compress less than the disc phantom's), interleaved ``repeats`` times (CPU time of this
    thread): ``decode`` frames/core-s and ``harp`` frames/CPU-s per repeat, and the
    compressed ``bytes_per_frame`` of its zips."""
    config = SynthConfig(participants, seed=seed, family=family)
    parts = [generate_participant(i, config) for i in range(participants)]
    zips = [(gp.name, gp.data) for gp in parts]
    tracks, decoded = [], 0
    for gp, z in zip(parts, zips, strict=True):
        truth = {r["slice_index"]: r for r in gp.truth_rows}
        for rec in read_participant(z):
            if not rec.ok:
                continue
            decoded += int(rec.frame_valid.sum())
            if rec.slice_index in truth:
                ed = np.array(truth[rec.slice_index]["landmarks_px"]).reshape(-1, 168, 2)[0]
                tracks.append((rec.frames, rec.frame_valid, ed))
    tracked = sum(int(v.sum()) for _, v, _ in tracks)
    rates: dict[str, list[float]] = {"decode": [], "harp": []}
    for _ in range(repeats):
        t0 = time.process_time()
        for z in zips:
            read_participant(z)
        rates["decode"].append(decoded / (time.process_time() - t0))
        t0 = time.process_time()
        for frames, valid, ed in tracks:
            track_harp(frames, valid, ed)
        rates["harp"].append(tracked / (time.process_time() - t0))
    frame_bytes = sum(len(d) for _, d in zips) / (len(zips) * SLICES_PER_PARTICIPANT * N_FRAMES)
    return {"decode": rates["decode"], "harp": rates["harp"], "bytes_per_frame": frame_bytes,
            "participants": participants, "repeats": repeats}


def project(participants: int, nodes: int, cores: int, s3_gbit: float, target_s: float,
            frame_bytes: float, decode: float, harp: float) -> dict:
    """Stage times for the cohort from ``decode`` (frames/core-s) and ``harp``
    (frames/CPU-s) rates; see the module docstring."""
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
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    rates = measure_rates(repeats=args.repeats)
    common = (args.participants, args.nodes, args.cores, args.s3_gbit_per_node, args.target_s,
              rates["bytes_per_frame"])
    out = project(*common, statistics.median(rates["decode"]), statistics.median(rates["harp"]))
    slowest = project(*common, min(rates["decode"]), min(rates["harp"]))
    out["projected_seconds_at_slowest_repeat"] = slowest["projected_seconds"]
    out["rates_per_repeat"] = {"decode_frames_per_core_s": rates["decode"],
                               "harp_frames_per_cpu_s": rates["harp"],
                               "cohort_participants": rates["participants"],
                               "cohort_family": "thorax"}
    out["machine"], out["commit"] = machine(), commit()
    print(json.dumps(out, indent=1))
    save_json(out, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
