"""The study's tables from results rows (and a reference, and groups), as lists of dicts.

Rows are the results-table contract (DESIGN.md "Results table"): one per slice keyed by
``(eid, instance, slice_index)``; ``landmarks_px`` ``(T, 168, 2)`` flattened in (frame,
landmark, xy) order in original pixels; ``pixel_spacing_mm`` (row, col); ``bbox_px``
(x1, y1, x2, y2); ES strains ``es_<curve>`` (Green strain, dimensionless).

A reference (generator truth or manual analysis) has the same keys and landmark columns.
Its ES strains are taken from its ``es_*`` columns when present, otherwise computed from
its landmarks (in mm, at its ``es_frame`` when given) with :func:`raytag.strain.
compute_strains`, the one strain implementation. Only ``ok`` result rows enter statistics;
failed rows are counted, never dropped silently.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from raytag import geometry
from raytag.analysis.stats import (
    bonferroni_significant,
    mean_sd,
    paired_agreement,
    robust_z,
    welch_difference,
)
from raytag.constants import N_LANDMARKS, SLICE_LABELS, STATUS_OK
from raytag.strain import compute_strains
from raytag.train.metrics import landmark_rmse_mm

__all__ = [
    "REGIONS", "STRAINS", "N_AGREEMENT_TESTS", "QC_LIMITS", "slice_key", "landmarks_mm",
    "reference_strains", "pair_slices", "agreement_table", "landmark_table", "group_table",
    "qc_cases", "outlier_cases", "status_table", "failure_table", "qc_flag_table",
    "distribution_table",
]

#: Regions in the paper's order (slice_index 1, 2, 3).
REGIONS = tuple(SLICE_LABELS[i] for i in sorted(SLICE_LABELS))
#: Table 2's strains: results column -> display name.
STRAINS = {
    "es_circ_global": "Circ global",
    "es_circ_subendo": "Circ subendo",
    "es_circ_midwall": "Circ midwall",
    "es_circ_subepi": "Circ subepi",
    "es_radial": "Radial",
}
#: 3 regions x 5 strains paired t-tests: the Bonferroni divisor.
N_AGREEMENT_TESTS = len(REGIONS) * len(STRAINS)
#: The paper's criteria for a case worth looking at (section 3.4).
QC_LIMITS = {"iou_min": 0.70, "rmse_mm_max": 4.0, "radial_error_max": 0.20,
             "circ_error_max": 0.05}
#: No reference: |robust z| above this within a region marks an outlier.
OUTLIER_Z = 3.5

Key = tuple[str, int, int]


def slice_key(row: Mapping) -> Key:
    """``(eid, instance, slice_index)`` with eid as a string."""
    return (str(row["eid"]), int(row["instance"] or 0), int(row["slice_index"] or 0))


def _label(row: Mapping) -> str:
    return row.get("slice_label") or SLICE_LABELS.get(int(row.get("slice_index") or 0), "?")


def landmarks_mm(row: Mapping) -> np.ndarray | None:
    """``(T, 168, 2)`` float64 landmarks in mm (NaN for missing frames), or None."""
    flat, spacing = row.get("landmarks_px"), row.get("pixel_spacing_mm")
    if not flat or not spacing:
        return None
    pts = np.array(flat, dtype=np.float64)  # None -> NaN
    if pts.size % (N_LANDMARKS * 2):
        raise ValueError(f"{slice_key(row)}: {pts.size} landmark values is not T x 168 x 2")
    pts = pts.reshape(-1, N_LANDMARKS, 2)
    return geometry.px_to_mm(pts, np.array(spacing, dtype=np.float64))


def reference_strains(row: Mapping) -> dict[str, float]:
    """ES strains of a reference row: its ``es_*`` columns, else computed from landmarks."""
    given = {name: row.get(name) for name in STRAINS}
    if all(v is not None for v in given.values()):
        return {k: float(v) for k, v in given.items()}
    pts = landmarks_mm(row)
    if pts is None:
        return {k: (math.nan if v is None else float(v)) for k, v in given.items()}
    es = row.get("es_frame")
    s = compute_strains(pts, frame_valid=np.isfinite(pts).all(axis=(-1, -2)),
                        es_frame=-1 if es is None else int(es))
    return {k: float(s[k]) if given[k] is None else float(given[k]) for k in STRAINS}


def _box(row: Mapping) -> np.ndarray | None:
    b = row.get("bbox_px")
    return np.array(b, dtype=np.float64) if b and len(b) == 4 else None


def pair_slices(results: Iterable[Mapping], reference: Iterable[Mapping]) -> list[dict]:
    """``ok`` results joined to their reference slice, with per-slice errors.

    Each item: ``key``, ``slice_label``, ``pred`` and ``ref`` (the rows), ``ref_strains``,
    ``error`` ({strain: pred - ref}), ``rmse_ed_mm``/``rmse_es_mm`` (168 landmarks at
    frame 0 and at the reference ES frame; NaN without landmarks), ``iou`` (NaN without
    both boxes). Results with no reference slice are left out (count them with
    :func:`unmatched`).
    """
    ref = {slice_key(r): r for r in reference}
    pairs = []
    for p in results:
        if p.get("status") != STATUS_OK or slice_key(p) not in ref:
            continue
        r = ref[slice_key(p)]
        rs = reference_strains(r)
        item = {"key": slice_key(p), "slice_label": _label(p), "pred": p, "ref": r,
                "ref_strains": rs,
                "error": {k: (math.nan if p.get(k) is None else p[k]) - rs[k]
                          for k in STRAINS}}
        pm, rm = landmarks_mm(p), landmarks_mm(r)
        es = r.get("es_frame")
        comparable = pm is not None and rm is not None and pm.shape == rm.shape
        for name, frame in (("rmse_ed_mm", 0), ("rmse_es_mm", es)):
            item[name] = (float(landmark_rmse_mm(pm[None], rm[None], np.array([frame]))[0])
                          if comparable and frame is not None else math.nan)
        pb, rb = _box(p), _box(r)
        item["iou"] = float(geometry.box_iou(pb, rb)) if pb is not None and rb is not None \
            else math.nan
        pairs.append(item)
    return pairs


def unmatched(results: Iterable[Mapping], reference: Iterable[Mapping]) -> int:
    """``ok`` result slices that have no reference slice."""
    keys = {slice_key(r) for r in reference}
    return sum(1 for p in results if p.get("status") == STATUS_OK and slice_key(p) not in keys)


def agreement_table(pairs: Sequence[Mapping]) -> list[dict]:
    """Table 2: per region and strain, :func:`paired_agreement` + Bonferroni marking."""
    rows = []
    for region in REGIONS:
        sub = [p for p in pairs if p["slice_label"] == region]
        for col, name in STRAINS.items():
            pred = [math.nan if p["pred"].get(col) is None else p["pred"][col] for p in sub]
            ref = [p["ref_strains"][col] for p in sub]
            a = paired_agreement(pred, ref)
            rows.append({"region": region, "strain": name, "column": col} | a | {
                "significant": bonferroni_significant(a["p"], N_AGREEMENT_TESTS)})
    return rows


def landmark_table(pairs: Sequence[Mapping]) -> list[dict]:
    """Landmark RMSE (mm) at ED and ES and ROI IoU, per region and over all slices."""
    rows = []
    for region in (*REGIONS, "all"):
        sub = [p for p in pairs if region == "all" or p["slice_label"] == region]
        row = {"region": region, "n": len(sub)}
        for name in ("rmse_ed_mm", "rmse_es_mm", "iou"):
            values = np.array([p[name] for p in sub], dtype=np.float64)
            row[f"{name}_n"] = int(np.isfinite(values).sum())
            row[f"{name}_mean"], row[f"{name}_sd"] = mean_sd(values)
        rows.append(row)
    return rows


def _mid_circ(items: Iterable[tuple[Mapping, float | None]]) -> dict[str, float]:
    """eid -> mid-ventricular ES global circ strain, from (row, value) items.

    One value per participant: with several visits, the earliest instance's.
    """
    out: dict[str, float] = {}
    for row, v in sorted(items, key=lambda item: slice_key(item[0])):
        if _label(row) == "mid" and v is not None and math.isfinite(v):
            out.setdefault(str(row["eid"]), float(v))
    return out


def group_table(groups: Mapping[str, Mapping[str, bool]], predicted: Iterable[Mapping],
                pairs: Sequence[Mapping] | None = None) -> list[dict]:
    """Table 3: mid global circ strain per group vs the reference group (no flags set).

    ``predicted``: results rows (``ok`` only are used); ``pairs``: when given, the
    reference strain of the same slices is analysed side by side (columns ``ref_*``).
    One row for the reference group, then one per flag: ``n``, ``pred_mean``/``pred_sd``
    and Welch ``pred_diff``/``pred_ci_low``/``pred_ci_high``/``pred_p`` (and ``ref_*``).
    """
    sources = {"pred": _mid_circ((r, r.get("es_circ_global")) for r in predicted
                                 if r.get("status") == STATUS_OK)}
    if pairs is not None:
        sources["ref"] = _mid_circ((p["pred"], p["ref_strains"]["es_circ_global"])
                                   for p in pairs)
    flags = list(next(iter(groups.values()), {}))
    members = {"reference": {e for e, f in groups.items() if not any(f.values())}}
    members |= {f: {e for e, fl in groups.items() if fl[f]} for f in flags}
    rows = []
    for name, eids in members.items():
        row = {"group": name}
        for src, values in sources.items():
            a = [values[e] for e in eids if e in values]
            b = [values[e] for e in members["reference"] if e in values]
            w = welch_difference(a, b)
            row[f"{src}_n"], row[f"{src}_mean"], row[f"{src}_sd"] = w["n_a"], w["mean_a"], \
                w["sd_a"]
            if name != "reference":
                row |= {f"{src}_diff": w["diff"], f"{src}_ci_low": w["ci_low"],
                        f"{src}_ci_high": w["ci_high"], f"{src}_p": w["p"]}
        rows.append(row)
    return rows


def _severity(item: Mapping) -> tuple[float, list[str]]:
    """(max ratio to the paper's limits, reasons) for one paired slice."""
    lim, reasons, worst = QC_LIMITS, [], 0.0
    iou = item["iou"]
    if math.isfinite(iou) and iou < lim["iou_min"]:
        reasons.append(f"IoU {iou:.2f} < {lim['iou_min']:.2f}")
        worst = max(worst, lim["iou_min"] / max(iou, 1e-3))
    for frame in ("ed", "es"):
        v = item[f"rmse_{frame}_mm"]
        if math.isfinite(v) and v > lim["rmse_mm_max"]:
            reasons.append(f"RMSE {frame.upper()} {v:.1f} mm > {lim['rmse_mm_max']:.0f} mm")
            worst = max(worst, v / lim["rmse_mm_max"])
    for col, key, what in (("es_radial", "radial_error_max", "radial"),
                           ("es_circ_global", "circ_error_max", "circ")):
        e = item["error"][col]
        if math.isfinite(e) and abs(e) > lim[key]:
            reasons.append(f"|{what} error| {abs(e):.3f} > {lim[key]:.2f}")
            worst = max(worst, abs(e) / lim[key])
    return worst, reasons


def qc_cases(pairs: Sequence[Mapping], limit: int | None = None) -> list[dict]:
    """Slices failing the paper's criteria, worst first: ``key``, ``severity``, ``reasons``."""
    cases = []
    for p in pairs:
        worst, reasons = _severity(p)
        if reasons:
            cases.append({"key": p["key"], "slice_label": p["slice_label"],
                          "severity": worst, "reasons": reasons, "pair": p})
    cases.sort(key=lambda c: (-c["severity"], c["key"]))
    return cases[:limit] if limit is not None else cases


def outlier_cases(results: Sequence[Mapping], limit: int | None = None) -> list[dict]:
    """No reference: ``ok`` slices whose ES circ or radial strain is a robust outlier
    (|z| > 3.5 within its region), most extreme first."""
    cases = []
    ok = [r for r in results if r.get("status") == STATUS_OK]
    for region in REGIONS:
        sub = [r for r in ok if _label(r) == region]
        zs = {col: robust_z([math.nan if r.get(col) is None else r[col] for r in sub])
              for col in ("es_circ_global", "es_radial")}
        for i, r in enumerate(sub):
            reasons, worst = [], 0.0
            for col, z in zs.items():
                if math.isfinite(z[i]) and abs(z[i]) > OUTLIER_Z:
                    reasons.append(f"{STRAINS[col]} {r[col]:+.3f} (robust z {z[i]:+.1f})")
                    worst = max(worst, abs(z[i]) / OUTLIER_Z)
            if reasons:
                cases.append({"key": slice_key(r), "slice_label": region, "severity": worst,
                              "reasons": reasons, "pair": {"pred": r, "ref": None}})
    cases.sort(key=lambda c: (-c["severity"], c["key"]))
    return cases[:limit] if limit is not None else cases


def status_table(results: Sequence[Mapping]) -> list[dict]:
    """Rows per region and status (``ok``/``failed``/...), plus the participant count."""
    counts = Counter((_label(r), r.get("status") or "") for r in results)
    statuses = sorted({s for _, s in counts})
    return [{"region": region} | {s: counts.get((region, s), 0) for s in statuses}
            for region in sorted({reg for reg, _ in counts},
                                 key=lambda x: (x not in REGIONS, REGIONS.index(x)
                                                if x in REGIONS else 0, x))]


def failure_table(results: Sequence[Mapping]) -> list[dict]:
    """Failed slices by reason (the results' ``reason`` column, a
    :class:`raytag.failures.Reason` value; ``unknown`` for tables written before it) and
    stage, most common first, with one example."""
    groups: dict[tuple[str, str], list[Mapping]] = {}
    for r in results:
        if r.get("status") == "failed":
            groups.setdefault((r.get("reason") or "unknown", r.get("stage") or ""),
                              []).append(r)
    rows = [{"reason": reason, "stage": stage, "slices": len(rs),
             "participants": len({(r["eid"], r["instance"]) for r in rs}),
             "example": f"{rs[0]['eid']} {_label(rs[0])}: {rs[0].get('error') or ''}"}
            for (reason, stage), rs in groups.items()]
    return sorted(rows, key=lambda r: (-r["slices"], r["reason"]))


def qc_flag_table(results: Sequence[Mapping]) -> list[dict]:
    """Ingest QC flags (e.g. ``padded_frames``) by slices flagged, over all rows."""
    counts = Counter(f for r in results for f in (r.get("qc_flags") or []))
    return [{"flag": f, "slices": n} for f, n in sorted(counts.items(), key=lambda x: -x[1])]


def distribution_table(results: Sequence[Mapping]) -> list[dict]:
    """Without a reference: ES strain per region, mean +- SD and quartiles of ``ok`` rows."""
    rows = []
    ok = [r for r in results if r.get("status") == STATUS_OK]
    for region in REGIONS:
        sub = [r for r in ok if _label(r) == region]
        for col, name in STRAINS.items():
            v = np.array([math.nan if r.get(col) is None else r[col] for r in sub])
            v = v[np.isfinite(v)]
            mean, sd = mean_sd(v)
            q = np.percentile(v, [0, 25, 50, 75, 100]) if v.size else [math.nan] * 5
            rows.append({"region": region, "strain": name, "column": col, "n": int(v.size),
                         "mean": mean, "sd": sd, "min": float(q[0]), "q1": float(q[1]),
                         "median": float(q[2]), "q3": float(q[3]), "max": float(q[4])})
    return rows

