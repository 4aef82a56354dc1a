"""A PNG preview of tagged cines with their truth landmarks overlaid (for a person to look at).

One row per slice, one column per chosen frame (default: ED = frame 0, ES = the slice's
``es_frame``, late diastole = the last valid frame). Each panel shows the grayscale frame
(``imshow``, origin upper, nearest-neighbour, contrast from the 1st..99.5th percentile of
that slice's valid frames) zoomed to the heart, with the 168 landmarks (docs/conventions.md
"Landmarks") as small dots coloured by the transmural index ``r = i % 7`` (endocardium
``r = 0`` cyan ... epicardium ``r = 6`` magenta), spoke ``k = 0`` (mid-septum, indices 0..6)
as a green line so orientation is visible, and on the ED panel the ROI box as a yellow
dashed rectangle.

Coordinates: the image is drawn with ``imshow``'s default extent
``(-0.5, cols - 0.5, rows - 0.5, -0.5)``, so pixel centres sit at integer data coordinates,
exactly the landmark convention (``x`` = column, ``y`` = row, 0-based), and the box's
continuous edge coordinates ``(x1, y1, x2, y2)`` are drawn as they are.

Uses :class:`matplotlib.figure.Figure` with the Agg canvas directly (no pyplot, no global
backend state). Pure numpy + matplotlib: imports neither Ray nor torch.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from raytag.constants import N_LANDMARKS, N_TRANSMURAL
from raytag.geometry import roi_box
from raytag.metrics import zoom_window

__all__ = ["build_preview_figure", "render_preview"]

#: Sequential colormap for the transmural index r = 0 (endo) .. 6 (epi); bright on gray.
LANDMARK_CMAP = "cool"
SPOKE0_COLOR = "#00ff00"
BOX_COLOR = "yellow"
PANEL_INCHES = 3.0
DPI = 100

# gids so that tests (and people) can find the overlay artists on an axes.
GID_IMAGE = "frame"
GID_LANDMARKS = "landmarks"
GID_SPOKE0 = "spoke0"
GID_BOX = "roi_box"


def _last_valid(frame_valid: np.ndarray | None, n_frames: int) -> int:
    if frame_valid is None:
        return n_frames - 1
    valid = np.flatnonzero(np.asarray(frame_valid, dtype=bool)[:n_frames])
    return int(valid[-1]) if valid.size else n_frames - 1


def _column_name(t: int, es: int, last: int) -> str:
    if t == 0:
        return "ED"
    if t == es:
        return "ES"
    if t == last:
        return "late diastole"
    return ""


def _row_label(s: Mapping) -> str:
    label = str(s.get("label", ""))
    parts = []
    for key, name in (("es_circ_global", "circ"), ("es_radial", "radial")):
        v = s.get(key)
        if v is not None and np.isfinite(float(v)):
            parts.append(f"{name} {float(v):+.3f}")
    if parts:
        label += "\nES " + ", ".join(parts)
    return label


def build_preview_figure(
    slices: Sequence[Mapping],
    frames_to_show: Sequence[int] | None = None,
    title: str | None = None,
) -> Figure:
    """Build (but do not save) the preview figure; see :func:`render_preview`.

    The returned :class:`~matplotlib.figure.Figure` already has an Agg canvas attached.
    Its axes are ``fig.axes`` in row-major order (slice, column). On each axes the frame is
    the ``AxesImage`` with gid ``"frame"``, the landmarks the scatter with gid
    ``"landmarks"`` (offsets = the frame's ``(168, 2)`` landmarks in data coordinates), the
    mid-septal spoke the line with gid ``"spoke0"``, and (ED panel, when a box is known) the
    rectangle with gid ``"roi_box"``.
    """
    slices = list(slices)
    if not slices:
        raise ValueError("no slices to preview")

    # Resolve per-slice arrays and columns first so the grid size is known.
    rows_spec = []
    for j, s in enumerate(slices):
        frames = np.asarray(s["frames"])
        lms = np.asarray(s["landmarks"], dtype=np.float64)
        if frames.ndim != 3:
            raise ValueError(f"slice {j}: frames must be (T, rows, cols), got {frames.shape}")
        n_t = frames.shape[0]
        if lms.shape != (n_t, N_LANDMARKS, 2):
            raise ValueError(
                f"slice {j}: landmarks must be ({n_t}, {N_LANDMARKS}, 2), got {lms.shape}"
            )
        valid = s.get("frame_valid")
        valid = None if valid is None else np.asarray(valid, dtype=bool)
        last = _last_valid(valid, n_t)
        es = int(s["es_frame"])
        ts = [0, es, last] if frames_to_show is None else [int(t) for t in frames_to_show]
        ts = [t + n_t if t < 0 else t for t in ts]
        for t in ts:
            if not 0 <= t < n_t:
                raise ValueError(f"slice {j}: frame {t} out of range for {n_t} frames")
        box = s.get("bbox")
        box = roi_box(lms[0]) if box is None else np.asarray(box, dtype=np.float64)
        rows_spec.append((s, frames, lms, valid, es, last, ts, box))

    n_rows = len(rows_spec)
    n_cols = max(len(spec[6]) for spec in rows_spec)
    fig = Figure(
        figsize=(PANEL_INCHES * n_cols, PANEL_INCHES * n_rows + 0.6),
        dpi=DPI,
        layout="constrained",
    )
    FigureCanvasAgg(fig)
    axes = fig.subplots(n_rows, n_cols, squeeze=False)
    r_index = np.arange(N_LANDMARKS) % N_TRANSMURAL

    for row, (s, frames, lms, valid, es, last, ts, box) in enumerate(rows_spec):
        stack = frames if valid is None or not valid.any() else frames[valid[: len(frames)]]
        vmin, vmax = np.percentile(stack.astype(np.float64), [1.0, 99.5])
        if not vmax > vmin:
            vmax = vmin + 1.0
        window = zoom_window(box, lms[ts].reshape(-1, 2), frames.shape[1:])
        label = str(s.get("label", f"slice {row}"))
        for col in range(n_cols):
            ax = axes[row, col]
            ax.set_xticks([])
            ax.set_yticks([])
            if col >= len(ts):
                ax.set_axis_off()
                continue
            t = ts[col]
            ax.imshow(
                frames[t],
                cmap="gray",
                vmin=vmin,
                vmax=vmax,
                interpolation="nearest",
                origin="upper",
                gid=GID_IMAGE,
            )
            pts = lms[t]
            ax.scatter(
                pts[:, 0],
                pts[:, 1],
                c=r_index,
                cmap=LANDMARK_CMAP,
                vmin=0,
                vmax=N_TRANSMURAL - 1,
                s=7,
                linewidths=0,
                gid=GID_LANDMARKS,
                zorder=3,
            )
            ax.plot(
                pts[:N_TRANSMURAL, 0],
                pts[:N_TRANSMURAL, 1],
                color=SPOKE0_COLOR,
                lw=1.5,
                gid=GID_SPOKE0,
                zorder=4,
            )
            if t == 0 and np.all(np.isfinite(box)):
                x1, y1, x2, y2 = box
                ax.add_patch(
                    Rectangle(
                        (x1, y1),
                        x2 - x1,
                        y2 - y1,
                        fill=False,
                        edgecolor=BOX_COLOR,
                        lw=1.0,
                        ls="--",
                        gid=GID_BOX,
                        zorder=2,
                    )
                )
            xlo, xhi, ylo, yhi = window
            ax.set_xlim(xlo, xhi)
            ax.set_ylim(yhi, ylo)  # origin upper: y increases downwards
            name = _column_name(t, es, last)
            ax.set_title(
                f"{label}\n{name} (frame {t})" if name else f"{label}\nframe {t}", fontsize=9
            )
            if col == 0:
                ax.set_ylabel(_row_label(s), fontsize=9)

    if title:
        fig.suptitle(title, fontsize=11)
    fig.supxlabel(
        "dots: landmarks, endocardium r=0 (cyan) to epicardium r=6 (magenta); "
        "green: spoke k=0 (mid-septum); yellow dashed: ROI box (ED)",
        fontsize=8,
    )
    return fig


def render_preview(
    slices: Sequence[Mapping],
    out_png: str | os.PathLike,
    frames_to_show: Sequence[int] | None = None,
    title: str | None = None,
) -> str:
    """Draw a grid PNG of ``slices`` with their truth landmarks; return the path written.

    Parameters
    ----------
    slices : sequence of mappings, one per grid row, each with
        ``frames`` ``(T, rows, cols)`` numeric; ``landmarks`` ``(T, 168, 2)`` float
        ``(x, y)`` pixels; ``label`` str (e.g. ``"9000001 basal"``); ``es_frame`` int;
        optional ``bbox`` ``(4,)`` ``(x1, y1, x2, y2)`` continuous edges (default: the
        ROI box of the ED landmarks, :func:`raytag.geometry.roi_box`); optional
        ``frame_valid`` ``(T,)`` bool (default all valid); optional ``es_circ_global`` and
        ``es_radial`` floats, shown in the row label.
    out_png : path of the PNG to write (parent folders are created; local paths only).
    frames_to_show : frame indices for the columns, the same for every slice (negative
        counts from the end); default ``[0, es_frame, last valid frame]`` per slice.
    title : optional figure title.
    """
    fig = build_preview_figure(slices, frames_to_show=frames_to_show, title=title)
    out_png = os.fspath(out_png)
    parent = os.path.dirname(out_png)
    if parent:
        os.makedirs(parent, exist_ok=True)
    fig.savefig(out_png, dpi=DPI, format="png")
    return out_png
