"""A minimal analytic tagged-ring phantom with exact landmark truth (pure numpy).

This is the foundation's stand-in, used by ``raytag demo`` and tests until the
physics-based cohort generator (issue 3) lands in this package. The LV wall is an
annulus about a fixed centre; its motion is defined in material polar coordinates
``(R, Theta)`` and is analytically invertible:

- incompressible radial motion: ``r(R, t)**2 = r_endo(t)**2 + R**2 - R_endo**2`` (wall area
  is conserved, so the wall thickens as the endocardium moves in and circumferential
  shortening is largest sub-endocardially, as in real hearts);
- rigid twist ``theta = Theta + phi(t)``.

``c(t)`` in [0, 1] is the contraction profile: a raised cosine up to ES, relaxation after.
Tags are a 1-1 SPAMM grid at +-45 deg carried by the material coordinates, fading with time.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from raytag.constants import N_FRAMES, N_TRANSMURAL
from raytag.landmarks import concentric_rings

__all__ = ["RingPhantom", "contraction_profile"]


def contraction_profile(n_frames: int = N_FRAMES, es_frame: int = 7) -> np.ndarray:
    """``c(t)`` ``(n_frames,)`` float64: 0 at ED, 1 at ``es_frame``, relaxing to ~0 at the end."""
    t = np.arange(n_frames, dtype=float)
    up = 0.5 * (1 - np.cos(np.pi * np.minimum(t, es_frame) / es_frame))
    down = np.exp(-((np.maximum(t - es_frame, 0) / (0.45 * (n_frames - es_frame))) ** 2))
    return np.where(t <= es_frame, up, down)


@dataclass
class RingPhantom:
    """One slice: geometry in pixels of the stored matrix, motion parameters, imaging.

    ``endo_shortening`` is the fractional decrease of the endocardial radius at ES;
    ``twist_deg`` the rotation at ES (image coordinates, degrees); ``theta0_deg`` the angle of
    spoke 0 (mid-septum) in image coordinates (atan2 with x right, y down).
    """

    rows: int = 256
    cols: int = 174
    center_xy: tuple[float, float] = (87.0, 120.0)
    r_endo_px: float = 14.0
    r_epi_px: float = 22.0
    endo_shortening: float = 0.3
    twist_deg: float = -8.0
    theta0_deg: float = 143.0
    es_frame: int = 7
    n_frames: int = N_FRAMES
    tag_spacing_px: float = 4.4
    signal: float = 100.0
    noise_sd: float = 3.0

    def _profile(self) -> np.ndarray:
        return contraction_profile(self.n_frames, self.es_frame)

    def _radius(self, r_material: np.ndarray, c: np.ndarray) -> np.ndarray:
        """Spatial radius ``(..., T)`` of material radius ``R`` at contraction ``c`` ``(T,)``."""
        r_endo_t = self.r_endo_px * (1 - self.endo_shortening * c)
        return np.sqrt(r_endo_t**2 + np.asarray(r_material)[..., None] ** 2 - self.r_endo_px**2)

    def landmarks(self) -> np.ndarray:
        """Exact landmark truth ``(T, 168, 2)`` float64, (x, y) in original pixels."""
        c = self._profile()
        r_mat = self.r_endo_px + (self.r_epi_px - self.r_endo_px) * np.arange(N_TRANSMURAL) / (
            N_TRANSMURAL - 1
        )
        radii = self._radius(r_mat, c).T  # (T, 7)
        theta0 = np.deg2rad(self.theta0_deg + self.twist_deg * c)  # (T,)
        return concentric_rings(np.asarray(self.center_xy, float), radii, theta0)

    def frames(self, rng: np.random.Generator | None = None) -> np.ndarray:
        """Tagged magnitude images ``(T, rows, cols)`` uint16 (Rician noise)."""
        rng = rng if rng is not None else np.random.default_rng(0)
        c = self._profile()
        y, x = np.mgrid[0 : self.rows, 0 : self.cols].astype(float)
        dx, dy = x - self.center_xy[0], y - self.center_xy[1]
        r = np.hypot(dx, dy)
        theta = np.arctan2(dy, dx)
        out = np.empty((self.n_frames, self.rows, self.cols), dtype=np.uint16)
        k = 2 * np.pi / self.tag_spacing_px
        body = ((dx / (0.48 * self.cols)) ** 2 + (dy / (0.45 * self.rows)) ** 2) < 1
        for t in range(self.n_frames):
            r_endo_t = self.r_endo_px * (1 - self.endo_shortening * c[t])
            r_epi_t = float(self._radius(np.asarray(self.r_epi_px), c[t : t + 1])[0])
            wall = (r >= r_endo_t) & (r <= r_epi_t)
            # Invert the motion inside the wall; outside, tissue is static.
            r_wall = np.sqrt(np.maximum(r**2 - r_endo_t**2, 0) + self.r_endo_px**2)
            r_mat = np.where(wall, r_wall, r)
            th_mat = np.where(wall, theta - np.deg2rad(self.twist_deg) * c[t], theta)
            xm = self.center_xy[0] + r_mat * np.cos(th_mat)
            ym = self.center_xy[1] + r_mat * np.sin(th_mat)
            tags = 0.25 * (1 + np.cos(k * (xm + ym) / np.sqrt(2))) * (
                1 + np.cos(k * (xm - ym) / np.sqrt(2))
            )
            fade = np.exp(-t / 8.0)
            tissue = self.signal * (fade * tags + (1 - fade) * 0.6)
            blood = r < r_endo_t
            # Surrounding tissue darker than the wall so the myocardium stands out.
            img = np.where(body, np.where(wall, tissue, 0.55 * tissue), 0.0)
            img = np.where(blood, 0.9 * self.signal * (0.6 + 0.4 * np.exp(-t)), img)
            noisy = np.hypot(img + rng.normal(0, self.noise_sd, img.shape),
                             rng.normal(0, self.noise_sd, img.shape))
            out[t] = np.clip(np.rint(noisy), 0, 4095).astype(np.uint16)
        return out

    def truth_strains(self) -> dict[str, np.ndarray]:
        """Closed-form Green circumferential strain ``(T, 7)`` per ring: 0.5((r/R)^2 - 1).

        A regular 24-gon's chords scale with its radius, so the landmark-based ring strain
        equals the continuum value exactly; used to check the pipeline end to end.
        """
        c = self._profile()
        r_mat = self.r_endo_px + (self.r_epi_px - self.r_endo_px) * np.arange(N_TRANSMURAL) / (
            N_TRANSMURAL - 1
        )
        ratio = self._radius(r_mat, c).T / r_mat
        return {"rings": 0.5 * (ratio**2 - 1)}
