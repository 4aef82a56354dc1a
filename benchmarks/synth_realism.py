"""The generator measured like docs/realism.md's real slice, next to REALISM's values.

    python benchmarks/synth_realism.py [--participants 10] [--seed 0]

Prints a JSON object: for each measure, REALISM's value and the synthetic mean, min and
max over all slices of the participants. The README's realism table comes from it.
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from raytag.phantom import kinematics as kin
from raytag.phantom import measure as M
from raytag.phantom.params import sample_participant
from raytag.phantom.render import render_slice
from raytag.strain import compute_strains

REALISM = {
    "tag_angle_abs_deg": 45.0, "wavelength_mm": 5.9,
    "first_harmonic_frame1": 0.92, "first_harmonic_frame8": 0.31, "first_harmonic_frame19": 0.13,
    "first_harmonic_power_frame8": 0.10, "first_harmonic_power_frame19": 0.02,
    "dc_rise_frame2": 1.15, "dc_rise_frame8": 1.4, "dc_rise_frame19": 1.54,
    "dc_over_first_harmonic_peak": 7.0, "cross_term_ratio": "0.05-0.20",
    "second_harmonic_ratio": 0.03, "myocardial_cv_ed": 0.49, "myocardial_cv_es": 0.20,
    "myocardial_cv_frame19": 0.16, "max_value": 143,
}


def measure_slice(frames: np.ndarray, masks: np.ndarray, spacing: float, es: int) -> dict:
    g = M.grid_geometry(frames[0], spacing)
    amp = M.first_harmonic_amplitude(frames, g["peaks"])
    power = M.first_harmonic_amplitude(frames, g["peaks"], power=2)
    dc = M.dc_component(frames)
    bins = np.rint(g["peaks"]).astype(int)
    spectrum = np.abs(M.padded_spectrum(frames[0]))
    cv = M.masked_cv(frames, masks)
    return {
        "tag_angle_abs_deg": float(np.mean(np.abs(g["angles_deg"]))),
        "wavelength_mm": float(np.mean(g["wavelength_mm"])),
        "first_harmonic_frame1": amp[1] / amp[0], "first_harmonic_frame8": amp[8] / amp[0],
        "first_harmonic_frame19": amp[19] / amp[0],
        "first_harmonic_power_frame8": power[8] / power[0],
        "first_harmonic_power_frame19": power[19] / power[0],
        "dc_rise_frame2": dc[2] / dc[0], "dc_rise_frame8": dc[8] / dc[0],
        "dc_rise_frame19": dc[19] / dc[0],
        "dc_over_first_harmonic_peak": dc[0] / spectrum[128 + bins[:, 1], 128 + bins[:, 0]].mean(),
        "cross_term_ratio": M.cross_term_ratio(frames[0], g["peaks"]),
        "second_harmonic_ratio": M.second_harmonic_ratio(frames[0], g["peaks"]),
        "myocardial_cv_ed": cv[0], "myocardial_cv_es": cv[es], "myocardial_cv_frame19": cv[19],
        "max_value": float(frames.max()),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--participants", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    rows = []
    for i in range(args.participants):
        participant, targets = sample_participant(rng, str(9000000 + i))
        for sp in participant.slices:
            p = kin.fit_motion(sp, *targets[sp.slice_index])
            frames, masks = render_slice(p, rng, return_masks=True)
            es = int(compute_strains(kin.landmarks(p))["es_frame"])
            rows.append(measure_slice(frames, masks, p.spacing_mm, es))
    out = {"slices": len(rows)}
    for key, real in REALISM.items():
        values = np.array([r[key] for r in rows], dtype=float)
        out[key] = {"realism": real, "mean": round(float(values.mean()), 3),
                    "min": round(float(values.min()), 3), "max": round(float(values.max()), 3)}
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
