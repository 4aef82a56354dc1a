"""Write UK Biobank-style CMR tagging zips (field 20211): one DICOM file per frame + manifest.

Used by the synthetic generator, the demo and the test fixtures. The layout follows the
bulk-download zips: ``<eid>_20211_<instance>_<array>.zip`` holding single-frame MR Image
Storage files (one series per slice, ``SeriesDescription`` ``CINE_tagging_3sl_SAX_b<N>s``)
and a ``manifest.cvs`` whose Java-formatted date carries an unquoted comma.

Everything here builds objects in memory; nothing touches the filesystem except
:func:`raytag.io.storage.write_bytes`, which callers use to store the result.
"""

from __future__ import annotations

import hashlib
import io
import struct
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from types import SimpleNamespace

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid

from raytag.constants import UKB_FIELD_TAGGING

__all__ = [
    "SeriesSpec",
    "zip_name",
    "frame_dataset",
    "dataset_bytes",
    "series_datasets",
    "manifest_text",
    "zip_bytes",
    "frame_uid",
    "series_files",
    "participant_datasets",
    "assemble_zip",
    "participant_zip",
]

#: Row and column direction cosines of a typical short-axis plane (unit, orthogonal).
DEFAULT_ORIENTATION = (0.6, 0.8, 0.0, -0.3, 0.225, -0.927)


@dataclass
class SeriesSpec:
    """One tagged slice as stored: a cine of ``(T, rows, cols)`` uint16 frames.

    ``position_mm`` is the slice position along the plane normal (mm); ``series_number``
    and ``acquisition_time`` (DICOM TM, ``HHMMSS.FF``) feed repeated-series selection.
    ``cardiac_number_of_images`` defaults to ``T``. ``description`` defaults to the
    UK Biobank ``CINE_tagging_3sl_SAX_b<slice_index>s``.
    """

    slice_index: int
    frames: np.ndarray
    pixel_spacing_mm: tuple[float, float] = (1.3671875, 1.3671875)
    trigger_times_ms: Sequence[float] | None = None
    position_mm: float | None = None
    series_number: int | None = None
    acquisition_time: str = "101500.000000"
    cardiac_number_of_images: int | None = None
    description: str | None = None
    orientation: Sequence[float] = DEFAULT_ORIENTATION
    series_uid: str = field(default_factory=generate_uid)


def zip_name(eid: int | str, instance: int = 2, array: int = 0) -> str:
    """``<eid>_20211_<instance>_<array>.zip``."""
    return f"{eid}_{UKB_FIELD_TAGGING}_{instance}_{array}.zip"


def frame_uid(series_uid: str, frame: int) -> str:
    """A deterministic SOPInstanceUID of fixed length (44 characters, a 2.25 UUID-style UID).

    Fixed length lets :func:`series_files` patch one serialised header per frame.
    """
    digest = hashlib.sha256(f"{series_uid}/{frame}".encode()).digest()
    return f"2.25.{10**38 + int.from_bytes(digest, 'big') % (9 * 10**38)}"


def _ds_ms(value: float) -> str:
    """A time in ms as a DICOM DS string, to the microsecond (one formatting for every path)."""
    return str(round(float(value), 3))


def _normal(orientation: Sequence[float]) -> np.ndarray:
    o = np.asarray(orientation, dtype=float)
    return np.cross(o[:3], o[3:])


def frame_dataset(
    spec: SeriesSpec,
    frame: int,
    eid: str,
    study_uid: str,
    instance_number: int | None = None,
) -> Dataset:
    """The DICOM dataset of frame ``frame`` of ``spec`` (uncompressed, explicit VR LE)."""
    pixels = np.ascontiguousarray(spec.frames[frame], dtype=np.uint16)
    rows, cols = pixels.shape
    t = len(spec.frames)
    trig = (
        float(spec.trigger_times_ms[frame])
        if spec.trigger_times_ms is not None
        else 41.0 * frame
    )
    position = spec.position_mm if spec.position_mm is not None else -20.0 * spec.slice_index
    # Image position = slice centre offset along the normal, shifted to the top-left pixel.
    o = np.asarray(spec.orientation, dtype=float)
    sp_row, sp_col = spec.pixel_spacing_mm
    centre = _normal(o) * position
    ipp = centre - o[:3] * sp_col * (cols - 1) / 2 - o[3:] * sp_row * (rows - 1) / 2

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = MRImageStorage
    meta.MediaStorageSOPInstanceUID = frame_uid(spec.series_uid, frame)
    meta.TransferSyntaxUID = ExplicitVRLittleEndian

    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = MRImageStorage
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "MR"
    ds.Manufacturer = "SIEMENS"
    ds.ManufacturerModelName = "Aera"
    ds.MagneticFieldStrength = 1.5
    ds.PatientID = str(eid)
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = spec.series_uid
    ds.SeriesNumber = spec.series_number if spec.series_number is not None else spec.slice_index
    ds.SeriesDescription = spec.description or f"CINE_tagging_3sl_SAX_b{spec.slice_index}s"
    ds.InstanceNumber = instance_number if instance_number is not None else frame + 1
    ds.AcquisitionTime = spec.acquisition_time
    ds.SeriesTime = spec.acquisition_time
    ds.TriggerTime = _ds_ms(trig)
    ds.CardiacNumberOfImages = (
        spec.cardiac_number_of_images if spec.cardiac_number_of_images is not None else t
    )
    ds.FlipAngle = 12
    ds.RepetitionTime = 8.2
    ds.EchoTime = 3.9
    ds.SliceThickness = 8.0
    ds.ImageOrientationPatient = [round(float(v), 6) for v in o]
    ds.ImagePositionPatient = [round(float(v), 4) for v in ipp]
    ds.PixelSpacing = [float(sp_row), float(sp_col)]
    ds.Rows = rows
    ds.Columns = cols
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 16
    ds.BitsStored = 12
    ds.HighBit = 11
    ds.PixelRepresentation = 0
    ds.PixelData = pixels.tobytes()
    return ds


