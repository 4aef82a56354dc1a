"""Typed settings of one ``raytag run`` (no Ray, no torch: the CLI validates with it).

:class:`RunSettings` is what :func:`raytag.pipeline.run.run_cohort` reads; the CLI builds
one from its flags, scripts and jobs pass one (or keyword overrides). Defaults live here
and in :mod:`raytag.constants` (tracker, refinement passes), nowhere else.
"""

from __future__ import annotations

from dataclasses import dataclass

from raytag.constants import DEFAULT_TRACKER, LOCALISER_VIEW_CHOICES, TRACKERS

__all__ = ["RunSettings", "RETRY_POLICIES", "TRACKERS", "ENGINES", "LOCAL_MAX_PARTICIPANTS"]

#: Which committed failures a run processes again (``--retry-failed``).
RETRY_POLICIES = ("none", "transient", "all")
#: What executes the stages (``--engine``): ``ray`` (Ray Data, any cluster), ``local``
#: (the same stages in this process, no Ray), ``auto`` (see
#: :func:`raytag.pipeline.run.choose_engine`).
ENGINES = ("auto", "ray", "local")
#: Participants at or below which ``--engine auto`` runs a job in this process when there
#: is no cluster to join. Ray's fixed costs on one machine (its start ~3.5 s, each model
#: actor's imports and weights ~3 s, shutdown ~1.3 s; docs/pipeline.md) are most of a
#: small job: on 2 cores, 24 participants through a local Ray ran at 0.52x the throughput
#: of an in-process loop, the local engine at 0.97x, in one run of
#: ``benchmarks/pipeline_throughput.py`` (at 200 participants: 1.06x and 1.03x). Even on
#: 16 cores, where Ray's parallel stages pay back soonest, ~10 s of fixed cost is about
#: 30 participants' work for one process; above this size Ray runs, so a cohort never
#: depends on one process.
LOCAL_MAX_PARTICIPANTS = 32


@dataclass(frozen=True)
class RunSettings:
    """One cohort run.

    ``weights``: folder or prefix of checkpoints (None: the shipped ones); ``limit``: the
    first N inputs only; ``resume``: complete an output that has results (False: refuse
    it); ``model_actors``/``gpus``: model actor pool (None: from the cluster,
    :func:`raytag.pipeline.run.pool_size`); ``decode_batch``/``predict_batch``:
    participants per decode task / slices per network batch; ``rows_per_file``/
    ``flush_seconds``: when the writer commits; ``refine_passes`` and ``localiser_views``
    (None: the defaults); ``tracker`` (one of :data:`TRACKERS`); ``register_frames``:
    HARP's registration refinement (False: about twice as fast tracking, less accurate;
    ``model_version`` says ``register=off``); ``retry_failed`` (one of
    :data:`RETRY_POLICIES`); ``allow_outside_links``: follow symlinks that leave the input;
    ``engine`` (one of :data:`ENGINES`).
    """

    weights: str | None = None
    limit: int | None = None
    resume: bool = True
    model_actors: int | None = None
    gpus: int | None = None
    decode_batch: int = 2
    predict_batch: int = 8
    rows_per_file: int = 3000
    flush_seconds: float = 60.0
    refine_passes: int | None = None
    localiser_views: int | None = None
    tracker: str = DEFAULT_TRACKER
    register_frames: bool = True
    retry_failed: str = "transient"
    allow_outside_links: bool = False
    engine: str = "auto"

    def __post_init__(self):
        if self.engine not in ENGINES:
            raise ValueError(f"engine must be one of {ENGINES}, got {self.engine!r}")
        if self.tracker not in TRACKERS:
            raise ValueError(f"tracker must be one of {TRACKERS}, got {self.tracker!r}")
        if self.retry_failed not in RETRY_POLICIES:
            raise ValueError(f"retry_failed must be one of {RETRY_POLICIES}, got "
                             f"{self.retry_failed!r}")
        for name in ("decode_batch", "predict_batch", "rows_per_file"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("limit", "model_actors"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")
        if self.gpus is not None and self.gpus < 0:
            raise ValueError(f"gpus must be >= 0, got {self.gpus}")
        if self.refine_passes is not None and self.refine_passes < 0:
            raise ValueError(f"refine_passes must be >= 0, got {self.refine_passes}")
        if self.localiser_views is not None \
                and self.localiser_views not in LOCALISER_VIEW_CHOICES:
            raise ValueError(f"localiser_views must be one of {LOCALISER_VIEW_CHOICES}, got "
                             f"{self.localiser_views}")
        if not self.flush_seconds > 0:
            raise ValueError(f"flush_seconds must be > 0, got {self.flush_seconds}")
