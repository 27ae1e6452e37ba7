"""Renders of a built avatar (.blend) under lighting presets, for the demo and the benchmarks.

Opens the .blend in this Blender session (a CLI process of its own), aims a
new camera at the head's face from the front, and renders one Cycles image
per lighting preset (``core/blender/lighting.py``) with the Standard view
transform, written as 8-bit sRGB PNGs atomically. Nothing in the .blend is
saved back.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Sequence

import bpy
import mathutils
import numpy as np

from ..atomic import atomic_path
from ..errors import InputError
from ..native_stderr import native_stdout_captured
from .lighting import PRESETS, apply_lighting, remove_lighting

VIEW_FOV_DEG = 28.0
VIEW_MARGIN = 1.25          # the head's height times this fills the frame


def render_avatar_lightings(blend: str | os.PathLike, output_dir: str | os.PathLike, presets: Sequence[str] = ("studio", "sunset", "forest"),
                            size: int = 512, samples: int = 16, yaw_deg: float = 20.0, progress: Any = None) -> dict[str, str]:
    """Render the avatar in ``blend`` under each preset into ``output_dir/{preset}.png``; returns preset -> path."""
    blend = Path(blend)
    unknown = [name for name in presets if name not in PRESETS]
    if unknown:
        raise InputError(f"unknown lighting preset(s) {', '.join(unknown)}; choose from {', '.join(PRESETS)}")
    if not blend.is_file():
        raise InputError(f"{blend} does not exist; build the avatar first (`studio-avatar build`)")
    with native_stdout_captured():
        bpy.ops.wm.open_mainfile(filepath=str(blend), load_ui=False)
    scene = bpy.context.scene
    heads = [obj for obj in scene.objects if obj.type == "MESH" and len(obj.data.vertices) > 1000]
    if not heads:
        raise InputError(f"{blend} holds no avatar head mesh")
    depsgraph = bpy.context.evaluated_depsgraph_get()
    corners = np.concatenate([np.array([obj.matrix_world @ mathutils.Vector(c) for c in obj.evaluated_get(depsgraph).bound_box])
                              for obj in heads])
    lo, hi = corners.min(0), corners.max(0)
    centre = (lo + hi) / 2
    height = float(hi[2] - lo[2])
    distance = VIEW_MARGIN * height / 2 / math.tan(math.radians(VIEW_FOV_DEG) / 2) + float(hi[1] - centre[1])

    camera = bpy.data.objects.new("Studio Avatar Render Camera", bpy.data.cameras.new("Studio Avatar Render Camera"))
    scene.collection.objects.link(camera)
    scene.camera = camera
    camera.data.sensor_fit = "VERTICAL"
    camera.data.angle_y = math.radians(VIEW_FOV_DEG)
    camera.data.clip_start = 0.01
    yaw = math.radians(yaw_deg)
    camera.location = (centre[0] + distance * math.sin(yaw), centre[1] - distance * math.cos(yaw), centre[2])
    camera.rotation_euler = (math.pi / 2, 0.0, yaw)        # looks along +Y turned by yaw: at the face

    scene.render.engine = "CYCLES"
    scene.cycles.device = "CPU"
    scene.cycles.samples = samples
    scene.cycles.use_denoising = True
    scene.cycles.denoising_quality = "FAST"
    scene.render.resolution_x = scene.render.resolution_y = size
    scene.render.resolution_percentage = 100
    scene.view_settings.view_transform = "Standard"
    scene.view_settings.look = "None"
    scene.render.image_settings.file_format = "PNG"
    scene.render.image_settings.color_mode = "RGB"
    scene.render.image_settings.color_depth = "8"
    scene.render.use_file_extension = False
    for obj in list(scene.objects):          # lamps saved in the .blend would add to every preset
        if obj.type == "LIGHT":
            obj.hide_render = True

    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    written: dict[str, str] = {}
    lamps: list[Any] = []
    for i, name in enumerate(presets):
        remove_lighting(scene, lamps)
        lamps = apply_lighting(scene, PRESETS[name], "Studio Avatar Render")
        target = output_dir / f"{name}.png"
        with atomic_path(target) as tmp:
            scene.render.filepath = str(tmp)
            with native_stdout_captured():
                bpy.ops.render.render(write_still=True)
        written[name] = str(target.resolve())
        if progress is not None:
            progress.update((i + 1) / len(presets), f"rendered the avatar under {name} light", force=True)
    return written