def dataset_bytes(ds: Dataset) -> bytes:
    """Serialise a dataset as a DICOM Part 10 file."""
    buf = io.BytesIO()
    pydicom.dcmwrite(buf, ds, enforce_file_format=True)
    return buf.getvalue()


def series_datasets(spec: SeriesSpec, eid: str, study_uid: str) -> list[Dataset]:
    """All frames of one series as datasets, in acquisition order."""
    return [frame_dataset(spec, f, eid, study_uid) for f in range(len(spec.frames))]


def manifest_text(rows: Sequence[tuple[str, Dataset]], header_style: str = "v1") -> str:
    """A ``manifest.cvs`` as UK Biobank writes it: comma-separated, dates unquoted.

    ``header_style`` ``"v1"`` spells ``series discription`` (sic) and ``seriesid``;
    ``"v2"`` uses ``seriesdescription``/``series id``/``study date``, without the ``aet`` column.
    The date is Java's ``MMM d, yyyy`` - its comma is *not* quoted, like the real files.
    """
    if header_style == "v1":
        header = "filename,patientid,studyid,aet,date,seriesid,series discription,instance"
    elif header_style == "v2":
        header = "filename,patientid,studyid,study date,series id,seriesdescription,instance"
    else:
        raise ValueError(f"unknown header_style {header_style!r}")
    lines = [header]
    for name, ds in rows:
        fields = [name, str(ds.PatientID), str(ds.StudyInstanceUID)]
        if header_style == "v1":
            fields.append("UKBB_AERA")
        fields += ["Aug 14, 2014", str(ds.SeriesInstanceUID), str(ds.SeriesDescription)]
        fields.append(str(ds.InstanceNumber))
        lines.append(",".join(fields))
    return "\n".join(lines) + "\n"


#: Member timestamps are fixed so that the same content always gives the same zip bytes.
_ZIP_DATE_TIME = (2014, 8, 14, 10, 15, 0)


def zip_bytes(
    members: dict[str, bytes] | Sequence[tuple[str, bytes]], compresslevel: int = 1
) -> bytes:
    """A deflated zip of ``name -> bytes`` members, in the given order, byte-reproducible.

    Level 1 deflate: DICOM pixel data compresses about as well as at level 6, much faster.
    """
    items = members.items() if isinstance(members, dict) else members
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED,
                         compresslevel=compresslevel) as zf:
        for name, data in items:
            info = zipfile.ZipInfo(name, date_time=_ZIP_DATE_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, data, compresslevel=compresslevel)
    return buf.getvalue()


def participant_datasets(
    eid: int | str, series: Sequence[SeriesSpec], study_uid: str | None = None
) -> list[tuple[str, Dataset]]:
    """``(member name, dataset)`` of every frame of every series, one study, UID file names.

    UIDs are deterministic given the series UIDs (and ``study_uid``, random when None).
    """
    study_uid = study_uid or generate_uid()
    return [
        (f"{ds.SOPInstanceUID}.dcm", ds)
        for spec in series
        for ds in series_datasets(spec, str(eid), study_uid)
    ]


def _element(tag: tuple[int, int], vr: bytes, value: bytes) -> bytes:
    """One explicit-VR little-endian element with a 2-byte length (string VRs)."""
    if len(value) % 2:
        value += b"\x00" if vr == b"UI" else b" "
    return struct.pack("<HH", *tag) + vr + struct.pack("<H", len(value)) + value


