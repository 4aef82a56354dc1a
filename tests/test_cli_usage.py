"""Mistakes on the command line: caught before Ray starts, one line on stderr, exit 2;
Ctrl-C exits 130; logging levels; the export table equals the results table."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pyarrow.parquet as pq
import pytest

from raytag.analysis.export import REGIONS, participant_table, write_export
from raytag.cli import EXIT_INTERRUPTED, EXIT_USAGE, main
from raytag.io.records import SliceRecord
from raytag.results import result_row, rows_to_table
from raytag.strain import ES_NAMES

#: Runs ``raytag.cli.main`` in a fresh interpreter; prints the exit status and whether Ray
#: (or its Data/Train libraries) was imported along the way.
_PROBE = textwrap.dedent("""
    import json, sys
    from raytag.cli import main
    try:
        rc = main(sys.argv[1:])
    except SystemExit as exc:  # argparse's own errors
        rc = exc.code
    print(json.dumps({"rc": rc, "ray": "ray" in sys.modules}))
""")


@pytest.fixture(scope="module")
def cohort_dir(tmp_path_factory):
    """A folder with two small (valid) zips and a truth table: enough to get past the
    input checks."""
    from raytag.phantom.cohort import SynthConfig
    from raytag.pipeline.synth import synthesise

    out = tmp_path_factory.mktemp("cohort")
    synthesise(str(out), SynthConfig(2, seed=9101, n_frames=4), workers=1)
    return out


def _probe(args, cwd):
    proc = subprocess.run([sys.executable, "-c", _PROBE, *args], capture_output=True,
                          text=True, cwd=cwd, timeout=120)
    last = proc.stdout.strip().splitlines()[-1]
    return json.loads(last), proc.stderr


def _cases(cohort, tmp):
    a_file = tmp / "a-file.txt"
    a_file.write_text("not a folder")
    bad_weights = tmp / "bad-weights"
    bad_weights.mkdir(exist_ok=True)
    for name in ("localiser.pt", "tracker.pt"):
        (bad_weights / name).write_bytes(b"junk")
    c = str(cohort)
    return {
        "missing input": (["run", "--input", str(tmp / "nope"), "--output", str(tmp / "o")],
                          "no such file or folder"),
        "input is a text file": (["run", "--input", str(a_file), "--output", str(tmp / "o")],
                                 "neither a .zip nor a manifest"),
        "folder without zips": (["run", "--input", str(tmp / "empty"), "--output",
                                 str(tmp / "o")], "holds no .zip files"),
        "output is a file": (["run", "--input", c, "--output", str(a_file)],
                             "exists and is not a folder"),
        "weights folder missing": (["run", "--input", c, "--output", str(tmp / "o"),
                                    "--weights", str(tmp / "nowhere")], "no such folder"),
        "weights unreadable": (["run", "--input", c, "--output", str(tmp / "o"),
                                "--weights", str(bad_weights)], "cannot load weights"),
        "rows per file 0": (["run", "--input", c, "--output", str(tmp / "o"),
                             "--rows-per-file", "0"], "not a whole number >= 1"),
        "negative refine passes": (["run", "--input", c, "--output", str(tmp / "o"),
                                    "--refine-passes", "-1"], "not a whole number >= 0"),
        "model actors 0": (["run", "--input", c, "--output", str(tmp / "o"),
                            "--model-actors", "0"], "not a whole number >= 1"),
        "negative limit": (["run", "--input", c, "--output", str(tmp / "o"), "--limit", "-1"],
                           "not a whole number >= 1"),
        "demo with no participants": (["demo", "--participants", "0", "--out",
                                       str(tmp / "d")], "not a whole number >= 1"),
        "unknown family": (["synth", "--family", "heart", "--out", str(tmp / "s")],
                           "unknown family"),
        "synth with nothing to do": (["synth"], "nothing to do"),
        "train on two participants": (["train", "--data", c, "--out", str(tmp / "m"),
                                       "--storage", str(tmp / "r")], "at least 3"),
        "train without truth": (["train", "--data", str(tmp / "empty"), "--out",
                                 str(tmp / "m"), "--storage", str(tmp / "r")], "no truth"),
        "report on nothing": (["report", "--results", str(tmp / "nope"), "--out",
                               str(tmp / "r")], "no such file or folder"),
        "export to a .txt": (["export", "--results", c, "--out", str(tmp / "x.txt")],
                             "must end in .csv or .parquet"),
        "impaired fraction 2": (["synth", "--impaired-fraction", "2", "--out",
                                 str(tmp / "s")], "between 0 and 1"),
        "missing required": (["run"], "required"),
    }


def test_mistakes_exit_2_with_one_line_before_ray(cohort_dir, tmp_path):
    (tmp_path / "empty").mkdir()
    for name, (args, expected) in _cases(cohort_dir, tmp_path).items():
        result, stderr = _probe(args, tmp_path)
        lines = [ln for ln in stderr.splitlines() if ln.strip()]
        assert result["rc"] == EXIT_USAGE, (name, stderr)
        assert len(lines) == 1, (name, stderr)
        assert expected in lines[0], (name, lines[0])
        assert lines[0].startswith("raytag "), (name, lines[0])
        assert not result["ray"], f"{name}: Ray was imported before the mistake was caught"
    assert not any((tmp_path / d).exists() for d in ("o", "d", "s", "m", "r")), \
        "a refused command created its output"


def test_help_shows_defaults_and_every_option_has_text():
    from raytag.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if getattr(a, "choices", None)
               and "run" in a.choices)
    for name, p in sub.choices.items():
        for action in p._actions:
            if action.option_strings and action.dest != "help":
                assert action.help, f"raytag {name} {action.option_strings[0]} has no help"
    assert "(default 3000)" in " ".join(sub.choices["run"].format_help().split())
    assert "per worker (default: 8)" in " ".join(sub.choices["train"].format_help().split())


def test_sigint_in_a_real_process_exits_130(tmp_path):
    """A real Ctrl-C (SIGINT) during a long command: status 130, the note, no traceback."""
    # run `inspect` with its handler swapped for a slow one, then interrupt it
    code = textwrap.dedent("""
        import sys, time
        import raytag.cli as cli
        def slow(args):
            print("ready", flush=True)
            time.sleep(60)
            return 0
        parser = cli.build_parser
        def build():
            p = parser()
            for a in p._actions:
                if getattr(a, "choices", None) and "inspect" in a.choices:
                    a.choices["inspect"].set_defaults(func=slow)
            return p
        cli.build_parser = build
        sys.exit(cli.main(["inspect", "x.zip"]))
    """)
    def as_a_terminal_leaves_it():
        # a child inherits an ignored or blocked SIGINT (and Python then never raises
        # KeyboardInterrupt); a shell gives the default: so does this test, whatever the
        # test runner's own process has been through
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, [signal.SIGINT])

    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=tmp_path,
                            preexec_fn=as_a_terminal_leaves_it)
    try:
        assert proc.stdout.readline().strip() == "ready"
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == EXIT_INTERRUPTED
    assert "interrupted" in err and "Traceback" not in err


def test_quiet_hides_progress_and_verbose_shows_debug():
    code = textwrap.dedent("""
        import sys
        from raytag import logs
        logs.configure(int(sys.argv[1]))
        logs.echo("note")
        logs.log.debug("detail")
        logs.log.warning("careful")
        with logs.Progress(3, "work") as bar:
            bar.update(3)
    """)
    out = {}
    for level in (-1, 0, 1):
        proc = subprocess.run([sys.executable, "-c", code, str(level)], capture_output=True,
                              text=True, timeout=60)
        out[level] = proc.stderr
    assert out[-1].split() == ["careful"]
    assert "note" in out[0] and "detail" not in out[0] and "work: 3/3" in out[0]
    assert "note" in out[1] and "detail" in out[1]


# --- export -------------------------------------------------------------------------


def _record(eid, label_index, status="ok"):
    frames = np.zeros((4, 8, 8), np.uint16)
    return SliceRecord(eid=eid, instance=2, slice_index=label_index, status=status,
                       error=None if status == "ok" else "boom", qc_flags=[],
                       frames=frames, frame_valid=np.ones(4, bool),
                       pixel_spacing_mm=np.array([1.5, 1.5]), n_frames=4,
                       source_uri=f"{eid}_20211_2_0.zip")


def _results(tmp_path):
    rng = np.random.default_rng(3)
    rows, truth = [], {}
    for eid in ("9000001", "9000002"):
        for idx in (1, 2, 3):
            if eid == "9000002" and idx == 3:
                rec = _record(eid, idx, status="failed")
                rows.append(result_row(rec))
                continue
            rec = _record(eid, idx)
            strains = {name: rng.normal(-0.15, 0.05, 4) for name in
                       ("radial", "circ_global", "circ_subendo", "circ_midwall",
                        "circ_subepi")}
            strains |= {f"es_{k}": float(v[2]) for k, v in list(strains.items())}
            strains["es_frame"] = 2
            row = result_row(rec, strains, landmarks_px=np.zeros((4, 168, 2)),
                             bbox_px=np.array([0, 0, 8, 8.0]), model_version="test")
            rows.append(row)
            truth[(eid, REGIONS[idx - 1])] = {k: strains[k] for k in ES_NAMES}
    path = tmp_path / "results.parquet"
    pq.write_table(rows_to_table(rows), path)
    return str(path), truth


def test_export_values_equal_the_results_table(tmp_path):
    path, truth = _results(tmp_path)
    wide = participant_table(path).to_pylist()
    assert [r["eid"] for r in wide] == ["9000001", "9000002"]
    assert wide[0]["status"] == "ok" and wide[0]["n_ok_slices"] == 3
    assert wide[1]["status"] == "partial" and wide[1]["apical_status"] == "failed"
    assert wide[1]["apical_es_circ_global"] is None
    for r in wide:
        for region in REGIONS:
            for name in ES_NAMES:
                expect = truth.get((r["eid"], region), {}).get(name)
                assert r[f"{region}_{name}"] == expect
    pct = participant_table(path, percent=True).to_pylist()
    assert pct[0]["mid_es_circ_global_pct"] == pytest.approx(
        100 * truth[("9000001", "mid")]["es_circ_global"])
    out_csv = tmp_path / "wide.csv"
    assert main(["export", "--results", path, "--out", str(out_csv), "-q"]) == 0
    import csv

    with open(out_csv) as f:
        first = next(csv.DictReader(f))
    assert float(first["basal_es_radial"]) == pytest.approx(truth[("9000001", "basal")]
                                                          ["es_radial"])
    summary = write_export(path, str(tmp_path / "wide.parquet"))
    assert summary["participants"] == 2 and summary["by_status"]["partial"] == 1
    assert pq.read_table(tmp_path / "wide.parquet").to_pylist() == wide
