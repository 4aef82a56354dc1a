"""A second LV model, built differently from :mod:`raytag.phantom.kinematics` on purpose.

Used by the ``patchwork`` family, so that a network tested on it has never seen this
shape or motion model in training (leave-one-family-out). Differences from the ``disc``/
``thorax`` model: irregular Fourier contours instead of an ellipse-mapped annulus,
area-preserving transmural motion instead of a sigmoid profile, a transmural twist
gradient, regional contraction that varies smoothly around the ring, a time-varying
ovalisation, and a contraction curve with rapid filling, diastasis and an atrial kick.

Material coordinates: polar ``(R, Theta)`` in mm / radians about ``center_px`` at ED
(time of the R wave, contraction 0), image orientation (x right, y down). With
``R_endo(Theta) = r_endo_mm (1 + F_endo(Theta))`` and ``W(Theta) = wall_mm (1 + F_wall)``,
local contraction ``c_l = c(t) (1 + F_c(Theta)) (1 - hypo(Theta))``::

    r_endo = R_endo (1 - a c_l)                                 (endocardium moves in)
    k      = 1 + g c_l                                          (wall area change)
    r**2   = r_endo**2 + k (R**2 - R_endo**2)      in the wall  (area fractions kept)
    r      = R r_endo / R_endo                     in the cavity
    r      = R - R_epi + r_epi                     outside
    theta  = Theta + twist(t) (1 + beta (s - 1/2)),   s = clip((R - R_endo) / W, 0, 1)
    x      = center + (I + c(t) E) (r cos theta, r sin theta) / spacing + c(t) shift / spacing

``a`` and ``g`` are solved so the slice's ES global circumferential and radial strain hit
their targets (:func:`fit_fourier_motion`). The inverse map is closed-form in ``r`` given
``Theta`` and a short fixed-point iteration in ``Theta``; its residual is tested.
"""

from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass

import numpy as np
from scipy.optimize import brentq

from raytag.constants import N_CIRCUMFERENTIAL, N_FRAMES, N_TRANSMURAL, SLICE_LABELS
from raytag.landmarks import from_grid
from raytag.strain import compute_strains

__all__ = ["FourierLVParams", "fourier_contraction", "fourier_frame_times_ms",
           "fourier_landmarks_at", "fourier_landmarks", "fourier_inverse",
           "fit_fourier_motion"]


@dataclass(frozen=True)
class FourierLVParams:
    """One ``patchwork`` slice: LV model, RV, timing, tagging and scanner settings.

    Fourier coefficient pairs are ``(amplitudes, phases)`` tuples for ``n = 2, 3, ...``.
    """

    slice_index: int
    family: str = "patchwork"
    rows: int = 256
    cols: int = 174
    spacing_mm: float = 1.3671875
    n_frames: int = N_FRAMES
    frame_ms: float = 41.0
    first_trigger_ms: float = 0.0
    rr_ms: float = 850.0
    es_fraction: float = 0.36
    systole_power: float = 1.0
    filling_fraction: float = 0.12
    diastasis: float = 0.2
    kick_fraction: float = 0.88
    position_mm: float = 0.0
    # LV geometry (ED) and motion
    center_px: tuple[float, float] = (87.0, 128.0)
    r_endo_mm: float = 20.0
    wall_mm: float = 8.5
    endo_coeffs: tuple = ((), ())
    wall_coeffs: tuple = ((), ())
    contraction_coeffs: tuple = ((), ())
    septum_deg: float = 143.0
    endo_in: float = 0.3
    wall_area: float = 0.0
    twist_es_deg: float = -3.0
    twist_gradient: float = 0.3
    oval: tuple[float, float, float] = (0.0, 0.0, 0.0)
    shift_es_mm: tuple[float, float] = (0.0, 0.0)
    hypo_depth: float = 0.0
    hypo_center_deg: float = 0.0
    hypo_width_deg: float = 30.0
    # RV (outside the epicardium on the septal side)
    rv_half_angle_deg: float = 60.0
    rv_depth_mm: float = 15.0
    rv_wall_mm: float = 3.0
    # tagging and scanner
    tag_angle_deg: float = 45.0
    tag_spacing_mm: float = 6.0
    tag_phase: tuple[float, float] = (0.0, 0.0)
    tag_modulation: float = 0.45
    tag_cross: float = 0.1
    tag_second_harmonic: float = 0.01
    flip_deg: float = 12.0
    pulses_per_frame: int = 5
    t1_ms: float = 1000.0
    steady_state_ratio: float = 1.6
    blood_inflow_frames: float = 1.5
    myo_signal: float = 50.0
    snr: float = 20.0
    blur_px: float = 0.4
    bias: float = 0.2
    ringing: float = 1.0
    ringing_axis: int = 1
    through_plane: float = 0.1
    anatomy_seed: int = 0

    @property
    def slice_label(self) -> str:
        return SLICE_LABELS[self.slice_index]

    def to_dict(self) -> dict:
        return asdict(self)


