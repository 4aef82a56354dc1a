"""``read_participant``: one UK Biobank tagging zip -> one :class:`SliceRecord` per slice.

The DICOM headers decide everything (the manifest is only cross-checked). Nothing is
extracted to disk, and nothing raises to the caller: any problem becomes a ``failed``
record with a specific reason, and problems in one slice never cost the others.
"""

from __future__ import annotations

import os
from collections import Counter, defaultdict

import numpy as np

from raytag.constants import MAX_FRAMES_PER_SERIES, MAX_ZIP_BYTES, N_FRAMES, SLICE_LABELS
from raytag.failures import Reason
from raytag.io import fastdicom, storage
from raytag.io.dicom import FrameHeader, decode_frame, read_header
from raytag.io.errors import IngestError
from raytag.io.manifest import MANIFEST_NAMES, ManifestTooLarge, parse_manifest
from raytag.io.records import SliceRecord
from raytag.io.safezip import SafeZip
from raytag.io.ukb_names import parse_zip_name, tagging_slice_index

__all__ = ["read_participant", "Source"]

#: A participant zip: a local path, a storage URI (``s3://...``), or ``(name, bytes)``.
Source = str | os.PathLike | tuple[str, bytes]

#: QC flags (warnings that do not fail a slice). Identifiers, so cohorts can count them.
#: Bytes of a member read to parse its header on the fast path (UK Biobank's: ~1.3 kB).
HEAD_BYTES = 4096
#: Members declaring at most this many bytes are inflated whole, once, while their header
#: is read, and kept for decoding (a UK Biobank frame is ~130 kB): starting an inflate
#: costs about 60% of inflating a whole frame, so a separate header read was most of a
#: second inflate per frame. Larger members get a header read first (they are rarely
#: frames of the chosen series, and an unwanted large member is never inflated whole).
WHOLE_READ_BYTES = 2 * 1024**2

QC_REPEATED_SERIES = "repeated_series"
QC_PADDED = "padded_frames"
QC_TRUNCATED = "truncated_frames"
QC_FRAME_COUNT_MISMATCH = "frame_count_ne_cardiac_number_of_images"
QC_ORDER_BY_INSTANCE = "ordered_by_instance_number"
QC_DUPLICATE_TRIGGER = "duplicate_trigger_times"
QC_SPACING_VARIES = "pixel_spacing_varies"
QC_NOT_MONOTONIC = "slice_positions_not_monotonic"
QC_MANIFEST_MISSING = "manifest_lists_missing_files"
QC_NO_MANIFEST = "no_manifest"
QC_SIGNED_OFFSET = "signed_pixels_offset"
QC_RESCALED_16_BITS = "pixels_rescaled_to_16_bits"
QC_FLOAT_SCALED = "float_pixels_scaled"
QC_UNREADABLE_MEMBERS = "unreadable_members_skipped"
QC_MANIFEST_IGNORED = "manifest_over_limits_ignored"


def _source_name(source: Source) -> str:
    """The source's name or URI; ``TypeError`` for a source of the wrong type (a caller bug)."""
    if isinstance(source, tuple):
        if len(source) != 2 or not isinstance(source[1], (bytes, bytearray, memoryview)):
            raise TypeError("a (name, bytes) source must be a 2-tuple of str and bytes")
        return str(source[0])
    if isinstance(source, (str, os.PathLike)):
        return os.fspath(source)
    raise TypeError(
        f"source must be a path, a storage URI or (name, bytes), not {type(source).__name__}"
    )


def _load(source: Source, uri: str) -> bytes:
    if isinstance(source, tuple):
        return bytes(source[1])
    try:
        return storage.read_bytes(uri, max_bytes=MAX_ZIP_BYTES)
    except storage.StorageError as exc:
        raise IngestError(str(exc), exc.reason) from exc


def _participant_failure(uri: str, message: str, reason: Reason, eid: str | None = None,
                         instance: int | None = None, array: int | None = None,
                         ) -> list[SliceRecord]:
    if eid is None:
        eid = storage.basename(uri).rsplit(".", 1)[0] or "unknown"
    rec = SliceRecord(eid=eid, instance=instance, slice_index=None, source_uri=uri, array=array)
    return [rec.fail(message, reason=reason)]


