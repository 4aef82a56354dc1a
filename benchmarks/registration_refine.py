"""Experiment (not shipped): refine HARP's field by intensity registration of the raw cine.

HARP's band-pass blurs the phase over about one tag period, about a wall's thickness, so
its field reads the transmural gradient too shallow (``harp_limits.py``). This script asks
whether matching the *raw* pixels does better: the ED myocardium's pixel centres are material
points ``X``; for frame ``t`` the displacement field ``u`` (``harp.basis``: order-6 trig
around the ring times a polynomial across the wall) is found by Gauss-Newton on

    sum_X w(X) [ I_t(X + u(X)) - a I_0(X) - b L_0(X) - (border terms) ]^2

(cubic-spline interpolation of ``I_t``; ``a, b`` per frame: SPAMM fading ``S_t = q S_0 +
(1 - q) M_ss rho``, ``L_0`` the ED frame low-passed inside the myocardium, standing in for
``rho``; Huber weights), started from HARP's field. "Border terms": ramps over the samples
nearest the endo- and epicardium (trig order 2 around the ring), fitted per frame, absorb
the partial-volume change when tagged blood at ED becomes fresh blood later.

Settings, all from the truth's ED landmarks on the tuning cohorts (``run_tuning``):
``harp`` the shipped tracker; ``reg_linear`` linear across the wall, samples r 0.5-5.5, no
border terms; ``reg_cubic_border`` cubic, samples r -1..7 with border terms; and
``oracle_cubic_border`` the same started from the truth's ES field instead of HARP's (where
the objective's minimum is).

    python benchmarks/registration_refine.py --json benchmarks/results/registration_refine.json
"""

from __future__ import annotations

import sys
import time

import numpy as np
from edfit_limits import run_tuning
from scipy import ndimage

from raytag import geometry
from raytag.constants import N_CIRCUMFERENTIAL
from raytag.strain import compute_strains
from raytag.tracking import harp

ORDER = 6
SETTINGS = {
    "reg_linear": dict(degree=1, r_lo=0.5, r_hi=5.5, border=0.0),
    "reg_cubic_border": dict(degree=3, r_lo=-1.0, r_hi=7.0, border=2.5),
    "oracle_cubic_border": dict(degree=3, r_lo=-1.0, r_hi=7.0, border=2.5, from_truth=True),
}


def refine(frames, valid, ed, start, wavelength_px, degree, r_lo, r_hi, border,
           iters=8, huber=1.5, smooth=harp.SMOOTHNESS, border_order=2):
    """Registered landmarks ``(T, 168, 2)`` px from ``start`` ``(T, 168, 2)`` (HARP's or
    the truth's), ED landmarks ``ed`` ``(168, 2)``."""
    lo = np.floor(ed.min(0) - 6).astype(int)
    hi = np.ceil(ed.max(0) + 6).astype(int)
    xs, ys = np.meshgrid(np.arange(lo[0], hi[0] + 1), np.arange(lo[1], hi[1] + 1))
    pts = np.stack([xs.ravel(), ys.ravel()], 1).astype(float)
    rows, cols = frames.shape[1:]
    inside = (pts[:, 0] >= 0) & (pts[:, 0] < cols) & (pts[:, 1] >= 0) & (pts[:, 1] < rows)
    k, r = harp.grid_coordinates(ed, pts[inside])
    keep = (r >= r_lo) & (r <= r_hi)
    x0, k, r = pts[inside][keep], k[keep], r[keep]
    basis = harp.basis(k, r, ORDER, degree)
    basis_lm = harp.basis(*harp.landmark_grid(), ORDER, degree)
    n_coef = basis.shape[1]
    f0 = np.asarray(frames[0], float)
    iy, ix = x0[:, 1].astype(int), x0[:, 0].astype(int)
    myo = np.zeros_like(f0)
    myo[iy[(r >= 0) & (r <= 6)], ix[(r >= 0) & (r <= 6)]] = 1.0
    low = ndimage.gaussian_filter(f0 * myo, wavelength_px) / np.maximum(
        ndimage.gaussian_filter(myo, wavelength_px), 1e-6)
    regressors = [f0[iy, ix], low[iy, ix]]
    if border:
        phi = 2 * np.pi * k / N_CIRCUMFERENTIAL
        ramps = (np.clip(1 - (r - r_lo) / border, 0, 1), np.clip(1 - (r_hi - r) / border, 0, 1))
        for ramp in ramps:
            regressors.append(ramp)
            for m in range(1, border_order + 1):
                regressors += [ramp * np.cos(m * phi), ramp * np.sin(m * phi)]
    design = np.stack(regressors, 1)
    damping = np.tile(harp.roughness_penalty(ORDER, degree, smooth), 2)  # x and y columns
    out = np.array(start, float).copy()
    for t in range(1, len(frames)):
        if not valid[t] or not np.isfinite(start[t]).all():
            continue
        coef = np.linalg.lstsq(basis_lm, start[t] - ed, rcond=None)[0]  # (n_coef, 2)
        spline = ndimage.spline_filter(np.asarray(frames[t], float), order=3)

        def sample(p, spline=spline):
            return ndimage.map_coordinates(spline, [p[:, 1], p[:, 0]], order=3,
                                           prefilter=False, mode="nearest")

        w = np.ones(len(x0))
        for _ in range(iters):
            x = x0 + basis @ coef
            v = sample(x)
            gx = sample(x + [0.5, 0]) - sample(x - [0.5, 0])
            gy = sample(x + [0, 0.5]) - sample(x - [0, 0.5])
            ab = np.linalg.lstsq(design * w[:, None], v * w, rcond=None)[0]
            res = v - design @ ab
            scale = 1.4826 * np.median(np.abs(res)) + 1e-9
            w = 1.0 / np.maximum(1.0, np.abs(res) / (huber * scale))
            jac = np.concatenate([gx[:, None] * basis, gy[:, None] * basis], 1)
            jw = jac * w[:, None]
            hess = jac.T @ jw
            hess += np.diag(damping * np.trace(hess) / (2 * n_coef))
            step = -np.linalg.solve(hess, jw.T @ res)
            coef = coef + step.reshape(2, n_coef).T
            if np.abs(step).max() < 1e-3:
                break
        out[t] = ed + basis_lm @ coef
    return out


