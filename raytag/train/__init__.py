"""Training (Ray Train, DDP) of the localiser and tracker, evaluation, shipped weights.

Pure parts (splits, schedules, preprocessing, augmentation, metrics) import no Ray; the
Ray Train loop and driver live in ``loop.py`` and ``driver.py``.
"""
