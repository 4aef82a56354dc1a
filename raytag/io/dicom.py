"""DICOM headers and pixels of single-frame MR images, read from bytes.

Headers are read with ``stop_before_pixels`` so that choosing series costs no pixel
decoding; only the chosen series' frames are decoded, by :func:`decode_frame`.
Geometry follows DICOM's patient coordinate system: ``ImageOrientationPatient`` holds
the row and column direction cosines, their cross product is the slice normal, and a
slice's position is ``ImagePositionPatient . normal`` in mm.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
import pydicom
from pydicom.errors import InvalidDicomError

from raytag.constants import MAX_MATRIX_SIZE
from raytag.failures import Reason
from raytag.io.errors import IngestError

__all__ = ["FrameHeader", "read_header", "decode_frame"]

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
    tagging series made of such files fails with that reason.
    """
    try:
        ds = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True)
    except InvalidDicomError:
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
    problem, why = None, None
    if modality != "MR":
        problem, why = f"not an MR image (Modality {modality or 'missing'!r})", Reason.NOT_AN_IMAGE
    elif sop and sop not in _MR_IMAGE_SOP_CLASSES:
        problem, why = f"not an MR image storage object (SOP class {sop})", Reason.NOT_AN_IMAGE
    elif rows <= 0 or cols <= 0:
        problem, why = "no image matrix in the header (Rows/Columns missing)", Reason.NOT_AN_IMAGE
    elif rows > MAX_MATRIX_SIZE or cols > MAX_MATRIX_SIZE:
        problem = f"declared matrix {rows}x{cols} exceeds the limit {MAX_MATRIX_SIZE}"
        why = Reason.OVER_LIMITS
    elif _int_or_none(getattr(ds, "NumberOfFrames", 1)) not in (None, 1):
        problem = "multi-frame DICOM objects are not supported (expected one file per frame)"
        why = Reason.BAD_HEADER
    elif spacing is None or not all(np.isfinite(spacing)) or min(spacing) <= 0:
        problem, why = "PixelSpacing missing or invalid", Reason.BAD_HEADER
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
    """Decode one frame's pixels as uint16 ``(rows, cols)`` stored values.

    Checks before decoding that a decoder exists for compressed data and that the pixel
    data is as long as the header's matrix claims (no truncated frames slip through).
    Signed data are clipped at 0 (MR magnitudes are non-negative); no rescale is applied.
    """
    _check_decoder(header.transfer_syntax)
    try:
        ds = pydicom.dcmread(io.BytesIO(data))
        arr = ds.pixel_array
    except IngestError:
        raise
    except Exception as exc:  # noqa: BLE001 - pydicom raises many types; all mean "unreadable"
        raise IngestError(f"{header.member}: pixel data cannot be decoded ({exc})",
                          Reason.BAD_PIXEL_DATA) from exc
    if arr.shape != (header.rows, header.cols):
        raise IngestError(
            f"{header.member}: pixel data shape {arr.shape} does not match header "
            f"{header.rows}x{header.cols}", Reason.BAD_PIXEL_DATA
        )
    if arr.dtype.kind == "f" or np.iinfo(arr.dtype).max > np.iinfo(np.uint16).max:
        arr = np.clip(arr, 0, np.iinfo(np.uint16).max)
    elif arr.dtype.kind == "i":
        arr = np.clip(arr, 0, None)
    return arr.astype(np.uint16, copy=False)

