"""raytag: fully automated myocardial strain from tagged cardiac MRI, at cohort scale.

The pure-numpy core (``raytag.io``, ``raytag.geometry``, ``raytag.strain``) imports
neither Ray nor torch; Ray lives in ``raytag.pipeline`` / ``raytag.train`` and ``jobs/``.
"""

__version__ = "0.2.0"
