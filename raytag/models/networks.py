"""The two networks of Ferdian et al. 2020, in PyTorch, sized by a config (``presets.py``).

Fixes relative to the public original: batch norm uses running statistics in eval mode and
dropout is applied in training only (standard ``nn.BatchNorm2d``/``nn.Dropout`` semantics,
switched by ``.train()``/``.eval()``); outputs are converted to raytag's landmark layout
``(B, T, 168, 2)`` at the boundary (:func:`split_xy`).
"""

from __future__ import annotations

import torch
from torch import nn

from raytag.models.presets import LocaliserConfig, TrackerConfig

__all__ = ["Localiser", "Tracker", "split_xy", "count_parameters", "template_landmarks"]


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


def template_landmarks(n_landmarks: int = 168, septum_deg: float = 143.0) -> torch.Tensor:
    """A mean-shape prior ``(2 * n,)`` (all x then all y), as fractions of the crop.

    Rings from 0.7 to 1.0 of an epicardial radius of ``0.5 / 1.6`` of the crop, spoke 0 at
    ``septum_deg`` (image coordinates), k clockwise as displayed (DESIGN.md).
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
