"""Synthetic participants -> UK Biobank-style zips + a truth table (pure numpy, no Ray).

Participant ``i`` of a cohort with seed ``S`` has EID ``9000000 + i`` and is generated
from its own random stream ``SeedSequence([S, i])``: the output is byte-identical whatever
the number of workers or the order in which participants are made. Faults (for tests and
benchmarks) are drawn from a separate stream, so turning them on does not change anatomy.

Truth rows use the results-table schema (``raytag.results``) with exact landmarks and
strains, plus ``group``, ``fault``, ``expected_status`` and ``params_json``.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
from pydicom.uid import generate_uid

from raytag import geometry
from raytag.constants import (
    N_FRAMES,
    STATUS_FAILED,
    STATUS_OK,
    SYNTHETIC_EID_START,
)
from raytag.io.records import SliceRecord
from raytag.io.ukb_writer import SeriesSpec, participant_zip
from raytag.phantom.families import Family, draw_family, get_family
from raytag.phantom.params import ParticipantParams
from raytag.results import RESULTS_SCHEMA, result_row
from raytag.strain import compute_strains

__all__ = [
    "FAULTS",
    "SynthConfig",
    "GeneratedParticipant",
    "parse_faults",
    "generate_participant",
    "TRUTH_SCHEMA",
    "truth_table",
]

#: Injectable faults: what each does to the participant's zip.
FAULTS = {
    "missing_slice": "one slice's series is left out of the zip",
    "truncated_file": "the zip is cut short (a partial upload or download)",
    "duplicate_series": "one slice also has an older, incomplete repeat series",
    "fewer_frames": "one slice is acquired with fewer than 20 frames",
    "corrupt_zip": "the zip's bytes are overwritten with garbage",
}

TRUTH_SCHEMA = RESULTS_SCHEMA.append(pa.field("group", pa.string())) \
    .append(pa.field("fault", pa.string())) \
    .append(pa.field("expected_status", pa.string())) \
    .append(pa.field("params_json", pa.string())) \
    .append(pa.field("family", pa.string()))

TRUTH_MODEL_VERSION = "synthetic-truth"


@dataclass(frozen=True)
class SynthConfig:
    """A cohort: size, seed, generator family, frames per cine, covariate mix, fault rates.

    ``family``: one name of :data:`raytag.phantom.families.FAMILIES`, or several joined by
    commas (a mixture: each participant draws one, equally likely, from its own stream).
    ``n_frames``: frames per cine, or None for the family's own choice (``disc``: 20;
    ``thorax``/``patchwork``: 20 or 15-30).
    """

    n_participants: int
    seed: int = 0
    instance: int = 2
    n_frames: int | None = None
    impaired_fraction: float = 0.2
    faults: dict[str, float] = field(default_factory=dict)
    family: str = "disc"

    def __post_init__(self):
        unknown = set(self.faults) - set(FAULTS)
        if unknown:
            raise ValueError(f"unknown fault(s) {sorted(unknown)}; known: {sorted(FAULTS)}")
        if sum(self.faults.values()) > 1 or any(v < 0 for v in self.faults.values()):
            raise ValueError("fault rates must be >= 0 and sum to at most 1")
        if self.n_participants < 0:
            raise ValueError("n_participants must be >= 0")
        if self.n_frames is not None and self.n_frames < 2:
            raise ValueError("n_frames must be at least 2")
        for name in self.families:
            get_family(name)

    @property
    def families(self) -> tuple[str, ...]:
        return tuple(n.strip() for n in self.family.split(",") if n.strip())


def parse_faults(text: str | None) -> dict[str, float]:
    """``"missing_slice=0.1,corrupt_zip=0.05"`` -> ``{"missing_slice": 0.1, ...}``."""
    out: dict[str, float] = {}
    for item in (text or "").split(","):
        if not item.strip():
            continue
        name, _, rate = item.partition("=")
        name = name.strip()
        if name not in FAULTS:
            raise ValueError(f"unknown fault {name!r}; known: {', '.join(sorted(FAULTS))}")
        try:
            out[name] = float(rate) if rate else 1.0
        except ValueError:
            raise ValueError(f"fault rate for {name!r} must be a number, got {rate!r}") from None
    return out


@dataclass
class GeneratedParticipant:
    """One participant's zip (name, bytes), truth rows, and (optionally) the images."""

    eid: str
    name: str
    data: bytes
    truth_rows: list[dict]
    fault: str | None
    images: list[dict] | None = None


def _streams(seed: int, index: int):
    """Independent anatomy/imaging, fault and family-choice streams for participant ``index``
    (spawned children depend only on their position, so adding the third kept the others)."""
    main, faults, family = np.random.SeedSequence([seed, index]).spawn(3)
    return (np.random.default_rng(main), np.random.default_rng(faults),
            np.random.default_rng(family))


def _draw_fault(rng: np.random.Generator, rates: dict[str, float]) -> str | None:
    u = rng.random()
    for name in sorted(rates):
        if u < rates[name]:
            return name
        u -= rates[name]
    return None


