"""Pad, crop, resample and map coordinates between the image spaces of the pipeline.

Pure numpy, vectorised over any leading batch axes (no per-frame Python loops).

Conventions (docs/conventions.md "Landmarks" and "Preprocessing"):

* **Points** are ``(..., 2)`` float arrays of ``(x, y)`` = (column, row) in pixels,
  0-based, with pixel *centres* at integers: pixel ``i`` covers the continuous
  interval ``[i - 0.5, i + 0.5]``.
* **Images** are ``(..., rows, cols)``.
* **Boxes** are ``(..., 4)`` float64 ``(x1, y1, x2, y2)``: continuous-coordinate
  *edges* (not pixel indices), so a box ``[x1, x2]`` has width ``x2 - x1``.
* **Pixel spacing** is ``(..., 2)`` = (row spacing, col spacing) in mm, as DICOM
  ``PixelSpacing``: ``mm_x = x * col_spacing``, ``mm_y = y * row_spacing``.

Three pixel spaces occur: *original* (the DICOM matrix), *padded* (centred in a
``PAD_SIZE`` square, :func:`pad_to_square`) and *crop* (the ROI box resampled to a
``CROP_SIZE`` square, :func:`crop_resample`). The point maps between them are exact
affine maps with exact inverses; the crop map has *separate* x and y scales.

**Broadcasting of per-item parameters** (boxes, spacings). A parameter array of shape
``P + (k,)`` is *left-aligned* with the data it applies to: its batch axes ``P`` are the
*leading* axes of the data, and it is broadcast over all remaining data axes. So with
``boxes`` of shape ``(B, 4)``:

* points ``(B, N, 2)``       -> box ``b`` maps ``points[b]``;
* points ``(B, T, N, 2)``    -> box ``b`` maps ``points[b, t]`` for every frame ``t``;
* frames ``(B, T, rows, cols)`` -> box ``b`` crops every frame ``frames[b, t]``.

One box ``(4,)`` applies to everything; per-frame boxes ``(B, T, 4)`` also work. Each
of ``P``'s axes must equal the data axis it aligns with, or be 1.
"""

from __future__ import annotations

import numpy as np

from raytag.constants import CROP_SIZE, PAD_SIZE, ROI_MARGIN

__all__ = [
    "pad_offsets",
    "pad_to_square",
    "points_to_padded",
    "points_from_padded",
    "roi_box",
    "box_iou",
    "points_to_crop",
    "points_from_crop",
    "cubic_weights",
    "crop_resample",
    "crop_weights",
    "px_to_mm",
    "mm_to_px",
]


def _align(param: np.ndarray, data_ndim: int) -> np.ndarray:
    """Insert size-1 axes before the last axis of ``param`` so it has ``data_ndim`` axes.

    This is the left-alignment rule of the module docstring: ``param`` ``P + (k,)``
    becomes ``P + (1,) * m + (k,)``, which numpy then broadcasts over the trailing data
    axes (points, frames) that ``P`` does not name.
    """
    missing = data_ndim - param.ndim
    if missing < 0:
        raise ValueError(
            f"parameter of shape {param.shape} has more axes than the data it applies to "
            f"({data_ndim} axes)"
        )
    return param.reshape(param.shape[:-1] + (1,) * missing + param.shape[-1:])


# --- Padding ----------------------------------------------------------------------------


def pad_offsets(shape_rc: tuple[int, int], size: int = PAD_SIZE) -> tuple[int, int]:
    """Offsets that centre an image of ``shape_rc = (rows, cols)`` in a ``size`` square.

    Returns ``(row_off, col_off)`` as Python ints, ``off = (size - n) // 2``: padded
    pixel ``(r + row_off, c + col_off)`` holds original pixel ``(r, c)``. A dimension
    larger than ``size`` gets a negative offset, i.e. it is centre-*cropped*; the same
    formula keeps the point map exact in both cases.
    """
    rows, cols = (int(n) for n in shape_rc)
    return (size - rows) // 2, (size - cols) // 2


