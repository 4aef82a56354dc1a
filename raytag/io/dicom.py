"""DICOM headers and pixels of single-frame MR images, read from bytes.

Headers are read with ``stop_before_pixels`` so that choosing series costs no pixel
decoding; only the chosen series' frames are decoded, by :func:`decode_frame`.
Geometry follows DICOM's patient coordinate system: ``ImageOrientationPatient`` holds
the row and column direction cosines, their cross product is the slice normal, and a
slice's position is ``ImagePositionPatient . normal`` in mm.
"""

from __future__ import annotations

import io
import zlib
from dataclasses import dataclass

import numpy as np
import pydicom
from pydicom.errors import InvalidDicomError

from raytag.constants import MAX_MATRIX_SIZE, MAX_MEMBER_BYTES
from raytag.failures import Reason
from raytag.io.errors import IngestError

__all__ = ["FrameHeader", "read_header", "decode_frame", "header_problem", "check_deflate"]

_MR_IMAGE_SOP_CLASSES = {
    "1.2.840.10008.5.1.4.1.1.4",  # MR Image Storage
    "1.2.840.10008.5.1.4.1.1.4.1",  # Enhanced MR Image Storage
}


@dataclass
class FrameHeader:
    """What series selection and frame ordering need from one DICOM file.

    ``problem`` is set (and the frame unusable) when the file is a tagging-series member
    that is not a valid MR image; ``None`` otherwise.
    """

    member: str
    series_uid: str
    series_description: str
    series_number: int | None
    acquisition_time: str
    instance_number: int | None
    trigger_time_ms: float | None
    cardiac_number_of_images: int | None
    rows: int
    cols: int
    pixel_spacing_mm: tuple[float, float] | None
    position_mm: float | None
    transfer_syntax: str
    problem: str | None = None
    problem_reason: Reason | None = None
    # where the pixels are in the file, when the fast path parsed it (raytag.io.fastdicom)
    pixel_offset: int | None = None
    pixel_length: int | None = None
    bits_allocated: int = 16
    signed: bool = False
    samples: int = 1


def _int_or_none(value) -> int | None:
    try:
        return int(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def _float_or_none(value) -> float | None:
    try:
        return float(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def _position_along_normal(ds) -> float | None:
    try:
        o = np.asarray([float(v) for v in ds.ImageOrientationPatient], dtype=float)
        p = np.asarray([float(v) for v in ds.ImagePositionPatient], dtype=float)
    except (AttributeError, TypeError, ValueError):
        return None
    if o.shape != (6,) or p.shape != (3,):
        return None
    normal = np.cross(o[:3], o[3:])
    norm = np.linalg.norm(normal)
    return float(p @ normal / norm) if norm > 0 else None


def read_header(member: str, data: bytes) -> FrameHeader | None:
    """Parse one file's header without its pixels.

    Returns None for files that are not DICOM at all (readme, thumbnails: ignored).
    A DICOM that is not an MR image gets ``problem`` set rather than raising, so that a
    tagging series made of such files fails with that reason. A Deflated dataset that
    inflates past the member budget raises :class:`IngestError` (``over_limits``).
    """
    check_deflate(data)  # a bomb raises: the caller fails the participant
    try:
        ds = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True)
    except InvalidDicomError:
        try:  # a Part-10 dataset without the 128-byte preamble and "DICM" is still DICOM
            ds = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True, force=True)
            if not hasattr(ds, "SeriesInstanceUID"):
                return None
        except Exception:  # noqa: BLE001
            return None
    except Exception:  # noqa: BLE001 - a corrupt header raises anything from struct to Unicode
        return None
    sop = str(getattr(ds, "SOPClassUID", "") or "")
    modality = str(getattr(ds, "Modality", "") or "")
    rows = _int_or_none(getattr(ds, "Rows", None)) or 0
    cols = _int_or_none(getattr(ds, "Columns", None)) or 0
    spacing = None
    try:
        ps = ds.PixelSpacing
        spacing = (float(ps[0]), float(ps[1]))
    except (AttributeError, TypeError, ValueError, IndexError):
        pass
    problem, why = header_problem(modality, sop, rows, cols,
                                  _int_or_none(getattr(ds, "NumberOfFrames", 1)), spacing)
    meta = getattr(ds, "file_meta", None)
    tsyntax = str(getattr(meta, "TransferSyntaxUID", "") or "1.2.840.10008.1.2")
    return FrameHeader(
        member=member,
        series_uid=str(getattr(ds, "SeriesInstanceUID", "") or ""),
        series_description=str(getattr(ds, "SeriesDescription", "") or ""),
        series_number=_int_or_none(getattr(ds, "SeriesNumber", None)),
        acquisition_time=str(getattr(ds, "AcquisitionTime", "") or getattr(ds, "SeriesTime", "")
                             or ""),
        instance_number=_int_or_none(getattr(ds, "InstanceNumber", None)),
        trigger_time_ms=_float_or_none(getattr(ds, "TriggerTime", None)),
        cardiac_number_of_images=_int_or_none(getattr(ds, "CardiacNumberOfImages", None)),
        rows=rows,
        cols=cols,
        pixel_spacing_mm=spacing,
        position_mm=_position_along_normal(ds),
        transfer_syntax=tsyntax,
        problem=problem,
        problem_reason=why,
    )


#: Deflated Explicit VR Little Endian: the whole dataset is one zlib stream, which pydicom
#: inflates without a limit; raytag inflates it first, bounded (a 2 KB member can hold 2 GB).
DEFLATED = "1.2.840.10008.1.2.1.99"


