"""``raytag report``: statistics against hand-computed values, tables against independent
recomputation, and a full report from a synthetic cohort (partitioned results, S3, the
CLI, headless Chromium)."""

from __future__ import annotations

import json
import math
import re
import shutil
import statistics
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pyarrow.dataset as pads
import pytest
from scipy import stats as sps

from raytag.analysis import columns, stats, tables
from raytag.analysis.report import build_report
from raytag.cli import main
from raytag.io import storage
from raytag.io.tables import read_groups, read_results
from raytag.landmarks import annulus
from raytag.phantom.cohort import SynthConfig, truth_table, write_participants
from raytag.results import RESULTS_SCHEMA, measured_model_versions

# ---------------------------------------------------------------- statistics, by hand


def test_measured_model_versions_names_the_models_that_measured_rows():
    versions = ["m tracker=tags", "m", None, "m tracker=tags", "", "n tracker=harp"]
    statuses = ["ok", "failed", "failed", "ok", "failed", "ok"]
    assert measured_model_versions(versions, statuses) == ["m tracker=tags", "n tracker=harp"]
    # nothing measured: still say which model ran; nothing at all: nothing
    assert measured_model_versions(["m", None], ["failed", "failed"]) == ["m"]
    assert measured_model_versions([None, ""], ["failed", "failed"]) == []
    with pytest.raises(ValueError):
        measured_model_versions(["m"], ["ok", "failed"])


def test_paired_agreement_matches_hand_computation():
    pred, ref = [1.0, 2.0, 3.0, 4.0, np.nan], [0.5, 2.5, 2.0, 3.0, 7.0]
    a = stats.paired_agreement(pred, ref)
    # d = [0.5, -0.5, 1, 1] (the NaN pair dropped): mean 0.5, SD sqrt(1.5 / 3)
    sd = math.sqrt(0.5)
    assert a["n"] == 4
    assert a["bias"] == pytest.approx(0.5) and a["precision"] == pytest.approx(sd)
    assert a["abs_mean"] == pytest.approx(0.75) and a["abs_sd"] == pytest.approx(
        math.sqrt(0.25 / 3))
    assert a["ref_mean"] == pytest.approx(2.0) and a["pred_mean"] == pytest.approx(2.5)
    assert a["loa_low"] == pytest.approx(0.5 - 1.96 * sd)
    assert a["loa_high"] == pytest.approx(0.5 + 1.96 * sd)
    t = 0.5 / (sd / 2)
    assert a["t"] == pytest.approx(t)
    # Student's t with 3 dof has a closed-form CDF: 1/2 + (x/(1+x^2) + atan x)/pi, x=t/sqrt3
    x = t / math.sqrt(3)
    cdf = 0.5 + (x / (1 + x * x) + math.atan(x)) / math.pi
    assert a["p"] == pytest.approx(2 * (1 - cdf), rel=1e-9)


def test_paired_agreement_edge_cases():
    same = stats.paired_agreement([1.0, 2.0], [0.0, 1.0])  # identical differences
    assert same["bias"] == 1.0 and same["precision"] == 0.0 and math.isnan(same["p"])
    one = stats.paired_agreement([1.0], [0.0])
    assert one["n"] == 1 and math.isnan(one["precision"]) and math.isnan(one["p"])
    with pytest.raises(ValueError, match="differ in length"):
        stats.paired_agreement([1.0, 2.0], [1.0])


def test_bonferroni_marking():
    assert stats.bonferroni_significant(0.003, 15)  # 0.05 / 15 = 0.00333
    assert not stats.bonferroni_significant(0.004, 15)
    assert stats.bonferroni_significant(0.004, 1)
    assert not stats.bonferroni_significant(float("nan"), 15)
    with pytest.raises(ValueError):
        stats.bonferroni_significant(0.01, 0)