def pad_to_square(frames: np.ndarray, size: int = PAD_SIZE) -> tuple[np.ndarray, tuple[int, int]]:
    """Zero-pad (or centre-crop) ``frames`` ``(..., rows, cols)`` to ``(..., size, size)``.

    The dtype is preserved. Returns ``(padded, (row_off, col_off))`` with the offsets of
    :func:`pad_offsets`; map points with :func:`points_to_padded` /
    :func:`points_from_padded`.
    """
    frames = np.asarray(frames)
    offsets = pad_offsets(frames.shape[-2:], size)
    out = np.zeros(frames.shape[:-2] + (size, size), dtype=frames.dtype)
    dst, src = [], []
    for n, off in zip(frames.shape[-2:], offsets, strict=True):
        # A positive offset shifts the source into the canvas; a negative one skips
        # -off source pixels. Either way copy the overlap only.
        d0, s0 = max(off, 0), max(-off, 0)
        length = min(n - s0, size - d0)
        dst.append(slice(d0, d0 + length))
        src.append(slice(s0, s0 + length))
    out[(..., *dst)] = frames[(..., *src)]
    return out, offsets


def points_to_padded(points: np.ndarray, offsets: tuple[int, int]) -> np.ndarray:
    """Original-pixel points ``(..., 2)`` -> padded-pixel points (float64, same shape).

    ``offsets`` is ``(row_off, col_off)`` from :func:`pad_to_square`.
    """
    row_off, col_off = offsets
    return np.asarray(points, dtype=np.float64) + np.array([col_off, row_off], np.float64)


def points_from_padded(points: np.ndarray, offsets: tuple[int, int]) -> np.ndarray:
    """Padded-pixel points ``(..., 2)`` -> original-pixel points; inverse of
    :func:`points_to_padded`."""
    row_off, col_off = offsets
    return np.asarray(points, dtype=np.float64) - np.array([col_off, row_off], np.float64)


# --- Boxes ------------------------------------------------------------------------------


def roi_box(points_ed: np.ndarray, margin: float = ROI_MARGIN) -> np.ndarray:
    """ROI box of the ED landmarks ``(..., N, 2)`` -> ``(..., 4)`` float64 ``(x1, y1, x2, y2)``.

    The landmarks' extent enlarged by ``margin * width`` on the left and right and
    ``margin * height`` above and below (margin 0.3 is the paper's "60% increase").
    Coincident landmarks give a zero-size box, which the crop maps cannot use.
    """
    p = np.asarray(points_ed, dtype=np.float64)
    lo, hi = p.min(axis=-2), p.max(axis=-2)  # (..., 2) as (x, y)
    grow = margin * (hi - lo)
    return np.concatenate([lo - grow, hi + grow], axis=-1)


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Intersection over union of boxes ``a`` and ``b`` ``(..., 4)`` (numpy broadcasting).

    Returns ``(...)`` float64 in [0, 1]; 0 where the union is empty.
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    iw = np.clip(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]), 0, None)
    ih = np.clip(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]), 0, None)
    inter = iw * ih
    area_a = (a[..., 2] - a[..., 0]) * (a[..., 3] - a[..., 1])
    area_b = (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])
    union = area_a + area_b - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


# --- Crop map ---------------------------------------------------------------------------


def _crop_affine(boxes: np.ndarray, data_ndim: int, size: int):
    """Origin ``(x1, y1)`` and scales ``(size/w, size/h)``, aligned to the data, ``(..., 2)``."""
    bx = _align(np.asarray(boxes, dtype=np.float64), data_ndim)
    origin = bx[..., 0:2]
    scale = size / (bx[..., 2:4] - bx[..., 0:2])  # separate x and y scales
    return origin, scale


