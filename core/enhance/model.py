"""The detail network and what it sees: a diffusers ``UNet2DModel`` denoising the albedo's detail residual.

The network works on tiles of the UV texture. Its sample is the *detail
residual* -- the high-resolution linear albedo minus its smooth base, divided
by ``residual_scale`` -- and it is conditioned, channel-wise, on

* the base albedo (GMug's ``gmug.png`` at the texture size; sRGB-encoded,
  mapped to -1..1),
* the phone texture's gradient: the Sobel magnitude of its linear luminance,
  relative to the local luminance (so that it does not depend on the phone's
  exposure), masked by the coverage, mapped to -1..1,
* the coverage (-1 never seen .. 1 well seen).

Attention only in the middle block (the lowest resolution), so that a CPU
can afford it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

CONDITION_CHANNELS = 5          # base RGB, phone gradient, coverage
GRADIENT_FULL_SCALE = 0.5       # relative gradient magnitude that maps to +1 (sharper edges clip)


@dataclass(frozen=True)
class EnhanceConfig:
    channels: tuple[int, ...] = (32, 64, 128)   # feature width per level (each level halves the resolution)
    layers_per_block: int = 1                   # resnet blocks per level
    tile: int = 128                             # training patch size and the inference tile, texels
    residual_scale: float = 0.05                # detail residual (linear albedo) per unit of the network's sample
    train_timesteps: int = 1000                 # diffusion steps of the training noise schedule

    def __post_init__(self) -> None:
        assert len(self.channels) >= 2 and all(c % 8 == 0 for c in self.channels), \
            f"EnhanceConfig: channels must be >= 2 levels of multiples of 8, got {self.channels}"
        assert self.tile % self.granularity == 0, f"EnhanceConfig: tile {self.tile} must be a multiple of {self.granularity}"

    @property
    def granularity(self) -> int:
        """Image sides must be multiples of this (the U-Net halves the resolution at each level but the last)."""
        return 2 ** (len(self.channels) - 1)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "channels": list(self.channels)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "EnhanceConfig":
        return cls(**{**data, "channels": tuple(data["channels"])})


def build_unet(config: EnhanceConfig) -> Any:
    """The denoiser: (B, 3 + CONDITION_CHANNELS, T, T) noisy residual and conditions, timestep -> (B, 3, T, T)."""
    from diffusers import UNet2DModel

    levels = len(config.channels)
    return UNet2DModel(
        sample_size=config.tile, in_channels=3 + CONDITION_CHANNELS, out_channels=3,
        block_out_channels=config.channels, layers_per_block=config.layers_per_block,
        down_block_types=("DownBlock2D",) * levels, up_block_types=("UpBlock2D",) * levels,
        add_attention=True,                     # the middle block's self-attention: the only one
        norm_num_groups=8, attention_head_dim=8,
    )


def detail_conditions(base_linear: np.ndarray, phone_linear: np.ndarray, coverage: np.ndarray) -> np.ndarray:
    """(CONDITION_CHANNELS, S, S) float32 network conditions from the base albedo, the phone texture and its coverage,
    all (S, S[, 3]) at the texture size, linear light and 0..1."""
    import cv2

    from ..color import linear_to_srgb, luminance as linear_luminance

    luminance = np.ascontiguousarray(linear_luminance(np.asarray(phone_linear, np.float32)))
    gx = cv2.Sobel(luminance, cv2.CV_32F, 1, 0, ksize=3) / 8.0
    gy = cv2.Sobel(luminance, cv2.CV_32F, 0, 1, ksize=3) / 8.0
    local = cv2.GaussianBlur(luminance, (0, 0), 2.0) + 0.02
    relative = np.hypot(gx, gy) / local * coverage
    gradient = np.clip(relative / GRADIENT_FULL_SCALE, 0.0, 1.0)
    channels = [linear_to_srgb(base_linear).transpose(2, 0, 1), gradient[None], coverage[None]]
    return (np.concatenate(channels, 0).astype(np.float32) * 2.0 - 1.0)
