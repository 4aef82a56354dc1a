"""Tagged magnitude images of a synthetic slice: anatomy, SPAMM physics, partial volume, noise.

Tagging physics. At the R wave a 1-1 SPAMM grid modulates the longitudinal magnetisation
of every tissue with the pattern ``P(X)`` (mean 1) of its *material* position ``X``:

    P = 1 + m (cos u + cos v) + m_x cos u cos v + h2 (cos 2u + cos 2v),
    u, v = k n_{1,2} . X + phase

(two tag directions at +-45 deg, ``k = 2 pi / spacing``). A pure product of two 1-1 SPAMM
modulations would tie the cross terms to ``m / 2`` of the first harmonic; real cines show
5-20 % at a myocardial SD/mean of ~0.5, so ``m_x`` is a parameter of its own (cross-term
ratio ``m_x / 2m``). Each imaging RF pulse
(``flip_deg``, ``pulses_per_frame`` per frame) tips ``Mz`` by ``cos(flip)`` and T1 relaxes it
toward ``M0`` between pulses, so per pulse ``Mz <- M0 (1 - E) + E cos(flip) Mz`` with
``E = exp(-TR / T1)``: the tag modulation decays as ``q**n = (E cos flip)**n`` after ``n``
pulses while the DC tends to the steady state ``M_ss``. With ``Mz(X, 0) = P(X)`` (DC = 1)
and ``M_ss = steady_state_ratio``::

    S(X, t) = rho * (M_ss + (P(X) - M_ss) q**n(t))

which reproduces docs/realism.md's DC rise (x1.15 by frame 2, x1.4 by frame 8, x1.54 by
frame 19) and first-harmonic fading. Blood is replaced by untagged inflow within a few
frames. Tissue edges are partial-volume weighted; then a small PSF blur, Rician noise,
and storage as uint16 in a low 12-bit range.

Only the heart moves (see :mod:`raytag.phantom.kinematics`); the surroundings (body, fat,
liver, lungs) are static, so their images are precomputed once per slice and every frame
of them is ``A + B q**n(t)``.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter

from raytag.phantom import kinematics as kin
from raytag.phantom.params import SliceParams

__all__ = ["tag_pattern", "tag_decay", "render_slice", "heart_weights"]

# Relative proton-density x T1-weighting of each tissue (myocardium = 1).
# Blood is brighter than myocardium (inflow), fat brightest, lungs nearly void.
_RHO_BODY = 0.85
_RHO_FAT = 1.5
_RHO_LIVER = 0.75
_RHO_LUNG = 0.06
_RHO_BLOOD = 1.2
_RHO_RV_WALL = 1.0
#: Fresh (inflowing, untagged) blood signal relative to the tissue steady state.
_FRESH_BLOOD = 1.1


def tag_pattern(p: SliceParams, x_px: np.ndarray, y_px: np.ndarray) -> np.ndarray:
    """The SPAMM modulation ``P`` (mean 1) at material positions ``(x_px, y_px)`` (pixels)."""
    k = 2 * np.pi / p.tag_spacing_mm
    a1 = np.deg2rad(p.tag_angle_deg)
    a2 = a1 - np.pi / 2
    xm, ym = x_px * p.spacing_mm, y_px * p.spacing_mm
    u = k * (np.cos(a1) * xm + np.sin(a1) * ym) + p.tag_phase[0]
    v = k * (np.cos(a2) * xm + np.sin(a2) * ym) + p.tag_phase[1]
    cu, cv = np.cos(u), np.cos(v)
    m, mx, h2 = p.tag_modulation, p.tag_cross, p.tag_second_harmonic
    # cos(2u) = 2 cos(u)^2 - 1: the second harmonic without two more cosines.
    return 1 + m * (cu + cv) + mx * cu * cv + h2 * (2 * cu * cu + 2 * cv * cv - 2)


def tag_decay(p: SliceParams, t_ms: np.ndarray) -> np.ndarray:
    """``q**n(t)``: the fraction of tag modulation left after the RF pulses up to ``t_ms``."""
    tr = p.frame_ms / p.pulses_per_frame
    per_pulse = np.exp(-tr / p.t1_ms) * np.cos(np.deg2rad(p.flip_deg))
    return per_pulse ** (np.asarray(t_ms, float) / tr)


def _ellipse(x, y, cx, cy, ax, ay, angle_deg=0.0):
    """Signed 'inside' level of an ellipse: > 0 inside, scaled to ~mm at its edge."""
    a = np.deg2rad(angle_deg)
    dx, dy = x - cx, y - cy
    u = dx * np.cos(a) + dy * np.sin(a)
    v = -dx * np.sin(a) + dy * np.cos(a)
    return 1.0 - np.sqrt((u / ax) ** 2 + (v / ay) ** 2)


def _background(p: SliceParams, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Static proton-density map ``(rows, cols)``: body, fat rim, liver, lungs, texture."""
    rng = np.random.default_rng(p.background_seed)
    mm = p.spacing_mm
    hx, hy = p.center_px
    body = _ellipse(x, y, p.cols / 2 + rng.normal(0, 4), p.rows * 0.5 + rng.normal(0, 6),
                    p.cols * rng.uniform(0.55, 0.62), p.rows * rng.uniform(0.42, 0.5))
    rho = np.where(body > 0, _RHO_BODY, 0.0)
    rho = np.where((body > 0) & (body < 0.06), _RHO_FAT, rho)  # subcutaneous fat
    s = np.deg2rad(p.septum_deg)
    liver = _ellipse(x, y, hx + 70 / mm * np.cos(s + 0.9), hy + 70 / mm * np.sin(s + 0.9),
                     rng.uniform(45, 60) / mm, rng.uniform(30, 40) / mm, rng.uniform(0, 180))
    rho = np.where((liver > 0) & (body > 0.06), _RHO_LIVER, rho)
    for offset_deg, dist in ((180 + rng.normal(0, 15), 80), (-80 + rng.normal(0, 15), 85)):
        a = s + np.deg2rad(offset_deg)
        lung = _ellipse(x, y, hx + dist / mm * np.cos(a), hy + dist / mm * np.sin(a),
                        rng.uniform(22, 30) / mm, rng.uniform(32, 42) / mm, rng.uniform(0, 180))
        rho = np.where((lung > 0) & (body > 0.06), _RHO_LUNG, rho)
    texture = gaussian_filter(rng.standard_normal(rho.shape), 3.0)
    texture *= 0.12 / max(texture.std(), 1e-9)
    # Soft tissue boundaries (partial volume) and smooth random texture.
    return gaussian_filter(rho, 0.8) * (1 + texture)


