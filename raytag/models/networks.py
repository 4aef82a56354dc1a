"""The two networks of Ferdian et al. 2020, in PyTorch, sized by a config (``presets.py``).

Fixes relative to the public original: batch norm uses running statistics in eval mode and
dropout is applied in training only (standard ``nn.BatchNorm2d``/``nn.Dropout`` semantics,
switched by ``.train()``/``.eval()``); outputs are converted to raytag's landmark layout
``(B, T, 168, 2)`` at the boundary (:func:`split_xy`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from raytag.constants import N_LANDMARKS
from raytag.models.presets import (
    CentreLocaliserConfig,
    EDConfig,
    LocaliserConfig,
    TrackerConfig,
)

__all__ = ["Localiser", "CentreLocaliser", "Tracker", "EDNet", "split_xy", "count_parameters",
           "template_landmarks", "localiser_inputs", "centre_targets", "view_to_image_xy"]


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


class Localiser(nn.Module):
    """ED frame ``(B, 1, 256, 256)`` float -> box ``(B, 4)`` = (x1, y1, x2, y2), 256-px space."""

    def __init__(self, config: LocaliserConfig | None = None):
        super().__init__()
        config = config or LocaliserConfig()
        self.config = config
        layers, c_in, size = [], 1, config.input_size
        for c_out in config.channels:
            layers += [
                nn.Conv2d(c_in, c_out, 3),  # valid
                nn.BatchNorm2d(c_out),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(3, stride=2),
            ]
            c_in, size = c_out, (size - 2 - 3) // 2 + 1
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(
            nn.Flatten(),
            nn.Linear(c_in * size * size, config.fc),
            nn.ReLU(inplace=True),
            nn.Dropout(config.dropout),
            nn.Linear(config.fc, 4),
        )
        self.feature_shape = (c_in, size, size)
        # The last layer predicts corners as fractions of the input size (starting from a
        # central box), scaled to pixels in forward: well-conditioned regression targets.
        nn.init.zeros_(self.head[-1].weight)
        with torch.no_grad():
            self.head[-1].bias.copy_(torch.tensor([0.35, 0.35, 0.65, 0.65]))

    def forward(self, ed: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(ed)) * self.config.input_size

    def locate(self, cines: torch.Tensor, frame_valid: torch.Tensor) -> torch.Tensor:
        """Normalised padded cines ``(B, T, 256, 256)`` -> boxes ``(B, 4)`` padded px (ED only)."""
        return self(cines[:, :1])


#: Frames averaged for the localiser's systolic channel (ES is at frames ~5-11 of 20).
SYSTOLE_FRAMES = slice(4, 11)


def localiser_inputs(cines: torch.Tensor, frame_valid: torch.Tensor,
                     size: int) -> torch.Tensor:
    """``(B, T, H, W)`` normalised padded cines + ``(B, T)`` validity -> ``(B, 3, size, size)``.

    Channels: the ED frame; the mean of the systolic frames (``SYSTOLE_FRAMES`` that are
    valid; ED where none is); the temporal SD over valid frames. Area-averaged down to
    ``size`` (which also smooths most of the tag grid out of the SD channel): the heart is
    what changes over the cine, the blood pools brighten and the wall thickens.
    """
    x = cines.float()
    b, t, h, w = x.shape
    if h != size:
        x = F.adaptive_avg_pool2d(x, size)
    v = frame_valid.to(x.dtype)[:, :, None, None]
    n = v.sum(dim=1).clamp_min(1)
    mean = (x * v).sum(dim=1) / n
    sd = (((x - mean[:, None]) ** 2 * v).sum(dim=1) / n).sqrt()
    vs = v[:, SYSTOLE_FRAMES]
    ns = vs.sum(dim=1)
    sys = torch.where(ns > 0, (x[:, SYSTOLE_FRAMES] * vs).sum(dim=1) / ns.clamp_min(1), x[:, 0])
    return torch.stack([x[:, 0], sys, 3.0 * sd], dim=1)


def centre_targets(boxes: torch.Tensor, config: CentreLocaliserConfig) -> dict:
    """Training targets from boxes ``(B, 4)`` padded px: ``cell`` ``(B,)`` flat index of the
    centre's cell, ``offset`` ``(B, 2)`` centre minus cell centre (cells), ``log_size``
    ``(B, 2)`` log(width, height / cell_px), ``heat`` ``(B, G*G)`` Gaussian over cells."""
    g = config.input_size // 4
    cell = config.cell_px
    c = torch.stack([(boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2], -1) / cell
    ij = (c - 0.5).round().clamp(0, g - 1)
    offset = c - 0.5 - ij
    size = torch.stack([boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]], -1) / cell
    yy, xx = torch.meshgrid(torch.arange(g, dtype=boxes.dtype, device=boxes.device),
                            torch.arange(g, dtype=boxes.dtype, device=boxes.device),
                            indexing="ij")
    d2 = (xx[None] + 0.5 - c[:, 0, None, None]) ** 2 + (yy[None] + 0.5 - c[:, 1, None, None]) ** 2
    heat = torch.exp(-d2 / 2.0).reshape(len(boxes), -1)
    heat = heat / heat.sum(dim=1, keepdim=True).clamp_min(1e-12)
    flat = (ij[:, 1] * g + ij[:, 0]).long()
    return {"cell": flat, "offset": offset, "log_size": size.clamp_min(1e-3).log(), "heat": heat}


def _conv(c_in: int, c_out: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False),
                         nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


class CentreLocaliser(nn.Module):
    """LV-centre heatmap localiser (beyond the paper; see :mod:`raytag.models.presets`).

    ``forward`` takes ``(B, 3, S, S)`` from :func:`localiser_inputs` and returns a dict:
    ``logits`` ``(B, G*G)`` over heatmap cells (G = S / 4, row-major), ``offset``
    ``(B, 2, G, G)`` (x, y) in cells, ``log_size`` ``(B, 2, G, G)`` log(w, h / cell_px).
    Fully convolutional: the same filters look for the heart everywhere in the image.
    """

    def __init__(self, config: CentreLocaliserConfig | None = None):
        super().__init__()
        config = config or CentreLocaliserConfig()
        self.config = config
        ch = config.channels
        self.stem = nn.Sequential(_conv(3, ch[0]), _conv(ch[0], ch[0]))
        self.down = nn.ModuleList(
            nn.Sequential(_conv(ch[i], ch[i + 1], stride=2), _conv(ch[i + 1], ch[i + 1]))
            for i in range(len(ch) - 1))
        # features of every stage at or below 1/4 resolution, resized to 1/4 and fused
        self.lateral = nn.ModuleList(nn.Conv2d(ch[i], config.head, 1)
                                     for i in range(2, len(ch)))
        self.fuse = nn.Sequential(_conv(config.head, config.head), _conv(config.head,
                                                                          config.head))
        self.heat = nn.Conv2d(config.head, 1, 1)
        self.box = nn.Conv2d(config.head, 4, 1)
        nn.init.zeros_(self.box.weight)
        with torch.no_grad():  # start at a 50-padded-px box, centred in its cell
            self.box.bias.copy_(torch.tensor([0.0, 0.0, 1.8, 1.8]))

    def forward(self, x: torch.Tensor) -> dict:
        feats = [self.stem(x)]
        for stage in self.down:
            feats.append(stage(feats[-1]))
        g = self.config.input_size // 4
        fused = sum(F.interpolate(lat(f), size=(g, g), mode="bilinear", align_corners=False)
                    if f.shape[-1] != g else lat(f)
                    for lat, f in zip(self.lateral, feats[2:], strict=True))
        h = self.fuse(fused)
        box = self.box(h)
        return {"logits": self.heat(h).flatten(1), "offset": box[:, :2],
                "log_size": box[:, 2:]}

    def decode(self, out: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """Network outputs -> boxes ``(B, 4)`` padded px and confidence ``(B,)`` (the peak
        cell's softmax probability)."""
        g = self.config.input_size // 4
        cell = self.config.cell_px
        prob = out["logits"].float().softmax(dim=1)
        conf, idx = prob.max(dim=1)
        iy, ix = idx // g, idx % g
        b = torch.arange(len(idx), device=idx.device)
        off = out["offset"].float()[b, :, iy, ix]
        size = out["log_size"].float()[b, :, iy, ix].exp() * cell
        cx = (ix.float() + 0.5 + off[:, 0]) * cell
        cy = (iy.float() + 0.5 + off[:, 1]) * cell
        boxes = torch.stack([cx - size[:, 0] / 2, cy - size[:, 1] / 2,
                             cx + size[:, 0] / 2, cy + size[:, 1] / 2], dim=-1)
        return boxes, conf

    def loss(self, out: dict, boxes: torch.Tensor) -> torch.Tensor:
        """Cross-entropy of the cell logits against a Gaussian around the true centre, plus
        L1 of offset and log size at the true centre's cell."""
        tgt = centre_targets(boxes.float(), self.config)
        logp = out["logits"].float().log_softmax(dim=1)
        heat = -(tgt["heat"] * logp).sum(dim=1).mean()
        g = self.config.input_size // 4
        iy, ix = tgt["cell"] // g, tgt["cell"] % g
        b = torch.arange(len(boxes), device=boxes.device)
        off = (out["offset"].float()[b, :, iy, ix] - tgt["offset"]).abs().sum(dim=1).mean()
        size = (out["log_size"].float()[b, :, iy, ix] - tgt["log_size"]).abs().sum(dim=1).mean()
        return heat + off + 2.0 * size

    def locate(self, cines: torch.Tensor, frame_valid: torch.Tensor,
               views: int = 1) -> torch.Tensor:
        """Normalised padded cines ``(B, T, 256, 256)`` -> boxes ``(B, 4)`` padded px.

        ``views``: 1, or 8 for the consensus of the eight rotations and mirrors of the
        input (:meth:`locate_views`)."""
        if views == 8:
            return self.locate_views(cines, frame_valid)[0]
        if views != 1:
            raise ValueError(f"views must be 1 or 8, got {views}")
        return self.decode(self(localiser_inputs(cines, frame_valid, self.config.input_size)))[0]

    def locate_views(self, cines: torch.Tensor, frame_valid: torch.Tensor,
                     inlier_frac: float = 0.25) -> tuple[torch.Tensor, torch.Tensor]:
        """Test-time augmentation over the dihedral group: boxes ``(B, 4)`` padded px and
        ``agreement`` ``(B,)`` in [1/8, 1].

        The input is rotated by 0/90/180/270 degrees, with and without a mirror (exact
        pixel permutations of the square input, no resampling); each view's box is mapped
        back. The views' medoid centre is kept with every view within ``inlier_frac`` of
        its box size: the box is their mean centre and median size (the lower middle of an
        even count), ``agreement`` the fraction of views that agree. Why: the localiser was
        trained with any rotation and mirror, so each view is a separate guess at the same
        box; the consensus raised ROI IoU on every tuning cohort (disc seeds 7101/7111,
        thorax 7102/7112: 0.957/0.949/0.933/0.941 -> 0.963/0.961/0.948/0.947) but not the
        strain, so it is not the default (:data:`raytag.constants.LOCALISER_VIEWS`).
        """
        inp = localiser_inputs(cines, frame_valid, self.config.input_size)
        n = self.config.pad_size
        centres, sizes = [], []
        for flip in (False, True):
            for k in range(4):
                v = inp.flip(-1) if flip else inp
                boxes = self.decode(self(torch.rot90(v, k, dims=(-2, -1))))[0].float()
                c = (boxes[:, :2] + boxes[:, 2:]) / 2
                wh = boxes[:, 2:] - boxes[:, :2]
                centres.append(view_to_image_xy(c, k, flip, n))
                sizes.append(wh.flip(-1) if k % 2 else wh)
        c = torch.stack(centres, 1)  # (B, 8, 2)
        wh = torch.stack(sizes, 1)
        dist = torch.cdist(c, c)  # (B, 8, 8)
        med = dist.sum(-1).argmin(-1)
        b = torch.arange(len(c), device=c.device)
        radius = inlier_frac * wh[b, med].mean(-1)
        inlier = dist[b, med] <= radius[:, None]  # (B, 8); the medoid itself always
        w = inlier.to(c.dtype)[..., None]
        centre = (c * w).sum(1) / w.sum(1)
        size = torch.where(inlier[..., None], wh, torch.nan).nanmedian(dim=1).values
        boxes = torch.cat([centre - size / 2, centre + size / 2], dim=-1)
        return boxes, inlier.float().mean(-1)


def view_to_image_xy(points: torch.Tensor, k: int, flip: bool, n: int) -> torch.Tensor:
    """Points ``(..., 2)`` (x, y) px in a view of an ``n``-px square image -> the image's.

    The view is ``torch.rot90(image.flip(-1) if flip else image, k, dims=(-2, -1))``
    (dims (y, x)); pixel centres at integer coordinates. One ``rot90`` maps image (x, y)
    to view (y, n - 1 - x), so its inverse maps view (x, y) to image (n - 1 - y, x).
    """
    x, y = points[..., 0], points[..., 1]
    for _ in range(k % 4):
        x, y = n - 1 - y, x
    if flip:
        x = n - 1 - x
    return torch.stack([x, y], dim=-1)


class Tracker(nn.Module):
    """Crops ``(B, T, 128, 128)`` float -> ``(B, T, 2 * 168)`` (all x, then all y; crop px).

    A shared CNN encodes every frame (frames are folded into the batch, no Python loop),
    an LSTM runs over the T frame vectors, and two FC layers regress each frame's landmarks.
    """

    def __init__(self, config: TrackerConfig | None = None):
        super().__init__()
        config = config or TrackerConfig()
        self.config = config
        c1, c2, c3, c4 = config.channels
        act = nn.LeakyReLU(config.leaky_slope, inplace=True)
        self.cnn = nn.Sequential(
            nn.Conv2d(1, c1, 3), act, nn.MaxPool2d(2),
            nn.Conv2d(c1, c2, 3), act, nn.MaxPool2d(2),
            nn.Conv2d(c2, c3, 3), act, nn.MaxPool2d(2),
            nn.Conv2d(c3, c4, 3, padding=1), act,
            nn.Flatten(),
        )
        size = config.input_size
        for _ in range(3):
            size = (size - 2) // 2
        self.frame_fc = nn.Sequential(nn.Linear(c4 * size * size, config.fc),
                                      nn.LeakyReLU(config.leaky_slope, inplace=True))
        self.lstm = nn.LSTM(config.fc, config.lstm, batch_first=True)
        self.head = nn.Sequential(
            nn.Linear(config.lstm, config.head),
            nn.ReLU(inplace=True),
            nn.Linear(config.head, 2 * config.n_landmarks),
        )
        self.feature_size = c4 * size * size
        # Landmarks are predicted as fractions of the crop and scaled to crop pixels in
        # forward. The output starts at a template ring: the ROI box is the ED landmark
        # extent plus 30% each side, so the epicardium spans ~1/1.6 of the crop, centred.
        with torch.no_grad():
            self.head[-1].weight.mul_(0.1)
            self.head[-1].bias.copy_(template_landmarks(config.n_landmarks))

    def forward(self, crops: torch.Tensor) -> torch.Tensor:
        b, t, h, w = crops.shape
        feats = self.frame_fc(self.cnn(crops.reshape(b * t, 1, h, w))).reshape(b, t, -1)
        seq, _ = self.lstm(feats)
        return self.head(seq) * self.config.input_size


class EDNet(nn.Module):
    """ED landmarks from a slice's crops (beyond the paper; see
    :class:`~raytag.models.presets.EDConfig`).

    ``forward``: ``(B, 3, S, S)`` from :func:`localiser_inputs` of the crops ->
    ``(B, 2 * 168)`` (all x, then all y; crop pixels), starting at a template ring.
    :meth:`locate` takes the normalised crops ``(B, T, S, S)`` and their validity.
    """

    def __init__(self, config: EDConfig | None = None):
        super().__init__()
        config = config or EDConfig()
        self.config = config
        ch = config.channels
        layers = [_conv(3, ch[0])]
        for i in range(len(ch) - 1):
            layers += [_conv(ch[i], ch[i + 1], stride=2), _conv(ch[i + 1], ch[i + 1])]
        self.features = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(4), nn.Flatten())
        self.head = nn.Sequential(nn.Linear(ch[-1] * 16, config.fc), nn.ReLU(inplace=True),
                                  nn.Linear(config.fc, 2 * config.n_landmarks))
        with torch.no_grad():
            self.head[-1].weight.mul_(0.1)
            self.head[-1].bias.copy_(template_landmarks(config.n_landmarks))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x)) * self.config.input_size

    def locate(self, crops: torch.Tensor, frame_valid: torch.Tensor) -> torch.Tensor:
        """``(B, T, S, S)`` crops -> ED landmarks ``(B, 168, 2)`` in crop pixels."""
        x = localiser_inputs(crops, frame_valid, self.config.input_size)
        return split_xy(self(x), self.config.n_landmarks)


