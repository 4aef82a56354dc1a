"""HARP tracking: material points keep their tag phase while the tissue moves.

Osman et al. (MRM 1999, IEEE TMI 2000): band-pass each frame around the two first tag
harmonics; the angle of each complex harmonic image is a phase ``phi_j(x, t)`` that a
material point carries with it. A point seen at ``x_0`` in the ED frame is found in frame
``t`` by Newton steps on ``wrap(phi(x, t) - phi(x_0, 0)) = 0`` (two equations, two
unknowns). raytag's implementation, per slice:

1. :class:`CineHarmonics`: a ``size x size`` window around the heart (tapered at its
   edges), the two harmonic peaks from the ED frame's spectrum, and per frame the
   *demodulated* harmonic images ``D_j = H_j exp(-i k_j . x)``: slowly varying, so bilinear
   interpolation of ``D_j`` (and its analytic gradient) is accurate even though the tags
   turn the phase by ~1.4 rad per pixel.
2. Points are tracked on an interior material grid of the myocardium (rings 1..5 of the
   ED landmark grid and half-way between spokes: 48 x 5 points; the borders, rings 0 and
   6, are where blood and background corrupt the phase), frame after frame, each start
   predicted from the regularised field of the frames before.
3. Regularisation: per frame, the displacement of the grid is fitted (weighted least
   squares, iteratively reweighted) by a field that is a trigonometric polynomial around
   the ring (order ``order``) and linear across the wall. Uniform strain (any affine
   motion) is represented exactly for a ring grid that is linear across the wall.
4. Tag-jump guard: a point whose Newton result lies more than ``jump_fraction`` of a tag
   period from the field is restarted from the field's prediction, so it converges to the
   phase-equivalent position nearest the coherent motion (HARP refinement); points that
   still disagree get no weight.
5. The 168 landmarks are the fitted field evaluated at the ED landmark grid (rings 0 and 6
   extrapolated linearly across the wall).
6. Refinement (``refine``, on by default): from that field, a few Gauss-Newton steps
   register the raw frames to the ED frame under the SPAMM fading model, with a field
   cubic across the wall (:mod:`raytag.tracking.register`): the band-pass that makes the
   phase robust also blurs it over a wall's thickness; the raw pixels do not.

With ``guide`` trajectories (the network's, ``hybrid`` mode) the start of each frame is
the guide's displacement instead of the prediction from earlier frames: the network
arbitrates which tag is which, and HARP makes the track phase-consistent.

Coordinates: ``(x, y)`` px of the input frames (original matrix), pixel centres at
integers. Frames ``(T, rows, cols)`` any real dtype.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import fft as sp_fft
from scipy import ndimage

from raytag.tracking.field import (  # noqa: F401  (re-exported: harp.fit_field etc.)
    SMOOTHNESS,
    TRANSMURAL_DEGREE,
    basis,
    fit_field,
    grid_coordinates,
    interior_grid,
    landmark_grid,
    roughness_penalty,
)
from raytag.tracking.harmonics import circular_difference, find_first_harmonic_peaks
from raytag.tracking.register import refine_track

__all__ = ["CineHarmonics", "HarpResult", "interior_grid", "grid_coordinates", "fit_field",
           "landmark_grid", "roughness_penalty", "track_harp", "HARP_WINDOW"]

#: Side of the analysis window around the heart (px): holds a dilated LV, RV and motion.
HARP_WINDOW = 128
#: An ED spectrum whose harmonic peaks stand less than this far above the median of the
#: tag band holds no usable grid (synthetic families: 50-220; white noise: 3-4).
MIN_PEAK_STRENGTH = 12.0
#: Band-pass radius as a fraction of the harmonic's distance from DC (cross terms and DC
#: lie a full |k| away, so up to ~0.7 keeps them out; wider = finer spatial resolution).
BANDPASS_RADIUS = 0.5


def peak_strength(window: np.ndarray, peaks: np.ndarray) -> float:
    """The weaker harmonic peak's ``|F|`` over the median ``|F|`` of the band where tags can
    be (``size / 7.5 <= |k| < size / 2``): ~50-200 for tagged cines, ~3-4 for noise."""
    size = window.shape[0]
    mag = np.abs(np.fft.fftshift(np.fft.fft2(window)))
    c = size // 2
    k = np.arange(size) - c
    ky, kx = np.meshgrid(k, k, indexing="ij")
    radius = np.hypot(kx, ky)
    band = (radius >= size / 7.5) & (radius < size / 2)
    floor = max(float(np.median(mag[band])), 1e-12)
    ij = np.rint(np.asarray(peaks)).astype(int) + c
    return float(min(mag[ij[:, 1] % size, ij[:, 0] % size])) / floor


def _taper(size: int, edge: int) -> np.ndarray:
    """2-D window ``(size, size)``: 1 inside, raised-cosine to 0 over ``edge`` px at the sides."""
    ramp = np.ones(size)
    t = 0.5 - 0.5 * np.cos(np.pi * (np.arange(edge) + 0.5) / edge)
    ramp[:edge], ramp[-edge:] = t, t[::-1]
    return ramp[:, None] * ramp[None, :]


@dataclass
class CineHarmonics:
    """Demodulated harmonic images of a cine in a window around the heart.

    ``origin`` (x0, y0): frame px of window pixel (0, 0); ``size``: window side;
    ``k`` ``(2, 2)``: wave vectors (rad/px, rows = harmonics, columns = x, y);
    ``demod`` complex64 ``(2, T, size, size)``; ``local_mean`` float32 ``(T, size, size)``:
    low-passed intensity (for tag contrast); ``valid`` ``(T,)`` bool; ``window`` float32
    ``(T, size, size)``: the tapered window frames; ``filters`` ``(2, size, size)``: the
    band-pass weights (unshifted FFT layout).
    """

    origin: np.ndarray
    size: int
    k: np.ndarray
    demod: np.ndarray
    local_mean: np.ndarray
    valid: np.ndarray
    window: np.ndarray
    filters: np.ndarray

    @classmethod
    def analyse(cls, frames: np.ndarray, frame_valid: np.ndarray, centre_xy,
                size: int = HARP_WINDOW, peaks: np.ndarray | None = None) -> CineHarmonics:
        """Window the cine at ``centre_xy`` and band-pass every valid frame at both harmonics.

        Raises ``ValueError`` when the ED frame has no two-direction tag grid.
        """
        frames = np.asarray(frames)
        t_count, rows, cols = frames.shape
        valid = np.asarray(frame_valid, dtype=bool).copy()
        x0 = int(round(float(centre_xy[0]))) - size // 2
        y0 = int(round(float(centre_xy[1]))) - size // 2
        win = np.zeros((t_count, size, size), dtype=np.float32)
        inside = np.zeros((size, size), dtype=bool)
        ys, xs = max(y0, 0), max(x0, 0)
        ye, xe = min(y0 + size, rows), min(x0 + size, cols)
        if ye > ys and xe > xs:
            win[:, ys - y0 : ye - y0, xs - x0 : xe - x0] = frames[:, ys:ye, xs:xe]
            inside[ys - y0 : ye - y0, xs - x0 : xe - x0] = True
        # Where the window leaves the frame, the frame's own edge is a step that puts
        # spectral lines everywhere: remove the mean and fade to zero inside the edge too.
        if not inside.all() and inside.any():
            win[:, inside] -= win[:, inside].mean(axis=1, keepdims=True)
            ramp = np.clip(ndimage.distance_transform_edt(inside) / (size / 16), 0, 1)
            win *= (0.5 - 0.5 * np.cos(np.pi * ramp)).astype(np.float32)[None]
        win *= _taper(size, size // 8)[None].astype(np.float32)
        if peaks is None:
            peaks = find_first_harmonic_peaks(win[0], size=size, min_radius=size / 7.5)
            strength = peak_strength(win[0], peaks)
            if strength < MIN_PEAK_STRENGTH:
                raise ValueError(
                    f"no tag grid in the ED frame: its strongest spectral peaks are only "
                    f"{strength:.1f}x the median spectrum (tagged cines: > 40x)")
        peaks = np.asarray(peaks, dtype=np.float64)
        k = 2 * np.pi * peaks / size  # rad/px, (kx, ky) per harmonic
        f = np.fft.fftfreq(size, 1.0 / size)
        filters = np.zeros((2, size, size))
        for j, peak in enumerate(peaks):
            radius = BANDPASS_RADIUS * float(np.linalg.norm(peak))
            taper = 0.25 * radius
            dkx = (f[None, :] - peak[0] + size / 2) % size - size / 2
            dky = (f[:, None] - peak[1] + size / 2) % size - size / 2
            tt = np.clip((np.hypot(dkx, dky) - (radius - taper)) / taper, 0.0, 1.0)
            filters[j] = 0.5 * (1.0 + np.cos(np.pi * tt))
        filters = filters.astype(np.float32)
        h = cls(np.array([x0, y0], dtype=np.float64), size, k,
                np.zeros((2, t_count, size, size), dtype=np.complex64),
                np.zeros((t_count, size, size), dtype=np.float32), valid, win, filters)
        h.demod[:, valid], h.local_mean[valid] = h.bandpass(win[valid])
        return h

    def bandpass(self, window_frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Window frames ``(n, size, size)`` -> demodulated harmonics ``(2, n, size, size)``
        complex64 and the local mean ``(n, size, size)`` float32 (Gaussian low-pass, sigma
        one tag period, applied in the same spectrum: the taper makes the window periodic).

        Single precision through ``scipy.fft`` (about 5x numpy's double-precision FFT
        here; the phases need nowhere near float64's digits).
        """
        spec = sp_fft.fft2(np.asarray(window_frames, dtype=np.float32))
        out = np.empty((2, *spec.shape), dtype=np.complex64)
        for j in range(2):
            out[j] = sp_fft.ifft2(spec * self.filters[j], overwrite_x=True)
            out[j] *= self._carrier(j)
        f = sp_fft.fftfreq(self.size).astype(np.float32)  # cycles/px
        sigma = self.wavelength_px
        lowpass = np.exp(-2 * np.pi**2 * sigma**2 * (f[:, None] ** 2 + f[None, :] ** 2))
        local_mean = sp_fft.ifft2(spec * lowpass.astype(np.float32), overwrite_x=True).real
        return out, local_mean.astype(np.float32)

    def _carrier(self, j: int) -> np.ndarray:
        """``exp(-i k_j . x)`` over the window ``(size, size)`` complex64."""
        yy, xx = np.mgrid[0 : self.size, 0 : self.size]
        return np.exp(-1j * (self.k[j, 0] * xx + self.k[j, 1] * yy)).astype(np.complex64)

    @property
    def wavelength_px(self) -> float:
        """Mean tag period (px) of the two harmonics."""
        return float(2 * np.pi / np.linalg.norm(self.k, axis=1).mean())

    def sample(self, t: int, points: np.ndarray, gradient: bool = False):
        """Harmonic phases ``(N, 2)`` (rad, unwrapped carrier + residual angle) and
        magnitudes ``(N, 2)`` at frame px ``points`` ``(N, 2)``; with ``gradient`` also the
        phase gradients ``(N, 2, 2)`` (harmonic, d/dx d/dy). Outside the window: NaN."""
        p = np.asarray(points, dtype=np.float64) - self.origin
        inside = (p[:, 0] >= 0) & (p[:, 0] <= self.size - 1.001) & (p[:, 1] >= 0) \
            & (p[:, 1] <= self.size - 1.001)
        pc = np.where(inside[:, None], p, self.size / 2)
        j0 = np.floor(pc[:, 0]).astype(np.intp)
        i0 = np.floor(pc[:, 1]).astype(np.intp)
        fx, fy = pc[:, 0] - j0, pc[:, 1] - i0
        # one flat gather of the four neighbours of every point, both harmonics at once
        flat = self.demod[:, t].reshape(2, -1)
        corner = i0 * self.size + j0
        idx = np.concatenate([corner, corner + 1, corner + self.size, corner + self.size + 1])
        z00, z01, z10, z11 = flat[:, idx].reshape(2, 4, -1).transpose(1, 0, 2)
        z = (1 - fy) * ((1 - fx) * z00 + fx * z01) + fy * ((1 - fx) * z10 + fx * z11)  # (2, N)
        carrier = self.k @ p.T  # (2, N)
        phase = (np.angle(z) + carrier).T
        mag = np.abs(z).T
        phase[~inside], mag[~inside] = np.nan, 0.0
        if not gradient:
            return phase, mag
        dzdx = (1 - fy) * (z01 - z00) + fy * (z11 - z10)
        dzdy = (1 - fx) * (z10 - z00) + fx * (z11 - z01)
        denom = np.maximum(np.abs(z) ** 2, 1e-20)
        gx = np.imag(np.conj(z) * dzdx) / denom + self.k[:, 0, None]
        gy = np.imag(np.conj(z) * dzdy) / denom + self.k[:, 1, None]
        grad = np.stack([gx, gy], axis=-1).transpose(1, 0, 2)  # (N, 2, 2)
        return phase, mag, grad

    def local_intensity(self, t: int, points: np.ndarray) -> np.ndarray:
        """Low-passed intensity ``(N,)`` at frame px ``points`` (bilinear)."""
        p = np.asarray(points, dtype=np.float64) - self.origin
        return ndimage.map_coordinates(self.local_mean[t], [p[:, 1], p[:, 0]], order=1,
                                       mode="nearest")


