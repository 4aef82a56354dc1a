"""Write UK Biobank-style CMR tagging zips (field 20211): one DICOM file per frame + manifest.

Used by the synthetic generator, the demo and the test fixtures. The layout follows the
bulk-download zips: ``<eid>_20211_<instance>_<array>.zip`` holding single-frame MR Image
Storage files (one series per slice, ``SeriesDescription`` ``CINE_tagging_3sl_SAX_b<N>s``)
and a ``manifest.cvs`` whose Java-formatted date carries an unquoted comma.

Everything here builds objects in memory; nothing touches the filesystem except
:func:`raytag.io.storage.write_bytes`, which callers use to store the result.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field

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
    meta.MediaStorageSOPInstanceUID = generate_uid()
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
    ds.TriggerTime = round(trig, 3)
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


def zip_bytes(members: dict[str, bytes] | Sequence[tuple[str, bytes]]) -> bytes:
    """A deflated zip of ``name -> bytes`` members, in the given order."""
    items = members.items() if isinstance(members, dict) else members
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in items:
            zf.writestr(name, data)
    return buf.getvalue()


def participant_datasets(eid: int | str, series: Sequence[SeriesSpec]) -> list[tuple[str, Dataset]]:
    """``(member name, dataset)`` of every frame of every series, one study, UID file names."""
    study_uid = generate_uid()
    return [
        (f"{ds.SOPInstanceUID}.dcm", ds)
        for spec in series
        for ds in series_datasets(spec, str(eid), study_uid)
    ]


def assemble_zip(
    named: Sequence[tuple[str, Dataset]],
    manifest: str | None = "manifest.cvs",
    header_style: str = "v1",
    rng: np.random.Generator | None = None,
    extra_members: Sequence[tuple[str, bytes]] = (),
) -> bytes:
    """Zip datasets (shuffled by ``rng``, as in real downloads), a manifest and extra members.

    Callers that need unusual files (fixtures of broken input) edit the datasets from
    :func:`participant_datasets` before assembling.
    """
    rng = rng if rng is not None else np.random.default_rng(0)
    order = rng.permutation(len(named))
    members = [(named[i][0], dataset_bytes(named[i][1])) for i in order]
    if manifest:
        members.append((manifest, manifest_text(named, header_style).encode()))
    members.extend(extra_members)
    return zip_bytes(members)


def participant_zip(
    eid: int | str,
    series: Sequence[SeriesSpec],
    instance: int = 2,
    manifest: str | None = "manifest.cvs",
    header_style: str = "v1",
    rng: np.random.Generator | None = None,
) -> tuple[str, bytes]:
    """``(zip name, zip bytes)`` of one participant visit with the given series.

    Members get UID-like file names and are stored in shuffled order (``rng``), as in
    the real downloads, so readers cannot rely on member order.
    """
    named = participant_datasets(eid, series)
    return zip_name(eid, instance), assemble_zip(named, manifest, header_style, rng)
