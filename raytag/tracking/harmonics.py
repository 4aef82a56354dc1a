"""Tag harmonics: spectral peaks of a tag grid, band-pass (HARP) images, phase sampling.

Pure numpy/scipy, shared by the phase-based tracker (:mod:`raytag.tracking.harp`), the
tag-quality QC and the synthetic generator's realism measurements
(:mod:`raytag.phantom.measure` re-exports these names).

Conventions
-----------
* **Frames** are ``(rows, cols)`` or ``(..., rows, cols)`` arrays of any real dtype; all
  arithmetic is float64.
* **Points** are ``(..., 2)`` ``(x, y)`` = (column, row) in pixels of the frame, pixel
  centres at integers, y pointing down (docs/conventions.md "Landmarks").
* **Spectrum bins.** Frames are zero-padded to ``size x size`` (centred, as
  :func:`raytag.geometry.pad_to_square`) and transformed with ``numpy.fft.fft2``, no window
  function. A bin is named by its integer offset ``(kx, ky)`` from DC, in cycles per
  ``size`` pixels: the pattern ``cos(2 pi (kx x + ky y) / size)`` has its peaks at
  ``(kx, ky)`` and its conjugate ``(-kx, -ky)``. In the fftshift-ed array of
  :func:`padded_spectrum` bin ``(kx, ky)`` is element ``[size//2 + ky, size//2 + kx]``.
  The wave vector of a peak ``(kx, ky)`` points at ``atan2(ky, kx)`` in image coordinates
  (the tag *lines* run perpendicular to it) and its wavelength is ``size / |k|`` pixels.
* **Canonical half-plane.** The spectrum of a real frame is Hermitian (``F(-k) = F(k)*``),
  so every peak comes with its conjugate. Peaks are reported in the half-plane
  ``kx > 0`` or (``kx == 0`` and ``ky > 0``), i.e. wave-vector angles in ``(-90, 90]``.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from raytag.constants import PAD_SIZE
from raytag.geometry import pad_offsets, pad_to_square

__all__ = [
    "check_fits",
    "fft_padded",
    "padded_spectrum",
    "find_first_harmonic_peaks",
    "harmonic_phase_image",
    "sample_phase",
    "circular_difference",
]


def check_fits(shape_rc: tuple[int, ...], size: int) -> None:
    # pad_to_square would silently centre-crop a larger frame; a measurement must not
    # drop data (and HARP images could not be cropped back), so refuse instead.
    if shape_rc[0] > size or shape_rc[1] > size:
        raise ValueError(f"frame of shape {tuple(shape_rc)} does not fit a {size}x{size} pad")


def fft_padded(frames: np.ndarray, size: int) -> np.ndarray:
    """Unshifted FFT ``(..., size, size)`` complex128 of the centred zero-padded frames."""
    frames = np.asarray(frames)
    if frames.ndim < 2:
        raise ValueError(f"frames must be (..., rows, cols), got shape {frames.shape}")
    check_fits(frames.shape[-2:], size)
    padded, _ = pad_to_square(frames.astype(np.float64, copy=False), size)
    return np.fft.fft2(padded)


def padded_spectrum(frame: np.ndarray, size: int = PAD_SIZE) -> np.ndarray:
    """Centred 2-D spectrum of the zero-padded frame.

    frame: ``(rows, cols)`` or ``(..., rows, cols)``, any real dtype, rows and cols at most
    ``size``. The frame is placed centred in a ``size x size`` zero canvas (as
    :func:`raytag.geometry.pad_to_square`), transformed with ``numpy.fft.fft2`` (no window
    function, no normalisation) and ``fftshift``-ed over the last two axes.

    Returns complex128 ``(..., size, size)``: element ``[size//2 + ky, size//2 + kx]`` is
    bin ``(kx, ky)`` (module docstring), so DC is at ``[size//2, size//2]`` and equals the
    sum of the pixels. The padding offset only changes phases, never magnitudes.
    """
    return np.fft.fftshift(fft_padded(frame, size), axes=(-2, -1))


def _canonical(k: np.ndarray) -> np.ndarray:
    """Flip bin offsets ``(..., 2)`` ``(kx, ky)`` into the canonical half-plane."""
    k = np.asarray(k, dtype=np.float64)
    flip = (k[..., 0] < 0) | ((k[..., 0] == 0) & (k[..., 1] < 0))
    return np.where(flip[..., None], -k, k)


def _line_angles_deg(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Angles in [0, 90] degrees between the *lines* through vectors ``a`` ``(N, 2)`` and
    the line through ``b`` ``(2,)``: ``(N,)``."""
    c = np.abs(a @ b) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b))
    return np.degrees(np.arccos(np.minimum(c, 1.0)))


