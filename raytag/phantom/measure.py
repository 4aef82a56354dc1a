"""Measurements that compare tagged cines (synthetic or real) with docs/realism.md.

Pure numpy/scipy functions, used by the phantom generator's tests and by anyone checking a
cine: tag-grid geometry from the spectrum, first-harmonic fading, DC, cross-term and
second-harmonic ratios, myocardial intensity SD/mean, and HARP (harmonic phase) images for
checking that tags move with the ground-truth material points.

Conventions
-----------
* **Frames** are ``(rows, cols)`` or ``(..., rows, cols)`` arrays of any real dtype; all
  arithmetic is float64.
* **Points** are ``(..., 2)`` ``(x, y)`` = (column, row) in pixels of the frame, pixel
  centres at integers, y pointing down (docs/conventions.md "Landmarks").
* **Angles** are in image coordinates: ``atan2(y, x)`` with x right and y down, so a
  positive angle turns clockwise as displayed.
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

from raytag.constants import PAD_SIZE
from raytag.tracking.harmonics import (  # noqa: F401 - re-exported, the measurements' API
    check_fits,
    circular_difference,
    fft_padded,
    find_first_harmonic_peaks,
    harmonic_phase_image,
    padded_spectrum,
    sample_phase,
)

__all__ = [
    "padded_spectrum",
    "find_first_harmonic_peaks",
    "grid_geometry",
    "window_sum",
    "first_harmonic_amplitude",
    "dc_component",
    "cross_term_ratio",
    "second_harmonic_ratio",
    "masked_cv",
    "harmonic_phase_image",
    "sample_phase",
    "circular_difference",
]

#: docs/realism.md's first-harmonic window is 9x9 bins: +-4 around the peak.
DEFAULT_HALF_WINDOW = 4


# --- Spectrum ---------------------------------------------------------------------------


def grid_geometry(
    frame: np.ndarray, pixel_spacing_mm, size: int = PAD_SIZE, **peak_kwargs
) -> dict[str, np.ndarray]:
    """Tag-grid directions and wavelengths of one frame.

    frame: ``(rows, cols)``. pixel_spacing_mm: a float (isotropic) or ``(row, col)``
    spacing in mm as DICOM ``PixelSpacing``. ``peak_kwargs`` go to
    :func:`find_first_harmonic_peaks`.

    Returns a dict of float64 arrays, one entry per peak (order of
    :func:`find_first_harmonic_peaks`):

    * ``peaks`` ``(2, 2)``: the ``(kx, ky)`` bin offsets;
    * ``angles_deg`` ``(2,)``: wave-vector angle in image coordinates (pixel axes), in
      ``(-90, 90]``; the tag lines run at this angle plus 90 deg;
    * ``wavelength_px`` ``(2,)``: ``size / |k|``, the tag spacing in pixels;
    * ``wavelength_mm`` ``(2,)``: the tag spacing in mm. With anisotropic spacing the wave
      vector is converted per axis (cycles/mm = bins / (size * spacing)), so this is the
      physical spacing, not ``wavelength_px`` times one spacing.
    """
    peaks = find_first_harmonic_peaks(frame, size, **peak_kwargs)
    sp = np.broadcast_to(np.asarray(pixel_spacing_mm, dtype=np.float64), (2,))
    row_sp, col_sp = sp
    k_norm = np.linalg.norm(peaks, axis=-1)
    cyc_per_mm = np.hypot(peaks[:, 0] / (size * col_sp), peaks[:, 1] / (size * row_sp))
    return {
        "peaks": peaks,
        "angles_deg": np.degrees(np.arctan2(peaks[:, 1], peaks[:, 0])),
        "wavelength_px": size / k_norm,
        "wavelength_mm": 1.0 / cyc_per_mm,
    }


# --- Window sums ------------------------------------------------------------------------


def _window_mask(centres: np.ndarray, size: int, half_window: int) -> np.ndarray:
    """Boolean ``(..., size, size)`` in *unshifted* FFT layout: the union of the
    ``(2h+1)^2`` windows around each centre ``(..., P, 2)`` and its conjugate.

    Indices wrap (the DFT is periodic), so a window beyond Nyquist lands on its alias.
    A union, not a sum: overlapping windows (peaks closer than ``2h+1`` bins, e.g. a peak
    near kx = 0 and its conjugate) count each bin once.
    """
    centres = np.rint(np.asarray(centres, dtype=np.float64)).astype(np.intp)
    centres = np.concatenate([centres, -centres], axis=-2)  # (..., 2P, 2)
    off = np.arange(-half_window, half_window + 1)
    cols = (centres[..., 0, None] + off) % size  # (..., 2P, w)
    rows = (centres[..., 1, None] + off) % size
    hit_c = np.zeros(centres.shape[:-1] + (size,), dtype=bool)
    hit_r = np.zeros_like(hit_c)
    np.put_along_axis(hit_c, cols, True, axis=-1)
    np.put_along_axis(hit_r, rows, True, axis=-1)
    # Window j covers rows hit_r[j] x cols hit_c[j]; OR over the windows.
    return (hit_r[..., :, :, None] & hit_c[..., :, None, :]).any(axis=-3)


def _as_batch(frames: np.ndarray, centres: np.ndarray, size: int):
    """Spectra ``(..., size, size)`` and centres aligned to their batch axes."""
    frames = np.asarray(frames)
    spec = fft_padded(frames, size)
    centres = np.asarray(centres, dtype=np.float64)
    if centres.ndim < 2 or centres.shape[-1] != 2:
        raise ValueError(f"peaks must be (..., P, 2), got shape {centres.shape}")
    # Per-frame peaks (T, P, 2) line up with frames (T, rows, cols); (P, 2) serves all.
    batch = frames.shape[:-2]
    extra = len(batch) - (centres.ndim - 2)
    if extra < 0:
        raise ValueError(f"peaks {centres.shape} have more batch axes than frames {batch}")
    centres = centres.reshape(centres.shape[:-2] + (1,) * extra + centres.shape[-2:])
    return spec, centres


def window_sum(
    frames: np.ndarray,
    centres: np.ndarray,
    size: int = PAD_SIZE,
    half_window: int = DEFAULT_HALF_WINDOW,
    power: int = 1,
) -> np.ndarray:
    """Sum of ``|F|**power`` over ``(2*half_window+1)^2``-bin windows of the padded FFT.

    frames: ``(rows, cols)`` or ``(T, rows, cols)`` (any leading axes). centres:
    ``(P, 2)`` ``(kx, ky)`` bin offsets, rounded to the nearest bin, used for every frame,
    or ``(T, P, 2)`` per frame. Each centre's conjugate ``-k`` is always included (a real
    frame's spectrum is Hermitian, so this doubles the sum), bins are counted once where
    windows overlap. Returns float64 of the frames' batch shape (``()`` for one frame).
    """
    spec, centres = _as_batch(frames, centres, size)
    mask = _window_mask(centres, size, half_window)
    vals = np.abs(spec) ** power
    return np.sum(vals * mask, axis=(-2, -1))


def first_harmonic_amplitude(
    frames: np.ndarray,
    peaks: np.ndarray,
    size: int = PAD_SIZE,
    half_window: int = DEFAULT_HALF_WINDOW,
    power: int = 1,
) -> np.ndarray:
    """docs/realism.md's tag-fading measure: first-harmonic |F| summed over 9x9-bin windows.

    frames: ``(T, rows, cols)`` (or ``(rows, cols)``), any real dtype. peaks: ``(2, 2)``
    from :func:`find_first_harmonic_peaks` (usually of frame 0, kept for all frames, as
    REALISM measured it) or per-frame ``(T, 2, 2)``. The windows are ``2*half_window+1``
    bins square (9x9 by default) around both peaks and their conjugates (4 windows) of each
    frame's ``size x size`` zero-padded FFT, no window function. ``power=2`` sums ``|F|^2``
    (REALISM's second fading curve). Returns float64 ``(T,)`` (``()`` for one frame);
    divide by element 0 for REALISM's relative curve.
    """
    return window_sum(frames, peaks, size, half_window, power)


def dc_component(frames: np.ndarray, size: int = PAD_SIZE) -> np.ndarray:
    """``|F|`` at DC of each frame's padded FFT: ``|sum of pixel values|``.

    frames: ``(T, rows, cols)`` or ``(rows, cols)``. Returns float64 ``(T,)`` or ``()``.
    Zero-padding adds nothing to the sum, so ``size`` only checks that the frame fits.
    """
    frames = np.asarray(frames)
    check_fits(frames.shape[-2:], size)
    return np.abs(frames.astype(np.float64, copy=False).sum(axis=(-2, -1)))


def _combo_ratio(frames, peaks, combos, size, half_window, power):
    peaks = np.asarray(peaks, dtype=np.float64)
    if peaks.shape[-2:] != (2, 2):
        raise ValueError(f"peaks must be (..., 2, 2), got shape {peaks.shape}")
    num = window_sum(frames, combos(peaks[..., 0, :], peaks[..., 1, :]), size, half_window, power)
    den = window_sum(frames, peaks, size, half_window, power)
    return num / den


def cross_term_ratio(
    frames: np.ndarray,
    peaks: np.ndarray,
    size: int = PAD_SIZE,
    half_window: int = DEFAULT_HALF_WINDOW,
    power: int = 1,
) -> np.ndarray:
    """Window sum at the cross terms ``p1 + p2`` and ``p1 - p2`` over the first-harmonic sum.

    Same windows, shapes and ``power`` as :func:`first_harmonic_amplitude` (conjugates
    included on both sides, so this is also the per-peak ratio of averages). For a +-45 deg
    grid at ``(+-42, +-42)`` the cross terms are at ``(84, 0)`` and ``(0, 84)``; REALISM
    reports them at 5-20% of the first harmonic. For the product grid
    ``(1 + m cos a)(1 + m cos b)`` the ratio is ``m / 2`` (``(m / 2)**2`` with ``power=2``).
    Returns float64 ``(T,)`` or ``()``.
    """
    return _combo_ratio(
        frames,
        peaks,
        lambda a, b: np.stack([a + b, a - b], axis=-2),
        size,
        half_window,
        power,
    )


def second_harmonic_ratio(
    frames: np.ndarray,
    peaks: np.ndarray,
    size: int = PAD_SIZE,
    half_window: int = DEFAULT_HALF_WINDOW,
    power: int = 1,
) -> np.ndarray:
    """Window sum at the second harmonics ``2 p1`` and ``2 p2`` over the first-harmonic sum.

    As :func:`cross_term_ratio`; REALISM reports ~3% (a nearly sinusoidal 1-1 SPAMM grid).
    A second harmonic beyond Nyquist (``|2k| >= size/2`` per axis) aliases, and its window
    wraps to the alias. Returns float64 ``(T,)`` or ``()``.
    """
    return _combo_ratio(
        frames,
        peaks,
        lambda a, b: np.stack([2 * a, 2 * b], axis=-2),
        size,
        half_window,
        power,
    )


# --- Image statistics -------------------------------------------------------------------


def masked_cv(frames: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Coefficient of variation (SD / mean) of the pixels inside ``mask``, per frame.

    frames: ``(T, rows, cols)`` or ``(rows, cols)``, any real dtype. mask: boolean
    ``(rows, cols)`` (one mask for all frames) or ``(T, rows, cols)`` per frame (e.g. the
    myocardium following the motion). SD is the population SD (``ddof=0``, numpy's
    default), so this equals ``x[m].std() / x[m].mean()``. This is REALISM's
    "myocardial intensity SD/mean", a tag-contrast proxy. Returns float64 ``(T,)`` or
    ``()``; NaN for an empty mask.
    """
    x = np.asarray(frames, dtype=np.float64)
    m = np.broadcast_to(np.asarray(mask, dtype=bool), x.shape)
    n = m.sum(axis=(-2, -1))
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(m, x, 0.0).sum(axis=(-2, -1)) / n
        dev = np.where(m, x - mean[..., None, None], 0.0)
        sd = np.sqrt((dev * dev).sum(axis=(-2, -1)) / n)
        return sd / mean
