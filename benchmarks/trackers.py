"""Tracker benchmark (phase-based tracking issue): every tracker on every generator family.

Settings per family (each on the same fresh test cohort, seeds from ``transfer.TEST_SEEDS``,
never used to train or tune anything):

- ``truth_ed/harp``: HARP from the truth ED landmarks (the tracker alone; the issue's
  acceptance: RMSE at ES <= 1.5 mm, ES global circumferential bias within +-0.01, SD <= 0.02),
  and ``truth_ed/harp_unflagged``: the same on the slices without a tag-quality QC flag;
- ``truth_box/<tracker>`` and ``end_to_end/<tracker>`` for ``network``, ``harp`` and
  ``hybrid`` (with ``--weights``; see ``benchmarks/transfer.py``, whose evaluation this
  reuses).

Columns: landmark RMSE at ED/ES (mm), ES global circumferential and radial strain error
(bias +- SD, truth SD), seconds per slice (wall, this process). Separately the HARP stage's
throughput: frames per second of CPU time on one thread (``OMP_NUM_THREADS=1``; the issue asks
for >= 200 frames/s per core), measured over every slice of every family.

    OMP_NUM_THREADS=1 python benchmarks/trackers.py --participants 20 \\
        --weights raytag/models/weights --trained-on disc,thorax \\
        --json benchmarks/results/trackers.json
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from provenance import commit, save_json  # noqa: E402
from transfer import (  # noqa: E402
    TEST_SEEDS,
    _metrics,
    evaluate_family,
    labelled_cohort,
)

from raytag.phantom.families import FAMILIES  # noqa: E402
from raytag.tracking.harp import track_harp  # noqa: E402
from raytag.tracking.measure import TRACKERS, measure_slice  # noqa: E402


def harp_throughput(items, repeats: int = 2, refine: bool = True) -> dict:
    """HARP frames per CPU second (this thread) over ``items``, best of ``repeats``
    (``refine``: with the registration refinement, as the pipeline runs it)."""
    frames = int(sum(int(it.record.frame_valid.sum()) for it in items))
    best = float("inf")
    for _ in range(repeats):
        t0 = time.process_time()
        for it in items:
            track_harp(it.record.frames, it.record.frame_valid, it.landmarks_px[0],
                       refine=refine)
        best = min(best, time.process_time() - t0)
    return {"frames": frames, "cpu_seconds": best, "frames_per_cpu_second": frames / best}


#: The tag-quality flags a slice can earn from its own images (``trackers_disagree`` is
#: left out: from the truth ED landmarks the "network" track is the truth itself).
TAG_FLAGS = ("phase_inconsistent", "tags_faded_early")


def truth_ed_harp(items) -> dict[str, dict]:
    """``truth_ed/harp`` on all slices, and on the slices without a tag-quality flag
    (``truth_ed/harp_unflagged``: what a user who drops flagged rows gets);
    ``truth_ed/harp_phase_only``: the phase field alone, without the registration
    refinement (what it adds)."""
    t0 = time.perf_counter()
    phase_only = [track_harp(it.record.frames, it.record.frame_valid, it.landmarks_px[0],
                             refine=False).landmarks for it in items]
    phase_seconds = time.perf_counter() - t0
    t0 = time.perf_counter()
    measured = [measure_slice(it.record.frames, it.record.frame_valid,
                              it.record.pixel_spacing_mm, it.landmarks_px, "harp")
                for it in items]
    seconds = time.perf_counter() - t0
    out = {"truth_ed/harp": _metrics(items, [m.landmarks_px for m in measured], None, seconds),
           "truth_ed/harp_phase_only": _metrics(items, phase_only, None, phase_seconds)}
    keep = [i for i, m in enumerate(measured) if not set(m.qc_flags) & set(TAG_FLAGS)]
    if keep:
        out["truth_ed/harp_unflagged"] = _metrics(
            [items[i] for i in keep], [measured[i].landmarks_px for i in keep], None,
            seconds * len(keep) / len(items))
    return out


def table(result: dict) -> str:
    rows = ["| family | setting | slices | RMSE ED / ES mm | ES circ error (truth SD) "
            "| ES radial error (truth SD) | s/slice |", "|---|---|---|---|---|---|---|"]
    for fam, data in result["families"].items():
        name = f"**{fam}** (held out)" if data.get("held_out") else fam
        for setting, m in data["settings"].items():
            rows.append(
                f"| {name} | {setting} | {m['n_slices']} "
                f"| {m['rmse_ed_mm_mean']:.2f} / {m['rmse_es_mm_mean']:.2f} "
                f"| {m['es_circ_global_bias']:+.3f} +- {m['es_circ_global_sd']:.3f} "
                f"({m['es_circ_global_true_sd']:.3f}) "
                f"| {m['es_radial_bias']:+.3f} +- {m['es_radial_sd']:.3f} "
                f"({m['es_radial_true_sd']:.3f}) | {m['seconds_per_slice']:.3f} |")
    speed = result["harp_throughput"]
    rows.append(f"\nHARP stage: {speed['frames_per_cpu_second']:.0f} frames per CPU second "
                f"(one thread, {speed['frames']} frames)")
    if "harp_throughput_phase_only" in result:
        rows.append(f"without the refinement: "
                    f"{result['harp_throughput_phase_only']['frames_per_cpu_second']:.0f}")
    return "\n".join(rows)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--weights", default=None,
                    help="weights folder for the network settings (omit: truth_ed/harp only)")
    ap.add_argument("--trained-on", default="",
                    help="families the weights were trained (and tuned) on, e.g. disc,thorax")
    ap.add_argument("--families", default=",".join(FAMILIES))
    ap.add_argument("--trackers", default=",".join(TRACKERS))
    ap.add_argument("--participants", type=int, default=20)
    ap.add_argument("--seed-offset", type=int, default=0,
                    help="added to every test seed (a second, independent draw)")
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    trained = {f for f in args.trained_on.split(",") if f}
    predictor = None
    if args.weights:
        from raytag.models.weights import load_predictor
        predictor = load_predictor(args.weights, device="cpu")
    result = {
        "machine": {"cpus": os.cpu_count(), "omp_num_threads": os.environ.get("OMP_NUM_THREADS")},
        "commit": commit(), "participants_per_family": args.participants,
        "model_version": None if predictor is None else predictor.model_version,
        "trained_on": sorted(trained), "families": {},
    }
    everything = []
    for fam in args.families.split(","):
        seed = TEST_SEEDS[fam] + args.seed_offset
        items = labelled_cohort(fam, args.participants, seed)
        everything += items
        settings = truth_ed_harp(items)
        if predictor is not None:
            settings.update({k: v for k, v in evaluate_family(
                predictor, items, args.trackers.split(",")).items() if k != "truth_ed/harp"})
        result["families"][fam] = {"held_out": bool(trained) and fam not in trained,
                                   "seed": seed, "settings": settings}
        print(f"{fam}: {len(items)} slices done", file=sys.stderr)
    result["harp_throughput"] = harp_throughput(everything)
    result["harp_throughput_phase_only"] = harp_throughput(everything, refine=False)
    print(table(result))
    save_json(result, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
