"""The shipped default weights, checked for real on a fresh synthetic cohort.

The cohort's seed (31337) is used nowhere in training (the card lists the training seeds),
so this is held-out data. Bounds are looser than the card's test metrics (24 slices here
versus 120 there) but tight enough that a broken model fails: untrained networks give an
ES circ bias of about +0.23, landmark RMSE near 30 mm and no correlation with the truth.
"""

from __future__ import annotations

import numpy as np
import pytest

from raytag import geometry
from raytag.io.labelled import read_synthetic_cohort
from raytag.models.weights import UNTRAINED, load_predictor, shipped_weights
from raytag.phantom.cohort import SynthConfig
from raytag.pipeline.synth import synthesise
from raytag.strain import compute_strains
from raytag.train.evaluate import evaluate

FRESH_SEED = 31337

# Transitional, until the first trained pair is committed (issue 5): then this goes.
pytestmark = pytest.mark.skipif(shipped_weights() is None,
                                reason="no trained weights shipped yet (issue 5)")


@pytest.fixture(scope="module")
def fresh_cohort(tmp_path_factory):
    out = tmp_path_factory.mktemp("fresh") / "cohort"
    synthesise(str(out), SynthConfig(8, seed=FRESH_SEED), workers=1, echo=lambda s: None)
    return list(read_synthetic_cohort(str(out)))


def test_shipped_weights_are_packaged_and_load():
    folder = shipped_weights()
    assert folder, "raytag/models/weights/ holds no localiser.pt + tracker.pt"
    predictor = load_predictor(device="cpu")
    assert UNTRAINED not in predictor.model_version


def test_shipped_weights_measure_strain_on_a_fresh_cohort(fresh_cohort):
    predictor = load_predictor(device="cpu")
    m = evaluate(predictor, fresh_cohort, echo=lambda s: None)["overall"]
    assert m["n_slices"] == 24
    assert m["iou_mean"] >= 0.80, m
    assert m["rmse_es_mm_mean"] <= 5.0, m
    assert abs(m["es_circ_global_bias"]) <= 0.03, m
    assert m["es_circ_global_sd"] <= 0.04, m
    # error SD alone cannot catch a model that outputs the population mean: the predicted
    # ES circ strain must also follow the truth from slice to slice
    out = predictor.predict([it.record for it in fresh_cohort])
    spacing = np.stack([it.record.pixel_spacing_mm for it in fresh_cohort])
    valid = np.stack([it.record.frame_valid for it in fresh_cohort])
    es = np.array([it.es_frame for it in fresh_cohort])
    pred = compute_strains(geometry.px_to_mm(out.landmarks_px, spacing), valid, es)
    true = compute_strains(geometry.px_to_mm(np.stack([it.landmarks_px for it in fresh_cohort]),
                                             spacing), valid, es)
    r = np.corrcoef(pred["es_circ_global"], true["es_circ_global"])[0, 1]
    assert r >= 0.6, r
