"""The detail pipeline: base albedo + phone texture + coverage -> the albedo with skin detail, by few-step DDIM.

In the way of a diffusers pipeline: :meth:`EnhancePipeline.check_inputs`
refuses bad inputs before any work, and a call is seeded and deterministic
(DDIM with eta = 0: the only randomness is the starting noise, drawn once for
the whole texture from ``seed``).

Tiled inference, seam-free at any size: at *every* denoising step the
texture is cut into overlapping tiles, the network predicts each tile, and
the predictions are blended with weights that ramp linearly across the
overlap, so that neighbouring tiles agree on their shared texels before the
scheduler takes its step (MultiDiffusion). Tiles that hold no texel of
``layout`` (the UV islands) are skipped, and the residual is zero outside it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import InputError
from ..render.tiles import blend_window, tile_starts
from .model import EnhanceConfig, detail_conditions

DEFAULT_STEPS = 8
TILE_BATCH = 16               # tiles per network call


def make_scheduler(config: EnhanceConfig) -> Any:
    """The noise schedule shared by training and sampling: cosine betas, v-prediction, trailing timesteps
    (so that few steps still start from pure noise)."""
    from diffusers import DDIMScheduler

    return DDIMScheduler(num_train_timesteps=config.train_timesteps, beta_schedule="squaredcos_cap_v2",
                         prediction_type="v_prediction", clip_sample=False, timestep_spacing="trailing",
                         set_alpha_to_one=True)


class EnhancePipeline:
    """Callable: ``pipeline(base_linear, phone_linear, coverage, layout) -> (S, S, 3)`` enhanced linear albedo."""

    def __init__(self, unet: Any, config: EnhanceConfig) -> None:
        self.unet = unet.eval().requires_grad_(False)
        self.config = config
        self.scheduler = make_scheduler(config)

    @property
    def default_overlap(self) -> int:
        """Texels two neighbouring tiles share unless a call says otherwise: an eighth of the tile (the blend is
        redone at every step, so a narrow overlap leaves no seam and saves a third of the tiles against a quarter)."""
        return self.config.tile // 8

    @property
    def device(self) -> Any:
        return next(self.unet.parameters()).device

    def check_inputs(self, base_linear: np.ndarray, phone_linear: np.ndarray, coverage: np.ndarray, layout: np.ndarray,
                     steps: int, overlap: int) -> None:
        size = base_linear.shape[0] if base_linear.ndim == 3 else -1
        if base_linear.shape != (size, size, 3):
            raise InputError(f"enhance: the base albedo must be square RGB (S, S, 3), got {base_linear.shape}")
        if phone_linear.shape != base_linear.shape or coverage.shape != (size, size) or layout.shape != (size, size):
            raise InputError(f"enhance: the phone texture {phone_linear.shape}, coverage {coverage.shape} and layout "
                             f"{layout.shape} must match the base albedo's size {size}x{size}")
        if size % self.config.granularity or size < self.config.granularity:
            raise InputError(f"enhance: the texture size {size} must be a multiple of {self.config.granularity}")
        for name, image in (("base albedo", base_linear), ("phone texture", phone_linear), ("coverage", coverage)):
            if not np.isfinite(image).all() or image.min() < 0.0 or image.max() > 1.0:
                raise InputError(f"enhance: the {name} must hold finite values in 0..1")
        if not 1 <= steps <= 100:
            raise InputError(f"enhance: steps must be from 1 to 100, not {steps}")
        if not 0 <= overlap <= self.config.tile // 2:
            raise InputError(f"enhance: the tile overlap must be from 0 to {self.config.tile // 2} texels, not {overlap}")

    def __call__(self, base_linear: np.ndarray, phone_linear: np.ndarray, coverage: np.ndarray,
                 layout: np.ndarray | None = None, steps: int = DEFAULT_STEPS, seed: int = 0,
                 overlap: int | None = None, progress: Any = None) -> np.ndarray:
        """``overlap``: texels two neighbouring tiles share (default :attr:`default_overlap`)."""
        import torch

        overlap = self.default_overlap if overlap is None else overlap
        layout = np.ones(coverage.shape, bool) if layout is None else np.asarray(layout, bool)
        self.check_inputs(base_linear, phone_linear, coverage, layout, steps, overlap)
        size = base_linear.shape[0]
        device = self.device
        conditions = torch.as_tensor(detail_conditions(base_linear, phone_linear, coverage))[None].to(device)
        generator = torch.Generator().manual_seed(seed)
        sample = torch.randn((1, 3, size, size), generator=generator).to(device)
        self.scheduler.set_timesteps(steps)
        tiles = self.tiles(layout, overlap)
        for k, timestep in enumerate(self.scheduler.timesteps):
            prediction = self._predict(sample, conditions, timestep, tiles, overlap)
            sample = self.scheduler.step(prediction, timestep, sample, eta=0.0).prev_sample
            if progress is not None:
                progress.update((k + 1) / steps, f"denoising step {k + 1}/{steps} ({len(tiles)} tiles)")
        residual = sample[0].permute(1, 2, 0).cpu().numpy() * self.config.residual_scale
        return np.clip(base_linear + residual * layout[..., None], 0.0, 1.0).astype(np.float32)

    def tiles(self, layout: np.ndarray, overlap: int) -> list[tuple[int, int]]:
        """(top, left) of the tiles that hold some texel of ``layout``."""
        size, tile = layout.shape[0], min(self.config.tile, layout.shape[0])
        starts = tile_starts(size, tile, overlap)
        return [(top, left) for top in starts for left in starts if layout[top:top + tile, left:left + tile].any()]

    def _predict(self, sample: Any, conditions: Any, timestep: Any, tiles: list[tuple[int, int]], overlap: int) -> Any:
        """The network's prediction for the whole texture: every tile's, blended across the overlaps."""
        import torch

        size = sample.shape[-1]
        tile = min(self.config.tile, size)
        window = torch.as_tensor(blend_window(tile, overlap), device=sample.device)
        blended = torch.zeros_like(sample)
        weight = torch.zeros((1, 1, size, size), device=sample.device)
        inputs = torch.cat([sample, conditions], 1)
        for first in range(0, len(tiles), TILE_BATCH):
            batch = tiles[first:first + TILE_BATCH]
            crops = torch.cat([inputs[..., top:top + tile, left:left + tile] for top, left in batch])
            with torch.no_grad():
                predicted = self.unet(crops, timestep).sample
            for (top, left), piece in zip(batch, predicted):
                blended[0, :, top:top + tile, left:left + tile] += piece * window
                weight[0, 0, top:top + tile, left:left + tile] += window
        return blended / weight.clamp_min(1e-8)

