"""The torch twin of :mod:`raytag.strain` (differentiable, for the training loss).

Same definitions (docs/conventions.md "Strain"): Green strain ``0.5 ((L_t / L_0)^2 - 1)``
per segment, reference frame 0, slice value = mean over the 24 segments. Tested equal to
:func:`raytag.strain.compute_strains` on random inputs (``tests/test_models.py``).
"""

from __future__ import annotations

import torch

from raytag.constants import (
    N_CIRCUMFERENTIAL,
    N_TRANSMURAL,
    RING_MIDWALL,
    RING_SUBENDO,
    RING_SUBEPI,
)

__all__ = ["strain_curves"]


def strain_curves(points: torch.Tensor) -> dict[str, torch.Tensor]:
    """Green strain curves ``(..., T)`` from landmarks ``(..., T, 168, 2)``.

    Keys: ``radial``, ``circ_global``, ``circ_subendo``, ``circ_midwall``, ``circ_subepi``.
    Points must be in an isotropic unit (mm, or pixels of isotropic spacing): strain is not
    invariant to anisotropic scaling, so crop pixels are converted first (see the loss).
    """
    grid = points.reshape(*points.shape[:-2], N_CIRCUMFERENTIAL, N_TRANSMURAL, 2)
    circ = torch.linalg.vector_norm(torch.roll(grid, -1, dims=-3) - grid, dim=-1)  # (...,T,24,7)
    radial = torch.linalg.vector_norm(grid[..., -1, :] - grid[..., 0, :], dim=-1)  # (..., T, 24)
    # Reference = frame 0 (ED): the T axis is -3 for circ lengths, -2 for radial ones.
    e_circ = 0.5 * ((circ / circ[..., :1, :, :]) ** 2 - 1)
    e_radial = 0.5 * ((radial / radial[..., :1, :]) ** 2 - 1)
    rings = e_circ.mean(dim=-2)  # (..., T, 7): mean over the 24 segments of each ring
    return {
        "radial": e_radial.mean(dim=-1),
        "circ_global": rings.mean(dim=-1),
        "circ_subendo": rings[..., RING_SUBENDO],
        "circ_midwall": rings[..., RING_MIDWALL],
        "circ_subepi": rings[..., RING_SUBEPI],
    }
