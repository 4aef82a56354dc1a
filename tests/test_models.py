"""Networks, torch strain twin, loss, normalisation, checkpoints and the batched predictor."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from raytag import geometry
from raytag.io import read_participant, storage
from raytag.models import (
    PRESETS,
    CentreLocaliser,
    build_localiser,
    build_tracker,
    count_parameters,
    split_xy,
)
from raytag.models.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from raytag.models.loss import localiser_loss, tracker_loss
from raytag.models.networks import centre_targets, localiser_inputs, view_to_image_xy
from raytag.models.normalise import normalise_cines
from raytag.models.predictor import Predictor
from raytag.models.presets import TrackerConfig
from raytag.models.strain_torch import strain_curves
from raytag.phantom.cohort import SynthConfig, generate_participant
from raytag.strain import CURVE_NAMES, compute_strains

torch.manual_seed(0)


def test_paper_tracker_has_the_papers_parameter_count():
    n = count_parameters(build_tracker("paper"))
    assert abs(n - 35.6e6) / 35.6e6 < 0.01
    # Hand count: convs (1*32+32*64+64*64+64*128)*9 + biases, FC 14*14*128 -> 1024,
    # LSTM 4*(1024*1024*2 + 2*1024), FC 1024 -> 1024, FC 1024 -> 336.
    convs = (1 * 32 + 32 * 64 + 64 * 64 + 64 * 128) * 9 + (32 + 64 + 64 + 128)
    fc = 14 * 14 * 128 * 1024 + 1024
    lstm = 4 * (1024 * 1024 * 2 + 2 * 1024)
    head = 1024 * 1024 + 1024 + 1024 * 336 + 336
    assert n == convs + fc + lstm + head


def test_localiser_shapes_match_the_paper():
    loc = build_localiser("paper")
    assert loc.feature_shape == (128, 5, 5)  # 5x5x128 = 3200 features
    assert loc.head[1].in_features == 3200 and loc.head[1].out_features == 1024


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_forward_backward_each_preset(preset):
    loc, trk = build_localiser(preset), build_tracker(preset)
    cines = torch.rand(2, 20, 256, 256)
    valid = torch.ones(2, 20, dtype=torch.bool)
    if isinstance(loc, CentreLocaliser):
        out = loc(localiser_inputs(cines, valid, loc.config.input_size))
        g = loc.config.input_size // 4
        assert out["logits"].shape == (2, g * g) and out["log_size"].shape == (2, 2, g, g)
        boxes = loc.loss(out, torch.tensor([[90.0, 80, 150, 140], [10, 20, 70, 90]]))
    else:
        boxes = loc(torch.randn(2, 1, 256, 256))
        assert boxes.shape == (2, 4)
    assert loc.locate(cines, valid).shape == (2, 4)
    flat = trk(torch.randn(1, 20, 128, 128))
    assert flat.shape == (1, 20, 336)
    pts = split_xy(flat, 168)
    assert pts.shape == (1, 20, 168, 2)
    torch.testing.assert_close(pts[..., 0], flat[..., :168])
    (boxes.sum() + pts.sum()).backward()
    assert all(p.grad is not None for p in trk.parameters())
    assert all(p.grad is not None for p in loc.parameters())


def test_batch_norm_and_dropout_switch_with_train_and_eval():
    loc = build_localiser("lite-regression")
    nn.init.normal_(loc.head[-1].weight, std=0.01)  # trained-like: outputs depend on features
    x = torch.randn(4, 1, 256, 256)
    bn = loc.features[1]
    before = bn.running_mean.clone()
    loc.train()
    a, b = loc(x), loc(x)
    assert not torch.allclose(a, b)  # dropout active
    assert not torch.allclose(bn.running_mean, before)  # batch statistics update
    loc.eval()
    frozen = bn.running_mean.clone()
    c, d = loc(x), loc(x)
    torch.testing.assert_close(c, d)  # no dropout, running statistics
    torch.testing.assert_close(bn.running_mean, frozen)
    # In eval, a sample's output does not depend on the rest of the batch.
    torch.testing.assert_close(loc(x[:1]), c[:1], rtol=1e-4, atol=1e-5)


def test_torch_strain_equals_numpy_strain_on_random_inputs():
    rng = np.random.default_rng(0)
    base = rng.uniform(20, 100, (5, 1, 168, 2))
    pts = base + rng.normal(0, 3, (5, 20, 168, 2))
    ours = strain_curves(torch.tensor(pts))
    ref = compute_strains(pts)
    for name in CURVE_NAMES:
        np.testing.assert_allclose(ours[name].numpy(), ref[name], rtol=1e-12, atol=1e-12)


def test_tracker_loss_is_the_papers_composite():
    rng = np.random.default_rng(1)
    target = torch.tensor(rng.uniform(30, 90, (2, 20, 168, 2)))
    assert tracker_loss(target, target).item() == 0.0
    pred = target + 0.5  # a translation: MSE = 0.5, strain errors 0
    assert tracker_loss(pred, target).item() == pytest.approx(0.5)
    scaled = target * 1.1  # uniform scaling: Green strain unchanged, positions move
    expected_mse = ((scaled - target) ** 2).sum(-1).mean(-1).mean()
    assert tracker_loss(scaled, target).item() == pytest.approx(expected_mse.item())
    # A change of the later frames only: strain terms by hand.
    moved = target.clone()
    moved[:, 1:] *= 1.05
    s_p, s_t = strain_curves(moved), strain_curves(target)
    by_hand = (((moved - target) ** 2).sum(-1).mean(-1)
               + 5 * (s_p["radial"] - s_t["radial"]).abs()
               + 5 * (s_p["circ_midwall"] - s_t["circ_midwall"]).abs()).mean()
    assert tracker_loss(moved, target).item() == pytest.approx(by_hand.item())
    # Padded frames (NaN targets) are excluded, not propagated.
    valid = torch.ones(2, 20, dtype=torch.bool)
    valid[:, 15:] = False
    nan_target = target.clone()
    nan_target[:, 15:] = float("nan")
    leaf = pred.clone().requires_grad_(True)
    masked = tracker_loss(leaf, nan_target, frame_valid=valid)
    assert masked.item() == pytest.approx(0.5)
    masked.backward()
    assert torch.isfinite(leaf.grad).all() and (leaf.grad[:, 15:] == 0).all()


def test_loss_strain_uses_millimetres_not_anisotropic_crop_pixels():
    rng = np.random.default_rng(2)
    target = torch.tensor(rng.uniform(30, 90, (1, 20, 168, 2)))
    pred = target.clone()
    pred[:, 1:, :, 0] *= 1.1  # stretch x in later frames
    iso = tracker_loss(pred, target)
    aniso = tracker_loss(pred, target, mm_per_crop_px=torch.tensor([[0.5, 2.0]]))
    # Same positions, different physical strain: the strain terms change.
    assert iso.item() != pytest.approx(aniso.item())
    scaled = strain_curves(pred * torch.tensor([0.5, 2.0]))
    ref = compute_strains((pred * torch.tensor([0.5, 2.0])).numpy())
    np.testing.assert_allclose(scaled["radial"].numpy(), ref["radial"], atol=1e-12)


def test_localiser_loss():
    a = torch.tensor([[0.0, 0.0, 10.0, 10.0]])
    assert localiser_loss(a, a + 2, size=1.0).item() == 4.0
    assert localiser_loss(a, a + 64).item() == pytest.approx(0.0625)  # (64/256)^2


def _views(img: torch.Tensor):
    """The eight views of ``img`` (..., y, x) as locate_views makes them."""
    for flip in (False, True):
        for k in range(4):
            yield k, flip, torch.rot90(img.flip(-1) if flip else img, k, dims=(-2, -1))


def test_view_coordinates_map_back_to_the_image():
    """A single bright pixel, found in each view by argmax, maps back to where it is."""
    n = 16
    img = torch.zeros(n, n)
    img[3, 11] = 1.0  # (y, x) = (3, 11)
    for k, flip, v in _views(img):
        iy, ix = divmod(int(v.argmax()), n)
        back = view_to_image_xy(torch.tensor([[float(ix), float(iy)]]), k, flip, n)
        assert back.tolist() == [[11.0, 3.0]], (k, flip)


class _ExtentLocaliser(CentreLocaliser):
    """A stand-in network, equivariant by construction: its box is the extent of the ED
    channel's bright pixels in whatever view it is shown, grown by 10 padded px; with
    ``fixed`` it answers one 40 x 20 box at (60, 90) whatever the image (its views
    disagree)."""

    def __init__(self, fixed: bool = False):
        super().__init__()
        self.fixed = fixed

    def forward(self, x):
        return {"x": x}

    def decode(self, out):
        x = out["x"][:, 0]
        b, s, _ = x.shape
        scale = self.config.pad_size // s  # one input pixel = scale x scale padded pixels
        if self.fixed:
            return torch.tensor([[40.0, 80.0, 80.0, 100.0]] * b), torch.ones(b)
        boxes = []
        for img in x:
            ys, xs = torch.nonzero(img > 0.5, as_tuple=True)
            boxes.append(torch.stack([xs.min() * scale - 10, ys.min() * scale - 10,
                                      xs.max() * scale + scale - 1 + 10,
                                      ys.max() * scale + scale - 1 + 10]).float())
        return torch.stack(boxes), torch.ones(b)


def test_localiser_views_agree_on_an_equivariant_answer_and_keep_its_shape():
    cines = torch.zeros(2, 20, 256, 256)
    cines[0, :, 100:102, 160:180] = 1.0  # wide and flat: a w/h mix-up changes the box
    cines[1, :, 30:70, 40:44] = 1.0  # tall and narrow
    valid = torch.ones(2, 20, dtype=torch.bool)
    loc = _ExtentLocaliser().eval()
    single = loc.locate(cines, valid)
    torch.testing.assert_close(single[0], torch.tensor([150.0, 90.0, 189.0, 111.0]))
    boxes, agree = loc.locate_views(cines, valid)
    torch.testing.assert_close(boxes, single)
    assert agree.tolist() == [1.0, 1.0]
    torch.testing.assert_close(loc.locate(cines, valid, views=8), boxes)
    with pytest.raises(ValueError, match="views"):
        loc.locate(cines, valid, views=4)


def test_localiser_views_that_disagree_are_outvoted_and_reported():
    """A localiser that answers (60, 90) in every view's own coordinates: mapped back, the
    eight views land on eight different places (the dihedral orbit of a point off the
    axes), so the agreement is 1/8 and the box is one of the eight."""
    cines = torch.zeros(1, 20, 256, 256)
    valid = torch.ones(1, 20, dtype=torch.bool)
    boxes, agree = _ExtentLocaliser(fixed=True).eval().locate_views(cines, valid)
    assert agree.item() == pytest.approx(1 / 8)
    c = ((boxes[0, :2] + boxes[0, 2:]) / 2).tolist()
    candidates = [view_to_image_xy(torch.tensor([60.0, 90.0]), k, f, 256).tolist()
                  for f in (False, True) for k in range(4)]
    assert any(np.allclose(c, p) for p in candidates)


def test_normalisation_percentiles_by_hand():
    frames = torch.zeros(2, 3, 4, 4)
    frames[0] = torch.arange(48, dtype=torch.float32).reshape(3, 4, 4)
    frames[1, :2] = 7.0
    frames[1, 2] = 1000.0  # an invalid frame must not affect the scaling
    valid = torch.tensor([[True, True, True], [True, True, False]])
    out = normalise_cines(frames, valid, {"method": "cine_percentile", "low": 0.0,
                                          "high": 100.0, "stride": 1})
    torch.testing.assert_close(out[0], frames[0] / 47.0)
    assert torch.all(out[1] == 0)  # constant cine -> zeros; invalid frame -> zeros
    with pytest.raises(ValueError, match="unknown normalisation"):
        normalise_cines(frames, valid, {"method": "zscore"})


def test_checkpoint_round_trip_and_errors(tmp_path):
    trk = build_tracker("lite").eval()
    uri = str(tmp_path / "trk.pt")
    digest = save_checkpoint(trk, uri, "lite", training={"data": "unit test"},
                             metrics={"rmse_mm": 1.0})
    ck = load_checkpoint(uri, kind="tracker", preset="lite")
    x = torch.randn(1, 20, 128, 128)
    torch.testing.assert_close(ck.model(x), trk(x))
    assert ck.version == f"tracker:lite:{digest[:12]}" and not ck.model.training
    assert ck.meta["training"] == {"data": "unit test"} and ck.meta["metrics"]["rmse_mm"] == 1.0
    assert ck.normalisation["method"] == "cine_percentile"
    with pytest.raises(CheckpointError, match="holds a tracker, expected a localiser"):
        load_checkpoint(uri, kind="localiser")
    with pytest.raises(CheckpointError, match="preset 'lite', expected 'paper'"):
        load_checkpoint(uri, preset="paper")
    with pytest.raises(CheckpointError, match="no such file"):
        load_checkpoint(str(tmp_path / "missing.pt"))
    data = (tmp_path / "trk.pt").read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated or not a raytag checkpoint"):
        load_checkpoint(str(tmp_path / "cut.pt"))
    torch.save({"state_dict": trk.state_dict()}, tmp_path / "foreign.pt")
    with pytest.raises(CheckpointError, match="not a raytag checkpoint"):
        load_checkpoint(str(tmp_path / "foreign.pt"))


def test_checkpoint_through_s3(s3_endpoint, s3_bucket):
    loc = build_localiser("lite").eval()
    uri = f"s3://{s3_bucket}/models/loc.pt"
    save_checkpoint(loc, uri, "lite")
    ck = load_checkpoint(uri, kind="localiser")
    x = torch.rand(1, 20, 256, 256)
    valid = torch.ones(1, 20, dtype=torch.bool)
    assert isinstance(ck.model, CentreLocaliser)
    torch.testing.assert_close(ck.model.locate(x, valid), loc.locate(x, valid))


class _OracleLocaliser(nn.Module):
    """Returns fixed boxes (padded px): stands in for a perfect network."""

    def __init__(self, boxes):
        super().__init__()
        self.register_buffer("boxes", torch.as_tensor(boxes, dtype=torch.float32))

    def forward(self, ed):
        return self.boxes[: ed.shape[0]]

    def locate(self, cines, frame_valid):
        return self.boxes[: cines.shape[0]]


class _OracleTracker(nn.Module):
    """Returns fixed crop-pixel landmarks in the network's (all x, all y) layout."""

    def __init__(self, crop_points):
        super().__init__()
        self.config = TrackerConfig()
        flat = np.concatenate([crop_points[..., 0], crop_points[..., 1]], axis=-1)
        self.register_buffer("flat", torch.as_tensor(flat, dtype=torch.float32))

    def forward(self, crops):
        assert crops.shape[1:] == (20, 128, 128)
        return self.flat[: crops.shape[0]]