def read_participant(source: Source, n_frames: int = N_FRAMES) -> list[SliceRecord]:
    """Read one participant visit's tagging zip into slice records (failed ones included).

    Returns the slices found, ordered by ``slice_index``; a slice among b1..b3 missing from
    a zip that has the others gets a ``failed`` record saying so, so a cohort table shows
    every expected slice. A zip that cannot be read at all, or holds no tagging series,
    gives a single ``failed`` record with ``slice_index`` None. Never raises for bad
    input (only ``TypeError`` for a source of the wrong type).
    """
    uri = _source_name(source)
    try:
        return _read_participant(source, uri, n_frames)
    except Exception as exc:  # noqa: BLE001 - last net: bad input is a row, never a crash
        try:  # keep the participant's identity when the name has one
            v = parse_zip_name(uri)
            ident = (v.eid, v.instance, v.array)
        except IngestError:
            ident = (None, None, None)
        return _participant_failure(
            uri, f"unexpected error reading the zip: {type(exc).__name__}: {str(exc)[:300]}",
            Reason.UNEXPECTED, *ident)


def _read_participant(source: Source, uri: str, n_frames: int) -> list[SliceRecord]:
    try:
        visit = parse_zip_name(uri)
    except IngestError as exc:
        return _participant_failure(uri, str(exc), exc.reason)
    try:
        data = _load(source, uri)
        zf = SafeZip(data)
    except IngestError as exc:
        return _participant_failure(uri, str(exc), exc.reason, visit.eid, visit.instance,
                                    visit.array)

    try:
        headers, skipped, unreadable, inflated = _scan_headers(zf)
    except IngestError as exc:
        return _participant_failure(uri, str(exc), exc.reason, visit.eid, visit.instance,
                                    visit.array)
    skipped += unreadable
    participant_flags = _manifest_flags(zf)
    if unreadable:
        participant_flags.append(QC_UNREADABLE_MEMBERS)
    by_slice: dict[int, dict[str, list[FrameHeader]]] = defaultdict(lambda: defaultdict(list))
    for h in headers:
        idx = tagging_slice_index(h.series_description)
        if idx is not None:
            by_slice[idx][h.series_uid].append(h)
    if not by_slice:
        descs = sorted({h.series_description for h in headers if h.series_description})
        found = f"; series found: {', '.join(descs[:6])}" if descs else ""
        return _participant_failure(
            uri,
            f"no tagging series (CINE_tagging_3sl_SAX_b<N>s) among {len(zf.names)} members "
            f"({len(headers)} DICOM, {skipped} not DICOM or unreadable){found}",
            Reason.NO_TAGGING_SERIES,
            visit.eid,
            visit.instance,
            visit.array,
        )

    records = []
    for idx in sorted(set(by_slice) | set(SLICE_LABELS)):
        rec = SliceRecord(eid=visit.eid, instance=visit.instance, slice_index=idx, source_uri=uri,
                          array=visit.array)
        rec.qc_flags.extend(participant_flags)
        if idx not in by_slice:
            rec.fail(f"slice b{idx} ({SLICE_LABELS[idx]}) has no tagging series in the zip",
                     reason=Reason.SLICE_MISSING)
        elif idx not in SLICE_LABELS:
            rec.fail(f"series names slice b{idx}; UK Biobank tagging has slices b1..b3",
                     reason=Reason.NO_TAGGING_SERIES)
        else:
            try:
                _fill_slice(rec, zf, inflated, by_slice[idx], n_frames)
            except IngestError as exc:
                rec.fail(str(exc), reason=exc.reason)
            except Exception as exc:  # noqa: BLE001 - last net: one slice never costs the others
                rec.fail(f"unexpected error reading the slice: {type(exc).__name__}: {exc}",
                         reason=Reason.UNEXPECTED)
        records.append(rec)
    _flag_slice_order(records)
    return records


def _scan_headers(zf: SafeZip) -> tuple[list[FrameHeader], int, int, dict[str, bytes]]:
    """Headers of every DICOM member (no pixels decoded); counts of members skipped (not
    DICOM) and unreadable (encrypted, corrupt: skipped too); and the inflated bytes of the
    DICOM members read whole (:data:`WHOLE_READ_BYTES`), by name, so that no member is
    inflated twice. Raises when a member (or all together) inflates past the budgets: a
    decompression bomb fails the participant."""
    headers, skipped, unreadable, inflated = [], 0, 0, {}
    parser = fastdicom.HeaderParser()  # one element walk per series, not per member
    for name in zf.names:
        if name.rsplit("/", 1)[-1].lower() in MANIFEST_NAMES:
            continue
        try:
            whole = _read_whole(zf, name)
            # the fast path needs only the member's first few kB (its header)
            h = parser.parse(
                name, whole if whole is not None else zf.read_head(name, HEAD_BYTES))
            if h is None:
                whole = zf.read(name) if whole is None else whole
                h = read_header(name, whole)
        except IngestError as exc:
            if exc.reason == Reason.OVER_LIMITS:
                raise
            unreadable += 1
            continue
        if h is None:
            skipped += 1
        else:
            headers.append(h)
            if whole is not None:
                inflated[name] = whole
    return headers, skipped, unreadable, inflated


