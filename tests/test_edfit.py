"""Training-free ED geometry from tag persistence (raytag.tracking.edfit).

Closed-form cines: a tagged field with a round cavity whose blood loses its tags after
frame 1 and a right-ventricular pool beside the wall at a known angle; the fit must find
the cavity's radius and centre, the septum's side, and refuse a cine with no washout.
"""

from __future__ import annotations

import numpy as np
import pytest

from raytag.landmarks import to_grid
from raytag.tracking import edfit
from raytag.tracking.harp import CineHarmonics
from raytag.tracking.measure import measure_slice

ROWS, COLS, T = 180, 200, 20
LAM = 5.0  # tag period (px)
SPACING = (1.4, 1.4)
CENTRE = np.array([97.0, 88.0])  # (x, y) px
R_ENDO = 12.0  # px
RV_ANGLE = np.deg2rad(200.0)  # image coordinates


def _cine(washout: bool = True, rv: bool = True) -> np.ndarray:
    """``(T, ROWS, COLS)``: tags everywhere at frame 0 and 1; from frame 2 the LV cavity
    (radius R_ENDO) and an RV pool (1.1-2.4 walls beyond it, +-40 degrees about RV_ANGLE)
    are bright and untagged when ``washout``. No motion: geometry is the test."""
    yy, xx = np.mgrid[0:ROWS, 0:COLS].astype(float)
    k = 2 * np.pi / LAM
    tags = 1 + 0.4 * (np.cos(k * (0.8 * xx + 0.6 * yy)) + np.cos(k * (-0.6 * xx + 0.8 * yy)))
    dx, dy = xx - CENTRE[0], yy - CENTRE[1]
    r, ang = np.hypot(dx, dy), np.arctan2(dy, dx)
    wall = edfit.WALL_MM / SPACING[0]
    blood = r < R_ENDO
    if rv:
        d = np.angle(np.exp(1j * (ang - RV_ANGLE)))
        blood |= (r > R_ENDO + 1.1 * wall) & (r < R_ENDO + 2.4 * wall) & (np.abs(d) < 0.7)
    fade = np.exp(-np.arange(T) / 12.0)
    frames = []
    for t in range(T):
        tissue = 100 * (1 + (tags - 1) * fade[t])
        if washout and t >= 2:
            frame = np.where(blood, 130.0, tissue)
        else:
            frame = tissue
        frames.append(frame)
    rng = np.random.default_rng(3)
    return np.array(frames) + rng.normal(0, 2.0, (T, ROWS, COLS))


def _fit(frames, start):
    h = CineHarmonics.analyse(frames.astype(np.float32), np.ones(T, bool), start)
    return edfit.fit_ed_geometry(h, start, SPACING)


def test_cavity_radius_centre_and_septum_side_are_found():
    start = CENTRE + np.array([3.0, -2.5])  # the localiser is a few px off
    fit = _fit(_cine(), start)
    assert np.linalg.norm(fit.centre - CENTRE) < 1.5  # 5 px off at the start
    grid = to_grid(fit.landmarks)  # (24, 7, 2)
    r = np.linalg.norm(grid - fit.centre, axis=-1)
    # endocardium on the cavity's edge, a little outside where persistence is blurred
    # (the fit puts it where the wall's own level is nearly reached: edfit.WALL_LEVEL)
    assert np.all(r[:, 0] > R_ENDO - 1.0) and np.mean(r[:, 0] - R_ENDO) < 2.0
    wall = edfit.WALL_MM / SPACING[0]
    assert np.allclose(r[:, 6] - r[:, 0], wall, atol=1e-6)  # epicardium one wall out
    assert np.allclose(np.diff(r, axis=1), wall / 6, atol=1e-6)  # rings evenly spaced
    # spoke 0 points at the right ventricle; spokes go round with increasing atan2
    a0 = np.arctan2(*(grid[0, 0] - fit.centre)[::-1])
    assert abs(np.angle(np.exp(1j * (a0 - RV_ANGLE)))) < np.deg2rad(15)
    a1 = np.arctan2(*(grid[1, 0] - fit.centre)[::-1])
    assert np.angle(np.exp(1j * (a1 - a0))) == pytest.approx(2 * np.pi / 24, abs=1e-6)
    assert fit.contrast > 2 * edfit.MIN_CONTRAST and fit.rays_used > 0.9


def test_without_an_rv_the_septum_hint_orients_the_grid():
    hint = np.deg2rad(40.0)
    h = CineHarmonics.analyse(_cine(rv=False).astype(np.float32), np.ones(T, bool), CENTRE)
    fit = edfit.fit_ed_geometry(h, CENTRE, SPACING, septum_hint=hint)
    # no washed-out blood beyond the wall: nothing outvotes the hint
    assert abs(np.angle(np.exp(1j * (fit.septum_angle - hint)))) < np.deg2rad(1)


def _network_ring(r0: float, step: float) -> np.ndarray:
    """A network's ED grid ``(168, 2)`` about CENTRE: ring ``i`` at radius r0 + i * step."""
    return np.stack([CENTRE + (r0 + step * i) * np.array([np.cos(a), np.sin(a)])
                     for a in np.linspace(0, 2 * np.pi, 24, endpoint=False)
                     for i in range(7)])


