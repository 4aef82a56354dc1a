"""UK Biobank tagging ingest: quirks handled, bad input failed with a specific reason."""

from __future__ import annotations

import io
import struct
import zipfile

import numpy as np
import pydicom
import pytest
from pydicom.uid import JPEG2000, HTJ2KLossless, JPEGExtended12Bit, JPEGLSLossless

from raytag.constants import MAX_ZIP_UNCOMPRESSED_BYTES, N_FRAMES
from raytag.io import read_participant
from raytag.io.errors import IngestError
from raytag.io.manifest import parse_manifest
from raytag.io.safezip import SafeZip
from raytag.io.ukb_writer import (
    SeriesSpec,
    assemble_zip,
    dataset_bytes,
    participant_datasets,
    participant_zip,
    zip_bytes,
    zip_name,
)

EID = 9000001


def cine(slice_index: int, n: int = N_FRAMES, rows: int = 256, cols: int = 174) -> np.ndarray:
    """Frames whose pixel (0, 0) holds the acquisition order t and (0, 1) the slice index."""
    frames = np.full((n, rows, cols), 50, dtype=np.uint16)
    frames[:, 0, 0] = np.arange(n)
    frames[:, 0, 1] = slice_index
    return frames


def spec(slice_index: int, n: int = N_FRAMES, **kw) -> SeriesSpec:
    kw.setdefault("position_mm", -20.0 * slice_index)
    return SeriesSpec(slice_index, cine(slice_index, n, kw.pop("rows", 256), kw.pop("cols", 174)),
                      **kw)


def by_slice(records):
    return {r.slice_index: r for r in records}


def order_of(rec) -> list[int]:
    """Acquisition indices of the valid frames, in the order the reader returned them."""
    return rec.frames[rec.frame_valid, 0, 0].tolist()


def test_clean_participant_reads_three_slices():
    name, data = participant_zip(EID, [spec(1), spec(2), spec(3)])
    recs = read_participant((name, data))
    assert [r.slice_index for r in recs] == [1, 2, 3]
    assert [r.slice_label for r in recs] == ["basal", "mid", "apical"]
    for r in recs:
        assert r.status == "ok" and r.error is None and r.qc_flags == []
        assert (r.eid, r.instance) == (str(EID), 2)
        assert r.frames.dtype == np.uint16 and r.frames.shape == (20, 256, 174)
        assert order_of(r) == list(range(20))
        assert r.frames[0, 0, 1] == r.slice_index
        np.testing.assert_allclose(r.trigger_time_ms, 41.0 * np.arange(20))
        assert r.n_frames == 20 and r.frame_valid.all()
        assert r.n_candidate_series == 1


def test_every_member_is_inflated_once(monkeypatch):
    """The header scan keeps what it inflates: decoding a frame never inflates it again
    (starting an inflate costs most of a frame's inflate)."""
    name, data = build_quirky_zip()
    calls: dict[str, int] = {}
    read, read_head = SafeZip.read, SafeZip.read_head

    def counted(method):
        def wrapper(self, member, *args):
            calls[member] = calls.get(member, 0) + 1
            return method(self, member, *args)
        return wrapper

    monkeypatch.setattr(SafeZip, "read", counted(read))
    monkeypatch.setattr(SafeZip, "read_head", counted(read_head))
    recs = read_participant((name, data))
    assert all(r.ok for r in recs)
    assert set(calls) == set(SafeZip(data).names)  # every member looked at ...
    assert max(calls.values()) == 1, {m: n for m, n in calls.items() if n > 1}  # ... once