def _read_whole(zf: SafeZip, name: str) -> bytes | None:
    """The member inflated whole when it is small enough to keep (:data:`WHOLE_READ_BYTES`);
    None when it is larger, or when it cannot be read whole (a failed CRC, a corrupt
    stream): its header is then read on its own, as before this cache, so a corrupt frame
    of a chosen series still fails its slice (``corrupt_zip``) when it is decoded, and is
    never silently dropped from the cine. A decompression bomb raises (the participant
    fails)."""
    if zf.declared_size(name) > WHOLE_READ_BYTES:
        return None
    try:
        return zf.read(name)
    except IngestError as exc:
        if exc.reason == Reason.OVER_LIMITS:
            raise
        return None


def _manifest_flags(zf: SafeZip) -> list[str]:
    names = {n.rsplit("/", 1)[-1].lower(): n for n in zf.names}
    manifest = next((names[m] for m in MANIFEST_NAMES if m in names), None)
    if manifest is None:
        return [QC_NO_MANIFEST]
    try:
        entries = parse_manifest(zf.read(manifest).decode("utf-8", errors="replace"))
    except IngestError:
        return [QC_NO_MANIFEST]
    except ManifestTooLarge:
        return [QC_MANIFEST_IGNORED]
    present = {n.rsplit("/", 1)[-1] for n in zf.names}
    if any(e.filename.rsplit("/", 1)[-1] not in present for e in entries):
        return [QC_MANIFEST_MISSING]
    return []


def _series_rank(frames: list[FrameHeader]) -> tuple:
    """Sort key of a candidate series: the best one is the maximum."""
    usable = all(h.problem is None for h in frames)
    cnoi = Counter(h.cardiac_number_of_images for h in frames).most_common(1)[0][0]
    complete = cnoi is not None and len(frames) == cnoi
    numbers = [h.series_number for h in frames if h.series_number is not None]
    try:
        acq = max(float(h.acquisition_time) for h in frames if h.acquisition_time)
    except ValueError:
        acq = -1.0
    return (usable, complete, max(numbers, default=-1), acq)


def _fill_slice(rec: SliceRecord, zf: SafeZip, inflated: dict[str, bytes],
                series: dict[str, list[FrameHeader]], n_frames: int) -> None:
    """Choose the slice's series, order and decode its frames into ``rec`` (or raise).
    ``inflated``: members already inflated by the header scan (the rest are read here)."""
    candidates = sorted(series.values(), key=_series_rank, reverse=True)
    frames = candidates[0]
    rec.n_candidate_series = len(candidates)
    if len(candidates) > 1:
        rec.qc_flags.append(QC_REPEATED_SERIES)
    first = frames[0]
    rec.series_uid = first.series_uid
    rec.series_number = first.series_number
    rec.series_description = first.series_description

    bad = [h for h in frames if h.problem]
    if bad:
        raise IngestError(f"series {first.series_description!r}: {bad[0].problem}",
                          bad[0].problem_reason or Reason.BAD_HEADER)
    sizes = Counter((h.rows, h.cols) for h in frames)
    if len(sizes) > 1:
        detail = ", ".join(f"{r}x{c} ({n} frames)" for (r, c), n in sizes.most_common())
        raise IngestError(f"frames of mismatched size within the series: {detail}",
                          Reason.MISMATCHED_FRAMES)

    if len(frames) > MAX_FRAMES_PER_SERIES:
        raise IngestError(f"series has {len(frames)} frames, more than the limit "
                          f"{MAX_FRAMES_PER_SERIES}", Reason.OVER_LIMITS)
    frames = _order_frames(rec, frames)
    rec.n_frames = len(frames)
    cnoi = first.cardiac_number_of_images
    if cnoi is not None and cnoi != len(frames):
        rec.qc_flags.append(QC_FRAME_COUNT_MISMATCH)
    if len(frames) < n_frames:
        rec.qc_flags.append(QC_PADDED)
    elif len(frames) > n_frames:
        rec.qc_flags.append(QC_TRUNCATED)
    kept = frames[:n_frames]

    spacings = Counter(h.pixel_spacing_mm for h in frames)
    if len(spacings) > 1:
        rec.qc_flags.append(QC_SPACING_VARIES)
    rec.pixel_spacing_mm = np.asarray(spacings.most_common(1)[0][0], dtype=np.float64)
    positions = [h.position_mm for h in frames if h.position_mm is not None]
    rec.slice_position_mm = float(np.median(positions)) if positions else None

    rows, cols = first.rows, first.cols
    # decode only the chosen series, only the kept frames; uint16 frames (what UK Biobank
    # stores) go straight into the output, anything else through _to_uint16 as a slice
    out = np.zeros((n_frames, rows, cols), dtype=np.uint16)
    decoded = [_decode(h, inflated[h.member] if h.member in inflated else zf.read(h.member))
               for h in kept]
    if all(d.dtype == np.uint16 for d in decoded):
        for t, d in enumerate(decoded):
            out[t] = d
    else:
        out[: len(kept)] = _to_uint16(np.stack(decoded), rec.qc_flags)
    _check_content(out[: len(kept)])
    rec.frames = out
    rec.frame_valid = np.arange(n_frames) < len(kept)
    times = np.full(n_frames, np.nan)
    if all(h.trigger_time_ms is not None for h in kept):
        times[: len(kept)] = [h.trigger_time_ms for h in kept]
    rec.trigger_time_ms = times