def test_the_tags_tracker_replaces_the_networks_geometry_with_the_fit():
    frames, valid = _cine(), np.ones(T, bool)
    wrong = _network_ring(2.0, 1.2)  # the whole "wall" inside the washed-out cavity
    net = np.repeat(wrong[None], T, 0)
    m = measure_slice(frames, valid, SPACING, net, "tags", wrong)
    assert m.tracker == "tags"
    ring0 = m.landmarks_px[0].reshape(24, 7, 2)[:, 0]
    assert abs(np.linalg.norm(ring0 - CENTRE, axis=1).mean() - R_ENDO) < 2.0
    assert np.linalg.norm(ring0.mean(axis=0) - CENTRE) < 1.5


def _box_about(centre, half: float = 30.0) -> np.ndarray:
    return np.array([centre[0] - half, centre[1] - half, centre[0] + half, centre[1] + half])


def test_the_tags_fit_starts_from_the_roi_box_not_the_networks_ring():
    frames, valid = _cine(), np.ones(T, bool)
    # the ED network's ring drifted 9 px (12.6 mm) off the LV; the localiser's box is right
    wrong = _network_ring(4.0, 1.2) + np.array([9.0, 0.0])
    net = np.repeat(wrong[None], T, 0)
    m = measure_slice(frames, valid, SPACING, net, "tags", wrong, _box_about(CENTRE))
    assert m.tracker == "tags"
    ring0 = m.landmarks_px[0].reshape(24, 7, 2)[:, 0]
    assert np.linalg.norm(ring0.mean(axis=0) - CENTRE) < 1.5
    assert abs(np.linalg.norm(ring0 - CENTRE, axis=1).mean() - R_ENDO) < 2.0
    # without a box the network's centroid starts it (inside the cavity here: still found)
    m = measure_slice(frames, valid, SPACING, net, "tags", wrong)
    assert np.linalg.norm(m.landmarks_px[0].reshape(24, 7, 2)[:, 0].mean(0) - CENTRE) < 1.5
    # a box of NaN (no localiser answer) falls back to the centroid, never crashes
    m = measure_slice(frames, valid, SPACING, net, "tags", wrong, np.full(4, np.nan))
    assert m.tracker == "tags"


def _persistence_beside_lung() -> np.ndarray:
    """A hand-made persistence map (window px): washed-out cavity (0.1) of radius R_ENDO
    about CENTRE, a wall (0.45) one WALL_MM thick, then lung (NaN: no signal) on every side
    but the septum's, where static tissue keeps its tags (0.8), as against real slices'
    lateral wall."""
    yy, xx = np.mgrid[0:128, 0:128].astype(float)
    r = np.hypot(xx - 64, yy - 64)
    ang = np.arctan2(yy - 64, xx - 64)
    wall = edfit.WALL_MM / SPACING[0]
    p = np.where(r < R_ENDO, 0.1, np.where(r < R_ENDO + wall, 0.45, 0.8))
    lateral = np.abs(np.angle(np.exp(1j * (ang - RV_ANGLE)))) > 0.8
    return np.where((r >= R_ENDO + wall) & lateral, np.nan, p).astype(np.float32)


def test_lung_beside_the_wall_is_not_read_as_wall():
    pmap = _persistence_beside_lung()
    angles = np.linspace(0, 2 * np.pi, edfit.N_RAYS, endpoint=False)
    endo, used, contrast = edfit._endocardium(pmap, np.array([64.0, 64.0]), SPACING[0], angles)
    # the endocardium at the cavity's edge (within the 0.5 px ray step and the 60% rule's
    # few px), not at the lung one wall further out; every ray found it
    assert np.all(np.abs(endo - R_ENDO) < 1.5)
    assert used == 1.0 and contrast > edfit.MIN_CONTRAST
    # reading the lung as fully persistent tissue (1.0) puts the wall's level at the lung's
    # and moves the endocardium outwards by most of a wall: what NaN prevents
    as_tissue = np.nan_to_num(pmap, nan=1.0)
    endo_lung, _, _ = edfit._endocardium(as_tissue, np.array([64.0, 64.0]), SPACING[0],
                                         angles)
    assert np.median(endo_lung) > R_ENDO + 2.0


def test_invalid_persistence_frames_are_refused():
    frames = _cine()
    valid = np.ones(T, bool)
    valid[2:5] = False
    h = CineHarmonics.analyse(frames.astype(np.float32), valid, CENTRE)
    with pytest.raises(ValueError, match="frame 0 and one of frames 2-4"):
        edfit.fit_ed_geometry(h, CENTRE, SPACING)


def test_a_contour_from_too_few_rays_is_nan_not_a_guess():
    angles = np.linspace(0, 2 * np.pi, edfit.N_RAYS, endpoint=False)
    radius = np.full_like(angles, 10.0)
    ok = np.zeros(len(angles), bool)
    ok[:5] = True  # 5 rays cannot fix a 7-term series robustly
    assert np.isnan(edfit._robust_contour(angles, radius, ok, edfit.CONTOUR_ORDER)).all()
    ok[::3] = True
    np.testing.assert_allclose(edfit._robust_contour(angles, radius, ok, edfit.CONTOUR_ORDER),
                               10.0, atol=1e-9)


