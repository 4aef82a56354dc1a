"""raytag.phantom.measure against analytic images whose answers are known by construction.

No generator is involved: every image here is a closed-form tag pattern, so the expected
peaks, ratios and phases follow from the formula, not from another implementation.
"""

from __future__ import annotations

import numpy as np
import pytest

from raytag.phantom import measure as M

ROWS, COLS = 256, 174  # UK Biobank tagged matrix (rows x cols)
SPACING_MM = 1.367
WAVELENGTH_MM = 6.0
LAM = WAVELENGTH_MM / SPACING_MM  # 4.389 px
K = 2 * np.pi / LAM  # rad / px
PHASES = (0.3, 1.1)  # phases of the +45 (+rot) and -45 (+rot) factors


def unit(deg: float) -> np.ndarray:
    return np.array([np.cos(np.radians(deg)), np.sin(np.radians(deg))])


def material_coords(shape=(ROWS, COLS), inverse_map=None):
    """Pixel grid (x, y) of the image, mapped back to material coordinates X(x)."""
    y, x = np.mgrid[0 : shape[0], 0 : shape[1]].astype(np.float64)
    if inverse_map is not None:
        x, y = inverse_map(x, y)
    return x, y


def grid(m=0.8, rot=0.0, inverse_map=None, harmonic2=0.0, shape=(ROWS, COLS)):
    """Product SPAMM grid prod_j (1 + m cos(K n_j . X + p_j) + h cos(2(...))), n at 45+rot
    and -45+rot degrees, evaluated at the material point X(x) of each pixel x."""
    x, y = material_coords(shape, inverse_map)
    out = np.ones_like(x)
    for ang, p in zip((45 + rot, -45 + rot), PHASES, strict=True):
        n = unit(ang)
        a = K * (n[0] * x + n[1] * y) + p
        out = out * (1 + m * np.cos(a) + harmonic2 * np.cos(2 * a))
    return out


def envelope(shape=(ROWS, COLS)):
    """Separable Hann envelope: an 'object' that is dark at the FOV edges, so the edges of
    the rectangular support do not leak DC into the cross-term windows (real cines are
    dark at their edges too). Its spectrum is ~3 bins wide, well inside a 9x9 window."""
    y, x = np.mgrid[0 : shape[0], 0 : shape[1]].astype(np.float64)
    return np.sin(np.pi * (x + 0.5) / shape[1]) ** 2 * np.sin(np.pi * (y + 0.5) / shape[0]) ** 2


def expected_peaks(rot=0.0):
    """(kx, ky) bins of the two first harmonics, sorted by ascending angle."""
    k_bins = M.PAD_SIZE / LAM  # ~58.3 bins
    return np.stack([k_bins * unit(-45 + rot), k_bins * unit(45 + rot)])


# --- Spectrum and peaks -----------------------------------------------------------------


def test_padded_spectrum_bin_convention_and_dc():
    # A full 256 x 256 canvas and integer bins: no leakage, so only two bins besides DC
    # are non-zero (up to the uint16 rounding).
    y, x = np.mgrid[0:256, 0:256]
    frame = (100 + 40 * np.cos(2 * np.pi * (10 * x - 7 * y) / 256)).astype(np.uint16)
    spec = M.padded_spectrum(frame)
    assert spec.shape == (256, 256) and spec.dtype == np.complex128
    c = 256 // 2
    mag = np.abs(spec)
    mag_no_dc = mag.copy()
    mag_no_dc[c, c] = 0
    # bin (kx, ky) = (10, -7) is element [c + ky, c + kx]; its conjugate mirrors it.
    top2 = {np.unravel_index(i, mag.shape) for i in np.argsort(mag_no_dc.ravel())[-2:]}
    assert top2 == {(c - 7, c + 10), (c + 7, c - 10)}
    assert mag[c - 7, c + 10] == pytest.approx(20 * 256 * 256, rel=0.01)
    assert spec[c, c].real == pytest.approx(frame.sum(dtype=np.float64))
    # A 256 x 174 frame: DC is still the pixel sum (padding adds zeros); batches work.
    small = frame[:, :COLS]
    both = M.padded_spectrum(np.stack([small, small]))
    assert both.shape == (2, 256, 256)
    assert both[1, c, c].real == pytest.approx(small.sum(dtype=np.float64))
    np.testing.assert_allclose(both[1], M.padded_spectrum(small))


def test_frame_larger_than_pad_is_refused():
    with pytest.raises(ValueError):
        M.padded_spectrum(np.zeros((300, 174)))


