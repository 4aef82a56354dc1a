"""What limits the ``tags`` ED fit: the fit from the true box, beside oracles, on tuning seeds.

The ``tags`` tracker fits the ED landmark ring to tag persistence
(:mod:`raytag.tracking.edfit`) and moves it with HARP. This script separates the fit's
errors from HARP's on the *tuning* cohorts (disc 7101/7111, thorax 7102/7112: transfer's
test seeds minus 2200 and 2190, never a test or held-out seed), each slice's fit started
from the centre of its **true** ROI box (the localiser out of the loop). Settings:

- ``fit``: the shipped fit, then HARP (what ``truth_box/tags`` measures, without the
  network fallback: a slice with no fit starts HARP from the truth and is counted);
- ``fit_undo_motion``: the same, with the ring moved out by the wall's own motion between
  ED and the persistence frames (the persistence map sees the cavity's edge where it is in
  frames 2-4, not at ED): per spoke, minus the mean radial displacement of HARP's ring 0
  over those frames, applied to the track by the field's own linearity across the wall;
- ``true_endo``: the fit's centre and septum, the true endocardium, the 8.3 mm wall prior;
- ``true_endo_epi``: the true centre, endo- and epicardium, the fit's septum (rotation only);
- ``truth``: HARP from the truth ED landmarks (HARP alone).

Per cohort: landmark RMSE at ED and ES (mm), ES global circumferential and radial strain
error (bias +- SD), the fit's mean endocardial radius error (mm, against the truth's about
the truth's centre), and slices whose spoke 0 is more than 30 degrees off.

    python benchmarks/edfit_limits.py --participants 12 --json benchmarks/results/edfit_limits.json
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
from provenance import commit, machine, save_json  # benchmarks/provenance.py (run as a script)
from transfer import TEST_SEEDS, _metrics, labelled_cohort

from raytag.constants import N_CIRCUMFERENTIAL, N_TRANSMURAL
from raytag.tracking import edfit
from raytag.tracking.harp import CineHarmonics, track_harp

#: Tuning cohorts: the test seeds moved by these offsets (docs/tracking.md).
TUNING_OFFSETS = (-2200, -2190)
SETTINGS = ("fit", "fit_undo_motion", "true_endo", "true_endo_epi", "truth")


def _true_radii(truth_ed, centre, angles):
    """The truth's endo- and epicardial distance from ``centre`` at ``angles`` (rad)."""
    g = truth_ed.reshape(N_CIRCUMFERENTIAL, N_TRANSMURAL, 2)
    out = []
    for ring in (0, N_TRANSMURAL - 1):
        d = g[:, ring] - centre
        a = np.mod(np.arctan2(d[:, 1], d[:, 0]), 2 * np.pi)
        order = np.argsort(a)
        out.append(np.interp(np.mod(angles, 2 * np.pi), a[order],
                             np.hypot(*d.T)[order], period=2 * np.pi))
    return out


def undo_motion(track: np.ndarray, frames=edfit.PERSIST_FRAMES) -> np.ndarray:
    """``track`` ``(T, 168, 2)`` of a ring moved outward, spoke by spoke, by minus its ring
    0's mean radial displacement over ``frames``; the new ring's motion is the old field
    evaluated there (HARP's field is linear across the wall in the ring index, so moving
    along a spoke is linear extrapolation of the rings' trajectories)."""
    g = track.reshape(len(track), N_CIRCUMFERENTIAL, N_TRANSMURAL, 2)
    centre = g[0].reshape(-1, 2).mean(axis=0)
    normal = g[0, :, 0] - centre
    normal /= np.linalg.norm(normal, axis=1, keepdims=True)
    ts = [t for t in frames if t < len(g) and np.isfinite(g[t]).all()]
    if not ts:
        return track
    shift = -np.mean([((g[t, :, 0] - g[0, :, 0]) * normal).sum(-1) for t in ts])
    spacing = np.linalg.norm(g[0, :, -1] - g[0, :, 0], axis=1) / (N_TRANSMURAL - 1)
    u = g - g[:1]
    per_ring = (u[:, :, -1] - u[:, :, 0]) / (N_TRANSMURAL - 1)
    ed = g[0] + shift * normal[:, None, :]
    moved = ed[None] + u + (shift / spacing)[None, :, None, None] * per_ring[:, :, None]
    return moved.reshape(track.shape)