@pytest.fixture(scope="module")
def synthetic():
    gp = generate_participant(0, SynthConfig(1, seed=9, faults={"fewer_frames": 1.0}),
                              keep_images=True)
    return read_participant((gp.name, gp.data)), gp


def test_predictor_round_trip_is_exact_for_known_points(synthetic):
    records, gp = synthetic
    truth = np.stack([im["landmarks"] for im in gp.images])  # (3, 20, 168, 2) original px
    offsets = [geometry.pad_offsets(r.shape) for r in records]
    shift = np.array([[c, r] for r, c in offsets], dtype=float)  # (x, y) padding shift
    boxes_padded = np.stack([geometry.roi_box(truth[i, 0]) for i in range(3)]) \
        + np.concatenate([shift, shift], axis=1)
    crop = geometry.points_to_crop(truth + shift[:, None, None], boxes_padded)
    crop = np.nan_to_num(crop)  # padded frames: the oracle outputs something; must be NaN'd
    pred = Predictor(_OracleLocaliser(boxes_padded), _OracleTracker(crop), device="cpu")
    out = pred.predict(records)
    valid = np.stack([r.frame_valid for r in records])
    assert not valid.all()  # the fewer_frames fault gave one slice padded frames
    # float32 network outputs -> exact maps back: error ~1e-5 px.
    np.testing.assert_allclose(out.landmarks_px[valid], truth[valid], atol=1e-3)
    assert np.isnan(out.landmarks_px[~valid]).all()
    np.testing.assert_allclose(out.bbox_px, boxes_padded - np.concatenate([shift, shift], 1),
                               atol=1e-3)
    ref = compute_strains(truth, frame_valid=valid)
    np.testing.assert_array_equal(out.strains["es_frame"], ref["es_frame"])
    np.testing.assert_allclose(out.strains["es_circ_global"], ref["es_circ_global"], atol=1e-4)


