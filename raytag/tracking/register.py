"""Tag-pattern registration: HARP's track refined at the image's full resolution.

HARP sees the tags through a band-pass about half a harmonic wide, so each point's phase
is averaged with its neighbours' across a wall only ~1.5 tag periods thick: the
endocardial layers' inward motion is under-read and circumferential strain with it
(docs/tracking.md). This stage starts from HARP's field and moves it until the cine's own
tag pattern, sharp lines and all, matches the ED frame's over the wall:

1. Every frame is high-passed (minus a Gaussian of sigma half a tag period) and divided
   by its local RMS (sigma one period): fading, T1 recovery and coil bias leave the tag
   lines' positions, not their contrast, to compare.
2. Material sample points: the ED wall between rings :data:`SAMPLE_RINGS` (the borders
   are where washed-out blood and neighbouring tissue change the picture) on the pixel
   grid, with their grid coordinates ``(k, r)``.
3. Per frame, Gauss-Newton with Huber weights on ``N_t(X + u(X)) - N_0(X)`` over the
   coefficients of the displacement field of :func:`raytag.tracking.harp.field_basis`
   (the same trig-by-linear field HARP fits), with HARP's roughness penalty and a weak
   prior toward HARP's coefficients (:data:`HARP_PRIOR`): HARP decides which tag is
   which, the registration where its lines are.
4. The shape across the wall. The landmark contract puts rings 0 and 6 on the borders,
   which the interior samples do not reach. A field linear across the wall, fitted to
   the *true* interior rings 1-5 of the training families, reads circumferential strain
   exactly but radial strain +0.30 too high: those generators (built to give UK Biobank's
   landmark strains) thicken the border layers less than the middle of the wall. One
   term fixes that: a radial displacement ``gamma * b_r * s**3`` (``s`` = (r - 3) / 3,
   ``b_r`` the ring-mean radial component of the field's transmural slope, px), with
   ``gamma`` = :data:`TRANSMURAL_CUBIC` measured on those families' truth. It is part of
   the model being fitted (its Jacobian included), not a correction afterwards.
   Rigid motion has ``b_r = 0`` and stays exactly representable.

Coordinates: ``(x, y)`` px of the input frames, pixel centres at integers.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from raytag.constants import N_CIRCUMFERENTIAL, N_TRANSMURAL
from raytag.tracking.harp import (
    SMOOTHNESS,
    CineHarmonics,
    field_basis,
    grid_coordinates,
    track_harp,
)

__all__ = ["register_tags", "track_and_register", "normalised_tags", "TRANSMURAL_CUBIC",
           "HARP_PRIOR", "SAMPLE_RINGS", "ITERATIONS"]

#: ``gamma``: the radial cubic across the wall per unit of the field's radial slope.
#: Least squares of ``linear + beta s**3 e_r`` on the true landmarks' rings 1-5 at ES of
#: the training families' tuning cohorts (disc and thorax, seeds 7101-7103, 144 slices):
#: ``beta / b_r`` median -0.70 (disc -0.70, thorax -0.69; IQR -0.79 to -0.59; correlation
#: of beta with b_r -0.92 / -0.94). With it the interior fit reads ES radial strain to
#: +0.002 +- 0.028 instead of +0.30.
TRANSMURAL_CUBIC = -0.70
#: Weight of the prior toward HARP's coefficients, relative to the data's mean curvature
#: (set on the tuning cohorts: 1e-3 let one thin apical wall in 72 thorax slices run off,
#: ES radial error +0.9; 3e-2 gave back part of the circumferential gain).
HARP_PRIOR = 1e-2
#: The ED wall sampled (ring units, 0 = endocardium, 6 = epicardium).
SAMPLE_RINGS = (0.5, 5.5)
#: Gauss-Newton iterations per frame (HARP's start is within a fraction of a pixel).
ITERATIONS = 4
#: Smallest crop (px per side) worth registering; a track that leaves the image has none.
MIN_CROP_PX = 8
#: Huber threshold in robust SDs of the residual.
HUBER = 1.5


def normalised_tags(image: np.ndarray, wavelength_px: float) -> np.ndarray:
    """``image`` ``(rows, cols)`` -> float64 tag pattern of unit local RMS: minus a Gaussian
    low-pass of sigma ``wavelength_px / 2`` (which keeps under 1% of the tag harmonic),
    over the local RMS at sigma ``wavelength_px``."""
    a = np.asarray(image, dtype=np.float64)
    high = a - ndimage.gaussian_filter(a, wavelength_px / 2)
    return high / np.sqrt(ndimage.gaussian_filter(high * high, wavelength_px) + 1e-12)


class _WallModel:
    """The field's design at the sample points and the landmarks, and the radial-cubic
    coupling, for one slice's ED geometry ``ed`` ``(168, 2)``."""

    def __init__(self, ed: np.ndarray, order: int):
        g = ed.reshape(N_CIRCUMFERENTIAL, N_TRANSMURAL, 2)
        self.centre = ed.mean(axis=0)
        lo, hi = ed.min(axis=0) - 1, ed.max(axis=0) + 1
        xs, ys = np.arange(np.ceil(lo[0]), hi[0]), np.arange(np.ceil(lo[1]), hi[1])
        grid = np.stack(np.meshgrid(xs, ys), axis=-1).reshape(-1, 2)
        k, r = grid_coordinates(ed, grid)
        inside = (r >= SAMPLE_RINGS[0]) & (r <= SAMPLE_RINGS[1])
        self.points, k, r = grid[inside], k[inside], r[inside]
        k_lm = np.repeat(np.arange(N_CIRCUMFERENTIAL, dtype=float), N_TRANSMURAL)
        r_lm = np.tile(np.arange(N_TRANSMURAL, dtype=float), N_CIRCUMFERENTIAL)
        self.basis = field_basis(k, r, order)  # (M, P)
        self.basis_lm = field_basis(k_lm, r_lm, order)  # (168, P)
        self.n = self.basis.shape[1]
        self.cubic = self._radial_cubic(self.points, r)  # (M, 2) px per px of b_r
        self.cubic_lm = self._radial_cubic(ed, r_lm)  # (168, 2)
        # b_r = coupling @ coefficients: the transmural-slope block's radial component,
        # averaged over the 24 spokes' mid-wall directions
        half = self.n // 2
        trig = field_basis(np.arange(N_CIRCUMFERENTIAL, dtype=float),
                           np.full(N_CIRCUMFERENTIAL, 6.0), order)[:, :half]
        mid = g[:, N_TRANSMURAL // 2] - self.centre
        ang = np.arctan2(mid[:, 1], mid[:, 0])
        self.coupling = np.zeros(2 * self.n)
        self.coupling[half : self.n] = (trig * np.cos(ang)[:, None]).mean(axis=0)
        self.coupling[self.n + half :] = (trig * np.sin(ang)[:, None]).mean(axis=0)
        orders = np.concatenate([[0], np.repeat(np.arange(1, order + 1), 2)]).astype(float)
        self.roughness = np.tile(SMOOTHNESS * np.maximum(orders - 1, 0) ** 4, 4)

    def _radial_cubic(self, points: np.ndarray, r: np.ndarray) -> np.ndarray:
        d = points - self.centre
        unit = d / np.maximum(np.hypot(d[:, 0], d[:, 1]), 1e-9)[:, None]
        return TRANSMURAL_CUBIC * (((r - 3.0) / 3.0) ** 3)[:, None] * unit

    def displacement(self, coef: np.ndarray, landmarks: bool = False) -> np.ndarray:
        """``(M, 2)`` (or ``(168, 2)``) px for coefficients ``(2 P,)`` (x block, y block)."""
        b = self.basis_lm if landmarks else self.basis
        cubic = self.cubic_lm if landmarks else self.cubic
        u = np.stack([b @ coef[: self.n], b @ coef[self.n :]], axis=1)
        return u + (self.coupling @ coef) * cubic

    def coefficients(self, displacement_lm: np.ndarray) -> np.ndarray:
        """Least-squares coefficients ``(2 P,)`` of landmark displacements ``(168, 2)`` in
        the linear field (HARP's field is exactly such a field)."""
        c = np.linalg.lstsq(self.basis_lm, displacement_lm, rcond=None)[0]
        return np.concatenate([c[:, 0], c[:, 1]])


def register_tags(frames: np.ndarray, frame_valid: np.ndarray, ed_landmarks: np.ndarray,
                  start: np.ndarray, wavelength_px: float, order: int = 6) -> np.ndarray:
    """Refine a track by registering every frame's tag pattern to the ED frame's.

    ``frames`` ``(T, rows, cols)`` any real dtype; ``frame_valid`` ``(T,)`` bool;
    ``ed_landmarks`` ``(168, 2)`` px; ``start`` ``(T, 168, 2)`` px: HARP's track (a field of
    :func:`~raytag.tracking.harp.field_basis` form per frame); ``wavelength_px``: the tag
    period. Returns ``(T, 168, 2)`` float64 px: frame 0 is ``ed_landmarks``, invalid
    frames and frames without a finite start keep ``start``'s values. A wall too thin to
    sample (fewer points than coefficients) returns ``start`` unchanged.
    """
    frames = np.asarray(frames)
    valid = np.asarray(frame_valid, dtype=bool)
    ed = np.asarray(ed_landmarks, dtype=np.float64)
    out = np.array(start, dtype=np.float64, copy=True)
    model = _WallModel(ed, order)
    n2 = 2 * model.n
    if len(model.points) < n2:
        return out
    finite = valid & np.isfinite(out).all(axis=(1, 2))
    # one crop holding the wall in every frame, with room for the filters
    seen = out[finite].reshape(-1, 2)
    margin = 2 * wavelength_px + 4
    rows, cols = frames.shape[1:]
    x0, y0 = np.clip(np.floor(seen.min(axis=0) - margin), 0, [cols, rows]).astype(int)
    x1, y1 = np.clip(np.ceil(seen.max(axis=0) + margin), 0, [cols, rows]).astype(int)
    if x1 - x0 < MIN_CROP_PX or y1 - y0 < MIN_CROP_PX:  # a wall (mostly) off the image
        return out
    origin = np.array([x0, y0], dtype=np.float64)
    points = model.points - origin

    def prepared(t: int):
        pattern = normalised_tags(frames[t, y0:y1, x0:x1], wavelength_px)
        gy, gx = np.gradient(pattern)
        return ndimage.spline_filter(pattern, 3), gx, gy

    reference, _, _ = prepared(0)
    ref = ndimage.map_coordinates(reference, [points[:, 1], points[:, 0]], order=3,
                                  prefilter=False, mode="nearest")
    prior = np.full(n2, HARP_PRIOR)
    out[0] = ed
    for t in range(1, len(frames)):
        if not finite[t]:
            continue
        start_coef = model.coefficients(out[t] - ed)
        coef = start_coef.copy()
        pattern, gx, gy = prepared(t)
        for _ in range(ITERATIONS):
            x = points + model.displacement(coef)
            where = [x[:, 1], x[:, 0]]
            value = ndimage.map_coordinates(pattern, where, order=3, prefilter=False,
                                            mode="nearest")
            dx = ndimage.map_coordinates(gx, where, order=1, mode="nearest")
            dy = ndimage.map_coordinates(gy, where, order=1, mode="nearest")
            residual = value - ref
            scale = 1.4826 * float(np.median(np.abs(residual))) + 1e-6
            w = 1.0 / np.maximum(1.0, np.abs(residual) / (HUBER * scale))
            jac = np.concatenate([model.basis * dx[:, None], model.basis * dy[:, None]], axis=1)
            # the radial cubic moves with b_r = coupling @ coef
            along = dx * model.cubic[:, 0] + dy * model.cubic[:, 1]
            jac += along[:, None] * model.coupling[None]
            jw = jac * w[:, None]
            hess = jac.T @ jw
            level = float(np.trace(hess)) / n2
            reg = level * (model.roughness + prior)
            grad = jw.T @ residual + level * (model.roughness * coef + prior * (coef - start_coef))
            coef = coef - np.linalg.solve(hess + np.diag(reg), grad)
        out[t] = ed + model.displacement(coef, landmarks=True)
    return out


def track_and_register(frames: np.ndarray, frame_valid: np.ndarray,
                       ed_landmarks: np.ndarray, guide: np.ndarray | None = None,
                       harmonics: CineHarmonics | None = None) -> np.ndarray:
    """The phase tracker raytag reports: :func:`~raytag.tracking.harp.track_harp` (``guide``
    and ``harmonics`` as there), then :func:`register_tags`. Returns ``(T, 168, 2)`` px.
    Raises ``ValueError`` if the ED frame shows no tag grid."""
    harp = track_harp(frames, frame_valid, ed_landmarks, guide=guide, harmonics=harmonics)
    return register_tags(frames, frame_valid, ed_landmarks, harp.landmarks,
                         harp.harmonics.wavelength_px)
