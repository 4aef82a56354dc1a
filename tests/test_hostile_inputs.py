"""A corpus of hostile and broken inputs (generated here, never committed as binaries).

Each case says how it must end, per the results contract: which slices are ``ok``, which
``failed`` with which ``reason``, which QC flags a slice carries. The corpus then runs
through the whole pipeline beside good participants, which must come out untouched.
"""

from __future__ import annotations

import io
import os
import struct
import time
import zipfile
import zlib

import numpy as np
import pytest
from pydicom.uid import DeflatedExplicitVRLittleEndian

from raytag.constants import MAX_MEMBER_BYTES, MAX_ZIP_MEMBERS, N_FRAMES
from raytag.io import read_participant, storage
from raytag.io.records import MAX_ERROR_CHARS
from raytag.io.ukb_writer import SeriesSpec, assemble_zip, participant_datasets, zip_bytes
from raytag.pipeline.stages import qc_flags_for

EID = "9000007"
ROWS = COLS = 48


def _cine(slice_index: int, n: int = N_FRAMES, seed: int = 0) -> np.ndarray:
    """Frames that differ from each other (content QC must pass them)."""
    rng = np.random.default_rng(seed + slice_index)
    return rng.integers(10, 200, (n, ROWS, COLS)).astype(np.uint16)


def _specs(n: int = N_FRAMES) -> list[SeriesSpec]:
    return [SeriesSpec(i, _cine(i, n), position_mm=-20.0 * i) for i in (1, 2, 3)]


def _named(n: int = N_FRAMES):
    return participant_datasets(EID, _specs(n))


def _zip(named=None, extra=(), manifest="manifest.cvs") -> bytes:
    return assemble_zip(named if named is not None else _named(), manifest=manifest,
                        extra_members=extra)


def _edit(slice_index: int, edit, n: int = N_FRAMES) -> bytes:
    """A clean zip whose ``slice_index`` series had ``edit(i, ds)`` applied to frame i."""
    named = _named(n)
    want = f"b{slice_index}s"
    for i, (_, ds) in enumerate([x for x in named if x[1].SeriesDescription.endswith(want)]):
        edit(i, ds)
    return _zip(named)


def _name(instance="2", array="0", eid=EID, field="20211") -> str:
    return f"{eid}_{field}_{instance}_{array}.zip"


# -- the cases ----------------------------------------------------------------------------


def _float_pixels(value):
    def edit(i, ds):
        arr = np.full((ROWS, COLS), 50.0, dtype=np.float32) + i
        if i == 3:
            arr[5, 5] = value
        del ds.PixelData
        ds.FloatPixelData = arr.tobytes()
        ds.BitsAllocated = 32
        for tag in ("BitsStored", "HighBit", "PixelRepresentation"):
            if tag in ds:
                delattr(ds, tag)
    return edit


def _signed(i, ds):
    arr = (_cine(1)[i].astype(np.int32) - 120).astype(np.int16)  # values -110..79
    ds.PixelRepresentation = 1
    ds.PixelData = arr.tobytes()


def _bits32(i, ds):
    arr = _cine(1)[i].astype(np.uint32) * 1000  # beyond 16 bits
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 32, 32, 31
    ds.PixelData = arr.tobytes()


def _constant(value):
    def edit(i, ds):
        ds.PixelData = np.full((ROWS, COLS), value, np.uint16).tobytes()
    return edit


def _identical(i, ds):
    ds.PixelData = _cine(2)[0].tobytes()


def _rows_short(i, ds):
    ds.Rows = ROWS - 8  # pixel data now longer than Rows x Columns


