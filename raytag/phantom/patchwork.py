"""The ``patchwork`` family: random organ masks filled with random textures, and a heart
from the Fourier LV model (:mod:`raytag.phantom.fourier_lv`).

Built another way than ``thorax`` on purpose (the natural-image idea of Loecher et al. 2021,
with procedural textures instead of photographs): there is no torso plan. A random body
blob (or none: tissue to every edge) holds 6-16 random organs, each a Fourier-perturbed
blob with a random texture (fractal, cellular, fibre) and random proton density, T1 and
steady state, so every tissue fades its own way. Some organs are distractors that move:
drifting, or pulsating with the cardiac cycle, so "what moves" alone does not find the LV.
The heart is an irregular LV with its own motion law, an RV cap, cavity muscle blobs, a
random pericardial band, all from one exact inverse map; truth landmarks are that model's
material points. Acquisition is drawn as for ``thorax`` (:mod:`raytag.phantom.acquisition`).
"""

from __future__ import annotations

import numpy as np

from raytag.phantom import fourier_lv as flv
from raytag.phantom import textures as tx
from raytag.phantom.acquisition import sample_acquisition
from raytag.phantom.params import ParticipantParams, draw_group, draw_strain_targets
from raytag.phantom.render import tag_pattern
from raytag.phantom.tissues import TISSUES, LayerStack, Tissue, decay, finish

__all__ = ["sample_patchwork", "render_patchwork"]

_LV = {1: (23.0, 4.5, 12.0, 36.0), 2: (19.0, 4.0, 10.0, 32.0), 3: (12.0, 3.0, 6.0, 21.0)}
_TWIST = {1: (4.0, 3.0), 2: (-3.0, 3.0), 3: (-10.0, 4.0)}


def sample_patchwork(rng: np.random.Generator, eid: str, instance: int = 2,
                     group: str | None = None, impaired_fraction: float = 0.2,
                     n_frames: int | None = None):
    """Draw a participant of the ``patchwork`` family; returns params and ES strain targets."""
    group = draw_group(rng, group, impaired_fraction)
    acq = sample_acquisition(rng, n_frames)
    heart = np.array([acq.cols * rng.uniform(0.25, 0.75), acq.rows * rng.uniform(0.25, 0.75)])
    septum = rng.uniform(0, 360)
    hypo = group == "impaired" and rng.random() < 0.5
    slices, targets = [], {}
    for idx in (1, 2, 3):
        m, s, lo, hi = _LV[idx]
        targets[idx] = draw_strain_targets(rng, idx, group)
        mod = acq.tag_modulation * rng.uniform(0.95, 1.05)
        slices.append(flv.FourierLVParams(
            slice_index=idx, rows=acq.rows, cols=acq.cols, spacing_mm=acq.spacing_mm,
            n_frames=acq.n_frames, frame_ms=acq.frame_ms, rr_ms=acq.rr_ms,
            first_trigger_ms=rng.uniform(0, 10), es_fraction=rng.uniform(0.30, 0.42),
            systole_power=rng.uniform(0.7, 1.5), filling_fraction=rng.uniform(0.08, 0.18),
            diastasis=rng.uniform(0.05, 0.35), kick_fraction=rng.uniform(0.78, 0.92),
            position_mm=-22.0 * (idx - 1) + rng.normal(0, 3),
            center_px=tuple(heart + rng.normal(0, 4.0, 2)),
            r_endo_mm=float(np.clip(rng.normal(m, s), lo, hi)),
            wall_mm=float(np.clip(rng.normal(8.0, 1.6), 4.5, 14.0)),
            endo_coeffs=_coeffs(rng, 4, 0.05), wall_coeffs=_coeffs(rng, 3, 0.08),
            contraction_coeffs=_coeffs(rng, 3, 0.08),
            septum_deg=septum + rng.normal(0, 6),
            twist_es_deg=rng.normal(*_TWIST[idx]), twist_gradient=rng.uniform(-0.4, 0.8),
            oval=tuple(rng.normal(0, 0.03, 3)), shift_es_mm=tuple(rng.normal(0, 2.0, 2)),
            hypo_depth=rng.uniform(0.4, 0.8) if hypo else 0.0,
            hypo_center_deg=rng.uniform(0, 360), hypo_width_deg=rng.uniform(25, 45),
            rv_half_angle_deg=rng.uniform(40, 80),
            rv_depth_mm=rng.uniform(6, 24) * (1.0 if idx < 3 else 0.5),
            rv_wall_mm=rng.uniform(1.5, 4.5),
            tag_angle_deg=acq.tag_angle_deg, tag_spacing_mm=acq.tag_spacing_mm,
            tag_phase=tuple(rng.uniform(0, 2 * np.pi, 2)), tag_modulation=mod,
            tag_cross=mod * rng.uniform(0.05, 0.35),
            tag_second_harmonic=mod * rng.uniform(0.0, 0.05),
            flip_deg=acq.flip_deg, pulses_per_frame=acq.pulses_per_frame,
            t1_ms=rng.uniform(850, 1150), steady_state_ratio=rng.uniform(1.4, 1.8),
            blood_inflow_frames=rng.uniform(0.7, 3.0), myo_signal=acq.signal,
            snr=acq.snr * rng.uniform(0.9, 1.1), blur_px=acq.blur_px, bias=acq.bias,
            ringing=acq.ringing, ringing_axis=acq.ringing_axis,
            through_plane=rng.uniform(0, 0.4), anatomy_seed=int(rng.integers(0, 2**31)),
        ))
    return ParticipantParams(eid=eid, instance=instance, group=group,
                             slices=tuple(slices)), targets


