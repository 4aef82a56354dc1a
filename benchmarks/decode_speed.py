"""Decoding speed per core: raytag's reader against plain pydicom and the inflate floor.

On the same participant zips, in one process, interleaved ``--repeats`` times (medians
reported, so machine load drifts alike for every method). The headline ratio, reader
against the zlib floor, is taken repeat by repeat from the two timed back to back (a
shared VM's speed drifts by 10-20% over seconds) and reported as the median with its
min and max:

- ``read_participant``: raytag's ingest (fast path: one partial inflate and a hand-rolled
  element walk per member header, pixels read straight from the kept frames' bytes);
- ``pydicom``: ``pydicom.dcmread(member).pixel_array`` for every DICOM member;
- ``inflate_zlib``: inflating every member with the standard zlib, nothing else (the
  floor of any reader that inflates with zlib);
- ``inflate_isal``: the same with ISA-L (what raytag inflates with).

    python benchmarks/decode_speed.py --json benchmarks/results/decode_speed.json
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import tempfile
import time
import zipfile
import zlib

import pydicom
from isal import isal_zlib
from provenance import commit, machine, save_json  # benchmarks/provenance.py (run as a script)

from raytag.io import read_participant
from raytag.phantom.cohort import SynthConfig
from raytag.pipeline.synth import synthesise


def _members(data: bytes) -> list[tuple[zipfile.ZipInfo, bytes]]:
    zf = zipfile.ZipFile(io.BytesIO(data))
    out = []
    for info in zf.infolist():
        off = info.header_offset
        n, m = int.from_bytes(data[off + 26: off + 28], "little"), int.from_bytes(
            data[off + 28: off + 30], "little")
        start = off + 30 + n + m
        out.append((info, data[start: start + info.compress_size]))
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--participants", type=int, default=12)
    ap.add_argument("--family", default="disc")
    ap.add_argument("--repeats", type=int, default=9)
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        synthesise(tmp, SynthConfig(args.participants, seed=77, family=args.family),
                   workers=1)
        zips = sorted(f for f in os.listdir(tmp) if f.endswith(".zip"))
        datas = [(z, open(os.path.join(tmp, z), "rb").read()) for z in zips]
    raw = [_members(d) for _, d in datas]
    n_members = sum(len(r) for r in raw)
    n_dicom = sum(1 for r in raw for i, _ in r if i.filename.endswith(".dcm"))

    def reader():
        return sum(int(r.frame_valid.sum()) for d in datas for r in read_participant(d)
                   if r.ok)

    def plain():
        for _, d in datas:
            zf = zipfile.ZipFile(io.BytesIO(d))
            for i in zf.infolist():
                if i.filename.endswith(".dcm"):
                    pydicom.dcmread(io.BytesIO(zf.read(i))).pixel_array  # noqa: B018
        return n_dicom

    def inflate(lib):
        def run():
            for members in raw:
                for _, comp in members:
                    lib.decompress(comp, -15)
            return n_members
        return run

    # the reader and the zlib floor back to back: their ratio is the acceptance figure
    methods = {"read_participant": reader, "inflate_zlib": inflate(zlib),
               "inflate_isal": inflate(isal_zlib), "pydicom": plain}
    rates: dict[str, list[float]] = {k: [] for k in methods}
    for _ in range(args.repeats):
        for name, fn in methods.items():
            t0 = time.perf_counter()
            items = fn()
            rates[name].append(items / (time.perf_counter() - t0))
    med = {k: statistics.median(v) for k, v in rates.items()}
    paired = [r / z for r, z in zip(rates["read_participant"], rates["inflate_zlib"],
                                    strict=True)]
    result = {
        "machine": machine(), "commit": commit(),
        "participants": args.participants, "family": args.family, "members": n_members,
        "per_second_median": {k: round(v, 1) for k, v in med.items()},
        "units": {"read_participant": "frames decoded", "pydicom": "DICOM members",
                  "inflate_zlib": "members", "inflate_isal": "members"},
        "reader_vs_zlib_floor": round(statistics.median(paired), 3),
        "reader_vs_zlib_floor_min_max": [round(min(paired), 3), round(max(paired), 3)],
        "reader_vs_pydicom": round(med["read_participant"] / med["pydicom"], 3),
        "reader_vs_isal_floor": round(med["read_participant"] / med["inflate_isal"], 3),
        "repeats": args.repeats,
    }
    for k, v in med.items():
        print(f"{k:18s} {v:8.0f} /s")
    lo, hi = result["reader_vs_zlib_floor_min_max"]
    print(f"reader / zlib floor: {result['reader_vs_zlib_floor']:.2f} ({lo:.2f}-{hi:.2f}), "
          f"reader / pydicom: {result['reader_vs_pydicom']:.2f}")
    save_json(result, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
