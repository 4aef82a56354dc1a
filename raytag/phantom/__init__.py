"""Synthetic tagged short-axis cines with exact ground truth (pure numpy/scipy)."""

from raytag.phantom.rings import RingPhantom, contraction_profile

__all__ = ["RingPhantom", "contraction_profile"]
