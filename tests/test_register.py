"""The registration refinement of a HARP track, against closed forms.

The cines are test_tracking's sinusoidal SPAMM grid carried by a known motion; here one
whose displacement is *not* linear across the wall (an area-keeping radial contraction,
as a real wall thickens), which HARP's linear-across-the-wall field cannot represent and
the refinement's cubic one can.
"""

from __future__ import annotations

import numpy as np
from test_tracking import CENTRE, LAM, T, _phase, _render, _ring_landmarks

from raytag.strain import compute_strains
from raytag.tracking import harp as H
from raytag.tracking import register as R

#: Area-keeping contraction: rho_t**2 = rho**2 - C s(t); the endocardium (15 px) moves to
#: 12 px at ES (Green circ strain -0.18), the epicardium (23 px) to 21.2 px (-0.077).
C = 15.0**2 - 12.0**2


def _contraction_cine(fading: bool = True):
    def inverse(x, y, t):
        dx, dy = x - CENTRE[0], y - CENTRE[1]
        rho = np.hypot(dx, dy)
        scale = np.sqrt(rho**2 + C * _phase(t)) / np.maximum(rho, 1e-9)
        return CENTRE[0] + dx * scale, CENTRE[1] + dy * scale

    modulation = 0.4 * 0.93 ** np.arange(T) if fading else None
    ed = _ring_landmarks()
    d = ed - CENTRE
    rho = np.hypot(d[:, 0], d[:, 1])
    truth = np.stack([CENTRE + d * (np.sqrt(rho**2 - C * _phase(t)) / rho)[:, None]
                      for t in range(T)])
    return _render(inverse, modulation), ed, truth


def test_refinement_recovers_a_transmural_gradient_harp_cannot():
    frames, ed, truth = _contraction_cine()
    res = H.track_harp(frames, np.ones(T, bool), ed)
    err_phase = np.abs(res.phase_landmarks - truth).max()
    err = np.abs(res.landmarks - truth).max()
    assert err < 0.15
    assert err < 0.5 * err_phase  # the refinement is what gets it there
    # ring by ring, ES circumferential strain is the closed form's
    es = int(np.argmax([_phase(t) for t in range(T)]))
    ring_true = compute_strains(truth)["rings"][es]
    ring = compute_strains(res.landmarks)["rings"][es]
    ring_phase = compute_strains(res.phase_landmarks)["rings"][es]
    assert np.abs(ring - ring_true).max() < 0.005
    assert np.abs(ring - ring_true).max() < np.abs(ring_phase - ring_true).max()


def test_refinement_keeps_a_static_cine_still():
    frames = _render(lambda x, y, t: (x, y))
    ed = _ring_landmarks()
    res = H.track_harp(frames, np.ones(T, bool), ed)
    assert np.abs(res.landmarks - ed[None]).max() < 0.05


def test_invalid_frames_and_unusable_starts_are_kept_as_given():
    frames, ed, truth = _contraction_cine()
    valid = np.ones(T, bool)
    valid[4] = False
    start = truth + 0.3
    start[0] = ed
    start[6] = np.nan
    out = R.refine_track(frames, valid, ed, start, LAM)
    assert np.array_equal(out[4], start[4])
    assert np.isnan(out[6]).all()
    assert np.array_equal(out[0], ed)
    assert np.abs(out[7] - truth[7]).max() < 0.15  # a valid frame is still refined
    # no ED geometry or no tag period: nothing to refine from
    assert np.array_equal(R.refine_track(frames, valid, np.full_like(ed, np.nan), start, LAM),
                          start, equal_nan=True)
    assert np.array_equal(R.refine_track(frames, valid, ed, start, float("nan")), start,
                          equal_nan=True)