def check_deflate(data: bytes, limit: int = MAX_MEMBER_BYTES) -> None:
    """Refuse a Deflated-transfer-syntax file that inflates past ``limit`` bytes, in time
    and memory bounded by the limit (:class:`IngestError`, ``over_limits``)."""
    if DEFLATED.encode() not in data[:4096]:
        return
    # The deflated stream starts after the preamble, "DICM" and the file meta group, whose
    # first element (0002,0000) UL holds the length of the rest of the group.
    if data[128:132] != b"DICM" or data[132:136] != b"\x02\x00\x00\x00":
        return  # no standard meta group: pydicom's own reading decides
    start = 132 + 12 + int.from_bytes(data[140:144], "little")
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    try:
        out = inflater.decompress(data[start:], limit + 1)
    except zlib.error:
        return  # corrupt: pydicom's own reading fails it
    if len(out) > limit or inflater.unconsumed_tail:
        raise IngestError(f"deflated dataset inflates past the limit of {limit} bytes",
                          Reason.OVER_LIMITS)


def header_problem(modality: str, sop: str, rows: int, cols: int, frames,
                   spacing) -> tuple[str | None, Reason | None]:
    """Why a tagging-series member is unusable (and its reason), or (None, None).

    The one set of rules of both header parsers (this module and
    :mod:`raytag.io.fastdicom`)."""
    if modality != "MR":
        return f"not an MR image (Modality {modality[:40] or 'missing'!r})", \
            Reason.NOT_AN_IMAGE
    if sop and sop not in _MR_IMAGE_SOP_CLASSES:
        return f"not an MR image storage object (SOP class {sop[:64]})", Reason.NOT_AN_IMAGE
    if rows <= 0 or cols <= 0:
        return "no image matrix in the header (Rows/Columns missing)", Reason.NOT_AN_IMAGE
    if rows > MAX_MATRIX_SIZE or cols > MAX_MATRIX_SIZE:
        return (f"declared matrix {rows}x{cols} exceeds the limit {MAX_MATRIX_SIZE}",
                Reason.OVER_LIMITS)
    if frames not in (None, 1):
        return ("multi-frame DICOM objects are not supported (expected one file per frame)",
                Reason.BAD_HEADER)
    if spacing is None or not all(np.isfinite(spacing)) or min(spacing) <= 0:
        return "PixelSpacing missing or invalid", Reason.BAD_HEADER
    return None, None


def _check_decoder(tsyntax: str) -> None:
    uid = pydicom.uid.UID(tsyntax)
    if not uid.is_compressed:
        return
    try:
        decoder = pydicom.pixels.get_decoder(uid)
    except NotImplementedError as exc:
        raise IngestError(f"pixel data in unsupported transfer syntax {uid.name} ({uid})",
                          Reason.NO_PIXEL_DECODER) from exc
    if not decoder.is_available:
        raise IngestError(
            f"compressed pixel data ({uid.name}, {uid}) but no decoder is installed: "
            "install raytag's 'jpeg' extra (pip install 'raytag[jpeg]') or another pydicom "
            "pixel-data plugin for this transfer syntax", Reason.NO_PIXEL_DECODER
        )


def decode_frame(header: FrameHeader, data: bytes) -> np.ndarray:
    """Decode one frame's stored values ``(rows, cols)``: unsigned or signed integers as
    stored (int64, no rescale; the slice decides how to fit them into uint16, see
    :func:`raytag.io.participant`), floats as float64.

    Refuses (:class:`IngestError`): no decoder for compressed data; uncompressed pixel
    data whose length is not what Rows x Columns x bits need (pydicom would silently cut
    or pad the image); a decoded shape that differs from the header; NaN or infinite
    float pixels.
    """
    _check_decoder(header.transfer_syntax)
    check_deflate(data)
    try:
        ds = pydicom.dcmread(io.BytesIO(data), force=True)
        _check_pixel_length(ds, header)
        arr = ds.pixel_array
    except IngestError:
        raise
    except Exception as exc:  # noqa: BLE001 - pydicom raises many types; all mean "unreadable"
        raise IngestError(f"{header.member}: pixel data cannot be decoded ({str(exc)[:200]})",
                          Reason.BAD_PIXEL_DATA) from exc
    if arr.shape != (header.rows, header.cols):
        raise IngestError(
            f"{header.member}: pixel data shape {arr.shape} does not match header "
            f"{header.rows}x{header.cols}", Reason.BAD_PIXEL_DATA
        )
    if arr.dtype.kind == "f":
        if not np.isfinite(arr).all():
            raise IngestError(f"{header.member}: NaN or infinite pixel values",
                              Reason.BAD_IMAGE_CONTENT)
        return arr.astype(np.float64)
    return arr.astype(np.int64)


def _check_pixel_length(ds, header: FrameHeader) -> None:
    """Uncompressed pixel data must be exactly Rows x Columns x samples x bytes long
    (plus one pad byte when odd)."""
    if pydicom.uid.UID(header.transfer_syntax or "1.2.840.10008.1.2").is_compressed:
        return
    if "PixelData" not in ds:
        return  # float pixel data and friends: pydicom checks those
    bits = int(getattr(ds, "BitsAllocated", 16) or 16)
    samples = int(getattr(ds, "SamplesPerPixel", 1) or 1)
    need = header.rows * header.cols * samples * bits // 8
    have = len(ds.PixelData)
    if have not in (need, need + 1):
        raise IngestError(f"{header.member}: pixel data has {have} bytes, Rows x Columns "
                          f"({header.rows}x{header.cols}, {bits} bits) need {need}",
                          Reason.BAD_PIXEL_DATA)

