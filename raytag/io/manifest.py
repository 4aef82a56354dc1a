"""The zip's ``manifest.cvs`` (sometimes ``manifest.csv``): a hint, never the truth.

Real manifests are comma-separated with an *unquoted* Java date (``Aug 14, 2014``) whose
comma adds a field, and their header changed between versions (``series discription``,
``seriesdescription``, ``seriesid``, ``series id``, ``study date``...). Rows are re-aligned
by anchoring the columns before the date on the left and the columns after it on the
right, so the extra field is absorbed into the date. The DICOM headers decide everything;
the manifest is used only to report files it lists that the zip lacks.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["ManifestEntry", "parse_manifest", "MANIFEST_NAMES", "ManifestTooLarge",
           "MAX_MANIFEST_BYTES", "MAX_MANIFEST_LINES", "MAX_MANIFEST_FIELDS"]

MANIFEST_NAMES = ("manifest.cvs", "manifest.csv")

#: Budgets: real manifests list ~60-200 files in a few kB with ~10 fields per line.
MAX_MANIFEST_BYTES = 1024 * 1024
MAX_MANIFEST_LINES = 20_000
MAX_MANIFEST_FIELDS = 64


class ManifestTooLarge(ValueError):
    """A manifest beyond the budgets above (it is only a hint: it is then ignored)."""

_ALIASES = {
    "filename": {"filename", "file name", "file", "fname"},
    "series_description": {
        "series discription",
        "series description",
        "seriesdescription",
        "seriesdiscription",
        "series_description",
    },
    "series_uid": {"seriesid", "series id", "series_id", "seriesinstanceuid"},
    "date": {"date", "study date", "studydate", "study_date"},
}


@dataclass(frozen=True)
class ManifestEntry:
    """One manifest row: the member name and what the manifest claims about it."""

    filename: str
    series_description: str | None = None
    series_uid: str | None = None


def _canonical(header: str) -> str | None:
    h = re.sub(r"\s+", " ", header.strip().lower())
    for key, names in _ALIASES.items():
        if h in names:
            return key
    return None


def parse_manifest(text: str) -> list[ManifestEntry]:
    """Entries of a manifest; rows without a file name are dropped, never raised on.

    :class:`ManifestTooLarge` beyond :data:`MAX_MANIFEST_BYTES`, ``_LINES`` or ``_FIELDS``
    per line (bounded time and memory whatever the text)."""
    if len(text) > MAX_MANIFEST_BYTES:
        raise ManifestTooLarge(f"manifest of {len(text)} characters")
    lines = [ln for ln in text.replace("\r\n", "\n").split("\n") if ln.strip()]
    if len(lines) > MAX_MANIFEST_LINES:
        raise ManifestTooLarge(f"manifest of {len(lines)} lines")
    if any(ln.count(",") >= MAX_MANIFEST_FIELDS for ln in lines):
        raise ManifestTooLarge(f"manifest line with more than {MAX_MANIFEST_FIELDS} fields")
    if not lines:
        return []
    header = [_canonical(h) for h in lines[0].split(",")]
    if "filename" not in header:
        # Headerless or unknown layout: take any field that looks like a DICOM file name.
        return [
            ManifestEntry(f.strip())
            for ln in lines
            for f in ln.split(",")
            if f.strip().lower().endswith(".dcm")
        ]
    n = len(header)
    date_col = header.index("date") if "date" in header else None
    # The three columns read, by position (each name's columns, last first: a name given
    # twice reads its last column the row has). A column right of the date moves right by
    # the fields its unquoted comma(s) add (real manifests have one on every row).
    wanted = [[i for i in range(n - 1, -1, -1) if header[i] == k]
              for k in ("filename", "series_description", "series_uid")]
    entries = []
    for ln in lines[1:]:
        fields = ln.split(",")
        shift = len(fields) - n if date_col is not None and len(fields) > n else 0
        got = []
        for columns in wanted:
            value = None
            for i in columns:
                if shift and i > date_col:
                    i += shift
                if i < len(fields):  # short rows: missing columns
                    value = fields[i].strip() or None
                    break
            got.append(value)
        if got[0]:
            entries.append(ManifestEntry(*got))
    return entries