def _parabolic_offset(lo: float, mid: float, hi: float) -> float:
    """Vertex of the parabola through ``(-1, lo), (0, mid), (1, hi)``, clipped to +-0.5."""
    den = lo - 2.0 * mid + hi
    if den >= 0:  # not a maximum (flat or convex): keep the bin centre
        return 0.0
    return float(np.clip(0.5 * (lo - hi) / den, -0.5, 0.5))


def find_first_harmonic_peaks(
    frame: np.ndarray,
    size: int = PAD_SIZE,
    min_radius: float = 20.0,
    *,
    min_angle_deg: float = 20.0,
    min_relative: float = 0.25,
    refine: bool = True,
) -> np.ndarray:
    """The two first-harmonic peaks of a tag grid, as ``(kx, ky)`` bin offsets.

    frame: ``(rows, cols)`` any real dtype (one frame; ED is the usual choice).
    Returns float64 ``(2, 2)``: row ``i`` is peak ``i``'s ``(kx, ky)`` (module docstring),
    in the canonical half-plane (wave-vector angle in ``(-90, 90]``), rows sorted by
    ascending angle (a +-45 deg grid gives the -45 deg peak first).

    Selection rule (all in the canonical half-plane, so a peak's conjugate is never a
    candidate):

    1. candidates are the local maxima of ``|F|`` (3x3 neighbourhood, spectrum periodic) at
       radius ``min_radius <= |k| < size/2`` (inside ``min_radius`` lie DC and the
       low-frequency anatomy/envelope, whose sidelobes would otherwise win);
    2. peak 1 is the strongest candidate;
    3. peak 2 is the strongest candidate whose line is at least ``min_angle_deg`` from
       peak 1's (this excludes peak 1's own harmonics and its sidelobes, which are
       collinear or nearly so) and whose ``|F|`` is at least ``min_relative`` of peak 1's
       (leakage of DC and anatomy, and noise maxima, are far weaker than a tag direction:
       REALISM's cross terms, the strongest non-harmonic grid peaks, are 5-20%);
    4. lattice check: every other grid peak (cross terms, harmonics) is an integer
       combination ``a p1 + b p2``, and the first harmonics are the shortest basis. If
       ``p2 - p1`` or ``p2 + p1`` is *shorter* than ``p2`` and a candidate within 1.5 bins of
       it has at least half of ``|F(p2)|``, peak 2 was a cross term of peak 1 with a weaker
       true harmonic, and is replaced by that candidate. (In a product grid
       ``(1 + m1 cos a)(1 + m2 cos b)`` cross terms are ``m1/2`` of the weaker first harmonic,
       so for ``m <= 1`` step 3 already picks the harmonic and the check never fires; it
       guards against distorted grids. Peak 1, the strongest, is assumed to be a harmonic.)

    With ``refine`` each peak is moved by a parabolic fit to ``|F|`` along kx and along ky
    (at most half a bin); otherwise peaks are integer bins. Raises ``ValueError`` when
    no second tag direction passes rule 3 (an untagged or single-direction frame).
    """
    frame = np.asarray(frame)
    if frame.ndim != 2:
        raise ValueError(f"frame must be (rows, cols), got shape {frame.shape}")
    mag = np.abs(np.fft.fftshift(fft_padded(frame, size)))
    c = size // 2
    k = np.arange(size) - c
    ky, kx = np.meshgrid(k, k, indexing="ij")
    radius = np.hypot(kx, ky)
    canonical = (kx > 0) | ((kx == 0) & (ky > 0))
    is_max = mag == ndimage.maximum_filter(mag, size=3, mode="wrap")
    ok = is_max & canonical & (radius >= min_radius) & (radius < size / 2) & (mag > 0)
    iy, ix = np.nonzero(ok)
    if iy.size == 0:
        raise ValueError("no spectral peak outside min_radius: is the frame tagged?")
    order = np.argsort(-mag[iy, ix], kind="stable")
    cand = np.stack([kx[iy, ix], ky[iy, ix]], axis=-1)[order].astype(np.float64)
    cand_mag = mag[iy, ix][order]

    p1 = cand[0]
    # vectorised: a noisy spectrum has thousands of local maxima
    line_angle = _line_angles_deg(cand, p1)
    second = np.nonzero((np.arange(len(cand)) >= 1) & (line_angle >= min_angle_deg)
                        & (cand_mag >= min_relative * cand_mag[0]))[0].tolist()
    if not second:
        raise ValueError(
            "only one tag direction found in the spectrum (no second peak with "
            f">= {min_relative:g} of the strongest's |F| at >= {min_angle_deg:g} deg)"
        )
    i2 = second[0]
    for combo in sorted((_canonical(cand[i2] - p1), _canonical(cand[i2] + p1)), key=np.linalg.norm):
        if np.linalg.norm(combo) >= np.linalg.norm(cand[i2]):
            continue
        near = np.nonzero(
            (np.linalg.norm(cand - combo, axis=-1) <= 1.5) & (cand_mag >= 0.5 * cand_mag[i2])
        )[0]
        near = [i for i in near if line_angle[i] >= min_angle_deg]
        if near:
            i2 = near[0]  # strongest such candidate (cand is sorted by magnitude)
            break
    peaks = np.stack([p1, cand[i2]])

    if refine:
        for p in peaks:
            r, q = int(p[1]) + c, int(p[0]) + c
            dx = _parabolic_offset(mag[r, (q - 1) % size], mag[r, q], mag[r, (q + 1) % size])
            dy = _parabolic_offset(mag[(r - 1) % size, q], mag[r, q], mag[(r + 1) % size, q])
            p += (dx, dy)
        # A symmetric neighbourhood gives an offset of ~1e-16 rather than 0; snapping it
        # keeps a peak on the kx = 0 line from flipping to its conjugate (angle -90).
        peaks = _canonical(np.where(np.abs(peaks) < 1e-9, 0.0, peaks))
    angles = np.arctan2(peaks[:, 1], peaks[:, 0])
    return peaks[np.argsort(angles, kind="stable")]


