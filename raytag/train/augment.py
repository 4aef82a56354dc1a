"""Batched training augmentation (torch), landmarks and boxes transformed consistently.

Tracker: intensity scale and gamma, Gaussian noise, one random affine transform per
cine (rotation, scale, x/y stretch, shift; all frames alike, landmarks alike), horizontal
flips with the landmark order kept anatomical, and frame-count jitter (later frames
dropped and marked invalid, as for short cines). Localiser: intensity, noise, flips and
shifts with the box.

A horizontal flip turns "clockwise as displayed" into counter-clockwise, so after mirroring
the coordinates the circumferential index is reversed, ``k -> (24 - k) mod 24`` (spoke 0,
the mid-septum, stays spoke 0); the transmural index ``r`` is unchanged.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from raytag.constants import N_CIRCUMFERENTIAL, N_TRANSMURAL

__all__ = ["augment_tracker", "augment_localiser", "augment_centre", "roi_box_torch",
           "flip_landmark_order", "AUGMENT_DEFAULTS"]

#: Tracker geometry jitter is sized to the localiser's errors at inference (IoU ~0.86: box
#: shifts ~5-8% and per-axis size errors ~10% of the box), because the tracker only ever
#: sees crops through a predicted box: ``stretch`` scales x by (1 + a) and y by (1 - a).
#: Rotations cover the whole circle: short-axis planes show the heart at any in-plane angle.
#: ``loc_*`` are the centre localiser's: any rotation, scale, shift (fraction of the image),
#: a smooth multiplicative shading field and blur. ``lut_p`` (tracker and ED-network crops):
#: the share of cines whose intensities go through a random monotone curve (tissue contrasts
#: change between scanners and generators; the tags' positions and motion do not), and
#: ``shading`` a smooth multiplicative field of up to that log-amplitude. Both off by
#: default (the shipped tracker was trained without them, the shipped ED network with
#: ``lut_p=0.7,shading=0.4``: model card). ``loc_lut_p``: the localiser's
#: share of inputs whose intensity channels go through such a curve; ``loc_context_p``:
#: the share whose surroundings are partly replaced by another cine's (random blobs that
#: keep clear of both hearts), so that what surrounds the heart stops being a cue: images
#: from another source differ most in exactly that. Both off by default.
AUGMENT_DEFAULTS = {
    "rotate_deg": 180.0, "scale": 0.15, "stretch": 0.1, "shift_px": 10.0, "flip_p": 0.5,
    "intensity": 0.2, "gamma": 0.4, "noise": 0.08, "short_cine_p": 0.15, "min_frames": 12,
    "loc_rotate_deg": 180.0, "loc_scale": 0.25, "loc_shift": 0.3, "loc_shading": 0.4,
    "loc_blur_p": 0.3, "lut_p": 0.0, "shading": 0.0, "loc_lut_p": 0.0, "loc_context_p": 0.0,
}


def flip_landmark_order() -> torch.Tensor:
    """Index map ``(168,)``: new landmark ``i`` takes old ``flip_order[i]`` after a mirror."""
    k = torch.arange(N_CIRCUMFERENTIAL)
    r = torch.arange(N_TRANSMURAL)
    old_k = (N_CIRCUMFERENTIAL - k) % N_CIRCUMFERENTIAL
    return (old_k[:, None] * N_TRANSMURAL + r[None, :]).reshape(-1)


def _uniform(n: int, lo: float, hi: float, gen: torch.Generator) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(n, generator=gen)


def _intensity(x: torch.Tensor, cfg: dict, gen: torch.Generator) -> torch.Tensor:
    b = x.shape[0]
    view = (b,) + (1,) * (x.dim() - 1)
    gamma = torch.exp(_uniform(b, -cfg["gamma"], cfg["gamma"], gen)).view(view)
    scale = _uniform(b, 1 - cfg["intensity"], 1 + cfg["intensity"], gen).view(view)
    noise_sd = _uniform(b, 0, cfg["noise"], gen).view(view)
    x = x.clamp_min(0) ** gamma * scale
    return x + noise_sd * torch.randn(x.shape, generator=gen)


def augment_tracker(crops, points, valid, gen: torch.Generator, cfg: dict | None = None):
    """crops ``(B, T, H, W)`` float, points ``(B, T, 168, 2)`` crop px, valid ``(B, T)`` bool.

    Returns augmented copies (same shapes). Points of frames made invalid become NaN.
    """
    cfg = {**AUGMENT_DEFAULTS, **(cfg or {})}
    b, t, h, w = crops.shape
    crops, points, valid = crops.float().clone(), points.float().clone(), valid.clone()
    # Mirror (x -> w - 1 - x), keeping the landmark order anatomical.
    flip = torch.rand(b, generator=gen) < cfg["flip_p"]
    if flip.any():
        crops[flip] = crops[flip].flip(-1)
        mirrored = points[flip][:, :, flip_landmark_order()]
        mirrored[..., 0] = (w - 1) - mirrored[..., 0]
        points[flip] = mirrored
    # One affine transform per cine: p' = c + s R diag(1 + a, 1 - a) (p - c) + shift
    # (a crop through a box that is off in position, size and aspect, then rotated).
    ang = torch.deg2rad(_uniform(b, -cfg["rotate_deg"], cfg["rotate_deg"], gen))
    scale = _uniform(b, 1 - cfg["scale"], 1 + cfg["scale"], gen)
    stretch = _uniform(b, -cfg["stretch"], cfg["stretch"], gen)
    shift = _uniform(2 * b, -cfg["shift_px"], cfg["shift_px"], gen).view(b, 2)
    cos, sin = torch.cos(ang), torch.sin(ang)
    rot = torch.stack([torch.stack([cos, -sin], -1), torch.stack([sin, cos], -1)], -2)  # (b,2,2)
    centre = torch.tensor([(w - 1) / 2, (h - 1) / 2])
    axes = torch.diag_embed(torch.stack([1 + stretch, 1 - stretch], -1))  # (b, 2, 2)
    fwd = scale[:, None, None] * (rot @ axes)
    points = torch.einsum("bij,btnj->btni", fwd, points - centre) + centre + shift[:, None, None]
    # grid_sample samples the input at the inverse map, in normalised coordinates
    # (align_corners=False: pixel i <-> (i - (n - 1)/2) / (n / 2)).
    half = torch.tensor([w / 2, h / 2])
    inv = torch.linalg.inv(fwd)
    lin = inv * half[None, None, :] / half[None, :, None]
    offset = -(inv @ shift[..., None])[..., 0] / half
    theta = torch.cat([lin, offset[..., None]], dim=-1)  # (b, 2, 3)
    grid = F.affine_grid(theta, (b, 1, h, w), align_corners=False)
    crops = F.grid_sample(crops, grid, mode="bilinear", padding_mode="zeros",
                          align_corners=False)
    # Short cines: keep the first n frames only.
    short = torch.rand(b, generator=gen) < cfg["short_cine_p"]
    if short.any():
        keep = torch.randint(cfg["min_frames"], t, (b,), generator=gen)
        drop = short[:, None] & (torch.arange(t)[None, :] >= keep[:, None])
        valid = valid & ~drop
        crops[drop] = 0
    crops = _contrast(crops, cfg, gen)
    crops = _intensity(crops, cfg, gen)
    crops[~valid] = 0
    points[~valid] = float("nan")
    return crops, points, valid


def _contrast(x: torch.Tensor, cfg: dict, gen: torch.Generator, knots: int = 6) -> torch.Tensor:
    """Random monotone intensity curve (``lut_p``) and smooth shading (``shading``), the same
    for every frame of a cine. ``x`` ``(B, T, H, W)`` float >= 0."""
    b, t, h, w = x.shape
    if cfg.get("lut_p", 0) > 0:
        pick = torch.rand(b, generator=gen) < cfg["lut_p"]
        if pick.any():
            xs = x[pick]
            n = xs.shape[0]
            scale = xs.reshape(n, -1).amax(dim=1).clamp_min(1e-6).view(n, 1, 1, 1)
            u = (xs / scale).clamp(0, 1) * (knots - 1)
            steps = torch.rand(n, knots - 1, generator=gen) + 0.15
            ys = torch.cat([torch.zeros(n, 1), steps.cumsum(dim=1)], dim=1)
            ys = ys / ys[:, -1:]  # monotone, 0 -> 0 and 1 -> 1
            idx = u.floor().clamp(0, knots - 2).long()
            frac = u - idx
            ysb = ys.view(n, knots, 1, 1, 1).expand(n, knots, t, h, w)
            lo = torch.gather(ysb, 1, idx[:, None]).squeeze(1)
            hi = torch.gather(ysb, 1, (idx + 1)[:, None]).squeeze(1)
            x = x.clone()
            x[pick] = (lo + frac * (hi - lo)) * scale
    if cfg.get("shading", 0) > 0:
        field = torch.randn(b, 1, 4, 4, generator=gen)
        field = F.interpolate(field, size=(h, w), mode="bicubic", align_corners=False)
        strength = _uniform(b, 0, cfg["shading"], gen).view(b, 1, 1, 1)
        x = x * torch.exp(strength * field / field.std(dim=(2, 3), keepdim=True)
                          .clamp_min(1e-6))
    return x


def augment_localiser(ed, boxes, gen: torch.Generator, cfg: dict | None = None):
    """ed ``(B, 1, 256, 256)`` float, boxes ``(B, 4)`` padded px -> augmented copies."""
    cfg = {**AUGMENT_DEFAULTS, **(cfg or {})}
    b, _, h, w = ed.shape
    ed, boxes = ed.float().clone(), boxes.float().clone()
    flip = torch.rand(b, generator=gen) < cfg["flip_p"]
    if flip.any():
        ed[flip] = ed[flip].flip(-1)
        x1, x2 = boxes[flip, 0].clone(), boxes[flip, 2].clone()
        boxes[flip, 0], boxes[flip, 2] = (w - 1) - x2, (w - 1) - x1
    shift = torch.round(_uniform(2 * b, -2 * cfg["shift_px"], 2 * cfg["shift_px"], gen)).view(b, 2)
    theta = torch.zeros(b, 2, 3)
    theta[:, 0, 0] = theta[:, 1, 1] = 1.0
    theta[:, :, 2] = -shift / torch.tensor([w / 2, h / 2])
    grid = F.affine_grid(theta, (b, 1, h, w), align_corners=False)
    ed = F.grid_sample(ed, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    boxes = boxes + torch.cat([shift, shift], dim=1)
    return _intensity(ed, cfg, gen), boxes




def roi_box_torch(points: torch.Tensor, margin: float = 0.30) -> torch.Tensor:
    """``(B, N, 2)`` points -> ``(B, 4)`` boxes: extent plus ``margin`` of its size each side
    (the rule of :func:`raytag.geometry.roi_box`, in torch for batched augmentation)."""
    lo, hi = points.min(dim=1).values, points.max(dim=1).values
    pad = (hi - lo) * margin
    return torch.cat([lo - pad, hi + pad], dim=-1)


def augment_centre(loc, ed_points, gen: torch.Generator, cfg: dict | None = None,
                   pad_size: int = 256):
    """Centre-localiser inputs ``(B, C, S, S)`` + ED landmarks ``(B, 168, 2)`` padded px ->
    augmented inputs and their ROI boxes ``(B, 4)`` padded px (recomputed from the moved
    landmarks by the paper's rule, so a rotated heart gets the box it really has)."""
    cfg = {**AUGMENT_DEFAULTS, **(cfg or {})}
    b, ch, s, _ = loc.shape
    loc, pts = loc.float().clone(), ed_points.float().clone()
    # normalised coordinates (align_corners=False): u = (p + 0.5) / (pad / 2) - 1
    u = (pts + 0.5) / (pad_size / 2) - 1
    ang = torch.deg2rad(_uniform(b, -cfg["loc_rotate_deg"], cfg["loc_rotate_deg"], gen))
    scale = torch.exp(_uniform(b, -cfg["loc_scale"], cfg["loc_scale"], gen))
    flip = torch.where(torch.rand(b, generator=gen) < cfg["flip_p"], -1.0, 1.0)
    cos, sin = torch.cos(ang), torch.sin(ang)
    rot = torch.stack([torch.stack([cos, -sin], -1), torch.stack([sin, cos], -1)], -2)
    fwd = scale[:, None, None] * rot @ torch.diag_embed(torch.stack([flip, torch.ones(b)], -1))
    # shift, but keep the heart's centre inside the picture
    centre = u.mean(dim=1)
    moved = torch.einsum("bij,bj->bi", fwd, centre)
    shift = _uniform(2 * b, -cfg["loc_shift"], cfg["loc_shift"], gen).view(b, 2)
    shift = (moved + shift).clamp(-0.8, 0.8) - moved
    u = torch.einsum("bij,bnj->bni", fwd, u) + shift[:, None]
    inv = torch.linalg.inv(fwd)
    theta = torch.cat([inv, -(inv @ shift[..., None])], dim=-1)
    grid = F.affine_grid(theta, (b, ch, s, s), align_corners=False)
    loc = F.grid_sample(loc, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    # coil-like shading: a smooth random field, the same for every channel
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, s), torch.linspace(-1, 1, s), indexing="ij")
    coef = _uniform(6 * b, -1, 1, gen).view(b, 6, 1, 1)
    field = (coef[:, 0] * xx + coef[:, 1] * yy + coef[:, 2] * xx * yy + coef[:, 3] * xx**2
             + coef[:, 4] * yy**2) / 3
    strength = _uniform(b, 0, cfg["loc_shading"], gen).view(b, 1, 1)
    loc = loc * torch.exp(strength * field)[:, None]
    blur = torch.rand(b, generator=gen) < cfg["loc_blur_p"]
    if blur.any():
        k = torch.tensor([0.25, 0.5, 0.25])
        kern = (k[:, None] * k[None, :]).expand(ch, 1, 3, 3)
        loc[blur] = F.conv2d(loc[blur], kern, padding=1, groups=ch)
    boxes = roi_box_torch((u + 1) * (pad_size / 2) - 0.5)
    if cfg["loc_context_p"] > 0 and b > 1:
        loc = _swap_context(loc, boxes * (s / pad_size), cfg["loc_context_p"], gen)
    if cfg["loc_lut_p"] > 0:
        loc = _curve_channels(loc, cfg["loc_lut_p"], gen)
    loc = _intensity(loc, cfg, gen)
    return loc, boxes