def newton(h: CineHarmonics, t: int, start: np.ndarray, target: np.ndarray,
           iterations: int = 5) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Points ``(N, 2)`` from ``start`` whose frame-``t`` phases equal ``target`` ``(N, 2)``.

    Each step solves ``J dx = -wrap(phi - target)`` with ``J`` the local phase gradient
    (the nominal wave vectors where the local one is ill-conditioned), limited to a quarter
    period. Returns positions, the final wrapped residual (rad, ``(N, 2)``) and magnitudes.
    """
    x = np.asarray(start, dtype=np.float64).copy()
    k_nom = h.k
    det_nom = k_nom[0, 0] * k_nom[1, 1] - k_nom[0, 1] * k_nom[1, 0]
    max_step = 0.25 * h.wavelength_px
    for _ in range(iterations):
        phase, mag, grad = h.sample(t, x, gradient=True)
        r = np.nan_to_num(circular_difference(phase, target))
        a, b, c, d = grad[:, 0, 0], grad[:, 0, 1], grad[:, 1, 0], grad[:, 1, 1]
        det = a * d - b * c
        bad = ~np.isfinite(det) | (np.abs(det) < 0.25 * abs(det_nom)) \
            | (np.abs(det) > 4 * abs(det_nom))
        # the nominal wave vectors where the local gradient is ill-conditioned
        a, b = np.where(bad, k_nom[0, 0], a), np.where(bad, k_nom[0, 1], b)
        c, d = np.where(bad, k_nom[1, 0], c), np.where(bad, k_nom[1, 1], d)
        det = np.where(bad, det_nom, det)
        # 2x2 inverse in closed form: this runs for every point of every frame
        step = np.stack([(d * r[:, 0] - b * r[:, 1]) / det,
                         (a * r[:, 1] - c * r[:, 0]) / det], axis=-1)
        norm = np.hypot(step[:, 0], step[:, 1])
        step *= np.minimum(1.0, max_step / np.maximum(norm, 1e-12))[:, None]
        x -= step
    phase, mag = h.sample(t, x)
    return x, circular_difference(phase, target), mag


@dataclass
class HarpResult:
    """``landmarks`` ``(T, 168, 2)`` px (NaN on invalid frames); ``tracked`` ``(T, M, 2)``
    interior points after the guard; ``weights`` ``(T, M)``; ``residual_px`` ``(T, M)``
    phase residual of the tracked points (px); ``harmonics`` the analysis used;
    ``phase_landmarks`` ``(T, 168, 2)`` the phase field's landmarks before the registration
    refinement (the same array as ``landmarks`` when it was not asked for)."""

    landmarks: np.ndarray
    tracked: np.ndarray
    weights: np.ndarray
    residual_px: np.ndarray
    harmonics: CineHarmonics
    phase_landmarks: np.ndarray


def _robust_fit(k, r, disp, base_w, order, scale_px, design):
    """Two rounds of Huber-like reweighting on the fit residuals (``design``: the grid's
    basis, computed once per slice)."""
    w = base_w.copy()
    field = fit_field(k, r, disp, w, order, design=design)
    for _ in range(2):
        res = np.hypot(*(disp - design @ field.coef).T)
        w = base_w / np.maximum(1.0, np.nan_to_num(res, nan=1e6) / scale_px)
        field = fit_field(k, r, disp, w, order, design=design)
    return field, w


def _solve_frame(h_t, t_index, pts0, start, target, kq, rq, ok0, order, jump_fraction,
                 iterations, design):
    """Newton from ``start``, robust field fit, tag-jump guard, refit. Returns the field,
    weights, positions and phase residual (px) of the interior points."""
    lam = h_t.wavelength_px
    x, res, mag = newton(h_t, t_index, start, target, iterations)
    base_w = np.where(ok0 & np.isfinite(res).all(axis=1),
                      np.sqrt(np.maximum(mag[:, 0] * mag[:, 1], 0)), 0.0)
    field, w = _robust_fit(kq, rq, x - pts0, base_w, order, 0.1 * lam, design)
    pred = pts0 + design @ field.coef
    jumped = np.hypot(*(x - pred).T) > jump_fraction * lam
    if jumped.any():
        xj, resj, magj = newton(h_t, t_index, pred[jumped], target[jumped], iterations)
        x[jumped], res[jumped], mag[jumped] = xj, resj, magj
        still = np.hypot(*(x - pred).T) > jump_fraction * lam
        base_w = np.where(ok0 & np.isfinite(res).all(axis=1) & ~still,
                          np.sqrt(np.maximum(mag[:, 0] * mag[:, 1], 0)), 0.0)
        field, w = _robust_fit(kq, rq, x - pts0, base_w, order, 0.1 * lam, design)
    kn = np.linalg.norm(h_t.k, axis=1)
    px = np.abs(res) / kn[None]  # (M, 2); NaN where a point left the window
    n = np.isfinite(px).sum(axis=1)
    mean = np.where(n > 0, np.nansum(px, axis=1) / np.maximum(n, 1), np.nan)
    return field, w, x, mean


def track_harp(frames: np.ndarray, frame_valid: np.ndarray, ed_landmarks: np.ndarray,
               guide: np.ndarray | None = None, harmonics: CineHarmonics | None = None,
               order: int = 6, jump_fraction: float = 0.3,
               iterations: int = 5, refine: bool = True) -> HarpResult:
    """Track a slice's myocardium from its ED landmarks ``(168, 2)`` through the cine.

    ``frames`` ``(T, rows, cols)``, ``frame_valid`` ``(T,)`` bool (invalid frames get NaN).
    ``guide`` ``(T, 168, 2)``: optional trajectories (e.g. the network's) that give each
    frame's starting positions. ``refine``: sharpen the phase field by registering the
    raw frames (:func:`raytag.tracking.register.refine_track`). Raises ``ValueError`` if
    the ED frame shows no tag grid.
    """
    frames = np.asarray(frames)
    valid = np.asarray(frame_valid, dtype=bool)
    ed = np.asarray(ed_landmarks, dtype=np.float64)
    t_count = len(frames)
    h = harmonics or CineHarmonics.analyse(frames, valid, ed.mean(axis=0))
    pts0, kq, rq = interior_grid(ed)
    k_lm, r_lm = landmark_grid()
    design, design_lm = basis(kq, rq, order), basis(k_lm, r_lm, order)  # once per slice
    target, mag0 = h.sample(0, pts0)
    m = len(pts0)
    tracked = np.full((t_count, m, 2), np.nan)
    weights = np.zeros((t_count, m))
    residual = np.full((t_count, m), np.nan)
    out = np.full((t_count, 168, 2), np.nan)
    tracked[0], out[0] = pts0, ed
    weights[0], residual[0] = 1.0, 0.0
    ok0 = np.isfinite(target).all(axis=1) & (mag0.min(axis=1) > 0)
    prev_disp = np.zeros((m, 2))
    prev2_disp = np.zeros((m, 2))
    for t in range(1, t_count):
        if not valid[t]:
            continue
        if guide is not None and np.isfinite(guide[t]).all():
            guide_field = fit_field(k_lm, r_lm, guide[t] - ed, np.ones(168), order,
                                    design=design_lm)
            start = pts0 + design @ guide_field.coef
        else:
            start = pts0 + prev_disp + 0.5 * (prev_disp - prev2_disp)
        field, w, x, res_px = _solve_frame(h, t, pts0, start, target, kq, rq, ok0, order,
                                           jump_fraction, iterations, design)
        disp = design @ field.coef
        prev2_disp, prev_disp = prev_disp, disp
        out[t] = ed + design_lm @ field.coef
        tracked[t], weights[t], residual[t] = x, w, res_px
    refined = refine_track(frames, valid, ed, out, h.wavelength_px) if refine else out
    return HarpResult(refined, tracked, weights, residual, h, out)
