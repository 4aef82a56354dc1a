"""Why a participant or slice failed: a bounded set of reasons, raised where it happens.

Every ``failed`` row carries ``reason`` (one of :class:`Reason`'s values) beside its
human-readable ``error``. Telemetry tags, the run summary and the report count reasons,
never message text. ``transient`` reasons (storage trouble) are worth retrying: a rerun
retries them by default (``raytag run --retry-failed``).
"""

from __future__ import annotations

from enum import Enum

__all__ = ["Reason", "TRANSIENT", "reason_of"]


class Reason(str, Enum):
    """Failure reasons (values are the results table's ``reason`` column)."""

    # reading the object
    MISSING_OBJECT = "missing_object"
    UNSAFE_INPUT = "unsafe_input"
    STORAGE_ERROR = "storage_error"
    OVER_LIMITS = "over_limits"
    # the zip
    EMPTY_OBJECT = "empty_object"
    NOT_A_ZIP = "not_a_zip"
    CORRUPT_ZIP = "corrupt_zip"
    UNSAFE_ZIP = "unsafe_zip"
    BAD_NAME = "bad_name"
    WRONG_FIELD = "wrong_field"
    NO_TAGGING_SERIES = "no_tagging_series"
    SLICE_MISSING = "slice_missing"
    # the DICOM series
    NOT_AN_IMAGE = "not_an_image"
    BAD_HEADER = "bad_header"
    NO_PIXEL_DECODER = "no_pixel_decoder"
    BAD_PIXEL_DATA = "bad_pixel_data"
    MISMATCHED_FRAMES = "mismatched_frames"
    UNORDERED_FRAMES = "unordered_frames"
    BAD_IMAGE_CONTENT = "bad_image_content"
    # later stages
    MODEL_ERROR = "model_error"
    STRAIN_ERROR = "strain_error"
    UNEXPECTED = "unexpected"

    def __str__(self) -> str:
        return self.value


#: Reasons that may go away by themselves (throttling, timeouts, a flaky network).
TRANSIENT = frozenset({Reason.STORAGE_ERROR})


def reason_of(exc: BaseException, default: Reason = Reason.UNEXPECTED) -> Reason:
    """The reason an exception carries (``exc.reason``), else ``default``."""
    r = getattr(exc, "reason", None)
    return r if isinstance(r, Reason) else default
