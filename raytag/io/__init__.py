"""All file access of raytag: storage URIs, UK Biobank tagging zips, DICOM.

UK Biobank quirks live here and nowhere else. Public entry points:

- :func:`read_participant` - one participant zip (path, ``s3://`` URI, or ``(name, bytes)``)
  -> list of :class:`SliceRecord`;
- :mod:`raytag.io.storage` - URI -> ``pyarrow.fs`` filesystem, read/write/list;
- :mod:`raytag.io.ukb_writer` - write UK Biobank-style zips (synthetic cohorts, fixtures).
"""

from raytag.io.errors import IngestError
from raytag.io.participant import read_participant
from raytag.io.records import SliceRecord
from raytag.io.ukb_names import VisitId, parse_zip_name

__all__ = ["read_participant", "SliceRecord", "IngestError", "VisitId", "parse_zip_name"]
