"""raytag.phantom.preview: the grid PNG and the registration of its landmark overlay."""

from __future__ import annotations

import struct

import numpy as np
import pytest
from matplotlib.image import imread

from raytag.landmarks import annulus
from raytag.phantom.preview import (
    DPI,
    GID_BOX,
    GID_IMAGE,
    GID_LANDMARKS,
    GID_SPOKE0,
    PANEL_INCHES,
    build_preview_figure,
    render_preview,
)

T = 20
SHAPE = (160, 176)  # rows, cols: non-square so x/y mix-ups show
BRIGHT = 1000


def _slice(label, center, es, theta0=0.3, valid_until=T):
    t = np.arange(T)
    # Contract to ES then relax (smooth, one cycle).
    phase = np.where(t <= es, t / es, 1.0 - (t - es) / (T - 1 - es))
    r_endo = 16.0 - 4.0 * phase
    r_epi = 26.0 - 2.5 * phase
    lms = annulus(center, r_endo, r_epi, theta0=theta0)  # (T, 168, 2)
    frames = np.zeros((T,) + SHAPE, dtype=np.uint16)
    cols = np.rint(lms[..., 0]).astype(int)
    rows = np.rint(lms[..., 1]).astype(int)
    frames[np.arange(T)[:, None], rows, cols] = BRIGHT
    valid = np.arange(T) < valid_until
    return {
        "frames": frames,
        "landmarks": lms,
        "label": label,
        "es_frame": es,
        "frame_valid": valid,
        "es_circ_global": -0.17,
        "es_radial": 0.41,
    }


@pytest.fixture()
def slices():
    a = _slice("9000001 basal", center=(55.3, 47.6), es=7)
    a["bbox"] = np.array([20.0, 12.0, 90.0, 80.0])
    b = _slice("9000001 mid", center=(60.0, 50.0), es=8, theta0=-1.0, valid_until=17)
    return [a, b]


def _png_size(path):
    with open(path, "rb") as f:
        head = f.read(33)
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    assert head[12:16] == b"IHDR"
    return struct.unpack(">II", head[16:24])


def _find(ax, gid):
    arts = [a for a in ax.get_children() if a.get_gid() == gid]
    return arts


def test_render_writes_png_grid(slices, tmp_path):
    out = tmp_path / "sub" / "dir" / "preview.png"
    got = render_preview(slices, out, title="synthetic")
    assert got == str(out) and out.is_file()
    width, height = _png_size(out)
    assert width == pytest.approx(3 * PANEL_INCHES * DPI, abs=2)
    assert 2 * PANEL_INCHES * DPI <= height <= (2 * PANEL_INCHES + 1.0) * DPI
    img = imread(out)
    assert img.shape[:2] == (height, width)
    rgb = img[..., :3]
    assert rgb.std() > 0.05  # not blank
    assert (rgb.max(axis=-1) - rgb.min(axis=-1)).max() > 0.5  # coloured overlay present


def test_figure_layout_titles_and_overlay(slices):
    fig = build_preview_figure(slices)
    axes = fig.axes
    assert len(axes) == 6
    for row, s in enumerate(slices):
        lms = s["landmarks"]
        last = int(np.flatnonzero(s["frame_valid"])[-1])
        expect = [0, s["es_frame"], last]
        names = ["ED", "ES", "late diastole"]
        for col, (t, name) in enumerate(zip(expect, names, strict=True)):
            ax = axes[row * 3 + col]
            assert ax.get_title() == f"{s['label']}\n{name} (frame {t})"
            # Image drawn with pixel centres at integers, origin upper.
            (im,) = _find(ax, GID_IMAGE)
            rows, cols = SHAPE
            assert im.get_extent() == pytest.approx((-0.5, cols - 0.5, rows - 0.5, -0.5))
            assert im.get_interpolation() == "nearest"
            np.testing.assert_array_equal(im.get_array(), s["frames"][t])
            # Landmark overlay in data coordinates == the landmark array of that frame.
            (sc,) = _find(ax, GID_LANDMARKS)
            np.testing.assert_allclose(sc.get_offsets(), lms[t])
            np.testing.assert_array_equal(sc.get_array(), np.arange(168) % 7)
            (line,) = _find(ax, GID_SPOKE0)
            np.testing.assert_allclose(np.column_stack(line.get_data()), lms[t, :7])
            # Zoomed, contains all landmarks, y inverted.
            x0, x1 = ax.get_xlim()
            y0, y1 = ax.get_ylim()
            assert y0 > y1 and ax.yaxis_inverted()
            assert x0 < lms[t, :, 0].min() and lms[t, :, 0].max() < x1
            assert y1 < lms[t, :, 1].min() and lms[t, :, 1].max() < y0
            assert x1 - x0 < cols and y0 - y1 <= rows
            boxes = _find(ax, GID_BOX)
            assert len(boxes) == (1 if t == 0 else 0)
        assert "ES circ -0.170, radial +0.410" in axes[row * 3].get_ylabel()
    # The supplied box is drawn as given (continuous edges).
    (rect,) = _find(axes[0], GID_BOX)
    assert (rect.get_x(), rect.get_y(), rect.get_width(), rect.get_height()) == pytest.approx(
        (20.0, 12.0, 70.0, 68.0)
    )


