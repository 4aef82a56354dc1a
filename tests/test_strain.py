"""Strain formulas (raytag.strain) against closed forms, plus landmark helpers.

Every expected value here is derived independently of the implementation: on a regular
24-gon of radius rho each circumferential chord is ``2 * rho * sin(pi / 24)``, so a ring's
stretch is simply the ratio of radii, and a radial spoke is a difference of radii (or the
law of cosines when the rings are twisted against each other).
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.testing import assert_allclose, assert_array_equal

from raytag.constants import (
    N_CIRCUMFERENTIAL,
    N_LANDMARKS,
    N_TRANSMURAL,
    RING_MIDWALL,
    RING_SUBENDO,
    RING_SUBEPI,
)
from raytag.landmarks import annulus, concentric_rings, from_grid, to_grid
from raytag.strain import (
    CURVE_NAMES,
    ES_NAMES,
    circumferential_lengths,
    compute_strains,
    green_strain,
    linear_strain,
    radial_lengths,
)

CENTER = np.array([97.3, 121.8])
CIRC_CURVES = ("circ_global", "circ_subendo", "circ_midwall", "circ_subepi")
RING_OF = {"circ_subendo": RING_SUBENDO, "circ_midwall": RING_MIDWALL, "circ_subepi": RING_SUBEPI}
ATOL = 1e-12


def green(stretch):
    return 0.5 * (np.asarray(stretch, dtype=np.float64) ** 2 - 1.0)


def noisy_sequence(rng, lead=(), n_frames=6, noise=0.4):
    """Ring sequence (lead + (T, 168, 2)) with per-frame scaling and landmark jitter.

    Jitter is small against the ~2.6 px minimum chord, so no segment degenerates.
    """
    scale = rng.uniform(0.8, 1.2, size=lead + (n_frames,))
    scale[..., 0] = 1.0
    pts = annulus(CENTER, 20.0 * scale, 32.0 * scale, theta0=rng.uniform(0, 2 * np.pi))
    return pts + rng.normal(scale=noise, size=pts.shape)


def assert_results_close(a, b, atol=1e-9):
    assert a.keys() == b.keys()
    for key in a:
        if key == "es_frame":
            assert_array_equal(a[key], b[key])
        else:
            assert_allclose(a[key], b[key], rtol=0, atol=atol, err_msg=key)


# --- landmark helpers --------------------------------------------------------------------


def test_grid_round_trip_and_view():
    pts = np.arange(3 * 5 * N_LANDMARKS * 2, dtype=np.float64).reshape(3, 5, N_LANDMARKS, 2)
    grid = to_grid(pts)
    assert grid.shape == (3, 5, N_CIRCUMFERENTIAL, N_TRANSMURAL, 2)
    assert np.shares_memory(grid, pts)
    # index i = 7*k + r
    assert_array_equal(grid[1, 2, 4, 3], pts[1, 2, 7 * 4 + 3])
    assert_array_equal(from_grid(grid), pts)
    with pytest.raises(ValueError):
        to_grid(np.zeros((167, 2)))
    with pytest.raises(ValueError):
        from_grid(np.zeros((24, 6, 2)))


def test_annulus_convention():
    theta0 = 0.3
    pts = annulus(CENTER, 20.0, 32.0, theta0=theta0)
    assert pts.shape == (N_LANDMARKS, 2) and pts.dtype == np.float64
    rel = to_grid(pts) - CENTER
    radius = np.hypot(rel[..., 0], rel[..., 1])
    assert_allclose(radius, np.broadcast_to(20.0 + 2.0 * np.arange(7), (24, 7)), atol=ATOL)
    angle = np.arctan2(rel[..., 1], rel[..., 0])  # image coordinates, y down
    expected = theta0 + 2 * np.pi * np.arange(24) / 24
    assert_allclose(np.exp(1j * angle), np.exp(1j * expected)[:, None] * np.ones(7), atol=ATOL)
    # per-frame radii broadcast to a sequence
    seq = annulus(CENTER, [20.0, 18.0, 16.0], [32.0, 31.0, 30.0])
    assert seq.shape == (3, N_LANDMARKS, 2)
    assert_allclose(seq[1], annulus(CENTER, 18.0, 31.0), atol=ATOL)
    assert concentric_rings(CENTER, np.ones((4, 7)), theta0=0.0).shape == (4, N_LANDMARKS, 2)


# --- closed forms ------------------------------------------------------------------------


def test_segment_lengths_of_regular_ring():
    pts = annulus(CENTER, 20.0, 32.0)
    rho = 20.0 + 2.0 * np.arange(7)
    assert_allclose(
        circumferential_lengths(pts[None]),
        np.broadcast_to(2 * rho * np.sin(np.pi / 24), (1, 24, 7)),
    )
    assert_allclose(radial_lengths(pts[None]), np.full((1, 24), 12.0))


def test_uniform_scaling_closed_form():
    s = np.array([1.0, 0.95, 0.8, 0.72, 0.9, 1.1])
    pts = annulus(CENTER, 20.0 * s, 32.0 * s)
    res = compute_strains(pts)
    for name in CURVE_NAMES:
        assert res[name].shape == (len(s),) and res[name].dtype == np.float64
        assert_allclose(res[name], green(s), atol=ATOL, err_msg=name)
        assert_allclose(res[name + "_linear"], s - 1.0, atol=ATOL, err_msg=name)
    assert res["rings"].shape == (len(s), N_TRANSMURAL)
    assert_allclose(res["rings"], np.repeat(green(s)[:, None], 7, axis=1), atol=ATOL)
    assert res["es_frame"] == 3 and res["es_frame"].dtype == np.int64
    for name in ES_NAMES:
        assert_allclose(res[name], green(0.72), atol=ATOL)


def test_rigid_motion_gives_zero():
    n = 7
    t = np.arange(n)
    base = annulus([0.0, 0.0], 20.0, 32.0)
    angle = 0.4 * t
    rot = np.stack(
        [
            np.stack([np.cos(angle), -np.sin(angle)], -1),
            np.stack([np.sin(angle), np.cos(angle)], -1),
        ],
        axis=-2,
    )  # (T, 2, 2)
    pts = (
        np.einsum("tij,lj->tli", rot, base) + (CENTER + np.stack([3.0 * t, -5.0 * t], -1))[:, None]
    )
    res = compute_strains(pts)
    for name in CURVE_NAMES:
        assert_allclose(res[name], 0.0, atol=ATOL, err_msg=name)
    assert_allclose(res["rings"], 0.0, atol=ATOL)


def test_transmural_thickening_endo_fixed():
    """Endocardium fixed, epicardium moves out, rings stay evenly spaced."""
    epi = np.array([30.0, 32.0, 35.0, 33.0])
    pts = annulus(CENTER, 20.0, epi)
    res = compute_strains(pts)
    r = np.arange(7)
    rho = 20.0 + (epi[:, None] - 20.0) * r / 6  # (T, 7) ring radii
    assert_allclose(res["rings"][:, 0], 0.0, atol=ATOL)  # endo ring does not move
    assert_allclose(res["rings"], green(rho / rho[:1]), atol=ATOL)
    assert_allclose(res["rings_linear"], rho / rho[:1] - 1.0, atol=ATOL)
    assert_allclose(res["radial"], green((epi - 20.0) / 10.0), atol=ATOL)
    assert_allclose(res["circ_global"], green(rho / rho[:1]).mean(axis=1), atol=ATOL)
    for name, ring in RING_OF.items():
        assert_allclose(res[name], green(rho[:, ring] / rho[0, ring]), atol=ATOL)


def test_transmural_twist_changes_radial_only():
    """Each ring rotates by phi_t * r/6 at fixed radius: circumferential 0, radial from the
    law of cosines (a shear lengthens the endo-epi spoke)."""
    a, b = 20.0, 32.0
    phi = np.array([0.0, 0.1, 0.25, -0.2])
    k, r = np.arange(24)[:, None], np.arange(7)[None, :]
    rho = a + (b - a) * r / 6
    ang = 2 * np.pi * k / 24 + phi[:, None, None] * r / 6  # (T, 24, 7)
    grid = CENTER + np.stack([rho * np.cos(ang), rho * np.sin(ang)], axis=-1)
    res = compute_strains(grid.reshape(len(phi), N_LANDMARKS, 2))
    assert_allclose(res["rings"], 0.0, atol=ATOL)
    spoke_sq = a**2 + b**2 - 2 * a * b * np.cos(phi)
    assert_allclose(res["radial"], 0.5 * (spoke_sq / (b - a) ** 2 - 1.0), atol=ATOL)
    assert_allclose(res["radial_linear"], np.sqrt(spoke_sq) / (b - a) - 1.0, atol=ATOL)


def test_incompressible_contraction_ring_ordering():
    """Area between endo and any material ring is conserved: r_t^2 - r_endo_t^2 = R^2 - R_endo^2."""
    r_endo0, r_epi0 = 20.0, 30.0
    r_endo = np.array([20.0, 18.5, 16.0, 14.0, 17.0])
    big_r = r_endo0 + (r_epi0 - r_endo0) * np.arange(7) / 6  # material radii at ED
    radii = np.sqrt(r_endo[:, None] ** 2 + big_r**2 - r_endo0**2)  # (T, 7)
    res = compute_strains(concentric_rings(CENTER, radii, theta0=1.1))

    assert_allclose(res["rings"], green(radii / big_r), atol=ATOL)
    for name, ring in RING_OF.items():
        assert_allclose(res[name], green(radii[:, ring] / big_r[ring]), atol=ATOL)
    assert_allclose(res["circ_global"], green(radii / big_r).mean(axis=1), atol=ATOL)
    thickness = radii[:, -1] - radii[:, 0]
    assert_allclose(res["radial"], green(thickness / (r_epi0 - r_endo0)), atol=ATOL)

    t = slice(1, None)  # every contracted frame
    assert np.all(res["circ_subendo"][t] < res["circ_midwall"][t])
    assert np.all(res["circ_midwall"][t] < res["circ_subepi"][t])
    assert np.all(res["circ_subepi"][t] < 0)
    assert np.all(res["radial"][t] > 0)
    assert res["es_frame"] == 3


# --- end-systole and invalid frames ------------------------------------------------------

S_ES = np.array([1.0, 0.95, 0.85, 0.8, 0.9, 1.0])


def test_es_frame_excludes_frame_zero():
    s = np.array([1.0, 1.2, 1.05, 1.1])  # every frame stretches: frame 0 (E=0) is the min
    res = compute_strains(annulus(CENTER, 20.0 * s, 32.0 * s))
    assert res["es_frame"] == 2
    assert_allclose(res["es_circ_global"], green(1.05), atol=ATOL)


def test_supplied_es_frame_respected():
    pts = annulus(CENTER, 20.0 * S_ES, 32.0 * S_ES)
    res = compute_strains(pts, es_frame=4)
    assert res["es_frame"] == 4
    for name in ES_NAMES:
        assert_allclose(res[name], green(0.9), atol=ATOL)
    assert_allclose(res["es_radial_linear"], -0.1, atol=ATOL)
    # negative = not annotated -> automatic choice, per item
    batch = np.stack([pts, pts])
    res = compute_strains(batch, es_frame=np.array([1, -1]))
    assert_array_equal(res["es_frame"], [1, 3])
    assert_allclose(res["es_circ_midwall"], green([0.95, 0.8]), atol=ATOL)
    with pytest.raises(ValueError):
        compute_strains(pts, es_frame=len(S_ES))
    with pytest.raises(ValueError):
        compute_strains(pts, es_frame=2.0)
    with pytest.raises(ValueError):
        compute_strains(batch, es_frame=np.array([1, 2, 3]))


def test_invalid_frames_are_nan_and_skipped():
    pts = annulus(CENTER, 20.0 * S_ES, 32.0 * S_ES)
    valid = np.ones(len(S_ES), dtype=bool)
    valid[3] = False
    res = compute_strains(pts, frame_valid=valid)
    for name in CURVE_NAMES:
        assert np.isnan(res[name][3]) and np.isnan(res[name + "_linear"][3])
        assert_allclose(np.delete(res[name], 3), np.delete(green(S_ES), 3), atol=ATOL)
    assert np.all(np.isnan(res["rings"][3]))
    assert res["es_frame"] == 2

    # non-finite landmarks in a frame nobody flagged: NaN there, never chosen
    bad = pts.copy()
    bad[3, 17] = np.nan
    bad[3, 40] = np.inf
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res = compute_strains(bad)
    assert np.isnan(res["circ_global"][3]) and res["es_frame"] == 2


def test_no_es_available():
    pts = annulus(CENTER, 20.0 * S_ES, 32.0 * S_ES)
    cases = {
        "frame 0 invalid": (pts, np.array([False, True, True, True, True, True])),
        "only frame 0 valid": (pts, np.array([True, False, False, False, False, False])),
        "single frame": (pts[:1], None),
    }
    for label, (p, valid) in cases.items():
        for es_frame in (None, 0):
            res = compute_strains(p, frame_valid=valid, es_frame=es_frame)
            if label == "frame 0 invalid" or es_frame is None:
                assert res["es_frame"] == -1, label
                for name in ES_NAMES:
                    assert np.isnan(res[name]), (label, name)
    res = compute_strains(pts, frame_valid=np.array([False] + [True] * 5))
    for name in CURVE_NAMES:  # no reference frame: nothing is defined
        assert np.all(np.isnan(res[name]))
    res = compute_strains(pts[:1])
    assert_allclose(res["circ_global"], [0.0], atol=ATOL)


def test_degenerate_reference_is_nan_without_warnings():
    pts = annulus(CENTER, 20.0 * S_ES, 32.0 * S_ES)
    pts[0] = CENTER  # every landmark on one point at ED
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res = compute_strains(pts)
        assert np.isnan(green_strain([1.0, 2.0, 3.0], [0.0, np.nan, np.inf])).all()
        assert np.isnan(linear_strain(1.0, 0.0))
    assert np.isnan(res["circ_global"]).all() and res["es_frame"] == -1
    assert_allclose(green_strain(3.0, 2.0), 0.625)
    assert_allclose(linear_strain(3.0, 2.0), 0.5)


# --- batching and shapes -----------------------------------------------------------------


@pytest.mark.parametrize("supply_es", [False, True])
def test_leading_axes_match_per_item(supply_es):
    rng = np.random.default_rng(7)
    n_frames = 8
    pts = noisy_sequence(rng, lead=(2, 3), n_frames=n_frames)
    valid = rng.random((2, 3, n_frames)) > 0.2
    valid[..., 0] = True
    valid[1, 2, 0] = False  # one item with no reference
    es = rng.integers(-1, n_frames, size=(2, 3)) if supply_es else None
    res = compute_strains(pts, frame_valid=valid, es_frame=es)
    assert res["es_frame"].shape == (2, 3)
    assert res["rings"].shape == (2, 3, n_frames, 7)
    for i in range(2):
        for j in range(3):
            item = compute_strains(
                pts[i, j], frame_valid=valid[i, j], es_frame=None if es is None else es[i, j]
            )
            for key, value in item.items():
                if key == "es_frame":
                    assert res[key][i, j] == value
                else:
                    assert_allclose(res[key][i, j], value, rtol=0, atol=ATOL, err_msg=key)
    # frame_valid of shape (T,) broadcasts across the batch
    shared = compute_strains(pts, frame_valid=valid[0, 0])
    assert_allclose(
        shared["circ_global"][1, 1], compute_strains(pts[1, 1], valid[0, 0])["circ_global"]
    )


@pytest.mark.parametrize(
    "shape",
    [(N_LANDMARKS, 2), (5, N_LANDMARKS, 3), (5, N_LANDMARKS - 1, 2), (0, N_LANDMARKS, 2), (2,)],
)
def test_bad_shapes_raise(shape):
    with pytest.raises(ValueError):
        compute_strains(np.zeros(shape))


def test_bad_frame_valid_raises():
    pts = annulus(CENTER, 20.0 * S_ES, 32.0 * S_ES)
    with pytest.raises(ValueError):
        compute_strains(pts, frame_valid=np.ones(len(S_ES) + 1, dtype=bool))
    with pytest.raises(ValueError):
        compute_strains(pts, frame_valid=np.ones(len(S_ES)))  # not bool


# --- invariances (hypothesis) ------------------------------------------------------------

finite = dict(allow_nan=False, allow_infinity=False)


@settings(max_examples=50, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n_frames=st.integers(1, 6),
    per_frame=st.booleans(),
    reflect=st.booleans(),
    angle=st.floats(-np.pi, np.pi, **finite),
    shift=st.tuples(st.floats(-500, 500, **finite), st.floats(-500, 500, **finite)),
    scale=st.floats(0.1, 10.0, **finite),
)
def test_invariant_to_similarity(seed, n_frames, per_frame, reflect, angle, shift, scale):
    """Strain is unchanged by any isometry per frame (rotation, translation, reflection:
    they preserve every length) and by one common scale factor for all frames."""
    rng = np.random.default_rng(seed)
    pts = noisy_sequence(rng, n_frames=n_frames)
    if per_frame:  # a different rigid motion in every frame
        theta = angle + rng.uniform(-np.pi, np.pi, n_frames)
        t = np.asarray(shift) + rng.uniform(-50, 50, (n_frames, 2))
        flip = np.where(rng.random(n_frames) < 0.5, -1.0, 1.0) if reflect else np.ones(n_frames)
    else:
        theta = np.full(n_frames, angle)
        t = np.broadcast_to(np.asarray(shift), (n_frames, 2))
        flip = np.full(n_frames, -1.0 if reflect else 1.0)
    c, s = np.cos(theta), np.sin(theta)
    rot = np.stack([np.stack([c, -s], -1), np.stack([s, c], -1)], -2)  # (T, 2, 2)
    rot = rot * np.stack([flip, np.ones(n_frames)], -1)[:, None, :]  # reflect x first
    moved = np.einsum("tij,tlj->tli", rot, pts) + t[:, None, :]

    ref = compute_strains(pts)
    assert_results_close(ref, compute_strains(moved))
    assert_results_close(ref, compute_strains(scale * pts + np.asarray(shift)))


@settings(max_examples=50, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n_frames=st.integers(2, 6))
def test_green_linear_consistent(seed, n_frames):
    # Curves are means of per-segment strains, so Green = 0.5*((lin+1)^2 - 1) holds per
    # segment but not for the means; check it per segment and the mean inequality.
    pts = noisy_sequence(np.random.default_rng(seed), n_frames=n_frames)
    res = compute_strains(pts)
    circ = circumferential_lengths(pts)
    e = green_strain(circ, circ[:1])
    lin = linear_strain(circ, circ[:1])
    assert_allclose(e, 0.5 * ((lin + 1) ** 2 - 1), atol=ATOL)
    assert_allclose(res["rings"], e.mean(axis=-2), atol=ATOL)
    assert_allclose(res["rings_linear"], lin.mean(axis=-2), atol=ATOL)
    # Jensen: mean(0.5*(x^2-1)) >= 0.5*(mean(x)^2-1)
    assert np.all(res["rings"] >= green(res["rings_linear"] + 1) - ATOL)
