"""The one exception type of the ingest; it never escapes :func:`raytag.io.read_participant`."""

from __future__ import annotations

from raytag.failures import Reason


class IngestError(Exception):
    """Input that cannot be read; ``str(exc)`` is the human-readable message for the row and
    ``reason`` the :class:`~raytag.failures.Reason` (set where the problem is found)."""

    def __init__(self, message: str, reason: Reason = Reason.UNEXPECTED):
        super().__init__(message)
        self.reason = reason