def test_predictor_crops_like_the_numpy_geometry(synthetic):
    """The torch crop sees exactly what geometry.crop_resample gives."""
    records, _ = synthetic
    seen = {}

    class Spy(_OracleTracker):
        def forward(self, crops):
            seen["crops"] = crops.clone()
            return super().forward(crops)

    rec = records[0]
    padded, _ = geometry.pad_to_square(rec.frames)
    box = np.array([[60.0, 70.0, 150.0, 190.0]])  # deliberately non-square
    pred = Predictor(_OracleLocaliser(box), Spy(np.zeros((1, 20, 168, 2))), device="cpu")
    pred.predict([rec])
    from raytag.models.normalise import NORMALISATION

    norm = normalise_cines(torch.as_tensor(padded[None]), torch.as_tensor(
        rec.frame_valid[None]), NORMALISATION).numpy()
    expected = geometry.crop_resample(norm, box)
    np.testing.assert_allclose(seen["crops"].numpy(), expected, atol=1e-4)


def test_predictor_from_checkpoints_on_mixed_matrix_sizes(tmp_path, synthetic):
    records, _ = synthetic
    save_checkpoint(build_localiser("lite"), str(tmp_path / "l.pt"), "lite")
    save_checkpoint(build_tracker("lite"), str(tmp_path / "t.pt"), "lite")
    pred = Predictor.from_checkpoints(str(tmp_path / "l.pt"), str(tmp_path / "t.pt"),
                                      device="cpu")
    assert pred.model_version.startswith("raytag-") and "tracker:lite:" in pred.model_version
    small = records[1]
    cropped = type(small)(**{**small.__dict__, "frames": small.frames[:, :192, :160]})
    out = pred.predict([records[0], cropped])
    assert out.landmarks_px.shape == (2, 20, 168, 2) and out.bbox_px.shape == (2, 4)
    with pytest.raises(CheckpointError, match="holds a localiser"):
        Predictor.from_checkpoints(str(tmp_path / "l.pt"), str(tmp_path / "l.pt"))
    with pytest.raises(ValueError, match="not ok"):
        pred.predict([records[0].__class__("9000001", 2, 1).fail("x")])
    assert storage.read_bytes(tmp_path / "t.pt")[:2] == b"PK"  # torch's zip container


