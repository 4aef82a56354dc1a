"""Training: split, schedules, samples, augmentation, and a real 2-worker DDP run."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from raytag import geometry
from raytag.io.labelled import read_synthetic_cohort
from raytag.phantom.cohort import SynthConfig
from raytag.pipeline.synth import synthesise
from raytag.train.augment import augment_localiser, augment_tracker, flip_landmark_order
from raytag.train.samples import make_sample
from raytag.train.schedules import localiser_lr, tracker_lr
from raytag.train.split import split_participants

NO_INTENSITY = {"intensity": 0.0, "gamma": 0.0, "noise": 0.0, "short_cine_p": 0.0}


def test_split_is_by_participant_seeded_and_sized_like_the_paper():
    eids = [str(9000000 + i) for i in range(100)]
    split = split_participants(eids * 3, seed=4)  # three slices each: still per participant
    counts = {s: sum(v == s for v in split.values()) for s in ("train", "val", "test")}
    assert counts == {"test": 10, "val": 18, "train": 72}
    assert split == split_participants(list(reversed(eids)), seed=4)  # order-independent
    assert split != split_participants(eids, seed=5)


def test_learning_rate_schedules():
    assert [localiser_lr(e) for e in (1, 10, 14)] == [1e-3] * 3
    assert localiser_lr(15) == pytest.approx(1e-3 / math.sqrt(2))
    assert localiser_lr(20) == pytest.approx(1e-3 / 2)
    assert tracker_lr(9) == 1e-4
    assert tracker_lr(10) == pytest.approx(1e-4 / math.sqrt(2))
    assert tracker_lr(25) == pytest.approx(1e-4 / 2)
    assert tracker_lr(10, base=5e-4) == pytest.approx(5e-4 / math.sqrt(2))


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    out = tmp_path_factory.mktemp("train-cohort")
    synthesise(str(out), SynthConfig(5, seed=77), workers=1)
    return str(out)


def test_samples_map_back_to_the_truth(cohort):
    item = next(read_synthetic_cohort(cohort))
    s = make_sample(item)
    assert s["crops"].shape == (20, 128, 128) and s["crops"].dtype == np.float16
    assert s["ed"].shape == (256, 256) and s["points"].shape == (20, 168, 2)
    offsets = geometry.pad_offsets(item.record.shape)
    back = geometry.points_from_padded(geometry.points_from_crop(s["points"], s["box"]), offsets)
    np.testing.assert_allclose(back, item.landmarks_px, atol=1e-3)
    box = s["box"]
    sp = item.record.pixel_spacing_mm
    np.testing.assert_allclose(s["mm_per_crop_px"], [(box[2] - box[0]) / 128 * sp[1],
                                                     (box[3] - box[1]) / 128 * sp[0]], rtol=1e-6)


def test_flip_order_keeps_spoke_zero_and_is_an_involution():
    order = flip_landmark_order()
    assert torch.equal(order[order], torch.arange(168))
    assert torch.equal(order[:7], torch.arange(7))  # spoke 0 stays spoke 0, r unchanged
    assert order[7] == 23 * 7 and order[8] == 23 * 7 + 1  # spoke 1 <- spoke 23


def _blob_images(points: torch.Tensor, size: int = 128, sigma: float = 1.2) -> torch.Tensor:
    """Images ``(B, T, H, W)`` with a Gaussian blob at each landmark."""
    y, x = torch.meshgrid(torch.arange(size, dtype=torch.float32),
                          torch.arange(size, dtype=torch.float32), indexing="ij")
    d2 = (x - points[..., 0, None, None]) ** 2 + (y - points[..., 1, None, None]) ** 2
    return torch.exp(-d2 / (2 * sigma**2)).sum(dim=-3)


def _ring(b: int, t: int) -> torch.Tensor:
    """Landmarks on a ring in crop space, (B, T, 168, 2), clockwise as displayed."""
    k = torch.arange(24, dtype=torch.float32)
    r = torch.arange(7, dtype=torch.float32)
    ang = 2 * math.pi * k / 24 + 0.3
    rad = 25 + 2.5 * r
    pts = torch.stack([64 + rad[None, :] * torch.cos(ang[:, None]),
                       60 + rad[None, :] * torch.sin(ang[:, None])], -1).reshape(168, 2)
    return pts.expand(b, t, 168, 2).clone()


def test_tracker_augmentation_moves_images_and_landmarks_together():
    gen = torch.Generator().manual_seed(3)
    pts = _ring(6, 2)
    # Only spoke 0 drawn, so the image tells where spoke 0 went after flips and rotations.
    crops = _blob_images(pts[:, :, :7])
    valid = torch.ones(6, 2, dtype=torch.bool)
    aug, apts, avalid = augment_tracker(crops, pts, valid, gen, NO_INTENSITY | {"flip_p": 0.5})
    assert avalid.all()
    y, x = torch.meshgrid(torch.arange(128.0), torch.arange(128.0), indexing="ij")
    for b in range(6):
        img = aug[b, 0]
        # Each spoke-0 landmark sits on a bright blob of the transformed image.
        for p in apts[b, 0, :7]:
            near = ((x - p[0]) ** 2 + (y - p[1]) ** 2) < 2.0**2
            assert img[near].max() > 0.6, (b, p)
        # Anatomical order survives mirroring: k still runs clockwise as displayed.
        c = apts[b, 0].mean(dim=0)
        ring0 = apts[b, 0, 0::7] - c
        ang = torch.atan2(ring0[:, 1], ring0[:, 0])
        step = torch.remainder(torch.roll(ang, -1) - ang, 2 * math.pi)
        assert torch.all(step < math.pi)


def test_tracker_augmentation_short_cines():
    gen = torch.Generator().manual_seed(0)
    pts = _ring(8, 20)
    crops = torch.rand(8, 20, 128, 128)
    aug, apts, valid = augment_tracker(crops, pts, torch.ones(8, 20, dtype=torch.bool), gen,
                                       {"short_cine_p": 1.0, "min_frames": 12})
    n_valid = valid.sum(dim=1)
    assert torch.all((n_valid >= 12) & (n_valid < 20))
    assert torch.all(valid[:, :12])  # always a prefix of the cine
    assert torch.isnan(apts[~valid]).all() and (aug[~valid] == 0).all()


def test_localiser_augmentation_keeps_the_box_on_the_object():
    gen = torch.Generator().manual_seed(1)
    boxes = torch.tensor([[60.5, 80.5, 140.5, 170.5]] * 8)  # edges between pixel centres
    ed = torch.zeros(8, 1, 256, 256)
    ed[:, :, 81:171, 61:141] = 1.0  # pixels whose centres lie inside the box
    aug, aboxes = augment_localiser(ed, boxes, gen, NO_INTENSITY)
    for b in range(8):
        rows = torch.nonzero(aug[b, 0].sum(dim=1) > 0.5)[:, 0]
        cols = torch.nonzero(aug[b, 0].sum(dim=0) > 0.5)[:, 0]
        measured = torch.tensor([cols.min() - 0.5, rows.min() - 0.5, cols.max() + 0.5,
                                 rows.max() + 0.5])
        torch.testing.assert_close(measured, aboxes[b], atol=1.0, rtol=0)


def test_ddp_training_resume_and_predictor(cohort, tmp_path, ray_local):
    """Two CPU workers (gloo DDP): a worker that dies is restarted from the latest checkpoint
    (FailureConfig), loss goes down, checkpoints load, a rerun resumes."""
    from raytag.models.checkpoint import load_checkpoint
    from raytag.models.predictor import Predictor
    from raytag.train.driver import prepare_datasets, train_network
    from raytag.train.evaluate import evaluate, labelled_split

    datasets = prepare_datasets(cohort, seed=0)
    assert datasets["train"].count() >= 6 and datasets["val"].count() >= 1
    runs, out = str(tmp_path / "runs"), str(tmp_path / "models")
    kw = dict(preset="lite", workers=2, batch_size=2, seed=0, augment=False, out_dir=out)
    marker = tmp_path / "failed-once"
    first = train_network("tracker", datasets, runs, "t", epochs=2, lr=2e-3, **kw,
                          inject_failure={"epoch": 1, "rank": 1, "marker": str(marker)})
    assert marker.exists()  # rank 1 did die after epoch 1 ...
    # ... and the group was restarted from epoch 1's checkpoint, not from scratch
    assert first["last"]["epoch"] == 2 and first["last"]["resumed_from"] == 1
    again = train_network("tracker", datasets, runs, "t", epochs=4, lr=2e-3, **kw)
    assert again["last"]["resumed_from"] == 2 and again["last"]["epoch"] == 4
    assert again["last"]["train_loss"] < first["last"]["train_loss"]
    # DDP kept both replicas identical through every epoch
    assert [h["epoch"] for h in again["history"]] == [1, 2, 3, 4]
    assert all(h["param_spread"] == 0.0 for h in again["history"])
    # the exported checkpoint is the best epoch by validation score, not the last
    ck = load_checkpoint(again["exported"], kind="tracker", preset="lite")
    best = max(again["history"], key=lambda h: h["val_score"])
    assert ck.meta["metrics"]["epoch"] == best["epoch"]
    assert ck.meta["metrics"]["val_score"] == pytest.approx(best["val_score"])
    # training beats the untrained network on the validation set (the localiser learns
    # where the heart is: an untrained one puts a fixed box in the corner)
    from raytag.models import build_localiser
    from raytag.train.loop import validate

    untrained = validate("localiser", build_localiser("lite"), datasets["val"].iter_batches(
        batch_size=4, batch_format="numpy"), "cpu")["iou_mean"]
    loc = train_network("localiser", datasets, runs, "t", epochs=25, lr=2e-3, **kw)
    assert loc["metrics"]["iou_mean"] > untrained + 0.2, (loc["metrics"], untrained)
    # early stopping: at a learning rate too small to help, the run stops exactly
    # `patience` epochs after its best one, and exports that best one, not the last
    stopped = train_network("localiser", datasets, runs, "p", epochs=12, lr=1e-12,
                            patience=2, **kw)
    scores = [h["val_score"] for h in stopped["history"]]
    best_epoch = stopped["history"][int(np.argmax(scores))]["epoch"]
    assert stopped["last"]["epoch"] == best_epoch + 2 < 12
    exported = load_checkpoint(stopped["exported"], kind="localiser")
    assert exported.meta["metrics"]["epoch"] == best_epoch != stopped["last"]["epoch"]
    predictor = Predictor.from_checkpoints(loc["exported"], again["exported"], device="cpu")
    metrics = evaluate(predictor, labelled_split(cohort, "test", seed=0), progress=False)
    assert metrics["overall"]["n_slices"] >= 1 and "rmse_es_mm_mean" in metrics["overall"]


def test_centre_augmentation_moves_the_box_with_the_heart():
    """A bright disc and a ring of landmarks around it: after random rotation, scale, flip
    and shift, the box recomputed from the moved landmarks is centred on the moved disc."""
    import torch

    from raytag.models.networks import localiser_inputs
    from raytag.train.augment import augment_centre

    yy, xx = np.mgrid[:256, :256]
    angle = np.linspace(0, 2 * np.pi, 168, endpoint=False)
    pts = np.stack([100 + 20 * np.cos(angle), 60 + 20 * np.sin(angle)], -1)
    disc = ((xx - 100) ** 2 + (yy - 60) ** 2 < 20**2).astype(np.float32)
    cine = torch.tensor(disc)[None, None].repeat(6, 20, 1, 1)
    loc = localiser_inputs(cine, torch.ones(6, 20, dtype=torch.bool), 128)
    quiet = {"noise": 0, "loc_shading": 0, "loc_blur_p": 0, "gamma": 0, "intensity": 0}
    out, boxes = augment_centre(loc, torch.tensor(pts, dtype=torch.float32)[None].repeat(6, 1, 1),
                                torch.Generator().manual_seed(3), quiet)
    for i in range(6):
        ys, xs = np.nonzero(out[i, 0].numpy() > 0.5)
        centre = ((xs.mean() + 0.5) * 2 - 0.5, (ys.mean() + 0.5) * 2 - 0.5)  # 128 -> 256 px
        box = boxes[i].numpy()
        assert np.hypot(centre[0] - (box[0] + box[2]) / 2, centre[1] - (box[1] + box[3]) / 2) < 1.0
        # the box of a circle is square: 2 r s (1 + 2 * 0.3) for a scale s in the range
        side = box[2] - box[0]
        assert side == pytest.approx(box[3] - box[1], rel=0.02)
        assert 40 * 1.6 * np.exp(-0.26) < side < 40 * 1.6 * np.exp(0.26)


def test_summarise_against_hand_computed_values_with_a_failed_slice():
    """Three slices: one shifted by (3, 4) mm everywhere (RMSE 5 mm at ED and ES), one
    exact, one whose prediction is NaN (a failed slice): counted, never averaged."""
    from raytag.metrics import summarise
    from raytag.strain import compute_strains

    k = np.arange(24)[:, None]
    r = np.arange(7)[None, :]
    ang = np.deg2rad(15 * k)
    ring = np.stack([(20 + r) * np.cos(ang), (20 + r) * np.sin(ang)], -1).reshape(168, 2)
    scale = 1 - 0.1 * np.sin(np.pi * np.arange(20) / 20)  # contracts to 0.9 at frame 10
    true = np.stack([ring * s for s in scale])[None].repeat(3, 0)  # (3, 20, 168, 2) mm
    pred = true.copy()
    pred[0] += [3.0, 4.0]
    pred[2] = np.nan
    valid = np.ones((3, 20), bool)
    es = np.array([10, 10, 10])
    m = summarise(pred, true, valid, es)
    assert m["n_slices"] == 3 and m["n_measured"] == 2
    assert m["rmse_ed_mm_mean"] == pytest.approx((5.0 + 0.0) / 2)
    assert m["rmse_es_mm_mean"] == pytest.approx(2.5) and m["rmse_es_mm_sd"] == pytest.approx(2.5)
    # a translation does not change strain: both measured slices are exact
    assert m["es_circ_global_bias"] == pytest.approx(0.0, abs=1e-12)
    # truth strain at ES: 0.5 * (0.9**2 - 1) for every slice, so its SD is 0
    truth_es = float(compute_strains(true[:1])["circ_global"][0, 10])
    assert truth_es == pytest.approx(0.5 * (0.9**2 - 1))
    assert m["es_circ_global_true_sd"] == pytest.approx(0.0, abs=1e-12)
    assert m["centre_error_mm_median"] == pytest.approx(2.5)  # median of 5 and 0


def test_contrast_augmentation_is_monotone_per_cine_and_off_by_default():
    from raytag.train.augment import AUGMENT_DEFAULTS, _contrast

    gen = torch.Generator().manual_seed(3)
    x = torch.rand(3, 4, 16, 16) * 50
    assert torch.equal(_contrast(x, AUGMENT_DEFAULTS, gen), x)  # off unless asked for
    y = _contrast(x, {"lut_p": 1.0}, gen)
    for b in range(3):  # one curve per cine: the intensity order is kept in every frame
        order = x[b].flatten().argsort()
        assert float(y[b].flatten()[order].diff().min()) >= -1e-4
        assert not torch.allclose(y[b], x[b])
        assert float(y[b].max()) == pytest.approx(float(x[b].max()), rel=1e-5)
    shaded = _contrast(x, {"shading": 0.5}, gen)
    ratio = shaded / x
    assert torch.allclose(ratio[:, 0], ratio[:, 3], rtol=1e-5)  # same field in every frame
    assert not torch.allclose(ratio, torch.ones_like(ratio))


def test_context_swap_keeps_both_hearts_and_replaces_only_surroundings():
    """Each picked input keeps its own pixels within 1.2 x (1.5 box) of its heart and of
    the donor's heart; elsewhere the pixels come from the donor (the batch rolled by one)
    or stay; nothing else is mixed in. Off at p = 0."""
    from raytag.train.augment import _swap_context

    gen = torch.Generator().manual_seed(5)
    loc = torch.stack([torch.full((3, 64, 64), float(v)) for v in (1.0, 10.0, 100.0)])
    boxes = torch.tensor([[5.0, 5, 15, 15], [40, 40, 50, 50], [5, 40, 15, 50]])
    assert torch.equal(_swap_context(loc, boxes, 0.0, gen), loc)
    out = _swap_context(loc, boxes, 1.0, gen)
    for i in range(3):
        j = (i - 1) % 3  # the donor
        for bx in (boxes[i], boxes[j]):  # the hearts' neighbourhoods are the input's own
            x0, y0, x1, y1 = (int(v) for v in bx)
            assert torch.equal(out[i, :, y0:y1, x0:x1], loc[i, :, y0:y1, x0:x1])
        # elsewhere a blend of own and donor content (at a gain of 0.7-1.3)
        frac = (out[i] - loc[i]) / (loc[j] - loc[i])
        assert float(frac.min()) >= -1e-5 and float(frac.max()) <= 1.3 + 1e-5
        assert float((frac > 0.5).float().mean()) > 0.05  # surroundings really replaced


def test_localiser_curve_is_one_monotone_map_for_both_intensity_channels():
    from raytag.train.augment import _curve_channels

    gen = torch.Generator().manual_seed(2)
    loc = torch.rand(4, 3, 16, 16)
    assert torch.equal(_curve_channels(loc, 0.0, gen), loc)
    out = _curve_channels(loc, 1.0, gen)
    for b in range(4):
        x, y = loc[b, :2].flatten(), out[b, :2].flatten()
        order = x.argsort()  # ED and systolic mean through the same increasing curve
        assert float(y[order].diff().min()) >= -1e-5
        assert not torch.allclose(y, x)
        slope = out[b, 2] / loc[b, 2]  # the SD channel scaled by the curve's slope
        assert float(slope.min()) >= 0
        assert float(slope.max()) > 1.0  # a normalised curve is steeper than 1 somewhere
