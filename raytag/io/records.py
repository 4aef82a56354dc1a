"""What the ingest returns: one :class:`SliceRecord` per tagged slice of a participant visit."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from raytag.constants import SLICE_LABELS, STATUS_FAILED, STATUS_OK
from raytag.failures import Reason

__all__ = ["SliceRecord", "MAX_ERROR_CHARS"]

#: Longest ``error`` text kept in a results row.
MAX_ERROR_CHARS = 500


@dataclass
class SliceRecord:
    """One tagged short-axis slice of one participant visit, ready for the networks.

    Identity: ``eid`` (string), ``instance`` (visit, int; ``None`` if the zip name did
    not parse), ``array`` (the zip name's array index), ``slice_index`` (1 basal, 2 mid,
    3 apical; ``None`` for a participant that failed before its slices were known) and
    ``slice_label``.

    Pixels (``None`` on failed records):

    - ``frames``: uint16 ``(20, rows, cols)``, stored values as in the DICOM (no rescale),
      ordered by trigger time, padded with zero frames or truncated to 20;
    - ``frame_valid``: bool ``(20,)``, False for padding;
    - ``trigger_time_ms``: float64 ``(20,)``, NaN for padding;
    - ``pixel_spacing_mm``: float64 ``(2,)`` = (row spacing, column spacing).

    ``n_frames`` is the number of frames acquired (before padding/truncation).
    ``status`` is ``ok`` or ``failed``; ``error`` the message when failed, ``reason`` its
    :class:`~raytag.failures.Reason` value; ``stage`` where it failed (``ingest`` here).
    ``qc_flags`` are warnings that do not fail the slice.
    """

    eid: str
    instance: int | None
    slice_index: int | None
    status: str = STATUS_OK
    error: str | None = None
    reason: str | None = None
    stage: str | None = None
    qc_flags: list[str] = field(default_factory=list)
    frames: np.ndarray | None = None
    frame_valid: np.ndarray | None = None
    trigger_time_ms: np.ndarray | None = None
    pixel_spacing_mm: np.ndarray | None = None
    n_frames: int = 0
    source_uri: str = ""
    series_uid: str | None = None
    series_number: int | None = None
    series_description: str | None = None
    n_candidate_series: int = 0
    slice_position_mm: float | None = None
    array: int | None = None

    @property
    def slice_label(self) -> str | None:
        """``basal`` / ``mid`` / ``apical`` from ``slice_index`` (None if unknown)."""
        return SLICE_LABELS.get(self.slice_index) if self.slice_index is not None else None

    @property
    def ok(self) -> bool:
        return self.status == STATUS_OK

    @property
    def shape(self) -> tuple[int, int] | None:
        """``(rows, cols)`` of the stored matrix, read from the header."""
        return None if self.frames is None else tuple(self.frames.shape[-2:])

    def fail(self, message: str, stage: str = "ingest",
             reason: Reason | str = Reason.UNEXPECTED) -> SliceRecord:
        """Mark failed with a message and a :class:`~raytag.failures.Reason` (dropping
        pixels); returns self."""
        self.status = STATUS_FAILED
        # bounded: an error is a sentence, never a dump of whatever the input held
        self.error = message if len(message) <= MAX_ERROR_CHARS else \
            message[: MAX_ERROR_CHARS - 1] + "\u2026"
        self.reason = str(reason)
        self.stage = stage
        self.frames = self.frame_valid = self.trigger_time_ms = None
        return self

    def __repr__(self) -> str:  # arrays would flood a notebook
        extra = f" error={self.error!r}" if self.error else ""
        shape = f" frames={self.n_frames} {self.shape}" if self.frames is not None else ""
        return (
            f"SliceRecord(eid={self.eid!r}, instance={self.instance}, "
            f"slice={self.slice_index}/{self.slice_label}, status={self.status}{shape}"
            f"{extra}, qc={self.qc_flags})"
        )

