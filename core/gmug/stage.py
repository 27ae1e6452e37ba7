"""Stage ``gmug``: the learned delit, complete albedo at the capture's texture size (``textures/gmug.png``).

1. The phone texture and its coverage are brought to the network's
   resolution and exposure-normalised (``inputs.py``), inverted into W+ of
   G_phone (``invert.py``), and G_studio(W+) is the albedo at that
   resolution: lighting removed, exposure and white balance recovered,
   unseen parts completed.
2. **Detail.** The network's albedo is upsampled (in linear light, after
   padding its UV islands so no gutter colour bleeds in) to the texture size;
   where the capture saw the surface well, the phone texture's own detail
   above the network's band -- its ratio to a coverage-weighted blur of
   itself -- is multiplied in, fading out with the coverage, so observed
   pores, brows and moles are kept and nothing seams at the coverage edge.
3. The result is padded into the UV gutter and written as 16-bit sRGB.

Trained on the open head's UV layout only: a FLAME fit is refused with a
message to use the classic texture. Metrics (device, inversion losses,
exposure gain, times) go into ``capture.json`` and ``report.json``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from ..errors import StageError
from ..fit import FIT_NPZ
from ..fit.stage import fit_model_files
from ..stages import Stage, StageContext
from ..texture.image_io import linear_to_srgb, push_pull_fill, read_image, srgb_to_linear, write_png16
from ..texture.unwrap import COVERAGE_PNG, PHONE_PNG
from .inputs import OBSERVED, uv_masks

GMUG_PNG = "textures/gmug.png"
DETAIL_RATIO_RANGE = (0.5, 2.0)      # the phone's high-frequency detail, as a ratio, is clipped to this
DETAIL_COVERAGE = (0.3, 0.8)         # detail fades in between these coverages


@dataclass(frozen=True)
class GMugParams:
    weights: str = ""                  # the weights file (resolved by the pipeline; recorded so a change reruns)
    weights_sha256: str = ""           # its hash, so new weights make the stage stale
    device: str = "auto"               # auto (CUDA when present), cpu or cuda
    invert_steps: int = 40             # Adam steps of the W+ inversion after the encoder
    detail: bool = True                # carry the phone texture's observed high frequencies over


@lru_cache(maxsize=2)
def _models(path: str, sha256: str, device: str):
    from .weights import load_gmug

    return load_gmug(path, device)


def run_gmug(ctx: StageContext) -> None:
    from ..device import resolve_device
    from .invert import InversionParams, gmug_albedo

    params: GMugParams = ctx.params
    if fit_model_files(ctx.capture)[0]:
        raise StageError("GMug was trained on the open head's UV layout and cannot texture a FLAME fit yet; "
                         "use the classic texture (--texture-method classic)")
    ctx.input(FIT_NPZ)
    if not params.weights:
        raise StageError("no GMug weights were given to the gmug stage; use --texture-method classic")
    device = resolve_device(params.device)
    started = time.monotonic()
    models = _models(str(Path(params.weights).resolve()), params.weights_sha256, device)
    phone_srgb = read_image(ctx.input(PHONE_PNG))
    coverage = read_image(ctx.input(COVERAGE_PNG))
    if coverage.ndim == 3:
        coverage = coverage[..., 0]
    loaded = time.monotonic()
    low_srgb, info = gmug_albedo(models, phone_srgb, coverage, InversionParams(steps=params.invert_steps),
                                 ctx.progress.sub(0.0, 0.7))
    inverted = time.monotonic()
    ctx.progress.update(0.75, "adding the phone texture's detail", force=True)
    albedo = upsample_with_detail(low_srgb, phone_srgb, coverage, params.detail)
    write_png16(ctx.output(GMUG_PNG), linear_to_srgb(np.clip(albedo, 0, 1)))
    ctx.metrics.update(info)
    ctx.metrics.update({"device": device, "resolution": models.config.resolution, "texture_size": int(albedo.shape[0]),
                        "weights": Path(params.weights).name, "seconds_load": round(loaded - started, 2),
                        "seconds_inversion": round(inverted - loaded, 2),
                        "seconds_detail": round(time.monotonic() - inverted, 2)})


def upsample_with_detail(low_srgb: np.ndarray, phone_srgb: np.ndarray, coverage: np.ndarray, detail: bool = True) -> np.ndarray:
    """(S, S, 3) linear albedo: GMug's (R, R, 3) sRGB output at the phone texture's size, with its observed detail."""
    import cv2

    size, resolution = phone_srgb.shape[0], low_srgb.shape[0]
    islands_low = uv_masks(resolution).islands > 0
    low = push_pull_fill(srgb_to_linear(low_srgb), islands_low)
    albedo = np.clip(cv2.resize(low, (size, size), interpolation=cv2.INTER_CUBIC), 0, None)
    islands = cv2.resize(islands_low.astype(np.float32), (size, size), interpolation=cv2.INTER_NEAREST) > 0
    if detail and size > resolution:
        phone = srgb_to_linear(phone_srgb)
        weight = np.where(coverage > OBSERVED, coverage, 0).astype(np.float32)
        sigma = 0.6 * size / resolution                      # just above the network's own band
        blurred = cv2.GaussianBlur(phone * weight[..., None], (0, 0), sigma)
        blurred_weight = cv2.GaussianBlur(weight, (0, 0), sigma)[..., None]
        ratio = np.clip(phone / np.maximum(blurred / np.maximum(blurred_weight, 1e-6), 1e-4), *DETAIL_RATIO_RANGE)
        ratio = np.where(weight[..., None] > 0, ratio, 1.0)
        low_edge, high_edge = DETAIL_COVERAGE
        fade = np.clip((cv2.GaussianBlur(weight, (0, 0), sigma) - low_edge) / (high_edge - low_edge), 0, 1)[..., None]
        albedo = albedo * (1 + fade * (ratio - 1))
    return push_pull_fill(albedo.astype(np.float32), islands)


GMUG_STAGE = Stage(
    name="gmug",
    version=1,
    run=run_gmug,
    outputs=(GMUG_PNG,),
    inputs=(PHONE_PNG, COVERAGE_PNG, FIT_NPZ),
    params_type=GMugParams,
    description="learned delighting, exposure/white-balance recovery and completion of the texture (GMug)",
)
