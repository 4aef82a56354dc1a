"""Tests for raytag.geometry: expectations worked out by hand, not re-derived from the code."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from raytag.constants import CROP_SIZE, PAD_SIZE
from raytag.geometry import (
    box_iou,
    crop_resample,
    cubic_weights,
    mm_to_px,
    pad_offsets,
    pad_to_square,
    points_from_crop,
    points_from_padded,
    points_to_crop,
    points_to_padded,
    px_to_mm,
    roi_box,
)

coord = st.floats(-300, 600, allow_nan=False, allow_infinity=False)
extent = st.floats(0.5, 500, allow_nan=False, allow_infinity=False)  # very non-square too
points_arr = hnp.arrays(np.float64, (3, 5, 2), elements=coord)


@st.composite
def boxes(draw, n=3):
    x1 = np.array(draw(st.lists(coord, min_size=n, max_size=n)))
    y1 = np.array(draw(st.lists(coord, min_size=n, max_size=n)))
    w = np.array(draw(st.lists(extent, min_size=n, max_size=n)))
    h = np.array(draw(st.lists(extent, min_size=n, max_size=n)))
    return np.stack([x1, y1, x1 + w, y1 + h], axis=-1)


# --- Padding ----------------------------------------------------------------------------


def test_pad_ukb_matrix_offsets_and_pixels():
    img = np.arange(256 * 174, dtype=np.uint16).reshape(256, 174)
    padded, off = pad_to_square(img)
    assert off == (0, 41) and pad_offsets((256, 174)) == (0, 41)
    assert padded.shape == (PAD_SIZE, PAD_SIZE) and padded.dtype == np.uint16
    np.testing.assert_array_equal(padded[:, 41 : 41 + 174], img)
    assert not padded[:, :41].any() and not padded[:, 41 + 174 :].any()


def test_pad_too_tall_is_centre_cropped_and_point_map_exact():
    rng = np.random.default_rng(0)
    img = rng.integers(1, 1000, size=(2, 300, 200)).astype(np.float32)
    padded, (ro, co) = pad_to_square(img)
    assert (ro, co) == (-22, 28)
    assert padded.shape == (2, 256, 256)
    np.testing.assert_array_equal(padded[:, :, 28:228], img[:, 22:278, :])
    # Every original pixel that survives sits where the point map says it does.
    ys, xs = np.mgrid[22:278, 0:200]
    pts = np.stack([xs, ys], axis=-1).reshape(-1, 2)
    pp = points_to_padded(pts, (ro, co))
    np.testing.assert_array_equal(
        padded[:, pp[:, 1].astype(int), pp[:, 0].astype(int)], img[:, pts[:, 1], pts[:, 0]]
    )


@settings(max_examples=50, deadline=None)
@given(points_arr, st.integers(-100, 100), st.integers(-100, 100))
def test_padded_round_trip(points, ro, co):
    there = points_to_padded(points, (ro, co))
    np.testing.assert_allclose(there[..., 0] - points[..., 0], co, atol=1e-9)
    np.testing.assert_allclose(there[..., 1] - points[..., 1], ro, atol=1e-9)
    np.testing.assert_allclose(points_from_padded(there, (ro, co)), points, atol=1e-6)


# --- Boxes ------------------------------------------------------------------------------


def test_roi_box_hand_computed():
    square = np.array([[10, 20], [30, 20], [30, 40], [10, 40], [20, 30]], float)
    np.testing.assert_allclose(roi_box(square), [4, 14, 36, 46])  # 20 px * 0.3 = 6
    rect = np.array([[0, 0], [100, 10]], float)  # 100 wide, 10 high
    np.testing.assert_allclose(roi_box(rect), [-30, -3, 130, 13])
    # Batched: (B, N, 2) -> (B, 4)
    batched = roi_box(np.stack([square, square + 1]))
    np.testing.assert_allclose(batched, [[4, 14, 36, 46], [5, 15, 37, 47]])


def test_box_iou_hand_computed():
    a = np.array([0.0, 0.0, 2.0, 1.0])
    assert box_iou(a, a) == pytest.approx(1.0)
    assert box_iou(a, [5, 5, 6, 6]) == 0.0
    assert box_iou(a, [1, 0, 3, 1]) == pytest.approx(1 / 3)  # overlap 1, union 3
    assert box_iou(a, [0.5, 0.25, 1.5, 0.75]) == pytest.approx(0.25)  # contained, 0.5/2
    out = box_iou(np.stack([a, [1, 0, 3, 1]]), a)
    np.testing.assert_allclose(out, [1.0, 1 / 3])
    assert box_iou([0, 0, 0, 0], [0, 0, 0, 0]) == 0.0


# --- Crop map ---------------------------------------------------------------------------


def test_crop_map_corners_and_centre():
    box = np.array([20.0, 50.0, 120.0, 80.0])  # 100 x 30: separate scales
    s = CROP_SIZE
    corners = np.array([[20.0, 50.0], [120.0, 80.0], [70.0, 65.0]])
    np.testing.assert_allclose(
        points_to_crop(corners, box),
        [[-0.5, -0.5], [s - 0.5, s - 0.5], [(s - 1) / 2, (s - 1) / 2]],
        atol=1e-12,
    )
    # One original pixel step is size/width crop px in x and size/height in y.
    d = points_to_crop(np.array([[21.0, 51.0]]), box) - points_to_crop(corners[:1], box)
    np.testing.assert_allclose(d, [[s / 100, s / 30]])
    # A different size.
    np.testing.assert_allclose(points_to_crop(corners, box, size=64)[1], [63.5, 63.5])


@settings(max_examples=50, deadline=None)
@given(points_arr, boxes())
def test_crop_round_trip(points, bx):
    # points (B=3, N=5, 2) with boxes (3, 4), including boxes up to 1000:1 in aspect.
    c = points_to_crop(points, bx)
    assert c.shape == points.shape
    np.testing.assert_allclose(points_from_crop(c, bx), points, atol=1e-6)
    np.testing.assert_allclose(
        points_to_crop(points_from_crop(points, bx), bx), points, atol=1e-6, rtol=1e-9
    )
    # Each item uses its own box.
    for b in range(3):
        np.testing.assert_allclose(c[b], points_to_crop(points[b], bx[b]), atol=1e-9)


def test_crop_map_broadcasts_over_frames():
    rng = np.random.default_rng(1)
    pts = rng.uniform(0, 200, size=(2, 4, 6, 2))  # (B, T, N, 2)
    bx = np.array([[10.0, 20.0, 110.0, 60.0], [0.0, 0.0, 50.0, 150.0]])  # (B, 4)
    c = points_to_crop(pts, bx)
    assert c.shape == pts.shape
    for b in range(2):
        for t in range(4):
            np.testing.assert_allclose(c[b, t], points_to_crop(pts[b, t], bx[b]))
    with pytest.raises(ValueError):
        points_to_crop(pts[0, 0, 0], bx)  # box has more axes than the points


# --- Cubic weights ----------------------------------------------------------------------


def test_cubic_weights_hand_values():
    # Keys a=-0.75 at half a pixel: k(0.5) = 0.59375, k(1.5) = -0.09375 (OpenCV's values).
    w = cubic_weights(np.array([2.5]), 6)
    np.testing.assert_allclose(w, [[0, -0.09375, 0.59375, 0.59375, -0.09375, 0]], atol=1e-15)


def test_cubic_weights_partition_of_unity_and_integers():
    n = 20
    rng = np.random.default_rng(2)
    t = rng.uniform(1.0, n - 2.0, size=(3, 50))  # all 4 taps inside the signal
    w = cubic_weights(t, n)
    assert w.shape == (3, 50, n)
    np.testing.assert_allclose(w.sum(-1), 1.0, atol=1e-12)
    assert ((w != 0).sum(-1) <= 4).all()
    sig = rng.normal(size=n)
    ints = np.arange(n, dtype=float)
    np.testing.assert_allclose(cubic_weights(ints, n) @ sig, sig, atol=1e-12)
    np.testing.assert_array_equal(cubic_weights(ints, n), np.eye(n))
    # Linear signals: Catmull-Rom (a = -0.5) reproduces them exactly ...
    np.testing.assert_allclose(cubic_weights(t, n, a=-0.5) @ ints, t, atol=1e-9)
    # ... a = -0.75 only up to its known first-moment bias (see _linear_bias).
    np.testing.assert_allclose(w @ (3.0 * ints - 7.0), 3.0 * (t + _linear_bias(t)) - 7.0, atol=1e-9)
    assert np.abs(_linear_bias(t)).max() < 0.049


def test_cubic_weights_zero_outside():
    w = cubic_weights(np.array([-1e6, -2.0, 11.0, 1e6, -0.5]), 10)
    assert w.shape == (5, 10)
    assert not w[:4].any()  # 2 px or more outside a 10-sample signal: nothing reads in
    # Half a pixel before the start: taps -2, -1 are dropped, 0 and 1 keep their weights.
    np.testing.assert_allclose(w[4, :3], [0.59375, -0.09375, 0.0])


# --- crop_resample ----------------------------------------------------------------------


def _linear_bias(t, a=-0.75):
    """Keys cubic convolution of the signal s[i] = i, minus t, at positions t.

    With f = t - floor(t), the four taps sit at distances 1+f, f, 1-f, 2-f; summing
    tap * k(distance) with the piecewise kernel and simplifying by hand gives
    -(a + 1/2) * 2f(1-f)(1-2f): zero for Catmull-Rom (a = -1/2), and for a = -3/4 at most
    about 0.048 samples (at f ~ 0.21). So the torch/OpenCV kernel does *not* reproduce
    linear functions exactly; the ramp test below expects this exact bias.
    """
    f = t - np.floor(t)
    return -(a + 0.5) * 2 * f * (1 - f) * (1 - 2 * f)


def _crop_pixel_coords(box, size=CROP_SIZE):
    """Original (X, Y) sampled by each crop pixel: pixel u covers fraction
    [u, u+1]/size of the box, so its centre lies at x1 + (u + 0.5) / size * width."""
    x1, y1, x2, y2 = box
    u = np.arange(size)
    X = x1 + (u + 0.5) / size * (x2 - x1)
    Y = y1 + (u + 0.5) / size * (y2 - y1)
    return np.meshgrid(X, Y)  # each (size, size), [row v, col u]


def test_crop_resample_linear_ramp_non_square_box():
    rows, cols = 200, 180
    y, x = np.mgrid[0:rows, 0:cols].astype(float)
    gx, gy, c = 1.5, -0.7, 400.0
    img = gx * x + gy * y + c
    box = np.array([30.0, 40.0, 150.0, 100.0])  # 120 x 60: x scale 1.07, y scale 2.13
    out = crop_resample(img, box)
    assert out.shape == (CROP_SIZE, CROP_SIZE) and out.dtype == np.float32
    X, Y = _crop_pixel_coords(box)
    # Separable bicubic of gx*x + gy*y + c samples each axis's identity with its own bias.
    expected = gx * (X + _linear_bias(X)) + gy * (Y + _linear_bias(Y)) + c
    np.testing.assert_allclose(out, expected, atol=2e-3)
    # The bias is small: within 0.05 * (|gx| + |gy|) of the ramp itself. A single-scale
    # crop would be off by tens of pixels in y here.
    np.testing.assert_allclose(out, gx * X + gy * Y + c, atol=0.05 * (abs(gx) + abs(gy)))
    # Catmull-Rom reproduces the ramp exactly, at points_from_crop of the pixel centres.
    v, u = np.mgrid[0:CROP_SIZE, 0:CROP_SIZE].astype(float)
    P = points_from_crop(np.stack([u, v], -1), box)
    np.testing.assert_allclose(
        crop_resample(img, box, a=-0.5), gx * P[..., 0] + gy * P[..., 1] + c, atol=2e-3
    )


def _blob(shape, x0, y0, sigma):
    y, x = np.mgrid[0 : shape[0], 0 : shape[1]].astype(float)
    return 1000.0 * np.exp(-((x - x0) ** 2 + (y - y0) ** 2) / (2 * sigma**2))


def _centroid(img):
    v, u = np.mgrid[0 : img.shape[0], 0 : img.shape[1]].astype(float)
    m = img.sum()
    return np.array([(img * u).sum() / m, (img * v).sum() / m])


@pytest.mark.parametrize("x0,y0", [(71.3, 77.8), (90.0, 60.0), (55.6, 92.25)])
def test_crop_resample_blob_centroid_matches_point_map(x0, y0):
    img = _blob((200, 180), x0, y0, sigma=2.0)
    box = np.array([30.0, 40.0, 130.0, 110.0])  # 100 x 70
    out = crop_resample(img, box).astype(np.float64)
    expected = points_to_crop(np.array([x0, y0]), box)
    np.testing.assert_allclose(_centroid(out), expected, atol=0.05)


def test_crop_resample_reads_zero_outside_image():
    img = np.ones((50, 60), np.uint16)
    box = np.array([-100.0, -100.0, -70.0, -80.0])  # entirely outside
    assert not crop_resample(img, box, size=16).any()
    inner = crop_resample(img, np.array([10.0, 10.0, 40.0, 30.0]), size=16)
    np.testing.assert_allclose(inner, 1.0, atol=1e-5)


def test_crop_resample_batch_shapes():
    rng = np.random.default_rng(3)
    B, T, rows, cols = 2, 3, 40, 36
    frames = rng.integers(0, 4000, size=(B, T, rows, cols)).astype(np.uint16)
    bx = np.array([[5.0, 4.0, 30.0, 20.0], [2.0, 8.0, 12.0, 38.0]])  # (B, 4)
    out = crop_resample(frames, bx, size=24)
    assert out.shape == (B, T, 24, 24) and out.dtype == np.float32
    for b in range(B):
        for t in range(T):
            np.testing.assert_allclose(
                out[b, t], crop_resample(frames[b, t], bx[b], size=24), rtol=1e-5, atol=1e-2
            )
    # One box for everything.
    assert crop_resample(frames, bx[0], size=24).shape == (B, T, 24, 24)


# --- Units ------------------------------------------------------------------------------


def test_px_mm_hand_and_broadcast():
    pts = np.array([[10.0, 20.0]])  # x = 10 columns, y = 20 rows
    spacing = np.array([2.0, 0.5])  # row spacing 2 mm, col spacing 0.5 mm
    np.testing.assert_allclose(px_to_mm(pts, spacing), [[5.0, 40.0]])
    np.testing.assert_allclose(mm_to_px([[5.0, 40.0]], spacing), pts)
    rng = np.random.default_rng(4)
    p = rng.uniform(0, 256, size=(2, 5, 7, 2))  # (B, T, N, 2)
    sp = np.array([[1.4, 1.4], [1.2, 1.6]])  # (B, 2)
    mm = px_to_mm(p, sp)
    np.testing.assert_allclose(mm[1, ..., 0], p[1, ..., 0] * 1.6)
    np.testing.assert_allclose(mm[1, ..., 1], p[1, ..., 1] * 1.2)
    np.testing.assert_allclose(mm_to_px(mm, sp), p, atol=1e-9)