def _pixels_short(i, ds):
    if i == 2:
        ds.PixelData = ds.PixelData[: len(ds.PixelData) // 2]


def _long_modality(i, ds):
    ds.Modality = "X" * 100_000


def _unicode_slice(i, ds):
    ds.SeriesDescription = "CINE_tagging_3sl_SAX_b\u0662s"  # Arabic-Indic digit two


def _deflated(big: bool):
    def edit(i, ds):
        ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
        if big and i == 0:
            ds.add_new((0x0029, 0x1010), "OB", b"\0" * (MAX_MEMBER_BYTES + 1024))
    return edit


def _encrypted(data: bytes, member: str) -> bytes:
    """Set the 'encrypted' flag bit on one member (local and central headers)."""
    buf = bytearray(data)
    name = member.encode()
    for sig, flag_at, name_len_at, name_at in ((b"PK\x03\x04", 6, 26, 30),
                                               (b"PK\x01\x02", 8, 28, 46)):
        at = buf.find(sig)
        while at >= 0:
            n = struct.unpack("<H", buf[at + name_len_at: at + name_len_at + 2])[0]
            if bytes(buf[at + name_at: at + name_at + n]) == name:
                buf[at + flag_at] |= 0x01
            at = buf.find(sig, at + 4)
    return bytes(buf)


def _no_preamble(i, ds):
    ds.preamble = None


def _bad_crc_frame(slice_index: int = 2, frame: int = 5) -> bytes:
    """A clean zip in which one frame of ``slice_index`` fails its CRC-32 (the central
    directory's checksum flipped): the slice must fail, not lose the frame quietly."""
    named = _named()
    want = f"b{slice_index}s"
    member = [n for n, ds in named if ds.SeriesDescription.endswith(want)][frame].encode()
    data = bytearray(_zip(named))
    at = data.find(b"PK\x01\x02")
    while at >= 0:
        n = struct.unpack("<H", data[at + 28: at + 30])[0]
        if bytes(data[at + 46: at + 46 + n]) == member:
            crc = struct.unpack("<I", data[at + 16: at + 20])[0]
            data[at + 16: at + 20] = struct.pack("<I", crc ^ 0xFFFF)
        at = data.find(b"PK\x01\x02", at + 4)
    return bytes(data)


def _lying_member() -> bytes:
    """A zip whose extra member declares 10 bytes but inflates to more than the cap."""
    good = _zip()
    big = zlib.compressobj(9, zlib.DEFLATED, -15)
    payload = big.compress(b"\0" * (MAX_MEMBER_BYTES + 4096)) + big.flush()
    out = io.BytesIO(good)
    with zipfile.ZipFile(out, "a", zipfile.ZIP_STORED) as zf:
        info = zipfile.ZipInfo("notes/huge.bin")
        info.compress_type = zipfile.ZIP_STORED
        zf.writestr(info, payload)
    data = bytearray(out.getvalue())
    # flip the member to 'deflated' and claim a tiny size, in both headers
    name = b"notes/huge.bin"
    for sig, method_at, size_at, name_len_at, name_at in (
            (b"PK\x03\x04", 8, 22, 26, 30), (b"PK\x01\x02", 10, 24, 28, 46)):
        at = data.find(sig)
        while at >= 0:
            n = struct.unpack("<H", data[at + name_len_at: at + name_len_at + 2])[0]
            if bytes(data[at + name_at: at + name_at + n]) == name:
                data[at + method_at: at + method_at + 2] = struct.pack("<H", 8)
                data[at + size_at: at + size_at + 4] = struct.pack("<I", 10)
            at = data.find(sig, at + 4)
    return bytes(data)


def _many_members() -> bytes:
    return zip_bytes([(f"m{i}.txt", b"") for i in range(MAX_ZIP_MEMBERS + 1)])


#: (case id, zip name, bytes factory, expected): expected is a dict of slice index (None
#: for the participant) -> ("ok", flags that must be present) or ("failed", reason).
CASES = [
    # 1. identities and listing
    ("instance_overflow", _name(instance="99999999999999999999"), _zip,
     {None: ("failed", "bad_name")}),
    ("eid_too_long", _name(eid="9" * 20), _zip, {None: ("failed", "bad_name")}),
    ("fullwidth_digits", _name(eid="\uff19\uff10\uff10\uff10\uff10\uff10\uff17"), _zip,
     {None: ("failed", "bad_name")}),
    ("arabic_indic_digits", _name(instance="\u0662"), _zip, {None: ("failed", "bad_name")}),
    ("backslash_in_name", "dir\\" + _name(), _zip, {None: ("failed", "bad_name")}),
    ("wrong_field", _name(field="20210"), _zip, {None: ("failed", "wrong_field")}),
    ("spaces_in_name", f"{EID} _20211_2_0.zip", _zip, {None: ("failed", "bad_name")}),
    ("bare_extension", ".zip", _zip, {None: ("failed", "bad_name")}),
    ("upper_case_extension", _name().replace(".zip", ".ZIP"), _zip,
     {1: ("ok", []), 2: ("ok", []), 3: ("ok", [])}),
    ("other_array_index", _name(array="1"), _zip, {1: ("ok", []), 2: ("ok", []),
                                                  3: ("ok", [])}),
    ("unicode_digit_in_series", _name(), lambda: _edit(2, _unicode_slice),
     {1: ("ok", []), 2: ("failed", "slice_missing"), 3: ("ok", [])}),
    ("encrypted_extra_member", _name(),
     lambda: _encrypted(_zip(extra=[("secret.txt", b"hello")]), "secret.txt"),
     {1: ("ok", ["unreadable_members_skipped"]), 2: ("ok", []), 3: ("ok", [])}),
    ("readme_member", _name(), lambda: _zip(extra=[("README.txt", b"hi")]),
     {1: ("ok", []), 2: ("ok", []), 3: ("ok", [])}),
    ("random_bytes_dcm_member", _name(),
     lambda: _zip(extra=[("junk.dcm", os.urandom(4000))]),
     {1: ("ok", []), 2: ("ok", []), 3: ("ok", [])}),
    ("part10_without_preamble", _name(), lambda: _edit(1, _no_preamble),
     {1: ("ok", []), 2: ("ok", []), 3: ("ok", [])}),
    # 2. budgets
    # a member whose header lies about its size stops at the declared size and fails its
    # CRC: skipped as unreadable, never inflated further
    ("lying_member_size", _name(), _lying_member,
     {1: ("ok", ["unreadable_members_skipped"]), 2: ("ok", []), 3: ("ok", [])}),
    # a frame of the chosen series that fails its CRC fails its slice (never a gap in the
    # cine); the other slices stay clean
    ("bad_crc_frame", _name(), _bad_crc_frame,
     {1: ("ok", []), 2: ("failed", "corrupt_zip"), 3: ("ok", [])}),
    # a decompression bomb makes the archive hostile: the participant fails
    ("deflated_dicom_bomb", _name(), lambda: _edit(3, _deflated(big=True)),
     {None: ("failed", "over_limits")}),
    ("deflated_dicom_small", _name(), lambda: _edit(3, _deflated(big=False)),
     {1: ("ok", []), 2: ("ok", []), 3: ("ok", [])}),
    ("manifest_of_commas", _name(), lambda: _zip(manifest=None, extra=[
        ("manifest.cvs", b"," * 65536)]), {1: ("ok", ["manifest_over_limits_ignored"])}),
    ("manifest_of_lines", _name(), lambda: _zip(manifest=None, extra=[
        ("manifest.cvs", b"a,b\n" * 30000)]), {1: ("ok", ["manifest_over_limits_ignored"])}),
    ("too_many_members", _name(), _many_members, {None: ("failed", "over_limits")}),
    ("declared_matrix_too_big", _name(), lambda: _edit(2, lambda i, ds: setattr(
        ds, "Rows", 60000)), {2: ("failed", "over_limits")}),
    ("too_many_frames", _name(), lambda: _zip(participant_datasets(EID, [
        SeriesSpec(1, _cine(1, 300), position_mm=0.0)])),
     {1: ("failed", "over_limits"), 2: ("failed", "slice_missing")}),
    ("more_frames_than_20", _name(), lambda: _zip(participant_datasets(EID, [
        SeriesSpec(i, _cine(i, 30), position_mm=-20.0 * i) for i in (1, 2, 3)])),
     {1: ("ok", ["truncated_frames"])}),
    # 3. image content
    ("nan_float_pixels", _name(), lambda: _edit(1, _float_pixels(np.nan)),
     {1: ("failed", "bad_image_content"), 2: ("ok", [])}),
    ("inf_float_pixels", _name(), lambda: _edit(1, _float_pixels(np.inf)),
     {1: ("failed", "bad_image_content"), 2: ("ok", [])}),
    ("float_pixels_fractional", _name(), lambda: _edit(1, _float_pixels(50.5)),
     {1: ("ok", ["float_pixels_scaled"])}),
    ("all_zero_slice", _name(), lambda: _edit(2, _constant(0)),
     {2: ("failed", "bad_image_content"), 3: ("ok", [])}),
    ("constant_slice", _name(), lambda: _edit(2, _constant(77)),
     {2: ("failed", "bad_image_content")}),
    ("identical_frames", _name(), lambda: _edit(2, _identical),
     {2: ("failed", "bad_image_content")}),
    ("rows_smaller_than_pixel_data", _name(), lambda: _edit(3, _rows_short),
     {3: ("failed", "bad_pixel_data"), 1: ("ok", [])}),
    ("pixel_data_too_short", _name(), lambda: _edit(3, _pixels_short),
     {3: ("failed", "bad_pixel_data")}),
    ("signed_pixels", _name(), lambda: _edit(1, _signed),
     {1: ("ok", ["signed_pixels_offset"])}),
    ("pixels_beyond_16_bits", _name(), lambda: _edit(1, _bits32),
     {1: ("ok", ["pixels_rescaled_to_16_bits"])}),
    # 6. error texts (sections 4 and 5 run through the pipeline below)
    ("giant_header_value", _name(), lambda: _edit(1, _long_modality),
     {1: ("failed", "not_an_image")}),
    ("zero_bytes", _name(), lambda: b"", {None: ("failed", "empty_object")}),
    ("not_a_zip", _name(), lambda: b"root:x:0:0:root:/root:/bin/bash\n" * 3,
     {None: ("failed", "not_a_zip")}),
    ("truncated_zip", _name(), lambda: _zip()[:5000], {None: ("failed", "corrupt_zip")}),
]


@pytest.mark.parametrize("case,name,make,expected", CASES, ids=[c[0] for c in CASES])
def test_each_case_ends_as_the_contract_says(case, name, make, expected):
    t0 = time.perf_counter()
    records = read_participant((name, make()))
    seconds = time.perf_counter() - t0
    assert seconds < 20, f"{case}: {seconds:.1f} s (bounded time)"
    by_slice = {r.slice_index: r for r in records}
    for idx, (status, detail) in expected.items():
        assert idx in by_slice, (case, sorted(by_slice, key=str))
        r = by_slice[idx]
        assert r.status == status, (case, idx, r.status, r.error)
        if status == "failed":
            assert r.reason == detail, (case, idx, r.reason, r.error)
            assert r.error and len(r.error) <= MAX_ERROR_CHARS
            assert "root:x" not in r.error  # never echo file contents
        else:
            assert set(detail) <= set(r.qc_flags), (case, idx, r.qc_flags)
    # identities never alias: whatever the name, a failed participant keeps it as its key
    if None in expected:
        assert records[0].eid and records[0].source_uri == name


def test_corpus_is_large_enough():
    assert len(CASES) + 9 >= 40  # plus the pipeline-level and QC cases below


def test_signed_pixels_keep_their_values():
    recs = {r.slice_index: r for r in read_participant((_name(), _edit(1, _signed)))}
    want = _cine(1).astype(np.int32) - 120
    got = recs[1].frames[recs[1].frame_valid].astype(np.int32)
    np.testing.assert_array_equal(got, want - want.min())  # offset, never clipped


def test_qc_flags_after_the_model():
    strains = {"es_circ_global": -0.01, "es_radial": 0.2}
    pts = np.zeros((20, 168, 2)) + 100.0
    flags = qc_flags_for(strains, pts, np.array([90.0, 90, 110, 110]), (256, 174))
    assert "no_contraction" in flags and "roi_outside_image" not in flags
    off = qc_flags_for({"es_circ_global": -0.2, "es_radial": 0.2}, pts,
                       np.array([150.0, 90, 250, 110]), (256, 174))
    assert "roi_outside_image" in off and "no_contraction" not in off


def test_an_untagged_cine_is_flagged_not_measured_quietly():
    from raytag.tracking.measure import measure_slice

    rng = np.random.default_rng(0)
    frames = rng.normal(100, 5, (20, 96, 96))
    k = np.arange(24)[:, None]
    r = np.arange(7)[None, :]
    ang = np.deg2rad(15 * k)
    ring = np.stack([48 + (10 + r) * np.cos(ang), 48 + (10 + r) * np.sin(ang)], -1)
    net = np.broadcast_to(ring.reshape(168, 2), (20, 168, 2)).copy()
    m = measure_slice(frames, np.ones(20, bool), np.array([1.4, 1.4]), net, "hybrid")
    assert "no_tag_grid" in m.qc_flags and m.tracker == "network"


# -- through the pipeline, beside good participants ---------------------------------------


def test_hostile_folder_through_the_pipeline(tmp_path, ray_local):
    from raytag.pipeline.run import read_results, run_cohort

    src = tmp_path / "in"
    src.mkdir()
    good = [_name(eid="9000101"), _name(eid="9000102")]
    for n in good:
        (src / n).write_bytes(_zip())
    bad = {
        _name(eid="9000103", instance="99999999999999999999"): _zip(),
        _name(eid="9000104"): _edit(2, _constant(0)),
        _name(eid="9000101", array="1"): _zip(),  # same visit, another array: kept apart
        _name(eid="9000105"): b"not a zip",
    }
    for n, data in bad.items():
        (src / n).write_bytes(data)
    (src / os.fsdecode(b"9000106_20211_2_0\xff.zip")).write_bytes(_zip())
    os.symlink("/etc/passwd", src / _name(eid="9000107"))
    out = tmp_path / "run"
    (out / "results").mkdir(parents=True)
    (out / "results" / "someone_elses.parquet").write_bytes(b"PAR1 not ours")
    (out / "c000042_user_notes.txt").write_text("mine")
    summary = run_cohort(str(src), str(out), tracker="network", echo=lambda s: None)
    rows = read_results(str(out)).to_pylist()
    assert summary["duplicate_keys"] == 0
    by_uri = {}
    for r in rows:
        by_uri.setdefault(os.path.basename(r["source_uri"]), []).append(r)
    for n in good:
        assert [r["status"] for r in by_uri[n]] == ["ok"] * 3
    assert by_uri[_name(eid="9000101", array="1")][0]["array"] == 1
    assert {r["array"] for r in by_uri[good[0]]} == {0}
    overflow = by_uri[_name(eid="9000103", instance="99999999999999999999")]
    assert overflow[0]["reason"] == "bad_name"
    zero = {r["slice_index"]: r for r in by_uri[_name(eid="9000104")]}
    assert zero[2]["reason"] == "bad_image_content" and zero[1]["status"] == "ok"
    assert by_uri[_name(eid="9000105")][0]["reason"] == "not_a_zip"
    link = by_uri[_name(eid="9000107")][0]
    assert link["reason"] == "unsafe_input" and "root:" not in link["error"]
    utf8 = [r for name, rs in by_uri.items() if "\\xff" in name for r in rs]
    assert utf8 and utf8[0]["reason"] == "bad_name"
    # files raytag did not write are still there, and were never read as results
    assert (out / "results" / "someone_elses.parquet").read_bytes() == b"PAR1 not ours"
    assert (out / "c000042_user_notes.txt").read_text() == "mine"
    assert storage.basename(str(out))  # the run folder itself is intact
