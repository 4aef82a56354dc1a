"""Typed training settings: one frozen dataclass from the CLI through Ray Train to each worker.

:class:`TrainSettings` is what :func:`raytag.train.driver.train_network` builds and what
:func:`raytag.train.loop.train_loop_per_worker` reads (Ray Train passes it inside its
``train_loop_config`` dict under ``"settings"``; it pickles). Every default has one home:
learning rates and the strain term's weight in :mod:`raytag.constants`
(``DEFAULT_LR``, ``STRAIN_WEIGHT``). Imports neither torch nor Ray.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from raytag.constants import DEFAULT_LR, STRAIN_WEIGHT

__all__ = ["TrainSettings", "KINDS"]

#: The networks raytag trains.
KINDS = ("localiser", "tracker", "ed")


@dataclass(frozen=True)
class TrainSettings:
    """One network's training run.

    ``kind``: one of :data:`KINDS`; ``preset``: network size (``lite``/``paper``);
    ``epochs`` >= 1; ``batch_size`` >= 1 per worker; ``lr``: base learning rate (None: the
    kind's ``DEFAULT_LR``); ``seed``; ``patience``: stop this many epochs after the
    best validation score (None: never); ``augment``: overrides of the augmentation
    defaults, or False for none; ``strain_weight``: the tracker loss's strain term;
    ``training``: the description stored in checkpoints; ``init_from``: a checkpoint whose
    weights start a new run; ``inject_failure``: test/chaos hook
    (``{"epoch", "rank", "marker"}``).
    """

    kind: str
    preset: str = "lite"
    epochs: int = 30
    batch_size: int = 8
    lr: float | None = None
    seed: int = 0
    patience: int | None = None
    augment: dict | bool = field(default_factory=dict)
    strain_weight: float = STRAIN_WEIGHT
    training: dict = field(default_factory=dict)
    init_from: str | None = None
    inject_failure: dict | None = None

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {self.kind!r}")
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError("epochs and batch_size must be >= 1")
        if self.lr is not None and not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if self.patience is not None and self.patience < 1:
            raise ValueError(f"patience must be >= 1, got {self.patience}")
        if self.augment is True:
            object.__setattr__(self, "augment", {})

    @property
    def base_lr(self) -> float:
        """The learning rate the schedule starts from."""
        return self.lr if self.lr is not None else DEFAULT_LR[self.kind]
