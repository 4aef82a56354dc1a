"""Accuracy of a weights pair on a synthetic test cohort, decomposed (the model card's numbers).

    python benchmarks/weights_accuracy.py [--weights DIR] [--json OUT]
        [--data COHORT | --seed S --participants N]

Three settings on the same slices, so their differences are attributable:

- ``truth_boxes``: the tracker on crops around the *truth* ROI boxes (what it was trained on;
  the localiser taken out of the loop);
- ``refine0``: the paper's pipeline, localiser box -> tracker, one pass;
- ``refine1``: raytag's default, plus one pass on the box re-fitted to the tracked ED
  landmarks (:class:`raytag.models.predictor.Predictor` ``refine_passes``).

Metrics (:func:`raytag.metrics.summarise`, the same as training and ``raytag
evaluate``): ROI IoU, landmark RMSE (mm) at ED/ES, ES strain error bias and SD at the truth
ES frame, plus the Pearson r of predicted vs true ES strain. Default data: a fresh cohort
generated with ``--seed`` (never a training seed).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time

import numpy as np
import torch

from raytag import geometry
from raytag.constants import PAD_SIZE
from raytag.io.labelled import read_synthetic_cohort
from raytag.metrics import summarise
from raytag.models.weights import load_predictor
from raytag.phantom.cohort import SynthConfig
from raytag.pipeline.synth import synthesise
from raytag.strain import compute_strains
from raytag.train.evaluate import predict_labelled


class _GivenBoxes(torch.nn.Module):
    """A stand-in localiser returning given padded boxes ``(N, 4)``, in call order."""

    def __init__(self, boxes: np.ndarray):
        super().__init__()
        self.boxes, self.next = boxes, 0

    def forward(self, x):
        b = x.shape[0]
        self.next += b
        return torch.as_tensor(self.boxes[self.next - b : self.next], dtype=torch.float32)


def _measure(predictor, items, truth_boxes: bool) -> dict:
    real_localiser = predictor.localiser
    if truth_boxes:  # the truth ROI boxes, shifted into the predictor's padded frame
        padded = []
        for it in items:
            r, c = geometry.pad_to_square(it.record.frames, PAD_SIZE)[1]
            padded.append(np.asarray(it.bbox_px) + np.array([c, r, c, r]))
        predictor.localiser = _GivenBoxes(np.stack(padded))
    try:
        a = predict_labelled(predictor, items)
    finally:
        predictor.localiser = real_localiser
    m = summarise(a["pred_mm"], a["true_mm"], a["valid"], a["es"], a["pred_box"],
                  a["true_box"])
    sp = compute_strains(a["pred_mm"], frame_valid=a["valid"], es_frame=a["es"])
    st = compute_strains(a["true_mm"], frame_valid=a["valid"], es_frame=a["es"])
    for k in ("circ_global", "radial"):
        m[f"es_{k}_r"] = float(np.corrcoef(sp[f"es_{k}"], st[f"es_{k}"])[0, 1])
        m[f"es_{k}_truth_sd"] = float(np.std(st[f"es_{k}"], ddof=1))
    return m


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights", default=None, help="weights folder (default: shipped)")
    ap.add_argument("--data", default=None, help="synthetic cohort folder (default: generate)")
    ap.add_argument("--seed", type=int, default=4242)
    ap.add_argument("--participants", type=int, default=40)
    ap.add_argument("--limit", type=int, default=None, help="first N participants of --data")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    with tempfile.TemporaryDirectory() as tmp:
        data = args.data
        if data is None:
            data = os.path.join(tmp, "cohort")
            synthesise(data, SynthConfig(args.participants, seed=args.seed), workers=1)
        items = list(read_synthetic_cohort(data, limit=args.limit))
        results = {}
        for name, passes, truth in (("truth_boxes", 0, True), ("refine0", 0, False),
                                    ("refine1", 1, False)):
            predictor = load_predictor(args.weights, device="cpu", refine_passes=passes)
            t0 = time.perf_counter()
            results[name] = _measure(predictor, items, truth)
            results[name]["seconds"] = round(time.perf_counter() - t0, 2)
            print(name, json.dumps({k: round(v, 4) for k, v in results[name].items()
                                    if isinstance(v, float)}))
    report = {"data": args.data or f"generated: seed {args.seed}, {args.participants} "
              "participants", "n_slices": len(items), "model_version": predictor.model_version,
              "machine": f"{platform.machine()} {os.cpu_count()} CPUs, "
                         f"{platform.python_version()}, torch {torch.__version__}",
              "results": results}
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1)


if __name__ == "__main__":
    main()