def test_refinement_pass_recrops_on_the_tracked_ed_landmarks(synthetic):
    """refine_passes=1: the second tracker pass sees the crop of roi_box(first-pass ED
    landmarks); at the truth (the localiser already gives that box) it is a fixed point."""
    records, gp = synthetic
    rec, truth = records[0], gp.images[0]["landmarks"]  # (20, 168, 2) original px
    (r_off, c_off) = geometry.pad_offsets(rec.shape)
    shift = np.array([c_off, r_off], dtype=float)
    true_box = geometry.roi_box(truth[0] + shift)[None]
    crop = np.nan_to_num(geometry.points_to_crop((truth + shift)[None], true_box))
    seen = []

    class Spy(_OracleTracker):
        def forward(self, crops):
            seen.append(crops.clone())
            return super().forward(crops)

    # 1. a tracker whose first answer is shrunk towards the crop centre: the second pass
    #    must crop around roi_box(first answer's ED landmarks), and its answer is the output
    class TwoAnswers(Spy):
        def forward(self, crops):
            out = super().forward(crops)
            return out if len(seen) > 1 else 64 + 0.8 * (out - 64)

    box = true_box
    pred = Predictor(_OracleLocaliser(box), TwoAnswers(crop), device="cpu", refine_passes=1)
    out = pred.predict([rec])
    assert len(seen) == 2
    pass1 = geometry.points_from_crop(64 + 0.8 * (crop - 64), box)
    refined = geometry.roi_box(pass1[:, 0])
    assert np.abs(refined - box).max() > 5  # the refined box really is another box
    np.testing.assert_allclose(out.bbox_px + np.concatenate([shift, shift]), refined,
                               atol=1e-3)
    valid = rec.frame_valid
    expected = geometry.points_from_crop(crop, refined)[0] - shift
    np.testing.assert_allclose(out.landmarks_px[0][valid], expected[valid], atol=1e-3)
    from raytag.models.normalise import NORMALISATION

    padded, _ = geometry.pad_to_square(rec.frames)
    norm = normalise_cines(torch.as_tensor(padded[None]), torch.as_tensor(
        rec.frame_valid[None]), NORMALISATION).numpy()
    np.testing.assert_allclose(seen[1].numpy(), geometry.crop_resample(norm, refined),
                               atol=1e-4)
    # 2. at the truth box the refinement changes nothing
    seen.clear()
    exact = Predictor(_OracleLocaliser(true_box), Spy(crop), device="cpu", refine_passes=1)
    out = exact.predict([rec])
    np.testing.assert_allclose(out.landmarks_px[0][valid], truth[valid], atol=1e-3)
    with pytest.raises(ValueError, match="refine_passes"):
        Predictor(_OracleLocaliser(true_box), Spy(crop), device="cpu", refine_passes=-1)


