"""Image and shape metrics of the evaluation, each a pure function of arrays (numpy, vectorized).

Conventions: colour images are (H, W, 3) float RGB; "srgb" values are
sRGB-encoded in 0..1 (PSNR and SSIM are taken on them, peak 1, as image
metrics usually are), "linear" values are linear-light reflectances; CIELAB
is relative to the D65 white of sRGB (L* 0..100). Masks are (H, W) bool and
select the pixels a metric is taken over. A metric of two identical images is
exact: PSNR ``inf``, ΔE 0.

This module knows nothing of captures, head models or files; colour science
(CIELAB, ΔE2000, ITA°, luminance) is ``core/color.py``'s.
"""

from __future__ import annotations

import math

import numpy as np

from ..color import luminance

SSIM_SIGMA_PX = 1.5                      # Gaussian window of SSIM (Wang et al. 2004)
SSIM_TRUNCATE = 3.5                      # window radius in sigmas (an 11 x 11 window, as in the paper)
SSIM_C1 = 0.01 ** 2                      # stabilisers for a dynamic range of 1
SSIM_C2 = 0.03 ** 2
HF_BAND_OF_NYQUIST = (1 / 8, 1 / 2)      # the band of skin micro-detail (pores, fine lines) of albedo_hf_energy_ratio
__all__ = ["band_energy", "exposure_gain", "gradient_correlation", "psnr", "rigid_alignment_error_m", "seam_ratio",
           "shading_leakage", "ssim"]


def psnr(a_srgb: np.ndarray, b_srgb: np.ndarray, mask: np.ndarray) -> float:
    """Peak signal-to-noise ratio (dB, peak 1) over the masked pixels, all channels; ``inf`` if they are equal."""
    difference = (np.asarray(a_srgb, np.float64) - np.asarray(b_srgb, np.float64))[mask]
    if difference.size == 0:
        return math.nan
    mse = float(np.mean(difference ** 2))
    return math.inf if mse == 0.0 else 10.0 * math.log10(1.0 / mse)


def ssim(a_srgb: np.ndarray, b_srgb: np.ndarray, mask: np.ndarray) -> float:
    """Structural similarity (Gaussian window, sigma 1.5) averaged over the masked pixels and the channels.

    The window statistics are mask-normalised (each window weighs only masked
    pixels), so what lies outside the mask -- the holes of a texture that was
    not completed, the gutter between UV islands -- never leaks into the
    value at a masked pixel. With an all-true mask this is the usual SSIM.
    """
    import cv2

    mask = np.asarray(mask, bool)
    if not mask.any():
        return math.nan
    a = np.asarray(a_srgb, np.float32)         # float32 is exact enough here (variances >> 1e-7) and twice as fast
    b = np.asarray(b_srgb, np.float32)
    weight = mask.astype(np.float32)
    side = 2 * math.ceil(SSIM_TRUNCATE * SSIM_SIGMA_PX) + 1

    def blurred(image: np.ndarray) -> np.ndarray:
        """Gaussian window sum of ``image`` at each masked pixel: (n,) or (n, 3)."""
        return cv2.GaussianBlur(np.ascontiguousarray(image), (side, side), SSIM_SIGMA_PX, borderType=cv2.BORDER_REFLECT)[mask]

    total = blurred(weight)[:, None]
    w = weight[..., None]
    stats = {name: blurred(image * w) / total for name, image in (("a", a), ("b", b), ("aa", a * a), ("bb", b * b), ("ab", a * b))}
    mu_a, mu_b = (stats[k].astype(np.float64) for k in ("a", "b"))
    var_a = np.maximum(stats["aa"] - mu_a ** 2, 0.0)          # rounding can leave a tiny negative variance
    var_b = np.maximum(stats["bb"] - mu_b ** 2, 0.0)
    cov = stats["ab"] - mu_a * mu_b
    value = ((2 * mu_a * mu_b + SSIM_C1) * (2 * cov + SSIM_C2)) / ((mu_a ** 2 + mu_b ** 2 + SSIM_C1) * (var_a + var_b + SSIM_C2))
    return float(value.mean())