def _decode(h: FrameHeader, data: bytes) -> np.ndarray:
    """One frame's stored values: straight from the bytes on the fast path, else pydicom
    (which also words every error)."""
    arr = fastdicom.pixels(h, data) if h.pixel_offset is not None else None
    return arr if arr is not None else decode_frame(h, data)


def _to_uint16(values: np.ndarray, flags: list[str]) -> np.ndarray:
    """A slice's stored values as uint16, keeping them as *values*: signed data with
    negatives are offset by their minimum (not clipped at 0, which would cut the image),
    more than 16 bits or non-integral floats are scaled; each case is flagged."""
    v = values
    if v.dtype == np.uint16:
        return v
    if v.dtype == np.uint8:
        return v.astype(np.uint16)
    if v.dtype.kind == "f":
        if np.all(v == np.round(v)) and v.min() >= 0 and v.max() <= 65535:
            return v.astype(np.uint16)
        flags.append(QC_FLOAT_SCALED)
        lo, hi = float(v.min()), float(v.max())
        return np.round((v - lo) * (4095.0 / max(hi - lo, 1e-12))).astype(np.uint16)
    v = v.astype(np.int64)
    lo, hi = int(v.min()), int(v.max())
    if lo < 0:
        flags.append(QC_SIGNED_OFFSET)
        v, hi, lo = v - lo, hi - lo, 0
    if hi > 65535:
        flags.append(QC_RESCALED_16_BITS)
        v = v * (65535.0 / hi)
    return np.asarray(v).astype(np.uint16)


def _check_content(frames: np.ndarray) -> None:
    """Refuse pixels that cannot be measured (``bad_image_content``): no signal at all, or
    every frame the same image (nothing moves, so any strain would be made up)."""
    lo, hi = int(frames.min()), int(frames.max())
    if lo == hi:
        raise IngestError(f"no signal: every pixel of every frame is {lo}",
                          Reason.BAD_IMAGE_CONTENT)
    if len(frames) > 1 and all(np.array_equal(frames[0], f) for f in frames[1:]):
        raise IngestError(f"all {len(frames)} frames are the same image: nothing to track",
                          Reason.BAD_IMAGE_CONTENT)


def _order_frames(rec: SliceRecord, frames: list[FrameHeader]) -> list[FrameHeader]:
    """Order by TriggerTime (ties by InstanceNumber); InstanceNumber if any time is missing."""
    if all(h.trigger_time_ms is not None for h in frames):
        triggers = [h.trigger_time_ms for h in frames]
        if len(set(triggers)) < len(triggers):
            rec.qc_flags.append(QC_DUPLICATE_TRIGGER)
        return sorted(frames, key=lambda h: (h.trigger_time_ms, h.instance_number or 0))
    if all(h.instance_number is not None for h in frames):
        rec.qc_flags.append(QC_ORDER_BY_INSTANCE)
        return sorted(frames, key=lambda h: h.instance_number)
    raise IngestError("cannot order frames: TriggerTime and InstanceNumber both missing",
                      Reason.UNORDERED_FRAMES)


def _flag_slice_order(records: list[SliceRecord]) -> None:
    """Flag every slice when positions along the normal are not monotonic b1 -> b3."""
    placed = [r for r in records if r.ok and r.slice_position_mm is not None]
    if len(placed) < 2:
        return
    steps = np.diff([r.slice_position_mm for r in placed])
    if not (np.all(steps > 0) or np.all(steps < 0)):
        for r in placed:
            r.qc_flags.append(QC_NOT_MONOTONIC)