def test_welch_difference_matches_hand_computation():
    a, b = [1.0, 2.0, 3.0, 4.0], [2.0, 4.0, 6.0]
    w = stats.welch_difference(a, b)
    va, vb = (5 / 3) / 4, 4.0 / 3  # sample variances / n
    se = math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va**2 / 3 + vb**2 / 2)
    assert w["diff"] == pytest.approx(-1.5) and w["t"] == pytest.approx(-1.5 / se)
    assert w["df"] == pytest.approx(df) and df == pytest.approx(3.2347, abs=1e-4)
    # p and CI against scipy's own Welch test (a separate implementation)
    ref = sps.ttest_ind(a, b, equal_var=False)
    assert w["p"] == pytest.approx(ref.pvalue, rel=1e-9)
    lo, hi = ref.confidence_interval(0.95)
    assert (w["ci_low"], w["ci_high"]) == (pytest.approx(lo), pytest.approx(hi))
    assert w["ci_low"] < w["diff"] < w["ci_high"]
    small = stats.welch_difference([1.0], b)
    assert small["n_a"] == 1 and math.isnan(small["p"]) and math.isnan(small["ci_low"])


def test_robust_z():
    z = stats.robust_z([1.0, 2.0, 3.0, 4.0, 100.0, np.nan])
    # median 3, MAD 1 -> z = (x - 3) / 1.4826
    assert z[4] == pytest.approx(97 / 1.4826) and z[2] == 0 and np.isnan(z[5])
    assert np.all(stats.robust_z([2.0, 2.0, 2.0]) == 0)


# ---------------------------------------------------------------- tables, on small rows

SPACING = (1.5, 1.0)  # (row, col) mm: anisotropic on purpose


def _ring_row(eid: str, slice_index: int, scales, offset_mm=(0.0, 0.0), **extra) -> dict:
    """A results-shaped row whose landmarks are concentric rings scaled by ``scales``
    per frame, about (60, 60) mm, in pixels of :data:`SPACING`."""
    base = annulus((60.0, 60.0), 20.0, 30.0)  # (168, 2) mm
    mm = np.stack([60 + (base - 60) * s for s in scales]) + np.asarray(offset_mm)
    px = mm / np.array(SPACING[::-1])
    row = {"eid": eid, "instance": 2, "slice_index": slice_index,
           "slice_label": {1: "basal", 2: "mid", 3: "apical"}[slice_index], "status": "ok",
           "pixel_spacing_mm": list(SPACING), "landmarks_px": px.ravel().tolist(),
           "bbox_px": [10.0, 10.0, 50.0, 50.0], "es_frame": None}
    return row | extra


def _slices(tmp_path, name, rows):
    """Rows -> a Parquet file -> the report's columns (what ``raytag report`` reads)."""
    uri = str(tmp_path / f"{name}.parquet")
    storage.write_table(pa.Table.from_pylist(rows, schema=RESULTS_SCHEMA), uri)
    return columns.load_slices(uri)


def test_reference_strain_from_landmarks_and_pairing_metrics(tmp_path):
    # rings scaled uniformly by s: every circ ring and the radial strain are (s^2 - 1)/2;
    # the reference has landmarks only (no es_* columns): its strains are computed
    ref = _ring_row("9000001", 2, [1.0, 0.9, 0.95], es_frame=1)
    # prediction: the same rings shifted by (3, 4) mm -> RMSE exactly 5 mm at ED and ES
    pred = _ring_row("9000001", 2, [1.0, 0.9, 0.95], offset_mm=(3.0, 4.0),
                     bbox_px=[20.0, 10.0, 60.0, 50.0], es_circ_global=-0.1, es_radial=-0.1,
                     es_circ_subendo=-0.1, es_circ_midwall=-0.1, es_circ_subepi=-0.1)
    results, reference = _slices(tmp_path, "pred", [pred]), _slices(tmp_path, "ref", [ref])
    pairs, unmatched = columns.pair(results, reference)
    assert pairs.n == 1 and unmatched == 0
    columns.landmark_metrics(pairs, results, reference)
    assert pairs.refs["es_circ_global"][0] == pytest.approx((0.81 - 1) / 2)
    assert pairs.refs["es_radial"][0] == pytest.approx((0.81 - 1) / 2)
    assert pairs.rmse_ed[0] == pytest.approx(5.0) and pairs.rmse_es[0] == pytest.approx(5.0)
    assert pairs.iou[0] == pytest.approx(30 * 40 / (50 * 40))  # overlap 30x40, union 50x40
    assert pairs.error["es_circ_global"][0] == pytest.approx(-0.1 + 0.095)
    (case,) = tables.qc_cases(pairs, results)
    assert any("RMSE ED 5.0 mm" in r for r in case["reasons"])
    assert "IoU 0.60 < 0.70" in case["reasons"]
    assert not any("error" in r for r in case["reasons"])  # |-0.005| < 0.05