def template_landmarks(n_landmarks: int = N_LANDMARKS, septum_deg: float = 143.0) -> torch.Tensor:
    """A mean-shape prior ``(2 * n,)`` (all x then all y), as fractions of the crop.

    Rings from 0.7 to 1.0 of an epicardial radius of ``0.5 / 1.6`` of the crop, spoke 0 at
    ``septum_deg`` (image coordinates), k clockwise as displayed (docs/conventions.md).
    """
    n_k = n_landmarks // 7
    k = torch.arange(n_k, dtype=torch.float32)
    r = torch.arange(7, dtype=torch.float32)
    ang = torch.deg2rad(torch.tensor(septum_deg)) + 2 * torch.pi * k / n_k
    radius = (0.5 / 1.6) * (0.7 + 0.3 * r / 6)
    x = 0.5 + radius[None, :] * torch.cos(ang)[:, None]
    y = 0.5 + radius[None, :] * torch.sin(ang)[:, None]
    return torch.cat([x.reshape(-1), y.reshape(-1)])


def split_xy(flat: torch.Tensor, n_landmarks: int) -> torch.Tensor:
    """``(..., 2 * n)`` (all x then all y) -> ``(..., n, 2)`` (x, y) per landmark."""
    return torch.stack([flat[..., :n_landmarks], flat[..., n_landmarks:]], dim=-1)
