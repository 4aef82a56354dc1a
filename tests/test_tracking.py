"""HARP tracking and tag QC against closed forms.

Cines here are a sinusoidal 1-1 SPAMM grid carried by a known motion (affine, rotation,
torsion, translation), rendered at every pixel from the exact inverse map, so the truth
is exact and independent of the tracker.
"""

from __future__ import annotations

import numpy as np
import pytest

from raytag.landmarks import from_grid
from raytag.strain import compute_strains
from raytag.tracking import harp as H
from raytag.tracking import qc as Q

ROWS, COLS, T = 190, 170, 20
CENTRE = np.array([84.0, 96.0])
LAM = 4.4  # tag period (px)


def _k(angle_deg: float = 40.0) -> np.ndarray:
    a = np.deg2rad(angle_deg)
    return 2 * np.pi / LAM * np.array([[np.cos(a), np.sin(a)],
                                       [np.cos(a - np.pi / 2), np.sin(a - np.pi / 2)]])


def _pattern(xm, ym, k=None, m=0.4):
    k = _k() if k is None else k
    return 1 + m * (np.cos(k[0, 0] * xm + k[0, 1] * ym + 0.3)
                    + np.cos(k[1, 0] * xm + k[1, 1] * ym + 1.1))


def _ring_landmarks(r_endo=15.0, wall=8.0, centre=CENTRE, aspect=1.0) -> np.ndarray:
    k = np.arange(24)[:, None]
    r = np.arange(7)[None, :]
    ang = np.deg2rad(143 + 15 * k)
    rad = r_endo + wall * r / 6
    return from_grid(np.stack([centre[0] + rad * np.cos(ang), centre[1] + aspect * rad
                               * np.sin(ang)], -1))


def _render(inverse, modulation=None):
    """Frames ``(T, ROWS, COLS)``: pattern at the material point ``inverse(x, y, t)``."""
    yy, xx = np.mgrid[0:ROWS, 0:COLS].astype(float)
    frames = []
    for t in range(T):
        xm, ym = inverse(xx, yy, t)
        m = 0.4 if modulation is None else modulation[t]
        frames.append(100 * _pattern(xm, ym, m=m))
    return np.array(frames)


def _phase(t):  # 0 -> 1 at frame 7 -> back to 0.1 at the end
    return np.sin(0.5 * np.pi * min(t / 7, 1)) ** 2 if t <= 7 else 1 - 0.9 * (t - 7) / (T - 8)


def _affine(t):
    s = _phase(t)
    th = np.deg2rad(-8 * s)
    rot = np.array([[np.cos(th), -np.sin(th)], [np.sin(th), np.cos(th)]])
    return rot @ np.diag([1 - 0.15 * s, 1 - 0.1 * s]), s * np.array([1.5, -1.0])


def _track(frames, ed):
    return H.track_harp(frames, np.ones(len(frames), bool), ed)


def test_affine_motion_is_tracked_to_a_tenth_of_a_pixel():
    def inverse(x, y, t):
        a, b = _affine(t)
        d = np.stack([x - CENTRE[0] - b[0], y - CENTRE[1] - b[1]], -1) @ np.linalg.inv(a).T
        return d[..., 0] + CENTRE[0], d[..., 1] + CENTRE[1]

    ed = _ring_landmarks()
    truth = np.stack([(ed - CENTRE) @ _affine(t)[0].T + CENTRE + _affine(t)[1]
                      for t in range(T)])
    res = _track(_render(inverse), ed)
    assert np.abs(res.landmarks - truth).max() < 0.1
    # and the strain of the track is the affine's
    s_true, s_harp = compute_strains(truth), compute_strains(res.landmarks)
    assert np.abs(s_harp["circ_global"] - s_true["circ_global"]).max() < 2e-3