@pytest.mark.parametrize("rot", [0.0, 5.0])
def test_first_harmonic_peaks_and_grid_geometry(rot):
    frame = 100 * grid(0.8, rot)
    peaks = M.find_first_harmonic_peaks(frame)
    want = expected_peaks(rot)
    assert peaks.shape == (2, 2)
    np.testing.assert_allclose(peaks, want, atol=0.5)  # sub-bin refined
    if rot == 0.0:  # the REALISM picture: about (+-41, +-41) of 58.3 bins
        np.testing.assert_array_equal(np.rint(peaks), [[41, -41], [41, 41]])

    g = M.grid_geometry(frame, SPACING_MM)
    np.testing.assert_allclose(g["peaks"], peaks)
    np.testing.assert_allclose(g["angles_deg"], [-45 + rot, 45 + rot], atol=1.0)
    np.testing.assert_allclose(g["wavelength_px"], LAM, rtol=0.02)
    np.testing.assert_allclose(g["wavelength_mm"], WAVELENGTH_MM, rtol=0.02)
    # A (row, col) spacing pair that is isotropic gives the same millimetres.
    g2 = M.grid_geometry(frame, (SPACING_MM, SPACING_MM))
    np.testing.assert_allclose(g2["wavelength_mm"], g["wavelength_mm"])


def test_peaks_lie_in_canonical_half_plane_axis_aligned_grid():
    # Wave vectors at 0 and 90 deg: 90 is inside (-90, 90], so the 90-deg peak is reported
    # as (0, +k), never as its conjugate (0, -k).
    frame = grid(0.8, rot=45.0, shape=(256, 256))
    g = M.grid_geometry(frame, SPACING_MM)
    np.testing.assert_allclose(g["angles_deg"], [0.0, 90.0], atol=1.0)
    assert g["peaks"][1, 1] > 0 and g["peaks"][0, 0] > 0


def test_peak_selection_prefers_first_harmonic_over_stronger_cross_term():
    # Additive components on integer bins of a full 256 x 256 canvas (no leakage):
    # p1 strongest, a cross term p1 + q stronger than the true second harmonic q.
    # "Strongest non-collinear" alone would pick p1 + q; the lattice check replaces it by
    # q, the shorter basis vector (q = (p1 + q) - p1) that is present with >= half its |F|.
    p1, q = np.array([40, 30]), np.array([5, -45])
    y, x = np.mgrid[0:256, 0:256]

    def wave(k, amp):
        return amp * np.cos(2 * np.pi * (k[0] * x + k[1] * y) / 256 + 0.4)

    frame = 10 + wave(p1, 0.4) + wave(p1 + q, 0.3) + wave(q, 0.2)
    peaks = M.find_first_harmonic_peaks(frame)
    np.testing.assert_allclose(peaks, [q, p1], atol=1e-9)  # sorted by angle: q first


def test_untagged_frame_raises():
    y, x = np.mgrid[0:ROWS, 0:COLS]
    stripes = 1 + 0.5 * np.cos(K * (x + y) / np.sqrt(2))  # one tag direction only
    with pytest.raises(ValueError):
        M.find_first_harmonic_peaks(stripes)


# --- Window sums ------------------------------------------------------------------------


def test_first_harmonic_amplitude_is_linear_in_modulation():
    # (1 + m cos a)(1 + m cos b) = 1 + m cos a + m cos b + m^2 cos a cos b: the first
    # harmonics carry exactly m; the m^2 terms lie at a +- b, outside the windows.
    peaks = M.find_first_harmonic_peaks(grid(0.8))
    frames = np.stack([grid(0.8), grid(0.4)])
    amp = M.first_harmonic_amplitude(frames, peaks)
    assert amp.shape == (2,)
    assert amp[1] / amp[0] == pytest.approx(0.5, rel=0.01)
    amp2 = M.first_harmonic_amplitude(frames, peaks, power=2)
    assert amp2[1] / amp2[0] == pytest.approx(0.25, rel=0.02)
    # One frame -> a scalar; per-frame peaks (T, 2, 2) -> the same as shared peaks.
    assert M.first_harmonic_amplitude(frames[0], peaks) == pytest.approx(amp[0])
    np.testing.assert_allclose(M.first_harmonic_amplitude(frames, np.stack([peaks, peaks])), amp)


def test_window_sum_counts_four_disjoint_windows():
    # A constant spectrum (a single bright pixel) makes every bin |F| = 1 exactly, so the
    # window sum counts bins: 4 disjoint 9x9 windows = 324; overlapping ones count once.
    impulse = np.zeros((256, 256))
    impulse[100, 100] = 1.0
    assert M.window_sum(impulse, [[41, 41], [41, -41]]) == pytest.approx(4 * 81)
    assert M.window_sum(impulse, [[41, 41], [43, 41]]) == pytest.approx(2 * (81 + 2 * 9))
    assert M.window_sum(impulse, [[0, 2], [60, 0]]) == pytest.approx(9 * 13 + 2 * 81)


