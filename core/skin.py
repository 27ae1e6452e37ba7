"""The biophysical model of skin colour: melanin and blood fractions -> spectral reflectance -> linear sRGB albedo.

After Donner & Jensen 2006 ("A spectral BSSRDF for shading human skin") and
Jimenez et al. 2010 ("A practical appearance model for dynamic facial
color"): an epidermis with eumelanin and pheomelanin over a semi-infinite
dermis with oxy- and deoxy-haemoglobin, combined with Kubelka-Munk layer
formulas at 400-700 nm in 10 nm steps, integrated against the CIE 1931
observer under D65 into linear sRGB. The spectra are evaluated once per
(pheomelanin ratio, oxygenation) into a melanin x haemoglobin lookup table;
texels look it up bilinearly. Also the albedos of the parts that are not skin.

The synthetic albedos (synth/albedo.py) are painted with it, and classic
delighting (texture/delight.py) reads the skin locus from it. This module
imports only ``core/color``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from . import color

# linear albedo of the parts that are not skin (their own materials carry them in Blender)
NON_SKIN_ALBEDOS = {"eye_left": (0.72, 0.70, 0.68), "eye_right": (0.72, 0.70, 0.68), "mouth_interior": (0.22, 0.05, 0.05),
                    "teeth": (0.75, 0.72, 0.62), "tongue": (0.50, 0.16, 0.16)}

# --- spectral data --------------------------------------------------------------------------------------------------
WAVELENGTHS_NM = np.arange(400.0, 701.0, 10.0)
# molar extinction coefficients of oxy- and deoxy-haemoglobin, cm^-1 / (mol/l), at WAVELENGTHS_NM
# (S. Prahl, "Tabulated molar extinction coefficient for hemoglobin in water", OMLC, from Gratzer and Kollias)
HAEMOGLOBIN_EXTINCTION = np.array([
    (266232, 223296), (466840, 303956), (480360, 407560), (246072, 528600), (102580, 413280), (62816, 103292),
    (44480, 23388.8), (33209.2, 16156.4), (26629.2, 14550), (23684.4, 16684), (20932.8, 20862), (20035.2, 25773.6),
    (24202.4, 31589.6), (39956.8, 39036.4), (53236, 46592), (43016, 53412), (32613.2, 53788), (44496, 45072),
    (50104, 37020), (14400.8, 28324.4), (3200, 14677.2), (1506, 9443.6), (942, 6509.6), (610, 5148.8),
    (442, 4345.2), (368, 3750.12), (319.6, 3226.56), (294, 2795.12), (277.6, 2407.92), (276, 2051.96),
    (290, 1794.28)])
# CIE standard illuminant D65, relative spectral power at WAVELENGTHS_NM (CIE 15:2004)
D65_SPD = np.array([82.7549, 91.486, 93.4318, 86.6823, 104.865, 117.008, 117.812, 114.861, 115.923, 108.811, 109.354,
                    107.802, 104.790, 107.689, 104.405, 104.046, 100.000, 96.3342, 95.788, 88.6856, 90.0062, 89.5991,
                    87.6987, 83.6992, 83.6987, 80.2151, 80.4268, 82.2778, 78.2842, 69.7213, 71.6091])
BLOOD_G_PER_L = 150.0                  # haemoglobin in whole blood
HAEMOGLOBIN_G_PER_MOL = 64500.0
EPIDERMIS_MM = 0.10                    # melanin-bearing epidermis over a semi-infinite dermis
INTERNAL_REFLECTANCE = 0.5             # diffuse reflectance of the skin-air boundary seen from inside (n ~ 1.4)
SURFACE_REFLECTANCE = 0.04             # specular part at the surface: not albedo, but lost to the diffuse light


# lookup table axes: volume fractions of melanin in the epidermis and of blood in the dermis (log-spaced)
LUT_MELANIN = (0.001, 0.5)
LUT_HAEMOGLOBIN = (0.002, 0.4)
LUT_STEPS = 64


def _cie_observer(wavelengths_nm: np.ndarray) -> np.ndarray:
    """(n, 3) CIE 1931 2-degree colour matching functions, the multi-lobe fit of Wyman, Sloan & Shirley (JCGT 2013)."""
    def lobe(mu: float, below: float, above: float) -> np.ndarray:
        sigma = np.where(wavelengths_nm < mu, below, above)
        return np.exp(-0.5 * ((wavelengths_nm - mu) / sigma) ** 2)

    x = 1.056 * lobe(599.8, 37.9, 31.0) + 0.362 * lobe(442.0, 16.0, 26.7) - 0.065 * lobe(501.1, 20.4, 26.2)
    y = 0.821 * lobe(568.8, 46.9, 40.5) + 0.286 * lobe(530.9, 16.3, 31.1)
    z = 1.217 * lobe(437.0, 11.8, 36.0) + 0.681 * lobe(459.0, 26.0, 13.8)
    return np.stack([x, y, z], 1)


def skin_spectrum(melanin: Any, haemoglobin: Any, pheomelanin_ratio: float = 0.3, oxy_ratio: float = 0.75) -> np.ndarray:
    """(..., 31) diffuse reflectance at WAVELENGTHS_NM of skin with these volume fractions (broadcast arrays).

    melanin: fraction of the epidermis that is melanosomes (0.003 very light .. 0.3 very dark skin);
    haemoglobin: fraction of the dermis that is blood (0.005 .. 0.2); pheomelanin_ratio: pheomelanin's share
    of the melanin; oxy_ratio: oxygen saturation of the blood.
    """
    wl = WAVELENGTHS_NM
    # absorption coefficients, mm^-1 (Donner & Jensen 2006; Jacques 1998 for the melanin power laws)
    eumelanin = 6.6e10 * wl ** -3.33
    pheomelanin = 2.9e14 * wl ** -4.75
    baseline = 0.0244 + 8.53 * np.exp(-(wl - 154.0) / 66.2)
    extinction = oxy_ratio * HAEMOGLOBIN_EXTINCTION[:, 0] + (1.0 - oxy_ratio) * HAEMOGLOBIN_EXTINCTION[:, 1]
    blood = math.log(10) * extinction * BLOOD_G_PER_L / HAEMOGLOBIN_G_PER_MOL / 10.0
    melanin = np.asarray(melanin, np.float64)[..., None]
    haemoglobin = np.asarray(haemoglobin, np.float64)[..., None]
    absorb_epidermis = melanin * (pheomelanin_ratio * pheomelanin + (1 - pheomelanin_ratio) * eumelanin) + (1 - melanin) * baseline
    absorb_dermis = haemoglobin * blood + (1 - haemoglobin) * baseline
    scatter = 0.75 * 4.6 * (wl / 500.0) ** -1.421   # Kubelka-Munk S from skin's reduced scattering (Jacques 2013)

    ratio = 2.0 * absorb_dermis / scatter             # K / S, K = 2 mu_a
    dermis = 1.0 + ratio - np.sqrt(ratio * ratio + 2.0 * ratio)
    a = 1.0 + 2.0 * absorb_epidermis / scatter
    b = np.sqrt(a * a - 1.0)
    optical = b * scatter * EPIDERMIS_MM
    denominator = a * np.sinh(optical) + b * np.cosh(optical)
    reflect, transmit = np.sinh(optical) / denominator, b / denominator
    inner = reflect + transmit * transmit * dermis / (1.0 - reflect * dermis)
    # Saunderson: light crossing the surface in and out, part reflected back inside
    return (1 - SURFACE_REFLECTANCE) * (1 - INTERNAL_REFLECTANCE) * inner / (1 - INTERNAL_REFLECTANCE * inner)


def spectrum_to_linear_srgb(reflectance: np.ndarray) -> np.ndarray:
    """(..., 31) reflectance spectra -> (..., 3) linear sRGB under D65, a perfect white reflector giving (1, 1, 1)."""
    weights = _cie_observer(WAVELENGTHS_NM) * D65_SPD[:, None]
    to_rgb = np.linalg.inv(color.SRGB_TO_XYZ)
    white = to_rgb @ weights.sum(0)          # the 10 nm, 400-700 nm sum is white-balanced exactly
    return (np.asarray(reflectance, np.float64) @ weights) @ to_rgb.T / white


_SKIN_LUTS: dict[tuple[float, float], np.ndarray] = {}


def skin_lut(pheomelanin_ratio: float, oxy_ratio: float) -> np.ndarray:
    """(LUT_STEPS, LUT_STEPS, 3) float32 linear sRGB: rows log-spaced melanin, columns log-spaced haemoglobin."""
    key = (round(float(pheomelanin_ratio), 3), round(float(oxy_ratio), 3))
    if key not in _SKIN_LUTS:
        if len(_SKIN_LUTS) > 64:
            _SKIN_LUTS.clear()
        melanin = np.geomspace(*LUT_MELANIN, LUT_STEPS)
        haemoglobin = np.geomspace(*LUT_HAEMOGLOBIN, LUT_STEPS)
        spectra = skin_spectrum(melanin[:, None], haemoglobin[None, :], *key)
        _SKIN_LUTS[key] = np.clip(spectrum_to_linear_srgb(spectra), 0.0, 1.0).astype(np.float32)
    return _SKIN_LUTS[key]


def skin_lut_coordinates(melanin: np.ndarray, haemoglobin: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Fractional LUT (row, column) of the concentrations, clamped to the table."""
    def axis(values: np.ndarray, bounds: tuple[float, float]) -> np.ndarray:
        low, high = math.log(bounds[0]), math.log(bounds[1])
        position = (np.log(np.maximum(values, 1e-9)) - low) * ((LUT_STEPS - 1) / (high - low))
        return np.clip(position, 0.0, LUT_STEPS - 1.0).astype(np.float32)

    return axis(np.asarray(melanin, np.float32), LUT_MELANIN), axis(np.asarray(haemoglobin, np.float32), LUT_HAEMOGLOBIN)


def skin_lut_lookup(lut: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Bilinear lookup of (rows, cols) arrays of any 2D shape (OpenCV remap: fast and deterministic)."""
    import cv2

    return cv2.remap(lut, cols, rows, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def skin_reflectance_rgb(melanin: Any, haemoglobin: Any, pheomelanin_ratio: float = 0.3, oxy_ratio: float = 0.75) -> np.ndarray:
    """(..., 3) float32 linear sRGB albedo of skin with these melanin / blood fractions (arrays, broadcast).

    The ratios are scalars (one lookup table per pair, cached); values outside
    the table's range (melanin 0.001-0.5, blood 0.002-0.4) are clamped to it.
    """
    melanin, haemoglobin = np.broadcast_arrays(np.asarray(melanin, np.float32), np.asarray(haemoglobin, np.float32))
    shape = melanin.shape
    rows, cols = skin_lut_coordinates(melanin.reshape(1, -1), haemoglobin.reshape(1, -1))
    out = skin_lut_lookup(skin_lut(pheomelanin_ratio, oxy_ratio), rows, cols)
    return out.reshape(shape + (3,))