def test_overlay_registered_with_image_pixels(slices):
    """Rendered image pixels sit where transData (the overlay's transform) says they do.

    With the overlay hidden, every display pixel of every panel (away from data-pixel
    boundaries) must be bright exactly when the data pixel that ``transData`` maps it to is
    a landmark pixel; a half-pixel misregistration would break this everywhere.
    """
    fig = build_preview_figure(slices)
    for ax in fig.axes:
        for gid in (GID_LANDMARKS, GID_SPOKE0, GID_BOX):
            for art in _find(ax, gid):
                art.set_visible(False)
    fig.canvas.draw()
    buf = np.asarray(fig.canvas.buffer_rgba())[..., :3].astype(float).mean(axis=-1) / 255.0
    height = buf.shape[0]
    checked = 0
    for row, s in enumerate(slices):
        ts = [0, s["es_frame"], int(np.flatnonzero(s["frame_valid"])[-1])]
        for col, t in enumerate(ts):
            ax = fig.axes[row * 3 + col]
            (sc,) = _find(ax, GID_LANDMARKS)
            assert sc.get_offset_transform() == ax.transData
            bb = ax.get_window_extent()
            xs = np.arange(int(np.ceil(bb.x0)) + 2, int(np.floor(bb.x1)) - 2) + 0.5
            ys = np.arange(int(np.ceil(bb.y0)) + 2, int(np.floor(bb.y1)) - 2) + 0.5
            gx, gy = np.meshgrid(xs, ys)
            disp = np.column_stack([gx.ravel(), gy.ravel()])
            data = ax.transData.inverted().transform(disp)
            scale = np.abs(
                ax.transData.transform([[1.0, 1.0]]) - ax.transData.transform([[0.0, 0.0]])
            )
            assert (scale > 2).all()  # zoomed in: > 2 display px per data px
            ij = np.floor(data + 0.5)  # data pixel (col, row) containing the point
            edge = np.abs(data - ij)  # 0 at the pixel centre, 0.5 at its edge
            inner = ((0.5 - edge) * scale > 0.6).all(axis=1)
            c, r = ij[:, 0].astype(int), ij[:, 1].astype(int)
            frame = s["frames"][t]
            inside = (c >= 0) & (c < frame.shape[1]) & (r >= 0) & (r < frame.shape[0]) & inner
            expect = frame[r[inside], c[inside]] > 0
            py = (height - disp[inside, 1]).astype(int)  # row from top of the pixel centre
            px = disp[inside, 0].astype(int)
            got = buf[py, px] > 0.5
            assert expect.sum() > 100
            np.testing.assert_array_equal(got, expect)
            checked += 1
    assert checked == 6


def test_frames_to_show_and_default_box(slices, tmp_path):
    s = dict(slices[1])
    s.pop("bbox", None)
    s.pop("es_circ_global")
    s.pop("es_radial")
    fig = build_preview_figure([s], frames_to_show=[0, 3, -1, 5])
    assert len(fig.axes) == 4
    titles = [ax.get_title().split("\n")[1] for ax in fig.axes]
    assert titles == ["ED (frame 0)", "frame 3", "frame 19", "frame 5"]
    assert len(_find(fig.axes[0], GID_BOX)) == 1  # box derived from the ED landmarks
    assert fig.axes[0].get_ylabel() == "9000001 mid"
    with pytest.raises(ValueError):
        build_preview_figure([s], frames_to_show=[0, 25])
    with pytest.raises(ValueError):
        build_preview_figure([])
