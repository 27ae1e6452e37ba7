"""Renders of a built avatar (.blend) under lighting presets, for the demo and the benchmarks.

A one-view, neutral-expression batch of ``core/blender/batch_render.py``:
Cycles from slightly left of the front, one 8-bit sRGB PNG per lighting
preset, written atomically. Nothing in the .blend is saved back.
"""

from __future__ import annotations

import os
from typing import Any, Sequence

from .batch_render import batch_render


def render_avatar_lightings(blend: str | os.PathLike, output_dir: str | os.PathLike, presets: Sequence[str] = ("studio", "sunset", "forest"),
                            size: int = 512, samples: int = 16, yaw_deg: float = 20.0, progress: Any = None) -> dict[str, str]:
    """Render the avatar in ``blend`` under each preset into ``output_dir``; returns preset -> image path."""
    result = batch_render(blend, output_dir, presets, [yaw_deg], ["neutral"], engine="CYCLES", resolution=size,
                          samples=samples, overwrite=True, contact_sheet=False, progress=progress)
    return dict(zip(presets, result["images"]))
