"""The study's tables, computed from columns (:mod:`raytag.analysis.columns`), returned as
lists of dicts (one per table row) for the HTML page, the JSON and the CSVs.

Only ``ok`` result rows enter statistics; failed rows are counted (status and failure
tables), never dropped silently. Strains are ES Green strain (dimensionless).
"""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from raytag.analysis.columns import REGIONS, STRAINS, Pairs, Slices
from raytag.analysis.stats import (
    bonferroni_significant,
    mean_sd,
    paired_agreement,
    robust_z,
    welch_difference,
)
from raytag.constants import STATUS_OK
from raytag.io.tables import iter_results

__all__ = [
    "REGIONS", "STRAINS", "N_AGREEMENT_TESTS", "QC_LIMITS", "OUTLIER_Z", "agreement_table",
    "landmark_table", "group_table", "qc_cases", "outlier_cases", "status_table",
    "failure_table", "qc_flag_table", "distribution_table",
]

#: 3 regions x 5 strains paired t-tests: the Bonferroni divisor.
N_AGREEMENT_TESTS = len(REGIONS) * len(STRAINS)
#: The paper's criteria for a case worth looking at (section 3.4).
QC_LIMITS = {"iou_min": 0.70, "rmse_mm_max": 4.0, "radial_error_max": 0.20,
             "circ_error_max": 0.05}
#: No reference: |robust z| above this within a region marks an outlier.
OUTLIER_Z = 3.5


def agreement_table(pairs: Pairs) -> list[dict]:
    """Table 2: per region and strain, :func:`paired_agreement` + Bonferroni marking."""
    rows = []
    for region in REGIONS:
        m = pairs.label == region
        for col, name in STRAINS.items():
            a = paired_agreement(pairs.pred[col][m], pairs.refs[col][m])
            rows.append({"region": region, "strain": name, "column": col} | a | {
                "significant": bonferroni_significant(a["p"], N_AGREEMENT_TESTS)})
    return rows


def landmark_table(pairs: Pairs) -> list[dict]:
    """Landmark RMSE (mm) at ED and ES and ROI IoU, per region and over all slices."""
    rows = []
    for region in (*REGIONS, "all"):
        m = np.ones(pairs.n, bool) if region == "all" else pairs.label == region
        row = {"region": region, "n": int(m.sum())}
        for name, values in (("rmse_ed_mm", pairs.rmse_ed), ("rmse_es_mm", pairs.rmse_es),
                             ("iou", pairs.iou)):
            v = values[m]
            row[f"{name}_n"] = int(np.isfinite(v).sum())
            row[f"{name}_mean"], row[f"{name}_sd"] = mean_sd(v)
        rows.append(row)
    return rows


def _mid_circ(slices: Slices, rows: np.ndarray, values: np.ndarray) -> dict[str, float]:
    """eid -> mid-ventricular ES global circ strain from ``values`` at ``rows`` (in key
    order, so with several visits the earliest instance's is kept)."""
    out: dict[str, float] = {}
    for i, v in zip(rows, values, strict=True):
        if slices.label[i] == "mid" and math.isfinite(v):
            out.setdefault(str(slices.eid[i]), float(v))
    return out


#: Table 3's comparison group: participants with none of the groups file's flags.
CONTROL = "control"


