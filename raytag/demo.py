"""``raytag demo``: a small synthetic cohort end to end on this machine.

Foundation stage: synthesise UK Biobank-style zips (with one deliberately broken
participant) -> ingest each zip -> ROI box from the ED landmarks ->
strain -> results table as Parquet, then a one-screen summary that checks the measured
strain against the phantom's closed-form truth.

Until the networks (issue 4) and the Ray pipeline (issue 6) land, the landmarks are the
phantom's exact truth, not a prediction: the demo exercises ingest, geometry, strain and
the results contract, and says so in its output and in ``model_version``.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from raytag import geometry
from raytag.constants import SLICE_LABELS, SYNTHETIC_EID_START
from raytag.io import read_participant, storage
from raytag.io.ukb_writer import SeriesSpec, participant_zip, zip_name
from raytag.phantom import RingPhantom
from raytag.results import result_row, rows_to_table
from raytag.strain import compute_strains

__all__ = ["synthesise_cohort", "run_demo"]

MODEL_VERSION = "truth-landmarks (no network yet)"

# Per slice level: endocardial and epicardial radius at ED (mm), apex smaller.
_LEVEL_RADII_MM = {1: (24.0, 33.0), 2: (21.0, 30.0), 3: (15.0, 23.0)}


def _phantom(slice_index: int, rng: np.random.Generator, spacing_mm: float) -> RingPhantom:
    r_endo, r_epi = (v / spacing_mm for v in _LEVEL_RADII_MM[slice_index])
    return RingPhantom(
        center_xy=(87 + rng.uniform(-8, 8), 120 + rng.uniform(-10, 10)),
        r_endo_px=r_endo * rng.uniform(0.9, 1.1),
        r_epi_px=r_epi * rng.uniform(0.95, 1.05),
        endo_shortening=rng.uniform(0.2, 0.35),
        twist_deg=rng.uniform(-10, 10) * (1 if slice_index == 1 else -1),
        theta0_deg=143 + rng.uniform(-10, 10),
        es_frame=int(rng.integers(6, 9)),
    )


def synthesise_cohort(
    out_dir: str, n_participants: int, seed: int = 0, broken: int = 1
) -> dict[tuple[str, int], RingPhantom]:
    """Write ``n_participants`` zips (+ ``broken`` zero-byte ones) under ``out_dir``.

    Returns the phantom of every good slice keyed by ``(eid, slice_index)``: the truth.
    """
    rng = np.random.default_rng(seed)
    spacing = 1.3671875
    truth = {}
    for i in range(n_participants):
        eid = str(SYNTHETIC_EID_START + i)
        specs = []
        for idx in SLICE_LABELS:
            ph = _phantom(idx, rng, spacing)
            truth[(eid, idx)] = ph
            specs.append(SeriesSpec(idx, ph.frames(rng), pixel_spacing_mm=(spacing, spacing),
                                    position_mm=-10.0 * idx))
        name, data = participant_zip(eid, specs, rng=rng)
        storage.write_bytes(storage.join(out_dir, name), data)
    for j in range(broken):
        eid = SYNTHETIC_EID_START + n_participants + j
        storage.write_bytes(storage.join(out_dir, zip_name(eid)), b"")
    return truth


def run_demo(
    out_dir: str = "raytag-demo",
    n_participants: int = 4,
    seed: int = 0,
    echo: Callable[[str], None] = print,
) -> dict:
    """Run the demo; returns the summary (also printed through ``echo``)."""
    t0 = time.perf_counter()
    cohort = storage.join(out_dir, "cohort")
    echo(f"[1/3] synthesising {n_participants} participants (+1 broken zip) in {cohort}")
    truth = synthesise_cohort(cohort, n_participants, seed)
    zips = storage.list_files(cohort, ".zip")

    echo(f"[2/3] ingest -> ROI box -> strain for {len(zips)} zips")
    rows, errors = [], []
    for n, uri in enumerate(zips, 1):
        for rec in read_participant(uri):
            if not rec.ok:
                rows.append(result_row(rec, model_version=MODEL_VERSION))
                continue
            points = truth[(rec.eid, rec.slice_index)].landmarks()
            box = geometry.roi_box(points[0])
            strains = compute_strains(points, frame_valid=rec.frame_valid)
            rows.append(result_row(rec, strains, points, box, MODEL_VERSION))
            exact = truth[(rec.eid, rec.slice_index)].truth_strains()["rings"]
            errors.append(np.nanmax(np.abs(strains["rings"] - exact)))
        echo(f"      {n}/{len(zips)} {storage.basename(uri)}")

    table = rows_to_table(rows)
    out_file = storage.join(out_dir, "results", "results.parquet")
    storage.write_table(table, out_file)
    echo(f"[3/3] wrote {table.num_rows} rows to {out_file}")

    summary = _summarise(table)
    summary["max_abs_ring_strain_error_vs_closed_form"] = float(max(errors, default=np.nan))
    summary["seconds"] = round(time.perf_counter() - t0, 2)
    echo(_format_summary(summary))
    return summary


def _summarise(table) -> dict:
    rows = table.to_pylist()
    by_status: dict[str, int] = {}
    for r in rows:
        by_status[r["status"]] = by_status.get(r["status"], 0) + 1
    levels = {}
    for label in SLICE_LABELS.values():
        ok = [r for r in rows if r["slice_label"] == label and r["status"] == "ok"]
        if ok:
            levels[label] = {
                "n": len(ok),
                "es_circ_global": float(np.mean([r["es_circ_global"] for r in ok])),
                "es_radial": float(np.mean([r["es_radial"] for r in ok])),
            }
    failures = sorted({r["error"] for r in rows if r["status"] == "failed"})
    return {"rows": len(rows), "by_status": by_status, "levels": levels, "failures": failures}


def _format_summary(s: dict) -> str:
    lines = [
        "",
        f"raytag demo: {s['rows']} slice rows, status {s['by_status']}, {s['seconds']} s",
        f"  landmarks: {MODEL_VERSION}",
        "  level    n   ES circ (global)   ES radial",
    ]
    for label, v in s["levels"].items():
        lines.append(f"  {label:7s} {v['n']:2d}   {v['es_circ_global']:+.3f}            "
                     f"{v['es_radial']:+.3f}")
    lines.append(
        "  strain vs closed-form truth: max |error| = "
        f"{s['max_abs_ring_strain_error_vs_closed_form']:.1e}"
    )
    for f in s["failures"]:
        lines.append(f"  failed: {f}")
    return "\n".join(lines)