def test_dc_component_equals_pixel_sum():
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 144, size=(3, ROWS, COLS), dtype=np.uint16)
    dc = M.dc_component(frames)
    np.testing.assert_array_equal(dc, frames.sum(axis=(1, 2), dtype=np.float64))
    spec = M.padded_spectrum(frames)
    np.testing.assert_allclose(np.abs(spec[:, 128, 128]), dc)


@pytest.mark.parametrize("rot", [0.0, 5.0])
@pytest.mark.parametrize("m", [0.8, 0.3])
def test_cross_term_ratio_of_product_grid(m, rot):
    # Derivation. cos a cos b = (cos(a + b) + cos(a - b)) / 2, so
    #   (1 + m cos a)(1 + m cos b) = 1 + m cos a + m cos b
    #                                + (m^2/2) cos(a + b) + (m^2/2) cos(a - b).
    # A real cosine A cos(k.x + p) puts A/2 at +k and A/2 at -k. First harmonics: 4 deltas
    # (+-p1, +-p2) of m/2 each; cross terms: 4 deltas (+-(p1 + p2), +-(p1 - p2)) of m^2/4
    # each. The envelope spreads every delta by the same kernel, so the window sums keep
    # the ratio 4 (m^2/4) / (4 m/2) = m/2, and with |F|^2: (m/2)^2. (Only the peaks'
    # different sub-bin offsets change how much of the kernel a 9x9 window catches, a ~2%
    # effect for |F|; |F|^2 is concentrated enough to make it negligible.)
    env = envelope()
    frame = env * grid(m, rot)
    peaks = M.find_first_harmonic_peaks(frame)
    assert M.cross_term_ratio(frame, peaks) == pytest.approx(m / 2, rel=0.05)
    assert M.cross_term_ratio(frame, peaks, power=2) == pytest.approx((m / 2) ** 2, rel=0.01)
    # A pure product of first harmonics has no second harmonic at 2 p1, 2 p2.
    assert M.second_harmonic_ratio(frame, peaks) < 1e-3


def test_second_harmonic_ratio_of_known_pattern():
    # prod_j (1 + m cos a_j + h cos 2a_j): the only terms at +-2 p_j are h cos(2 a_j) x 1
    # (every other product lands at 2p1 +- p2, p1 +- p2, ...), so the ratio is
    # 4 (h/2) / (4 m/2) = h/m, and (h/m)^2 with |F|^2.
    m, h = 0.8, 0.04
    frame = envelope() * grid(m, harmonic2=h)
    peaks = M.find_first_harmonic_peaks(frame)
    assert M.second_harmonic_ratio(frame, peaks) == pytest.approx(h / m, rel=0.05)
    assert M.second_harmonic_ratio(frame, peaks, power=2) == pytest.approx((h / m) ** 2, rel=0.01)


# --- Masked SD / mean -------------------------------------------------------------------


def test_masked_cv_matches_numpy():
    rng = np.random.default_rng(1)
    frames = rng.uniform(10, 50, size=(4, 6, 5)).astype(np.float32)
    mask = np.zeros((6, 5), dtype=bool)
    mask[1:4, 2:5] = True
    cv = M.masked_cv(frames, mask)
    assert cv.shape == (4,)
    want = [f.astype(np.float64)[mask].std() / f.astype(np.float64)[mask].mean() for f in frames]
    np.testing.assert_allclose(cv, want, rtol=1e-12)
    # Per-frame masks.
    masks = rng.uniform(size=(4, 6, 5)) > 0.5
    want = [
        f.astype(np.float64)[k].std() / f.astype(np.float64)[k].mean()
        for f, k in zip(frames, masks, strict=True)
    ]
    np.testing.assert_allclose(M.masked_cv(frames, masks), want, rtol=1e-12)
    # A hand-made case: values 1, 3 -> mean 2, SD 1.
    assert M.masked_cv(np.array([[1, 3], [100, 7]]), np.array([[1, 1], [0, 0]], bool)) == 0.5
    assert np.isnan(M.masked_cv(frames[0], np.zeros((6, 5), bool)))


# --- HARP -------------------------------------------------------------------------------


def interior_points():
    """Sub-pixel points >= 30 px from the 256 x 174 canvas border."""
    xs, ys = np.meshgrid(np.arange(30.0, 144.0, 3.7), np.arange(40.0, 216.0, 4.3))
    return np.stack([xs, ys], axis=-1)


def test_circular_difference_wraps_to_half_open_interval():
    d = M.circular_difference([np.pi, -np.pi, 1.5 * np.pi, 0.2, 7.0], [0, 0, 0, 0.1, 0])
    np.testing.assert_allclose(d, [np.pi, np.pi, -0.5 * np.pi, 0.1, 7.0 - 2 * np.pi])


