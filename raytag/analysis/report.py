"""``raytag report``: the study's tables and figures for one results table, as one page.

Writes, under ``out`` (local folder or ``s3://`` prefix):

- ``report.html`` - self-contained (figures embedded), opens anywhere;
- ``report.json`` - every table and the run's counts, machine-readable (NaN -> null);
- ``tables/<name>.csv`` - one CSV per table.

With a reference (generator truth or manual analysis): Table 2 agreement per region and
strain with paired t-tests and Bonferroni marking, Bland-Altman plots, landmark RMSE (mm)
at ED/ES and ROI IoU, and the worst cases by the paper's criteria with their frames.
Without one: ES strain distributions and curves per region, and robust outliers.
Always: rows by status, failures by reason, QC flags; with a groups CSV, Table 3.
"""

from __future__ import annotations

import csv
import io
import json
import math
import time
from collections.abc import Callable, Mapping, Sequence

import numpy as np

from raytag import __version__, logs
from raytag.analysis import columns, figures, tables
from raytag.analysis import html as H
from raytag.analysis.stats import LOA_Z
from raytag.io import read_participant, storage
from raytag.io.tables import read_groups
from raytag.results import measured_model_versions
from raytag.strain import CURVE_NAMES

__all__ = ["build_report", "DEFAULT_MAX_CASES"]

#: QC cases rendered with their frames (each reads its participant's zip once).
DEFAULT_MAX_CASES = 12


def _jsonable(value):
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, (np.floating, np.integer)):
        return _jsonable(value.item())
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def _csv(rows: Sequence[Mapping]) -> bytes:
    buf = io.StringIO()
    if rows:
        fields = list(dict.fromkeys(k for r in rows for k in r))
        w = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
        w.writeheader()
        for r in rows:
            w.writerow({k: ("" if (v := _jsonable(r.get(k))) is None else v) for k in fields})
    return buf.getvalue().encode()


def _frames_for(case: Mapping, pred: Mapping, cache: dict) -> tuple[np.ndarray | None, str]:
    """The slice's frames ``(T, rows, cols)`` from its source zip, or (None, why not)."""
    uri = pred.get("source_uri")
    if not uri:
        return None, "no source_uri in the results row"
    if uri not in cache:
        try:
            cache[uri] = {r.slice_index: r for r in read_participant(uri)}
        except Exception as exc:  # a report never dies for one unreadable QC image
            cache[uri] = exc
    got = cache[uri]
    if isinstance(got, Exception):
        return None, f"cannot read {uri}: {got}"
    rec = got.get(case["key"][2])
    if rec is None or rec.frames is None:
        return None, f"{uri} has no frames for slice {case['key'][2]}"
    return rec.frames, ""


def _agreement_html(rows) -> str:
    cols = [("Region", lambda r: r["region"]), ("Strain", lambda r: r["strain"]),
            ("n", lambda r: H.fmt(r["n"])),
            ("Reference", lambda r: H.pm(r["ref_mean"], r["ref_sd"])),
            ("Predicted", lambda r: H.pm(r["pred_mean"], r["pred_sd"])),
            ("Bias \u00b1 precision", lambda r: H.pm(r["bias"], r["precision"])),
            ("|Error|", lambda r: H.pm(r["abs_mean"], r["abs_sd"])),
            ("p (paired t)", lambda r: H.pvalue(r["p"])),
            (f"p < 0.05/{tables.N_AGREEMENT_TESTS}", lambda r: "*" if r["significant"] else "")]
    return H.table(rows, cols, row_class=lambda r: "sig" if r["significant"] else "", left=2)


