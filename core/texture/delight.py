"""Stage ``delight_classic``: the capture's light divided out of the fused texture, and every unseen texel filled.

The network-free baseline (and the fallback when no GMug weights are present):

1. **Light.** Diffuse light as order-2 spherical harmonics per colour channel
   is fitted (robust least squares) to the observed skin texels of the
   reference-resolution texture, through each texel's self-shadowed light
   transfer from ``unwrap`` -- once for light fixed to the camera (the person
   turns in front of a still phone) and once for light fixed to the head (the
   phone moves around a still person); the hypothesis that explains the
   texture better is kept. Fitting with one albedo per channel makes the
   light absorb the mean skin colour, so only the light's *spatial* pattern
   is divided out: per channel, relative to its mean over the face. The
   light's overall colour cannot be told from the skin's in a single
   capture; the result keeps the capture's white balance unless the face's
   mean colour falls outside the range of human skin, in which case it is
   moved to the nearest skin colour (a skin-locus prior).
2. **Completion.** Texels seen poorly take their mirror texel's value where
   that one was seen (faces are nearly symmetric); the rest are filled
   smoothly from the boundary of what was seen (push-pull interpolation),
   fading with distance into a skin-tone prior taken from the person's own
   face (a little darker for the scalp, redder inside the ears). Eyes, mouth
   interior, teeth and tongue get fixed plausible colours (their own
   materials do the work in Blender). The texture is then padded into the
   gutter between UV islands so mipmaps and filtering never pull black in.

Output: ``textures/delit_classic.png`` (16-bit sRGB), complete. Metrics go
to ``report.json`` under ``delight_classic``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..capture import Capture
from ..errors import CaptureError
from ..fit import FIT_NPZ, load_fit, load_fitted_model
from ..stages import Stage, StageContext
from .image_io import linear_to_srgb, push_pull_fill, read_image, srgb_to_linear, write_png16
from .shading import fit_light
from .unwrap import COVERAGE_PNG, COVERAGE_SCALE, PHONE_PNG, SHADING_NPZ, load_shading
from .uv import TexelGeometry, texel_geometry

DELIT_CLASSIC_PNG = "textures/delit_classic.png"
# linear albedo of the parts that are not skin (their own materials carry them in Blender)
FIXED_COLOURS = {"eye_left": (0.72, 0.70, 0.68), "eye_right": (0.72, 0.70, 0.68), "mouth_interior": (0.22, 0.05, 0.05),
                 "teeth": (0.75, 0.72, 0.62), "tongue": (0.50, 0.16, 0.16)}
# skin locus in log chromaticity (log R/G, log B/G) of linear albedo: centre and half-axes of an ellipse that
# covers measured human skin from very light to very dark (ColorChecker skin patches, MERL/ISET skin reflectances)
SKIN_LOCUS_CENTRE = (0.62, -0.33)
SKIN_LOCUS_AXES = (0.30, 0.20)


@dataclass(frozen=True)
class DelightParams:
    min_confidence: float = 0.3       # texels observed at least this well fit the light and keep their own colour
    min_shading: float = 0.15         # relative shading below this (deep shadow) is not divided out (too noisy)
    prior_length: float = 0.06        # fill fades into the skin-tone prior over this fraction of the texture
    skin_locus: bool = True           # move a face colour outside human skin's range to the nearest skin colour


def _region(geometry: TexelGeometry, *names: str) -> Any:
    import torch

    out = torch.zeros(geometry.count, dtype=torch.bool)
    for name in names:
        if name in geometry.regions:
            out |= geometry.regions[name]
    return out


def estimate_light(shading: dict[str, np.ndarray], low: TexelGeometry, params: DelightParams) -> dict[str, Any]:
    """Fit both light hypotheses on the reference texture; return the better one with its transfer images."""
    import torch

    weight = low.gather(shading["weight"].astype(np.float32))
    confidence = 1.0 - torch.exp(-weight / COVERAGE_SCALE)
    reference = low.gather(shading["reference_linear"].astype(np.float32))
    usable = (confidence > params.min_confidence) & low.skin & ~_region(low, "scalp", "lips")
    if int(usable.sum()) < 200:
        raise CaptureError("too little of the face was seen to estimate the light; re-run unwrap on a capture that shows the face")
    results = {}
    for name in ("camera", "head"):
        transfer = low.gather(shading[f"transfer_{name}"].astype(np.float32))
        light = fit_light(transfer[usable], reference[usable], confidence[usable])
        predicted = transfer[usable] @ light
        # relative residual: how much of the texture the light (times one albedo per channel) leaves unexplained
        residual = float(((predicted - reference[usable]).abs() * confidence[usable, None]).sum()
                         / (reference[usable].abs() * confidence[usable, None]).sum())
        results[name] = {"light": light, "residual": residual, "transfer_image": shading[f"transfer_{name}"].astype(np.float32)}
    best = min(results, key=lambda k: results[k]["residual"])
    return {"model": best, **results[best], "residuals": {k: round(v["residual"], 5) for k, v in results.items()},
            "usable": usable}


def skin_locus_gain(mean_rgb: np.ndarray) -> np.ndarray:
    """(3,) per-channel gain moving a mean face colour into the skin locus (ones if it is inside)."""
    r, g, b = np.maximum(np.asarray(mean_rgb, np.float64), 1e-6)
    point = np.array([np.log(r / g), np.log(b / g)])
    centre, axes = np.array(SKIN_LOCUS_CENTRE), np.array(SKIN_LOCUS_AXES)
    offset = (point - centre) / axes
    distance = float(np.linalg.norm(offset))
    if distance <= 1.0:
        return np.ones(3)
    target = centre + offset / distance * axes
    change = target - point                                   # in log R/G and log B/G, keeping G
    gain = np.exp(np.array([change[0], 0.0, change[1]]))
    luminance = np.array([0.2126, 0.7152, 0.0722])
    return gain * (luminance @ np.array([r, g, b])) / (luminance @ (np.array([r, g, b]) * gain))   # brightness kept


def delight_capture(capture: Capture, params: DelightParams, progress: Any, output: Any) -> dict[str, Any]:
    import torch

    fit = load_fit(str(capture.path(FIT_NPZ)))
    model = load_fitted_model(capture, fit)
    phone_srgb = read_image(capture.path(PHONE_PNG))
    size = phone_srgb.shape[0]
    if phone_srgb.ndim != 3 or phone_srgb.shape[:2] != (size, size):
        raise CaptureError(f"{capture.path(PHONE_PNG)} is not a square RGB texture; re-run unwrap (`--force unwrap`)")
    shading = load_shading(str(capture.path(SHADING_NPZ)))
    high, low = texel_geometry(model, size), texel_geometry(model, int(shading["size"]))
    progress.update(0.1, "estimating the light", force=True)
    light = estimate_light(shading, low, params)

    phone = high.gather(srgb_to_linear(phone_srgb))                                               # (M, 3) linear
    confidence = high.gather(read_image(capture.path(COVERAGE_PNG)).astype(np.float32))
    if confidence.ndim > 1:
        confidence = confidence[:, 0]
    transfer_image = push_pull_fill(light["transfer_image"], shading["weight"] > 0)
    irradiance = (high.sample_image(transfer_image) @ light["light"]).clamp_min(0)                    # (M, 3)
    face = high.skin & ~_region(high, "scalp", "lips") & (confidence > params.min_confidence)
    if int(face.sum()) < 100:
        raise CaptureError("too little of the face was seen to delight the texture; check the capture's coverage")
    mean_irradiance = (irradiance[face] * confidence[face, None]).sum(0) / confidence[face].sum()
    relative = irradiance / mean_irradiance.clamp_min(1e-6)
    albedo = phone / relative.clamp_min(params.min_shading)
    # deep shadow and grazing texels keep less of their own colour
    trust = confidence * ((relative.min(1).values - params.min_shading) / (2 * params.min_shading)).clamp(0, 1)
    trust = torch.where(high.skin, trust, torch.zeros_like(trust))

    progress.update(0.4, "balancing the skin colour", force=True)
    mean_face = ((albedo[face] * trust[face, None]).sum(0) / trust[face].sum().clamp_min(1e-6)).numpy()
    gain = skin_locus_gain(mean_face) if params.skin_locus else np.ones(3)
    albedo = albedo * torch.as_tensor(gain, dtype=albedo.dtype)
    skin_tone = torch.as_tensor(mean_face * gain, dtype=torch.float32)

    progress.update(0.5, "completing from the mirror side", force=True)
    mirror = high.mirror
    has_mirror = (mirror >= 0) & high.skin
    mirror_safe = mirror.clamp_min(0)
    mirror_trust = torch.where(has_mirror, trust[mirror_safe], torch.zeros_like(trust)) * high.skin[mirror_safe]
    borrowed = (1 - trust) * mirror_trust
    total = trust + borrowed
    combined = (trust[:, None] * albedo + borrowed[:, None] * albedo[mirror_safe]) / total.clamp_min(1e-6)[:, None]
    combined = torch.where((total > 1e-6)[:, None], combined, torch.zeros_like(combined))

    progress.update(0.7, "filling what was never seen", force=True)
    known = (total / 0.5).clamp(0, 1)
    image = high.image(combined).numpy()
    known_image = high.image(known).numpy()
    interpolated = high.gather(push_pull_fill(image, known_image > 0.05))
    distance = high.gather(_distance_to_known(known_image > 0.5)) / size
    fade = torch.exp(-distance / params.prior_length)[:, None]
    prior = skin_tone[None].expand(high.count, 3).clone()
    prior[_region(high, "scalp")] *= 0.9
    prior[_region(high, "ears")] *= torch.tensor([1.0, 0.9, 0.9])
    filled = fade * interpolated + (1 - fade) * prior
    result = known[:, None] * combined + (1 - known[:, None]) * filled
    for name, colour in FIXED_COLOURS.items():
        if name in high.regions:
            result[high.regions[name]] = torch.tensor(colour)

    progress.update(0.9, "padding the UV islands", force=True)
    image = push_pull_fill(high.image(result.clamp(0, 1)).numpy(), high.mask().numpy())
    write_png16(output, linear_to_srgb(np.clip(image, 0, 1)))
    skin = high.skin
    return {
        "light_model": light["model"], "light_residuals": light["residuals"],
        "skin_locus_gain": [round(float(v), 4) for v in gain],
        "skin_tone_srgb": [round(float(v), 4) for v in linear_to_srgb(skin_tone.numpy())],
        "own_fraction": round(float((trust[skin] > 0.5).float().mean()), 4),
        "mirrored_fraction": round(float(((trust[skin] <= 0.5) & (borrowed[skin] > 0.5)).float().mean()), 4),
        "filled_fraction": round(float((known[skin] < 0.5).float().mean()), 4),
    }


def _distance_to_known(known: np.ndarray) -> np.ndarray:
    """(S, S) distance in texels from each texel to the nearest known one."""
    import cv2

    return cv2.distanceTransform((~known).astype(np.uint8), cv2.DIST_L2, 5).astype(np.float32)


def run_delight_classic(ctx: StageContext) -> None:
    for name in (PHONE_PNG, COVERAGE_PNG, SHADING_NPZ, FIT_NPZ):
        ctx.input(name)
    ctx.metrics.update(delight_capture(ctx.capture, ctx.params, ctx.progress, ctx.output(DELIT_CLASSIC_PNG)))


DELIGHT_CLASSIC_STAGE = Stage(
    name="delight_classic",
    version=1,
    run=run_delight_classic,
    outputs=(DELIT_CLASSIC_PNG,),
    inputs=(PHONE_PNG, COVERAGE_PNG, SHADING_NPZ, FIT_NPZ),
    params_type=DelightParams,
    description="divide the capture's light out of the texture and fill what was not seen (no network)",
)
