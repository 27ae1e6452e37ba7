"""Colour science for every floor: sRGB transfer, luminance, XYZ and CIELAB, ΔE2000, ITA°, black bodies.

Conventions: "linear" is linear-light Rec. 709 / sRGB RGB (reflectances 0..1),
"srgb" the sRGB-encoded values 0..1; CIELAB is relative to the D65 white of
sRGB (L* 0..100). Pure functions of arrays (numpy; the ``*_torch`` variants
are differentiable); this module imports no other room of ``core``.
Also here: where on a face skin tone is read (``SKIN_TONE_LANDMARKS``).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

SRGB_TO_XYZ = np.array([[0.4124564, 0.3575761, 0.1804375],
                        [0.2126729, 0.7151522, 0.0721750],
                        [0.0193339, 0.1191920, 0.9503041]])
D65_WHITE_XYZ = np.array([0.95047, 1.0, 1.08883])
LUMINANCE = tuple(float(v) for v in SRGB_TO_XYZ[1])   # Y of linear R, G, B (Rec. 709 / sRGB primaries, D65)
# FaceMesh landmarks where skin tone is read, as a colourimeter reads it: bare skin away from the eyes, brows, lips,
# nostrils, hairline and beard -- forehead centre / right / left, cheekbones right / left, mid cheeks right / left
SKIN_TONE_LANDMARKS = np.array([151, 108, 337, 50, 280, 205, 425])


def luminance(rgb: Any) -> Any:
    """(..., 3) linear RGB -> (...) linear luminance Y, in the input's float dtype (numpy or torch)."""
    if not isinstance(rgb, np.ndarray) and hasattr(rgb, "dtype") and hasattr(rgb, "new_tensor"):     # a torch tensor
        return rgb @ rgb.new_tensor(LUMINANCE)
    rgb = np.asarray(rgb)
    return rgb @ np.asarray(LUMINANCE, rgb.dtype if rgb.dtype.kind == "f" else np.float64)


def srgb_to_linear(srgb: np.ndarray) -> np.ndarray:
    srgb = np.asarray(srgb, np.float32)
    return np.where(srgb <= 0.04045, srgb / 12.92, ((srgb + 0.055) / 1.055) ** 2.4).astype(np.float32)


def linear_to_srgb(linear: np.ndarray) -> np.ndarray:
    linear = np.clip(np.asarray(linear, np.float32), 0.0, None)
    return np.where(linear <= 0.0031308, linear * 12.92, 1.055 * linear ** (1 / 2.4) - 0.055).astype(np.float32)


SRGB8_TO_LINEAR = srgb_to_linear(np.arange(256, dtype=np.float32) / 255.0)   # lookup table for 8-bit frames


def srgb_to_linear_torch(x: "torch.Tensor") -> "torch.Tensor":
    """The sRGB transfer function on tensors (differentiable)."""
    import torch

    return torch.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055).clamp_min(1e-8) ** 2.4)


def linear_to_srgb_torch(x: "torch.Tensor") -> "torch.Tensor":
    import torch

    return torch.where(x <= 0.0031308, x * 12.92, 1.055 * x.clamp_min(1e-8) ** (1 / 2.4) - 0.055)


def linear_srgb_to_lab(rgb: Any) -> np.ndarray:
    """(..., 3) linear sRGB -> (..., 3) CIELAB (L*, a*, b*), D65 white, standard sRGB primaries."""
    xyz = np.asarray(rgb, np.float64) @ SRGB_TO_XYZ.T / D65_WHITE_XYZ
    delta = 6.0 / 29.0
    f = np.where(xyz > delta ** 3, np.cbrt(np.maximum(xyz, 0.0)), xyz / (3 * delta * delta) + 4.0 / 29.0)
    return np.stack([116.0 * f[..., 1] - 16.0, 500.0 * (f[..., 0] - f[..., 1]), 200.0 * (f[..., 1] - f[..., 2])], -1)


def ita_degrees(linear_rgb: Any) -> np.ndarray:
    """Individual typology angle ITA = atan2(L* - 50, b*) in degrees per pixel (> 55 very light .. < -30 dark)."""
    lab = linear_srgb_to_lab(linear_rgb)
    return np.degrees(np.arctan2(lab[..., 0] - 50.0, lab[..., 2]))


ITA_CATEGORIES = (("very_light", 55.0, 90.0), ("light", 41.0, 55.0), ("intermediate", 28.0, 41.0),
                  ("tan", 10.0, 28.0), ("brown", -30.0, 10.0), ("dark", -90.0, -30.0))   # Chardon 1991, Del Bino 2013


