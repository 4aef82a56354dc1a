"""Tissue signal under SPAMM tagging, and the acquisition chain that turns it into stored pixels.

Signal model (shared by the ``thorax`` and ``patchwork`` families; the ``disc`` family keeps
its own single-T1 form in :mod:`raytag.phantom.render`). A tissue with relative proton
density ``rho`` (myocardium at frame 0 = 1), longitudinal relaxation ``T1`` and steady-state
ratio ``m_ss`` gives at material position ``X`` and time ``t`` after the R wave::

    S(X, t) = rho(X) * (m_ss + (P(X) - m_ss) * q(t)),     q(t) = (exp(-TR / T1) cos flip)**(t / TR)

with ``P`` the SPAMM pattern (:func:`raytag.phantom.render.tag_pattern`, mean 1): tags fade
with each imaging pulse faster in short-T1 tissue (fat) than in long-T1 tissue, and the mean
tends to ``m_ss``. Blood is replaced by untagged inflow within a few frames instead.

Relative proton densities, T1 and ``m_ss`` below are chosen so the tissue curves of
docs/realism.md come out (myocardium mean x1.47 and tag modulation 0.43 -> 0.06 over the cine;
fat 2.5x the myocardium, its tags gone by frame 9; blood washed out by frame 2).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from raytag.phantom.textures import smooth_field

__all__ = ["Tissue", "TISSUES", "decay", "LayerStack", "finish"]


@dataclass(frozen=True)
class Tissue:
    """``rho`` relative PD, ``t1_ms`` at 1.5 T, ``m_ss`` steady-state ratio, ``texture`` SD."""

    rho: float
    t1_ms: float
    m_ss: float
    texture: float


#: Tissue classes of the synthetic anatomy.
TISSUES: dict[str, Tissue] = {
    "myocardium": Tissue(1.00, 1000.0, 1.60, 0.06),
    "blood": Tissue(1.12, 1450.0, 1.70, 0.03),
    "fat": Tissue(2.40, 260.0, 1.35, 0.10),
    "muscle": Tissue(0.85, 1000.0, 1.55, 0.10),
    "liver": Tissue(0.80, 580.0, 1.45, 0.10),
    "lung": Tissue(0.06, 1200.0, 1.60, 0.50),
    "marrow": Tissue(1.50, 450.0, 1.40, 0.20),
    "bone": Tissue(0.05, 1000.0, 1.50, 0.30),
    "fluid": Tissue(0.90, 2500.0, 1.90, 0.05),
    "bowel": Tissue(0.85, 800.0, 1.50, 0.25),
    "skin": Tissue(1.10, 800.0, 1.50, 0.10),
    "air": Tissue(0.0, 1000.0, 1.0, 0.0),
}


def decay(t_ms: np.ndarray, t1_ms: float, tr_ms: float, flip_deg: float) -> np.ndarray:
    """``q(t)``: the tag modulation left after the imaging pulses up to ``t_ms`` (any shape)."""
    per_pulse = np.exp(-tr_ms / t1_ms) * np.cos(np.deg2rad(flip_deg))
    return per_pulse ** (np.asarray(t_ms, float) / tr_ms)


class LayerStack:
    """Soft tissue layers painted in order: each covers what lies below by its own fraction.

    ``paint(tissue, weight, texture)`` adds a layer of a :data:`TISSUES` class with
    partial-volume ``weight`` ``(rows, cols)`` in [0, 1] and a unit texture (its proton
    density varies by the tissue's texture SD); :meth:`terms` gives the tagged signal.
    """

    def __init__(self, shape):
        self.shape = shape
        self.layers: list[tuple[Tissue, np.ndarray, np.ndarray]] = []  # (tissue, weight, pd)

    def paint(self, tissue: str | Tissue, weight: np.ndarray, texture: np.ndarray,
              pd_scale: float = 1.0) -> None:
        weight = np.clip(weight, 0.0, 1.0)
        for i, (t, w, pd) in enumerate(self.layers):
            self.layers[i] = (t, w * (1 - weight), pd)
        t = TISSUES[tissue] if isinstance(tissue, str) else tissue
        pd = t.rho * pd_scale * np.maximum(1 + t.texture * texture, 0.0)
        self.layers.append((t, weight, pd))

    def terms(self, pattern: np.ndarray, t_ms: np.ndarray, tr_ms: float, flip: float,
              t1_scale: float) -> np.ndarray:
        """Signal ``(T, rows, cols)`` of the stack: ``sum_l A_l + B_l q_l(t)``."""
        a = np.zeros(self.shape)
        b = np.zeros((len(self.layers), *self.shape))
        q = np.zeros((len(t_ms), len(self.layers)))
        for i, (tis, w, pd) in enumerate(self.layers):
            rho = w * pd
            a += rho * tis.m_ss
            b[i] = rho * (pattern - tis.m_ss)
            q[:, i] = decay(t_ms, tis.t1_ms * t1_scale, tr_ms, flip)
        out = np.tensordot(q, b, axes=(1, 0))
        out += a
        return out


def finish(frames: np.ndarray, rng: np.random.Generator, *, signal: float, snr: float,
           blur_px: float, bias: float, ringing: float, ringing_axis: int) -> np.ndarray:
    """Relative signal ``(T, rows, cols)`` -> stored uint16 pixels, through the scanner chain.

    ``signal`` scales the myocardium's frame-0 mean to stored units; ``bias`` is the peak
    log-amplitude of a smooth coil-sensitivity field (0 = none); ``ringing`` the fraction of
    k-space kept along ``ringing_axis`` (1 = none; < 1 gives Gibbs ringing at edges, as the
    real 174-line acquisition does); ``blur_px`` a Gaussian PSF; Rician noise with
    ``SD = signal / snr``; values rounded and clipped to the 12-bit container.
    """
    frames = np.asarray(frames, dtype=np.float32) * np.float32(signal)
    t, rows, cols = frames.shape
    if bias > 0:
        frames *= np.exp(bias * smooth_field(rng, (rows, cols))).astype(np.float32)
    if ringing < 1.0:
        axis = 1 + ringing_axis
        n = frames.shape[axis]
        spectrum = np.fft.rfft(frames, axis=axis)
        keep = max(2, int(round(ringing * (n // 2 + 1))))
        index = [slice(None)] * 3
        index[axis] = slice(keep, None)
        spectrum[tuple(index)] = 0
        frames = np.abs(np.fft.irfft(spectrum, n=n, axis=axis)).astype(np.float32)
    if blur_px > 0:
        frames = ndimage.gaussian_filter(frames, (0, blur_px, blur_px))
    sd = np.float32(signal / snr)
    noise = rng.standard_normal((2, *frames.shape), dtype=np.float32) * sd
    frames = np.hypot(frames + noise[0], noise[1])  # magnitude of complex data: Rician
    np.minimum(frames, 4095.0, out=frames)
    frames += 0.5
    return frames.astype(np.uint16)
