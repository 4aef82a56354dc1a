"""Transfer benchmark: a weights pair on every generator family, held-out families first.

For each family a test cohort is generated on its own seed (never used for training:
training cohorts use seeds below 9000), and the same slices are measured in several
settings so that localisation and tracking errors stay separate:

- ``end_to_end/<tracker>``: localiser (-> box refinement, ``--refine-passes``) -> networks
  -> tracker (``network``, ``harp``, ``hybrid`` or ``tags``), as ``raytag run`` does;
- ``truth_box/<tracker>``: the same with the truth ROI box (localiser out of the loop);
- ``truth_ed/harp``: HARP from the truth ED landmarks (networks out of the loop: the
  tracker's own accuracy, the phase-based tracking issue's acceptance).

Per setting: LV centre error (median, mm), ROI IoU, landmark RMSE at ED and ES (mm), ES
global and midwall circumferential and radial strain error (bias, SD), the truth's SD and
Pearson r, seconds per slice. A family is ``held_out`` when ``--trained-on`` does not
name it (the headline: trained and tuned without it).

    python benchmarks/transfer.py --weights raytag/models/weights --trained-on disc,thorax \\
        --participants 20 --json benchmarks/results/transfer.json
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
from provenance import commit, machine, save_json  # benchmarks/provenance.py (run as a script)

from raytag import geometry
from raytag.io import read_participant
from raytag.io.labelled import LabelledSlice
from raytag.metrics import summarise
from raytag.models.weights import load_predictor
from raytag.phantom.cohort import SynthConfig, generate_participant
from raytag.phantom.families import FAMILIES
from raytag.pipeline.stages import qc_flags_for
from raytag.tracking.measure import TRACKERS, measure_slice

#: Flags whose rows a careful analysis drops (docs/results.md).
DROP_FLAGS = {"implausible_circ_strain", "implausible_radial_strain", "no_contraction",
              "landmarks_outside_roi", "phase_inconsistent", "tags_faded_early",
              "ed_geometry_unconfirmed", "roi_centre_disagrees", "cavity_small_for_tags"}

#: Test seeds per family (fixed, never used to train or tune).
TEST_SEEDS = {"disc": 9301, "thorax": 9302, "patchwork": 9303}
KEYS = ("kept_fraction", "centre_error_mm_median", "iou_mean", "rmse_ed_mm_mean", "rmse_es_mm_mean",
        "es_circ_global_bias", "es_circ_global_sd", "es_circ_global_true_sd",
        "es_circ_global_r", "es_circ_midwall_bias", "es_circ_midwall_sd", "es_radial_bias",
        "es_radial_sd", "es_radial_true_sd", "es_radial_r", "n_slices", "seconds_per_slice")


def labelled_cohort(family: str, participants: int, seed: int) -> list[LabelledSlice]:
    """``ok`` slices of a fresh cohort with their truth (generated in memory)."""
    config = SynthConfig(participants, seed=seed, family=family)
    items = []
    for i in range(participants):
        gp = generate_participant(i, config)
        truth = {r["slice_index"]: r for r in gp.truth_rows}
        for rec in read_participant((gp.name, gp.data)):
            row = truth.get(rec.slice_index)
            if rec.ok and row is not None:
                pts = np.array(row["landmarks_px"], dtype=np.float64).reshape(-1, 168, 2)
                items.append(LabelledSlice(rec, pts, np.array(row["bbox_px"]),
                                           int(row["es_frame"]), row.get("group")))
    return items


def _metrics(items, landmarks, boxes, seconds) -> dict:
    spacing = np.stack([it.record.pixel_spacing_mm for it in items])
    m = summarise(geometry.px_to_mm(np.stack(landmarks), spacing),
                  geometry.px_to_mm(np.stack([it.landmarks_px for it in items]), spacing),
                  np.stack([it.record.frame_valid for it in items]),
                  np.array([it.es_frame for it in items]),
                  None if boxes is None else np.stack(boxes),
                  np.stack([it.bbox_px for it in items]))
    m["seconds_per_slice"] = seconds / len(items)
    return {k: m.get(k) for k in KEYS}


def evaluate_family(predictor, items, trackers, batch: int = 8) -> dict:
    """Every setting on the same slices (see the module docstring)."""
    out = {}
    true_boxes = np.stack([it.bbox_px for it in items])
    for mode in ("end_to_end", "truth_box"):
        t0 = time.perf_counter()
        nets = []
        for i in range(0, len(items), batch):
            recs = [it.record for it in items[i : i + batch]]
            nets.append(predictor.predict_network(
                recs, None if mode == "end_to_end" else true_boxes[i : i + batch]))
        net_seconds = time.perf_counter() - t0
        boxes = [b for n in nets for b in n.bbox_px]
        lms = [p for n in nets for p in n.landmarks_px]
        # the ED-geometry network's landmarks, where the weights have one (as raytag run)
        eds = [e for n in nets for e in (n.ed_px if n.ed_px is not None
                                         else [None] * len(n.bbox_px))]
        for tracker in trackers:
            t0 = time.perf_counter()
            measured = [measure_slice(it.record.frames, it.record.frame_valid,
                                      it.record.pixel_spacing_mm, lm, tracker, ed, box)
                        for it, lm, ed, box in zip(items, lms, eds, boxes, strict=True)]
            tracked = [m.landmarks_px for m in measured]
            seconds = net_seconds + time.perf_counter() - t0
            out[f"{mode}/{tracker}"] = _metrics(items, tracked, boxes, seconds)
            if mode == "end_to_end":
                # what a user who drops flagged rows gets: the pipeline's measurement flags
                # and the tag-quality flags, as raytag run would set them
                keep = [i for i, m in enumerate(measured)
                        if not (set(qc_flags_for(m.strains, m.landmarks_px, boxes[i]))
                                | set(m.qc_flags)) & DROP_FLAGS]
                if keep:
                    m = _metrics([items[i] for i in keep], [tracked[i] for i in keep],
                                 [boxes[i] for i in keep], seconds)
                    m["kept_fraction"] = len(keep) / len(items)
                    out[f"{mode}/{tracker}_unflagged"] = m
    t0 = time.perf_counter()
    harp = [measure_slice(it.record.frames, it.record.frame_valid, it.record.pixel_spacing_mm,
                          it.landmarks_px, "harp").landmarks_px for it in items]
    out["truth_ed/harp"] = _metrics(items, harp, None, time.perf_counter() - t0)
    return out


def table(result: dict) -> str:
    rows = ["| family | setting | centre mm | IoU | RMSE ED / ES mm | ES circ error (truth SD, r) "
            "| ES radial error (truth SD, r) |", "|---|---|---|---|---|---|---|"]
    for fam, data in result["families"].items():
        name = f"**{fam}** (held out)" if data["held_out"] else fam
        for setting, m in data["settings"].items():
            iou = "-" if m["iou_mean"] is None else f"{m['iou_mean']:.3f}"
            rows.append(
                f"| {name} | {setting} | {m['centre_error_mm_median']:.1f} | {iou} | "
                f"{m['rmse_ed_mm_mean']:.2f} / {m['rmse_es_mm_mean']:.2f} | "
                f"{m['es_circ_global_bias']:+.3f} +- {m['es_circ_global_sd']:.3f} "
                f"({m['es_circ_global_true_sd']:.3f}, {m['es_circ_global_r']:.2f}) | "
                f"{m['es_radial_bias']:+.3f} +- {m['es_radial_sd']:.3f} "
                f"({m['es_radial_true_sd']:.3f}, {m['es_radial_r']:.2f}) |")
    return "\n".join(rows)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--weights", default=None, help="weights folder (default: shipped)")
    ap.add_argument("--trained-on", required=True,
                    help="families the weights were trained (and tuned) on, e.g. disc,thorax")
    ap.add_argument("--families", default=",".join(FAMILIES))
    ap.add_argument("--trackers", default=",".join(TRACKERS))
    ap.add_argument("--participants", type=int, default=20)
    ap.add_argument("--seed-offset", type=int, default=0,
                    help="added to every test seed (a second, independent draw)")
    ap.add_argument("--refine-passes", type=int, default=None,
                    help="box-refinement passes (default: the shipped default)")
    ap.add_argument("--localiser-views", type=int, default=None,
                    help="1 or 8 views for the localiser (default: the shipped default)")
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    trained = set(args.trained_on.split(","))
    predictor = load_predictor(args.weights, device="cpu", refine_passes=args.refine_passes,
                               localiser_views=args.localiser_views)
    result = {
        "machine": machine(), "commit": commit(), "model_version": predictor.model_version,
        "trained_on": sorted(trained), "participants_per_family": args.participants,
        "families": {},
    }
    for fam in args.families.split(","):
        t0 = time.perf_counter()
        seed = TEST_SEEDS[fam] + args.seed_offset
        items = labelled_cohort(fam, args.participants, seed)
        print(f"{fam}: {len(items)} slices generated ({time.perf_counter() - t0:.0f} s)",
              file=sys.stderr)
        result["families"][fam] = {
            "held_out": fam not in trained, "seed": seed,
            "settings": evaluate_family(predictor, items, args.trackers.split(",")),
        }
        print(f"{fam}: done ({time.perf_counter() - t0:.0f} s)", file=sys.stderr)
    print(table(result))
    save_json(result, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
