"""``raytag export``: one row per participant visit, for analysts (R, Stata, SPSS, Excel).

The results table has one row per slice; analysts mostly want one row per participant
visit with every region's end-systolic strains side by side. Columns of the wide table:

- ``eid``, ``instance``, ``array``: the visit's key;
- ``status``: ``ok`` (every region measured), ``partial`` (some) or ``failed`` (none);
  ``n_ok_slices``;
- per region (``basal``, ``mid``, ``apical``): ``<region>_status``, ``<region>_reason``
  (failure reason, empty when ok), ``<region>_qc_flags`` (``;``-joined), and the five ES
  strains ``<region>_es_radial``, ``..._es_circ_global``, ``..._es_circ_subendo``,
  ``..._es_circ_midwall``, ``..._es_circ_subepi``: Green strain as a fraction, or with
  ``percent`` in percent under names ending ``_pct`` (so a column's unit is never in
  doubt);
- ``tracker`` and ``model_version`` of the visit (``;``-joined when slices differ).

A region without a row (a slice missing from the zip) has status ``missing``. Values are
copied from the results table (never recomputed); failed slices' strains are empty.
Pure pyarrow/numpy: no Ray.
"""

from __future__ import annotations

import pyarrow as pa

from raytag.constants import SLICE_LABELS, STATUS_OK
from raytag.io import storage
from raytag.io.tables import read_results
from raytag.strain import ES_NAMES

__all__ = ["participant_table", "write_export", "REGIONS"]

REGIONS = tuple(SLICE_LABELS.values())
_SCALARS = ["eid", "instance", "array", "slice_label", "status", "reason", "qc_flags",
            "tracker", "model_version", *ES_NAMES]


def _joined(values) -> str:
    return ";".join(sorted({v for v in values if v}))


def participant_table(results_uri: str, percent: bool = False) -> pa.Table:
    """The wide table (module docstring) of a results folder or file, sorted by key."""
    t = read_results(results_uri, columns=_SCALARS).to_pydict()
    scale, suffix = (100.0, "_pct") if percent else (1.0, "")
    visits: dict[tuple, dict] = {}
    for i in range(len(t["eid"])):
        key = (t["eid"][i], t["instance"][i], t["array"][i])
        v = visits.setdefault(key, {"regions": {}, "tracker": [], "model_version": []})
        label = t["slice_label"][i]
        if label not in REGIONS or label in v["regions"]:
            continue  # participant-level failure rows carry no region; duplicates: first
        v["regions"][label] = i
        v["tracker"].append(t["tracker"][i])
        v["model_version"].append(t["model_version"][i])
    cols: dict[str, list] = {"eid": [], "instance": [], "array": [], "status": [],
                             "n_ok_slices": []}
    for region in REGIONS:
        cols[f"{region}_status"], cols[f"{region}_reason"] = [], []
        cols[f"{region}_qc_flags"] = []
        for name in ES_NAMES:
            cols[f"{region}_{name}{suffix}"] = []
    cols["tracker"], cols["model_version"] = [], []
    for key in sorted(visits, key=lambda k: (str(k[0]), k[1] if k[1] is not None else -1,
                                              k[2] if k[2] is not None else -1)):
        v = visits[key]
        n_ok = 0
        for region in REGIONS:
            i = v["regions"].get(region)
            status = "missing" if i is None else t["status"][i]
            ok = status == STATUS_OK
            n_ok += ok
            cols[f"{region}_status"].append(status)
            cols[f"{region}_reason"].append("" if i is None or ok else t["reason"][i] or "")
            cols[f"{region}_qc_flags"].append("" if i is None else
                                              ";".join(t["qc_flags"][i] or []))
            for name in ES_NAMES:
                value = t[name][i] if i is not None and ok else None
                cols[f"{region}_{name}{suffix}"].append(
                    None if value is None else value * scale)
        # participant-level failure rows (unreadable zip) have no region: count as none ok
        cols["eid"].append(key[0])
        cols["instance"].append(key[1])
        cols["array"].append(key[2])
        cols["n_ok_slices"].append(n_ok)
        cols["status"].append("ok" if n_ok == len(REGIONS) else "partial" if n_ok else "failed")
        cols["tracker"].append(_joined(v["tracker"]))
        cols["model_version"].append(_joined(v["model_version"]))
    types = {"eid": pa.string(), "instance": pa.int64(), "array": pa.int64(),
             "n_ok_slices": pa.int64()}
    return pa.table({k: pa.array(vals, type=types.get(k, pa.float64() if "_es_" in k
                                                        else pa.string()))
                     for k, vals in cols.items()})


def write_export(results_uri: str, out_uri: str, percent: bool = False) -> dict:
    """Write the wide table as CSV (``.csv``) or Parquet (``.parquet``) to ``out_uri``."""
    table = participant_table(results_uri, percent)
    if str(out_uri).endswith(".csv"):
        import io

        import pyarrow.csv as pacsv

        buf = io.BytesIO()
        pacsv.write_csv(table, buf)
        storage.write_bytes(out_uri, buf.getvalue())
    elif str(out_uri).endswith(".parquet"):
        storage.write_table(table, out_uri)
    else:
        raise ValueError(f"{out_uri}: the export's name must end in .csv or .parquet")
    return {"out": out_uri, "participants": table.num_rows,
            "by_status": {s: table.column("status").to_pylist().count(s)
                          for s in ("ok", "partial", "failed")},
            "units": "percent" if percent else "fraction"}