def _pv(distance_mm: np.ndarray, spacing_mm: float) -> np.ndarray:
    """Partial-volume fraction of a pixel whose centre is ``distance_mm`` inside an edge."""
    return np.clip(0.5 + distance_mm / spacing_mm, 0.0, 1.0)


def heart_weights(p: SliceParams, mat: dict, c: float) -> dict[str, np.ndarray]:
    """Partial-volume weights of the heart's compartments at contraction ``c``.

    ``mat`` is :func:`raytag.phantom.kinematics.spatial_to_material` of the pixels. Returns
    ``endo`` (LV cavity), ``myo`` (LV wall), ``rv_cavity``, ``rv_wall``, ``outside`` (the
    rest, in [0, 1]) and ``r_outer`` (mm: the heart's outer edge along each pixel's angle,
    the RV's outer wall on the septal side, the epicardium elsewhere).
    """
    rho, r_endo, r_epi = mat["rho"], mat["r_endo"], mat["r_epi"]
    w_endo = _pv(r_endo - rho, p.spacing_mm)
    w_epi = _pv(r_epi - rho, p.spacing_mm)
    # RV: a crescent on the septal side between the insertion points, shrinking in systole.
    a = (mat["alpha_deg"] - p.septum_deg + 180.0) % 360.0 - 180.0
    prof = np.cos(0.5 * np.pi * np.clip(a / p.rv_half_angle_deg, -1, 1))
    r_rv = r_epi + p.rv_depth_mm * (1 - 0.3 * c) * prof**0.6
    r_rv_wall = r_rv + p.rv_wall_mm * np.minimum(1.0, 3 * prof)
    w_rv_cav = np.clip(_pv(r_rv - rho, p.spacing_mm) - w_epi, 0, 1) * (prof > 0)
    w_rv_wall = np.clip(_pv(r_rv_wall - rho, p.spacing_mm) - w_epi - w_rv_cav, 0, 1)
    return {"endo": w_endo, "myo": w_epi - w_endo, "rv_cavity": w_rv_cav,
            "rv_wall": w_rv_wall, "outside": np.clip(1 - w_epi - w_rv_cav - w_rv_wall, 0, 1),
            "r_outer": np.maximum(r_rv_wall, r_epi)}