def points_to_crop(points: np.ndarray, boxes: np.ndarray, size: int = CROP_SIZE) -> np.ndarray:
    """Points in the image the boxes refer to -> crop pixels of :func:`crop_resample`.

    The box's continuous extent ``[x1, x2]`` maps onto the crop's ``[-0.5, size - 0.5]``
    (likewise y, with its own scale): ``c = (x - x1) * size / (x2 - x1) - 0.5``.

    points: ``(..., 2)`` float, e.g. ``(B, N, 2)`` or ``(B, T, N, 2)``.
    boxes: ``(..., 4)``, left-aligned with ``points`` (module docstring): ``(B, 4)``
    maps every point of item ``b``. Returns float64 of the broadcast shape.
    """
    p = np.asarray(points, dtype=np.float64)
    origin, scale = _crop_affine(boxes, p.ndim, size)
    return (p - origin) * scale - 0.5


def points_from_crop(
    points_crop: np.ndarray, boxes: np.ndarray, size: int = CROP_SIZE
) -> np.ndarray:
    """Crop pixels -> points in the boxes' image; exact inverse of :func:`points_to_crop`.

    ``x = x1 + (c + 0.5) * (x2 - x1) / size``. Shapes and broadcasting as there.
    """
    c = np.asarray(points_crop, dtype=np.float64)
    origin, scale = _crop_affine(boxes, c.ndim, size)
    return (c + 0.5) / scale + origin


# --- Resampling -------------------------------------------------------------------------


def _keys(s: np.ndarray, a: float) -> np.ndarray:
    """Keys cubic-convolution kernel at distances ``s`` (zero for ``|s| >= 2``)."""
    s = np.abs(s)
    s2, s3 = s * s, s * s * s
    near = (a + 2) * s3 - (a + 3) * s2 + 1
    far = a * s3 - 5 * a * s2 + 8 * a * s - 4 * a
    return np.where(s <= 1, near, np.where(s < 2, far, 0.0))


def cubic_weights(sample_coords: np.ndarray, n_in: int, a: float = -0.75) -> np.ndarray:
    """Cubic-convolution interpolation matrix for a 1-D signal of length ``n_in``.

    sample_coords: ``(..., n_out)`` continuous positions in the signal's pixel
    coordinates (sample ``i`` at ``i``). Returns ``W`` ``(..., n_out, n_in)`` float64 with
    ``W @ signal`` the interpolated values. The kernel is Keys' with ``a = -0.75``, as
    torch's bicubic and OpenCV's ``INTER_CUBIC``. Each output uses the 4 taps
    ``floor(t) - 1 .. floor(t) + 2``; taps outside ``[0, n_in)`` are dropped, i.e. the
    signal reads zero outside (images are zero-padded), rather than torch's clamping.

    Rows sum to 1 where all 4 taps are inside, and integer positions reproduce the
    signal exactly. Note that only ``a = -0.5`` (Catmull-Rom) reproduces *linear*
    signals exactly; with ``a = -0.75`` interpolating ``s[i] = i`` at ``t = i0 + f``
    gives ``t - (a + 0.5) * 2f(1 - f)(1 - 2f)``, a bias of at most 0.048 samples.
    """
    t = np.asarray(sample_coords, dtype=np.float64)
    i0 = np.floor(t)
    taps = i0[..., None] + np.arange(-1, 3)  # (..., n_out, 4)
    w = _keys(t[..., None] - taps, a)
    inside = (taps >= 0) & (taps < n_in)
    w = np.where(inside, w, 0.0)
    # Scatter into a matrix with one spare column on each side: valid taps are distinct
    # columns 1..n_in; dropped taps (weight 0) all land in the spare columns, where
    # colliding writes are harmless. Clipping first keeps far-out indices in range.
    idx = (np.clip(taps, -1, n_in) + 1).astype(np.intp)
    out = np.zeros(t.shape + (n_in + 2,), dtype=np.float64)
    np.put_along_axis(out, idx, w, axis=-1)
    return out[..., 1:-1]


