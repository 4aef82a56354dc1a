"""The ``thorax`` family: a procedural torso cross-section around a tagged heart.

Anatomy is built in a *torso frame* ``(u, v)`` in mm (u across the body towards the
patient's left, v from anterior to posterior, origin at the torso centre) and rotated by
``torso_deg`` into the image, so the chest wall can sit at any side of the picture, as in
oblique short-axis planes. Layers, painted in order (each covers what lies under it by its
own partial-volume fraction):

- static (held by the chest wall): skin, subcutaneous fat (thicker anteriorly, a breast
  at random), chest-wall muscle, paraspinal muscle, vertebral body (marrow, cortical rim,
  canal), an optional arm at the edge;
- the thoracic cavity, which drifts rigidly with breathing (``breath_mm`` by the last
  frame; UK Biobank cines are breath-held, so a few mm at most): mediastinal tissue,
  lungs (dark), descending aorta, and by slice level liver, stomach and bowel loops;
- the heart, drawn per frame from its exact inverse motion
  (:mod:`raytag.phantom.kinematics`, the LV model the ``disc`` family also uses) plus the
  breathing drift: LV wall, cavity with papillary muscles and trabeculation, RV crescent
  and wall, pericardial fat in the grooves. The RV and fat ride on the LV surface.

Each tissue has its own textured proton density and T1 (:mod:`raytag.phantom.tissues`),
so fat fades first and blood washes out. Acquisition is randomised per visit (matrix,
spacing, tag spacing and angle, flip, SNR, coil bias, blur, ringing, 15-30 frames), and
through-plane motion is imitated by the myocardial texture changing with contraction.
Truth is exact: landmarks are the LV model's material points moved by the same maps.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from raytag.phantom import kinematics as kin
from raytag.phantom import textures as tx
from raytag.phantom.acquisition import sample_acquisition
from raytag.phantom.params import (
    ParticipantParams,
    SliceParams,
    draw_group,
    draw_strain_targets,
)
from raytag.phantom.render import heart_weights, tag_pattern
from raytag.phantom.tissues import TISSUES, LayerStack, decay, finish

__all__ = ["ThoraxSliceParams", "sample_thorax",
           "thorax_landmarks", "render_thorax", "breath_drift_px"]

@dataclass(frozen=True)
class ThoraxSliceParams(SliceParams):
    """:class:`SliceParams` (LV geometry, motion, tagging) plus the torso and the scanner.

    Lengths mm, angles deg (image coordinates), positions px (x, y).
    """

    family: str = "thorax"
    anatomy_seed: int = 0
    torso_center_px: tuple[float, float] = (87.0, 128.0)
    torso_deg: float = 0.0
    torso_axes_mm: tuple[float, float] = (165.0, 115.0)
    fat_mm: float = 12.0
    muscle_mm: float = 12.0
    breast: float = 0.0
    arm_side: int = 0
    breath_mm: tuple[float, float] = (0.0, 0.0)
    liver_level: float = 0.0
    t1_scale: float = 1.0
    snr: float = 20.0
    bias: float = 0.2
    ringing: float = 1.0
    ringing_axis: int = 1
    through_plane: float = 0.1
    papillary: float = 1.0
    trabeculation_mm: float = 1.5
    pericardial_fat_mm: float = 3.0
    aorta_bright: bool = True


# LV geometry per slice level: endocardial radius (mean, SD, min, max), wall (mean, SD), mm.
_LV = {1: (24.0, 4.0, 14.0, 36.0), 2: (20.0, 3.5, 11.0, 32.0), 3: (12.0, 2.8, 6.0, 20.0)}
_WALL = {1: (8.5, 1.4), 2: (8.5, 1.4), 3: (7.5, 1.3)}
_TWIST = {1: (5.0, 3.0), 2: (-2.0, 3.0), 3: (-12.0, 4.0)}
_SIGMOID = {1: 1.4, 2: 1.4, 3: 1.2}


def _rot(deg: float) -> np.ndarray:
    a = np.deg2rad(deg)
    return np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])


def sample_thorax(rng: np.random.Generator, eid: str, instance: int = 2, group: str | None = None,
                  impaired_fraction: float = 0.2, n_frames: int | None = None):
    """Draw a participant of the ``thorax`` family; returns params and ES strain targets."""
    group = draw_group(rng, group, impaired_fraction)
    acq = sample_acquisition(rng, n_frames)
    sp = acq.spacing_mm
    # The visit's torso orientation: near the standard view, sometimes anything.
    torso_deg = rng.normal(0, 25) if rng.random() < 0.65 else rng.uniform(-180, 180)
    axes = (rng.uniform(170, 240), rng.uniform(120, 170))
    heart_uv = np.array([axes[0] * rng.uniform(-0.05, 0.30), -axes[1] * rng.uniform(0.05, 0.45)])
    # Heart anywhere in the inner part of the field of view.
    heart_xy = np.array([acq.cols * rng.uniform(0.28, 0.72), acq.rows * rng.uniform(0.28, 0.72)])
    torso_center = heart_xy - _rot(torso_deg) @ heart_uv / sp
    septum = 143.0 + torso_deg + rng.normal(0, 12)
    rr, es_fraction = acq.rr_ms, rng.uniform(0.32, 0.42)
    hypo = group == "impaired" and rng.random() < 0.5
    shared = dict(
        rows=acq.rows, cols=acq.cols, spacing_mm=sp, n_frames=acq.n_frames,
        frame_ms=acq.frame_ms, rr_ms=rr, es_fraction=es_fraction,
        tag_angle_deg=acq.tag_angle_deg, tag_spacing_mm=acq.tag_spacing_mm,
        flip_deg=acq.flip_deg, pulses_per_frame=acq.pulses_per_frame,
        myo_signal=acq.signal, blur_px=acq.blur_px, torso_deg=torso_deg, torso_axes_mm=axes,
        fat_mm=rng.uniform(5, 25), muscle_mm=rng.uniform(6, 18),
        breast=rng.uniform(0, 1) if rng.random() < 0.4 else 0.0,
        arm_side=int(rng.choice([-1, 0, 0, 1])), t1_scale=rng.normal(1.0, 0.05),
        bias=acq.bias, ringing=acq.ringing, ringing_axis=acq.ringing_axis,
        aorta_bright=bool(rng.random() < 0.6),
    )
    slices, targets = [], {}
    base_position = rng.uniform(-20, 20)
    for idx in (1, 2, 3):
        m, s, lo, hi = _LV[idx]
        r_endo = float(np.clip(rng.normal(m, s), lo, hi))
        wall = float(np.clip(rng.normal(*_WALL[idx]), 4.5, 14.0))
        targets[idx] = draw_strain_targets(rng, idx, group)
        # Slices sit a little apart in the plane (the LV axis is not the scanner's).
        centre = heart_xy + rng.normal(0, 3.0, 2)
        mod = acq.tag_modulation * rng.uniform(0.95, 1.05)
        slices.append(ThoraxSliceParams(
            slice_index=idx, **shared,
            first_trigger_ms=rng.uniform(0.0, 10.0),
            relax_fraction=rng.uniform(0.16, 0.28),
            center_px=tuple(centre), r_endo_mm=r_endo, wall_mm=wall,
            ellipticity=rng.uniform(0.0, 0.12), ellipse_deg=rng.uniform(0, 180),
            septum_deg=septum + rng.normal(0, 5),
            rv_half_angle_deg=rng.uniform(45, 75),
            rv_depth_mm=rng.uniform(8, 24) * (1.0 if idx < 3 else 0.5),
            rv_wall_mm=rng.uniform(2.0, 4.0),
            position_mm=base_position - rng.uniform(18, 26) * (idx - 1),
            kappa_es=rng.normal(1.0, 0.05), sigmoid_es=rng.normal(_SIGMOID[idx], 0.08),
            twist_es_deg=rng.normal(*_TWIST[idx]), shift_es_mm=tuple(rng.normal(0, 2.0, 2)),
            hypo_depth=rng.uniform(0.4, 0.8) if hypo else 0.0,
            hypo_center_deg=rng.uniform(0, 360), hypo_width_deg=rng.uniform(25, 45),
            tag_phase=tuple(rng.uniform(0, 2 * np.pi, 2)), tag_modulation=mod,
            tag_cross=mod * rng.uniform(0.10, 0.30),
            tag_second_harmonic=mod * rng.uniform(0.0, 0.04),
            t1_ms=rng.normal(1000.0, 50.0), steady_state_ratio=rng.normal(1.6, 0.05),
            blood_inflow_frames=rng.uniform(0.8, 2.5),
            noise_fraction=1.0 / (acq.snr * rng.uniform(0.9, 1.1)),
            snr=acq.snr, background_seed=int(rng.integers(0, 2**31)),
            anatomy_seed=int(rng.integers(0, 2**31)),
            torso_center_px=tuple(torso_center + rng.normal(0, 1.0, 2)),
            breath_mm=tuple(rng.normal(0, 1.2, 2)),
            liver_level={1: 0.0, 2: 0.4, 3: 1.0}[idx] * rng.uniform(0.5, 1.2),
            through_plane=rng.uniform(0.0, 0.4),
            papillary=rng.uniform(0.6, 1.3) if idx < 3 else rng.uniform(0.0, 0.6),
            trabeculation_mm=rng.uniform(0.0, 2.5),
            pericardial_fat_mm=rng.uniform(0.0, 6.0),
        ))
    return ParticipantParams(eid=eid, instance=instance, group=group,
                             slices=tuple(slices)), targets


def breath_drift_px(p: ThoraxSliceParams, t_ms: np.ndarray) -> np.ndarray:
    """Rigid drift ``(T, 2)`` (x, y) px of the thoracic cavity and heart: a slow creep."""
    t = np.asarray(t_ms, float)
    span = max(float(kin.frame_times_ms(p)[-1]), 1.0)
    return (t / span)[:, None] * np.asarray(p.breath_mm) / p.spacing_mm


def thorax_landmarks(p: ThoraxSliceParams) -> np.ndarray:
    """Exact truth ``(n_frames, 168, 2)``: the LV model's landmarks plus the breathing drift."""
    return kin.landmarks(p) + breath_drift_px(p, kin.frame_times_ms(p))[:, None, :]


