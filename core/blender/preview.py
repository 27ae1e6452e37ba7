"""A minimal lit stage for preview and check renders: a camera, one sun as key light, a plain world, Cycles on the CPU.

Used by the head contact sheet tool and by the tests' render checks; the
relighting presets and batch renders of the add-on are a separate, fuller
module. Creates new datablocks only (named ``"{name} Camera"`` and so on);
placing the camera is the caller's business.
"""

from __future__ import annotations

import math
from typing import Any

import bpy

KEY_ENERGY = 3.0     # W/m^2 of the sun: a clearly lit face under the Standard view transform


def preview_stage(scene: Any, name: str, world_rgb: tuple[float, float, float], key_rotation_deg: tuple[float, float, float],
                  size: int, samples: int) -> Any:
    """Add the camera (made the scene's camera), key light and world; set Cycles CPU at size x size. Returns the camera."""
    camera = bpy.data.objects.new(f"{name} Camera", bpy.data.cameras.new(f"{name} Camera"))
    scene.collection.objects.link(camera)
    scene.camera = camera
    sun = bpy.data.lights.new(f"{name} Key", "SUN")
    sun.energy = KEY_ENERGY
    key = bpy.data.objects.new(f"{name} Key", sun)
    key.rotation_euler = tuple(math.radians(angle) for angle in key_rotation_deg)
    scene.collection.objects.link(key)
    world = bpy.data.worlds.new(f"{name} World")
    world.color = world_rgb
    scene.world = world

    scene.render.engine = "CYCLES"
    scene.cycles.device = "CPU"
    scene.cycles.samples = samples
    scene.cycles.use_denoising = False
    scene.render.resolution_x = scene.render.resolution_y = size
    scene.render.resolution_percentage = 100
    scene.render.image_settings.file_format = "PNG"
    return camera
