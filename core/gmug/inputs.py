"""How a phone texture becomes GMug's input, and GMug's output an albedo: one convention for training and the stage.

The input is the phone texture at the network's resolution in linear light,
*exposure-normalised* (its face's median luminance set to ``FACE_LEVEL``:
a phone's auto exposure makes the absolute level meaningless, so the network
must infer the albedo's level from colour and shading, not copy the phone's),
sRGB-encoded to -1..1, zero where the surface was not observed, with the
coverage as a fourth channel. The output is the albedo in sRGB, -1..1.

Downsampling from a capture's texture size is coverage-weighted area
averaging, so unseen texels do not darken their neighbours. This module
knows images and the UV layout's masks; it reads and writes no files.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from .. import color
from ..color import linear_to_srgb_torch, srgb_to_linear

OBSERVED = 0.1          # coverage above this counts as seen (unwrap's threshold, and the corpus' holes)
FACE_LEVEL = 0.25       # the exposure-normalised face's median linear luminance
LUMINANCE = np.asarray(color.LUMINANCE, np.float32)


@dataclass(frozen=True)
class UVMasks:
    """(R, R) masks of the head's UV layout at the network's resolution."""

    islands: np.ndarray     # float32 1 inside the UV islands (where an albedo means something)
    face: np.ndarray        # bool: the face region (where the exposure is metered)


@lru_cache(maxsize=8)
def uv_masks(resolution: int) -> UVMasks:
    """Masks of the open head's layout (GMug is trained on it) at ``resolution``."""
    from ..head.open_head import get_open_head
    from ..texture.uv import texel_geometry

    geometry = texel_geometry(get_open_head(with_landmarks=False), resolution)
    face = geometry.image(geometry.regions["face"]).numpy().astype(bool)
    return UVMasks(geometry.mask().numpy().astype(np.float32), face)


def downsample_observed(phone_linear: np.ndarray, coverage: np.ndarray, resolution: int) -> tuple[np.ndarray, np.ndarray]:
    """Coverage-weighted area average of a (S, S, 3) linear texture and its (S, S) coverage to ``resolution``."""
    import cv2

    if phone_linear.shape[0] == resolution:
        return phone_linear.astype(np.float32), coverage.astype(np.float32)
    weight = np.where(coverage > OBSERVED, coverage, 0.0).astype(np.float32)
    size = (resolution, resolution)
    summed = cv2.resize(phone_linear.astype(np.float32) * weight[..., None], size, interpolation=cv2.INTER_AREA)
    weight_small = cv2.resize(weight, size, interpolation=cv2.INTER_AREA)
    phone_small = summed / np.maximum(weight_small, 1e-6)[..., None]
    coverage_small = cv2.resize(coverage.astype(np.float32), size, interpolation=cv2.INTER_AREA)
    return np.where(weight_small[..., None] > 1e-6, phone_small, 0.0), coverage_small


def normalise_batch(linear: "torch.Tensor", coverage: "torch.Tensor") -> tuple["torch.Tensor", "torch.Tensor", "torch.Tensor"]:
    """Linear phone textures (N, 3, R, R) and coverages (N, 1, R, R) -> GMug inputs (N, 4, R, R), observed masks
    (N, 1, R, R) and the exposure gains (N,) that put each observed face's median luminance at FACE_LEVEL."""
    import torch

    resolution = linear.shape[-1]
    masks = uv_masks(resolution)
    islands = torch.as_tensor(masks.islands, device=linear.device) > 0
    face = torch.as_tensor(masks.face, device=linear.device)
    seen = (coverage > OBSERVED) & islands
    luminance = (linear * torch.as_tensor(LUMINANCE, device=linear.device)[:, None, None]).sum(1, keepdim=True)
    metered = seen & face
    metered = torch.where(metered.flatten(1).sum(1)[:, None, None, None] >= 16, metered, seen)
    median = torch.nanmedian(torch.where(metered, luminance, torch.nan).flatten(1), dim=1).values
    gain = FACE_LEVEL / torch.nan_to_num(median, nan=FACE_LEVEL).clamp_min(1e-4)
    encoded = linear_to_srgb_torch((linear * gain[:, None, None, None]).clamp(0, 1)) * 2 - 1
    rgb = torch.where(seen, encoded, torch.zeros_like(encoded))
    cover = torch.where(seen, coverage, torch.zeros_like(coverage)) * 2 - 1
    return torch.cat([rgb, cover], 1), seen.float(), gain


def network_input(phone_srgb: np.ndarray, coverage: np.ndarray, resolution: int) -> tuple["torch.Tensor", "torch.Tensor", float]:
    """(1, 4, R, R) input, (1, 1, R, R) observed mask and the exposure gain, from a phone texture of any size
    (sRGB 0..1, (S, S, 3)) and its coverage ((S, S), 0..1)."""
    import torch

    linear, cover = downsample_observed(srgb_to_linear(np.clip(phone_srgb, 0, 1)), coverage, resolution)
    x, seen, gain = normalise_batch(torch.as_tensor(linear).permute(2, 0, 1)[None], torch.as_tensor(cover)[None, None])
    return x, seen, float(gain[0])


def network_to_srgb(image: np.ndarray) -> np.ndarray:
    """(3, R, R) -1..1 -> (R, R, 3) sRGB 0..1."""
    return np.clip((np.asarray(image, np.float32).transpose(1, 2, 0) + 1) / 2, 0, 1)