def test_a_frame_that_would_slip_a_tag_keeps_its_start():
    """Frames of pure noise pull the registration anywhere: whatever it finds, no frame's
    landmarks move (by their median) more than SLIP_FRACTION of a tag period."""
    frames, ed, truth = _contraction_cine()
    rng = np.random.default_rng(3)
    noisy = frames.copy()
    noisy[1:] = rng.normal(100, 40, size=noisy[1:].shape)
    out = R.refine_track(noisy, np.ones(T, bool), ed, truth, LAM)
    moved = np.median(np.hypot(*(out - truth).transpose(2, 0, 1)), axis=1)
    assert (moved <= R.SLIP_FRACTION * LAM + 1e-9).all()
    # and on the true cine, started a third of a period off, the refinement does move
    start = truth.copy()
    start[1:] += np.array([0.25, -0.2]) * LAM / np.hypot(0.25, 0.2) * 0.2
    fixed = R.refine_track(frames, np.ones(T, bool), ed, start, LAM)
    assert np.abs(fixed[7] - truth[7]).max() < 0.15


def test_measure_slice_can_skip_the_refinement():
    """``register_frames=False`` (``raytag run --no-register-frames``) reports the phase
    field alone; the default reports the refined track."""
    from raytag.tracking.measure import measure_slice

    frames, ed, truth = _contraction_cine()
    valid = np.ones(T, bool)
    plain = H.track_harp(frames, valid, ed, refine=False).landmarks
    off = measure_slice(frames, valid, (1.0, 1.0), truth, "harp", ed, register_frames=False)
    on = measure_slice(frames, valid, (1.0, 1.0), truth, "harp", ed)
    np.testing.assert_allclose(off.landmarks_px, plain)
    assert np.abs(on.landmarks_px - truth).max() < 0.5 * np.abs(off.landmarks_px - truth).max()


def test_a_track_that_reads_the_motion_short_is_corrected_frame_by_frame():
    """HARP's band-pass reads a small ring's motion short, a little more each frame. Here
    the track to refine follows only 30% of the closed-form motion (2.1 px = half a tag
    period short at ES): started from it in every frame, the registration falls into the
    wrong tag or is refused by the slip guard; chained (each frame starts from the
    previous refined frame plus the track's increment), it stays on the truth."""
    frames, ed, truth = _contraction_cine()
    short = ed + 0.3 * (truth - ed)
    chained = R.refine_track(frames, np.ones(T, bool), ed, short, LAM, chain=True)
    unchained = R.refine_track(frames, np.ones(T, bool), ed, short, LAM)
    assert np.abs(chained - truth).max() < 0.15
    assert np.abs(unchained - truth).max() > 1.0
    # the chain may not leave the track for another tag: every frame stays within
    # MAX_DEPARTURE of a period of it (by the median)
    away = np.median(np.hypot(*(chained - short).transpose(2, 0, 1)), axis=1)
    assert (away <= R.MAX_DEPARTURE * LAM).all()


def test_the_chain_never_overrules_the_tracks_choice_of_tag():
    """A track that drifts steadily towards the neighbouring tag (0.08 of a period per
    frame): chained, the registration pulls every frame back to the truth until it would
    sit more than MAX_DEPARTURE of a period from the track; from there on the track's
    choice of tag stands (the frame keeps the track and the chain re-anchors on it)."""
    frames, ed, truth = _contraction_cine()
    k = H.CineHarmonics.analyse(frames, np.ones(T, bool), ed.mean(axis=0)).k
    period = 2 * np.pi * np.linalg.solve(k, [1.0, 0.0])  # one period along harmonic 0
    track = truth + 0.08 * np.arange(T)[:, None, None] * period
    out = R.refine_track(frames, np.ones(T, bool), ed, track, LAM, chain=True)
    away = np.median(np.hypot(*(out - track).transpose(2, 0, 1)), axis=1)
    assert (away <= R.MAX_DEPARTURE * LAM + 1e-9).all()
    early = 0.08 * np.arange(T) < 0.4  # drift still well inside half a period
    assert np.abs(out[early] - truth[early]).max() < 0.15
    assert np.array_equal(out[-1], track[-1])  # 1.5 periods off the truth: the track's tag
