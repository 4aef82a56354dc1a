"""Registration refinement of a HARP track: the raw frames matched to the ED frame.

Why: HARP's band-pass averages the phase over about one tag period, about a wall's
thickness, so its field reads the transmural gradient too shallow and under-reads the
subendocardial shortening (ES circumferential strain +0.01 to +0.02 on the tuning cohorts,
``benchmarks/harp_limits.py``). The raw pixels keep the full resolution. Started from
HARP's field (which has already decided which tag is which), a few Gauss-Newton steps on
the pixels sharpen it.

Model, per frame ``t`` (``benchmarks/registration_refine.py`` has the experiment):

- material points ``X``: the ED frame's pixel centres from one ring inside the cavity to
  one ring outside the epicardium (grid coordinate ``r`` in ``[-1, 7]``, rings 0..6 being
  the wall, :func:`raytag.tracking.field.grid_coordinates`);
- displacement ``u(X) = B(k, r) c``: the HARP field's basis (order-6 trigonometric
  polynomial around the ring) but cubic across the wall, with HARP's roughness penalty;
- SPAMM fading: a tagged tissue's signal is ``q S_0 + (1 - q) M_ss rho``, so
  ``I_t(X + u) ~= a I_0(X) + b L_0(X)``, ``L_0`` the ED frame low-passed inside the
  myocardium (standing in for ``rho``), ``a, b`` per frame;
- border terms: ramps over the 2.5 rings nearest the endo- and epicardial ends of the
  samples (trigonometric order 2 around the ring), free per frame, absorb the partial-
  volume change when the tagged blood of ED is replaced by fresh blood;
- Huber weights (1.5 robust SDs) for everything else (papillary muscles, other organs).

Units: pixels of the original matrix, ``(x, y)`` order, like the landmarks. No torch, no
Ray: numpy and scipy only.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from raytag.constants import N_CIRCUMFERENTIAL
from raytag.tracking.field import basis, grid_coordinates, landmark_grid, roughness_penalty

__all__ = ["refine_track"]

#: Angular order and transmural polynomial degree of the registered field.
ORDER = 6
DEGREE = 3
#: Grid-coordinate range of the samples (rings; the wall is 0..6).
R_RANGE = (-1.0, 7.0)
#: Width (rings) of the border ramps and their angular order.
BORDER_RINGS = 2.5
BORDER_ORDER = 2
#: Gauss-Newton iterations per frame and the step (px) below which it stops early.
ITERATIONS = 3
TOLERANCE_PX = 0.02
#: Huber threshold in robust SDs of the intensity residual.
HUBER = 1.5
#: A frame whose refined landmarks move, by their median, further than this fraction of a
#: tag period from the start keeps the start: the pattern is periodic, so a coherent move
#: that large is a slipped tag, not a correction (HARP's own tag-jump guard uses the same
#: fraction). The median, not the maximum: the border rings, which HARP extrapolates
#: linearly and the registration cubically, legitimately move more (on the thorax tuning
#: cohort the maximum exceeded 0.3 periods in 39% of frames, the median in none).
SLIP_FRACTION = 0.3
#: Fewer samples than this many per unknown and the slice is left as it is (the roughness
#: penalty regularises the rest; a small apical ring has 280-360 samples for 104 unknowns).
MIN_SAMPLES_PER_UNKNOWN = 1
#: A chained frame (see :func:`refine_track`) may depart from the track it refines by at
#: most this fraction of a tag period (median over the landmarks): the track decides which
#: tag is which; half a period further would be the neighbouring tag.
MAX_DEPARTURE = 0.5


class _Samples:
    """The ED material points of one slice and everything about them that no frame changes.

    ``x0`` ``(M, 2)`` float32 px; ``basis`` ``(M, n)`` float32; ``design`` ``(M, p)``
    float32: the intensity model's regressors; ``basis_lm`` ``(168, n)`` float64 and its
    pseudo-inverse ``fit_lm`` ``(n, 168)`` (a track's field by least squares).
    """

    def __init__(self, frame0: np.ndarray, ed: np.ndarray, wavelength_px: float):
        rows, cols = frame0.shape
        lo = np.maximum(np.floor(ed.min(axis=0) - 6).astype(int), 0)
        hi = np.minimum(np.ceil(ed.max(axis=0) + 6).astype(int), [cols - 1, rows - 1])
        xs, ys = np.meshgrid(np.arange(lo[0], hi[0] + 1), np.arange(lo[1], hi[1] + 1))
        pts = np.stack([xs.ravel(), ys.ravel()], axis=1).astype(np.float64)
        k, r = grid_coordinates(ed, pts)
        keep = (r >= R_RANGE[0]) & (r <= R_RANGE[1])
        pts, k, r = pts[keep], k[keep], r[keep]
        self.x0 = pts.astype(np.float32)
        self.basis = basis(k, r, ORDER, DEGREE).astype(np.float32)
        self.basis_lm = basis(*landmark_grid(), ORDER, DEGREE)
        self.fit_lm = np.linalg.pinv(self.basis_lm)  # landmarks' displacement -> field
        iy, ix = pts[:, 1].astype(int), pts[:, 0].astype(int)
        f0 = np.asarray(frame0, dtype=np.float64)
        myo = np.zeros_like(f0)
        wall = (r >= 0) & (r <= 6)
        myo[iy[wall], ix[wall]] = 1.0
        low = ndimage.gaussian_filter(f0 * myo, wavelength_px) / np.maximum(
            ndimage.gaussian_filter(myo, wavelength_px), 1e-6)
        phi = 2 * np.pi * k / N_CIRCUMFERENTIAL
        regressors = [f0[iy, ix], low[iy, ix]]
        for ramp in (np.clip(1 - (r - R_RANGE[0]) / BORDER_RINGS, 0, 1),
                     np.clip(1 - (R_RANGE[1] - r) / BORDER_RINGS, 0, 1)):
            regressors.append(ramp)
            for m in range(1, BORDER_ORDER + 1):
                regressors += [ramp * np.cos(m * phi), ramp * np.sin(m * phi)]
        self.design = np.stack(regressors, axis=1).astype(np.float32)
        # The spline of each frame needs only the samples' neighbourhood (plus the
        # largest plausible motion); cropping makes its prefilter cheap.
        self.crop = (slice(max(lo[1] - 4, 0), hi[1] + 5), slice(max(lo[0] - 4, 0), hi[0] + 5))
        self.origin = np.array([self.crop[1].start, self.crop[0].start], dtype=np.float32)


def _register_frame(s: _Samples, frame: np.ndarray, coef: np.ndarray,
                    damping: np.ndarray) -> np.ndarray:
    """Gauss-Newton from field coefficients ``coef`` ``(n, 2)`` to the frame's; returns
    the new coefficients (float64). Raises ``np.linalg.LinAlgError`` on a singular step."""
    spline = ndimage.spline_filter(np.asarray(frame, np.float32)[s.crop], order=3,
                                   output=np.float32)
    n, n_coef = len(s.x0), s.basis.shape[1]
    coef = coef.astype(np.float32)
    w = np.ones(n, np.float32)
    eye = 1e-9 * np.eye(s.design.shape[1], dtype=np.float32)
    for _ in range(ITERATIONS):
        x = s.x0 + s.basis @ coef - s.origin
        r, c = x[:, 1], x[:, 0]
        # value, then the central differences in x and y (half a pixel each way), in one call
        q = np.stack([np.concatenate([r, r, r, r - 0.5, r + 0.5]),
                      np.concatenate([c, c - 0.5, c + 0.5, c, c])])
        v5 = ndimage.map_coordinates(spline, q, order=3, prefilter=False, mode="nearest")
        v, gx, gy = v5[:n], v5[2 * n:3 * n] - v5[n:2 * n], v5[4 * n:] - v5[3 * n:4 * n]
        dw = s.design * w[:, None]
        ab = np.linalg.solve(dw.T @ s.design + eye, dw.T @ v)
        res = v - s.design @ ab
        scale = 1.4826 * float(np.median(np.abs(res))) + 1e-9
        w = (1.0 / np.maximum(1.0, np.abs(res) / (HUBER * scale))).astype(np.float32)
        bx, by = s.basis * (w * gx)[:, None], s.basis * (w * gy)[:, None]
        hxy = bx.T @ (s.basis * gy[:, None])
        hess = np.block([[bx.T @ (s.basis * gx[:, None]), hxy],
                         [hxy.T, by.T @ (s.basis * gy[:, None])]]).astype(np.float64)
        hess += np.diag(damping * np.trace(hess) / (2 * n_coef))
        grad = np.concatenate([bx.T @ res, by.T @ res]).astype(np.float64)
        step = -np.linalg.solve(hess, grad)
        coef = coef + step.reshape(2, n_coef).T.astype(np.float32)
        if np.abs(step).max() < TOLERANCE_PX:
            break
    return coef.astype(np.float64)


def refine_track(frames: np.ndarray, frame_valid: np.ndarray, ed_landmarks: np.ndarray,
                 landmarks: np.ndarray, wavelength_px: float, chain: bool = False) -> np.ndarray:
    """Refine a track ``landmarks`` ``(T, 168, 2)`` px by registering the raw frames.

    ``frames`` ``(T, rows, cols)``; ``frame_valid`` ``(T,)`` bool; ``ed_landmarks``
    ``(168, 2)`` px (the ED geometry the track starts from); ``wavelength_px``: the tag
    period (px). Returns a new ``(T, 168, 2)`` float64 array: frame 0 is
    ``ed_landmarks``; invalid frames and frames whose start is not finite keep
    ``landmarks``; frames whose step is singular, slips a tag (:data:`SLIP_FRACTION`) or
    departs from ``landmarks`` by more than :data:`MAX_DEPARTURE` get ``landmarks``.

    ``chain=False`` (default, what ``track_harp`` runs): every frame starts from
    ``landmarks`` itself. ``chain=True``: each frame starts from the previous valid frame's
    *refined* landmarks moved by the track's own increment between the two frames, so a
    track that drifts slowly (HARP's band-pass reads a small apical ring's motion short,
    frame after frame) is corrected while the drift is still small. Not the default: on a
    never-used draw it cut the ES circumferential error SD (patchwork 0.030 -> 0.024,
    thorax 0.019 -> 0.016) but moved the radial bias further negative (patchwork -0.077 ->
    -0.144), against the rule fixed before that look (docs/tracking.md;
    ``benchmarks/registration_chain.py``).
    """
    ed = np.asarray(ed_landmarks, dtype=np.float64)
    start = np.asarray(landmarks, dtype=np.float64)
    out = start.copy()
    valid = np.asarray(frame_valid, dtype=bool)
    if not (np.isfinite(ed).all() and np.isfinite(wavelength_px) and wavelength_px > 0):
        return out
    s = _Samples(np.asarray(frames[0]), ed, float(wavelength_px))
    if len(s.x0) < MIN_SAMPLES_PER_UNKNOWN * 2 * s.basis.shape[1]:
        return out
    damping = np.tile(roughness_penalty(ORDER, DEGREE), 2)  # the x and the y columns
    prev_start, prev_out = ed, ed
    for t in range(1, len(frames)):
        if not valid[t] or not np.isfinite(start[t]).all():
            continue
        init = prev_out + (start[t] - prev_start) if chain else start[t]
        try:
            moved = ed + s.basis_lm @ _register_frame(s, frames[t], s.fit_lm @ (init - ed),
                                                      damping)
        except np.linalg.LinAlgError:
            moved = None
        if moved is not None and np.isfinite(moved).all() \
                and _median_px(moved - init) <= SLIP_FRACTION * wavelength_px \
                and _median_px(moved - start[t]) <= MAX_DEPARTURE * wavelength_px:
            out[t] = moved
        prev_start, prev_out = start[t], out[t]  # a rejected frame re-anchors the chain
    return out


def _median_px(d: np.ndarray) -> float:
    """Median length of displacements ``(168, 2)`` px."""
    return float(np.median(np.hypot(d[:, 0], d[:, 1])))