@pytest.mark.parametrize("kind", ["rotation", "torsion"])
def test_rotation_and_torsion(kind):
    """Rigid rotation by 12 deg, and torsion: rotation growing across the wall (9-12 deg)."""
    def angle(rho, t):
        base = np.deg2rad(12.0) if kind == "rotation" else np.deg2rad(9 + 3 * (rho - 15) / 8)
        return base * _phase(t)

    def inverse(x, y, t):
        dx, dy = x - CENTRE[0], y - CENTRE[1]
        a = -angle(np.hypot(dx, dy), t)  # rotation keeps the radius: invert directly
        return (CENTRE[0] + dx * np.cos(a) - dy * np.sin(a),
                CENTRE[1] + dx * np.sin(a) + dy * np.cos(a))

    ed = _ring_landmarks()
    d = ed - CENTRE
    rho = np.hypot(d[:, 0], d[:, 1])
    truth = []
    for t in range(T):
        a = angle(rho, t)
        truth.append(CENTRE + np.stack([d[:, 0] * np.cos(a) - d[:, 1] * np.sin(a),
                                        d[:, 0] * np.sin(a) + d[:, 1] * np.cos(a)], -1))
    res = _track(_render(inverse), ed)
    # Torsion shears the wall (1 px across it here): the band-pass (~one tag period wide)
    # smooths displacement detail finer than itself, so the bound is looser than rigid's.
    bound = 0.1 if kind == "rotation" else 0.2
    assert np.abs(res.landmarks - np.array(truth)).max() < bound


def test_travel_beyond_a_tag_period_without_jumps():
    """9 px in total (two tag periods), 0.45 px per frame (well under half a period)."""
    shift = np.array([0.36, -0.27]) * np.arange(T)[:, None] * 1.25

    def inverse(x, y, t):
        return x - shift[t, 0], y - shift[t, 1]

    ed = _ring_landmarks()
    res = _track(_render(inverse), ed)
    assert np.hypot(*shift[-1]) > 2 * LAM
    assert np.abs(res.landmarks - (ed[None] + shift[:, None])).max() < 0.1


def test_border_points_do_not_jump_a_tag():
    """A tagged annulus contracts inside a static tagged background; the endo- and
    epicardial landmarks sit on the borders, where the band-pass mixes both motions."""
    ed = _ring_landmarks()

    def inverse(x, y, t):
        s = 1 - 0.12 * _phase(t)
        dx, dy = x - CENTRE[0], y - CENTRE[1]
        rho = np.hypot(dx, dy)
        inside = (rho > 15 * s - 3) & (rho < 23 * s + 3)
        return (np.where(inside, CENTRE[0] + dx / s, x), np.where(inside, CENTRE[1] + dy / s, y))

    truth = np.stack([CENTRE + (ed - CENTRE) * (1 - 0.12 * _phase(t)) for t in range(T)])
    res = _track(_render(inverse), ed)
    err = np.hypot(*(res.landmarks - truth).transpose(2, 0, 1))
    assert err.max() < 0.5 * LAM / 2  # never a tag (or half a tag) off
    assert np.median(err) < 0.3


def test_regularised_field_keeps_uniform_strain_exact():
    """Any affine displacement of a ring grid is reproduced exactly by the field (no
    penalty on orders 0 and 1), also from interior rings only."""
    ed = _ring_landmarks()
    rng = np.random.default_rng(1)
    a = np.eye(2) + rng.normal(0, 0.1, (2, 2))
    b = rng.normal(0, 2, 2)
    disp = (ed - CENTRE) @ a.T + CENTRE + b - ed
    pts, kq, rq = H.interior_grid(ed)
    disp_q = (pts - CENTRE) @ a.T + CENTRE + b - pts
    field = H.fit_field(kq, rq, disp_q, np.ones(len(kq)))
    k = np.repeat(np.arange(24.0), 7)
    r = np.tile(np.arange(7.0), 24)
    assert np.abs(field(k, r) - disp).max() < 1e-3
    s = compute_strains(np.stack([ed, ed + field(k, r)]))
    s_true = compute_strains(np.stack([ed, ed + disp]))
    assert s["circ_global"][1] == pytest.approx(s_true["circ_global"][1], abs=1e-6)


