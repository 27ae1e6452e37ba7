"""Stage ``enhance``: GMug's albedo with skin detail at the texture size (``textures/albedo.png``, "final").

The detail network (``pipeline.py``) adds a detail residual to
``gmug.png`` on the skin texels of the open head's UV layout, guided by the
phone texture's gradient where the capture saw the surface; eyes, mouth
interior and teeth keep GMug's texels as they are. ``build`` prefers
``albedo.png`` over ``gmug.png``. Metrics (device, steps, tiles, times) go
into ``capture.json`` and ``report.json``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..color import linear_to_srgb, srgb_to_linear
from ..errors import StageError
from ..gmug.stage import GMUG_PNG
from ..image_io import read_image, write_png16
from ..stages import Stage, StageContext
from ..texture.unwrap import COVERAGE_PNG, PHONE_PNG

FINAL_PNG = "textures/albedo.png"


@dataclass(frozen=True)
class EnhanceParams:
    weights: str = ""                  # the weights file (resolved by the pipeline; recorded so a change reruns)
    weights_sha256: str = ""           # its hash, so new weights make the stage stale
    device: str = "auto"               # auto (CUDA when present), cpu or cuda
    steps: int = 4                     # DDIM steps
    seed: int = 0                      # the starting noise


def skin_layout(size: int) -> np.ndarray:
    """(size, size) bool: the skin texels of the open head's UV layout (eyes, mouth interior, teeth left out)."""
    from ..head.open_head import get_open_head
    from ..texture.uv import texel_geometry

    geometry = texel_geometry(get_open_head(with_landmarks=False), size)
    return geometry.image(geometry.skin).numpy().astype(bool)


def run_enhance(ctx: StageContext) -> None:
    from ..device import resolve_device
    from .weights import load_enhance_cached

    params: EnhanceParams = ctx.params
    if not params.weights:
        raise StageError("no enhance weights were given to the enhance stage; reconstruct without --detail enhance")
    device = resolve_device(params.device)
    started = time.monotonic()
    pipeline = load_enhance_cached(str(Path(params.weights).resolve()), params.weights_sha256, device)
    base = srgb_to_linear(read_image(ctx.input(GMUG_PNG)))
    phone = srgb_to_linear(read_image(ctx.input(PHONE_PNG)))
    coverage = read_image(ctx.input(COVERAGE_PNG))
    coverage = coverage[..., 0] if coverage.ndim == 3 else coverage
    if phone.shape != base.shape or coverage.shape != base.shape[:2]:
        raise StageError(f"{GMUG_PNG} {base.shape[:2]}, {PHONE_PNG} {phone.shape[:2]} and {COVERAGE_PNG} {coverage.shape} "
                         "differ in size; rerun from the unwrap stage")
    layout = skin_layout(base.shape[0])
    loaded = time.monotonic()
    enhanced = pipeline(base, phone, coverage, layout, steps=params.steps, seed=params.seed,
                        progress=ctx.progress.sub(0.02, 0.95))
    denoised = time.monotonic()
    write_png16(ctx.output(FINAL_PNG), linear_to_srgb(enhanced))
    ctx.metrics.update({"device": device, "steps": params.steps, "texture_size": int(base.shape[0]),
                        "tile": pipeline.config.tile, "overlap": pipeline.default_overlap, "weights": Path(params.weights).name,
                        "seconds_load": round(loaded - started, 2), "seconds_denoise": round(denoised - loaded, 2)})


ENHANCE_STAGE = Stage(
    name="enhance",
    version=1,
    run=run_enhance,
    outputs=(FINAL_PNG,),
    inputs=(GMUG_PNG, PHONE_PNG, COVERAGE_PNG),
    params_type=EnhanceParams,
    description="skin detail (pores, fine lines) added to the GMug albedo by a diffusion model guided by the phone texture",
)
