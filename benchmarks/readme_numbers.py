"""The README's measured figures, rendered from ``benchmarks/results/*.json`` (one source).

    python benchmarks/readme_numbers.py --check    # exit 1 if the README differs
    python benchmarks/readme_numbers.py --write    # rewrite the README's marked blocks

The README holds two generated blocks, between ``<!-- accuracy:begin -->`` /
``<!-- accuracy:end -->`` and ``<!-- benchmarks:begin -->`` / ``<!-- benchmarks:end -->``.
Every number in them is read here from a results file written by a script in
``benchmarks/``, so a README figure can never drift from its measurement (``--check`` is a
test). A benchmark without a results file shows as "not measured at this commit".
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS = os.path.join(HERE, "results")
README = os.path.join(os.path.dirname(HERE), "README.md")


def _load(name: str) -> dict | None:
    path = os.path.join(RESULTS, name)
    if not os.path.isfile(path):
        return None
    with open(path) as f:
        return json.load(f)


def _pm(m: dict, key: str) -> str:
    return (f"{m[key + '_bias']:+.3f} +- {m[key + '_sd']:.3f} (truth SD "
            f"{m[key + '_true_sd']:.3f}, r {m[key + '_r']:.2f})")


def accuracy_block() -> str:
    lines = []
    t = _load("transfer.json")
    if t is None:
        lines.append("End-to-end accuracy on held-out data: not measured at this commit "
                     "(`benchmarks/transfer.py`).")
    else:
        lines += [
            f"End to end on synthetic test cohorts (weights `{t['model_version']}`, trained "
            f"on {', '.join(t['trained_on'])}; test seeds never used to train or tune; "
            f"{t['participants_per_family']} participants per family; "
            "`benchmarks/transfer.py`, `benchmarks/results/transfer.json`). **Held out** "
            "= a family the networks never saw: the number that counts.",
            "",
            "| family | setting | ROI IoU | landmark RMSE ED / ES (mm) | ES circ error, bias "
            "+- SD | ES radial error, bias +- SD |",
            "|---|---|---|---|---|---|",
        ]
        for fam, data in t["families"].items():
            name = f"**{fam} (held out)**" if data["held_out"] else f"{fam} (trained on)"
            for setting in ("end_to_end/tags", "end_to_end/tags_unflagged", "end_to_end/harp",
                            "end_to_end/network", "truth_ed/harp"):
                m = data["settings"].get(setting)
                if m is None:
                    continue
                iou = "-" if m["iou_mean"] is None else f"{m['iou_mean']:.3f}"
                shown = setting if not m.get("kept_fraction") else \
                    f"{setting} ({100 * m['kept_fraction']:.0f}% of slices)"
                lines.append(f"| {name} | {shown} | {iou} | {m['rmse_ed_mm_mean']:.2f} / "
                             f"{m['rmse_es_mm_mean']:.2f} | {_pm(m, 'es_circ_global')} | "
                             f"{_pm(m, 'es_radial')} |")
        lines += ["", "`end_to_end/tags` is what `raytag run` does by default (localiser -> "
                  "ED geometry from tag persistence, no training -> HARP); `end_to_end/harp` "
                  "takes the ED geometry from the ED-geometry network instead; "
                  "`..._unflagged`: the same without the rows "
                  "raytag flags (implausible strain, landmarks outside the box, tag-phase "
                  "or fading flags), what a careful analysis keeps; `end_to_end/network` is "
                  "the paper's pipeline; `truth_ed/harp` starts HARP from the true ED "
                  "landmarks (the tracker alone). An error SD at or above the truth's SD "
                  "means no skill beyond predicting the cohort mean."]
    return "\n".join(lines)


def benchmarks_block() -> str:
    rows = ["Each figure comes from one run of the named script on the machine it records "
            "(here: 2-core x86_64, no GPU); ratios are measured within one run.", "",
            "| what | figure | script (results file) |", "|---|---|---|"]
    d = _load("decode_speed.json")
    if d:
        fps = d["per_second_median"]["read_participant"]
        rows.append(f"| decoding tagging zips, one core | {fps:.0f} "
                    f"frames/s: {d['reader_vs_pydicom']:.2f}x plain pydicom, "
                    f"{d['reader_vs_zlib_floor']:.2f}x the bare zlib inflate floor (median "
                    f"of {d['repeats']} back-to-back pairs, "
                    "{:.2f}-{:.2f}), ".format(*d["reader_vs_zlib_floor_min_max"]) +
                    f"{fps / d['per_second_median']['inflate_isal']:.2f}x ISA-L's (which "
                    "raytag inflates with) | "
                    "`decode_speed.py` |")
    tr = _load("trackers_truth_ed.json")
    if tr:
        alone = tr.get("harp_throughput_phase_only")  # older files: not recorded
        rows.append(f"| HARP tracking stage, one thread | "
                    f"{tr['harp_throughput']['frames_per_cpu_second']:.0f} frames per CPU "
                    "second" + ("" if alone is None else
                                f" with the registration refinement, "
                                f"{alone['frames_per_cpu_second']:.0f} without it") +
                    " | `trackers.py` (`trackers_truth_ed.json`) |")
    p = _load("pipeline_throughput.json")
    if p and "cohorts" in p:
        for n, cohort in p["cohorts"].items():
            by_engine = cohort.get("engines", {"ray": cohort})  # older files: Ray only
            auto = cohort.get("auto_engine")  # older files: not recorded
            for engine, c in by_engine.items():
                picked = " (what `--engine auto` picks here)" if engine == auto else ""
                rows.append(f"| `raytag run --engine {engine}`{picked} vs an in-process loop, "
                            f"{n} participants, whole processes, start-up included | "
                            f"{c['median_ratio_loop_over_run']:.2f}x the loop's throughput "
                            f"(median of {len(c['pairs'])} paired runs; "
                            f"{c['median_run_slices_per_s']:.2f} slices/s) | "
                            "`pipeline_throughput.py` |")
    else:
        rows.append("| `raytag run` vs an in-process loop | not measured at this commit | "
                    "`pipeline_throughput.py` |")
    pm = _load("pipeline_memory.json")
    if pm:
        runs = pm["runs"]
        sizes = " vs ".join(str(x["participants"]) for x in runs)
        pss = " vs ".join(f"{x['peak_pss_mb']:.0f}" for x in runs)
        starts = ", ".join(str(x["model_actors_created"]) for x in runs)
        rows.append(f"| `raytag run` memory, {sizes} participants (this run's processes, "
                    f"PSS) | peak {pss} MB ({pm['peak_pss_ratio_last_over_first']:.2f}x); "
                    f"model actors started: {starts} | `pipeline_memory.py` |")
    else:
        rows.append("| `raytag run` memory as the cohort grows | not measured at this commit | "
                    "`pipeline_memory.py` |")
    nd = _load("pipeline_nodes.json")
    if nd:
        one, two = nd["layouts"]
        apart = not set(two["decode_rows_per_node"]) & set(two["model_rows_per_node"])
        spread = (f"on 2 nodes, decoding ran on {len(two['decode_rows_per_node'])} and the "
                  f"model on {len(two['model_rows_per_node'])}, "
                  f"{'different nodes' if apart else 'sharing a node'} (node ids in the JSON)")
        rows.append(f"| `raytag run` on 2 nodes x 1 CPU vs 1 node x 2 CPUs (same machine, "
                    f"{nd['participants']} participants, one run each) | "
                    f"{nd['two_vs_one']:.2f}x the one-node throughput; {spread} | "
                    "`pipeline_nodes.py` |")
    pr = _load("projection.json")
    if pr:
        a, st = pr["assumptions"], pr["stage_seconds"]
        verdict = "under" if pr["meets_target"] else "over"
        rows.append(
            f"| projection: {a['participants']:,} participants ({pr['frames']:,} frames) on "
            f"{a['nodes']} GPU nodes of {a['cores_per_node']} cores, S3 "
            f"{a['s3_gbit_per_node']:.0f} Gbit/s per node (assumed) | "
            f"{pr['projected_seconds'] / 60:.1f} min (rates: median of "
            f"{len(pr['rates_per_repeat']['harp_frames_per_cpu_s'])} repeats in one run; "
            f"{pr['projected_seconds_at_slowest_repeat'] / 60:.1f} min at the slowest), "
            f"{verdict} the "
            f"{pr['target_seconds'] / 60:.0f} min target; decided by "
            f"{pr['decided_by'].replace('_', ' ')} ({st['cpu_decode_and_track']:.0f} s; S3 "
            f"{st['s3_read']:.0f} s); needs tracking at "
            f"{pr['track_frames_per_cpu_s_needed']:.0f} frames/CPU-s (measured "
            f"{pr['measured']['track_frames_per_cpu_s']:.0f}) and each GPU at "
            f"{pr['gpu_slices_per_s_needed']:.0f} slices/s (not measured) | "
            "`projection.py` |")
    r = _load("report_scale.json")
    if r:
        for run in r["runs"]:
            ref = "with" if run["reference"] else "without"
            rows.append(f"| `raytag report`, {run['rows']:,} rows {ref} a reference | "
                        f"{run['seconds']:.1f} s, peak RSS {run['peak_rss_mb']:.0f} MB | "
                        "`report_scale.py` |")
    h = _load("hostile_inputs.json")
    if h:
        worst_s = max(c["seconds"] for c in h["cases"])
        worst_mb = max(c["peak_rss_mb"] for c in h["cases"])
        rows.append(f"| hostile inputs ({len(h['cases'])} cases: bombs, lying sizes, ...) | "
                    f"each at most {worst_s:.2f} s and {worst_mb:.0f} MB peak RSS | "
                    "`hostile_inputs.py` |")
    s = _load("synth_throughput.json")
    if s:
        rows.append(f"| synthetic cohort generation (`disc`) | "
                    f"{s['generate_and_write_participants_per_s_one_core']:.1f} participants/s "
                    f"on one core, {s['ray_speedup_vs_one_core']:.2f}x with "
                    f"{s['ray_workers']} Ray workers | `synth_throughput.py` |")
    m = _load("mutation_check.json")
    if m:
        caught = sum(1 for x in m if x.get("caught"))
        rows.append(f"| mutation check: deliberate bugs the tests must catch | {caught} of "
                    f"{len(m)} caught | `mutation_check.py` |")
    return "\n".join(rows)


BLOCKS = {"accuracy": accuracy_block, "benchmarks": benchmarks_block}


def render(readme: str) -> str:
    for name, fn in BLOCKS.items():
        pattern = re.compile(rf"(<!-- {name}:begin -->\n).*?(\n<!-- {name}:end -->)", re.S)
        if not pattern.search(readme):
            raise ValueError(f"README has no {name} block")
        readme = pattern.sub(lambda mt, fn=fn: mt.group(1) + fn() + mt.group(2), readme)
    return readme


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    g = ap.add_mutually_exclusive_group(required=True)
    g.add_argument("--check", action="store_true")
    g.add_argument("--write", action="store_true")
    args = ap.parse_args(argv)
    with open(README) as f:
        current = f.read()
    wanted = render(current)
    if args.write:
        with open(README, "w") as f:
            f.write(wanted)
        return 0
    if wanted != current:
        print("README figures differ from benchmarks/results/: run "
              "python benchmarks/readme_numbers.py --write", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