# --- the static and breathing layers --------------------------------------------------


def _torso_coords(p: ThoraxSliceParams, x: np.ndarray, y: np.ndarray):
    """Image px -> torso frame (u, v) mm."""
    dx = (x - p.torso_center_px[0]) * p.spacing_mm
    dy = (y - p.torso_center_px[1]) * p.spacing_mm
    a = np.deg2rad(p.torso_deg)
    return dx * np.cos(a) + dy * np.sin(a), -dx * np.sin(a) + dy * np.cos(a)


def _layers(p: ThoraxSliceParams, x: np.ndarray, y: np.ndarray):
    """The static stack, the breathing stack and the thoracic-cavity weight."""
    rng = np.random.default_rng(p.anatomy_seed)
    shape = x.shape
    sp = p.spacing_mm
    u, v = _torso_coords(p, x, y)
    a_ax, b_ax = p.torso_axes_mm
    px = 1.0 / sp  # mm -> px for levels
    fine, coarse = tx.fractal_noise(rng, shape, 1.2, 3), tx.fractal_noise(rng, shape, 4.0, 3)
    cells, fibres = tx.cellular(rng, shape, rng.uniform(4, 9)), tx.stripes(rng, shape,
                                                                             rng.uniform(5, 10))

    def level(fn_mm):  # mm level -> px level
        return fn_mm * px

    static = LayerStack(shape)
    body_coeffs = tx.fourier_radius(rng, 5, 0.04)
    body_mm = tx.star_level(u, v / (b_ax / a_ax), 0, 0, a_ax, body_coeffs) * (b_ax / a_ax) ** 0.5
    # breast / anterior soft tissue: a bulge of fat at the front
    ant = np.clip(-v / b_ax, 0, 1)
    fat_thick = p.fat_mm * (0.6 + 0.8 * ant) + 40 * p.breast * ant**3
    static.paint("skin", tx.partial_volume(level(body_mm)), fine)
    static.paint("fat", tx.partial_volume(level(body_mm - 1.5)), cells, rng.uniform(0.85, 1.1))
    muscle_mm = body_mm - fat_thick
    static.paint("muscle", tx.partial_volume(level(muscle_mm)), fibres, rng.uniform(0.9, 1.1))
    inner_mm = muscle_mm - p.muscle_mm * (0.5 + 0.7 * ant)
    if p.arm_side:
        ax_c = p.arm_side * (a_ax + rng.uniform(25, 55))
        arm = tx.star_level(u, v, ax_c, rng.uniform(-30, 30), rng.uniform(40, 55),
                            tx.fourier_radius(rng, 3, 0.05))
        static.paint("fat", tx.partial_volume(level(arm)), cells)
        static.paint("muscle", tx.partial_volume(level(arm - rng.uniform(4, 10))), fibres)
        static.paint("marrow", tx.partial_volume(level(tx.star_level(
            u, v, ax_c + rng.normal(0, 5), rng.normal(0, 5), rng.uniform(8, 12)))), cells)
    # spine: vertebral body (marrow in a cortical rim), canal behind, paraspinal muscle
    sv = b_ax * rng.uniform(0.55, 0.72)
    su = rng.normal(0, 6)
    for side in (-1, 1):
        static.paint("muscle", tx.partial_volume(level(tx.ellipse_level(
            u, v, su + side * 32, sv + 30, 24, 26))), fibres)
    vb_r = rng.uniform(14, 19)
    static.paint("bone", tx.partial_volume(level(tx.star_level(u, v, su, sv, vb_r + 2))), fine)
    static.paint("marrow", tx.partial_volume(level(tx.star_level(u, v, su, sv, vb_r))), cells)
    static.paint("fluid", tx.partial_volume(level(tx.star_level(u, v, su, sv + vb_r + 9, 7))),
                 fine)

    # the thoracic cavity: everything inside the chest wall and in front of the spine
    cavity_mm = np.minimum(inner_mm, -tx.star_level(u, v, su, sv, vb_r + 6))
    cavity_w = tx.partial_volume(level(cavity_mm))
    inner = LayerStack(shape)
    inner.paint("muscle", np.ones(shape), coarse, rng.uniform(0.5, 0.8))  # mediastinum
    heart_u, heart_v = _torso_coords(p, np.array(p.center_px[0]), np.array(p.center_px[1]))
    # The lungs and abdominal organs stop short of the heart by an irregular margin.
    heart_r = p.r_endo_mm + p.wall_mm + p.rv_depth_mm + rng.uniform(2, 14)
    heart_mm = -tx.star_level(u, v, heart_u, heart_v, heart_r, tx.fourier_radius(rng, 4, 0.12),
                              aspect=rng.uniform(0.8, 1.25), angle=rng.uniform(0, np.pi))
    lv = p.liver_level
    for side, cu in ((-1, -0.48), (1, 0.52)):
        lung = tx.star_level(u, v, a_ax * cu, b_ax * (0.05 + 0.3 * lv * (side < 0)),
                             a_ax * rng.uniform(0.28, 0.38), tx.fourier_radius(rng, 3, 0.08),
                             aspect=rng.uniform(0.45, 0.65))
        lung = np.minimum(lung, heart_mm) if side > 0 else lung
        inner.paint("lung", tx.partial_volume(level(np.minimum(lung, heart_mm + 4))), fine)
    if lv > 0.05:
        liver = tx.star_level(u, v, -a_ax * 0.25, b_ax * (0.9 - 0.55 * min(lv, 1.0)),
                              a_ax * rng.uniform(0.45, 0.6), tx.fourier_radius(rng, 4, 0.06),
                              aspect=1.4)
        inner.paint("liver", tx.partial_volume(level(np.minimum(liver, heart_mm))), coarse)
        stomach = tx.star_level(u, v, a_ax * rng.uniform(0.2, 0.45), b_ax * rng.uniform(0.2, 0.5),
                                rng.uniform(25, 45) * min(lv, 1.0), tx.fourier_radius(rng, 3, 0.1))
        inner.paint("fluid", tx.partial_volume(level(np.minimum(stomach, heart_mm))), coarse,
                    rng.uniform(0.4, 1.0))
        for _ in range(int(rng.integers(0, 4) * min(lv, 1.0))):
            loop = tx.star_level(u, v, a_ax * rng.uniform(-0.3, 0.5), b_ax * rng.uniform(0.2, 0.6),
                                 rng.uniform(10, 22), tx.fourier_radius(rng, 3, 0.1))
            inner.paint("bowel", tx.partial_volume(level(np.minimum(loop, heart_mm))), cells)
    aorta = tx.star_level(u, v, su + rng.uniform(18, 30), sv - rng.uniform(10, 25),
                          rng.uniform(9, 13))
    inner.paint("fluid" if p.aorta_bright else "lung", tx.partial_volume(level(aorta)), fine)
    return static, inner, cavity_w


