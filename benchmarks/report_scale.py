"""``raytag report`` at cohort scale: peak memory and time on large results tables.

Builds results tables of N slice rows (every contract column filled, landmarks included:
6,720 floats per row, as ``raytag run`` writes them; 3% failed rows; a few QC flags),
written as a ``raytag run`` output folder (``results/`` + ledger), then runs ``raytag
report`` on each in a fresh process and records wall time and peak RSS (the kernel's
VmHWM of that process). With ``--reference`` the first size also gets a truth table of
the same slices (the landmark-streaming path).

    python benchmarks/report_scale.py --sizes 20000,300000 \
        --json benchmarks/results/report_scale.json
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np
import pyarrow as pa
from provenance import machine, save_json  # benchmarks/provenance.py (run as a script)

from raytag.constants import N_FRAMES, N_LANDMARKS
from raytag.io.ledger import Entry, Ledger, participant_key
from raytag.landmarks import annulus
from raytag.results import RESULTS_SCHEMA
from raytag.strain import CURVE_NAMES

ROWS_PER_FILE = 3000


def _table(start: int, n: int, rng: np.random.Generator, shift: float = 0.0) -> pa.Table:
    """``n`` slice rows (participants ``start // 3`` on), columns as the contract says."""
    idx = np.arange(start, start + n)
    eid = (9_000_000 + idx // 3).astype(str)
    slice_index = idx % 3 + 1
    failed = rng.random(n) < 0.03
    base = annulus((90.0, 120.0), 14.0, 22.0)  # (168, 2) px
    scale = 1 - 0.12 * np.sin(np.pi * np.arange(N_FRAMES) / N_FRAMES)
    lm = (90.0 + (base[None] - 90.0) * scale[:, None, None]).reshape(-1) + shift
    landmarks = np.tile(lm, (n, 1)) + rng.normal(0, 0.5, (n, lm.size))
    curve = -0.2 * np.sin(np.pi * np.arange(N_FRAMES) / N_FRAMES)

    def lists(values, width):
        flat = pa.array(values.ravel(), pa.float64())
        offsets = pa.array(np.arange(0, values.size + 1, width, dtype=np.int32))
        return pa.ListArray.from_arrays(offsets, flat)

    lm_col = lists(landmarks, N_FRAMES * N_LANDMARKS * 2)
    mask = pa.array(failed)
    cols = {
        "eid": pa.array(eid), "instance": pa.array(np.full(n, 2)),
        "slice_index": pa.array(slice_index),
        "slice_label": pa.array(np.array(["basal", "mid", "apical"])[slice_index - 1]),
        "status": pa.array(np.where(failed, "failed", "ok")),
        "error": pa.array([("not a zip archive" if f else None) for f in failed], pa.string()),
        "reason": pa.array([("not_a_zip" if f else None) for f in failed], pa.string()),
        "stage": pa.array([("ingest" if f else None) for f in failed], pa.string()),
        "qc_flags": pa.array([["padded_frames"] if i % 50 == 0 else [] for i in idx],
                             pa.list_(pa.string())),
        "n_frames": pa.array(np.full(n, N_FRAMES)),
        "pixel_spacing_mm": lists(np.full((n, 2), 1.4), 2),
        "bbox_px": lists(np.tile([50.0, 80.0, 130.0, 160.0], (n, 1)) + shift, 4),
        "landmarks_px": pa.compute.if_else(mask, pa.nulls(n, lm_col.type), lm_col),
        "es_frame": pa.array(np.full(n, 9)),
        "model_version": pa.array(np.full(n, "benchmark")),
        "source_uri": pa.array([f"bench/{e}_20211_2_0.zip" for e in eid]),
    }
    for name in CURVE_NAMES:
        c = np.tile(curve, (n, 1)) * (1 + rng.normal(0, 0.1, (n, 1)))
        cols[name] = lists(c, N_FRAMES)
        cols[f"es_{name}"] = pa.array(np.where(failed, np.nan, c[:, 9]))
    return pa.table(cols).cast(pa.schema([RESULTS_SCHEMA.field(k) for k in cols]))


def build(out: str, n: int, seed: int, shift: float = 0.0) -> None:
    """A ``raytag run``-shaped output of ``n`` rows, committed through the ledger."""
    rng = np.random.default_rng(seed)
    ledger = Ledger(out)
    for start in range(0, n, ROWS_PER_FILE):
        t = _table(start, min(ROWS_PER_FILE, n - start), rng, shift)
        t = t.select([c for c in RESULTS_SCHEMA.names if c in t.column_names])
        uris = t.column("source_uri").to_pylist()
        entries = [Entry(participant_key(u.split("/")[-1][:7], 2, 0), u, "bench", 3)
                   for u in dict.fromkeys(uris)]
        ledger.write(t, entries)


_CHILD = """
import json, sys, time
from raytag.analysis.report import build_report
def hwm_mb():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
base = hwm_mb()
t0 = time.perf_counter()
rep = build_report(sys.argv[1], sys.argv[2], reference_uri=sys.argv[3] or None,
                   echo=lambda s: None)
print(json.dumps({"seconds": round(time.perf_counter() - t0, 1),
                  "peak_rss_mb": round(hwm_mb(), 1), "base_rss_mb": round(base, 1),
                  "rows": rep["meta"]["rows"], "tables": sorted(rep["tables"])}))
"""


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="20000,300000")
    ap.add_argument("--reference", action="store_true",
                    help="also run the first size against a reference table")
    ap.add_argument("--scratch", default=None, help="where the tables go (default: a temp dir)")
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    scratch = args.scratch or tempfile.mkdtemp(prefix="report-scale-")
    runs = []
    try:
        for k, n in enumerate(int(s) for s in args.sizes.split(",")):
            out = os.path.join(scratch, f"run{n}")
            if not os.path.exists(os.path.join(out, "_raytag")):
                t0 = time.perf_counter()
                build(out, n, seed=n)
                print(f"built {n} rows in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
            cases = [("", None)]
            if args.reference and k == 0:
                ref = os.path.join(scratch, f"ref{n}")
                if not os.path.exists(os.path.join(ref, "_raytag")):
                    build(ref, n, seed=n + 1, shift=0.5)
                cases.append((ref, ref))
            for ref_uri, label in cases:
                done = subprocess.run([sys.executable, "-c", _CHILD, out,
                                       os.path.join(scratch, f"report{n}"), ref_uri],
                                      capture_output=True, text=True)
                if done.returncode:
                    print(done.stderr[-3000:], file=sys.stderr)
                    return 1
                r = {"rows": n, "reference": bool(label)} | json.loads(
                    done.stdout.strip().splitlines()[-1])
                runs.append(r)
                print(f"{n:8d} rows{' + reference' if label else ''}: {r['seconds']:7.1f} s, "
                      f"peak RSS {r['peak_rss_mb']:.0f} MB (interpreter {r['base_rss_mb']:.0f})")
    finally:
        if not args.scratch:
            shutil.rmtree(scratch, ignore_errors=True)
    save_json({"machine": machine(),
               "limits": {"20000": "peak RSS < 1 GB", "300000": "peak RSS < 2 GB, < 5 min"},
               "runs": runs}, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