def exposure_gain(estimate_linear: np.ndarray, truth_linear: np.ndarray, mask: np.ndarray) -> float:
    """The one gain (same for every channel) that best matches the estimate's brightness to the truth's:
    the median luminance ratio truth / estimate over the masked pixels (a phone auto-exposes, so the
    absolute brightness of a recovered albedo cannot be known; its colour and structure can)."""
    estimate = luminance(np.asarray(estimate_linear, np.float64)[mask])
    truth = luminance(np.asarray(truth_linear, np.float64)[mask])
    usable = estimate > 1e-6
    if not usable.any():
        return 1.0
    return float(np.median(truth[usable] / estimate[usable]))


def shading_leakage(estimate_linear: np.ndarray, truth_linear: np.ndarray, shading_linear: np.ndarray,
                    mask: np.ndarray) -> float:
    """Pearson correlation, over the masked pixels, of the albedo's log-luminance error log(est / true) with the
    log-luminance of the true shading: 0 = no trace of the capture's light left, 1 = the light fully baked in.

    A global exposure gain adds a constant to the log error and cannot change
    the correlation. NaN when the shading (or the error) does not vary.
    """
    estimate = luminance(np.asarray(estimate_linear, np.float64)[mask])
    truth = luminance(np.asarray(truth_linear, np.float64)[mask])
    shading = luminance(np.asarray(shading_linear, np.float64)[mask])
    usable = (estimate > 1e-6) & (truth > 1e-6) & (shading > 1e-6)
    if usable.sum() < 3:
        return math.nan
    error = np.log(estimate[usable] / truth[usable])
    light = np.log(shading[usable])
    error, light = error - error.mean(), light - light.mean()
    scale = math.sqrt(float((error ** 2).sum() * (light ** 2).sum()))
    if scale < 1e-12 or light.std() < 1e-6 or error.std() < 1e-9:
        return math.nan
    return float((error * light).sum() / scale)


def rigid_alignment_error_m(points: np.ndarray, reference: np.ndarray, with_scale: bool = False) -> float:
    """Mean distance between corresponding points (n, 3) after the best rigid alignment of ``points`` onto
    ``reference`` (rotation and translation, Kabsch; and one uniform scale with ``with_scale``)."""
    p = np.asarray(points, np.float64)
    q = np.asarray(reference, np.float64)
    p_centred, q_centred = p - p.mean(0), q - q.mean(0)
    u, singular, vt = np.linalg.svd(p_centred.T @ q_centred)
    sign = np.sign(np.linalg.det(u @ vt)) or 1.0
    correction = np.diag([1.0, 1.0, sign])
    rotation = u @ correction @ vt                                        # row vectors: p @ rotation ~ q
    scale = float((singular * np.diag(correction)).sum() / (p_centred ** 2).sum()) if with_scale else 1.0
    aligned = scale * p_centred @ rotation + q.mean(0)
    return float(np.linalg.norm(aligned - q, axis=1).mean())


def _grey(image: np.ndarray) -> np.ndarray:
    """(H, W) float32 linear luminance of an (H, W, 3) linear RGB image, or an (H, W) one as it is."""
    image = np.asarray(image)
    return np.ascontiguousarray((luminance(image) if image.ndim == 3 else image).astype(np.float32))


