"""Stage ``delight_classic``: the capture's light divided out of the fused texture, calibrated, and every unseen texel filled.

The network-free baseline (and the fallback when no GMug weights are present):

1. **Light.** Diffuse light as order-2 spherical harmonics per colour channel
   is fitted (robust least squares) to the observed skin texels of the
   reference-resolution texture, through each texel's self-shadowed light
   transfer from ``unwrap`` -- once for light fixed to the camera (the person
   turns in front of a still phone) and once for light fixed to the head (the
   phone moves around a still person); the hypothesis that explains the
   texture better is kept. Fitting with one albedo per channel makes the
   light absorb the mean skin colour, so only the light's *spatial* pattern
   is divided out: per channel, relative to its mean over the cheeks and
   forehead (``skin_tone_texels``: where skin tone is read, and where a
   photographer's grey card meters a face -- the studio preset is exposed the
   same way, so an albedo renders as bright as the phone showed those
   places). What is left is the albedo times one unknown gain per channel:
   the phone's exposure and the light's colour (after the phone's white
   balance).
2. **Exposure and white balance.** Those three gains are calibrated from
   priors on what a face must look like (``calibrate_gains``): one posterior
   over the calibrated median colour of the face (log R/G, log B/G, log G, on
   a grid) and a sheen level, read over the cheeks and forehead; the gains are
   its marginal medians (the sheen its mean). The posterior is often bimodal
   (the phone right or wrong, below): its mean then lies between the modes,
   on a gain neither supports, while the median stays with the likelier one.
   The terms:

   * *skin manifold*: the face must be human skin. The biophysical skin model
     of ``core/skin.py`` (epidermal melanin over a blood-filled
     dermis, Kubelka-Munk) spans it over melanin, blood, pheomelanin share
     and oxygenation, blurred by the model's own error (more in luminance
     than in chromaticity). Skin's luminance follows its chromaticity (light
     skin is pale and pinkish, darker skin more saturated towards
     red-brown), so a light-skin colour seen dark means under-exposure --
     sharply for light skin, loosely for dark skin, where the chromaticity
     saturates. What a diffuse light model leaves in is part of the
     manifold: the light bounced onto the face (``SKIN_BOUNCE``: lighter
     skin looks redder than its albedo) and the sheen of skin's specular
     reflection (``SKIN_SHEEN``: it desaturates dark skin towards the light's
     colour, so that dark skin under a cool light is not read as light skin
     in the dark); both are taken back out of the texture afterwards
     (``appearance_to_albedo``);
   * *the phone*: a mixture -- either its exposure and white balance are
     about right (``PHONE_RIGHT_SIGMA``: real phone footage in ordinary light
     usually is), or they are off by a lot (a strongly coloured light, a
     backlit face: then what remains of the light's colour after the phone's
     white balance lies mostly along the blackbody (warm/cool) direction and
     the exposure may be far off), even odds. Whichever explains the face's
     colour on the skin manifold better prevails, so an ordinary capture
     keeps the tone the video showed, while a face that no plausible skin
     explains at the phone's level is corrected. A single broad prior
     instead let the manifold's reading of chromaticity, which a real
     camera's colour processing shifts, move well-exposed real faces by a
     factor of two;
   * *sclera and teeth* as ceilings: nothing of an eyeball or a tooth is
     lighter than a sclera (``SCLERA_LUMINANCE_MAX``, real sclera 0.5-0.7) or
     enamel, so a bright reading of them bounds the exposure from above --
     which is what keeps dark skin dark. They are not in the phone texture
     (unwrap samples skin only), so a subset of the frames is sampled again
     at the eyeballs (away from the iris) and the teeth, keeping only pixels
     where they are the nearest surface (lids lie on the eyeball), corrected
     by unwrap's frame gains and by the light of the skin around them. Lids,
     lashes, the iris, shadow and blur only darken what is seen, while glints
     and the glossy reflection of a bright window or lamp on a wet eye or
     tooth brighten it, so each bound reads the band of those samples'
     luminance whose error can only weaken it: the ceiling the middle
     (``CUE_CEILING_BAND``, 50th-85th percentile: a wet eye once darkened a
     light skin to ITA -40° from its 85th-97th), the floor (below) the high
     band. In a shadowed eye or a small, blurred one the reading
     under-states the albedo, so it is used one-sided only: softly,
     the softer the fewer texels were seen (a cue seen on under 5% of a full
     view is left out); and since a wet, glossy eye or tooth in real video
     can read above its albedo, no ceiling lowers the skin's own exposure
     estimate by more than ``CUE_MAX_VETO``; a reading over its ceiling by more
     than ``CUE_IMPLAUSIBLE`` at the skin's own exposure is implausible (a
     glint, or light the model does not describe there, as inside a mouth) and
     is left out. A reading far more saturated than a near-neutral sclera or
     tooth under the residual light colour (``CUE_MAX_LOG_CHROMA``) has skin
     or lid pixels in it and is left out;
   * *the sclera as a floor*: its high band (``CUE_FLOOR_BAND``, 85th-97th
     percentile) also bounds the exposure from
     below (``SCLERA_LUMINANCE_MIN``): a sclera of albedo 0.5-0.7 reads at
     least about half of it in the socket's shade, so a face whose sclera
     stays far darker at the skin's gain was under-exposed (a backlit face,
     a dim room), which the skin manifold alone cannot tell from darker skin
     for intermediate tones. Equally soft, with a looser saturation test
     (``CUE_FLOOR_MAX_LOG_CHROMA``): a warm light and the skin's bounce inside
     the socket tint a sclera much more than they darken it. Unlike the
     ceilings it is not limited to ``CUE_MAX_VETO``: its margin below the
     albedo already allows for shade, and the exposure prior bounds it.

   The gains are applied to the delit texture, then the sheen and the
   bounced light are taken off. With calibration off, the older skin-locus
   prior moves a face colour outside human skin's range to the nearest skin
   colour, keeping its brightness.
3. **Completion.** Texels seen poorly take their mirror texel's value where
   that one was seen (faces are nearly symmetric); the rest are filled
   smoothly from the boundary of what was seen (push-pull interpolation),
   fading with distance into a skin-tone prior taken from the person's own
   face (a little darker for the scalp, redder inside the ears). Eyes, mouth
   interior, teeth and tongue get fixed plausible colours (their own
   materials do the work in Blender). The texture is then padded into the
   gutter between UV islands so mipmaps and filtering never pull black in.

Output: ``textures/delit_classic.png`` (16-bit sRGB), complete. Metrics go
to ``report.json`` under ``delight_classic``; ``calibration`` holds the
applied per-channel gain, its exposure and white-balance parts, the
exposure's posterior spread, the sheen taken off, the cues used and, per cue,
how much of it was seen (texels, 0..1), its ceiling's reading, the largest
exposure that ceiling allows and where the result left it against it, and for
the sclera the floor's reading and the smallest exposure it allows (``skin``:
the gain the manifold and priors alone give).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from .. import color
from ..capture import Capture
from ..color import linear_to_srgb, srgb_to_linear
from ..errors import CaptureError
from ..fit import FIT_NPZ, load_fit, load_fitted_model
from ..frames import FRAMES_DIR, read_frame
from ..head.model import HeadModel
from ..image_io import push_pull_fill, read_image, write_png16
from ..skin import NON_SKIN_ALBEDOS
from ..stages import Stage, StageContext
from .shading import fit_light
from .unwrap import COVERAGE_PNG, COVERAGE_SCALE, PHONE_PNG, SHADING_NPZ, UnwrapParams, load_shading, weighted_median
from .uv import TexelGeometry, texel_geometry

DELIT_CLASSIC_PNG = "textures/delit_classic.png"
# skin locus in log chromaticity (log R/G, log B/G) of linear albedo: centre and half-axes of an ellipse that
# covers measured human skin from very light to very dark (ColorChecker skin patches, MERL/ISET skin reflectances)
SKIN_LOCUS_CENTRE = (0.62, -0.33)
SKIN_LOCUS_AXES = (0.30, 0.20)
LUMINANCE = np.asarray(color.LUMINANCE)

# --- calibration priors (linear albedo; see calibrate_gains) ---------------------------------------------------
# the skin manifold: ranges of the biophysical model's parameters (face averages), and the model's own error in
# (log R/G, log B/G, log G): scattering, epidermal thickness and the mix of regions vary between faces
SKIN_MELANIN = (0.0015, 0.25)         # epidermal melanin volume fraction, log-uniform
SKIN_BLOOD = (0.006, 0.12)            # dermal blood volume fraction, log-normal around SKIN_BLOOD_TYPICAL
SKIN_BLOOD_TYPICAL, SKIN_BLOOD_LOG_SD = 0.03, 0.5
SKIN_PHEOMELANIN = (0.05, 0.7)        # pheomelanin's share of the melanin, uniform
SKIN_OXYGENATION = (0.5, 0.9)         # blood oxygen saturation, uniform
SKIN_MODEL_SIGMA = (0.05, 0.05, 0.20)
# what a diffuse light model leaves in a delit face besides its albedo: the light the face and what is around it
# bounce onto it (per unit albedo, relative to the direct light: lighter skin looks redder than its albedo) and the
# sheen of skin's specular reflection (albedo units, the light's colour; equally likely levels)
SKIN_BOUNCE = 0.5
SKIN_SHEEN = (0.0, 0.01, 0.02, 0.03, 0.045)
# what is left of the light's colour after the phone's own white balance: near neutral, mostly warm/cool
BLACKBODY_DIRECTION = (0.6, -0.8)     # (log R/G, log B/G) of a warmer light (3500 K vs 6500 K: 0.63, -0.65)
WHITE_BALANCE_SIGMA = (0.12, 0.06)    # along / across that direction, when the phone got it wrong
EXPOSURE_SIGMA = 1.5                  # log, when the phone got it wrong: then it may be off by a lot
PHONE_RIGHT_PRIOR = 0.5               # prior odds that the phone's exposure and white balance are about right ...
PHONE_RIGHT_SIGMA = (0.04, 0.03, 0.12)   # ... within these (white balance along / across, log exposure)
SKIN_TONE_RADIUS_M = 0.012            # skin tone is read within this of the cheek and forehead landmarks
# brightest albedo luminance of a sclera (measured sclera ~0.5-0.7) and of teeth (enamel ~0.4-0.6): ceilings
SCLERA_LUMINANCE_MAX = 0.70
SCLERA_LUMINANCE_MIN = 0.30           # a sclera (albedo 0.5-0.7) reads at least about half of it in the socket's shade
TEETH_LUMINANCE_MAX = 0.60
SCLERA_SIGMA = 0.15                   # log softness of the ceilings when fully seen (grows as 1/sqrt(seen))
TEETH_SIGMA = 0.25
SCLERA_MIN_ANGLE_DEG = 38.0           # eyeball texels this far from the rest gaze axis are sclera (iris ~30 deg)
SCLERA_FULL_TEXELS = 400              # cue texels seen (at a 512 reference texture) that count as fully seen
TEETH_FULL_TEXELS = 400
CUE_CEILING_BAND = (50.0, 85.0)       # luminance percentiles of a cue's samples averaged for its ceiling (no gloss)
CUE_FLOOR_BAND = (85.0, 97.0)         # ... for the floor and the saturation test (lit, no glints)
CUE_MAX_VETO = 2.0                    # the ceilings lower the skin's own exposure estimate at most this much
CUE_IMPLAUSIBLE = 4.0                 # a reading this far over its ceiling at the skin's own exposure is left out
                                      # (measured: a real clip's teeth 4.9x; a dark skin's sclera that must act 2.5x)
CUE_MAX_LOG_CHROMA = 0.45             # |log R/G|, |log B/G| of a near-neutral cue's reading beyond this: skin or lid
                                      # pixels got in (the residual light colour alone stays well inside, sigma ~0.12)
CUE_FLOOR_MAX_LOG_CHROMA = 1.0        # ... as a floor: a warm light and the skin's bounce in the socket tint a sclera
                                      # far more than they darken it; beyond this the reading is mostly skin or lid
# the posterior grid over the calibrated face colour: (low, high, step) of log R/G, log B/G, log G
CALIBRATION_GRID = ((-0.1, 1.3, 0.02), (-1.3, 0.3, 0.02), (-5.0, -0.3, 0.04))


@dataclass(frozen=True)
class DelightParams:
    min_confidence: float = 0.3       # texels observed at least this well fit the light and keep their own colour
    min_shading: float = 0.15         # relative shading below this (deep shadow) is not divided out (too noisy)
    prior_length: float = 0.06        # fill fades into the skin-tone prior over this fraction of the texture
    skin_locus: bool = True           # (without calibration) move a face colour outside skin's range to the nearest
    calibrate: bool = True            # exposure and white balance from the skin manifold, the sclera and the teeth
    calibration_frames: int = 24      # at most this many frames are sampled again for the eyes and teeth


def skin_tone_texels(model: HeadModel, geometry: TexelGeometry) -> Any:
    """(M,) bool: skin texels within ``SKIN_TONE_RADIUS_M`` of the cheek and forehead landmarks, on the rest head."""
    import torch

    rest = torch.as_tensor(model.template_m)
    centres = model.landmarks(rest[None])[0, color.SKIN_TONE_LANDMARKS]
    positions = geometry.interpolate(rest)
    near = torch.cdist(positions, centres.to(positions.dtype)).min(1).values < SKIN_TONE_RADIUS_M
    return near & geometry.skin


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
    return gain * (LUMINANCE @ np.array([r, g, b])) / (LUMINANCE @ (np.array([r, g, b]) * gain))   # brightness kept


def _log_chroma(rgb: Any) -> np.ndarray:
    """(..., 3) linear RGB -> (..., 3) calibration coordinates: log R/G, log B/G, log G."""
    rgb = np.maximum(np.asarray(rgb, np.float64), 1e-6)
    return np.stack([np.log(rgb[..., 0] / rgb[..., 1]), np.log(rgb[..., 2] / rgb[..., 1]), np.log(rgb[..., 1])], -1)


def _gains_rgb(log_gain: Any) -> np.ndarray:
    """(3,) log gains in calibration coordinates -> (3,) per-channel RGB gains."""
    x, y, z = (float(v) for v in log_gain)
    return np.exp(np.array([x + z, z, y + z]))


def _weighted_median(values: np.ndarray, weight: np.ndarray) -> float:
    """Median of sorted grid ``values`` under ``weight`` (each value owning half its weight on either side)."""
    cumulative = np.cumsum(weight) / max(float(weight.sum()), 1e-300)
    return float(np.interp(0.5, cumulative - 0.5 * weight / max(float(weight.sum()), 1e-300), values))


def _grid_axes() -> list[np.ndarray]:
    return [low + step * np.arange(int(round((high - low) / step)) + 1) for low, high, step in CALIBRATION_GRID]


_SKIN_DENSITY: dict[str, np.ndarray] = {}


def skin_log_density() -> np.ndarray:
    """(S, X, Y, Z) log probability of a delit face's median colour over ``SKIN_SHEEN`` x ``CALIBRATION_GRID``.

    The skin manifold: points of the biophysical skin model (``core/skin.py``) over melanin (log-uniform),
    blood (log-normal), pheomelanin share and oxygenation (uniform), plus each sheen level (the specular
    reflection a diffuse light model leaves in, the same in every channel), histogrammed and blurred by
    ``SKIN_MODEL_SIGMA``. Cached.
    """
    if "density" in _SKIN_DENSITY:
        return _SKIN_DENSITY["density"]
    import torch

    from ..skin import skin_reflectance_rgb

    axes = _grid_axes()
    shape = tuple(len(a) for a in axes)
    melanin = np.geomspace(*SKIN_MELANIN, 48)
    blood = np.geomspace(*SKIN_BLOOD, 32)
    blood_weight = np.exp(-0.5 * (np.log(blood / SKIN_BLOOD_TYPICAL) / SKIN_BLOOD_LOG_SD) ** 2)
    albedos = [skin_reflectance_rgb(melanin[:, None], blood[None, :], pheomelanin, oxygenation)
               for pheomelanin in np.linspace(*SKIN_PHEOMELANIN, 6) for oxygenation in np.linspace(*SKIN_OXYGENATION, 3)]
    histogram = np.zeros((len(SKIN_SHEEN),) + shape, np.float64)
    for level, sheen in enumerate(SKIN_SHEEN):
        for albedo in albedos:
            point = _log_chroma(albedo * (1.0 + SKIN_BOUNCE * albedo) + sheen)
            index = tuple(np.clip(np.rint((point[..., k] - CALIBRATION_GRID[k][0]) / CALIBRATION_GRID[k][2]).astype(int),
                                  0, shape[k] - 1).ravel() for k in range(3))
            np.add.at(histogram[level], index, np.broadcast_to(blood_weight[None, :], point.shape[:2]).ravel())
    density = torch.as_tensor(histogram, dtype=torch.float32)[:, None]
    for k, sigma in enumerate(SKIN_MODEL_SIGMA):                       # separable Gaussian blur, one axis at a time
        scale = sigma / CALIBRATION_GRID[k][2]
        radius = int(3 * scale) + 1
        kernel = torch.exp(-0.5 * (torch.arange(-radius, radius + 1, dtype=torch.float32) / scale) ** 2)
        size = [1, 1, 1]
        size[k] = 2 * radius + 1
        padding = [0, 0, 0]
        padding[k] = radius
        density = torch.nn.functional.conv3d(density, (kernel / kernel.sum()).reshape(1, 1, *size), padding=padding)
    density = density[:, 0].numpy().astype(np.float64)
    _SKIN_DENSITY["density"] = np.log(np.maximum(density / density.sum(), 1e-12)).astype(np.float32)
    return _SKIN_DENSITY["density"]


CUE_FLOORS = {"sclera": SCLERA_LUMINANCE_MIN}
CUE_CEILINGS = {"sclera": (SCLERA_LUMINANCE_MAX, SCLERA_SIGMA), "teeth": (TEETH_LUMINANCE_MAX, TEETH_SIGMA)}


class _Posterior:
    """The calibration posterior for one face colour: skin manifold and priors once, cues added per ``solve``."""

    def __init__(self, face_rgb: Any) -> None:
        self.face_rgb = np.maximum(np.asarray(face_rgb, np.float64), 1e-6)
        face = _log_chroma(self.face_rgb)
        grids = np.meshgrid(*_grid_axes(), indexing="ij")
        self.gain = [grids[k] - face[k] for k in range(3)]               # log gains in calibration coordinates
        direction = np.asarray(BLACKBODY_DIRECTION, np.float64) / np.linalg.norm(BLACKBODY_DIRECTION)
        along = self.gain[0] * direction[0] + self.gain[1] * direction[1]
        across = -self.gain[0] * direction[1] + self.gain[1] * direction[0]

        def prior(wb_along: float, wb_across: float, exposure: float) -> np.ndarray:
            return -0.5 * ((along / wb_along) ** 2 + (across / wb_across) ** 2 + (self.gain[2] / exposure) ** 2) \
                - np.log(wb_along * wb_across * exposure)
        # the phone is either about right or off by a lot: whichever explains the face's colour better prevails
        right, wrong = prior(*PHONE_RIGHT_SIGMA), prior(*WHITE_BALANCE_SIGMA, EXPOSURE_SIGMA)
        self.base = skin_log_density().astype(np.float64) + np.logaddexp(
            np.log(PHONE_RIGHT_PRIOR) + right, np.log1p(-PHONE_RIGHT_PRIOR) + wrong)
        self.skin_gain, self.skin_sd, self.skin_sheen = self._moments(self.base)

    def _moments(self, log_post: np.ndarray) -> tuple[np.ndarray, float, float]:
        weight = np.exp(log_post - log_post.max())
        weight /= weight.sum()
        sheen = float(weight.sum(axis=(1, 2, 3)) @ np.asarray(SKIN_SHEEN))
        weight = weight.sum(0)
        mean = np.array([(weight * g).sum() for g in self.gain])
        spread = float(np.sqrt(max((weight * (self.gain[2] - mean[2]) ** 2).sum(), 0.0)))
        # the marginal medians (see the module docstring: the mean falls between the phone-right and -wrong modes)
        face = _log_chroma(self.face_rgb)
        median = np.array([_weighted_median(axis, weight.sum(tuple(j for j in range(3) if j != k))) - face[k]
                           for k, axis in enumerate(_grid_axes())])
        return median, spread, sheen

    def _log_luminance(self, reading: np.ndarray) -> np.ndarray:
        """log luminance of a cue's reading after each grid point's gains."""
        return np.log(LUMINANCE[0] * reading[0] * np.exp(self.gain[0] + self.gain[2]) + LUMINANCE[1] * reading[1]
                      * np.exp(self.gain[2]) + LUMINANCE[2] * reading[2] * np.exp(self.gain[1] + self.gain[2]))

    def solve(self, cues: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
        total = self.base
        summary: dict[str, Any] = {}
        ceiling_readings: dict[str, np.ndarray] = {}
        for name, cue in (cues or {}).items():
            seen = float(np.clip(cue.get("seen", 0.0), 0.0, 1.0))
            entry: dict[str, Any] = {"used": False, "seen": round(seen, 3)}
            summary[name] = entry
            if name not in CUE_CEILINGS or cue.get("rgb") is None or seen < 0.05 or not np.all(np.asarray(cue["rgb"]) > 0):
                continue
            ceiling, sigma = CUE_CEILINGS[name]
            softness = sigma / np.sqrt(seen)
            reading = np.asarray(cue["rgb"], np.float64)
            saturation = float(np.abs(_log_chroma(reading)[:2]).max())
            if name in CUE_FLOORS and saturation <= CUE_FLOOR_MAX_LOG_CHROMA:
                # the high band's luminance after the gains may not fall far below the cue's albedo (soft, one-sided)
                shortfall = np.maximum(np.log(CUE_FLOORS[name]) - self._log_luminance(reading), 0.0) / softness
                total = total - 0.5 * shortfall ** 2
                entry.update(floor_used=True, floor_reading=[round(float(v), 4) for v in reading],
                             min_exposure=round(float(CUE_FLOORS[name] / (LUMINANCE @ reading)), 4))
            if saturation > CUE_MAX_LOG_CHROMA:
                entry.update(reading=[round(float(v), 4) for v in reading], rejected="too saturated for sclera or teeth")
                continue
            # the high band tells a place the light model does not describe (a glint, inside a mouth): left out
            at_skin_gain = float(LUMINANCE @ (reading * _gains_rgb(self.skin_gain)))
            if at_skin_gain > CUE_IMPLAUSIBLE * ceiling:
                entry.update(reading=[round(float(v), 4) for v in reading],
                             rejected=f"implausibly bright ({at_skin_gain / ceiling:.1f}x its ceiling at the skin's own exposure)")
                continue
            reading = np.asarray(cue["rgb_ceiling"] if cue.get("rgb_ceiling") is not None else cue["rgb"], np.float64)
            # the middle band's luminance after the gains may not exceed the cue's albedo (soft, one-sided)
            excess = np.maximum(self._log_luminance(reading) - np.log(ceiling), 0.0) / softness
            total = total - 0.5 * excess ** 2
            entry.update(used=True, reading=[round(float(v), 4) for v in reading],
                         max_exposure=round(float(ceiling / (LUMINANCE @ reading)), 4))
            ceiling_readings[name] = reading
        median, sd, sheen = self._moments(total)
        # no ceiling may overrule the skin by more than CUE_MAX_VETO in exposure (a wet, glossy eye reads too bright);
        # the floor has no such limit (it keeps its own margin, and the exposure prior bounds it)
        median[2] = max(median[2], self.skin_gain[2] - np.log(CUE_MAX_VETO))
        rgb_gain = _gains_rgb(median)
        exposure = float(LUMINANCE @ (self.face_rgb * rgb_gain) / (LUMINANCE @ self.face_rgb))
        for name, reading in ceiling_readings.items():      # the cue after the gains against its ceiling (> 1: pushed)
            summary[name]["against_ceiling"] = round(float(LUMINANCE @ (reading * rgb_gain)) / CUE_CEILINGS[name][0], 4)
        summary["skin"] = {"used": True, "seen": 1.0, "gain": [round(float(v), 4) for v in _gains_rgb(self.skin_gain)],
                           "exposure_sd": round(self.skin_sd, 4), "sheen": round(self.skin_sheen, 4)}
        return {"gain": rgb_gain, "exposure": exposure, "white_balance": rgb_gain / exposure, "exposure_sd": sd,
                "sheen": sheen, "cues": summary}


def calibrate_gains(face_rgb: Any, cues: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """Per-channel gains that make a delit face's median colour ``face_rgb`` (3,) a skin's appearance, from priors.

    cues: name ("sclera", "teeth") -> {"rgb": (3,) the cue's bright reading on the same scale as ``face_rgb`` (the
    floor's and the saturation test's), optionally "rgb_ceiling": (3,) its middle reading for the ceiling (default
    ``rgb``), "seen": 0..1 how much of it was seen}; a cue seen less than 5% is left out, and its ceiling softens as
    ``1/sqrt(seen)``. Returns ``gain`` (3,), its ``exposure`` (luminance ratio) and ``white_balance`` (gain /
    exposure) parts, ``exposure_sd`` (the posterior's spread of log exposure), ``sheen`` (albedo units, to take
    off with ``appearance_to_albedo``) and per cue whether it was used, its reading, the largest exposure its
    ceiling allows and where the result left it against that ceiling, and for a floor (the sclera) ``floor_used``,
    ``floor_reading`` and the smallest exposure it allows; ``skin`` holds what the manifold and the priors alone
    give. The posterior is evaluated on ``CALIBRATION_GRID``; see the module docstring.
    """
    return _Posterior(face_rgb).solve(cues)


def appearance_to_albedo(calibrated: Any, sheen: float, bounce: float = SKIN_BOUNCE) -> np.ndarray:
    """Albedo from a calibrated delit colour: the sheen taken off, then the bounced light (the manifold's model).

    ``calibrated = albedo * (1 + bounce * albedo) + sheen`` per channel, inverted; a texel darker than the sheen
    keeps a quarter of its value (hair and shadow are not skin), so the mapping stays increasing.
    """
    calibrated = np.asarray(calibrated, np.float64)
    diffuse = np.maximum(calibrated - sheen, 0.25 * np.maximum(calibrated, 0.0))
    if bounce <= 0:
        return diffuse.astype(np.float32)
    return ((np.sqrt(1.0 + 4.0 * bounce * diffuse) - 1.0) / (2.0 * bounce)).astype(np.float32)


def _cue_view(sampler: Any, index: int, height: int, width: int, wanted: Any) -> dict[str, Any]:
    """``FrameSampler.prepare``'s depth and outline maps, and ``cue``: the pixels inside the image of the triangles
    ``wanted`` (eyeballs, teeth) where they are the nearest surface, one pixel in from their edge."""
    import cv2
    import torch

    from ..render.raster import rasterize
    from .unwrap import VIEW_HEAD_PX

    screen = sampler.screen[index]
    extent = float(screen[:, 1].max() - screen[:, 1].min())
    scale = min(1.0, VIEW_HEAD_PX / max(extent, 1.0))
    size = (max(1, int(np.ceil(height * scale))), max(1, int(np.ceil(width * scale))))
    raster = rasterize(torch.cat([screen[:, :2] * scale, screen[:, 2:]], 1), sampler.faces, *size)
    outline = cv2.distanceTransform(raster.mask.numpy().astype(np.uint8), cv2.DIST_L2, 5) / scale
    cue = (raster.face_index >= 0) & wanted[raster.face_index.clamp_min(0)]
    cue = cv2.erode(cue.numpy().astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    return {"depth": raster.depth.numpy().astype(np.float32), "outline": outline.astype(np.float32), "scale": scale,
            "cue": cue}


def observe_cues(capture: Capture, model: HeadModel, fit: dict[str, np.ndarray], shading: dict[str, np.ndarray],
                 low: TexelGeometry, light: dict[str, Any], mean_irradiance: Any, params: DelightParams
                 ) -> dict[str, dict[str, Any]]:
    """The sclera and the teeth as the frames show them (unwrap samples skin only), on the delit texture's scale.

    Up to ``params.calibration_frames`` frames are sampled at the reference texels of the eyeballs (away from the
    iris) and the teeth with unwrap's sampler (viewing angle, outline and opening weights), keeping only samples
    whose pixel shows the eyeball or tooth itself (``_cue_view``), divided by unwrap's frame gains and by the light
    the fitted model gives the surrounding skin there (relative to the face's mean). Per cue: ``samples`` (n, 3)
    those albedo estimates, ``weight`` (n,), ``texels`` (how many texels were seen) and ``seen`` (0..1, against a
    fully seen cue).
    """
    import torch

    from .unwrap import FrameSampler, bgr8_to_linear, frame_files

    names = {"sclera": ("eye_left", "eye_right"), "teeth": ("teeth",)}
    faces = torch.as_tensor(np.asarray(model.faces, np.int64))
    wanted = torch.zeros(len(faces), dtype=torch.bool)
    for parts in names.values():
        for part in parts:
            if part in model.regions:
                wanted |= torch.as_tensor(np.asarray(model.regions[part], bool))[faces].sum(1) >= 2
    if not bool(wanted.any()):
        return {}
    with torch.no_grad():
        rest = model.vertices(torch.as_tensor(np.asarray(fit["shape"], np.float32)[None, : model.num_shape]))[0]
    texel_position = low.interpolate(rest)
    masks = {"sclera": torch.zeros(low.count, dtype=torch.bool), "teeth": _region(low, "teeth")}
    for part in names["sclera"]:
        if part in low.regions and part in model.regions:
            centre = rest[torch.as_tensor(np.asarray(model.regions[part], bool))].mean(0)
            direction = torch.nn.functional.normalize(texel_position - centre, dim=1)
            angle = torch.rad2deg(torch.arccos(direction[:, 2].clamp(-1, 1)))          # from the rest gaze (+z)
            masks["sclera"] |= low.regions[part] & (angle > SCLERA_MIN_ANGLE_DEG)
    # the light there: the fitted light through the transfer of the skin around (the texture's, filled in)
    transfer_image = push_pull_fill(light["transfer_image"], shading["weight"] > 0)
    relative = (low.sample_image(transfer_image) @ light["light"]) / torch.as_tensor(mean_irradiance).clamp_min(1e-6)

    files, sharp_weight = frame_files(capture.root, fit)
    chosen = np.unique(np.rint(np.linspace(0, len(files) - 1, min(len(files), max(params.calibration_frames, 1)))).astype(int))
    sampler = FrameSampler(model, fit, UnwrapParams())
    geometry = replace(low, skin_triangles=wanted)
    frame_gains = torch.as_tensor(np.asarray(shading["frame_gains"], np.float32))
    texels, colours, weights = [], [], []
    for i in chosen:
        frame = bgr8_to_linear(read_frame(files[i]))
        view = _cue_view(sampler, int(i), frame.shape[0], frame.shape[1], wanted)
        rows, colour, weight = sampler.sample(int(i), frame, view, geometry)
        # unwrap's depth test allows millimetres of slack, but lids lie on the eyeball: keep only samples whose
        # pixel shows the eyeball or the teeth themselves, a pixel in from the edge
        screen = geometry.interpolate(sampler.screen[int(i)][:, :2], rows) * view["scale"]
        column = screen[:, 0].floor().long().clamp(0, view["cue"].shape[1] - 1)
        row = screen[:, 1].floor().long().clamp(0, view["cue"].shape[0] - 1)
        keep = torch.as_tensor(view["cue"])[row, column]
        texels.append(rows[keep])
        colours.append(colour[keep] / frame_gains[i])
        weights.append(weight[keep] * float(sharp_weight[i]))
    texel, colour, weight = torch.cat(texels), torch.cat(colours), torch.cat(weights)
    light_there = relative[texel]
    full = {"sclera": SCLERA_FULL_TEXELS, "teeth": TEETH_FULL_TEXELS}
    out: dict[str, dict[str, Any]] = {}
    for name, mask in masks.items():
        good = mask[texel] & (weight > 0.05) & (light_there.min(1).values > 0.2) & (colour.min(1).values > 1e-4)
        count = int(torch.unique(texel[good]).numel())
        out[name] = {"texels": count, "seen": min(1.0, count / (full[name] * (low.size / 512) ** 2)) if count >= 10 else 0.0,
                     "samples": (colour[good] / light_there[good]).numpy().astype(np.float64),
                     "weight": weight[good].numpy().astype(np.float64)}
    return out


def cue_readings(observations: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Each cue's robust readings: the weighted mean of its samples in a band of their luminance.

    ``rgb``: the ``CUE_FLOOR_BAND`` (high: lids, lashes, the iris, shadow and blur only darken a sclera or a
    tooth; the top few percent, glints, are left out), for the floor and the saturation test; ``rgb_ceiling``: the
    ``CUE_CEILING_BAND`` (the middle: the glossy reflection of a bright light on a wet eye or tooth covers more
    than the glints), for the ceiling -- each bound reads the band whose error can only weaken it.
    """
    out: dict[str, dict[str, Any]] = {}
    for name, seen in observations.items():
        entry: dict[str, Any] = {"rgb": None, "rgb_ceiling": None, "seen": seen["seen"], "texels": seen["texels"]}
        if seen["texels"] >= 10 and len(seen["samples"]) >= 10:
            luminance = seen["samples"] @ LUMINANCE
            for key, percentiles in (("rgb", CUE_FLOOR_BAND), ("rgb_ceiling", CUE_CEILING_BAND)):
                low_cut, high_cut = np.percentile(luminance, percentiles)
                band = (luminance >= low_cut) & (luminance <= high_cut)
                weights = seen["weight"][band]
                entry[key] = (seen["samples"][band] * weights[:, None]).sum(0) / max(weights.sum(), 1e-9)
        out[name] = entry
    return out


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
    # exposure is defined where skin tone is read, as a grey card held at the cheeks and forehead meters it
    # (the studio preset is exposed the same way), not over the whole face, whose sides turn away from the light
    tone = face & skin_tone_texels(model, high)
    tone = tone if int(tone.sum()) >= 100 else face
    mean_irradiance = (irradiance[tone] * confidence[tone, None]).sum(0) / confidence[tone].sum()
    relative = irradiance / mean_irradiance.clamp_min(1e-6)
    albedo = phone / relative.clamp_min(params.min_shading)
    # deep shadow and grazing texels keep less of their own colour
    trust = confidence * ((relative.min(1).values - params.min_shading) / (2 * params.min_shading)).clamp(0, 1)
    trust = torch.where(high.skin, trust, torch.zeros_like(trust))

    progress.update(0.3, "calibrating exposure and white balance", force=True)
    mean_face = ((albedo[face] * trust[face, None]).sum(0) / trust[face].sum().clamp_min(1e-6)).numpy()
    calibration = None
    locus_gain = np.ones(3)
    if params.calibrate:
        inner = tone & (trust > 0)
        inner = inner if int(inner.sum()) >= 100 else face & (trust > 0)
        median_face = weighted_median(albedo[inner][:, None].double(), trust[inner][:, None].double())[0].numpy()
        cues = cue_readings(observe_cues(capture, model, fit, shading, low, light, mean_irradiance, params))
        calibration = calibrate_gains(median_face, cues)
        calibration["cues"] = {name: {**summary, **({"texels": cues[name]["texels"]} if name in cues else {})}
                               for name, summary in calibration["cues"].items()}
        gain = calibration["gain"]
    else:
        locus_gain = skin_locus_gain(mean_face) if params.skin_locus else np.ones(3)
        gain = locus_gain
    albedo = albedo * torch.as_tensor(gain, dtype=albedo.dtype)
    skin_tone = mean_face * gain
    if calibration is not None:
        albedo = torch.as_tensor(appearance_to_albedo(albedo.numpy(), calibration["sheen"]), dtype=albedo.dtype)
        skin_tone = appearance_to_albedo(skin_tone, calibration["sheen"])
    skin_tone = torch.as_tensor(np.clip(skin_tone, 0.0, 1.0), dtype=torch.float32)

    progress.update(0.5, "completing from the mirror side and the skin tone", force=True)
    result, borrowed, known = _complete(high, albedo, trust, skin_tone, params.prior_length)
    progress.update(0.9, "padding the UV islands", force=True)
    image = push_pull_fill(high.image(result.clamp(0, 1)).numpy(), high.mask().numpy())
    write_png16(output, linear_to_srgb(np.clip(image, 0, 1)))
    skin = high.skin
    metrics: dict[str, Any] = {
        "light_model": light["model"], "light_residuals": light["residuals"],
        "skin_locus_gain": [round(float(v), 4) for v in locus_gain],
        "skin_tone_srgb": [round(float(v), 4) for v in linear_to_srgb(skin_tone.numpy())],
        "own_fraction": round(float((trust[skin] > 0.5).float().mean()), 4),
        "mirrored_fraction": round(float(((trust[skin] <= 0.5) & (borrowed[skin] > 0.5)).float().mean()), 4),
        "filled_fraction": round(float((known[skin] < 0.5).float().mean()), 4),
    }
    if calibration is not None:
        metrics["calibration"] = _calibration_record(calibration)
    return metrics


def _complete(high: TexelGeometry, albedo: Any, trust: Any, skin_tone: Any, prior_length: float) -> tuple[Any, Any, Any]:
    """(M, 3) complete albedo: each texel's own colour where trusted, its mirror texel's where that is trusted
    instead, then the neighbours' colour fading into the skin tone with distance from the known; the parts that are
    not skin get their fixed albedo. Also returns the mirrored weight and the known fraction per texel."""
    import torch

    mirror = high.mirror
    has_mirror = (mirror >= 0) & high.skin
    mirror_safe = mirror.clamp_min(0)
    mirror_trust = torch.where(has_mirror, trust[mirror_safe], torch.zeros_like(trust)) * high.skin[mirror_safe]
    borrowed = (1 - trust) * mirror_trust
    total = trust + borrowed
    combined = (trust[:, None] * albedo + borrowed[:, None] * albedo[mirror_safe]) / total.clamp_min(1e-6)[:, None]
    combined = torch.where((total > 1e-6)[:, None], combined, torch.zeros_like(combined))

    # what was never seen: the neighbours' colour close to the known texels, the skin tone far from them
    known = (total / 0.5).clamp(0, 1)
    image = high.image(combined).numpy()
    known_image = high.image(known).numpy()
    interpolated = high.gather(push_pull_fill(image, known_image > 0.05))
    distance = high.gather(_distance_to_known(known_image > 0.5)) / high.size
    fade = torch.exp(-distance / prior_length)[:, None]
    prior = skin_tone[None].expand(high.count, 3).clone()
    prior[_region(high, "scalp")] *= 0.9
    prior[_region(high, "ears")] *= torch.tensor([1.0, 0.9, 0.9])
    filled = fade * interpolated + (1 - fade) * prior
    result = known[:, None] * combined + (1 - known[:, None]) * filled
    for name, colour in NON_SKIN_ALBEDOS.items():
        if name in high.regions:
            result[high.regions[name]] = torch.tensor(colour)
    return result, borrowed, known


def _calibration_record(calibration: dict[str, Any]) -> dict[str, Any]:
    """The calibration's gains, exposure, white balance and cue readings as the stage's metrics record them."""
    return {
        "gain": [round(float(v), 4) for v in calibration["gain"]],
        "exposure": round(float(calibration["exposure"]), 4),
        "white_balance": [round(float(v), 4) for v in calibration["white_balance"]],
        "exposure_sd": round(float(calibration["exposure_sd"]), 4),
        "sheen": round(float(calibration["sheen"]), 4), "bounce": SKIN_BOUNCE,
        "cues_used": sorted(name for name, cue in calibration["cues"].items()
                            if cue.get("used") or cue.get("floor_used")),
        "cues": calibration["cues"],
    }


def _distance_to_known(known: np.ndarray) -> np.ndarray:
    """(S, S) distance in texels from each texel to the nearest known one."""
    import cv2

    return cv2.distanceTransform((~known).astype(np.uint8), cv2.DIST_L2, 5).astype(np.float32)


def run_delight_classic(ctx: StageContext) -> None:
    # the eyes and teeth are sampled again from the frames (unwrap samples skin only)
    for name in (PHONE_PNG, COVERAGE_PNG, SHADING_NPZ, FIT_NPZ, FRAMES_DIR):
        ctx.input(name)
    ctx.metrics.update(delight_capture(ctx.capture, ctx.params, ctx.progress, ctx.output(DELIT_CLASSIC_PNG)))


DELIGHT_CLASSIC_STAGE = Stage(
    name="delight_classic",
    version=8,
    run=run_delight_classic,
    outputs=(DELIT_CLASSIC_PNG,),
    inputs=(PHONE_PNG, COVERAGE_PNG, SHADING_NPZ, FIT_NPZ, FRAMES_DIR),
    params_type=DelightParams,
    description="divide the capture's light out of the texture, calibrate exposure and white balance, fill what was not seen (no network)",
)
