"""The one exception type of the ingest; it never escapes :func:`raytag.io.read_participant`."""

from __future__ import annotations


class IngestError(Exception):
    """Input that cannot be read; ``str(exc)`` is the human-readable reason for the row."""
