"""The yardstick for ``raytag run``: the same work as a plain in-process loop.

    python benchmarks/pipeline_loop.py --input COHORT [--weights DIR] [--tracker T]

Per participant zip: decode (``read_participant``), the networks and the tracker with
strain and tag QC (``Predictor.predict``, the path ``raytag run`` and ``evaluate`` use),
results rows built (``raytag.results.result_row``) and written once at the end. Model
loading and imports are included: this is the whole process a user would otherwise run.
Prints one JSON line: participants, slices, rows, seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

from raytag.constants import DEFAULT_TRACKER
from raytag.io import read_participant, storage
from raytag.models.weights import load_predictor
from raytag.results import result_row, rows_to_table


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--input", required=True)
    ap.add_argument("--weights", default=None)
    ap.add_argument("--tracker", default=DEFAULT_TRACKER)
    ap.add_argument("--batch", type=int, default=8, help="slices per predictor call")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    predictor = load_predictor(args.weights, tracking=args.tracker)
    zips = storage.list_files(args.input, ".zip")
    rows, slices = [], 0
    for uri in zips:
        records = list(read_participant(uri))
        ok = [r for r in records if r.ok]
        for r in records:
            if not r.ok:
                rows.append(result_row(r))
        for i in range(0, len(ok), args.batch):
            batch = ok[i : i + args.batch]
            out = predictor.predict(batch)
            for j, r in enumerate(batch):
                strains = {k: v[j] for k, v in out.strains.items()}
                rows.append(result_row(r, strains, out.landmarks_px[j], out.bbox_px[j],
                                       out.model_version, out.measurements[j]))
        slices += len(ok)
    with tempfile.TemporaryDirectory() as tmp:
        storage.write_table(rows_to_table(rows), os.path.join(tmp, "results.parquet"))
    print(json.dumps({"participants": len(zips), "slices": slices, "rows": len(rows),
                      "seconds": round(time.perf_counter() - t0, 3)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