def harmonic_phase_image(
    frame: np.ndarray,
    peak: np.ndarray,
    size: int = PAD_SIZE,
    radius: float | None = None,
    taper: float | None = None,
) -> np.ndarray:
    """Complex harmonic image of one tag direction (HARP); ``np.angle`` of it is the phase.

    frame: ``(rows, cols)`` or ``(..., rows, cols)``, any real dtype, rows and cols at most
    ``size``. peak: ``(2,)`` ``(kx, ky)`` bin offset of ONE first-harmonic peak (not its
    conjugate), e.g. a row of :func:`find_first_harmonic_peaks`; keep the same peak for all
    frames of a cine. The padded frame's spectrum is multiplied by a circular band-pass of
    ``radius`` bins about ``peak`` (default ``0.5 * |peak|``: half way to DC, so neither DC
    nor the conjugate enters), inverse transformed, and cropped back to the frame's own
    ``(rows, cols)`` (undoing the centred padding). The window rolls off with a raised
    cosine over its outer ``taper`` bins (default ``0.25 * radius``; ``0`` gives a hard
    disc): a hard edge rings in the image domain and biases the phase by ~0.01 rad even in
    the interior of an ideal grid, the taper brings that down to ~0.002 rad.

    Returns complex128 ``(..., rows, cols)``. For the grid ``cos(k . x + phi)`` the result is
    ``~ A/2 * exp(i (k . x + phi))`` with ``k = 2 pi (kx, ky) / size`` rad/px, so its angle
    is the harmonic phase, which a material point keeps as it moves (tags move with
    tissue) while the wave vector stays inside the pass band.
    """
    frame = np.asarray(frame)
    rows, cols = frame.shape[-2:]
    spec = fft_padded(frame, size)
    peak = np.asarray(peak, dtype=np.float64).reshape(2)
    if radius is None:
        radius = 0.5 * float(np.linalg.norm(peak))
    if radius <= 0:
        raise ValueError("radius must be positive (a peak at DC has no harmonic phase)")
    if taper is None:
        taper = 0.25 * radius
    f = np.fft.fftfreq(size, 1.0 / size)  # integer bin offsets in unshifted layout
    # Distances wrap: the DFT is periodic, so a pass band crossing Nyquist continues on the
    # other side, as the spectrum does.
    dkx = (f[None, :] - peak[0] + size / 2) % size - size / 2
    dky = (f[:, None] - peak[1] + size / 2) % size - size / 2
    d = np.hypot(dkx, dky)
    if taper > 0:
        t = np.clip((d - (radius - taper)) / taper, 0.0, 1.0)
        weight = 0.5 * (1.0 + np.cos(np.pi * t))
    else:
        weight = (d <= radius).astype(np.float64)
    harm = np.fft.ifft2(spec * weight)
    row_off, col_off = pad_offsets((rows, cols), size)
    return harm[..., row_off : row_off + rows, col_off : col_off + cols]


