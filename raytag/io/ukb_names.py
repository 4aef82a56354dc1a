"""UK Biobank naming: bulk zip names and tagging series descriptions."""

from __future__ import annotations

import re
from dataclasses import dataclass

from raytag.constants import UKB_FIELD_TAGGING
from raytag.failures import Reason
from raytag.io.errors import IngestError

__all__ = ["VisitId", "parse_zip_name", "tagging_slice_index", "TAGGING_SERIES_RE"]

# ASCII digits only (\d would take any Unicode digit, aliasing identities), bounded lengths
# (an instance number beyond int64 must be a bad name, not an OverflowError downstream).
_ZIP_RE = re.compile(
    r"^(?P<eid>[0-9]{1,15})_(?P<field>[0-9]{1,9})_(?P<instance>[0-9]{1,6})_(?P<array>[0-9]{1,6})"
    r"\.zip$", re.IGNORECASE | re.ASCII)

#: Tagging series: ``CINE_tagging_3sl_SAX_b1s`` (b1 basal, b2 mid, b3 apical); the
#: trailing ``s`` is sometimes absent and the case varies between software versions.
TAGGING_SERIES_RE = re.compile(r"cine_tagging_3sl_SAX_b([0-9]+)s?\b", re.I | re.ASCII)


@dataclass(frozen=True)
class VisitId:
    """A participant visit from ``<eid>_<field>_<instance>_<array>.zip``."""

    eid: str
    instance: int
    array: int


def parse_zip_name(name: str) -> VisitId:
    """Parse a bulk zip's base name; :class:`IngestError` names what is wrong."""
    # "/" only: a backslash is part of a POSIX file name, not a separator
    base = str(name).rsplit("/", 1)[-1]
    m = _ZIP_RE.match(base)
    if not m:
        raise IngestError(
            f"zip name {base[:120]!r} does not follow "
            f"<eid>_{UKB_FIELD_TAGGING}_<instance>_<array>.zip (ASCII digits)",
            Reason.BAD_NAME,
        )
    if int(m["field"]) != UKB_FIELD_TAGGING:
        raise IngestError(
            f"zip {base!r} is UK Biobank field {m['field']}, not CMR tagging ({UKB_FIELD_TAGGING})",
            Reason.WRONG_FIELD,
        )
    return VisitId(eid=m["eid"], instance=int(m["instance"]), array=int(m["array"]))


def tagging_slice_index(series_description: str | None) -> int | None:
    """The ``N`` of ``..._b<N>s`` for a tagging series, or None for any other series."""
    if not series_description:
        return None
    m = TAGGING_SERIES_RE.search(str(series_description))
    return int(m.group(1)) if m else None
