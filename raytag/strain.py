"""Radial and circumferential strain from landmark motion (docs/conventions.md "Strain").

This module is *the* implementation of the strain formulas; any other implementation
(e.g. a torch twin used inside training) is tested against it.

Input convention: landmarks ``(..., T, 168, 2)`` float, ``(x, y)`` pixels, index
``i = 7*k + r`` (see :mod:`raytag.landmarks`). Strain is dimensionless, so pixels or
millimetres give the same numbers as long as the pixel spacing is isotropic; with
anisotropic spacing convert to millimetres first.

Definitions (reference = frame 0 = end-diastole):

- Green (Lagrangian) strain of a segment: ``E = 0.5 * ((L_t / L_0)**2 - 1)``;
  linear (engineering) strain: ``L_t / L_0 - 1``.
- Circumferential, ring ``r``: segments ``(k, r) -> (k+1 mod 24, r)``; the ring value is
  the mean of the 24 segment strains. ``circ_subendo`` / ``circ_midwall`` /
  ``circ_subepi`` are rings 1 / 3 / 5; ``circ_global`` is the mean of the 7 ring curves.
- Radial: segment ``(k, 0) -> (k, 6)`` per spoke; the slice value is the mean of the 24.
- End-systole: the frame ``1..T-1`` with the most negative ``circ_global``.

Pure numpy, vectorised over every leading axis; imports neither Ray nor torch.
"""

from __future__ import annotations

import numpy as np

from raytag.constants import (
    N_LANDMARKS,
    N_TRANSMURAL,
    RING_MIDWALL,
    RING_SUBENDO,
    RING_SUBEPI,
)
from raytag.landmarks import to_grid

__all__ = [
    "CURVE_NAMES",
    "ES_NAMES",
    "green_strain",
    "linear_strain",
    "circumferential_lengths",
    "radial_lengths",
    "compute_strains",
]

#: Strain curves, in the order of the results table (docs/results.md).
CURVE_NAMES = ("radial", "circ_global", "circ_subendo", "circ_midwall", "circ_subepi")
#: End-systolic scalars, one per curve, same order.
ES_NAMES = tuple(f"es_{name}" for name in CURVE_NAMES)

_RING_OF_CURVE = {
    "circ_subendo": RING_SUBENDO,
    "circ_midwall": RING_MIDWALL,
    "circ_subepi": RING_SUBEPI,
}


def _stretch(lengths, reference) -> np.ndarray:
    """``L / L0`` as float64, NaN where ``L0`` is zero, negative or not finite.

    A degenerate reference segment (two landmarks on top of each other at ED) has no
    meaningful strain; NaN marks it without a warning or an exception, so one bad slice
    in a batch never costs the others.
    """
    lengths = np.asarray(lengths, dtype=np.float64)
    reference = np.asarray(reference, dtype=np.float64)
    ok = np.isfinite(reference) & (reference > 0)
    with np.errstate(all="ignore"):
        return np.where(ok, lengths / np.where(ok, reference, 1.0), np.nan)


def green_strain(lengths, reference) -> np.ndarray:
    """Green-Lagrange strain ``0.5 * ((L / L0)**2 - 1)``.

    ``lengths`` and ``reference`` are any broadcast-compatible arrays of segment lengths
    (same unit); the result is float64 with their broadcast shape, dimensionless.
    A zero, negative or non-finite reference gives NaN (no warning, no exception).
    """
    s = _stretch(lengths, reference)
    with np.errstate(all="ignore"):
        return 0.5 * (s * s - 1.0)


def linear_strain(lengths, reference) -> np.ndarray:
    """Linear (engineering) strain ``L / L0 - 1``; shapes and NaN rules as
    :func:`green_strain`."""
    with np.errstate(all="ignore"):
        return _stretch(lengths, reference) - 1.0


