"""Ray drivers: cohort processing (:mod:`~raytag.pipeline.run`) and parallel synthetic
cohorts (:mod:`~raytag.pipeline.synth`). Ray lives here, in ``raytag.train`` and ``jobs/``."""