def group_table(groups: dict[str, dict[str, bool]], results: Slices,
                pairs: Pairs | None = None) -> list[dict]:
    """Table 3: mid global circ strain per group vs the control group (no flags set).

    One row for the control group (``group == "control"``: not to be confused with the
    reference *measurement*, ``ref_*``), then one per flag: ``pred_n``/``pred_mean``/
    ``pred_sd`` and Welch ``pred_diff``/``pred_ci_low``/``pred_ci_high``/``pred_p`` (and
    ``ref_*`` from the reference strains of the same slices when ``pairs`` is given).
    """
    ok = np.nonzero(results.ok)[0]
    sources = {"pred": _mid_circ(results, ok, results.strains["es_circ_global"][ok])}
    if pairs is not None:
        sources["ref"] = _mid_circ(results, pairs.res, pairs.refs["es_circ_global"])
    flags = list(next(iter(groups.values()), {}))
    members = {CONTROL: {e for e, f in groups.items() if not any(f.values())}}
    members |= {f: {e for e, fl in groups.items() if fl[f]} for f in flags}
    rows = []
    for name, eids in members.items():
        row = {"group": name}
        for src, values in sources.items():
            a = [values[e] for e in eids if e in values]
            b = [values[e] for e in members[CONTROL] if e in values]
            w = welch_difference(a, b)
            row[f"{src}_n"], row[f"{src}_mean"], row[f"{src}_sd"] = w["n_a"], w["mean_a"], \
                w["sd_a"]
            if name != CONTROL:
                row |= {f"{src}_diff": w["diff"], f"{src}_ci_low": w["ci_low"],
                        f"{src}_ci_high": w["ci_high"], f"{src}_p": w["p"]}
        rows.append(row)
    return rows


def _severity(pairs: Pairs) -> tuple[np.ndarray, list[list[str]]]:
    """Per pair: (max ratio to the paper's limits, 0 when none is exceeded; reasons)."""
    lim = QC_LIMITS
    worst = np.zeros(pairs.n)
    reasons: list[list[str]] = [[] for _ in range(pairs.n)]
    with np.errstate(invalid="ignore", divide="ignore"):
        bad = np.isfinite(pairs.iou) & (pairs.iou < lim["iou_min"])
        for i in np.nonzero(bad)[0]:
            reasons[i].append(f"IoU {pairs.iou[i]:.2f} < {lim['iou_min']:.2f}")
        worst = np.where(bad, np.maximum(worst, lim["iou_min"] / np.maximum(pairs.iou, 1e-3)),
                         worst)
        for frame, v in (("ED", pairs.rmse_ed), ("ES", pairs.rmse_es)):
            bad = np.isfinite(v) & (v > lim["rmse_mm_max"])
            for i in np.nonzero(bad)[0]:
                reasons[i].append(f"RMSE {frame} {v[i]:.1f} mm > {lim['rmse_mm_max']:.0f} mm")
            worst = np.where(bad, np.maximum(worst, v / lim["rmse_mm_max"]), worst)
        err = pairs.error
        for col, key, what in (("es_radial", "radial_error_max", "radial"),
                               ("es_circ_global", "circ_error_max", "circ")):
            e = np.abs(err[col])
            bad = np.isfinite(e) & (e > lim[key])
            for i in np.nonzero(bad)[0]:
                reasons[i].append(f"|{what} error| {e[i]:.3f} > {lim[key]:.2f}")
            worst = np.where(bad, np.maximum(worst, e / lim[key]), worst)
    return worst, reasons


def qc_cases(pairs: Pairs, results: Slices, limit: int | None = None) -> list[dict]:
    """Slices failing the paper's criteria, worst first: ``key``, ``slice_label``,
    ``severity`` (the largest ratio of an error to its limit: 1.5 = 50% beyond it),
    ``reasons``, ``row`` (the results row index) and ``ref`` (the reference row index)."""
    worst, reasons = _severity(pairs)
    cases = [{"key": results.key(pairs.res[i]), "slice_label": pairs.label[i],
              "severity": float(worst[i]), "reasons": reasons[i], "row": int(pairs.res[i]),
              "ref": int(pairs.ref[i])} for i in range(pairs.n) if reasons[i]]
    cases.sort(key=lambda c: (-c["severity"], c["key"]))
    return cases[:limit] if limit is not None else cases