def test_harmonic_phase_is_k_dot_x_plus_phase():
    # Sign convention: the harmonic image of the peak at +k is ~ exp(+i (K n . x + p)).
    frame = grid(0.8)
    peaks = M.find_first_harmonic_peaks(frame)
    pts = interior_points()
    for peak, ang, p in zip(peaks, (-45.0, 45.0), PHASES[::-1], strict=True):
        harm = M.harmonic_phase_image(frame, peak)
        assert harm.shape == (ROWS, COLS)
        want = K * pts @ unit(ang) + p
        got = M.sample_phase(harm, pts, carrier=peak)
        assert np.abs(M.circular_difference(got, want)).max() < 0.02


def test_harmonic_phase_follows_translation():
    d = np.array([2.2, 1.3])
    frame0 = grid(0.8)
    frame1 = grid(0.8, inverse_map=lambda x, y: (x - d[0], y - d[1]))  # I(x - d)
    peaks = M.find_first_harmonic_peaks(frame0)
    x0 = interior_points()
    for peak, ang in zip(peaks, (-45.0, 45.0), strict=True):
        h0 = M.harmonic_phase_image(frame0, peak)
        h1 = M.harmonic_phase_image(frame1, peak)
        ref = M.sample_phase(h0, x0, carrier=peak)
        # The material point that was at x0 is at x0 + d: same phase.
        moved = M.sample_phase(h1, x0 + d, carrier=peak)
        assert np.abs(M.circular_difference(moved, ref)).max() < 0.05
        # Plain bilinear (no demodulation) is ~0.04 rad worse between pixel centres.
        moved_bilinear = M.sample_phase(h1, x0 + d)
        ref_bilinear = M.sample_phase(h0, x0)
        assert np.abs(M.circular_difference(moved_bilinear, ref_bilinear)).max() < 0.1
        # Sampling where the point *was* sees the phase K n.(x0 - d): off by -K n.d.
        shift = -K * unit(ang) @ d
        assert abs(M.circular_difference(shift, 0.0)) > 0.5  # a meaningful check
        stayed = M.sample_phase(h1, x0, carrier=peak)
        assert np.abs(M.circular_difference(stayed - ref, shift)).max() < 0.05


def test_harmonic_phase_follows_affine_contraction():
    # Uniform 10% contraction about c: material X -> x = c + s (X - c), s = 0.9. The image
    # is I_0(X(x)) with X(x) = c + (x - c) / s. The wave vector grows by 1/s (~6.5 bins),
    # still inside the band-pass of the ED peak.
    c, s = np.array([86.5, 127.5]), 0.9
    frame0 = grid(0.8)
    frame1 = grid(0.8, inverse_map=lambda x, y: (c[0] + (x - c[0]) / s, c[1] + (y - c[1]) / s))
    peaks = M.find_first_harmonic_peaks(frame0)
    pts = interior_points()
    material = pts[(np.abs(pts[..., 0] - c[0]) < 50) & (np.abs(pts[..., 1] - c[1]) < 80)]
    spatial = c + s * (material - c)
    for peak in peaks:
        h0 = M.harmonic_phase_image(frame0, peak)
        h1 = M.harmonic_phase_image(frame1, peak)
        ref = M.sample_phase(h0, material, carrier=peak)
        moved = M.sample_phase(h1, spatial, carrier=peak)
        assert np.abs(M.circular_difference(moved, ref)).max() < 0.05
        not_moved = M.sample_phase(h1, material, carrier=peak)
        assert np.abs(M.circular_difference(not_moved, ref)).max() > 1.0


def test_harmonic_phase_batch_and_sampling_edges():
    frames = np.stack([grid(0.8), grid(0.5)]).astype(np.float32)
    peak = M.find_first_harmonic_peaks(frames[0])[1]
    harm = M.harmonic_phase_image(frames, peak, taper=0)
    assert harm.shape == (2, ROWS, COLS)
    np.testing.assert_allclose(harm[1], M.harmonic_phase_image(frames[1], peak, taper=0))
    # Stack sampling with per-frame points; outside the pixel area -> NaN.
    pts = np.array([[[80.3, 120.6], [-0.6, 5.0]], [[80.3, 120.6], [173.4, 255.4]]])
    ph = M.sample_phase(harm, pts)
    assert ph.shape == (2, 2)
    assert np.isnan(ph[0, 1]) and np.isfinite(ph[1, 1])
    # The same (unchanged, only scaled) grid has the same phase in both frames.
    assert abs(M.circular_difference(ph[0, 0], ph[1, 0])) < 1e-3