def _curve_channels(loc: torch.Tensor, p: float, gen: torch.Generator,
                    knots: int = 6) -> torch.Tensor:
    """A random monotone piecewise-linear curve ``f`` (one per picked input, drawn as in
    :func:`_contrast`) on the localiser's intensity channels (ED, systolic mean: channels
    0 and 1 of ``(B, 3, S, S)``), and the temporal-SD channel times ``f'`` at their mean:
    to first order what the curve applied to every frame does to the SD."""
    pick = torch.rand(loc.shape[0], generator=gen) < p
    if not pick.any():
        return loc
    x = loc[pick].clamp_min(0)
    n = x.shape[0]
    scale = x[:, :2].flatten(1).amax(dim=1).clamp_min(1e-6).view(n, 1, 1)
    steps = torch.rand(n, knots - 1, generator=gen) + 0.15
    ys = torch.cat([torch.zeros(n, 1), steps.cumsum(dim=1)], dim=1)
    ys = (ys / ys[:, -1:]).view(n, knots, 1, 1)

    def curve(v: torch.Tensor):  # (n, S, S) -> f(v), f'(v)
        u = (v / scale).clamp(0, 1) * (knots - 1)
        idx = u.floor().clamp(0, knots - 2).long()
        lo = torch.gather(ys.expand(n, knots, *v.shape[-2:]), 1, idx[:, None])[:, 0]
        hi = torch.gather(ys.expand(n, knots, *v.shape[-2:]), 1, idx[:, None] + 1)[:, 0]
        return (lo + (u - idx) * (hi - lo)) * scale, (hi - lo) * (knots - 1)

    out = loc.clone()
    ed, _ = curve(x[:, 0])
    sys, _ = curve(x[:, 1])
    _, slope = curve((x[:, 0] + x[:, 1]) / 2)
    out[pick] = torch.stack([ed, sys, loc[pick, 2] * slope], dim=1)
    return out