def fourier_frame_times_ms(p: FourierLVParams) -> np.ndarray:
    """Trigger time of each frame ``(n_frames,)`` in ms after the R wave."""
    return p.first_trigger_ms + p.frame_ms * np.arange(p.n_frames)


def fourier_contraction(p: FourierLVParams, t_ms: np.ndarray) -> np.ndarray:
    """``c(t)`` in [0, 1]: ``sin^2`` rise (power ``systole_power``) to ES, rapid filling to
    the ``diastasis`` level, then the atrial kick (at ``kick_fraction`` of the cycle) to 0."""
    t = np.asarray(t_ms, float)
    t_es = p.es_fraction * p.rr_ms
    rise = np.sin(0.5 * np.pi * np.clip(t / t_es, 0, 1)) ** (2 * p.systole_power)
    tau = p.filling_fraction * p.rr_ms
    early = p.diastasis + (1 - p.diastasis) * np.exp(-((np.maximum(t - t_es, 0) / tau) ** 2))
    # the atrial kick completes filling (c -> 0) around kick_fraction of the cycle
    kick = 1.0 / (1.0 + np.exp(-(t - p.kick_fraction * p.rr_ms) / (0.025 * p.rr_ms)))
    after = early * (1 - kick)
    return np.where(t <= t_es, rise, after)


def _series(z: np.ndarray, coeffs) -> np.ndarray:
    """``sum_n a_n cos(n theta + phi_n)``, n = 2, 3, ..., from ``z = exp(i theta)``
    (powers of z instead of a cosine per term: this runs per pixel per frame)."""
    amps, phases = coeffs
    out = np.zeros(z.shape)
    if not len(amps):
        return out
    zn = z * z
    for i, (a, ph) in enumerate(zip(amps, phases, strict=True)):
        if i:
            zn = zn * z
        out += a * (zn.real * np.cos(ph) - zn.imag * np.sin(ph))
    return out


def _local(p: FourierLVParams, c, theta_mat: np.ndarray):
    """``(R_endo, W, c_local)`` at material angles ``theta_mat`` (radians)."""
    theta_mat = np.asarray(theta_mat, float)
    z = np.exp(1j * theta_mat)
    r_endo = p.r_endo_mm * (1 + _series(z, p.endo_coeffs))
    wall = p.wall_mm * (1 + _series(z, p.wall_coeffs))
    c_loc = np.asarray(c) * (1 + _series(z, p.contraction_coeffs))
    if p.hypo_depth > 0:
        d = (np.rad2deg(theta_mat) - p.hypo_center_deg + 180.0) % 360.0 - 180.0
        c_loc = c_loc * (1 - p.hypo_depth * np.exp(-0.5 * (d / p.hypo_width_deg) ** 2))
    return r_endo, wall, c_loc


def _oval(p: FourierLVParams, c: float) -> np.ndarray:
    exx, eyy, exy = p.oval
    return np.eye(2) + c * np.array([[exx, exy], [exy, eyy]])


def _forward(p: FourierLVParams, c: float, big_r: np.ndarray, theta_mat: np.ndarray) -> np.ndarray:
    """Material polar ``(R, Theta)`` -> image px ``(..., 2)`` at global contraction ``c``."""
    r_endo0, wall0, c_loc = _local(p, c, theta_mat)
    r_epi0 = r_endo0 + wall0
    r_endo = r_endo0 * (1 - p.endo_in * c_loc)
    k = 1 + p.wall_area * c_loc
    r_epi = np.sqrt(r_endo**2 + k * (r_epi0**2 - r_endo0**2))
    r_wall = np.sqrt(np.maximum(r_endo**2 + k * (big_r**2 - r_endo0**2), 0.0))
    r = np.where(big_r < r_endo0, big_r * r_endo / r_endo0,
                 np.where(big_r > r_epi0, big_r - r_epi0 + r_epi, r_wall))
    s = np.clip((big_r - r_endo0) / wall0, 0, 1)
    theta = theta_mat + np.deg2rad(p.twist_es_deg) * c * (1 + p.twist_gradient * (s - 0.5))
    v = np.stack([r * np.cos(theta), r * np.sin(theta)], axis=-1) @ _oval(p, c).T
    v = v + c * np.asarray(p.shift_es_mm)
    return np.asarray(p.center_px) + v / p.spacing_mm