def measure_cohort(items) -> dict:
    """Every setting on the same slices."""
    tracks = {s: [] for s in SETTINGS}
    endo_err, septum_off, fallback = [], 0, 0
    for it in items:
        rec, truth = it.record, it.landmarks_px[0]
        px_mm = float(np.mean(rec.pixel_spacing_mm))
        box = it.bbox_px
        start = np.array([(box[0] + box[2]) / 2, (box[1] + box[3]) / 2])
        h = CineHarmonics.analyse(rec.frames, rec.frame_valid, start)
        fit = None
        try:
            fit = edfit.fit_ed_geometry(h, start, rec.pixel_spacing_mm)
        except ValueError:
            pass
        usable = fit is not None and fit.contrast >= edfit.MIN_CONTRAST \
            and fit.rays_used >= edfit.MIN_RAYS_USED and np.isfinite(fit.landmarks).all()
        if not usable:  # no fit: every setting starts from the truth (counted)
            fallback += 1
            track = track_harp(rec.frames, rec.frame_valid, truth).landmarks
            for s in SETTINGS:
                tracks[s].append(track)
            continue
        spokes = edfit.spoke_angles(fit.septum_angle)
        g = truth.reshape(N_CIRCUMFERENTIAL, N_TRANSMURAL, 2)
        true_centre = g[:, 0].mean(axis=0)
        ring_angles = np.linspace(0, 2 * np.pi, edfit.N_RAYS, endpoint=False)
        t_endo, _ = _true_radii(truth, true_centre, ring_angles)
        endo_err.append(float((fit.endo_radius_px.mean() - t_endo.mean()) * px_mm))
        s_true = np.arctan2(*(g[0, 3] - g[:, 3].mean(axis=0))[::-1])
        if abs(np.degrees(np.angle(np.exp(1j * (fit.septum_angle - s_true))))) > 30:
            septum_off += 1
        wall = np.full(N_CIRCUMFERENTIAL, edfit.WALL_MM / px_mm)
        e_fit, _ = _true_radii(truth, fit.centre, spokes)
        e_true, p_true = _true_radii(truth, true_centre, spokes)
        starts = {"fit": fit.landmarks,
                  "true_endo": edfit.ring_landmarks(fit.centre, spokes, e_fit, e_fit + wall),
                  "true_endo_epi": edfit.ring_landmarks(true_centre, spokes, e_true, p_true),
                  "truth": truth}
        for s, ed in starts.items():
            tracks[s].append(track_harp(rec.frames, rec.frame_valid, ed, harmonics=h).landmarks)
        tracks["fit_undo_motion"].append(undo_motion(tracks["fit"][-1]))
    out = {}
    for s in SETTINGS:
        m = _metrics(items, tracks[s], None, 1.0)
        out[s] = {k: m[k] for k in ("rmse_ed_mm_mean", "rmse_es_mm_mean", "es_circ_global_bias",
                                    "es_circ_global_sd", "es_circ_global_true_sd",
                                    "es_radial_bias", "es_radial_sd", "n_slices")}
    out["fit"]["endo_radius_error_mm"] = [float(np.mean(endo_err)), float(np.std(endo_err))]
    out["fit"]["septum_over_30deg"] = septum_off
    out["fallback_slices"] = fallback
    return out


def run_tuning(doc: str, argv, measure, show) -> int:
    """The tuning-cohort benchmarks' main: ``measure(items) -> dict`` on every tuning cohort
    (``--families``, ``--participants``), ``show(family, seed, result)`` prints it, and
    all of it goes to ``--json`` with commit, machine and seconds."""
    ap = argparse.ArgumentParser(description=doc.split("\n")[0])
    ap.add_argument("--participants", type=int, default=12)
    ap.add_argument("--families", nargs="+", default=["disc", "thorax"])
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    result = {"commit": commit(), "machine": machine(), "participants": args.participants,
              "cohorts": {}}
    for family in args.families:
        for offset in TUNING_OFFSETS:
            seed = TEST_SEEDS[family] + offset
            res = measure(labelled_cohort(family, args.participants, seed))
            result["cohorts"][f"{family}/{seed}"] = res
            show(family, seed, res)
    result["seconds"] = time.perf_counter() - t0
    save_json(result, args.json)
    return 0


def _show(family: str, seed: int, res: dict) -> None:
    for s in SETTINGS:
        m = res[s]
        extra = ""
        if s == "fit":
            e = m["endo_radius_error_mm"]
            extra = f" | endo radius {e[0]:+.2f} +- {e[1]:.2f} mm, " \
                    f"spoke 0 > 30 deg: {m['septum_over_30deg']}"
        print(f"{family:7s} {seed} {s:16s} RMSE ED/ES {m['rmse_ed_mm_mean']:.2f}/"
              f"{m['rmse_es_mm_mean']:.2f} mm | ES circ {m['es_circ_global_bias']:+.3f}"
              f" +- {m['es_circ_global_sd']:.3f} | radial {m['es_radial_bias']:+.3f} +- "
              f"{m['es_radial_sd']:.3f}{extra}", flush=True)


def main(argv=None) -> int:
    return run_tuning(__doc__, argv, measure_cohort, _show)


if __name__ == "__main__":
    sys.exit(main())