def outlier_cases(results: Slices, limit: int | None = None) -> list[dict]:
    """No reference: ``ok`` slices whose ES circ or radial strain is a robust outlier
    (|z| > 3.5 within its region), most extreme first (``severity``: |z| / 3.5)."""
    cases = []
    for region in REGIONS:
        sub = np.nonzero(results.ok & (results.label == region))[0]
        zs = {col: robust_z(results.strains[col][sub]) for col in ("es_circ_global",
                                                                   "es_radial")}
        for j, i in enumerate(sub):
            reasons, worst = [], 0.0
            for col, z in zs.items():
                if math.isfinite(z[j]) and abs(z[j]) > OUTLIER_Z:
                    reasons.append(f"{STRAINS[col]} {results.strains[col][i]:+.3f} "
                                   f"(robust z {z[j]:+.1f})")
                    worst = max(worst, abs(z[j]) / OUTLIER_Z)
            if reasons:
                cases.append({"key": results.key(i), "slice_label": region, "severity": worst,
                              "reasons": reasons, "row": int(i), "ref": None})
    cases.sort(key=lambda c: (-c["severity"], c["key"]))
    return cases[:limit] if limit is not None else cases


def _region_order(region: str):
    return (region not in REGIONS, REGIONS.index(region) if region in REGIONS else 0, region)


def status_table(results: Slices) -> list[dict]:
    """Rows per region and status (``ok``/``failed``/...)."""
    counts = Counter(zip(results.label.tolist(), [s or "" for s in results.status.tolist()],
                         strict=True))
    statuses = sorted({s for _, s in counts})
    return [{"region": region} | {s: counts.get((region, s), 0) for s in statuses}
            for region in sorted({reg for reg, _ in counts}, key=_region_order)]


def failure_table(results: Slices) -> list[dict]:
    """Failed slices by reason (the results' ``reason``: a :class:`raytag.failures.Reason`
    value; ``unknown`` for tables written before it) and stage, most common first, with
    one example."""
    groups: dict[tuple[str, str], list[int]] = {}
    for i in np.nonzero(results.status == "failed")[0]:
        groups.setdefault((results.reason[i] or "unknown", results.stage[i] or ""),
                          []).append(int(i))
    rows = [{"reason": reason, "stage": stage, "slices": len(idx),
             "participants": len({(results.eid[i], results.instance[i]) for i in idx}),
             "example": f"{results.eid[idx[0]]} {results.label[idx[0]]}: "
                        f"{results.error[idx[0]] or ''}"}
            for (reason, stage), idx in groups.items()]
    return sorted(rows, key=lambda r: (-r["slices"], r["reason"]))


def qc_flag_table(uri: str, batch_rows: int = 65536) -> list[dict]:
    """QC flags (e.g. ``padded_frames``) by slices flagged, over all rows (read in batches
    of the ``qc_flags`` and ``status`` columns only), then one row ``any``: the ``ok``
    slices that carry at least one flag."""
    counts: Counter = Counter()
    any_ok = 0
    for batch in iter_results(uri, ["qc_flags", "status"], batch_rows):
        flags = batch["qc_flags"].cast(pa.list_(pa.string()))
        flat = pc.list_flatten(flags)
        for item in pc.value_counts(flat).to_pylist():
            counts[item["values"]] += item["counts"]
        lengths = pc.fill_null(pc.list_value_length(flags), 0)
        ok = pc.equal(batch["status"], STATUS_OK)
        any_ok += int(pc.sum(pc.and_(pc.fill_null(ok, False),
                                     pc.greater(lengths, 0))).as_py() or 0)
    rows = [{"flag": f, "slices": n} for f, n in sorted(counts.items(), key=lambda x: -x[1])]
    return rows + [{"flag": "any", "slices": any_ok}]


def distribution_table(results: Slices) -> list[dict]:
    """Without a reference: ES strain per region, mean +- SD and quartiles of ``ok`` rows."""
    rows = []
    for region in REGIONS:
        m = results.ok & (results.label == region)
        for col, name in STRAINS.items():
            v = results.strains[col][m]
            v = v[np.isfinite(v)]
            mean, sd = mean_sd(v)
            q = np.percentile(v, [0, 25, 50, 75, 100]) if v.size else [math.nan] * 5
            rows.append({"region": region, "strain": name, "column": col, "n": int(v.size),
                         "mean": mean, "sd": sd, "min": float(q[0]), "q1": float(q[1]),
                         "median": float(q[2]), "q3": float(q[3]), "max": float(q[4])})
    return rows