def test_a_cine_that_washes_out_everywhere_is_not_fitted():
    frames = _cine()
    frames[2:] = 130.0  # no tags anywhere after frame 1: no wall to find
    h = CineHarmonics.analyse(frames.astype(np.float32), np.ones(T, bool), CENTRE)
    assert edfit.fit_ed_geometry(h, CENTRE, SPACING).contrast < edfit.MIN_CONTRAST


def test_persistence_is_nan_where_frame_0_has_no_signal():
    frames = _cine()
    frames[:, :, :70] = 0.0  # air left of the heart (the cavity spans x 85-109)
    h = CineHarmonics.analyse(frames.astype(np.float32), np.ones(T, bool), CENTRE)
    p = edfit.persistence_map(h)
    # well inside the air (the local mean is low-passed, so not right at its border)
    x_air = int(70 - h.origin[0]) - 12
    assert np.isnan(p[16:-16, 16:x_air]).all()
    centre_win = (CENTRE - h.origin).astype(int)
    assert np.isfinite(p[centre_win[1] - 5 : centre_win[1] + 5,
                         centre_win[0] - 5 : centre_win[0] + 5]).all()


def test_a_confirmed_fit_is_not_flagged_and_a_missing_one_is():
    net = np.repeat(_network_ring(4.0, 1.2)[None], T, 0)
    m = measure_slice(_cine(), np.ones(T, bool), SPACING, net, "tags", net[0],
                      _box_about(CENTRE))
    assert m.tracker == "tags"
    assert not {"ed_geometry_unconfirmed", "roi_centre_disagrees"} & set(m.qc_flags)
    # the blood keeps its tags: nothing to fit, the network's geometry is reported, flagged
    m = measure_slice(_cine(washout=False), np.ones(T, bool), SPACING, net, "tags", net[0],
                      _box_about(CENTRE))
    assert m.tracker == "harp" and "ed_geometry_unconfirmed" in m.qc_flags
    # other trackers never fit, so never carry the fit's flags
    m = measure_slice(_cine(washout=False), np.ones(T, bool), SPACING, net, "harp", net[0])
    assert "ed_geometry_unconfirmed" not in m.qc_flags


def test_a_box_more_than_a_wall_from_the_fitted_lv_is_flagged():
    net = np.repeat(_network_ring(4.0, 1.2)[None], T, 0)
    wall_px = edfit.WALL_MM / SPACING[0]  # 5.9 px
    for offset_px, flagged in ((3.0, False), (8.0, True)):  # both inside the 12 px cavity
        box = _box_about(CENTRE + np.array([offset_px, 0.0]))
        m = measure_slice(_cine(), np.ones(T, bool), SPACING, net, "tags", net[0], box)
        assert m.tracker == "tags"
        fitted = m.landmarks_px[0].reshape(24, 7, 2)[:, 0].mean(0)
        assert np.linalg.norm(fitted - CENTRE) < 1.5  # the fit found the LV either way
        assert (offset_px > wall_px) == flagged
        assert ("roi_centre_disagrees" in m.qc_flags) == flagged


def test_tag_fit_flag_thresholds_by_hand():
    from raytag.tracking.measure import WEAK_FIT_CONTRAST, WEAK_FIT_RAYS, tag_fit_flags

    def fit(contrast, rays, centre=(50.0, 50.0)):  # landmarks whose mean is ``centre``
        ring = np.tile(np.array(centre), (168, 1))
        return edfit.EDFit(ring, np.array([0.0, 0.0]), np.zeros(96), 0.0, rays, contrast)

    start = np.array([50.0, 50.0])
    assert tag_fit_flags(fit(3.0, 1.0), start, (1.0, 1.0)) == []
    assert tag_fit_flags(fit(WEAK_FIT_CONTRAST - 0.01, 1.0), start, (1.0, 1.0)) == [
        "ed_geometry_unconfirmed"]
    assert tag_fit_flags(fit(3.0, WEAK_FIT_RAYS - 0.01), start, (1.0, 1.0)) == [
        "ed_geometry_unconfirmed"]
    assert tag_fit_flags(None, start, (1.0, 1.0)) == ["ed_geometry_unconfirmed"]
    # 6 px in x at 1.5 mm per column = 9 mm > one wall (8.3); at 1.0 mm = 6 mm: not flagged
    moved = fit(3.0, 1.0, centre=(56.0, 50.0))
    assert tag_fit_flags(moved, start, (1.0, 1.5)) == ["roi_centre_disagrees"]
    assert tag_fit_flags(moved, start, (1.5, 1.0)) == []
    # a NaN centre (no contour) is not a confirmation
    assert "roi_centre_disagrees" in tag_fit_flags(fit(3.0, 1.0, (np.nan, 1.0)), start,
                                                   (1.0, 1.0))
