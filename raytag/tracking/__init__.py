"""Phase-based (HARP) tracking and tag-quality QC: pure numpy/scipy, no torch, no Ray.

- :mod:`~raytag.tracking.harmonics` - tag-grid spectral peaks, band-pass images, phases;
- :mod:`~raytag.tracking.harp` - harmonic analysis of a cine and HARP tracking of points
  with tag-jump guards and a regularised myocardial displacement field;
- :mod:`~raytag.tracking.qc` - tag contrast over time and the phase-consistency residual
  of any landmark track.
"""