def _heart_box(p: SliceParams) -> tuple[slice, slice]:
    """Rows/cols slices that always contain the LV, the RV and their partial-volume edges."""
    reach_mm = (p.r_endo_mm + max(p.wall_mm, p.wall_es_mm) + p.rv_depth_mm + p.rv_wall_mm) * (
        1 + p.ellipticity
    ) + float(np.hypot(*p.shift_es_mm)) + 4 * p.spacing_mm
    reach = reach_mm / p.spacing_mm
    cx, cy = p.center_px
    r0, r1 = max(int(cy - reach), 0), min(int(np.ceil(cy + reach)) + 1, p.rows)
    c0, c1 = max(int(cx - reach), 0), min(int(np.ceil(cx + reach)) + 1, p.cols)
    return slice(r0, r1), slice(c0, c1)


def render_slice(
    p: SliceParams, rng: np.random.Generator, return_masks: bool = False
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Render the cine: uint16 ``(n_frames, rows, cols)`` stored values.

    With ``return_masks``, also the myocardium mask ``(n_frames, rows, cols)`` bool (pixels
    more than half myocardium), e.g. for REALISM's myocardial SD/mean.
    """
    t_ms = kin.frame_times_ms(p)
    c = kin.contraction(p, t_ms)
    decay = tag_decay(p, t_ms)
    inflow = 1 - np.exp(-t_ms / (p.blood_inflow_frames * p.frame_ms))
    m_ss = p.steady_state_ratio

    y, x = np.mgrid[0 : p.rows, 0 : p.cols].astype(np.float64)
    rho_bg = _background(p, x, y)
    bg_a = (rho_bg * m_ss).astype(np.float32)
    bg_b = (rho_bg * (tag_pattern(p, x, y) - m_ss)).astype(np.float32)
    frames = bg_a[None] + bg_b[None] * decay[:, None, None].astype(np.float32)

    rs, cs = _heart_box(p)
    xb, yb = x[rs, cs], y[rs, cs]
    masks = np.zeros((p.n_frames, p.rows, p.cols), dtype=bool) if return_masks else None
    for t in range(p.n_frames):
        mat = kin.spatial_to_material(p, xb, yb, c[t])
        tagged = m_ss + (tag_pattern(p, mat["x_mat"], mat["y_mat"]) - m_ss) * decay[t]
        blood = _RHO_BLOOD * ((1 - inflow[t]) * tagged + inflow[t] * _FRESH_BLOOD * m_ss)

        w = heart_weights(p, mat, c[t])
        box = frames[t, rs, cs]
        frames[t, rs, cs] = (w["endo"] * blood + w["myo"] * tagged + w["rv_cavity"] * blood
                             + w["rv_wall"] * _RHO_RV_WALL * tagged + w["outside"] * box)
        if masks is not None:
            masks[t, rs, cs] = w["myo"] > 0.5

    frames *= np.float32(p.myo_signal)
    if p.blur_px > 0:
        frames = gaussian_filter(frames, (0, p.blur_px, p.blur_px))
    sd = np.float32(p.noise_fraction * p.myo_signal)
    noise = rng.standard_normal((2, *frames.shape), dtype=np.float32)
    noise *= sd
    frames += noise[0]
    frames = np.hypot(frames, noise[1], out=frames)  # magnitude of complex data: Rician
    np.minimum(frames, 4095.0, out=frames)  # the 12-bit container
    frames += 0.5  # round half up (values are >= 0) in the cast below
    out = frames.astype(np.uint16)
    return (out, masks) if return_masks else out