def _strain_row(eid, idx, values, status="ok", **extra):
    row = {"eid": eid, "instance": 2, "slice_index": idx,
           "slice_label": {1: "basal", 2: "mid", 3: "apical"}[idx], "status": status}
    return row | {c: values for c in tables.STRAINS} | extra


def test_agreement_table_excludes_failed_rows_and_matches_numpy(tmp_path):
    rng = np.random.default_rng(3)
    results, reference = [], []
    for i in range(12):
        eid = str(9000000 + i)
        for idx in (1, 2, 3):
            truth = float(rng.normal(-0.2, 0.03))
            reference.append(_strain_row(eid, idx, truth))
            results.append(_strain_row(eid, idx, truth + float(rng.normal(0.01, 0.02))))
    results[0] = _strain_row("9000000", 1, None, status="failed", error="bad zip")
    results.append(_strain_row("9000099", 2, -0.2))  # ok, but no reference slice
    res_cols = _slices(tmp_path, "res", results)
    pairs, unmatched = columns.pair(res_cols, _slices(tmp_path, "ref", reference))
    assert pairs.n == 35 and unmatched == 1
    rows = tables.agreement_table(pairs)
    assert len(rows) == tables.N_AGREEMENT_TESTS == 15
    for row in rows:
        keys = [(r["eid"], r["slice_index"]) for r in results if r["status"] == "ok"
                and r["slice_label"] == row["region"] and r["eid"] != "9000099"]
        ref = {(r["eid"], r["slice_index"]): r[row["column"]] for r in reference}
        d = [next(r for r in results if (r["eid"], r["slice_index"]) == k)[row["column"]]
             - ref[k] for k in keys]
        assert row["n"] == len(d) == (11 if row["region"] == "basal" else 12)
        assert row["bias"] == pytest.approx(statistics.mean(d))
        assert row["precision"] == pytest.approx(statistics.stdev(d))
        t = statistics.mean(d) / (statistics.stdev(d) / math.sqrt(len(d)))
        assert row["p"] == pytest.approx(2 * sps.t.sf(abs(t), len(d) - 1))
        assert row["significant"] == (row["p"] < 0.05 / 15)
    status = {r["region"]: r for r in tables.status_table(res_cols)}
    assert status["basal"]["failed"] == 1 and status["basal"]["ok"] == 11
    (fail,) = tables.failure_table(res_cols)
    assert fail["slices"] == 1 and "bad zip" in fail["example"]


