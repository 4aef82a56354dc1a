"""The shipped default weights, checked for real on a fresh synthetic cohort.

The cohort's seed (31337) is used nowhere in training, tuning or model selection (the card
lists the seeds), so this is held-out data of a family the weights were trained on
(``disc``). The bounds are the model card's claims for that family, with room for 24
slices' sampling noise; a broken model fails them (untrained networks give IoU ~0.54,
landmark RMSE near 30 mm and no correlation with the truth):

- default pipeline (``tags``: ED geometry from tag persistence, HARP): measured here IoU
  0.951, RMSE ES 2.9 mm, ES circ +0.013 +- 0.042 (truth SD 0.036, r 0.44), radial -0.001
  +- 0.143; on the card's test cohort (seed 9301) circ -0.002 +- 0.018 (r 0.87). A few
  slices whose fitted contour misses the wall make the SD: the card says so.
- ``--tracker harp`` (the ED-geometry network's landmarks, HARP): measured here ES circ
  +0.024 +- 0.017 (r 0.88); the card claims skill beyond the cohort mean on ``disc`` for
  it (error SD below the truth's), so that is asserted.
"""

from __future__ import annotations

import numpy as np
import pytest

from raytag.io.labelled import read_synthetic_cohort
from raytag.metrics import summarise
from raytag.models.weights import UNTRAINED, load_predictor, shipped_weights
from raytag.phantom.cohort import SynthConfig
from raytag.pipeline.synth import synthesise
from raytag.strain import compute_strains
from raytag.train.evaluate import predict_labelled

FRESH_SEED = 31337


@pytest.fixture(scope="module")
def fresh_cohort(tmp_path_factory):
    out = tmp_path_factory.mktemp("fresh") / "cohort"
    synthesise(str(out), SynthConfig(8, seed=FRESH_SEED), workers=1)
    return list(read_synthetic_cohort(str(out)))


def test_shipped_weights_are_packaged_and_load():
    folder = shipped_weights()
    assert folder, "raytag/models/weights/ holds no localiser.pt + tracker.pt"
    predictor = load_predictor(device="cpu")
    assert UNTRAINED not in predictor.model_version


def _measure(cohort, tracking=None):
    predictor = load_predictor(device="cpu", tracking=tracking)
    a = predict_labelled(predictor, cohort)
    m = summarise(a["pred_mm"], a["true_mm"], a["valid"], a["es"], a["pred_box"],
                  a["true_box"])
    # error SD alone cannot catch a model that outputs the population mean: the predicted
    # ES circ strain must also follow the truth from slice to slice
    pred = compute_strains(a["pred_mm"], a["valid"], a["es"])
    true = compute_strains(a["true_mm"], a["valid"], a["es"])
    m["r"] = float(np.corrcoef(pred["es_circ_global"], true["es_circ_global"])[0, 1])
    return m


def test_shipped_weights_measure_strain_on_a_fresh_cohort(fresh_cohort):
    m = _measure(fresh_cohort)  # the default tracker
    assert m["n_slices"] == 24
    assert m["iou_mean"] >= 0.85, m
    assert m["rmse_es_mm_mean"] <= 4.0, m
    assert abs(m["es_circ_global_bias"]) <= 0.03 and m["es_circ_global_sd"] <= 0.05, m
    assert abs(m["es_radial_bias"]) <= 0.1 and m["es_radial_sd"] <= 0.2, m
    assert m["r"] >= 0.3, m


def test_the_ed_network_with_harp_has_skill_on_its_training_family(fresh_cohort):
    m = _measure(fresh_cohort, tracking="harp")
    assert m["rmse_es_mm_mean"] <= 4.0, m
    assert abs(m["es_circ_global_bias"]) <= 0.05, m
    assert m["es_circ_global_sd"] <= min(0.035, m["es_circ_global_true_sd"]), m
    # radial: the card says it is not usable yet with this tracker; what it claims is
    # bounded, so a track that explodes still fails here
    assert abs(m["es_radial_bias"]) <= 0.3 and m["es_radial_sd"] <= 0.45, m
    assert m["r"] >= 0.6, m