def ita_category(ita_deg: float) -> str:
    return next(name for name, low, high in ITA_CATEGORIES if ita_deg > low or name == "dark")


def delta_e2000(lab1: np.ndarray, lab2: np.ndarray) -> np.ndarray:
    """(..., 3), (..., 3) CIELAB -> (...) CIEDE2000 colour difference (kL = kC = kH = 1).

    As Sharma, Wu and Dalal, "The CIEDE2000 color-difference formula:
    implementation notes, supplementary test data, and mathematical
    observations" (Color Res. Appl. 30, 2005), including their hue-angle rules
    (h = 0 where a' = b = 0; mean hue of a pair with a zero chroma = their sum).
    """
    lab1, lab2 = np.broadcast_arrays(np.asarray(lab1, np.float64), np.asarray(lab2, np.float64))
    L1, a1, b1 = np.moveaxis(lab1, -1, 0)
    L2, a2, b2 = np.moveaxis(lab2, -1, 0)
    chroma_mean = (np.hypot(a1, b1) + np.hypot(a2, b2)) / 2
    g = 0.5 * (1 - np.sqrt(chroma_mean ** 7 / (chroma_mean ** 7 + 25.0 ** 7)))
    a1p, a2p = (1 + g) * a1, (1 + g) * a2
    c1p, c2p = np.hypot(a1p, b1), np.hypot(a2p, b2)
    h1p = np.degrees(np.arctan2(b1, a1p)) % 360.0
    h2p = np.degrees(np.arctan2(b2, a2p)) % 360.0
    h1p = np.where((a1p == 0) & (b1 == 0), 0.0, h1p)
    h2p = np.where((a2p == 0) & (b2 == 0), 0.0, h2p)
    chroma_product = c1p * c2p

    dL = L2 - L1
    dC = c2p - c1p
    dh = h2p - h1p
    dh = np.where(dh > 180, dh - 360, np.where(dh < -180, dh + 360, dh))
    dh = np.where(chroma_product == 0, 0.0, dh)
    dH = 2 * np.sqrt(chroma_product) * np.sin(np.radians(dh) / 2)

    L_mean = (L1 + L2) / 2
    C_mean = (c1p + c2p) / 2
    h_sum = h1p + h2p
    h_mean = np.where(np.abs(h1p - h2p) <= 180, h_sum / 2, np.where(h_sum < 360, (h_sum + 360) / 2, (h_sum - 360) / 2))
    h_mean = np.where(chroma_product == 0, h_sum, h_mean)
    t = (1 - 0.17 * np.cos(np.radians(h_mean - 30)) + 0.24 * np.cos(np.radians(2 * h_mean))
         + 0.32 * np.cos(np.radians(3 * h_mean + 6)) - 0.20 * np.cos(np.radians(4 * h_mean - 63)))
    d_theta = 30 * np.exp(-(((h_mean - 275) / 25) ** 2))
    r_c = 2 * np.sqrt(C_mean ** 7 / (C_mean ** 7 + 25.0 ** 7))
    s_l = 1 + 0.015 * (L_mean - 50) ** 2 / np.sqrt(20 + (L_mean - 50) ** 2)
    s_c = 1 + 0.045 * C_mean
    s_h = 1 + 0.015 * C_mean * t
    r_t = -np.sin(np.radians(2 * d_theta)) * r_c
    return np.sqrt((dL / s_l) ** 2 + (dC / s_c) ** 2 + (dH / s_h) ** 2 + r_t * (dC / s_c) * (dH / s_h))


def blackbody_rgb(kelvin: float) -> np.ndarray:
    """(3,) float64 linear RGB of a black body at ``kelvin`` (1000-40000 K), normalised to max 1
    (Tanner Helland's fit of the black-body locus in 8-bit sRGB, decoded)."""
    t = kelvin / 100.0
    red = 255.0 if t <= 66 else 329.698727446 * (t - 60) ** -0.1332047592
    green = 99.4708025861 * math.log(t) - 161.1195681661 if t <= 66 else 288.1221695283 * (t - 60) ** -0.0755148492
    blue = 255.0 if t >= 66 else 0.0 if t <= 19 else 138.5177312231 * math.log(t - 10) - 305.0447927307
    linear = srgb_to_linear(np.clip(np.array([red, green, blue]) / 255.0, 1 / 255, 1.0)).astype(np.float64)
    return linear / linear.max()