def test_group_table_welch_and_reference_group(tmp_path):
    csv = tmp_path / "groups.csv"
    csv.write_text("eid,heart_attack,diabetes\n9000000,0,0\n9000001,0,no\n9000002,false,0\n"
                   "9000003,1,0\n9000004,1,0\n9000005,yes,1\n9000006,0,1\n")
    groups = read_groups(str(csv))
    assert groups["9000005"] == {"heart_attack": True, "diabetes": True}
    mid = {"9000000": -0.20, "9000001": -0.21, "9000002": -0.19, "9000003": -0.17,
           "9000004": -0.16, "9000005": -0.15, "9000006": -0.18, "9000007": -0.30}
    results = [_strain_row(e, 2, v) for e, v in mid.items()]  # 9000007: not in the CSV
    results.append(_strain_row("9000003", 1, -0.5))  # basal: never used for Table 3
    rows = {r["group"]: r for r in tables.group_table(groups, _slices(tmp_path, "g", results))}
    ref_vals, ha = [-0.20, -0.21, -0.19], [-0.17, -0.16, -0.15]
    assert rows["control"]["pred_n"] == 3
    assert rows["control"]["pred_mean"] == pytest.approx(-0.20)
    assert rows["heart_attack"]["pred_n"] == 3
    assert rows["heart_attack"]["pred_diff"] == pytest.approx(0.04)
    w = sps.ttest_ind(ha, ref_vals, equal_var=False)
    assert rows["heart_attack"]["pred_p"] == pytest.approx(w.pvalue)
    assert rows["diabetes"]["pred_n"] == 2
    assert "ref_n" not in rows["control"]


def test_read_groups_errors(tmp_path):
    bad = tmp_path / "g.csv"
    bad.write_text("id,flag\n1,0\n")
    with pytest.raises(ValueError, match="no 'eid' column"):
        read_groups(str(bad))
    bad.write_text("eid,flag\n1,maybe\n")
    with pytest.raises(ValueError, match="'flag' line 2: 'maybe'"):
        read_groups(str(bad))
    bad.write_text("eid,flag\n1,0\n1,1\n")
    with pytest.raises(ValueError, match="more than once"):
        read_groups(str(bad))


# ---------------------------------------------------------------- a synthetic cohort

N_PARTICIPANTS = 6


@pytest.fixture(scope="module")
def synthetic_run(tmp_path_factory):
    """A synthetic cohort and a results folder shaped like ``raytag run``'s output:
    the truth with known strain errors added, one participant failed, hive-partitioned."""
    root = tmp_path_factory.mktemp("report")
    cohort = root / "cohort"
    truth_rows = write_participants(range(N_PARTICIPANTS), SynthConfig(N_PARTICIPANTS, seed=5),
                                    str(cohort))
    truth = truth_table(truth_rows)
    storage.write_table(truth, str(cohort / "truth.parquet"))
    rng = np.random.default_rng(11)
    rows = []
    for r in truth.select(RESULTS_SCHEMA.names).to_pylist():
        r = dict(r, model_version="test-perturbed", source_uri=str(
            cohort / f"{r['eid']}_20211_{r['instance']}_0.zip"))
        if r["eid"] == "9000001":
            r = {k: r[k] for k in ("eid", "instance", "slice_index", "slice_label")} | {
                "status": "failed", "error": "not a zip archive (bad magic)", "stage": "decode",
                "reason": "not_a_zip"}
        elif r["status"] == "ok":
            for col in tables.STRAINS:
                r[col] = r[col] + float(rng.normal(0.005, 0.01))
            if (r["eid"], r["slice_index"]) == ("9000002", 2):  # one bad case for QC
                r["es_circ_global"] += 0.08
            pts = np.array(r["landmarks_px"], dtype=float)
            r["landmarks_px"] = (pts + 1.0).tolist()  # +1 px in x and y on every landmark
        rows.append(r)
    results = pa.Table.from_pylist(rows, schema=RESULTS_SCHEMA)
    out = root / "results"
    pads.write_dataset(results, str(out), format="parquet", partitioning=pads.partitioning(
        pa.schema([("instance", pa.int64()), ("slice_label", pa.string())]), flavor="hive"))
    (out / "_raytag").mkdir()  # the pipeline's bookkeeping folder must be ignored
    (out / "_raytag" / "junk.parquet").write_bytes(b"not parquet")
    groups = root / "groups.csv"
    groups.write_text("eid,impaired\n" + "".join(
        f"{r['eid']},{int(r['group'] == 'impaired')}\n"
        for r in truth.to_pylist() if r["slice_index"] == 2))
    return {"root": root, "cohort": cohort, "truth": truth, "results": out, "groups": groups}


