"""``raytag demo``: a synthetic cohort through the full Ray pipeline on this machine.

1. ``raytag synth``: ~24 UK Biobank-style participants of the realistic ``thorax`` family
   (another with ``--family``), a few with injected faults;
2. ``raytag run``: Ray Data decode -> networks (actor pool) -> tracker, strain and tag QC ->
   Parquet in ``<out>/run/results``, on a local Ray, with the shipped weights;
3. a one-screen summary: rows by status, failure reasons, throughput, and agreement with
   the generator's truth (ES circumferential and radial strain, bias +- SD per region);
4. ``raytag report`` against the truth, with the generator's covariate group as Table 3's
   flag: ``<out>/report/report.html``.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from raytag import logs
from raytag.analysis import columns, tables
from raytag.analysis.report import build_report
from raytag.constants import N_FRAMES, SLICE_LABELS, TRUTH_FILE
from raytag.io import storage
from raytag.models.weights import UNTRAINED
from raytag.phantom.cohort import SynthConfig
from raytag.pipeline.run import read_results, run_cohort
from raytag.pipeline.synth import synthesise

__all__ = ["run_demo", "agreement"]

DEMO_FAULTS = {"corrupt_zip": 0.05, "missing_slice": 0.05, "truncated_file": 0.04,
               "fewer_frames": 0.05, "duplicate_series": 0.05}


def agreement(results_uri: str, truth_uri: str) -> dict:
    """Per region: n and ES strain error (result - truth) bias and SD for ok slices.

    The report's Table 2 rows (:func:`raytag.analysis.tables.agreement_table`), cut down to
    the two strains the summary prints; an SD of a single slice shows as 0.
    """
    pairs, _ = columns.pair(columns.load_slices(results_uri), columns.load_slices(truth_uri))
    rows = {(r["region"], r["column"]): r for r in tables.agreement_table(pairs)}
    out = {}
    for label in SLICE_LABELS.values():
        n = int(np.sum(pairs.label == label))
        if not n:
            continue
        out[label] = {"n": n} | {
            col: (rows[label, col]["bias"],
                  rows[label, col]["precision"] if rows[label, col]["n"] > 1 else 0.0)
            for col in ("es_circ_global", "es_radial")}
    return out


def run_demo(
    out_dir: str = "raytag-demo",
    n_participants: int = 24,
    seed: int = 0,
    weights: str | None = None,
    family: str = "thorax",
    echo: Callable[[str], None] = logs.echo,
) -> dict:
    """Run the demo; returns the summary (also printed through ``echo``)."""
    t0 = time.perf_counter()
    cohort, results_uri = storage.join(out_dir, "cohort"), storage.join(out_dir, "run")
    echo(f"[1/4] raytag synth: {n_participants} {family} participants with injected faults "
         f"-> {cohort}")
    synth = synthesise(cohort, SynthConfig(n_participants, seed=seed, faults=DEMO_FAULTS,
                                           family=family), workers=1)
    echo(f"      faults: {synth['faults'] or 'none drawn'}")
    echo(f"[2/4] raytag run: Ray Data pipeline -> {results_uri}")
    t_run = time.perf_counter()
    # engine="ray": the demo shows the cluster pipeline, even for a cohort small enough
    # that `raytag run` would process it in one process
    summary = run_cohort(cohort, results_uri, weights=weights, engine="ray",
                         echo=lambda s: echo("      " + s))
    run_seconds = time.perf_counter() - t_run
    results = read_results(results_uri)
    truth = storage.read_table(storage.join(cohort, TRUTH_FILE))
    frames = sum(min(n, N_FRAMES) for n in results.column("n_frames").to_pylist() if n)
    summary |= {
        "agreement": agreement(results_uri, storage.join(cohort, TRUTH_FILE)),
        "run_seconds": round(run_seconds, 2),
        "slices_per_s": round(summary["rows"] / run_seconds, 2),
        "frames_per_s": round(frames / run_seconds, 1),
        "untrained": any(UNTRAINED in v for v in summary["model_versions"]),
        "results": results_uri,
    }
    echo("[3/4] summary")
    echo(_format(summary))
    groups_uri = storage.join(out_dir, "groups.csv")
    storage.write_bytes(groups_uri, _groups_csv(truth))
    echo("[4/4] raytag report: tables and figures against the truth")
    report = build_report(results_uri, storage.join(out_dir, "report"),
                          reference_uri=storage.join(cohort, TRUTH_FILE), groups_uri=groups_uri,
                          title=f"raytag demo: {n_participants} synthetic participants",
                          echo=logs.log.debug)
    summary["report"] = report["html"]
    summary["seconds"] = round(time.perf_counter() - t0, 2)
    echo(f"      report: {report['html']}")
    echo(f"raytag demo: done in {summary['seconds']} s")
    return summary


def _groups_csv(truth) -> bytes:
    """Table 3's groups file from the generator's covariate group (one flag: impaired)."""
    seen = {}
    for r in truth.select(["eid", "group"]).to_pylist():
        seen.setdefault(r["eid"], r["group"] == "impaired")
    return ("eid,impaired\n" + "".join(f"{e},{int(v)}\n" for e, v in seen.items())).encode()


def _format(s: dict) -> str:
    lines = [
        f"raytag demo: {s['participants']} participants, {s['rows']} slice rows, "
        f"status {s['by_status']}, duplicates {s['duplicate_keys']}",
        f"  pipeline: {s['run_seconds']} s ({s['slices_per_s']} slices/s, "
        f"{s['frames_per_s']} frames/s incl. Ray start-up), {s['model_actors']} model actor(s)",
        f"  model: {', '.join(s['model_versions'])}",
    ]
    if s["untrained"]:
        lines.append("  WARNING: UNTRAINED weights (none shipped yet): strain agreement below "
                     "is meaningless until trained weights are installed")
    lines.append("  failures: " + (", ".join(f"{k} x{v}" for k, v in
                                             s["failure_reasons"].items()) or "none"))
    lines.append("  agreement with truth (result - truth at ES), bias +- SD:")
    for label, a in s["agreement"].items():
        (cb, cs), (rb, rs) = a["es_circ_global"], a["es_radial"]
        lines.append(f"    {label:7s} n={a['n']:3d}  circ {cb:+.3f} +- {cs:.3f}   "
                     f"radial {rb:+.3f} +- {rs:.3f}")
    return "\n".join(lines)