def test_centre_targets_and_decode_invert_each_other():
    """Boxes -> (cell, offset, log size) by hand, and outputs built from those targets
    decode back to the same boxes."""
    loc = build_localiser("lite").eval()
    cfg = loc.config
    cell = cfg.cell_px  # 8 padded px per cell at 128 input
    boxes = torch.tensor([[100.0, 60.0, 160.0, 134.0], [3.0, 5.0, 41.0, 37.0]])
    tgt = centre_targets(boxes, cfg)
    # box 0: centre (130, 97) px = (16.25, 12.125) cells; cell i spans [i, i + 1), so the
    # centre lies in cell (16, 12), whose centre (16.5, 12.5) is off by (-0.25, -0.375)
    g = cfg.input_size // 4
    assert cell == 8.0 and int(tgt["cell"][0]) == 12 * g + 16
    torch.testing.assert_close(tgt["offset"][0], torch.tensor([-0.25, -0.375]))
    torch.testing.assert_close(tgt["log_size"][0], torch.log(torch.tensor([60.0, 74.0]) / 8))
    assert torch.allclose(tgt["heat"].sum(dim=1), torch.ones(2))
    logits = torch.full((2, g * g), -20.0)
    offset = torch.zeros(2, 2, g, g)
    size = torch.zeros(2, 2, g, g)
    for b in range(2):
        c = int(tgt["cell"][b])
        logits[b, c] = 20.0
        offset[b, :, c // g, c % g] = tgt["offset"][b]
        size[b, :, c // g, c % g] = tgt["log_size"][b]
    decoded, conf = loc.decode({"logits": logits, "offset": offset, "log_size": size})
    torch.testing.assert_close(decoded, boxes)
    assert torch.all(conf > 0.99)


def test_regression_checkpoints_still_load(tmp_path):
    """Checkpoints written before localisers had an ``arch`` (the earlier shipped weights)
    load as the corner-regression network."""
    from raytag.models import Localiser

    old = build_localiser("lite-regression").eval()
    uri = str(tmp_path / "old.pt")
    save_checkpoint(old, uri, "lite")
    ck = load_checkpoint(uri, kind="localiser")
    assert type(ck.model) is Localiser
    x = torch.rand(1, 20, 256, 256)
    valid = torch.ones(1, 20, dtype=torch.bool)
    torch.testing.assert_close(ck.model.locate(x, valid), old(x[:, :1]))


class _OracleED(nn.Module):
    """An ED-geometry network that answers fixed crop-pixel landmarks ``(168, 2)``."""

    def __init__(self, crop_points):
        super().__init__()
        self.register_buffer("pts", torch.as_tensor(crop_points, dtype=torch.float32))

    def locate(self, crops, frame_valid):
        return self.pts[None].expand(crops.shape[0], -1, -1)


def test_ed_network_gives_harps_start_and_the_refined_box(synthetic):
    """With an ED-geometry network: its landmarks come back in original pixels
    (``ed_px``), the refinement re-crops on *its* landmarks (not the tracker's frame 0),
    and HARP starts from them."""
    records, gp = synthetic
    rec, truth = records[0], gp.images[0]["landmarks"]
    (r_off, c_off) = geometry.pad_offsets(rec.shape)
    shift = np.array([c_off, r_off], dtype=float)
    true_box = geometry.roi_box(truth[0] + shift)[None]
    # the localiser is off (box 20% too large); the ED network, on that crop, is exact
    cx, cy = (true_box[0, 0] + true_box[0, 2]) / 2, (true_box[0, 1] + true_box[0, 3]) / 2
    big = np.array([[cx, cy, cx, cy]]) + 1.2 * (true_box - np.array([[cx, cy, cx, cy]]))
    ed_crop = geometry.points_to_crop((truth[0] + shift)[None, None], big)[0, 0]
    crop = np.nan_to_num(geometry.points_to_crop((truth + shift)[None], true_box))
    wrong = 64 + 0.5 * (crop - 64)  # a tracker whose rings are half size
    pred = Predictor(_OracleLocaliser(big), _OracleTracker(wrong), device="cpu",
                     refine_passes=1, ed_net=_OracleED(ed_crop), tracking="harp")
    net = pred.predict_network([rec])
    # refined on the ED network's exact landmarks: the truth box (not the tracker's)
    np.testing.assert_allclose(net.bbox_px + np.concatenate([shift, shift]), true_box,
                               atol=1e-3)
    # after the re-crop the oracle answers in the new crop's coordinates: stay exact by
    # comparing with where those crop points land in the refined box
    np.testing.assert_allclose(net.ed_px[0], geometry.points_from_crop(
        ed_crop[None, None], true_box)[0, 0] - shift, atol=1e-3)
    out = pred.predict([rec])
    assert out.measurements[0].tracker == "harp"
    np.testing.assert_allclose(out.landmarks_px[0, 0], net.ed_px[0])  # HARP's start
