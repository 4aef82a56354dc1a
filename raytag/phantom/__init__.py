"""Synthetic tagged short-axis cines with exact ground truth (pure numpy/scipy, no Ray).

- :mod:`~raytag.phantom.params` - slice parameters and participant sampling
  (docs/realism.md targets);
- :mod:`~raytag.phantom.kinematics` - invertible LV motion, landmarks, motion fitting;
- :mod:`~raytag.phantom.render` - anatomy, SPAMM tagging physics, noise -> uint16 frames;
- :mod:`~raytag.phantom.cohort` - participants -> UK Biobank zips + truth rows, faults;
- :mod:`~raytag.phantom.measure` - docs/realism.md measurements (spectra, fading, HARP phase);
- :mod:`~raytag.phantom.preview` - PNG grid with landmarks for people to look at.
"""