def _as_points(points) -> np.ndarray:
    points = np.asarray(points, dtype=np.float64)
    if points.ndim < 3 or points.shape[-2:] != (N_LANDMARKS, 2) or points.shape[-3] < 1:
        raise ValueError(
            f"landmarks must have shape (..., T, {N_LANDMARKS}, 2) with T >= 1, got {points.shape}"
        )
    return points


def circumferential_lengths(points) -> np.ndarray:
    """Lengths of the circumferential segments ``(k, r) -> (k+1 mod 24, r)``.

    ``points``: ``(..., T, 168, 2)`` landmarks. Returns float64 ``(..., T, 24, 7)``,
    axis ``-2`` = start index ``k``, axis ``-1`` = ring ``r``, in the unit of ``points``.
    """
    grid = to_grid(_as_points(points))  # (..., T, 24, 7, 2)
    with np.errstate(all="ignore"):  # inf - inf in corrupt input is NaN, not a warning
        d = np.roll(grid, -1, axis=-3) - grid
        return np.hypot(d[..., 0], d[..., 1])


def radial_lengths(points) -> np.ndarray:
    """Lengths of the radial segments ``(k, 0) -> (k, 6)`` (endo to epi per spoke).

    ``points``: ``(..., T, 168, 2)`` landmarks. Returns float64 ``(..., T, 24)``,
    axis ``-1`` = spoke ``k``, in the unit of ``points``.
    """
    grid = to_grid(_as_points(points))
    with np.errstate(all="ignore"):
        d = grid[..., N_TRANSMURAL - 1, :] - grid[..., 0, :]
        return np.hypot(d[..., 0], d[..., 1])


def _frame_valid(frame_valid, lead: tuple, n_frames: int) -> np.ndarray:
    shape = lead + (n_frames,)
    if frame_valid is None:
        return np.ones(shape, dtype=bool)
    fv = np.asarray(frame_valid)
    if fv.dtype != bool:
        raise ValueError(f"frame_valid must be a bool array, got dtype {fv.dtype}")
    try:
        return np.broadcast_to(fv, shape)
    except ValueError:
        raise ValueError(
            f"frame_valid of shape {fv.shape} does not broadcast to {shape} (leading axes + frames)"
        ) from None


def _supplied_es(es_frame, lead: tuple, n_frames: int) -> np.ndarray:
    es = np.asarray(es_frame)
    if not np.issubdtype(es.dtype, np.integer):
        raise ValueError(f"es_frame must be integer, got dtype {es.dtype}")
    try:
        es = np.broadcast_to(es, lead).astype(np.int64)
    except ValueError:
        raise ValueError(
            f"es_frame of shape {es.shape} does not broadcast to leading shape {lead}"
        ) from None
    if np.any(es >= n_frames):
        raise ValueError(f"es_frame must be < T = {n_frames}, got max {es.max()}")
    return es


def _gather(curve: np.ndarray, es: np.ndarray) -> np.ndarray:
    """``curve[..., es]`` per leading index; NaN where ``es < 0``."""
    picked = np.take_along_axis(curve, np.maximum(es, 0)[..., None], axis=-1)[..., 0]
    return np.where(es >= 0, picked, np.nan)


