"""Tile layouts for processing a large texture in overlapping square tiles, and the weights that blend them.

The enhance stage infers tile by tile; the evaluation measures seams along the
same borders.
"""

from __future__ import annotations

import numpy as np


def tile_starts(size: int, tile: int, overlap: int) -> list[int]:
    """Top-left offsets along one side so that tiles of ``tile`` texels overlapping by at least ``overlap`` cover ``size``."""
    if size <= tile:
        return [0]
    starts = list(range(0, size - tile + 1, tile - overlap))
    if starts[-1] != size - tile:
        starts.append(size - tile)
    return starts


def blend_window(tile: int, overlap: int) -> np.ndarray:
    """(tile, tile) weights rising linearly over ``overlap`` texels at each side (never zero: normalised later)."""
    ramp = np.minimum(1.0, (np.arange(tile) + 0.5) / max(overlap, 1))
    ramp = np.minimum(ramp, ramp[::-1])
    return np.outer(ramp, ramp).astype(np.float32)
