"""Per-cine intensity normalisation (stored values vary between scans and sites).

Robust percentile scaling: ``(x - p_low) / (p_high - p_low)`` with the percentiles taken
over the valid frames of each cine (a strided subsample, for speed; zero padding included,
as the networks see it). Torch, batched, device-agnostic. The method and its parameters are
recorded in every checkpoint (``NORMALISATION``) and read back by the predictor.
"""

from __future__ import annotations

import torch

__all__ = ["NORMALISATION", "normalise_cines"]

NORMALISATION = {"method": "cine_percentile", "low": 1.0, "high": 99.5, "stride": 4}


def normalise_cines(
    frames: torch.Tensor, frame_valid: torch.Tensor, params: dict = NORMALISATION
) -> torch.Tensor:
    """frames ``(B, T, H, W)`` any dtype, frame_valid ``(B, T)`` bool -> float32, same shape.

    Invalid frames come out as zeros. A constant cine (p_high == p_low) maps to zeros.
    """
    if params.get("method") != "cine_percentile":
        raise ValueError(f"unknown normalisation method {params.get('method')!r}")
    x = frames.to(torch.float32)
    b = x.shape[0]
    step = int(params.get("stride", 1))
    sample = x[:, :, ::step, ::step]
    valid = frame_valid.to(torch.bool)
    # Percentiles over valid frames only: invalid ones become +inf and sort to the end.
    sample = torch.where(valid[:, :, None, None], sample, torch.full_like(sample, float("inf")))
    flat, _ = torch.sort(sample.reshape(b, -1), dim=1)
    n = (valid.sum(dim=1) * sample.shape[-1] * sample.shape[-2]).clamp_min(1)

    def percentile(q: float) -> torch.Tensor:
        idx = ((q / 100.0) * (n - 1).to(torch.float32)).round().long()
        return flat.gather(1, idx[:, None])[:, 0]

    lo, hi = percentile(params["low"]), percentile(params["high"])
    span = (hi - lo).clamp_min(1e-6)
    out = (x - lo[:, None, None, None]) / span[:, None, None, None]
    return torch.where(valid[:, :, None, None], out, torch.zeros_like(out))
