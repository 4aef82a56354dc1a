"""The report's figures, each returned as PNG bytes (matplotlib Agg; no pyplot state).

Inputs are the columns of :mod:`raytag.analysis.columns` (and, for a QC case, its two
full rows). Strain axes are Green
strain (dimensionless), frames are cine frame indices (0 = ED). Images are drawn with
``imshow``'s default extent so pixel centres sit at integer coordinates, the landmark
convention (x = column, y = row, 0-based; see :mod:`raytag.phantom.preview`).
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from raytag.analysis.columns import REGIONS, STRAINS, Pairs, Slices
from raytag.analysis.stats import LOA_Z, mean_sd
from raytag.constants import N_LANDMARKS
from raytag.metrics import zoom_window

__all__ = ["bland_altman_png", "distribution_png", "curves_png", "qc_case_png", "to_png"]

DPI = 90
PRED_COLOR = "#e8442e"
REF_COLOR = "#1f9bde"


def to_png(fig: Figure) -> bytes:
    """Render a figure to PNG bytes."""
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight")
    return buf.getvalue()


def bland_altman_png(pairs: Pairs) -> bytes:
    """One panel per strain (rows) and region (columns): difference (pred - ref) against
    the mean of the two, with the bias and the 95% limits of agreement (bias +- 1.96 SD)."""
    fig = Figure(figsize=(3.2 * len(REGIONS), 2.4 * len(STRAINS)))
    axes = fig.subplots(len(STRAINS), len(REGIONS), squeeze=False)
    for i, (col, name) in enumerate(STRAINS.items()):
        for j, region in enumerate(REGIONS):
            ax = axes[i, j]
            m = pairs.label == region
            pred, ref = pairs.pred[col][m], pairs.refs[col][m]
            keep = np.isfinite(pred) & np.isfinite(ref)
            mean, diff = (pred[keep] + ref[keep]) / 2, pred[keep] - ref[keep]
            ax.scatter(mean, diff, s=9, color="#333333", alpha=0.7, gid="points")
            bias, sd = mean_sd(diff)
            if math.isfinite(bias):
                ax.axhline(bias, color=PRED_COLOR, lw=1.2)
            if math.isfinite(sd):
                for lim in (bias - LOA_Z * sd, bias + LOA_Z * sd):
                    ax.axhline(lim, color=PRED_COLOR, lw=0.9, ls="--")
                ax.set_title(f"{name}, {region}\nbias {bias:+.3f}, LoA +-{LOA_Z * sd:.3f}",
                             fontsize=8)
            else:
                ax.set_title(f"{name}, {region} (n={int(keep.sum())})", fontsize=8)
            ax.axhline(0, color="#999999", lw=0.6)
            ax.tick_params(labelsize=7)
            if i == len(STRAINS) - 1:
                ax.set_xlabel("mean of predicted and reference", fontsize=7)
            if j == 0:
                ax.set_ylabel("predicted - reference", fontsize=7)
    fig.tight_layout()
    return to_png(fig)


def distribution_png(results: Slices) -> bytes:
    """ES strain per region (box plots with the points), one panel per strain."""
    fig = Figure(figsize=(3.0 * len(STRAINS), 3.0))
    axes = fig.subplots(1, len(STRAINS), squeeze=False)[0]
    rng = np.random.default_rng(0)  # jitter only; fixed so the report is reproducible
    for ax, (col, name) in zip(axes, STRAINS.items(), strict=True):
        data = []
        for region in REGIONS:
            v = results.strains[col][results.ok & (results.label == region)]
            data.append(v[np.isfinite(v)])
        ax.boxplot(data, showfliers=False)
        ax.set_xticks(range(1, len(REGIONS) + 1), REGIONS, fontsize=7)
        for k, v in enumerate(data, start=1):
            ax.scatter(k + rng.uniform(-0.15, 0.15, v.size), v, s=6, alpha=0.5,
                       color=PRED_COLOR)
        ax.set_title(f"ES {name}", fontsize=8)
        ax.tick_params(labelsize=7)
    fig.tight_layout()
    return to_png(fig)


def _curve_band(ax, curves: np.ndarray | None, color: str, label: str, ls: str = "-"):
    if curves is None or not len(curves):
        return
    c = np.asarray(curves, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        m = np.nanmean(c, axis=0) if np.isfinite(c).any() else np.full(c.shape[1], np.nan)
        s = np.nanstd(c, axis=0)
    t = np.arange(c.shape[1])
    ax.plot(t, m, color=color, ls=ls, lw=1.4, label=f"{label} (n={len(curves)})")
    ax.fill_between(t, m - s, m + s, color=color, alpha=0.15)


def _present(curves: np.ndarray | None) -> np.ndarray | None:
    """The rows of ``curves`` that hold any value."""
    if curves is None:
        return None
    return curves[np.isfinite(curves).any(axis=1)]


def _curve(row: Mapping | None, name: str) -> np.ndarray | None:
    if row is None or not row.get(name):
        return None
    return np.array(row[name], dtype=np.float64)


def curves_png(pred: Mapping[str, Mapping[str, np.ndarray]],
               ref: Mapping[str, Mapping[str, np.ndarray]] | None = None,
               percent: bool = False) -> bytes:
    """Mean strain curves per region and kind (all five: :data:`raytag.strain.CURVE_NAMES`),
    the band +- 1 SD over slices; predicted solid, reference dashed. ``pred``/``ref``:
    {region: {curve name: (n, T) array}}, rows with missing curves all-NaN (dropped here).
    ``percent``: values times 100."""
    from matplotlib.ticker import MaxNLocator

    from raytag.strain import CURVE_NAMES

    scale = 100.0 if percent else 1.0
    names = [n for n in CURVE_NAMES if any(n in (pred.get(r) or {}) for r in REGIONS)]
    fig = Figure(figsize=(3.4 * len(REGIONS), 2.3 * max(len(names), 1)))
    axes = fig.subplots(max(len(names), 1), len(REGIONS), squeeze=False)
    for j, region in enumerate(REGIONS):
        for i, name in enumerate(names):
            ax = axes[i, j]
            got = _present(pred.get(region, {}).get(name))
            _curve_band(ax, None if got is None else got * scale, PRED_COLOR, "predicted")
            if ref:
                got = _present(ref.get(region, {}).get(name))
                _curve_band(ax, None if got is None else got * scale, REF_COLOR,
                            "reference", ls="--")
            ax.set_title(f"{name.replace('_', ' ')}, {region}", fontsize=8)
            ax.axhline(0, color="#999999", lw=0.6)
            ax.tick_params(labelsize=7)
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.legend(fontsize=6, loc="best")
            if j == 0:
                ax.set_ylabel("Green strain (%)" if percent else "Green strain (fraction)",
                              fontsize=7)
            if i == len(names) - 1:
                ax.set_xlabel("frame (0 = end-diastole)", fontsize=7)
    fig.tight_layout()
    return to_png(fig)


def _px(row: Mapping | None) -> np.ndarray | None:
    if row is None or not row.get("landmarks_px"):
        return None
    return np.array(row["landmarks_px"], dtype=np.float64).reshape(-1, N_LANDMARKS, 2)


def qc_case_png(case: Mapping, pred: Mapping, ref: Mapping | None,
                frames: np.ndarray | None) -> bytes:
    """ED and ES frames with predicted (red) and reference (blue) landmarks, and the strain
    curves of both. ``pred``/``ref``: the case's full results and reference rows (ref None
    without a reference); ``frames``: ``(T, rows, cols)`` of the slice, or None when the
    source cannot be read (the landmark panels then show the points alone)."""
    lp, lr = _px(pred), _px(ref)
    es_p = pred.get("es_frame")
    es = (ref.get("es_frame") if ref is not None and ref.get("es_frame") is not None
          else es_p)
    es = 0 if es is None else int(es)
    fig = Figure(figsize=(14.0, 4.6))
    axes = fig.subplots(1, 3)
    for ax, t, label in ((axes[0], 0, "ED"), (axes[1], es, f"ES (frame {es})")):
        shown = [p[t] for p in (lp, lr) if p is not None and t < len(p)]
        if frames is not None and t < len(frames):
            img = np.asarray(frames[t], dtype=np.float64)
            lo, hi = np.percentile(img, [1, 99.5])
            ax.imshow(img, cmap="gray", vmin=lo, vmax=hi if hi > lo else lo + 1,
                      interpolation="nearest", gid="frame")
        if shown:
            pts = np.concatenate(shown)
            box = pred.get("bbox_px")
            finite = pts[np.isfinite(pts).all(axis=1)]
            if box is None and finite.size:
                box = [*finite.min(axis=0), *finite.max(axis=0)]
            if box is not None:
                shape = frames.shape[1:] if frames is not None else (
                    int(np.nanmax(pts[:, 1])) + 20, int(np.nanmax(pts[:, 0])) + 20)
                xlo, xhi, ylo, yhi = zoom_window(np.array(box, dtype=float), pts, shape)
                ax.set_xlim(xlo, xhi)
                ax.set_ylim(yhi, ylo)
        # distinct markers, both visible where they overlap: predicted crosses under
        # hollow reference circles
        if lp is not None and t < len(lp):
            ax.scatter(lp[t, :, 0], lp[t, :, 1], s=14, marker="x", linewidths=0.8,
                       color=PRED_COLOR, label="predicted (x)", zorder=2)
        if lr is not None and t < len(lr):
            ax.scatter(lr[t, :, 0], lr[t, :, 1], s=18, marker="o", facecolors="none",
                       edgecolors=REF_COLOR, linewidths=0.8, label="reference (o)", zorder=3)
        ax.set_title(label, fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
    axes[0].legend(fontsize=6, loc="lower left")
    ax = axes[2]
    for name, ls in (("circ_global", "-"), ("radial", ":")):
        for row, color, who in ((pred, PRED_COLOR, "pred"), (ref, REF_COLOR, "ref")):
            c = _curve(row, name)
            if c is not None:
                ax.plot(np.arange(c.size), c, color=color, ls=ls, lw=1.3,
                        label=f"{who} {name.replace('_', ' ')}")
    ax.axhline(0, color="#999999", lw=0.6)
    ax.set_xlabel("frame (0 = end-diastole)", fontsize=7)
    ax.set_ylabel("Green strain (fraction)", fontsize=7)
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.tick_params(labelsize=7)
    ax.legend(fontsize=6)
    eid, inst, idx = case["key"]
    fig.suptitle(f"{eid} instance {inst} {case['slice_label']}: "
                 + "; ".join(case["reasons"]), fontsize=8)
    fig.tight_layout()
    return to_png(fig)


