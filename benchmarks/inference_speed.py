"""Inference throughput of the localiser, the tracker and the whole predictor.

    python benchmarks/inference_speed.py [--presets lite paper] [--batches 1 4 16]
                                         [--device cpu|cuda] [--seconds 3] [--threads N]
                                         [--json OUT]

For each preset and batch size: slices/s and frames/s (20 frames per slice) of the
localiser (ED frame), the tracker (20 crops), the networks alone as the pipeline's model
actor calls them (``Predictor.predict_network``: what its CPU chunk size, ``MODEL_CHUNK``,
is set from) and the predictor end to end (padding, normalisation, both networks, batched
torch crop, maps back, strain) with the paper's single tracker pass and with raytag's
default one refinement pass, on random weights (speed does not depend on training; the
untrained tracker's template ring still gives a box to refine).
On CUDA the networks run under bf16 autocast.
The paper reports ~260 frames/s (~13 slices/s) end to end on an NVIDIA K40.
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import numpy as np
import torch

from raytag.constants import N_FRAMES
from raytag.io.records import SliceRecord
from raytag.models import build_localiser, build_tracker
from raytag.models.predictor import Predictor


def _rate(fn, n_slices: int, seconds: float, sync) -> float:
    fn()
    sync()  # warm-up (allocations, cuDNN autotune)
    reps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds or reps < 2:
        fn()
        reps += 1
    sync()
    return reps * n_slices / (time.perf_counter() - start)


def _records(batch: int, rng: np.random.Generator) -> list[SliceRecord]:
    return [
        SliceRecord(eid=str(9000000 + i), instance=2, slice_index=2,
                    frames=rng.integers(0, 140, (N_FRAMES, 256, 174)).astype(np.uint16),
                    frame_valid=np.ones(N_FRAMES, bool), n_frames=N_FRAMES,
                    pixel_spacing_mm=np.array([1.367, 1.367]))
        for i in range(batch)
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--presets", nargs="+", default=["lite", "paper"])
    ap.add_argument("--batches", nargs="+", type=int, default=[1, 4, 16])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--threads", type=int, default=None,
                    help="torch threads (default: torch's; a CPU model actor has 1)")
    ap.add_argument("--json", default=None, help="also write the rows as JSON here")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    amp = dict(device_type="cuda", dtype=torch.bfloat16) if device.type == "cuda" else None
    rng = np.random.default_rng(0)
    rows = []
    for preset in args.presets:
        loc = build_localiser(preset).eval().to(device)
        trk = build_tracker(preset).eval().to(device)
        predictor = Predictor(loc, trk, device=device, refine_passes=0)
        refining = Predictor(loc, trk, device=device, refine_passes=1)
        for b in args.batches:
            ed = torch.randn(b, 3, 256, 256, device=device)  # localiser_inputs: 3 channels
            crops = torch.randn(b, N_FRAMES, 128, 128, device=device)
            recs = _records(b, rng)

            def net(model, x):
                def run():
                    with torch.inference_mode(), (torch.autocast(**amp) if amp else
                                                  torch.autocast("cpu", enabled=False)):
                        model(x)
                return run

            r = {
                "preset": preset, "batch": b, "device": str(device),
                "localiser_slices_s": _rate(net(loc, ed), b, args.seconds, sync),
                "tracker_slices_s": _rate(net(trk, crops), b, args.seconds, sync),
                "network_slices_s": _rate(
                    lambda recs=recs, predictor=predictor: predictor.predict_network(recs), b,
                    args.seconds, sync),
                "predictor_slices_s": _rate(
                    lambda recs=recs, predictor=predictor: predictor.predict(recs), b,
                    args.seconds, sync),
                # raytag's default: one more tracker pass on the refined box
                "predictor_refine1_slices_s": _rate(
                    lambda recs=recs, refining=refining: refining.predict(recs), b,
                    args.seconds, sync),
            }
            rows.append(r)
            print(f"{preset:6s} batch {b:3d} {device.type}: localiser "
                  f"{r['localiser_slices_s']:8.1f} slices/s | tracker "
                  f"{r['tracker_slices_s'] * N_FRAMES:8.1f} frames/s | networks "
                  f"{r['network_slices_s']:6.2f} slices/s | predictor "
                  f"{r['predictor_slices_s']:6.2f} slices/s = "
                  f"{r['predictor_slices_s'] * N_FRAMES:7.1f} frames/s | refine 1 "
                  f"{r['predictor_refine1_slices_s'] * N_FRAMES:7.1f} frames/s", flush=True)
    machine = {
        "processor": platform.processor() or platform.machine(),
        "torch_threads": torch.get_num_threads(),
        "gpu": torch.cuda.get_device_name(0) if device.type == "cuda" else None,
        "torch": torch.__version__,
    }
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": machine, "rows": rows}, f, indent=1)
    print(json.dumps(machine))


if __name__ == "__main__":
    main()