def _coeffs(rng: np.random.Generator, n: int, amplitude: float) -> tuple:
    amps, phases = tx.fourier_radius(rng, n, amplitude)
    return tuple(float(a) for a in amps), tuple(float(p) for p in phases)


def _random_tissue(rng: np.random.Generator) -> Tissue:
    return Tissue(rho=float(np.exp(rng.uniform(np.log(0.05), np.log(2.6)))),
                  t1_ms=float(np.exp(rng.uniform(np.log(200), np.log(2500)))),
                  m_ss=rng.uniform(1.2, 2.0), texture=rng.uniform(0.05, 0.4))


def _organs(p: flv.FourierLVParams, rng: np.random.Generator, x, y):
    """Static stack and the moving distractors ``[(tissue, level_fn, texture, motion)]``."""
    shape = x.shape
    stack = LayerStack(shape)
    diag = np.hypot(*shape)
    if rng.random() < 0.7:  # a body with air around it
        body = tx.star_level(x, y, p.cols * rng.uniform(0.35, 0.65),
                             p.rows * rng.uniform(0.35, 0.65), diag * rng.uniform(0.45, 0.7),
                             tx.fourier_radius(rng, 5, 0.08),
                             aspect=rng.uniform(0.6, 1.4), angle=rng.uniform(0, np.pi))
        stack.paint(_random_tissue(rng), tx.partial_volume(body), tx.random_texture(rng, shape))
    else:
        stack.paint(_random_tissue(rng), np.ones(shape), tx.random_texture(rng, shape))
    movers = []
    for _ in range(int(rng.integers(6, 17))):
        cx, cy = rng.uniform(0, p.cols), rng.uniform(0, p.rows)
        radius = rng.uniform(8, 60) / p.spacing_mm
        coeffs = tx.fourier_radius(rng, 4, rng.uniform(0.03, 0.15))
        aspect, angle = rng.uniform(0.5, 1.8), rng.uniform(0, np.pi)
        tissue, texture = _random_tissue(rng), tx.random_texture(rng, shape)
        kind = rng.choice(["static", "static", "static", "drift", "pulse"])
        if kind == "static":
            stack.paint(tissue, tx.partial_volume(
                tx.star_level(x, y, cx, cy, radius, coeffs, aspect, angle)), texture)
        else:
            motion = (rng.normal(0, 2.0, 2) / p.spacing_mm if kind == "drift"
                      else np.array([rng.uniform(0.03, 0.12), 0.0]))
            movers.append((kind, tissue, (cx, cy, radius, coeffs, aspect, angle), texture,
                           motion))
    return stack, movers