def fourier_landmarks_at(p: FourierLVParams, c: np.ndarray) -> np.ndarray:
    """Landmarks ``(len(c), 168, 2)`` float64 (x, y) px at global contractions ``c``."""
    c = np.atleast_1d(np.asarray(c, float))
    theta_k = np.deg2rad(p.septum_deg + 360.0 * np.arange(N_CIRCUMFERENTIAL) / N_CIRCUMFERENTIAL)
    s = np.arange(N_TRANSMURAL) / (N_TRANSMURAL - 1)
    r_endo0, wall0, _ = _local(p, 0.0, theta_k)
    big_r = r_endo0[:, None] + wall0[:, None] * s[None, :]  # (24, 7)
    th = np.broadcast_to(theta_k[:, None], big_r.shape)
    return from_grid(np.stack([_forward(p, ci, big_r, th) for ci in c]))


def fourier_landmarks(p: FourierLVParams) -> np.ndarray:
    """Exact landmark truth ``(n_frames, 168, 2)`` float64, (x, y) in original pixels."""
    return fourier_landmarks_at(p, fourier_contraction(p, fourier_frame_times_ms(p)))


def fourier_inverse(p: FourierLVParams, x_px: np.ndarray, y_px: np.ndarray, c: float,
                    iterations: int = 6) -> dict:
    """Spatial px -> material: ``R`` (mm), ``theta`` (rad), ``s`` (wall depth, clipped),
    ``x_mat``/``y_mat`` (material position px), ``rho`` (current radius mm), and the current
    ``r_endo``/``r_epi`` along each pixel's material angle (mm)."""
    v = np.stack([(x_px - p.center_px[0]) * p.spacing_mm - c * p.shift_es_mm[0],
                  (y_px - p.center_px[1]) * p.spacing_mm - c * p.shift_es_mm[1]], axis=-1)
    v = v @ np.linalg.inv(_oval(p, c)).T
    r, theta = np.hypot(v[..., 0], v[..., 1]), np.arctan2(v[..., 1], v[..., 0])
    twist = np.deg2rad(p.twist_es_deg) * c
    theta_mat = theta - twist
    for _ in range(iterations):
        r_endo0, wall0, c_loc = _local(p, c, theta_mat)
        r_epi0 = r_endo0 + wall0
        r_endo = r_endo0 * (1 - p.endo_in * c_loc)
        k = 1 + p.wall_area * c_loc
        r_epi = np.sqrt(r_endo**2 + k * (r_epi0**2 - r_endo0**2))
        big_r = np.where(r < r_endo, r * r_endo0 / np.maximum(r_endo, 1e-9),
                         np.where(r > r_epi, r - r_epi + r_epi0,
                                  np.sqrt(np.maximum(r_endo0**2 + (r**2 - r_endo**2) / k, 0))))
        s = np.clip((big_r - r_endo0) / wall0, 0, 1)
        theta_mat = theta - twist * (1 + p.twist_gradient * (s - 0.5))
    return {"R": big_r, "theta": theta_mat, "s": s, "rho": r, "r_endo": r_endo, "r_epi": r_epi,
            "x_mat": p.center_px[0] + big_r * np.cos(theta_mat) / p.spacing_mm,
            "y_mat": p.center_px[1] + big_r * np.sin(theta_mat) / p.spacing_mm}


def fit_fourier_motion(p: FourierLVParams, circ_global_es: float,
                       radial_es: float) -> FourierLVParams:
    """Solve ``endo_in`` and ``wall_area`` so ES global circ and radial strain hit the targets
    (nested root finding on the exact landmark strain; unreachable targets are clipped)."""
    c = fourier_contraction(p, fourier_frame_times_ms(p))
    pair = np.array([0.0, c.max()])
    pts0 = fourier_landmarks_at(p, pair[:1])

    def strains(endo_in: float, wall_area: float):
        q = dataclasses.replace(p, endo_in=endo_in, wall_area=wall_area)
        pts = np.concatenate([pts0, fourier_landmarks_at(q, pair[1:])])
        s = compute_strains(pts)
        return float(s["circ_global"][1]), float(s["radial"][1])

    def solve_endo(wall_area: float) -> float:
        f = lambda a: strains(a, wall_area)[0] - circ_global_es  # noqa: E731
        lo, hi = 0.0, 0.8
        f_lo, f_hi = f(lo), f(hi)
        if f_lo < 0:
            return lo
        if f_hi > 0:
            return hi
        return brentq(f, lo, hi, xtol=1e-7)

    def radial_error(wall_area: float) -> float:
        return strains(solve_endo(wall_area), wall_area)[1] - radial_es

    lo, hi = -0.6, 0.6
    e_lo, e_hi = radial_error(lo), radial_error(hi)
    if e_lo > 0:
        g = lo
    elif e_hi < 0:
        g = hi
    else:
        g = brentq(radial_error, lo, hi, xtol=1e-6)
    return dataclasses.replace(p, endo_in=float(solve_endo(g)), wall_area=float(g))