def _landmark_html(rows) -> str:
    cols = [("Region", lambda r: r["region"]), ("n", lambda r: H.fmt(r["n"])),
            ("RMSE ED (mm)", lambda r: H.pm(r["rmse_ed_mm_mean"], r["rmse_ed_mm_sd"], 2)),
            ("RMSE ES (mm)", lambda r: H.pm(r["rmse_es_mm_mean"], r["rmse_es_mm_sd"], 2)),
            ("ROI IoU", lambda r: H.pm(r["iou_mean"], r["iou_sd"], 3)),
            ("n IoU", lambda r: H.fmt(r["iou_n"]))]
    return H.table(rows, cols)


def _group_html(rows, with_ref: bool) -> str:
    cols = [("Group", lambda r: r["group"])]
    for src, name in (("pred", "predicted"), ("ref", "reference"))[: 2 if with_ref else 1]:
        cols += [(f"n ({name})", lambda r, s=src: H.fmt(r[f"{s}_n"])),
                 (f"Mid circ ({name})", lambda r, s=src: H.pm(r[f"{s}_mean"], r[f"{s}_sd"])),
                 (f"Difference [95% CI] ({name})", lambda r, s=src: "" if r["group"] ==
                  tables.CONTROL else f"{H.fmt(r[f'{s}_diff'])} [{H.fmt(r[f'{s}_ci_low'])}, "
                  f"{H.fmt(r[f'{s}_ci_high'])}]"),
                 (f"p Welch ({name})", lambda r, s=src: "" if r["group"] == tables.CONTROL
                  else H.pvalue(r[f"{s}_p"]))]
    return H.table(rows, cols)


def _distribution_html(rows) -> str:
    cols = [("Region", lambda r: r["region"]), ("Strain", lambda r: r["strain"]),
            ("n", lambda r: H.fmt(r["n"])), ("Mean \u00b1 SD", lambda r: H.pm(r["mean"], r["sd"])),
            ("Median [IQR]", lambda r: f"{H.fmt(r['median'])} [{H.fmt(r['q1'])}, "
                                       f"{H.fmt(r['q3'])}]"),
            ("Range", lambda r: f"{H.fmt(r['min'])} .. {H.fmt(r['max'])}")]
    return H.table(rows, cols, left=2)


#: QC cases listed in the page (all of them go to ``tables/qc_cases.csv``).
MAX_CASES_LISTED = 50


def _qc_html(rows) -> str:
    cols = [("Participant", lambda r: f"{r['eid']} (instance {r['instance']})"),
            ("Slice", lambda r: r["slice_label"]), ("Reasons", lambda r: r["reasons"]),
            ("Severity", lambda r: H.fmt(r["severity"], 2))]
    more = len(rows) - MAX_CASES_LISTED
    note = H.paragraph(f"... and {more} more in tables/qc_cases.csv", "note") if more > 0 else ""
    return H.table(rows[:MAX_CASES_LISTED], cols, left=3) + note


def _simple_html(rows) -> str:
    keys = list(dict.fromkeys(k for r in rows for k in r))
    return H.table(rows, [(k, lambda r, k=k: H.fmt(r.get(k))) for k in keys])


def compute_report(results_uri: str, reference_uri: str | None = None,
                   groups_uri: str | None = None, max_cases: int = DEFAULT_MAX_CASES,
                   echo: Callable[[str], None] = logs.echo) -> dict:
    """Every table, figure (PNG bytes) and count of the report, nothing rendered yet.

    Reads the scalar columns of the results (and reference), streams the landmark columns
    once for RMSE/IoU, and reads full rows only for the QC cases drawn: memory grows with
    the scalar columns, not with landmarks. Raises ``ValueError`` when the results hold
    no rows, ``FileNotFoundError`` for a missing input.
    """
    with logs.Progress(5 + max_cases, "report", unit="step") as bar:
        return _compute(results_uri, reference_uri, groups_uri, max_cases, echo, bar)