def test_partitioned_results_read_back(synthetic_run):
    table = read_results(str(synthetic_run["results"]))
    assert table.num_rows == synthetic_run["truth"].num_rows
    assert set(table.column("slice_label").to_pylist()) == {"basal", "mid", "apical"}
    with pytest.raises(FileNotFoundError, match="no results at"):
        read_results(str(synthetic_run["root"] / "nowhere"))


def test_report_from_synthetic_cohort(synthetic_run, tmp_path):
    out = tmp_path / "rep"
    rep = build_report(str(synthetic_run["results"]), str(out),
                       reference_uri=str(synthetic_run["cohort"] / "truth.parquet"),
                       groups_uri=str(synthetic_run["groups"]), max_cases=2, echo=lambda s: None)
    doc = json.loads((out / "report.json").read_text())
    def key(r):
        return (r["eid"], r["instance"], r["slice_index"])

    truth = {key(r): r for r in synthetic_run["truth"].to_pylist()}
    results = read_results(str(synthetic_run["results"])).to_pylist()
    ok = [r for r in results if r["status"] == "ok"]
    # Table 2 recomputed independently: per region and strain, differences to the truth
    for row in doc["tables"]["agreement"]:
        d = [r[row["column"]] - truth[key(r)][row["column"]]
             for r in ok if r["slice_label"] == row["region"]]
        assert row["n"] == len(d) >= 3
        assert row["bias"] == pytest.approx(statistics.mean(d), abs=1e-12)
        assert row["precision"] == pytest.approx(statistics.stdev(d), abs=1e-12)
        assert row["abs_mean"] == pytest.approx(statistics.mean(map(abs, d)), abs=1e-12)
    # landmarks moved by 1 px in x and y: RMSE = hypot(col, row spacing) for every slice
    spacing = [r["pixel_spacing_mm"] for r in ok]
    expect = [math.hypot(*s) for s in spacing]
    lm = {r["region"]: r for r in doc["tables"]["landmarks"]}
    assert lm["all"]["n"] == len(ok)
    assert lm["all"]["rmse_ed_mm_mean"] == pytest.approx(statistics.mean(expect))
    assert lm["all"]["rmse_es_mm_mean"] == pytest.approx(statistics.mean(expect))
    assert lm["all"]["iou_mean"] == pytest.approx(1.0)  # boxes copied from the truth
    # failed rows counted, never in statistics
    (fail,) = doc["tables"]["failures"]
    assert fail["participants"] == 1 and fail["slices"] == 3 and fail["stage"] == "decode"
    assert fail["reason"] == "not_a_zip"
    assert doc["meta"]["ok_rows"] == len(ok) and doc["meta"]["paired_slices"] == len(ok)
    # Table 3 present with the reference side by side
    groups = {r["group"]: r for r in doc["tables"]["groups"]}
    assert set(groups) == {"control", "impaired"} and "ref_mean" in groups["control"]
    # every table also as CSV; the page has every section and its figures
    for name in ("agreement", "landmarks", "groups", "qc_cases", "failures", "status"):
        assert (out / "tables" / f"{name}.csv").read_text().startswith(
            next(iter(doc["tables"][name][0])) if doc["tables"][name] else "")
    page = (out / "report.html").read_text()
    for anchor in ("agreement", "bland", "landmarks", "curves", "groups", "qc", "rows"):
        assert f'id="{anchor}"' in page
    qc = doc["tables"]["qc_cases"]
    assert [(c["eid"], c["slice_label"]) for c in qc] == [("9000002", "mid")]
    assert "|circ error|" in qc[0]["reasons"]
    n_img = page.count("<img ")
    assert n_img == 2 + rep["qc_cases_shown"] == 3  # Bland-Altman, curves, QC panels
    assert page.count("data:image/png;base64,") == n_img
    # words a reader needs: the caution for synthetic-trained weights, severity defined,
    # the QC flag rate (hand-counted from the results), the curves' band explained
    assert "trained on synthetic cines only" in page
    assert "Severity: how far the worst criterion is beyond its limit" in page
    flagged = sum(1 for r in ok if r["qc_flags"])
    assert doc["tables"]["qc_flags"][-1] == {"flag": "any", "slices": flagged}
    assert f"{flagged} of {len(ok)} ok slices" in page
    assert "band is \u00b1 1 SD" in page or "band is ± 1 SD" in page


