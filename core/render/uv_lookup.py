"""Where each rendered pixel samples a UV texture: texture coordinates per pixel, and grids for ``grid_sample``.

UV follows the head models' convention: u to the right, v up, (0, 0) at the
texture's bottom-left corner; texel rows run top to bottom, so row = (1 - v) * size.
"""

from __future__ import annotations

from typing import Any

from .raster import RasterResult


def texcoords(raster: RasterResult, uv: Any, face_uv: Any) -> Any:
    """(N, 2) float32 torch UV of the N covered pixels of ``raster`` (row-major), from per-corner ``uv`` (T, 2) and
    ``face_uv`` (F, 3), the UV corner indices of each triangle."""
    import torch

    mask = raster.mask
    corners = torch.as_tensor(face_uv).long()[raster.face_index[mask]]                # (N, 3)
    weights = raster.barycentrics[mask].float()
    return (torch.as_tensor(uv, dtype=torch.float32)[corners] * weights[..., None]).sum(1)


def uv_to_grid(uv: Any) -> Any:
    """(..., 2) UV -> (..., 2) ``grid_sample`` coordinates (x, y in -1..1, y down) of a texture image."""
    import numpy as np

    uv = np.asarray(uv, np.float32)
    return np.stack([uv[..., 0] * 2 - 1, (1 - uv[..., 1]) * 2 - 1], -1)