def build_quirky_zip() -> tuple[str, bytes]:
    """One zip carrying every tolerated quirk at once (see the assertions below)."""
    rng = np.random.default_rng(7)
    # b1: 18 frames (padded), non-isotropic spacing (row 1.5, col 1.25), lower-case
    #     description without the trailing 's'; InstanceNumber reversed vs TriggerTime.
    b1 = spec(1, 18, pixel_spacing_mm=(1.5, 1.25), description="cine_tagging_3sl_sax_b1")
    # b2: repeated. An incomplete series with the highest SeriesNumber, a complete one
    #     with a lower number, and a complete older one with the same lower number.
    b2_incomplete = spec(2, 19, series_number=30, cardiac_number_of_images=20)
    b2_winner = spec(2, 20, series_number=20, acquisition_time="113000.000000")
    b2_older = spec(2, 20, series_number=20, acquisition_time="101000.000000")
    b2_winner.frames[:, 0, 2] = 777  # marks the series that must be chosen
    # b3: 23 frames (truncated to the first 20 by trigger time), no TriggerTime at all.
    b3 = spec(3, 23)
    named = participant_datasets(EID, [b1, b2_incomplete, b2_winner, b2_older, b3])
    for _, ds in named:
        if ds.SeriesInstanceUID == b1.series_uid:
            ds.InstanceNumber = 100 - int(ds.InstanceNumber)
        if ds.SeriesInstanceUID == b3.series_uid:
            del ds.TriggerTime
    # A member listed in the manifest but absent from the zip; a readme; an unrelated series
    # (taken from the older b2 series, which loses the selection anyway)
    absent = named.pop(next(i for i, (_, ds) in enumerate(named)
                            if ds.SeriesInstanceUID == b2_older.series_uid))
    other = SeriesSpec(0, cine(0, 2), description="CINE_segmented_SAX_b1")
    named_other = participant_datasets(EID, [other])
    data = assemble_zip(
        named + named_other,
        manifest="manifest.cvs",
        rng=rng,
        extra_members=[("README.txt", b"not dicom"), ("thumbs/x.jpg", b"\xff\xd8\xff")],
    )
    # Rebuild the manifest so it still lists the absent member (the zip lacks it).
    from raytag.io.ukb_writer import manifest_text

    with zipfile.ZipFile(__import__("io").BytesIO(data)) as zf:
        members = [(n, zf.read(n)) for n in zf.namelist() if n != "manifest.cvs"]
    members.append(("manifest.cvs", manifest_text(named + [absent]).encode()))
    return zip_name(EID, 3), zip_bytes(members)


def test_every_quirk_in_one_zip():
    recs = read_participant(build_quirky_zip())
    assert [r.slice_index for r in recs] == [1, 2, 3]
    assert all(r.ok for r in recs), [r.error for r in recs]
    b1, b2, b3 = recs
    assert all(r.instance == 3 for r in recs)

    # b1: padded, ordered by trigger time (not the reversed instance numbers), spacing (row, col)
    assert b1.n_frames == 18 and b1.frame_valid.tolist() == [True] * 18 + [False] * 2
    assert order_of(b1) == list(range(18))
    assert (b1.frames[18:] == 0).all()
    np.testing.assert_array_equal(b1.pixel_spacing_mm, [1.5, 1.25])
    assert np.isnan(b1.trigger_time_ms[18:]).all()
    assert "padded_frames" in b1.qc_flags

    # b2: the complete series with the highest SeriesNumber, latest acquisition on a tie
    assert b2.n_candidate_series == 3 and "repeated_series" in b2.qc_flags
    assert (b2.frames[:, 0, 2] == 777).all()
    assert order_of(b2) == list(range(20))

    # b3: no TriggerTime -> InstanceNumber order; 23 frames truncated to the first 20
    assert b3.n_frames == 23 and b3.frame_valid.all()
    assert order_of(b3) == list(range(20))
    assert "truncated_frames" in b3.qc_flags and "ordered_by_instance_number" in b3.qc_flags
    assert np.isnan(b3.trigger_time_ms).all()

    for r in recs:
        assert "manifest_lists_missing_files" in r.qc_flags
        assert "slice_positions_not_monotonic" not in r.qc_flags
        assert r.frames.shape == (20, 256, 174)


def test_reader_uses_header_geometry_not_a_fixed_matrix():
    name, data = participant_zip(EID, [spec(i, rows=192, cols=208) for i in (1, 2, 3)])
    for r in read_participant((name, data)):
        assert r.frames.shape == (20, 192, 208)


def test_non_monotonic_slice_positions_are_flagged_not_failed():
    name, data = participant_zip(
        EID, [spec(1, position_mm=0.0), spec(2, position_mm=-20.0), spec(3, position_mm=10.0)]
    )
    recs = read_participant((name, data))
    assert all(r.ok and "slice_positions_not_monotonic" in r.qc_flags for r in recs)
    # The same slices in a consistent order (increasing along the normal) are fine.
    name, data = participant_zip(EID, [spec(i, position_mm=8.0 * i) for i in (1, 2, 3)])
    assert all("slice_positions_not_monotonic" not in r.qc_flags
               for r in read_participant((name, data)))