def _compute(results_uri, reference_uri, groups_uri, max_cases, echo, bar) -> dict:
    results = columns.load_slices(results_uri)
    if not results.n:
        raise ValueError(f"no result rows in {results_uri}")
    reference = columns.load_slices(reference_uri) if reference_uri else None
    groups = read_groups(groups_uri) if groups_uri else None
    echo(f"report: {results.n} rows from {results_uri}"
         + (f", reference {reference_uri} ({reference.n} rows)" if reference else ""))
    out_tables: dict[str, list[dict]] = {
        "status": tables.status_table(results),
        "failures": tables.failure_table(results),
        "qc_flags": tables.qc_flag_table(results_uri),
    }
    meta = {"results": results_uri, "reference": reference_uri, "groups": groups_uri,
            "raytag_version": __version__, "rows": results.n,
            "participants": len(set(zip(results.eid.tolist(), results.instance.tolist(),
                                        strict=True))),
            "ok_rows": int(results.ok.sum()),
            "model_versions": measured_model_versions(results.model_version.tolist(),
                                                      results.status.tolist()),
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    images: dict[str, bytes] = {}
    pairs = None
    bar.update()  # read
    if reference is not None:
        pairs, meta["unmatched_ok_slices"] = columns.pair(results, reference)
        columns.landmark_metrics(pairs, results, reference)
        meta["paired_slices"] = pairs.n
        out_tables["agreement"] = tables.agreement_table(pairs)
        out_tables["landmarks"] = tables.landmark_table(pairs)
        images["bland_altman"] = figures.bland_altman_png(pairs)
    else:
        out_tables["distributions"] = tables.distribution_table(results)
        images["distributions"] = figures.distribution_png(results)
    bar.update()  # agreement or distributions
    images["curves"] = figures.curves_png(*_curves(results, reference, pairs))
    bar.update()  # curves
    if groups is not None:
        out_tables["groups"] = tables.group_table(groups, results, pairs)
        eids = set(results.eid.tolist())
        meta["participants_without_group"] = len(eids - (eids & set(groups)))
    bar.update()  # groups
    if pairs is not None:
        all_cases = tables.qc_cases(pairs, results)
        meta["qc_criteria"] = ("IoU < {iou_min}, RMSE > {rmse_mm_max} mm, |radial error| > "
                               "{radial_error_max}, |circ error| > {circ_error_max}").format(
                                   **tables.QC_LIMITS)
    else:
        all_cases = tables.outlier_cases(results)
        meta["qc_criteria"] = (f"|robust z| > {tables.OUTLIER_Z} of ES circ or radial strain "
                               "in its region")
    out_tables["qc_cases"] = [{"eid": c["key"][0], "instance": c["key"][1],
                               "slice_label": c["slice_label"], "severity": c["severity"],
                               "reasons": "; ".join(c["reasons"])} for c in all_cases]
    shown = all_cases[:max_cases]
    bar.set_total(5 + len(shown))
    bar.update()  # QC selection
    pred_rows = columns.read_rows(results_uri, [c["key"] for c in shown])
    ref_rows = columns.read_rows(reference_uri, [c["key"] for c in shown]) \
        if reference_uri else {}
    cache: dict = {}
    panels = []
    for case in shown:
        pred = pred_rows.get(case["key"], {})
        frames, why = _frames_for(case, pred, cache)
        panels.append((case, figures.qc_case_png(case, pred, ref_rows.get(case["key"]),
                                                 frames), why))
        bar.update()
    return {"meta": meta, "tables": out_tables, "images": images, "cases": all_cases,
            "panels": panels, "has_reference": pairs is not None,
            "has_groups": groups is not None}


def _curve_names(uri: str) -> tuple[str, ...]:
    """The strain curves a table has (a manual reference may hold only some)."""
    from raytag.io.tables import results_dataset

    dataset = results_dataset(uri)
    have = set(dataset.schema.names) if dataset is not None else set()
    return tuple(n for n in CURVE_NAMES if n in have)


def _curves(results, reference, pairs):
    """{region: {name: (n, T)}} of the ok results (and of their reference slices)."""
    ok = np.nonzero(results.ok)[0]
    got = columns.read_curves(results.uri, results, ok, names=_curve_names(results.uri))
    pred = {region: {n: v[results.label[ok] == region] for n, v in got.items()}
            for region in columns.REGIONS}
    if pairs is None or not pairs.n:
        return pred, None
    got = columns.read_curves(reference.uri, reference, pairs.ref,
                              names=_curve_names(reference.uri))
    ref = {region: {n: v[pairs.label == region] for n, v in got.items()}
           for region in columns.REGIONS}
    return pred, ref


def render_report(data: dict, title: str | None = None) -> str:
    """The self-contained HTML page of :func:`compute_report`'s output."""
    meta, out_tables, images = data["meta"], data["tables"], data["images"]
    sections = []
    if data["has_reference"]:
        sections.append(H.section(
            "Strain agreement (Table 2)",
            H.paragraph(f"{meta['paired_slices']} ok slices paired with the reference "
                        f"({meta['unmatched_ok_slices']} ok slices without a reference). "
                        "Values are end-systolic Green strain; bias and precision are the "
                        "mean and SD of predicted - reference; p from a paired t-test, "
                        f"marked where p < 0.05/{tables.N_AGREEMENT_TESTS} (Bonferroni)."),
            _agreement_html(out_tables["agreement"]), anchor="agreement"))
        sections.append(H.section(
            "Bland-Altman",
            H.paragraph(f"Difference against mean; solid: bias, dashed: bias \u00b1 {LOA_Z} SD "
                        "(95% limits of agreement)."),
            H.image(images["bland_altman"], "Bland-Altman plots"), anchor="bland"))
        sections.append(H.section(
            "Landmarks and ROI",
            H.paragraph("RMSE over the 168 landmarks in mm at ED (frame 0) and at the "
                        "reference's ES frame; IoU of the ROI boxes where the reference has "
                        "them."),
            _landmark_html(out_tables["landmarks"]), anchor="landmarks"))
    else:
        sections.append(H.section(
            "End-systolic strain per region",
            H.paragraph("No reference given: distributions of the predicted ES strains of "
                        "ok slices."),
            _distribution_html(out_tables["distributions"]),
            H.image(images["distributions"], "ES strain distributions"),
            anchor="distributions"))
    sections.append(H.section(
        "Strain curves",
        H.paragraph("Per region and strain kind: the mean curve over ok slices, the shaded "
                    "band is \u00b1 1 SD across slices at each frame; frame 0 is "
                    "end-diastole (the reference of Green strain)."
                    + (" Predicted solid, reference dashed." if data["has_reference"]
                       else "")),
        H.image(images["curves"], "strain curves"), anchor="curves"))
    if data["has_groups"]:
        sections.append(H.section(
            "Groups (Table 3)",
            H.paragraph("Mid-ventricular ES global circumferential strain per group; "
                        "difference = group - control group (participants with none of "
                        "the groups file's flags; not to be confused with the reference "
                        "measurement of Table 2), Welch's t-test and its 95% CI. "
                        f"{meta['participants_without_group']} participants are not in "
                        "the groups file."),
            _group_html(out_tables["groups"], data["has_reference"]), anchor="groups"))
    panels = []
    for case, png, why in data["panels"]:
        panels.append(H.image(png, f"QC case {case['key'][0]} {case['slice_label']}"))
        if why:
            panels.append(H.paragraph(f"(frames not shown: {why})", "note"))
    n_cases = len(data["cases"])
    sections.append(H.section(
        "Quality control",
        H.paragraph(f"Cases worth a look ({meta['qc_criteria']}): {n_cases}; the worst "
                    f"{len(data['panels'])} are shown with ED and ES frames, "
                    "predicted (red crosses) and reference (blue circles) landmarks and "
                    "strain curves. Severity: how far the worst criterion is beyond its "
                    "limit, as a ratio (1.0 at the limit, 1.5 = 50% beyond it); without a "
                    "reference, |robust z| / 3.5."),
        _qc_html(out_tables["qc_cases"]), *panels, anchor="qc"))
    sections.append(H.section(
        "Rows, failures and QC flags",
        H.paragraph("Rows by region and status:"), _simple_html(out_tables["status"]),
        H.paragraph("Failed slices by reason (excluded from every statistic above):"),
        _simple_html(out_tables["failures"]),
        H.paragraph(f"QC flags ({_flag_rate(out_tables['qc_flags'], meta['ok_rows'])}). A "
                    "flagged slice is still measured and counted above: the flag says what "
                    "to look at before trusting it (docs/results.md lists every flag: "
                    "ingest quirks, implausible strain, tag quality such as "
                    "tags_faded_early or phase_inconsistent)."),
        _simple_html(out_tables["qc_flags"]),
        anchor="rows"))
    intro = H.paragraph(
        f"{meta['participants']} participants, {meta['rows']} slice rows "
        f"({meta['ok_rows']} ok); model {', '.join(meta['model_versions'])}; "
        f"raytag {__version__}; created {meta['created']}.")
    caution = H.paragraph(
        "Caution: these networks were trained on synthetic cines only (raytag's generator "
        "families; see the model card). Their accuracy on real UK Biobank images has not "
        "been measured: treat strain values as research output until validated against "
        "manual analysis.", "caution") if _synthetic_weights(meta["model_versions"]) else ""
    return H.page(title or "raytag report", intro, caution, *sections)


def _synthetic_weights(model_versions) -> bool:
    """True unless every model version names weights trained on real data (``real:`` in
    the version string, which synthetic-trained checkpoints never carry)."""
    return any(v and "real:" not in v for v in model_versions)


def _flag_rate(rows, ok_rows: int) -> str:
    """How many ok slices carry any flag, as words (the flag table counts per flag)."""
    flagged = next((r.get("slices") for r in rows if r.get("flag") == "any"), None)
    if flagged is None or not ok_rows:
        return "counts per flag"
    return f"{flagged} of {ok_rows} ok slices ({100 * flagged / ok_rows:.0f}%) carry one or more"


def write_report(data: dict, page: str, out: str) -> dict:
    """Write ``report.html``, ``report.json`` and ``tables/*.csv`` under ``out``."""
    html_uri = storage.join(out, "report.html")
    json_uri = storage.join(out, "report.json")
    storage.write_bytes(html_uri, page.encode())
    storage.write_bytes(json_uri, json.dumps(_jsonable({"meta": data["meta"],
                                                        "tables": data["tables"]}),
                                             indent=1, allow_nan=False).encode())
    csvs = {}
    for name, rows in data["tables"].items():
        csvs[name] = storage.join(out, "tables", f"{name}.csv")
        storage.write_bytes(csvs[name], _csv(rows))
    return {"html": html_uri, "json": json_uri, "csv": csvs}


def build_report(results_uri: str, out: str, reference_uri: str | None = None,
                 groups_uri: str | None = None, max_cases: int = DEFAULT_MAX_CASES,
                 title: str | None = None, echo: Callable[[str], None] = logs.echo) -> dict:
    """Compute, render and write the report; returns ``{"html", "json", "csv", "meta",
    "tables", "qc_cases_shown"}``. Failed rows are counted in the status/failure tables
    and excluded from every statistic."""
    t0 = time.perf_counter()
    data = compute_report(results_uri, reference_uri, groups_uri, max_cases, echo)
    page = render_report(data, title)
    data["meta"]["seconds"] = round(time.perf_counter() - t0, 2)
    written = write_report(data, page, out)
    echo(f"report: {written['html']} ({data['meta']['seconds']} s)")
    return written | {"meta": data["meta"], "tables": data["tables"],
                      "qc_cases_shown": len(data["panels"])}