def generate_participant(
    index: int, config: SynthConfig, keep_images: bool = False
) -> GeneratedParticipant:
    """Generate participant ``index`` of the cohort: deterministic in (config.seed, index)."""
    rng, fault_rng, family_rng = _streams(config.seed, index)
    eid = str(SYNTHETIC_EID_START + index)
    names = config.families
    family = get_family(names[0] if len(names) == 1
                        else draw_family(family_rng, dict.fromkeys(names, 1.0)))
    params, targets = family.sample(rng, eid, config.instance, None, config.impaired_fraction,
                                    config.n_frames)
    fault = _draw_fault(fault_rng, config.faults)
    fault_slice = int(fault_rng.integers(1, 4))
    uid_root = f"raytag-synth/{config.seed}/{index}"

    specs, rows, images = [], [], []
    for sp in params.slices:
        sp = family.fit(sp, *targets[sp.slice_index])
        if fault == "fewer_frames" and sp.slice_index == fault_slice and sp.n_frames > 2:
            fewer = int(fault_rng.integers(max(2, sp.n_frames * 3 // 5), sp.n_frames))
            sp = dataclasses.replace(sp, n_frames=fewer)
        frames = family.render(sp, rng)
        spec = SeriesSpec(
            slice_index=sp.slice_index,
            frames=frames,
            pixel_spacing_mm=(sp.spacing_mm, sp.spacing_mm),
            trigger_times_ms=family.frame_times_ms(sp),
            position_mm=sp.position_mm,
            series_number=10 + sp.slice_index,
            acquisition_time=f"1{sp.slice_index}0000.000000",
            series_uid=generate_uid(entropy_srcs=[uid_root, str(sp.slice_index)]),
        )
        missing = fault == "missing_slice" and sp.slice_index == fault_slice
        if not missing:
            specs.append(spec)
        if fault == "duplicate_series" and sp.slice_index == fault_slice:
            # An interrupted earlier acquisition: fewer frames than CardiacNumberOfImages.
            specs.append(dataclasses.replace(
                spec, frames=frames[: len(frames) // 2], series_number=spec.series_number - 5,
                trigger_times_ms=spec.trigger_times_ms[: len(frames) // 2],
                cardiac_number_of_images=len(frames), acquisition_time="090000.000000",
                series_uid=generate_uid(entropy_srcs=[uid_root, str(sp.slice_index), "dup"]),
            ))
        # Truth has the pipeline's fixed length (first 20 frames, or padded), like the ingest.
        row, image = _truth(params, sp, frames, N_FRAMES, family)
        broken_zip = fault in ("truncated_file", "corrupt_zip")
        row["expected_status"] = STATUS_FAILED if (missing or broken_zip) else STATUS_OK
        row["fault"] = fault
        rows.append(row)
        images.append(image)

    name, data = participant_zip(
        eid, specs, instance=config.instance, rng=rng,
        study_uid=generate_uid(entropy_srcs=[uid_root, "study"]),
    )
    if fault == "truncated_file":
        data = data[: int(len(data) * fault_rng.uniform(0.2, 0.9))]
    elif fault == "corrupt_zip":
        data = fault_rng.integers(0, 256, len(data), dtype=np.uint8).tobytes()
    return GeneratedParticipant(eid, name, data, rows, fault, images if keep_images else None)


def _truth(params: ParticipantParams, sp, frames: np.ndarray, n_out: int,
           family: Family) -> tuple[dict, dict]:
    """The truth row of one slice (fixed to ``n_out`` frames like the ingest) and its images."""
    pts = family.landmarks(sp)[:n_out]
    valid = np.zeros(n_out, dtype=bool)
    valid[: len(pts)] = True
    if len(pts) < n_out:
        pts = np.concatenate([pts, np.full((n_out - len(pts), *pts.shape[1:]), np.nan)])
    spacing = np.array([sp.spacing_mm, sp.spacing_mm])
    # Strain from millimetres, like the predictor (equal to pixels when spacing is isotropic).
    strains = compute_strains(geometry.px_to_mm(pts, spacing), frame_valid=valid)
    box = geometry.roi_box(pts[0])
    record = SliceRecord(
        eid=params.eid, instance=params.instance, slice_index=sp.slice_index,
        n_frames=sp.n_frames, pixel_spacing_mm=spacing,
    )
    row = result_row(record, strains, pts, box, TRUTH_MODEL_VERSION)
    row["group"] = params.group
    row["params_json"] = json.dumps(sp.to_dict(), sort_keys=True)
    row["family"] = family.name
    image = {
        "frames": frames[:n_out], "landmarks": pts, "bbox": box, "frame_valid": valid,
        "label": f"{params.eid} {sp.slice_label} ({params.group}, {family.name})",
        "es_frame": int(strains["es_frame"]),
        "es_circ_global": float(strains["es_circ_global"]),
        "es_radial": float(strains["es_radial"]),
    }
    return row, image


def truth_table(rows: list[dict]) -> pa.Table:
    """Truth rows -> a table with :data:`TRUTH_SCHEMA`, sorted by (eid, slice_index)."""
    rows = sorted(rows, key=lambda r: (r["eid"], r["instance"], r["slice_index"]))
    return pa.Table.from_pylist(rows, schema=TRUTH_SCHEMA)


def write_participants(indices, config: SynthConfig, out_uri: str) -> list[dict]:
    """Generate participants ``indices`` and write their zips under ``out_uri``; truth rows.

    The unit of work of both the serial and the Ray driver: bytes never leave the worker.
    """
    from raytag.io import storage

    rows: list[dict] = []
    for i in indices:
        gp = generate_participant(int(i), config)
        storage.write_bytes(storage.join(out_uri, gp.name), gp.data)
        rows.extend(gp.truth_rows)
    return rows

