"""Generator families: named distributions over anatomy, motion and acquisition.

A family says how a participant's slices are drawn, fitted to their strain targets,
rendered and labelled. Families differ in *how* the anatomy and motion are built, so that
accuracy can be measured on a family a network never saw (leave-one-family-out):

- ``disc``: the original phantom: a uniform body disc with two dark lungs and a liver,
  the LV near the centre in UK Biobank's fixed geometry (256x174, 6 mm tags at 45 deg,
  20 frames); LV model :mod:`raytag.phantom.kinematics`.
- ``thorax``: a procedural torso cross-section filling the field of view (fat, chest
  wall, lungs, liver/stomach/bowel by level, spine, aorta, arm), any heart position and
  in-plane rotation, per-tissue T1 and texture, breathing drift, papillary muscles and
  trabeculation, randomised scanner settings; same LV model as ``disc``.
- ``patchwork``: random organ masks with random textures and tissue properties (some
  moving as distractors), and a different LV model (:mod:`raytag.phantom.fourier_lv`):
  irregular contours, area-preserving transmural motion, transmural twist gradient,
  another contraction curve.

All three draw ES strain targets from the same UK Biobank distribution (docs/realism.md), so
strain errors are comparable across families.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from raytag.constants import N_FRAMES
from raytag.phantom import fourier_lv as flv
from raytag.phantom import kinematics as kin
from raytag.phantom.params import sample_participant
from raytag.phantom.patchwork import render_patchwork, sample_patchwork
from raytag.phantom.render import render_slice
from raytag.phantom.thorax import render_thorax, sample_thorax, thorax_landmarks

__all__ = ["Family", "FAMILIES", "get_family", "family_names"]


@dataclass(frozen=True)
class Family:
    """How one family's participants are made (all callables pure in their arguments).

    ``sample(rng, eid, instance, group, impaired_fraction, n_frames)`` -> (participant params,
    {slice_index: (ES circ_global target, ES radial target)}); ``n_frames`` None = the
    family's own choice. ``fit(slice, circ, radial)`` -> slice whose exact ES strain meets
    the targets; ``landmarks(slice)`` -> ``(n_frames, 168, 2)`` float64 px;
    ``frame_times_ms(slice)`` -> ``(n_frames,)``; ``render(slice, rng, return_masks=False)``
    -> uint16 ``(n_frames, rows, cols)``.
    """

    name: str
    description: str
    sample: Callable
    fit: Callable
    landmarks: Callable
    frame_times_ms: Callable
    render: Callable


def _sample_disc(rng, eid, instance, group, impaired_fraction, n_frames):
    return sample_participant(rng, eid, instance, group=group,
                              impaired_fraction=impaired_fraction,
                              n_frames=N_FRAMES if n_frames is None else n_frames)


FAMILIES: dict[str, Family] = {
    "disc": Family("disc", "uniform body disc, LV near the centre, UK Biobank acquisition",
                   _sample_disc, kin.fit_motion, kin.landmarks, kin.frame_times_ms,
                   render_slice),
    "thorax": Family("thorax", "procedural torso, any heart pose, randomised acquisition",
                     sample_thorax, kin.fit_motion, thorax_landmarks, kin.frame_times_ms,
                     render_thorax),
    "patchwork": Family("patchwork", "random textured organ masks, Fourier LV model, "
                        "randomised acquisition", sample_patchwork, flv.fit_fourier_motion,
                        flv.fourier_landmarks, flv.fourier_frame_times_ms, render_patchwork),
}


def family_names() -> tuple[str, ...]:
    return tuple(FAMILIES)


def get_family(name: str) -> Family:
    """The family called ``name``; ``ValueError`` naming the known ones."""
    try:
        return FAMILIES[name]
    except KeyError:
        raise ValueError(f"unknown family {name!r}; known: {', '.join(FAMILIES)}") from None


def draw_family(rng: np.random.Generator, mixture: dict[str, float]) -> str:
    """One family name drawn from ``{name: weight}`` (weights need not sum to 1)."""
    names = sorted(mixture)
    w = np.array([mixture[n] for n in names], dtype=float)
    return names[int(rng.choice(len(names), p=w / w.sum()))]
