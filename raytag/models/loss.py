"""Training losses: the tracker's composite loss (paper eq. 2) and the localiser's MSE."""

from __future__ import annotations

import torch

from raytag.constants import PAD_SIZE, STRAIN_WEIGHT
from raytag.models.strain_torch import strain_curves

__all__ = ["tracker_loss", "localiser_loss", "STRAIN_WEIGHT"]


def tracker_loss(
    pred: torch.Tensor,
    target: torch.Tensor,
    frame_valid: torch.Tensor | None = None,
    mm_per_crop_px: torch.Tensor | None = None,
    weight: float = STRAIN_WEIGHT,
) -> torch.Tensor:
    """Per frame ``MSE + w |radial error| + w |midwall circ error|``, averaged (frames, batch).

    pred, target: ``(B, T, 168, 2)`` landmarks in crop pixels. ``MSE_t`` is the mean over the
    168 landmarks of the squared position error ``dx^2 + dy^2`` (crop px^2), as in the paper.
    Strains (reference frame 0) are computed after scaling x and y by ``mm_per_crop_px``
    ``(B, 2)`` = (x, y) mm per crop pixel, because the crop has separate x and y scales and
    strain is not invariant to anisotropic scaling (the original computed it in crop space).
    ``frame_valid`` ``(B, T)`` bool excludes padded frames from the average.
    """
    if frame_valid is not None:
        # Padded frames may hold NaN targets. Replace them by the (detached) prediction
        # *before* any arithmetic: masking afterwards would still send NaN gradients back
        # (0 * NaN = NaN in the backward pass of torch.where).
        target = torch.where(frame_valid[..., None, None], target, pred.detach())
    mse = ((pred - target) ** 2).sum(dim=-1).mean(dim=-1)  # (B, T)
    if mm_per_crop_px is not None:
        scale = mm_per_crop_px[:, None, None, :].to(pred.dtype)
        pred_s, target_s = pred * scale, target * scale
    else:
        pred_s, target_s = pred, target
    sp, st = strain_curves(pred_s), strain_curves(target_s)
    per_frame = (mse + weight * (sp["radial"] - st["radial"]).abs()
                 + weight * (sp["circ_midwall"] - st["circ_midwall"]).abs())
    if frame_valid is None:
        return per_frame.mean()
    mask = frame_valid.to(per_frame.dtype)
    return (per_frame * mask).sum() / mask.sum().clamp_min(1)


def localiser_loss(pred: torch.Tensor, target: torch.Tensor,
                   size: float = float(PAD_SIZE)) -> torch.Tensor:
    """MSE between predicted and true box corners ``(B, 4)``, as the paper, with corners in
    units of the input size (256 px) so the loss is O(1) whatever the matrix."""
    return (((pred - target) / size) ** 2).mean()
