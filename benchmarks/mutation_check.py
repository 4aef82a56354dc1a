"""Mutation check: deliberate bugs that the test suite must catch.

Each mutation copies ``raytag/`` and ``tests/`` to a scratch folder, changes one line of
the code, and runs the tests that guard it (with that copy first on ``PYTHONPATH``). A
mutation the tests do not fail is reported (exit 1): the tests would let that bug land.

    python benchmarks/mutation_check.py [--only NAME] \
        [--json benchmarks/results/mutation_check.json]
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

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

#: name -> (file, original text, mutated text, tests that must fail)
MUTATIONS = {
    "unpad_shift_off_by_one": (
        "raytag/models/predictor.py",
        "shift = np.stack([offs[:, 1], offs[:, 0]], axis=-1)  # (x, y)",
        "shift = np.stack([offs[:, 1], offs[:, 0]], axis=-1) + 1.0  # (x, y)",
        ["tests/test_pipeline.py::test_stages_put_the_truth_back_in_original_pixels"]),
    "series_tie_breaks_reversed": (
        "raytag/io/participant.py",
        "return (usable, complete, max(numbers, default=-1), acq)",
        "return (usable, complete, -max(numbers, default=-1), -acq)",
        ["tests/test_io_ingest.py", "-k", "tie_break"]),
    "training_never_updates_weights": (
        "raytag/train/loop.py",
        "            optimiser.step()\n",
        "            pass  # optimiser.step()\n",
        ["tests/test_train.py::test_ddp_training_resume_and_predictor"]),
    "export_last_not_best": (
        "raytag/train/driver.py",
        "        best_file = os.path.join(d, BEST_FILE)\n",
        "        best_file = os.path.join(d, MODEL_FILE)  # the latest epoch's\n",
        ["tests/test_train.py::test_ddp_training_resume_and_predictor"]),
    "listing_error_read_as_no_commits": (
        "raytag/io/ledger.py",
        "        infos = storage.list_file_infos(self.uri(rel), suffix, allow_not_found=True)\n",
        "        try:\n"
        "            infos = storage.list_file_infos(self.uri(rel), suffix, allow_not_found=True)\n"
        "        except storage.StorageError:\n"
        "            infos = []\n",
        ["tests/test_pipeline.py::test_listing_errors_propagate_and_never_cost_committed_rows"]),
}


def run(name: str) -> dict:
    path, before, after, tests = MUTATIONS[name]
    with tempfile.TemporaryDirectory(prefix="mut-") as tmp:
        for d in ("raytag", "tests"):
            shutil.copytree(os.path.join(ROOT, d), os.path.join(tmp, d),
                            ignore=shutil.ignore_patterns("__pycache__"))
        target = os.path.join(tmp, path)
        text = open(target).read()
        if text.count(before) != 1:
            return {"mutation": name, "caught": False,
                    "detail": f"the original line is not (once) in {path}: update this script"}
        open(target, "w").write(text.replace(before, after))
        env = dict(os.environ, PYTHONPATH=tmp)
        t0 = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "pytest", "-x", "-q", "-p",
                               "no:cacheprovider", *tests], cwd=tmp, env=env,
                              capture_output=True, text=True)
        tail = done.stdout.strip().splitlines()[-1:] or [""]
        return {"mutation": name, "caught": done.returncode != 0,
                "seconds": round(time.perf_counter() - t0, 1), "detail": tail[0]}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only", choices=sorted(MUTATIONS), default=None)
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    names = [args.only] if args.only else list(MUTATIONS)
    rows = []
    for name in names:
        r = run(name)
        rows.append(r)
        print(f"{'caught ' if r['caught'] else 'MISSED '} {name:36s} {r['detail']}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)
    return 0 if all(r["caught"] for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
