"""The myocardial grid and its regularised displacement field, shared by the trackers.

The ED landmark grid (24 spokes x 7 rings, ``raytag.landmarks``) gives every point near the
wall grid coordinates ``(k, r)``: ``k`` the fractional spoke, ``r`` the ring (0 endo-,
6 epicardium; outside ``[0, 6]`` in the blood and the surroundings). A displacement field
is a trigonometric polynomial in the spoke angle times a polynomial in ``r``
(:func:`basis`), fitted with a roughness penalty on the higher angular orders. HARP
(:mod:`raytag.tracking.harp`) fits it to tracked points; the registration refinement
(:mod:`raytag.tracking.register`) solves for it from the pixels.

Coordinates: ``(x, y)`` px of the original matrix, pixel centres at integers.
"""

from __future__ import annotations

import numpy as np

from raytag.constants import N_CIRCUMFERENTIAL, N_TRANSMURAL

__all__ = ["interior_grid", "grid_coordinates", "landmark_grid", "roughness_penalty", "basis",
           "fit_field", "SMOOTHNESS", "TRANSMURAL_DEGREE"]


def interior_grid(ed_landmarks: np.ndarray, rings=(1, 2, 3, 4, 5),
                  half_spokes: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Material points to track, from ED landmarks ``(168, 2)``.

    Returns ``points`` ``(M, 2)`` px, and their grid coordinates ``k`` (spoke, fractional
    with half spokes) and ``r`` (ring) ``(M,)``. Half-spoke points lie on the ring half way
    between neighbouring spokes (band-limited interpolation around the ring, so they sit on
    a circle or ellipse, not on its chord).
    """
    g = np.asarray(ed_landmarks, dtype=np.float64).reshape(N_CIRCUMFERENTIAL, N_TRANSMURAL, 2)
    n = N_CIRCUMFERENTIAL
    if half_spokes:
        spec = np.fft.fft(g, axis=0)
        freq = np.fft.fftfreq(n, 1.0 / n)
        shift = np.exp(2j * np.pi * freq * 0.5 / n)
        shift[n // 2] = np.cos(np.pi * 0.5)  # the Nyquist term of a real signal
        half = np.real(np.fft.ifft(spec * shift[:, None, None], axis=0))
    ks, rs, pts = [], [], []
    for r in rings:
        for k in range(n):
            pts.append(g[k, r])
            ks.append(float(k))
            rs.append(float(r))
            if half_spokes:
                pts.append(half[k, r])
                ks.append(k + 0.5)
                rs.append(float(r))
    return np.array(pts), np.array(ks), np.array(rs)


def grid_coordinates(ed_landmarks: np.ndarray, points: np.ndarray,
                     r_range: tuple[float, float] = (-30.0, 30.0)) -> tuple[np.ndarray, np.ndarray]:
    """Approximate grid coordinates ``(k, r)`` of any points ``(..., 2)`` in the ED geometry.

    ``k`` (fractional spoke) from the angle about the ED ring centre, interpolated between
    the spokes' mid-wall angles; ``r`` from the distance, interpolated between the endo-
    (r = 0) and epicardial (r = 6) distances along that angle, clipped to ``r_range``
    (the field is extrapolated only a little into blood and surroundings).
    """
    g = np.asarray(ed_landmarks, dtype=np.float64).reshape(N_CIRCUMFERENTIAL, N_TRANSMURAL, 2)
    c = g.reshape(-1, 2).mean(axis=0)
    mid = g[:, N_TRANSMURAL // 2] - c
    ang_k = np.unwrap(np.arctan2(mid[:, 1], mid[:, 0]))
    if ang_k[-1] < ang_k[0]:  # numbering runs the other way round: mirror the angles
        ang_k = -ang_k
        sign = -1.0
    else:
        sign = 1.0
    ang_ext = np.concatenate([ang_k, ang_k[:1] + 2 * np.pi])
    endo = np.hypot(*(g[:, 0] - c).T)
    epi = np.hypot(*(g[:, -1] - c).T)
    p = np.asarray(points, dtype=np.float64)
    d = p - c
    a = sign * np.arctan2(d[..., 1], d[..., 0])
    a = ang_k[0] + np.mod(a - ang_k[0], 2 * np.pi)
    kf = np.interp(a, ang_ext, np.arange(N_CIRCUMFERENTIAL + 1.0))
    k0 = np.floor(kf).astype(int) % N_CIRCUMFERENTIAL
    k1 = (k0 + 1) % N_CIRCUMFERENTIAL
    w = kf - np.floor(kf)
    r_endo = (1 - w) * endo[k0] + w * endo[k1]
    r_epi = (1 - w) * epi[k0] + w * epi[k1]
    rho = np.hypot(d[..., 0], d[..., 1])
    r = (N_TRANSMURAL - 1) * (rho - r_endo) / np.maximum(r_epi - r_endo, 1e-6)
    return kf % N_CIRCUMFERENTIAL, np.clip(r, *r_range)


#: Roughness penalty of the field around the ring (per order**4, relative to the data).
SMOOTHNESS = 1e-2
#: Polynomial degree of the displacement field across the wall (in the ring index). The
#: band-pass cannot resolve detail across a wall only ~1.5 tag periods thick; higher
#: degrees extrapolate noise to the endo- and epicardium.
TRANSMURAL_DEGREE = 1


def landmark_grid() -> tuple[np.ndarray, np.ndarray]:
    """Grid coordinates of the 168 landmarks: spoke ``k`` and ring ``r``, each ``(168,)``
    float64, in landmark order (index ``7 k + r``)."""
    k = np.repeat(np.arange(N_CIRCUMFERENTIAL, dtype=float), N_TRANSMURAL)
    r = np.tile(np.arange(N_TRANSMURAL, dtype=float), N_CIRCUMFERENTIAL)
    return k, r


def roughness_penalty(order: int, degree: int = TRANSMURAL_DEGREE,
                      smooth: float = SMOOTHNESS) -> np.ndarray:
    """Per-coefficient penalty ``((degree + 1) (2 order + 1),)`` in :func:`basis`'s column
    order: ``smooth * (n - 1)**4`` for angular order ``n >= 2``, 1e-6 for the rest."""
    n = np.concatenate([[0], np.repeat(np.arange(1, order + 1), 2)]).astype(float)
    return np.tile(smooth * np.maximum(n - 1, 0) ** 4 + 1e-6, degree + 1)


def basis(k: np.ndarray, r: np.ndarray, order: int,
          degree: int = TRANSMURAL_DEGREE) -> np.ndarray:
    """Design matrix ``(M, (degree + 1) (2 order + 1))``: a trig polynomial in the spoke
    angle times powers ``((r - 3) / 3)**d``, ``d <= degree``, across the wall."""
    phi = 2 * np.pi * np.asarray(k) / N_CIRCUMFERENTIAL
    cols = [np.ones_like(phi)]
    for n in range(1, order + 1):
        cols += [np.cos(n * phi), np.sin(n * phi)]
    trig = np.stack(cols, axis=1)
    s = ((np.asarray(r) - 3.0) / 3.0)[:, None]
    return np.concatenate([trig * s**d for d in range(degree + 1)], axis=1)


def fit_field(k: np.ndarray, r: np.ndarray, displacement: np.ndarray, weights: np.ndarray,
              order: int = 6, smooth: float = SMOOTHNESS, degree: int = TRANSMURAL_DEGREE,
              design: np.ndarray | None = None):
    """Weighted, roughness-penalised least-squares field through ``displacement`` ``(M, 2)``
    at grid coordinates ``(k, r)``.

    The penalty on a coefficient of angular order ``n`` is ``smooth * n**4`` (and 1e-6 for
    the rest) times the mean data weight: high orders are used only where the data demand
    them, and a gap (points without weight) is bridged smoothly instead of wildly.
    Returns a callable ``(k, r) -> (len(k), 2)`` displacement (its ``coef`` attribute: the
    coefficients, to evaluate with a precomputed basis). ``design``: ``basis(k, r)``
    when the caller has it already (the same grid every frame).
    """
    a = basis(k, r, order, degree) if design is None else design
    w = np.asarray(weights, dtype=np.float64)
    ok = np.isfinite(displacement).all(axis=1) & (w > 0)
    aw = a[ok] * w[ok, None]
    gram = a[ok].T @ aw
    pen = roughness_penalty(order, degree, smooth)
    scale = max(float(w[ok].sum()), 1e-12)
    coef = np.linalg.solve(gram + np.diag(pen * scale), aw.T @ displacement[ok])

    def field(kq, rq):
        return basis(kq, rq, order, degree) @ coef

    field.coef = coef
    return field
