"""``raytag demo``: a small synthetic cohort end to end on this machine.

Current stage: ``raytag synth`` writes UK Biobank-style zips (plus one corrupt zip) with a
truth table -> each zip is ingested -> ROI box and strain from the landmarks -> results
table as Parquet -> a one-screen summary beside the UK Biobank reference values.

Until the networks (issue 4) and the Ray cohort pipeline (issue 6) land, the landmarks are
the generator's exact truth, not a prediction; the output and ``model_version`` say so.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from raytag import geometry
from raytag.constants import N_FRAMES, N_LANDMARKS, SLICE_LABELS
from raytag.io import read_participant, storage
from raytag.phantom.cohort import SynthConfig, generate_participant
from raytag.phantom.params import STRAIN_TARGETS
from raytag.pipeline.synth import synthesise
from raytag.results import result_row, rows_to_table
from raytag.strain import compute_strains

__all__ = ["run_demo"]

MODEL_VERSION = "truth-landmarks (no network yet)"


def run_demo(
    out_dir: str = "raytag-demo",
    n_participants: int = 4,
    seed: int = 0,
    echo: Callable[[str], None] = print,
) -> dict:
    """Run the demo; returns the summary (also printed through ``echo``)."""
    t0 = time.perf_counter()
    cohort = storage.join(out_dir, "cohort")
    echo(f"[1/3] raytag synth: {n_participants} participants + 1 corrupt zip -> {cohort}")
    synth = synthesise(cohort, SynthConfig(n_participants, seed=seed), workers=1,
                       echo=lambda s: None)
    broken = generate_participant(n_participants, SynthConfig(n_participants + 1, seed=seed,
                                                              faults={"corrupt_zip": 1.0}))
    storage.write_bytes(storage.join(cohort, broken.name), broken.data)
    truth_rows = storage.read_table(synth["truth"]).to_pylist()
    truth = {(r["eid"], r["slice_index"]): r for r in truth_rows}

    zips = storage.list_files(cohort, ".zip")
    echo(f"[2/3] ingest -> ROI box -> strain for {len(zips)} zips")
    rows = []
    for n, uri in enumerate(zips, 1):
        for rec in read_participant(uri):
            if not rec.ok:
                rows.append(result_row(rec, model_version=MODEL_VERSION))
                continue
            flat = truth[(rec.eid, rec.slice_index)]["landmarks_px"]
            points = np.array(flat, dtype=float).reshape(N_FRAMES, N_LANDMARKS, 2)
            strains = compute_strains(geometry.px_to_mm(points, rec.pixel_spacing_mm),
                                      frame_valid=rec.frame_valid)
            rows.append(result_row(rec, strains, points, geometry.roi_box(points[0]),
                                   MODEL_VERSION))
        echo(f"      {n}/{len(zips)} {storage.basename(uri)}")

    table = rows_to_table(rows)
    out_file = storage.join(out_dir, "results", "results.parquet")
    storage.write_table(table, out_file)
    echo(f"[3/3] wrote {table.num_rows} rows to {out_file}")
    summary = _summarise(table)
    summary["seconds"] = round(time.perf_counter() - t0, 2)
    echo(_format_summary(summary))
    return summary


def _summarise(table) -> dict:
    rows = table.to_pylist()
    by_status: dict[str, int] = {}
    for r in rows:
        by_status[r["status"]] = by_status.get(r["status"], 0) + 1
    levels = {}
    for idx, label in SLICE_LABELS.items():
        ok = [r for r in rows if r["slice_label"] == label and r["status"] == "ok"]
        if ok:
            levels[label] = {
                "n": len(ok),
                "es_circ_global": float(np.mean([r["es_circ_global"] for r in ok])),
                "es_radial": float(np.mean([r["es_radial"] for r in ok])),
                "ukb_circ_global": STRAIN_TARGETS[idx]["circ_global"][0],
                "ukb_radial": STRAIN_TARGETS[idx]["radial"][0],
            }
    failures = sorted({r["error"] for r in rows if r["status"] == "failed"})
    return {"rows": len(rows), "by_status": by_status, "levels": levels, "failures": failures}


def _format_summary(s: dict) -> str:
    lines = [
        "",
        f"raytag demo: {s['rows']} slice rows, status {s['by_status']}, {s['seconds']} s",
        f"  landmarks: {MODEL_VERSION}",
        "  level     n   ES circ (global)   ES radial   | UK Biobank mean: circ   radial",
    ]
    for label, v in s["levels"].items():
        lines.append(
            f"  {label:7s} {v['n']:3d}   {v['es_circ_global']:+.3f}             "
            f"{v['es_radial']:+.3f}      |                  {v['ukb_circ_global']:+.3f}  "
            f"{v['ukb_radial']:+.3f}"
        )
    for f in s["failures"]:
        lines.append(f"  failed: {f}")
    return "\n".join(lines)