def band_energy(image: np.ndarray, mask: np.ndarray, low: float = HF_BAND_OF_NYQUIST[0],
                high: float = HF_BAND_OF_NYQUIST[1]) -> float:
    """Mean squared linear luminance, over the masked texels, of the image's spatial frequencies between ``low``
    and ``high`` (fractions of the Nyquist frequency, 0.5 cycles per texel): the energy of its fine detail.

    The band is the difference of two Gaussian low-passes, each with the cut-off
    f_c of one band edge: sigma = 1 / (2 pi f_c) texels, whose response at f_c is
    e^-1/2 and which passes as much white-noise energy as an ideal low-pass at
    f_c. A Fourier transform would mix in whatever lies outside the mask (the
    gutter, the other UV islands, unobserved texels); here each low-pass is a
    normalised convolution instead -- the blur of image x mask over the blur of
    the mask -- so at a masked texel it averages masked texels only, and the
    mask's edge adds no energy. The band's edges are soft: unit white noise
    gives 0.178 for the default band, close to an ideal band's share of the
    frequency square, pi (high^2 - low^2) / 4 = 0.184, but a band only an
    octave wide keeps about 60 % of its ideal share. A gain g on the image
    scales the energy by g^2. NaN for an empty mask.
    """
    import cv2

    if not 0.0 < low < high <= 1.0:
        raise ValueError(f"the band must satisfy 0 < low < high <= 1 (of Nyquist), not {low}..{high}")
    mask = np.asarray(mask, bool)
    if not mask.any():
        return math.nan
    weight = mask.astype(np.float32)
    weighted = _grey(image) * weight

    def lowpass(cutoff_of_nyquist: float) -> np.ndarray:
        """The normalised convolution at the masked texels (where the blurred weight is never 0)."""
        sigma = 1.0 / (math.pi * cutoff_of_nyquist)          # 1 / (2 pi f_c), f_c = cutoff x 0.5 cycles per texel
        total, count = (cv2.GaussianBlur(x, (0, 0), sigma, borderType=cv2.BORDER_CONSTANT)[mask] for x in (weighted, weight))
        return total / count

    band = lowpass(high).astype(np.float64) - lowpass(low)
    return float(np.mean(band ** 2))


def gradient_correlation(estimate_linear: np.ndarray, truth_linear: np.ndarray, mask: np.ndarray) -> float:
    """Pearson correlation of the gradient magnitudes (3 x 3 Sobel of linear luminance) of the estimate and the
    truth over the masked texels whose 3 x 3 neighbourhood is all masked (a gradient across the mask's edge
    would measure the hole or gutter beyond it, not the texture): 1 = the same edges and detail in the same
    places, 0 = unrelated. Images are (H, W, 3) linear RGB or (H, W) luminance; a gain on either leaves the
    value unchanged. NaN when fewer than 3 texels count or either gradient does not vary.
    """
    import cv2

    inner = cv2.erode(np.asarray(mask, np.uint8), np.ones((3, 3), np.uint8), borderType=cv2.BORDER_CONSTANT,
                      borderValue=0) > 0

    def gradient(image: np.ndarray) -> np.ndarray:
        grey = _grey(image)
        return np.hypot(cv2.Sobel(grey, cv2.CV_32F, 1, 0), cv2.Sobel(grey, cv2.CV_32F, 0, 1))[inner].astype(np.float64)

    if inner.sum() < 3:
        return math.nan
    a, b = gradient(estimate_linear), gradient(truth_linear)
    if a.std() < 1e-12 or b.std() < 1e-12:
        return math.nan
    return float(np.corrcoef(a, b)[0, 1])


def seam_ratio(image: np.ndarray, borders: list[int], mask: np.ndarray) -> float:
    """Mean |luminance step| across the lines ``borders`` (the step from row/column b - 1 to b, both ways) over the
    mean step elsewhere, on steps whose two texels are both in ``mask``: 1 = the borders do not show."""
    grey = _grey(image).astype(np.float64)
    mask = np.asarray(mask, bool)
    across, inside = [], []
    for axis in (0, 1):
        step = np.abs(np.diff(grey, axis=axis))
        valid = mask[1:] & mask[:-1] if axis == 0 else mask[:, 1:] & mask[:, :-1]
        at_border = np.zeros(step.shape[axis], bool)
        at_border[[b - 1 for b in borders if 0 < b < grey.shape[axis]]] = True
        on_line = at_border[:, None] if axis == 0 else at_border[None, :]
        across.append(step[valid & on_line])
        inside.append(step[valid & ~on_line])
    across_all, inside_all = np.concatenate(across), np.concatenate(inside)
    if len(across_all) == 0 or len(inside_all) == 0 or inside_all.mean() == 0:
        return math.nan
    return float(across_all.mean() / inside_all.mean())