def _errors(lm, truth, es, rec, s_true) -> list[float]:
    sp = rec.pixel_spacing_mm
    s = compute_strains(geometry.px_to_mm(lm, sp), frame_valid=rec.frame_valid)
    rmse = float(np.sqrt((((lm[es] - truth[es]) * sp) ** 2).sum(-1).mean()))
    return [s["circ_global"][es] - s_true["circ_global"][es],
            s["radial"][es] - s_true["radial"][es], rmse,
            *(s["rings"][es] - s_true["rings"][es])]


def measure(items) -> dict:
    rows = {name: [] for name in ("harp", *SETTINGS)}
    seconds = {name: 0.0 for name in SETTINGS}
    frames_done = 0
    for it in items:
        rec, truth, es = it.record, it.landmarks_px, int(it.es_frame)
        s_true = compute_strains(geometry.px_to_mm(truth, rec.pixel_spacing_mm),
                                 frame_valid=rec.frame_valid)
        res = harp.track_harp(rec.frames, rec.frame_valid, truth[0], refine=False)
        rows["harp"].append(_errors(res.landmarks, truth, es, rec, s_true))
        frames_done += int(rec.frame_valid.sum()) - 1
        for name, cfg in SETTINGS.items():
            cfg = dict(cfg)
            start = truth if cfg.pop("from_truth", False) else res.landmarks
            t0 = time.process_time()
            lm = refine(rec.frames, rec.frame_valid, truth[0], start,
                        res.harmonics.wavelength_px, **cfg)
            seconds[name] += time.process_time() - t0
            rows[name].append(_errors(lm, truth, es, rec, s_true))
    out = {}
    for name, r in rows.items():
        a = np.array(r)
        out[name] = {"es_circ_error": [float(a[:, 0].mean()), float(a[:, 0].std())],
                     "es_radial_error": [float(a[:, 1].mean()), float(a[:, 1].std())],
                     "rmse_es_mm": float(a[:, 2].mean()),
                     "circ_ring_error": [round(float(v), 4) for v in a[:, 3:].mean(0)],
                     "slices": len(a)}
        if name in seconds:
            out[name]["frames_per_cpu_second"] = frames_done / max(seconds[name], 1e-9)
    return out


def _show(family: str, seed: int, res: dict) -> None:
    for name, m in res.items():
        speed = f" | {m['frames_per_cpu_second']:.0f} frames/CPU-s" \
            if "frames_per_cpu_second" in m else ""
        print(f"{family:7s} {seed} {name:20s} ES circ {m['es_circ_error'][0]:+.4f} +- "
              f"{m['es_circ_error'][1]:.4f} | radial {m['es_radial_error'][0]:+.3f} +- "
              f"{m['es_radial_error'][1]:.3f} | RMSE ES {m['rmse_es_mm']:.2f} mm | rings "
              + " ".join(f"{v:+.3f}" for v in m["circ_ring_error"]) + speed, flush=True)


def main(argv=None) -> int:
    return run_tuning(__doc__, argv, measure, _show)


if __name__ == "__main__":
    sys.exit(main())
