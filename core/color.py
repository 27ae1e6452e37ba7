"""Colour constants shared by every floor: the luminance of linear Rec. 709 / sRGB primaries, and where skin tone is read.

(More colour science -- sRGB transfer, CIELAB, ΔE2000, ITA -- still lives in
texture/image_io.py, eval/metrics.py and synth/albedo.py; issue 16 gathers it here.)
"""

from __future__ import annotations

import numpy as np

LUMINANCE = (0.2126, 0.7152, 0.0722)      # Y of linear R, G, B (Rec. 709 / sRGB primaries, D65)
# FaceMesh landmarks where skin tone is read, as a colourimeter reads it: bare skin away from the eyes, brows, lips,
# nostrils, hairline and beard -- forehead centre / right / left, cheekbones right / left, mid cheeks right / left
SKIN_TONE_LANDMARKS = np.array([151, 108, 337, 50, 280, 205, 425])


def luminance(rgb: np.ndarray) -> np.ndarray:
    """(..., 3) linear RGB -> (...) linear luminance, in the input's float dtype."""
    rgb = np.asarray(rgb)
    return rgb @ np.asarray(LUMINANCE, rgb.dtype if rgb.dtype.kind == "f" else np.float64)