def test_tag_contrast_follows_a_known_fading_curve():
    q = 0.85 ** np.arange(T)
    ed = _ring_landmarks()
    frames = _render(lambda x, y, t: (x, y), modulation=0.4 * q)
    h = H.CineHarmonics.analyse(frames, np.ones(T, bool), ed.mean(axis=0))
    c = Q.tag_contrast(h, np.broadcast_to(ed, (T, *ed.shape)))
    np.testing.assert_allclose(c / c[0], q, rtol=0.03)
    # REALISM's measure of the pattern 1 + m (cos u + cos v): two harmonics of m/2 each
    assert c[0] == pytest.approx(0.4, rel=0.1)
    assert "tags_faded_early" in Q.qc_flags(c, 12, 0.1)
    assert "tags_faded_early" not in Q.qc_flags(c, 5, 0.1)


def test_cavity_tag_ratio_is_the_endocardial_radius_in_tag_periods():
    # a circular ring of radius R about any centre: ratio R / lambda exactly
    for r_endo in (6.0, 15.0):
        ratio = Q.cavity_tag_ratio(_ring_landmarks(r_endo=r_endo), LAM)
        assert ratio == pytest.approx(r_endo / LAM, rel=1e-9)
    c = np.ones(T)
    small = Q.SMALL_CAVITY_TAG_PERIODS * LAM * 0.95
    large = Q.SMALL_CAVITY_TAG_PERIODS * LAM * 1.05
    assert "cavity_small_for_tags" in Q.qc_flags(
        c, 7, 0.1, None, Q.cavity_tag_ratio(_ring_landmarks(r_endo=small), LAM))
    assert "cavity_small_for_tags" not in Q.qc_flags(
        c, 7, 0.1, None, Q.cavity_tag_ratio(_ring_landmarks(r_endo=large), LAM))
    assert "cavity_small_for_tags" not in Q.qc_flags(c, 7, 0.1)  # not measured: no flag
    nan_ring = np.full((168, 2), np.nan)
    assert np.isnan(Q.cavity_tag_ratio(nan_ring, LAM))


def test_measure_slice_flags_a_small_cavity_and_not_a_large_one():
    from raytag.tracking.measure import measure_slice

    frames = _render(lambda x, y, t: (x, y))
    valid = np.ones(T, bool)
    for r_endo, expect in ((5.0, True), (15.0, False)):
        ed = _ring_landmarks(r_endo=r_endo)
        net = np.broadcast_to(ed, (T, *ed.shape))
        m = measure_slice(frames, valid, (1.5, 1.5), net, "harp", ed)
        assert ("cavity_small_for_tags" in m.qc_flags) is expect


def test_phase_residual_flags_a_shuffled_track_but_not_the_truth():
    def inverse(x, y, t):
        a, b = _affine(t)
        d = np.stack([x - CENTRE[0] - b[0], y - CENTRE[1] - b[1]], -1) @ np.linalg.inv(a).T
        return d[..., 0] + CENTRE[0], d[..., 1] + CENTRE[1]

    ed = _ring_landmarks()
    truth = np.stack([(ed - CENTRE) @ _affine(t)[0].T + CENTRE + _affine(t)[1]
                      for t in range(T)])
    frames = _render(inverse)
    h = H.CineHarmonics.analyse(frames, np.ones(T, bool), ed.mean(axis=0))
    _, good = Q.phase_residual_px(h, truth)
    shuffled = truth.copy()
    rng = np.random.default_rng(0)
    for t in range(1, T):
        shuffled[t] = truth[t][rng.permutation(168)]
    _, bad = Q.phase_residual_px(h, shuffled)
    assert good < 0.1
    assert bad > Q.PHASE_RESIDUAL_FLAG_PX + 0.3 > 0.4 > good
    assert "phase_inconsistent" not in Q.qc_flags(np.ones(T), 7, good)
    assert "phase_inconsistent" in Q.qc_flags(np.ones(T), 7, bad)


def test_untagged_cine_is_refused():
    frames = np.full((T, ROWS, COLS), 50.0) + np.random.default_rng(0).normal(0, 1, (T, ROWS,
                                                                                      COLS))
    with pytest.raises(ValueError):
        _track(frames, _ring_landmarks())


def test_invalid_frames_get_nan():
    ed = _ring_landmarks()
    frames = _render(lambda x, y, t: (x, y))
    valid = np.ones(T, bool)
    valid[15:] = False
    res = H.track_harp(frames, valid, ed)
    assert np.isnan(res.landmarks[15:]).all() and np.isfinite(res.landmarks[:15]).all()