@pytest.mark.parametrize("style,filename", [("v1", "manifest.cvs"), ("v2", "manifest.csv")])
def test_manifest_header_versions_and_unquoted_date_comma(style, filename):
    named = participant_datasets(EID, [spec(1, 2)])
    from raytag.io.ukb_writer import manifest_text

    text = manifest_text(named, style)
    assert "Aug 14, 2014" in text  # the unquoted comma that breaks naive CSV parsing
    entries = parse_manifest(text)
    assert [e.filename for e in entries] == [n for n, _ in named]
    assert all(e.series_description == "CINE_tagging_3sl_SAX_b1s" for e in entries)
    assert all(e.series_uid == named[0][1].SeriesInstanceUID for e in entries)
    data = assemble_zip(named, manifest=filename, header_style=style)
    rec = by_slice(read_participant((zip_name(EID), data)))[1]
    assert rec.ok and "no_manifest" not in rec.qc_flags


def test_manifest_with_missing_columns_and_no_manifest():
    assert parse_manifest("filename\na.dcm\n\nb.dcm\n") == [
        parse_manifest("filename\na.dcm")[0],
        parse_manifest("filename\nb.dcm")[0],
    ]
    assert [e.filename for e in parse_manifest("x,y\n1.dcm,2\n")] == ["1.dcm"]
    assert parse_manifest("") == []
    name, data = participant_zip(EID, [spec(1), spec(2), spec(3)], manifest=None)
    recs = read_participant((name, data))
    assert all(r.ok and r.qc_flags == ["no_manifest"] for r in recs)


def test_manifest_rows_short_long_and_a_column_named_twice():
    from raytag.io.manifest import ManifestEntry

    text = ("filename,date,series description,seriesid\n"
            "a.dcm,Aug 14, 2014,CINE_tagging, 1.2.3 \n"  # the date's comma: shifted right
            "b.dcm,Aug 14\n"  # short: no description, no uid
            ",Aug 14, 2014,X,1.2\n"  # no file name: dropped
            "c.dcm,Jan 2, 2015,,9.9\n")  # empty description -> None
    assert parse_manifest(text) == [ManifestEntry("a.dcm", "CINE_tagging", "1.2.3"),
                                    ManifestEntry("b.dcm", None, None),
                                    ManifestEntry("c.dcm", None, "9.9")]
    # "file" and "filename" are both the file name column: the last one the row has
    twice = "file,patientid,filename\nx.dcm,9000001,y.dcm\nz.dcm,9000002\n"
    assert [e.filename for e in parse_manifest(twice)] == ["y.dcm", "z.dcm"]


# ---------------------------------------------------------------- bad input: specific reasons


def single_failure(source) -> str:
    recs = read_participant(source)
    assert len(recs) == 1, recs
    (rec,) = recs
    assert rec.status == "failed" and rec.slice_index is None and rec.frames is None
    assert rec.stage == "ingest"
    return rec.error


def test_zero_byte_object():
    assert "empty object (0 bytes)" in single_failure((zip_name(EID), b""))


def test_non_zip_object():
    err = single_failure((zip_name(EID), b"%PDF-1.4 definitely not a zip"))
    assert "not a zip archive" in err