def series_files(spec: SeriesSpec, eid: str, study_uid: str) -> list[tuple[str, bytes, object]]:
    """``(member name, file bytes, manifest info)`` of every frame of one series, fast.

    pydicom serialises frame 0 once; every other frame is that header with its
    per-frame elements (SOP Instance UIDs, InstanceNumber, TriggerTime) and pixel data
    replaced, which is ~20x faster than one ``dcmwrite`` per frame and gives the same bytes.
    """
    template = frame_dataset(spec, 0, eid, study_uid)
    head = dataset_bytes(template)
    pixel_at = head.rfind(b"\xe0\x7f\x10\x00OW")  # (7FE0,0010) PixelData: the last element
    header = head[:pixel_at]
    pixel_tag = head[pixel_at : pixel_at + 12]  # tag, VR, reserved, 4-byte length
    varying = {  # tag bytes + VR -> tag, for the elements that differ between frames
        b"\x02\x00\x03\x00UI": (0x0002, 0x0003),
        b"\x08\x00\x18\x00UI": (0x0008, 0x0018),
        b"\x18\x00\x60\x10DS": (0x0018, 0x1060),
        b"\x20\x00\x13\x00IS": (0x0020, 0x0013),
    }
    cuts = []
    for key, tag in varying.items():
        at = header.find(key)
        if at < 0:
            raise RuntimeError(f"element {tag} not found in the serialised header")
        length = struct.unpack("<H", header[at + 6 : at + 8])[0]
        cuts.append((at, at + 8 + length, tag, key[4:6]))
    cuts.sort()
    n = len(spec.frames)
    times = spec.trigger_times_ms if spec.trigger_times_ms is not None else 41.0 * np.arange(n)
    out = []
    for f in range(n):
        uid = frame_uid(spec.series_uid, f)
        values = {
            (0x0002, 0x0003): uid.encode(),
            (0x0008, 0x0018): uid.encode(),
            (0x0018, 0x1060): _ds_ms(times[f]).encode(),
            (0x0020, 0x0013): str(f + 1).encode(),
        }
        parts, pos = [], 0
        for start, end, tag, vr in cuts:
            parts += [header[pos:start], _element(tag, vr, values[tag])]
            pos = end
        pixels = np.ascontiguousarray(spec.frames[f], dtype="<u2").tobytes()
        parts += [header[pos:], pixel_tag, pixels]
        info = SimpleNamespace(
            PatientID=str(eid), StudyInstanceUID=study_uid, SeriesInstanceUID=spec.series_uid,
            SeriesDescription=template.SeriesDescription, InstanceNumber=f + 1,
        )
        out.append((f"{uid}.dcm", b"".join(parts), info))
    return out


def _zip_members(
    files: Sequence[tuple[str, bytes]],
    manifest_rows: Sequence[tuple[str, object]],
    manifest: str | None,
    header_style: str,
    rng: np.random.Generator | None,
    extra_members: Sequence[tuple[str, bytes]] = (),
) -> bytes:
    # Shuffled member order, as in the real downloads: readers must not rely on it.
    rng = rng if rng is not None else np.random.default_rng(0)
    members = [files[i] for i in rng.permutation(len(files))]
    if manifest:
        members.append((manifest, manifest_text(manifest_rows, header_style).encode()))
    members.extend(extra_members)
    return zip_bytes(members)


def assemble_zip(
    named: Sequence[tuple[str, Dataset]],
    manifest: str | None = "manifest.cvs",
    header_style: str = "v1",
    rng: np.random.Generator | None = None,
    extra_members: Sequence[tuple[str, bytes]] = (),
) -> bytes:
    """Zip datasets (shuffled by ``rng``), a manifest and extra members.

    Callers that need unusual files (fixtures of broken input) edit the datasets from
    :func:`participant_datasets` before assembling.
    """
    files = [(name, dataset_bytes(ds)) for name, ds in named]
    return _zip_members(files, named, manifest, header_style, rng, extra_members)


def participant_zip(
    eid: int | str,
    series: Sequence[SeriesSpec],
    instance: int = 2,
    manifest: str | None = "manifest.cvs",
    header_style: str = "v1",
    rng: np.random.Generator | None = None,
    study_uid: str | None = None,
) -> tuple[str, bytes]:
    """``(zip name, zip bytes)`` of one participant visit with the given series.

    Members get UID-like file names and are stored in shuffled order (``rng``), as in
    the real downloads, so readers cannot rely on member order. With fixed series UIDs,
    ``study_uid`` and ``rng``, the bytes are reproducible.
    """
    study_uid = study_uid or generate_uid()
    written = [f for spec in series for f in series_files(spec, str(eid), study_uid)]
    files = [(name, data) for name, data, _ in written]
    rows = [(name, info) for name, _, info in written]
    return zip_name(eid, instance), _zip_members(files, rows, manifest, header_style, rng)