def _heart_reach_px(p: flv.FourierLVParams) -> float:
    reach = (p.r_endo_mm + p.wall_mm) * 1.35 + p.rv_depth_mm + p.rv_wall_mm + 8.0
    return (reach + float(np.hypot(*p.shift_es_mm))) / p.spacing_mm + 4


def render_patchwork(p: flv.FourierLVParams, rng: np.random.Generator,
                     return_masks: bool = False):
    """Render the cine: uint16 ``(n_frames, rows, cols)`` stored values (and, with
    ``return_masks``, the myocardium mask ``(n_frames, rows, cols)`` bool)."""
    t_ms = flv.fourier_frame_times_ms(p)
    c = flv.fourier_contraction(p, t_ms)
    tr = p.frame_ms / p.pulses_per_frame
    y, x = np.mgrid[0 : p.rows, 0 : p.cols].astype(np.float64)
    arng = np.random.default_rng(p.anatomy_seed)
    stack, movers = _organs(p, arng, x, y)
    frames = stack.terms(tag_pattern(p, x, y), t_ms, tr, p.flip_deg, 1.0)
    span = max(float(t_ms[-1]), 1.0)
    for kind, tissue, (cx, cy, radius, coeffs, aspect, angle), texture, motion in movers:
        q = decay(t_ms, tissue.t1_ms, tr, p.flip_deg)
        # only the box the moving organ can reach is recomputed
        reach = radius * (1 + np.abs(coeffs[0]).sum()) * max(aspect, 1 / aspect) * 1.15 \
            + np.abs(motion).max() + 3
        rs = slice(max(int(cy - reach), 0), max(min(int(cy + reach) + 1, p.rows), 0))
        cs = slice(max(int(cx - reach), 0), max(min(int(cx + reach) + 1, p.cols), 0))
        xs, ys = x[rs, cs], y[rs, cs]
        if xs.size == 0:
            continue
        for t in range(p.n_frames):
            if kind == "drift":
                xm, ym = xs - motion[0] * t_ms[t] / span, ys - motion[1] * t_ms[t] / span
            else:
                scale = 1 + motion[0] * c[t]
                xm, ym = cx + (xs - cx) / scale, cy + (ys - cy) / scale
            w = tx.partial_volume(tx.star_level(xm, ym, cx, cy, radius, coeffs, aspect, angle))
            pd = tissue.rho * np.maximum(1 + tissue.texture * tx.sample(texture, xm, ym), 0)
            sig = pd * (tissue.m_ss + (tag_pattern(p, xm, ym) - tissue.m_ss) * q[t])
            frames[t, rs, cs] = (1 - w) * frames[t, rs, cs] + w * sig

    reach = _heart_reach_px(p)
    cx, cy = p.center_px
    r0, r1 = max(int(cy - reach), 0), min(int(np.ceil(cy + reach)) + 1, p.rows)
    c0, c1 = max(int(cx - reach), 0), min(int(np.ceil(cx + reach)) + 1, p.cols)
    xb, yb = x[r0:r1, c0:c1], y[r0:r1, c0:c1]
    hrng = np.random.default_rng(p.anatomy_seed + 1)
    tex_a, tex_b = tx.random_texture(hrng, x.shape), tx.random_texture(hrng, x.shape)
    myo_texture = hrng.uniform(0.03, 0.12)
    band_tissue, band_tex = _random_tissue(hrng), tx.random_texture(hrng, x.shape)
    band_coeffs = tx.fourier_radius(hrng, 5, 1.0)
    band_mm = hrng.uniform(0, 7)
    blobs = [(np.deg2rad(hrng.uniform(0, 360)), hrng.uniform(0.55, 0.85), hrng.uniform(0.1, 0.25))
             for _ in range(int(hrng.integers(0, 4)))]
    blood_level = hrng.uniform(0.9, 1.5)
    q_myo = decay(t_ms, p.t1_ms, tr, p.flip_deg)
    q_band = decay(t_ms, band_tissue.t1_ms, tr, p.flip_deg)
    inflow = 1 - np.exp(-t_ms / (p.blood_inflow_frames * p.frame_ms))
    m_ss, sp = p.steady_state_ratio, p.spacing_mm
    masks = np.zeros((p.n_frames, p.rows, p.cols), dtype=bool) if return_masks else None
    for t in range(p.n_frames):
        mat = flv.fourier_inverse(p, xb, yb, c[t])
        xm, ym, rho = mat["x_mat"], mat["y_mat"], mat["rho"]
        pat = tag_pattern(p, xm, ym)
        beta = p.through_plane * c[t]
        tex = (1 - beta) * tx.sample(tex_a, xm, ym) + beta * tx.sample(tex_b, xm, ym)
        s_myo = (1 + myo_texture * tex) * (m_ss + (pat - m_ss) * q_myo[t])
        s_blood = TISSUES["blood"].rho * ((1 - inflow[t]) * (m_ss + (pat - m_ss) * q_myo[t])
                                          + inflow[t] * blood_level * m_ss)
        w_endo = tx.partial_volume((mat["r_endo"] - rho) / sp)
        w_epi = tx.partial_volume((mat["r_epi"] - rho) / sp)
        d = (np.rad2deg(mat["theta"]) - p.septum_deg + 180.0) % 360.0 - 180.0
        depth = p.rv_depth_mm * (1 - 0.35 * c[t]) * np.sqrt(np.clip(
            1 - (d / p.rv_half_angle_deg) ** 2, 0, 1))
        r_rv = mat["r_epi"] + depth
        r_outer = r_rv + p.rv_wall_mm * (depth > 0)
        w_rv_cav = np.clip(tx.partial_volume((r_rv - rho) / sp) - w_epi, 0, 1) * (depth > 0)
        w_rv_wall = np.clip(tx.partial_volume((r_outer - rho) / sp) - w_epi - w_rv_cav, 0, 1)
        band = band_mm * np.clip(tx.radius_factor(mat["theta"], band_coeffs) - 0.7, 0, None)
        w_out = np.clip(1 - w_epi - w_rv_cav - w_rv_wall, 0, 1)
        w_band = tx.partial_volume((r_outer + band - rho) / sp) * w_out
        s_band = band_tissue.rho * (1 + band_tissue.texture * tx.sample(band_tex, xm, ym)) \
            * (band_tissue.m_ss + (pat - band_tissue.m_ss) * q_band[t])
        # muscle blobs in the cavity (papillary-like), in material coordinates
        in_cav = np.zeros_like(rho)
        for ang, frac, rad in blobs:
            dist = np.hypot(mat["R"] * np.cos(mat["theta"]) - frac * p.r_endo_mm * np.cos(ang),
                            mat["R"] * np.sin(mat["theta"]) - frac * p.r_endo_mm * np.sin(ang))
            in_cav = np.maximum(in_cav, tx.partial_volume((rad * p.r_endo_mm - dist) / sp))
        cavity = in_cav * s_myo + (1 - in_cav) * s_blood
        heart = (w_endo * cavity + (w_epi - w_endo) * s_myo + w_rv_cav * s_blood
                 + w_rv_wall * s_myo + w_band * s_band)
        frames[t, r0:r1, c0:c1] = heart + (w_out - w_band) * frames[t, r0:r1, c0:c1]
        if masks is not None:
            masks[t, r0:r1, c0:c1] = (w_epi - w_endo) > 0.5
    out = finish(frames, rng, signal=p.myo_signal, snr=p.snr, blur_px=p.blur_px, bias=p.bias,
                 ringing=p.ringing, ringing_axis=p.ringing_axis)
    return (out, masks) if return_masks else out
