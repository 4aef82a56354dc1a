"""Procedural textures and random shapes for the synthetic anatomy (numpy/scipy only).

Every function takes a ``numpy.random.Generator`` and is deterministic in it. Arrays are
``(rows, cols)`` float64 on the image grid; lengths are in pixels unless a name says ``_mm``.
Textures have zero mean and unit standard deviation over the array (scaled by the caller);
shapes are *signed levels*: > 0 inside, < 0 outside, about the distance to the edge in
pixels near it, so partial volume is ``clip(0.5 + level, 0, 1)``.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

__all__ = [
    "standardise",
    "fractal_noise",
    "cellular",
    "stripes",
    "random_texture",
    "smooth_field",
    "fourier_radius",
    "radius_factor",
    "star_level",
    "ellipse_level",
    "partial_volume",
    "sample",
]


def standardise(a: np.ndarray) -> np.ndarray:
    """``(a - mean) / sd`` (zeros for a constant array)."""
    a = a - a.mean()
    sd = a.std()
    return a / sd if sd > 1e-12 else np.zeros_like(a)


def fractal_noise(rng: np.random.Generator, shape: tuple[int, int], base_px: float = 2.0,
                  octaves: int = 4, persistence: float = 0.6) -> np.ndarray:
    """Sum of Gaussian-filtered white noise at scales ``base_px * 2**o`` (1/f-like texture)."""
    out = np.zeros(shape)
    amp = 1.0
    for o in range(octaves):
        out += amp * standardise(ndimage.gaussian_filter(rng.standard_normal(shape),
                                                         base_px * 2**o))
        amp *= persistence
    return standardise(out)


def cellular(rng: np.random.Generator, shape: tuple[int, int], cell_px: float = 6.0,
             edge_px: float = 0.8) -> np.ndarray:
    """Voronoi cells, each of its own random intensity (fat lobules, bowel, marrow)."""
    rows, cols = shape
    n = max(4, int(rows * cols / cell_px**2))
    seeds = rng.uniform([0, 0], [rows, cols], (n, 2))
    # Nearest seed per pixel from a coarse label raster grown by distance transform.
    marks = np.zeros(shape, dtype=np.int64)
    r, c = np.clip(seeds.astype(int), 0, [rows - 1, cols - 1]).T
    marks[r, c] = np.arange(1, n + 1)
    _, (ir, ic) = ndimage.distance_transform_edt(marks == 0, return_indices=True)
    labels = marks[ir, ic]
    values = rng.standard_normal(n + 1)
    return standardise(ndimage.gaussian_filter(values[labels], edge_px))


def stripes(rng: np.random.Generator, shape: tuple[int, int], period_px: float = 8.0) -> np.ndarray:
    """Warped parallel bands (muscle fibres, wood grain)."""
    y, x = np.mgrid[0 : shape[0], 0 : shape[1]].astype(np.float64)
    a = rng.uniform(0, np.pi)
    warp = 0.8 * period_px * standardise(ndimage.gaussian_filter(rng.standard_normal(shape), 12.0))
    u = x * np.cos(a) + y * np.sin(a) + warp
    return standardise(np.sin(2 * np.pi * u / period_px))


def random_texture(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """One of the texture kinds above, with random parameters."""
    kind = rng.integers(0, 4)
    if kind == 0:
        return fractal_noise(rng, shape, rng.uniform(1.0, 4.0), int(rng.integers(2, 5)),
                             rng.uniform(0.4, 0.8))
    if kind == 1:
        return cellular(rng, shape, rng.uniform(3.0, 12.0))
    if kind == 2:
        return stripes(rng, shape, rng.uniform(4.0, 14.0))
    return standardise(fractal_noise(rng, shape, 1.5, 3) + cellular(rng, shape, 8.0))


def smooth_field(rng: np.random.Generator, shape: tuple[int, int], order: int = 2) -> np.ndarray:
    """A low-order polynomial field in [-1, 1] (coil sensitivity, bias)."""
    y, x = np.mgrid[0 : shape[0], 0 : shape[1]].astype(np.float64)
    u, v = 2 * x / max(shape[1] - 1, 1) - 1, 2 * y / max(shape[0] - 1, 1) - 1
    out = np.zeros(shape)
    for i in range(order + 1):
        for j in range(order + 1 - i):
            out += rng.normal() * u**i * v**j / (1 + i + j)
    return out / max(np.abs(out).max(), 1e-9)


def fourier_radius(rng: np.random.Generator, n_terms: int = 4, amplitude: float = 0.08):
    """Random ``(a_n, phi_n)`` for a radius ``1 + sum a_n cos(n theta + phi_n)``, n >= 2.

    Amplitudes fall as ``1/n``; returns ``(amps (n_terms,), phases (n_terms,))``.
    """
    n = np.arange(2, n_terms + 2)
    return rng.normal(0, amplitude, n_terms) * 2 / n, rng.uniform(0, 2 * np.pi, n_terms)


def radius_factor(theta: np.ndarray, coeffs) -> np.ndarray:
    """``1 + sum_n a_n cos(n theta + phi_n)`` for ``coeffs`` from :func:`fourier_radius`."""
    amps, phases = coeffs
    out = np.ones_like(theta)
    for i, (a, p) in enumerate(zip(amps, phases, strict=True)):
        out = out + a * np.cos((i + 2) * theta + p)
    return out


def star_level(x: np.ndarray, y: np.ndarray, cx: float, cy: float, radius: float,
               coeffs=None, aspect: float = 1.0, angle: float = 0.0) -> np.ndarray:
    """Signed level (px) of a star-shaped region ``r < radius * (1 + Fourier(theta))``."""
    ca, sa = np.cos(angle), np.sin(angle)
    dx, dy = x - cx, y - cy
    u = (dx * ca + dy * sa)
    v = (-dx * sa + dy * ca) * aspect
    r = np.hypot(u, v)
    edge = radius * (radius_factor(np.arctan2(v, u), coeffs) if coeffs is not None else 1.0)
    return edge - r


def ellipse_level(x, y, cx, cy, ax, ay, angle: float = 0.0) -> np.ndarray:
    """Approximate signed distance (px) to an ellipse's edge (> 0 inside)."""
    ca, sa = np.cos(angle), np.sin(angle)
    dx, dy = x - cx, y - cy
    q = np.hypot((dx * ca + dy * sa) / ax, (-dx * sa + dy * ca) / ay)
    # Along the ray from the centre the edge is at |p| / q: the level is the distance left.
    ray = np.where(q > 1e-9, np.hypot(dx, dy) / np.maximum(q, 1e-9), min(ax, ay))
    return (1 - q) * ray


def partial_volume(level: np.ndarray) -> np.ndarray:
    """Fraction of a pixel inside the region whose signed level (px) is ``level``."""
    return np.clip(0.5 + level, 0.0, 1.0)


def sample(image: np.ndarray, x: np.ndarray, y: np.ndarray, order: int = 1) -> np.ndarray:
    """``image`` sampled at pixel positions ``(x, y)`` (nearest edge value outside)."""
    return ndimage.map_coordinates(image, [y, x], order=order, mode="nearest")