def compute_strains(points, frame_valid=None, es_frame=None) -> dict[str, np.ndarray]:
    """Strain curves and end-systolic values for landmark sequences.

    Parameters
    ----------
    points : array_like ``(..., T, 168, 2)``
        Landmarks (see :mod:`raytag.landmarks`), any real dtype; frame 0 is the reference
        (end-diastole). Any number of leading axes (participants, slices, ...).
    frame_valid : bool array_like broadcastable to ``(..., T)``, optional
        ``False`` marks padded / missing frames. Invalid frames get NaN in every curve and
        are never chosen as ES. If frame 0 is invalid there is no reference, so *every*
        frame of that item is NaN. Default: all frames valid.
    es_frame : int or int array_like broadcastable to ``(...)``, optional
        Annotated end-systolic frame. Non-negative entries are used as given (even frame
        0, or an invalid frame, whose ES values are then 0 / NaN) unless frame 0 is
        invalid (then ``-1``); negative entries mean "not annotated" and are replaced by
        the automatic choice. Entries ``>= T`` raise ``ValueError``.

    Returns
    -------
    dict of float64 / int64 arrays (dimensionless strain):

    - ``radial``, ``circ_global``, ``circ_subendo``, ``circ_midwall``, ``circ_subepi``:
      Green strain curves ``(..., T)`` (names in :data:`CURVE_NAMES`); each is the mean of
      its 24 per-segment strains, ``circ_global`` the mean of the 7 ring curves.
    - ``rings``: ``(..., T, 7)`` circumferential Green strain per ring ``r = 0..6``.
    - the same with suffix ``_linear`` (``radial_linear``, ..., ``rings_linear``): linear
      strain ``L/L0 - 1``.
    - ``es_frame``: int64 ``(...)``. Automatic choice: argmin of ``circ_global`` over
      frames ``1..T-1``, skipping invalid and NaN frames (first frame on ties). It is
      ``-1`` when frame 0 is invalid or no valid, finite frame besides 0 exists
      (e.g. ``T == 1``), and then every ES scalar is NaN.
    - ``es_radial``, ``es_circ_global``, ``es_circ_subendo``, ``es_circ_midwall``,
      ``es_circ_subepi`` (names in :data:`ES_NAMES`), and the same with suffix
      ``_linear``: float64 ``(...)``, the curve at ``es_frame``; NaN where ``es_frame``
      is ``-1``.

    A degenerate reference segment (zero length at frame 0) or non-finite landmarks give
    NaN in the affected curves; nothing warns or raises for bad data. Bad *shapes* raise
    ``ValueError``.
    """
    points = _as_points(points)
    lead, n_frames = points.shape[:-3], points.shape[-3]
    valid = _frame_valid(frame_valid, lead, n_frames)
    # Without a valid reference frame nothing is defined: blank the whole item.
    valid = valid & valid[..., :1]

    circ_len = circumferential_lengths(points)  # (..., T, 24, 7)
    rad_len = radial_lengths(points)  # (..., T, 24)
    out: dict[str, np.ndarray] = {}
    for suffix, strain in (("", green_strain), ("_linear", linear_strain)):
        # Mean of per-segment strains (docs/conventions.md), not strain of the mean length.
        rings = strain(circ_len, circ_len[..., :1, :, :]).mean(axis=-2)  # (..., T, 7)
        radial = strain(rad_len, rad_len[..., :1, :]).mean(axis=-1)  # (..., T)
        rings = np.where(valid[..., None], rings, np.nan)
        out["radial" + suffix] = np.where(valid, radial, np.nan)
        out["circ_global" + suffix] = rings.mean(axis=-1)
        for name, ring in _RING_OF_CURVE.items():
            out[name + suffix] = rings[..., ring]
        out["rings" + suffix] = rings

    circ = out["circ_global"]
    # Frame 0 is excluded: its strain is 0 by definition and is never "maximum contraction".
    cand_ok = valid[..., 1:] & np.isfinite(circ[..., 1:])
    if n_frames > 1:
        auto = np.argmin(np.where(cand_ok, circ[..., 1:], np.inf), axis=-1) + 1
        auto = np.where(cand_ok.any(axis=-1), auto, -1).astype(np.int64)
    else:
        auto = np.full(lead, -1, dtype=np.int64)
    if es_frame is None:
        es = auto
    else:
        supplied = _supplied_es(es_frame, lead, n_frames)
        es = np.where(supplied >= 0, supplied, auto).astype(np.int64)
    # No reference frame, no end-systole: -1 even where one was annotated.
    es = np.where(valid[..., 0], es, -1).astype(np.int64)
    out["es_frame"] = es
    for suffix in ("", "_linear"):
        for name in CURVE_NAMES:
            out[f"es_{name}{suffix}"] = _gather(out[name + suffix], es)
    return out