def _swap_context(loc: torch.Tensor, boxes: torch.Tensor, p: float,
                  gen: torch.Generator) -> torch.Tensor:
    """Replace random smooth blobs of each picked input ``(B, C, S, S)`` by the next input's
    content (the batch rolled by one), nowhere within 1.5 box sizes of either input's heart
    (``boxes`` ``(B, 4)`` in input px), so each image still shows one heart, its own, in
    surroundings it was never generated with."""
    b, ch, s, _ = loc.shape
    pick = torch.rand(b, generator=gen) < p
    if not pick.any():
        return loc
    yy, xx = torch.meshgrid(torch.arange(s, dtype=torch.float32),
                            torch.arange(s, dtype=torch.float32), indexing="ij")

    def near_heart(bx: torch.Tensor) -> torch.Tensor:  # (B, S, S) in [0, 1], soft edge
        cx, cy = (bx[:, 0] + bx[:, 2]) / 2, (bx[:, 1] + bx[:, 3]) / 2
        hw = 0.75 * (bx[:, 2] - bx[:, 0]).abs().clamp_min(4)
        hh = 0.75 * (bx[:, 3] - bx[:, 1]).abs().clamp_min(4)
        d = torch.maximum((xx[None] - cx[:, None, None]).abs() / hw[:, None, None],
                          (yy[None] - cy[:, None, None]).abs() / hh[:, None, None])
        return (1.2 - d).clamp(0, 0.2) / 0.2

    donor, donor_boxes = loc.roll(1, dims=0), boxes.roll(1, dims=0)
    field = F.interpolate(torch.randn(b, 1, 6, 6, generator=gen), size=(s, s),
                          mode="bicubic", align_corners=False)[:, 0]
    ranked = field.flatten(1).sort(dim=1).values  # blobs over 30-70% of the picture
    level = ranked[torch.arange(b), (_uniform(b, 0.3, 0.7, gen) * (s * s - 1)).long()]
    blob = ((field - level.view(b, 1, 1)) / 0.15).sigmoid()
    paste = blob * (1 - near_heart(boxes)) * (1 - near_heart(donor_boxes))
    paste = paste * pick.view(b, 1, 1).float()
    gain = _uniform(b, 0.7, 1.3, gen).view(b, 1, 1, 1)
    return loc * (1 - paste[:, None]) + donor * gain * paste[:, None]
