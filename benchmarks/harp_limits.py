"""What limits HARP from the truth ED landmarks: ring by ring, slice by slice (tuning seeds).

On the *tuning* cohorts (transfer's test seeds moved by ``edfit_limits.TUNING_OFFSETS``:
disc 7101/7111, thorax 7102/7112, never a test or held-out seed), HARP started from the
truth's ED landmarks, at the truth's ES frame:

- per ring ``r = 0..6`` the mean radial position error (mm, + outward, along the direction
  from the truth's ES centre) of HARP's landmarks, of HARP's tracked interior points
  (rings 1-5, whole spokes, before the field fit), and of the linear-across-the-wall field
  (:func:`raytag.tracking.harp.fit_field`, the tracker's own model) fitted exactly to the
  truth: what the field model alone cannot represent;
- per ring the ES circumferential strain error (HARP - truth);
- per slice the ES global circumferential error with the slice's level, ED endocardial
  radius, wall thickness and tag period (mm), worst first: where the SD lives.

    python benchmarks/harp_limits.py --participants 12 --json benchmarks/results/harp_limits.json
"""

from __future__ import annotations

import sys

import numpy as np
from edfit_limits import run_tuning

from raytag import geometry
from raytag.landmarks import to_grid
from raytag.strain import compute_strains
from raytag.tracking import harp, qc

ORDER = 6  # track_harp's default angular order of the field


def _radial_error_mm(points, truth_es, centre, px_mm):
    """Mean over spokes of (points - truth) along the outward direction, per ring ``(7,)``;
    ``points`` and ``truth_es`` ``(24, 7, 2)`` px."""
    out = truth_es - centre
    out /= np.linalg.norm(out, axis=-1, keepdims=True)
    return (((points - truth_es) * out).sum(-1) * px_mm).mean(axis=0)


def measure_slice(item) -> dict:
    rec, truth, es = item.record, item.landmarks_px, int(item.es_frame)
    px_mm = float(np.mean(rec.pixel_spacing_mm))
    res = harp.track_harp(rec.frames, rec.frame_valid, truth[0], refine=False)
    g_es = to_grid(truth[es])
    centre = truth[es].mean(axis=0)
    k_lm, r_lm = harp.landmark_grid()
    lin = harp.fit_field(k_lm, r_lm, truth[es] - truth[0], np.ones(len(k_lm)), ORDER)
    lin_es = to_grid(truth[0] + lin(k_lm, r_lm))
    # HARP's tracked interior points on whole spokes, placed in the (24, 7) grid
    _, kq, rq = harp.interior_grid(truth[0])
    whole = kq % 1 == 0
    tracked = np.full_like(g_es, np.nan)
    tracked[kq[whole].astype(int), rq[whole].astype(int)] = res.tracked[es][whole]
    interior = _radial_error_mm(tracked[:, 1:-1], g_es[:, 1:-1], centre, px_mm)
    sp = rec.pixel_spacing_mm
    s_h = compute_strains(geometry.px_to_mm(res.landmarks, sp), frame_valid=rec.frame_valid)
    s_t = compute_strains(geometry.px_to_mm(truth, sp), frame_valid=rec.frame_valid)
    g0 = to_grid(truth[0])
    return {
        "harp_ring_mm": _radial_error_mm(to_grid(res.landmarks[es]), g_es, centre, px_mm),
        "tracked_ring_mm": np.concatenate([[np.nan], interior, [np.nan]]),
        "linear_field_ring_mm": _radial_error_mm(lin_es, g_es, centre, px_mm),
        "circ_ring_error": s_h["rings"][es] - s_t["rings"][es],
        "circ_error": float(s_h["circ_global"][es] - s_t["circ_global"][es]),
        "slice_index": int(rec.slice_index),
        "endo_radius_mm": qc.endocardial_radius_px(truth[0]) * px_mm,
        "wall_mm": float(np.hypot(*(g0[:, -1] - g0[:, 0]).T).mean() * px_mm),
        "tag_period_mm": float(res.harmonics.wavelength_px * px_mm),
    }


def summarise(rows) -> dict:
    def ring(key):  # rings with no value (the tracked points' borders) stay None
        a = np.array([r[key] for r in rows])
        return [round(float(np.mean(c)), 3) if np.isfinite(c).all() else None for c in a.T]

    errors = np.array([r["circ_error"] for r in rows])
    order = np.argsort(-np.abs(errors), kind="stable")  # worst first
    worst, keep = [rows[i] for i in order[:6]], order[2:]
    return {
        "slices": len(rows),
        "es_circ_error": [float(errors.mean()), float(errors.std())],
        "es_circ_error_without_worst_two": [float(errors[keep].mean()), float(errors[keep].std())],
        "harp_ring_mm": ring("harp_ring_mm"),
        "tracked_ring_mm": ring("tracked_ring_mm"),
        "linear_field_ring_mm": ring("linear_field_ring_mm"),
        "circ_ring_error": ring("circ_ring_error"),
        "worst_slices": [{k: (round(v, 3) if isinstance(v, float) else v) for k, v in r.items()
                          if not isinstance(v, np.ndarray)} for r in worst],
    }


def _show(family: str, seed: int, s: dict) -> None:
    print(f"{family} {seed}: ES circ {s['es_circ_error'][0]:+.3f} +- "
          f"{s['es_circ_error'][1]:.3f} (without the worst two "
          f"{s['es_circ_error_without_worst_two'][0]:+.3f} +- "
          f"{s['es_circ_error_without_worst_two'][1]:.3f})", flush=True)
    for key in ("harp_ring_mm", "tracked_ring_mm", "linear_field_ring_mm", "circ_ring_error"):
        print(f"  {key:22s} " + " ".join("   -  " if v is None else f"{v:+.3f}"
                                           for v in s[key]), flush=True)
    for w in s["worst_slices"][:3]:
        print(f"  worst: {w}", flush=True)


def main(argv=None) -> int:
    return run_tuning(__doc__, argv, lambda items: summarise([measure_slice(it) for it in items]),
                      _show)


if __name__ == "__main__":
    sys.exit(main())