def sample_phase(
    complex_image: np.ndarray,
    points: np.ndarray,
    order: int = 1,
    carrier: np.ndarray | None = None,
    size: int = PAD_SIZE,
) -> np.ndarray:
    """Harmonic phase (radians, in ``(-pi, pi]``) at sub-pixel points.

    complex_image: ``(rows, cols)`` with points ``(..., 2)``, or a stack ``(T, rows, cols)``
    with per-frame points ``(T, ..., 2)``. Points are ``(x, y)`` pixels (centres at
    integers). The real and imaginary parts are interpolated separately (phase itself
    wraps and cannot be interpolated), bilinearly by default (``order=1``,
    ``scipy.ndimage.map_coordinates``), and the angle taken. Points outside the image
    (beyond the outer pixel edges ``[-0.5, n - 0.5]``) give NaN; points between the outer
    pixel centres and edges use the edge value. Returns float64 ``(...)`` / ``(T, ...)``.

    Why ``carrier``: a ~4.4 px tag grid turns the phase by ~1 rad per pixel along each
    axis, and bilinear interpolation of ``exp(i psi)`` at that rate bends the phase by up
    to ~0.04 rad between pixel centres. Passing the band-pass peak ``(kx, ky)`` (bins of a
    ``size`` FFT, as given to :func:`harmonic_phase_image`) demodulates first: the image is
    multiplied by ``exp(-i 2 pi (kx x + ky y) / size)``, the slowly varying remainder is
    interpolated, and the carrier phase at the point is added back. The result is the
    same harmonic phase, with the interpolation error of the *residual* frequency only
    (deformation), ~10x smaller for an undeformed grid.
    """
    img = np.asarray(complex_image)
    pts = np.asarray(points, dtype=np.float64)
    if img.ndim == 3:
        if pts.shape[0] != img.shape[0]:
            raise ValueError(f"points {pts.shape} do not match the stack {img.shape}")
        return np.stack(
            [sample_phase(im, p, order, carrier, size) for im, p in zip(img, pts, strict=True)]
        )
    if img.ndim != 2 or pts.shape[-1] != 2:
        raise ValueError(
            f"need image (rows, cols) and points (..., 2); got {img.shape}, {pts.shape}"
        )
    rows, cols = img.shape
    img = img.astype(np.complex128)
    if carrier is not None:
        kx, ky = 2.0 * np.pi * np.asarray(carrier, dtype=np.float64).reshape(2) / size
        yy, xx = np.mgrid[0:rows, 0:cols]
        img = img * np.exp(-1j * (kx * xx + ky * yy))
    coords = np.stack([pts[..., 1].ravel(), pts[..., 0].ravel()])  # (row, col) order

    def interp(a):
        return ndimage.map_coordinates(a, coords, order=order, mode="nearest")

    z = (interp(img.real) + 1j * interp(img.imag)).reshape(pts.shape[:-1])
    if carrier is not None:
        z = z * np.exp(1j * (kx * pts[..., 0] + ky * pts[..., 1]))
    phase = np.angle(z)
    outside = (
        (pts[..., 0] < -0.5)
        | (pts[..., 0] > cols - 0.5)
        | (pts[..., 1] < -0.5)
        | (pts[..., 1] > rows - 0.5)
    )
    return np.where(outside, np.nan, phase)


def circular_difference(a, b) -> np.ndarray:
    """``a - b`` wrapped to ``(-pi, pi]`` (radians; numpy broadcasting; float64)."""
    d = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    return np.pi - np.mod(np.pi - d, 2.0 * np.pi)