def test_report_without_reference_from_s3(synthetic_run, s3_bucket, tmp_path):
    src = synthetic_run["results"]
    for path in src.rglob("*.parquet"):
        rel = path.relative_to(src).as_posix()
        storage.write_bytes(f"s3://{s3_bucket}/results/{rel}", path.read_bytes())
    rep = build_report(f"s3://{s3_bucket}/results", f"s3://{s3_bucket}/report",
                       echo=lambda s: None)
    page = storage.read_bytes(f"s3://{s3_bucket}/report/report.html").decode()
    assert 'id="distributions"' in page and 'id="agreement"' not in page
    dist = {(r["region"], r["column"]): r for r in rep["tables"]["distributions"]}
    ok = [r for r in read_results(str(src)).to_pylist() if r["status"] == "ok"]
    mid = [r["es_circ_global"] for r in ok if r["slice_label"] == "mid"]
    assert dist[("mid", "es_circ_global")]["n"] == len(mid)
    assert dist[("mid", "es_circ_global")]["median"] == pytest.approx(statistics.median(mid))


def test_report_cli_errors_and_output(synthetic_run, tmp_path, capsys):
    out = tmp_path / "cli"
    assert main(["report", "--results", str(synthetic_run["results"]), "--out", str(out),
                 "--max-cases", "0", "--json"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["html"] == str(out / "report.html")
    assert str(out / "report.html") in captured.err  # the note for people
    assert main(["report", "--results", str(tmp_path / "missing"), "--out", str(out)]) == 2
    assert "no such file or folder" in capsys.readouterr().err
    empty = tmp_path / "empty-run"
    empty.mkdir()
    assert main(["report", "--results", str(empty), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.strip() == f"raytag report: error: no result rows in {empty}"


@pytest.mark.skipif(shutil.which("chromium") is None,
                    reason="Debian's chromium is not installed (apt-get install chromium)")
def test_report_renders_in_headless_chromium(synthetic_run, tmp_path):
    out = tmp_path / "rep"
    build_report(str(synthetic_run["results"]), str(out),
                 reference_uri=str(synthetic_run["cohort"] / "truth.parquet"),
                 max_cases=1, echo=lambda s: None)
    page = out / "report.html"
    proc = subprocess.run(
        ["chromium", "--headless", "--no-sandbox", "--disable-gpu",
         f"--user-data-dir={tmp_path / 'chrome'}", "--virtual-time-budget=10000",
         "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    body = re.search(r"<body([^>]*)>", proc.stdout)
    assert body, proc.stdout[:500]
    attrs = dict(re.findall(r'data-([a-z-]+)="([^"]*)"', body.group(1)))
    n_img = page.read_text().count("<img ")
    assert n_img >= 3
    assert attrs.get("images") == str(n_img) and attrs.get("images-ok") == str(n_img), attrs
    assert "errors" not in attrs, attrs["errors"]


def test_analysis_imports_neither_ray_nor_torch():
    code = ("import sys, raytag.analysis.report, raytag.io.tables; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'ray', 'torch'}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"
