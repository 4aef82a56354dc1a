"""Helpers for the landmark array convention (docs/conventions.md "Landmarks").

A landmark array has shape ``(..., T, 168, 2)``: any leading axes (batch, slice, ...),
then frames ``T``, then landmark index ``i = 7*k + r``, then ``(x, y)`` in pixels
(x = column, y = row, image y pointing down).

- ``k = 0..23`` runs around the circumference, starting at the mid-septum and going
  clockwise *as displayed*. With y pointing down, "clockwise on screen" is the direction
  of increasing ``atan2(y, x)`` computed in image coordinates.
- ``r = 0..6`` runs across the wall, ``r = 0`` endocardium, ``r = 6`` epicardium.

Because ``i = 7*k + r`` is row-major in ``(k, r)``, a plain reshape to ``(..., 24, 7, 2)``
exposes the grid; :func:`to_grid` / :func:`from_grid` do that (views when possible).

Pure numpy: imports neither Ray nor torch.
"""

from __future__ import annotations

import numpy as np

from raytag.constants import N_CIRCUMFERENTIAL, N_LANDMARKS, N_TRANSMURAL

__all__ = ["to_grid", "from_grid", "concentric_rings", "annulus"]


def to_grid(points: np.ndarray) -> np.ndarray:
    """Reshape landmarks ``(..., 168, 2)`` to the grid ``(..., 24, 7, 2)``.

    Axis ``-3`` is the circumferential index ``k``, axis ``-2`` the transmural index ``r``,
    axis ``-1`` is ``(x, y)``. Dtype and units are unchanged; the result is a view of
    ``points`` whenever numpy can reshape without copying (always for contiguous input).

    Raises ``ValueError`` if the last two axes are not ``(168, 2)``.
    """
    points = np.asarray(points)
    if points.ndim < 2 or points.shape[-2:] != (N_LANDMARKS, 2):
        raise ValueError(f"landmarks must have shape (..., {N_LANDMARKS}, 2), got {points.shape}")
    return points.reshape(points.shape[:-2] + (N_CIRCUMFERENTIAL, N_TRANSMURAL, 2))


def from_grid(grid: np.ndarray) -> np.ndarray:
    """Inverse of :func:`to_grid`: ``(..., 24, 7, 2)`` -> ``(..., 168, 2)``.

    Landmark ``(k, r)`` goes to index ``7*k + r``. Dtype and units are unchanged.

    Raises ``ValueError`` if the last three axes are not ``(24, 7, 2)``.
    """
    grid = np.asarray(grid)
    if grid.ndim < 3 or grid.shape[-3:] != (N_CIRCUMFERENTIAL, N_TRANSMURAL, 2):
        raise ValueError(
            f"landmark grid must have shape (..., {N_CIRCUMFERENTIAL}, {N_TRANSMURAL}, 2), "
            f"got {grid.shape}"
        )
    return grid.reshape(grid.shape[:-3] + (N_LANDMARKS, 2))


def concentric_rings(center_xy, radii, theta0=0.0) -> np.ndarray:
    """Landmarks on 7 concentric circles with given radii.

    Landmark ``(k, r)`` is placed at ``center + radii[r] * (cos a_k, sin a_k)`` with
    ``a_k = theta0 + 2*pi*k/24`` (radians, measured in image coordinates, so increasing
    ``k`` runs clockwise as displayed).

    Parameters
    ----------
    center_xy : array_like ``(..., 2)``
        Ring centre ``(x, y)`` in pixels.
    radii : array_like ``(..., 7)``
        Radius of each transmural ring ``r = 0..6`` in pixels. Need not be evenly spaced
        (e.g. an incompressible contraction moves rings non-linearly).
    theta0 : float or array_like ``(...)``
        Angle of ``k = 0`` in radians.

    The leading axes of the three arguments broadcast together, so a per-frame sequence
    is built by passing ``(T, 7)`` radii.

    Returns
    -------
    np.ndarray, float64, ``(..., 168, 2)``
    """
    center = np.asarray(center_xy, dtype=np.float64)
    radii = np.asarray(radii, dtype=np.float64)
    theta0 = np.asarray(theta0, dtype=np.float64)
    if center.ndim < 1 or center.shape[-1] != 2:
        raise ValueError(f"center_xy must have shape (..., 2), got {center.shape}")
    if radii.ndim < 1 or radii.shape[-1] != N_TRANSMURAL:
        raise ValueError(f"radii must have shape (..., {N_TRANSMURAL}), got {radii.shape}")
    k = np.arange(N_CIRCUMFERENTIAL, dtype=np.float64)
    # (..., 24, 1): one angle per circumferential index, shared by all rings.
    angle = (theta0[..., None] + 2.0 * np.pi * k / N_CIRCUMFERENTIAL)[..., :, None]
    rad = radii[..., None, :]  # (..., 1, 7)
    x = center[..., 0, None, None] + rad * np.cos(angle)
    y = center[..., 1, None, None] + rad * np.sin(angle)
    return from_grid(np.stack(np.broadcast_arrays(x, y), axis=-1))


def annulus(center_xy, r_endo, r_epi, theta0=0.0) -> np.ndarray:
    """An exact circular myocardial ring with evenly spaced transmural landmarks.

    Landmark ``(k, r)`` lies at radius ``r_endo + (r_epi - r_endo) * r / 6`` and angle
    ``theta0 + 2*pi*k/24`` (radians, image coordinates: increasing ``k`` is clockwise as
    displayed) around ``center_xy``.

    Parameters
    ----------
    center_xy : array_like ``(..., 2)``
        Centre ``(x, y)`` in pixels.
    r_endo, r_epi : float or array_like ``(...)``
        Endocardial and epicardial radii in pixels. Arrays (e.g. one value per frame,
        shape ``(T,)``) give a sequence of rings.
    theta0 : float or array_like ``(...)``
        Angle of ``k = 0`` (the mid-septum) in radians.

    Returns
    -------
    np.ndarray, float64, ``(..., 168, 2)``
        Leading axes are the broadcast of the arguments' leading axes.
    """
    r_endo = np.asarray(r_endo, dtype=np.float64)[..., None]
    r_epi = np.asarray(r_epi, dtype=np.float64)[..., None]
    frac = np.arange(N_TRANSMURAL, dtype=np.float64) / (N_TRANSMURAL - 1)
    return concentric_rings(center_xy, r_endo + (r_epi - r_endo) * frac, theta0)