def _heart_reach_px(p: ThoraxSliceParams) -> float:
    reach_mm = (p.r_endo_mm + max(p.wall_mm, p.wall_es_mm) + p.rv_depth_mm + p.rv_wall_mm
                + p.pericardial_fat_mm) * (1 + p.ellipticity) + float(np.hypot(*p.shift_es_mm))
    return reach_mm / p.spacing_mm + float(np.hypot(*p.breath_mm)) / p.spacing_mm + 4


def render_thorax(p: ThoraxSliceParams, rng: np.random.Generator, return_masks: bool = False):
    """Render the cine: uint16 ``(n_frames, rows, cols)`` stored values (and, with
    ``return_masks``, the myocardium mask ``(n_frames, rows, cols)`` bool)."""
    from scipy import ndimage

    t_ms = kin.frame_times_ms(p)
    c = kin.contraction(p, t_ms)
    tr = p.frame_ms / p.pulses_per_frame
    drift = breath_drift_px(p, t_ms)
    y, x = np.mgrid[0 : p.rows, 0 : p.cols].astype(np.float64)
    pattern = tag_pattern(p, x, y)
    static, inner, cavity_w = _layers(p, x, y)
    frames = static.terms(pattern, t_ms, tr, p.flip_deg, p.t1_scale)
    frames *= (1 - cavity_w)[None]
    moving = inner.terms(pattern, t_ms, tr, p.flip_deg, p.t1_scale)
    for t in range(p.n_frames):
        # The cavity's contents slide inside the fixed chest wall (material at x - drift).
        frames[t] += cavity_w * ndimage.shift(moving[t], (drift[t, 1], drift[t, 0]), order=3,
                                              mode="nearest")

    # The heart: exact inverse motion in a box around it.
    reach = _heart_reach_px(p)
    cx, cy = p.center_px
    r0, r1 = max(int(cy - reach), 0), min(int(np.ceil(cy + reach)) + 1, p.rows)
    c0, c1 = max(int(cx - reach), 0), min(int(np.ceil(cx + reach)) + 1, p.cols)
    xb, yb = x[r0:r1, c0:c1], y[r0:r1, c0:c1]
    hrng = np.random.default_rng(p.anatomy_seed + 1)
    tex_a = tx.fractal_noise(hrng, x.shape, 1.0, 3)
    tex_b = tx.fractal_noise(hrng, x.shape, 1.0, 3)
    fat_tex = tx.cellular(hrng, x.shape, 4.0)
    trab = tx.fourier_radius(hrng, 14, 1.0)
    fat_sector = tx.fourier_radius(hrng, 4, 1.0)
    pap_deg = p.septum_deg + np.array([150.0, 220.0]) + hrng.normal(0, 12, 2)
    pap_r = p.papillary * hrng.uniform(0.18, 0.26, 2)
    myo, blood_t, fat = TISSUES["myocardium"], TISSUES["blood"], TISSUES["fat"]
    q_myo = decay(t_ms, p.t1_ms * p.t1_scale, tr, p.flip_deg)
    q_fat = decay(t_ms, fat.t1_ms * p.t1_scale, tr, p.flip_deg)
    inflow = 1 - np.exp(-t_ms / (p.blood_inflow_frames * p.frame_ms))
    m_ss = p.steady_state_ratio
    a_inv = np.linalg.inv(kin.ellipse_matrix(p))
    masks = np.zeros((p.n_frames, p.rows, p.cols), dtype=bool) if return_masks else None
    for t in range(p.n_frames):
        mat = kin.spatial_to_material(p, xb - drift[t, 0], yb - drift[t, 1], c[t])
        w = heart_weights(p, mat, c[t])
        xm, ym = mat["x_mat"], mat["y_mat"]
        pat = tag_pattern(p, xm, ym)
        # material polar coordinates (model frame) of every pixel
        vm = np.einsum("ij,j...->i...", a_inv, np.stack([(xm - cx), (ym - cy)]) * p.spacing_mm)
        r_mat, th_mat = np.hypot(*vm), np.arctan2(vm[1], vm[0])
        beta = p.through_plane * c[t]
        tex = (1 - beta) * tx.sample(tex_a, xm, ym) + beta * tx.sample(tex_b, xm, ym)
        pd_myo = myo.rho * (1 + myo.texture * tex)
        s_myo = pd_myo * (m_ss + (pat - m_ss) * q_myo[t])
        s_blood = blood_t.rho * ((1 - inflow[t]) * (m_ss + (pat - m_ss) * q_myo[t])
                                 + inflow[t] * 1.1 * m_ss * (1 + 0.03 * tex))
        # cavity contents: papillary muscles and trabeculae are muscle, carrying tags
        muscle_in_cavity = np.zeros_like(r_mat)
        for deg, rad in zip(pap_deg, pap_r, strict=True):
            a = np.deg2rad(deg)
            d = np.hypot(vm[0] - 0.72 * p.r_endo_mm * np.cos(a),
                         vm[1] - 0.72 * p.r_endo_mm * np.sin(a))
            muscle_in_cavity = np.maximum(muscle_in_cavity, tx.partial_volume(
                (rad * p.r_endo_mm - d) / p.spacing_mm))
        depth = p.trabeculation_mm * np.clip(tx.radius_factor(th_mat, trab) - 1.0, 0, None)
        muscle_in_cavity = np.maximum(muscle_in_cavity, tx.partial_volume(
            (r_mat - (p.r_endo_mm - depth)) / p.spacing_mm))
        cavity = muscle_in_cavity * s_myo + (1 - muscle_in_cavity) * s_blood
        # pericardial fat in the grooves: a band beyond the outer edge, thick in sectors
        band = p.pericardial_fat_mm * np.clip(tx.radius_factor(th_mat, fat_sector) - 0.8, 0, None)
        w_fat = tx.partial_volume((w["r_outer"] + band - mat["rho"]) / p.spacing_mm) \
            * w["outside"]
        s_fat = fat.rho * (1 + fat.texture * tx.sample(fat_tex, xm, ym)) \
            * (fat.m_ss + (pat - fat.m_ss) * q_fat[t])
        heart = (w["endo"] * cavity + w["myo"] * s_myo + w["rv_cavity"] * s_blood
                 + w["rv_wall"] * s_myo + w_fat * s_fat)
        frames[t, r0:r1, c0:c1] = heart + (w["outside"] - w_fat) * frames[t, r0:r1, c0:c1]
        if masks is not None:
            masks[t, r0:r1, c0:c1] = w["myo"] > 0.5
    out = finish(frames, rng, signal=p.myo_signal, snr=p.snr, blur_px=p.blur_px,
                 bias=p.bias, ringing=p.ringing, ringing_axis=p.ringing_axis)
    return (out, masks) if return_masks else out
