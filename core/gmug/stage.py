"""Stage ``gmug``: the learned delit, complete albedo at the capture's texture size (``textures/gmug.png``).

1. The phone texture and its coverage are brought to the network's
   resolution and exposure-normalised (``inputs.py``), inverted into W+ of
   G_phone (``invert.py``), and G_studio(W+) is the albedo at that
   resolution: lighting removed, exposure and white balance recovered,
   unseen parts completed.
2. **Level and detail.** On the Cycles-rendered bench captures the
   network's own absolute level and white balance proved unreliable (a dark
   skin came out light), so GMug's albedo is upsampled (linear light, UV
   islands padded) and brought, one gain per channel over the well-seen
   face, to the level and white balance of ``delit_classic`` (calibrated
   from the sclera and skin-locus priors); where the capture saw the surface
   well, the classic delit texels -- the phone's own detail with the fitted
   light divided out -- are kept, blending smoothly into GMug's completion
   where it saw little or nothing. The anchor gains go into the metrics.
3. The result is padded into the UV gutter and written as 16-bit sRGB.

Trained on the open head's UV layout only: a FLAME fit is refused with a
message to use the classic texture. Metrics (device, inversion losses,
exposure gain, times) go into ``capture.json`` and ``report.json``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..color import linear_to_srgb, srgb_to_linear
from ..errors import StageError
from ..fit import FIT_NPZ
from ..fit.stage import fit_model_files
from ..image_io import push_pull_fill, read_image, write_png16
from ..stages import Stage, StageContext
from ..texture.delight import DELIT_CLASSIC_PNG
from ..texture.unwrap import COVERAGE_PNG, PHONE_PNG
from .inputs import uv_masks

GMUG_PNG = "textures/gmug.png"
ANCHOR_COVERAGE = 0.5               # face texels seen at least this well set GMug's level and white balance
ANCHOR_MIN_TEXELS = 64
ANCHOR_GAIN_RANGE = (0.25, 4.0)      # the per-channel anchor gain is kept within this
OBSERVED_BLEND = (0.3, 0.8)          # the classic delit texels take over between these (blurred) coverages


@dataclass(frozen=True)
class GMugParams:
    weights: str = ""                  # the weights file (resolved by the pipeline; recorded so a change reruns)
    weights_sha256: str = ""           # its hash, so new weights make the stage stale
    device: str = "auto"               # auto (CUDA when present), cpu or cuda
    invert_steps: int = 40             # Adam steps of the W+ inversion after the encoder


def run_gmug(ctx: StageContext) -> None:
    from ..device import resolve_device
    from .invert import InversionParams, gmug_albedo
    from .weights import load_gmug_cached

    params: GMugParams = ctx.params
    if fit_model_files(ctx.capture)[0]:
        raise StageError("GMug was trained on the open head's UV layout and cannot texture a FLAME fit yet; "
                         "use the classic texture (--texture-method classic)")
    ctx.input(FIT_NPZ)
    classic_srgb = read_image(ctx.input(DELIT_CLASSIC_PNG))
    if not params.weights:
        raise StageError("no GMug weights were given to the gmug stage; use --texture-method classic")
    device = resolve_device(params.device)
    started = time.monotonic()
    models = load_gmug_cached(str(Path(params.weights).resolve()), params.weights_sha256, device)
    phone_srgb = read_image(ctx.input(PHONE_PNG))
    coverage = read_image(ctx.input(COVERAGE_PNG))
    if coverage.ndim == 3:
        coverage = coverage[..., 0]
    loaded = time.monotonic()
    low_srgb, info = gmug_albedo(models, phone_srgb, coverage, InversionParams(steps=params.invert_steps),
                                 ctx.progress.sub(0.0, 0.7))
    inverted = time.monotonic()
    ctx.progress.update(0.75, "anchoring to the calibrated level and keeping the well-seen texels", force=True)
    albedo, composed = compose_albedo(low_srgb, classic_srgb, coverage)
    write_png16(ctx.output(GMUG_PNG), linear_to_srgb(np.clip(albedo, 0, 1)))
    ctx.metrics.update(info)
    ctx.metrics.update(composed)
    ctx.metrics.update({"device": device, "resolution": models.config.resolution, "texture_size": int(albedo.shape[0]),
                        "weights": Path(params.weights).name, "seconds_load": round(loaded - started, 2),
                        "seconds_inversion": round(inverted - loaded, 2),
                        "seconds_compose": round(time.monotonic() - inverted, 2)})


def compose_albedo(low_srgb: np.ndarray, classic_srgb: np.ndarray, coverage: np.ndarray) -> tuple[np.ndarray, dict]:
    """(S, S, 3) linear albedo from GMug's (R, R, 3) sRGB output, the classic delit texture and the coverage (S, S).

    GMug's albedo is upsampled (in linear light, its UV islands padded first), brought to the classic texture's
    calibrated level and white balance over the well-seen face (one gain per channel), and carries the texture
    where the capture saw little; where it saw well, the classic delit texels -- the phone's own detail with the
    fitted light divided out -- are kept, with a smooth transition in between.
    """
    import cv2

    size, resolution = classic_srgb.shape[0], low_srgb.shape[0]
    islands_low = uv_masks(resolution).islands > 0
    low = push_pull_fill(srgb_to_linear(low_srgb), islands_low)
    learned = np.clip(cv2.resize(low, (size, size), interpolation=cv2.INTER_CUBIC), 1e-4, None)
    classic = srgb_to_linear(classic_srgb)
    nearest = lambda mask: cv2.resize(mask.astype(np.uint8), (size, size), interpolation=cv2.INTER_NEAREST) > 0  # noqa: E731
    islands, face = nearest(islands_low), nearest(uv_masks(resolution).face)
    anchor = face & (coverage > ANCHOR_COVERAGE)
    if anchor.sum() < ANCHOR_MIN_TEXELS:
        anchor = islands & (coverage > ANCHOR_COVERAGE)
    gain = np.ones(3, np.float32)
    if anchor.sum() >= ANCHOR_MIN_TEXELS:
        gain = np.clip(np.median(classic[anchor], 0) / np.median(learned[anchor], 0), *ANCHOR_GAIN_RANGE).astype(np.float32)
    low_edge, high_edge = OBSERVED_BLEND
    seen = np.clip((cv2.GaussianBlur(coverage.astype(np.float32), (0, 0), size / 256) - low_edge) / (high_edge - low_edge), 0, 1)
    albedo = seen[..., None] * classic + (1 - seen[..., None]) * learned * gain
    info = {"anchor_gain": [round(float(g), 4) for g in gain], "anchor_texels": int(anchor.sum()),
            "learned_fraction_face": round(float(1 - seen[face].mean()), 4)}
    return push_pull_fill(albedo.astype(np.float32), islands), info


GMUG_STAGE = Stage(
    name="gmug",
    version=1,
    run=run_gmug,
    outputs=(GMUG_PNG,),
    inputs=(PHONE_PNG, COVERAGE_PNG, DELIT_CLASSIC_PNG, FIT_NPZ),
    params_type=GMugParams,
    description="learned delighting, exposure/white-balance recovery and completion of the texture (GMug)",
)