def test_truncated_zip():
    name, data = participant_zip(EID, [spec(1)])
    err = single_failure((name, data[: len(data) // 2]))
    assert "truncated or corrupt zip archive" in err


def test_zip_with_no_tagging_series():
    other = SeriesSpec(0, cine(0, 3), description="CINE_segmented_SAX_b2")
    name, data = participant_zip(EID, [other])
    err = single_failure((name, data))
    assert "no tagging series" in err and "CINE_segmented_SAX_b2" in err


def test_bad_zip_name_and_wrong_field():
    _, data = participant_zip(EID, [spec(1)])
    assert "does not follow <eid>_20211_<instance>_<array>.zip" in single_failure(("x.zip", data))
    err = single_failure((f"{EID}_20209_2_0.zip", data))
    assert "field 20209, not CMR tagging (20211)" in err


def test_missing_file_keeps_identity():
    recs = read_participant(f"/nonexistent/{zip_name(EID)}")
    assert recs[0].eid == str(EID) and recs[0].instance == 2
    assert "no such file" in recs[0].error


@pytest.mark.parametrize("missing", [(2,), (1, 3)])
def test_missing_slices_fail_alone(missing):
    present = [i for i in (1, 2, 3) if i not in missing]
    name, data = participant_zip(EID, [spec(i) for i in present])
    recs = by_slice(read_participant((name, data)))
    assert sorted(recs) == [1, 2, 3]
    for i in present:
        assert recs[i].ok and order_of(recs[i]) == list(range(20))
    for i in missing:
        assert recs[i].status == "failed"
        label = recs[i].slice_label
        assert recs[i].error == f"slice b{i} ({label}) has no tagging series in the zip"


def zip_with_edited_slice(slice_index: int, edit) -> tuple[str, bytes]:
    """A clean 3-slice zip in which ``edit(i, ds)`` changed frame i of one slice."""
    specs = [spec(i) for i in (1, 2, 3)]
    named = participant_datasets(EID, specs)
    uid = specs[slice_index - 1].series_uid
    frames = [ds for _, ds in named if ds.SeriesInstanceUID == uid]
    for i, ds in enumerate(frames):
        edit(i, ds)
    return zip_name(EID), assemble_zip(named)


def assert_only_slice_failed(source, slice_index, reason):
    recs = by_slice(read_participant(source))
    assert sorted(recs) == [1, 2, 3]
    for i, r in recs.items():
        if i == slice_index:
            assert r.status == "failed" and reason in r.error, r.error
        else:
            assert r.ok, r.error
    return recs[slice_index].error


def test_mismatched_frame_sizes():
    def edit(i, ds):
        if i == 4:
            ds.Rows, ds.Columns = 192, 208
            ds.PixelData = np.zeros((192, 208), np.uint16).tobytes()

    err = assert_only_slice_failed(zip_with_edited_slice(2, edit), 2,
                                   "frames of mismatched size within the series")
    assert "256x174 (19 frames)" in err and "192x208 (1 frames)" in err


def test_non_mr_dicom():
    def edit(i, ds):
        ds.Modality = "CT"

    assert_only_slice_failed(zip_with_edited_slice(1, edit), 1, "not an MR image (Modality 'CT')")


def test_non_image_dicom():
    def edit(i, ds):
        del ds.Rows, ds.Columns, ds.PixelData

    assert_only_slice_failed(zip_with_edited_slice(3, edit), 3, "no image matrix in the header")


def test_declared_dimensions_beyond_limits():
    def edit(i, ds):
        ds.Rows = 60000  # a 60000 x 174 x 2-byte frame would be a memory bomb

    assert_only_slice_failed(zip_with_edited_slice(2, edit), 2,
                             "declared matrix 60000x174 exceeds the limit")


def test_truncated_pixel_data():
    def edit(i, ds):
        if i == 7:
            ds.PixelData = ds.PixelData[:1000]

    assert_only_slice_failed(zip_with_edited_slice(1, edit), 1, "pixel data has 1000 bytes")


def test_missing_pixel_spacing():
    def edit(i, ds):
        del ds.PixelSpacing

    assert_only_slice_failed(zip_with_edited_slice(2, edit), 2, "PixelSpacing missing or invalid")


def test_compressed_pixel_data_without_decoder():
    # Which compressed syntaxes can be decoded depends on the plugins installed (Pillow
    # decodes JPEG 2000, the jpeg extra JPEG-LS...): use one that has no decoder here.
    candidates = [JPEGLSLossless, JPEG2000, HTJ2KLossless, JPEGExtended12Bit]
    missing = [u for u in candidates if not pydicom.pixels.get_decoder(u).is_available]
    if not missing:
        pytest.skip("every candidate compressed syntax has a decoder installed here")
    syntax = missing[0]

    def edit(i, ds):
        ds.file_meta.TransferSyntaxUID = syntax
        ds.PixelData = pydicom.encaps.encapsulate([b"\x00" * 64])
        ds["PixelData"].VR = "OB"

    err = assert_only_slice_failed(zip_with_edited_slice(3, edit), 3, "no decoder is installed")
    assert "raytag[jpeg]" in err and syntax.name in err


def test_compressed_pixel_data_with_decoder_decodes():
    """RLE Lossless is compressed and decodable by pydicom alone: frames come back exact."""
    from pydicom.uid import RLELossless

    def edit(i, ds):
        ds.compress(RLELossless)

    recs = by_slice(read_participant(zip_with_edited_slice(2, edit)))
    assert recs[2].ok and order_of(recs[2]) == list(range(20))


@pytest.mark.parametrize("member", ["../evil.dcm", "/etc/passwd", "a/../../b.dcm"])
def test_unsafe_member_names(member):
    named = participant_datasets(EID, [spec(1)])
    data = assemble_zip(named, extra_members=[(member, b"x")])
    err = single_failure((zip_name(EID), data))
    assert "is absolute or contains '..'" in err and repr(member) in err


def test_zip_bomb_declared_size():
    """A central directory that declares > the uncompressed cap is refused before inflating."""
    name, data = participant_zip(EID, [spec(1, 2)])
    buf = bytearray(data)
    at = buf.find(b"PK\x01\x02")  # first central-directory entry; size field at +24
    struct.pack_into("<I", buf, at + 24, 0xFFFFFFF0)
    assert 0xFFFFFFF0 > MAX_ZIP_UNCOMPRESSED_BYTES
    err = single_failure((name, bytes(buf)))
    assert "uncompressed bytes, more than the limit" in err and "zip bomb" in err


def test_safezip_caps_what_is_inflated():
    bomb = zip_bytes([("a.dcm", b"\x00" * 5_000_000)])
    assert len(bomb) < 50_000  # highly compressible: the classic bomb shape
    with pytest.raises(IngestError, match="more than the limit 1000000"):
        SafeZip(bomb, max_total_bytes=1_000_000)
    with pytest.raises(IngestError, match="declares 5000000 bytes, more than the limit"):
        SafeZip(bomb, max_member_bytes=1_000_000).read("a.dcm")
    with pytest.raises(IngestError, match="members, more than the limit"):
        SafeZip(zip_bytes([(f"{i}.dcm", b"") for i in range(5)]), max_members=4)


def test_unreadable_dicom_members_are_skipped_not_fatal():
    named = participant_datasets(EID, [spec(1), spec(2), spec(3)])
    junk = [("garbage.dcm", b"DICM but not really"), ("empty.dcm", b"")]
    recs = read_participant((zip_name(EID), assemble_zip(named, extra_members=junk)))
    assert [r.status for r in recs] == ["ok", "ok", "ok"]


def test_never_raises_on_random_bytes():
    rng = np.random.default_rng(0)
    name, data = participant_zip(EID, [spec(1, 3)])
    for _ in range(30):
        corrupt = np.frombuffer(data, dtype=np.uint8).copy()
        idx = rng.integers(0, len(corrupt), size=20)
        corrupt[idx] = rng.integers(0, 256, size=20, dtype=np.uint8)
        for r in read_participant((name, corrupt.tobytes())):
            assert r.status in ("ok", "failed")
            assert r.ok or r.error


def test_pixel_values_survive_roundtrip():
    frames = np.random.default_rng(3).integers(0, 144, (20, 256, 174)).astype(np.uint16)
    s = SeriesSpec(2, frames, position_mm=0.0)
    recs = by_slice(read_participant(participant_zip(EID, [s])))
    np.testing.assert_array_equal(recs[2].frames, frames)


def test_single_file_is_valid_dicom():
    named = participant_datasets(EID, [spec(1, 1)])
    ds = pydicom.dcmread(__import__("io").BytesIO(dataset_bytes(named[0][1])))
    assert ds.Modality == "MR" and (ds.Rows, ds.Columns) == (256, 174)


def test_wrong_source_type_is_a_caller_error():
    with pytest.raises(TypeError, match="source must be"):
        read_participant(12345)
    with pytest.raises(TypeError, match="2-tuple"):
        read_participant(("a.zip", "not bytes"))


def test_fast_series_writer_matches_pydicom_per_frame():
    """series_files patches one serialised header per frame: bytes must equal dcmwrite's."""
    from raytag.io.ukb_writer import frame_dataset, series_files

    frames = np.random.default_rng(5).integers(0, 140, (6, 64, 48)).astype(np.uint16)
    s = SeriesSpec(2, frames, trigger_times_ms=[0.0, 40.87, 81.74, 1234.567, 2000.0, 5.5])
    fast = series_files(s, "9000001", "1.2.826.0.1.3680043.8.498.1")
    assert len(fast) == 6 and len({name for name, _, _ in fast}) == 6
    for f, (name, data, info) in enumerate(fast):
        ds = frame_dataset(s, f, "9000001", "1.2.826.0.1.3680043.8.498.1")
        assert data == dataset_bytes(ds)
        assert name == f"{ds.SOPInstanceUID}.dcm" and len(str(ds.SOPInstanceUID)) == 44
        assert info.InstanceNumber == ds.InstanceNumber == f + 1


def _marked(slice_index: int, marker: int, n: int = N_FRAMES, **kw) -> SeriesSpec:
    s = spec(slice_index, n, **kw)
    s.frames[:, 0, 2] = marker  # which series the reader chose, readable from its pixels
    return s


@pytest.mark.parametrize("order", [0, 1])
def test_tie_break_highest_series_number_first(order):
    """Two complete, usable series of b2: the higher SeriesNumber wins even when the other
    was acquired later (the acquisition-time rule must not decide this)."""
    high = _marked(2, 7, series_number=30, acquisition_time="090000.000000")
    low = _marked(2, 8, series_number=20, acquisition_time="120000.000000")
    pair = [high, low] if order == 0 else [low, high]
    recs = by_slice(read_participant(participant_zip(EID, [spec(1), *pair, spec(3)])))
    assert recs[2].ok and recs[2].frames[0, 0, 2] == 7


@pytest.mark.parametrize("order", [0, 1])
def test_tie_break_latest_acquisition_when_numbers_tie(order):
    late = _marked(2, 5, series_number=20, acquisition_time="113000.000000")
    early = _marked(2, 6, series_number=20, acquisition_time="101000.000000")
    pair = [late, early] if order == 0 else [early, late]
    recs = by_slice(read_participant(participant_zip(EID, [spec(1), *pair, spec(3)])))
    assert recs[2].ok and recs[2].frames[0, 0, 2] == 5


def test_tie_break_complete_series_before_any_number():
    incomplete = _marked(2, 3, 19, series_number=40, cardiac_number_of_images=20,
                         acquisition_time="130000.000000")
    complete = _marked(2, 4, series_number=10, acquisition_time="080000.000000")
    recs = by_slice(read_participant(participant_zip(EID, [spec(1), incomplete, complete,
                                                           spec(3)])))
    assert recs[2].ok and recs[2].frames[0, 0, 2] == 4 and recs[2].n_frames == 20


def test_fast_header_path_equals_pydicoms():
    """Every member of a zip with every quirk: the fast parser gives pydicom's header."""
    from raytag.io import fastdicom
    from raytag.io.dicom import read_header
    from raytag.io.safezip import SafeZip

    name, data = participant_zip(EID, [spec(1), spec(2, 19, series_number=30,
                                                      cardiac_number_of_images=20),
                                       spec(2), spec(3)])
    zf = SafeZip(data)
    compared = 0
    for member in zf.names:
        if not member.endswith(".dcm"):
            continue
        raw = zf.read(member)
        fast, slow = fastdicom.parse_header(member, raw[:4096]), read_header(member, raw)
        assert fast is not None and slow is not None
        for field in ("series_uid", "series_description", "series_number",
                      "acquisition_time", "instance_number", "trigger_time_ms",
                      "cardiac_number_of_images", "rows", "cols", "pixel_spacing_mm",
                      "transfer_syntax", "problem"):
            assert getattr(fast, field) == getattr(slow, field), (field, member)
        assert fast.position_mm == pytest.approx(slow.position_mm, abs=1e-9)
        np.testing.assert_array_equal(fastdicom.pixels(fast, raw),
                                      pydicom.dcmread(io.BytesIO(raw)).pixel_array)
        compared += 1
    assert compared == 20 * 3 + 19


def test_fast_header_cut_anywhere_before_the_pixels_declines_or_parses_never_raises():
    """A member cut short at any byte of its header (a truncated head read, a hostile
    zip) gives None (pydicom's path words the error) or the same header; never a
    struct.error out of the element walk, e.g. a long-VR element cut inside its 12-byte
    head."""
    from raytag.io import fastdicom

    raw = dataset_bytes(participant_datasets(EID, [spec(1)])[0][1])
    full = fastdicom.parse_header("x.dcm", raw)
    assert full is not None
    declined = 0
    for cut in range(0, full.pixel_offset + 1):
        got = fastdicom.parse_header("x.dcm", raw[:cut])
        if got is None:
            declined += 1
        else:
            assert (got.series_uid, got.rows, got.cols, got.instance_number) == (
                full.series_uid, full.rows, full.cols, full.instance_number)
    # only cuts at or after the pixel element's own 12-byte head can still parse
    assert declined >= full.pixel_offset - 12


def _mixed_layout_members() -> list[tuple[str, bytes]]:
    """Members of three series whose headers differ in layout from frame to frame: a
    longer description, a longer trigger value, an extra (unwanted) element, a missing
    wanted one, a wanted value of another length; encoded bytes by member name."""
    named = participant_datasets(EID, [spec(1), spec(2, 19, series_number=30), spec(3)])
    for i, (_, ds) in enumerate(named):
        if i % 7 == 3:
            ds.SeriesDescription = ds.SeriesDescription + " (repeat)"
        if i % 5 == 2:
            ds.TriggerTime = f"{float(ds.TriggerTime) + 0.123456:.6f}"
        if i % 11 == 4:
            ds.ImageComments = "x" * (i + 1)
        if i % 13 == 6 and "CardiacNumberOfImages" in ds:
            del ds.CardiacNumberOfImages
        if i % 17 == 8:
            ds.PixelSpacing = [1.40625, 1.4062500001]
    return [(name, dataset_bytes(ds)) for name, ds in named]


def _same_header(a, b) -> bool:
    import dataclasses

    return a is None and b is None or (
        a is not None and b is not None and dataclasses.asdict(a) == dataclasses.asdict(b))


def test_header_parser_reusing_layouts_gives_each_members_own_header():
    """One HeaderParser over a zip's members (in order, then shuffled, then cut short,
    then members it must decline) gives exactly what a fresh parse_header gives for each
    member alone: a cached layout never hands one member another's values."""
    import random

    from raytag.io import fastdicom

    members = _mixed_layout_members()
    parser = fastdicom.HeaderParser()
    order = members + random.Random(3).sample(members, len(members))
    for name, raw in order:
        alone = fastdicom.parse_header(name, raw[:4096])
        assert alone is not None
        assert _same_header(parser.parse(name, raw[:4096]), alone), name
    # per-frame values really differ, so a stale cache would have shown above
    assert len({fastdicom.parse_header(n, r).instance_number for n, r in members}) == 20
    name, raw = members[0]
    full = fastdicom.parse_header(name, raw)
    for cut in range(full.pixel_offset - 40, full.pixel_offset + 13):
        assert _same_header(parser.parse(name, raw[:cut]),
                            fastdicom.parse_header(name, raw[:cut])), cut
    ds = pydicom.dcmread(io.BytesIO(raw))
    ds.file_meta.TransferSyntaxUID = pydicom.uid.ImplicitVRLittleEndian
    assert parser.parse(name, dataset_bytes(ds)) is None
    assert parser.parse(name, b"\0" * 128 + raw[128:200]) is None


def test_header_parser_memory_is_bounded():
    from raytag.io import fastdicom

    parser = fastdicom.HeaderParser()
    parser.MAX_LAYOUTS, parser.MAX_SERIES = 3, 5  # small, so 20 members overflow both
    named = participant_datasets(EID, [spec(1)])
    for i, (name, ds) in enumerate(named):
        ds.ImageComments = "y" * (2 * i + 2)  # a new layout every member
        ds.SeriesInstanceUID = f"1.2.826.0.1.3680043.8.498.{i + 1}"  # a new series too
        assert _same_header(parser.parse(name, dataset_bytes(ds)),
                            fastdicom.parse_header(name, dataset_bytes(ds)))
        assert len(parser._layouts) <= 3 and len(parser._series) <= 5


def test_fast_path_declines_what_it_does_not_handle():
    from raytag.io import fastdicom

    named = participant_datasets(EID, [spec(1)])
    ds = named[0][1]
    ds.file_meta.TransferSyntaxUID = pydicom.uid.ImplicitVRLittleEndian
    assert fastdicom.parse_header("x.dcm", dataset_bytes(ds)) is None
    assert fastdicom.parse_header("x.dcm", b"not dicom at all" * 20) is None
    # and the reader still reads a zip holding it, through pydicom
    others = participant_datasets(EID, [spec(2), spec(3)])
    recs = by_slice(read_participant((zip_name(EID), assemble_zip(named + others))))
    assert recs[1].ok and recs[1].frames[0, 0, 0] == 0