def crop_resample(
    frames: np.ndarray, boxes: np.ndarray, size: int = CROP_SIZE, a: float = -0.75
) -> np.ndarray:
    """Crop every frame with its box and resample bicubically to ``(size, size)``.

    frames: ``(..., rows, cols)`` any real dtype, e.g. ``(B, T, rows, cols)``.
    boxes: ``(..., 4)`` in the frames' pixel coordinates, left-aligned with the frames'
    batch axes (module docstring): ``(B, 4)`` applies one (ED) box to all ``T`` frames
    of item ``b``; ``(4,)`` applies one box to all frames.
    Returns ``(..., size, size)`` float32, the broadcast batch shape.

    Crop pixel ``(u, v)`` samples the frame at ``points_from_crop((u, v))``, the same
    map as for points, so images and landmarks stay consistent. Separate x and y scales;
    outside the frame reads zero. No antialiasing when shrinking (as the paper's bicubic).
    ``a`` is the cubic-convolution parameter of :func:`cubic_weights`.
    """
    frames = np.asarray(frames)
    rows, cols = frames.shape[-2:]
    bx = _align(np.asarray(boxes, dtype=np.float64), frames.ndim - 1)  # (..., 1.., 4)
    wy, wx = crop_weights(bx, rows, cols, size, a)
    img = frames.astype(np.float32, copy=False)
    return np.matmul(np.matmul(wy, img), np.swapaxes(wx, -1, -2))


def crop_weights(
    boxes: np.ndarray, rows: int, cols: int, size: int = CROP_SIZE, a: float = -0.75
) -> tuple[np.ndarray, np.ndarray]:
    """The two resampling matrices of :func:`crop_resample`: ``crop = Wy @ img @ Wx^T``.

    boxes: ``(..., 4)``. Returns ``Wy`` ``(..., size, rows)`` and ``Wx`` ``(..., size, cols)``
    float32. Shared by the numpy path and the batched torch predictor, so both sample
    exactly the same points (``points_from_crop`` of each crop pixel centre).
    """
    bx = np.asarray(boxes, dtype=np.float64)
    centres = np.arange(size, dtype=np.float64) + 0.5  # crop pixel u covers [u-.5, u+.5]
    xs = bx[..., 0:1] + centres * ((bx[..., 2:3] - bx[..., 0:1]) / size)  # (..., size)
    ys = bx[..., 1:2] + centres * ((bx[..., 3:4] - bx[..., 1:2]) / size)
    # The sampling grid is axis-aligned, so 2-D bicubic separates into two matrix
    # products. float32 halves memory and time; the weights' rounding (~1e-7 relative)
    # is far below image noise.
    wy = cubic_weights(ys, rows, a).astype(np.float32)
    wx = cubic_weights(xs, cols, a).astype(np.float32)
    return wy, wx


# --- Units ------------------------------------------------------------------------------


def px_to_mm(points: np.ndarray, spacing: np.ndarray) -> np.ndarray:
    """Pixel points ``(..., 2)`` (x, y) -> millimetres (float64, x mm, y mm).

    spacing: ``(..., 2)`` = (row, col) spacing in mm, left-aligned with ``points``
    like boxes (module docstring): ``(B, 2)`` serves points ``(B, T, N, 2)``.
    """
    p = np.asarray(points, dtype=np.float64)
    sp = _align(np.asarray(spacing, dtype=np.float64), p.ndim)
    return p * sp[..., ::-1]  # (row, col) spacing -> (x, y) = (col, row) scale


def mm_to_px(points: np.ndarray, spacing: np.ndarray) -> np.ndarray:
    """Millimetre points ``(..., 2)`` -> pixels; inverse of :func:`px_to_mm`."""
    p = np.asarray(points, dtype=np.float64)
    sp = _align(np.asarray(spacing, dtype=np.float64), p.ndim)
    return p / sp[..., ::-1]
