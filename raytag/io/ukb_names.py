"""UK Biobank naming: bulk zip names and tagging series descriptions."""

from __future__ import annotations

import re
from dataclasses import dataclass

from raytag.constants import UKB_FIELD_TAGGING
from raytag.failures import Reason
from raytag.io.errors import IngestError

__all__ = ["VisitId", "parse_zip_name", "tagging_slice_index", "TAGGING_SERIES_RE"]

_ZIP_RE = re.compile(r"^(?P<eid>\d+)_(?P<field>\d+)_(?P<instance>\d+)_(?P<array>\d+)\.zip$", re.I)

#: Tagging series: ``CINE_tagging_3sl_SAX_b1s`` (b1 basal, b2 mid, b3 apical); the
#: trailing ``s`` is sometimes absent and the case varies between software versions.
TAGGING_SERIES_RE = re.compile(r"cine_tagging_3sl_SAX_b(\d+)s?\b", re.I)


@dataclass(frozen=True)
class VisitId:
    """A participant visit from ``<eid>_<field>_<instance>_<array>.zip``."""

    eid: str
    instance: int
    array: int


def parse_zip_name(name: str) -> VisitId:
    """Parse a bulk zip's base name; :class:`IngestError` names what is wrong."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    m = _ZIP_RE.match(base)
    if not m:
        raise IngestError(
            f"zip name {base!r} does not follow <eid>_{UKB_FIELD_TAGGING}_<instance>_<array>.zip",
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
