"""Lighting setups for Cycles renders of a head: Blender's bundled world HDRIs and lamps with blackbody colours.

``Lighting`` describes a setup as data (JSON-able); ``apply_lighting`` adds it
to a scene as a new world and new lamp objects (named with a prefix, nothing
existing is changed or removed) and ``remove_lighting`` takes those lamps away
again. The synthetic captures draw random setups; ``PRESETS`` are the fixed
looks the demo and the benchmarks render avatars under. Positions are in
Blender's world frame with the head's centre near the origin, the face
looking along -Y and Z up.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import bpy
import numpy as np

from ..errors import StudioAvatarError

STUDIO_LIGHT_DIR = ("studiolights", "world")


def world_hdri_files() -> dict[str, Path]:
    """Blender's bundled world HDRIs by name (city, courtyard, forest, interior, night, studio, sunrise, sunset)."""
    folder = Path(bpy.utils.system_resource("DATAFILES", path="/".join(STUDIO_LIGHT_DIR)))
    files = {path.stem: path for path in sorted(folder.glob("*.exr"))}
    if not files:
        raise StudioAvatarError(f"no world HDRIs in {folder}: this Blender installation lacks its studio lights")
    return files


@dataclass(frozen=True)
class Lamp:
    kind: str                                  # "POINT", "AREA" or "SPOT"
    position: tuple[float, float, float]       # Blender world frame, metres (the head's centre near the origin)
    rgb: tuple[float, float, float]            # linear colour (from the colour temperature)
    power_w: float
    size_m: float                              # point radius or area side: small = hard shadows


@dataclass(frozen=True)
class Lighting:
    hdri: str | None                           # a world_hdri_files() name, or None for a plain world colour
    hdri_rotation_deg: float = 0.0             # about the vertical axis
    hdri_strength: float = 1.0
    world_rgb: tuple[float, float, float] = (1.0, 1.0, 1.0)   # tint of the HDRI (or the plain world's colour)
    lamps: tuple[Lamp, ...] = ()


def kelvin_to_rgb(kelvin: float) -> tuple[float, float, float]:
    """Linear RGB of a blackbody at ``kelvin``, normalized to max 1 (Tanner Helland's fit, decoded from sRGB)."""
    t = kelvin / 100.0
    red = 255.0 if t <= 66 else 329.698727446 * (t - 60) ** -0.1332047592
    green = 99.4708025861 * math.log(t) - 161.1195681661 if t <= 66 else 288.1221695283 * (t - 60) ** -0.0755148492
    blue = 255.0 if t >= 66 else 0.0 if t <= 19 else 138.5177312231 * math.log(t - 10) - 305.0447927307
    srgb = np.clip(np.array([red, green, blue]) / 255.0, 0.0, 1.0)
    linear = np.where(srgb <= 0.04045, srgb / 12.92, ((srgb + 0.055) / 1.055) ** 2.4)
    return tuple(float(v) for v in linear / linear.max())


def remove_lighting(scene: Any, lamps: list[Any]) -> None:
    """Remove lamp objects made by ``apply_lighting`` (and their light data)."""
    for obj in lamps:
        data = obj.data
        bpy.data.objects.remove(obj)
        if data is not None and data.users == 0:
            bpy.data.lights.remove(data)


def apply_lighting(scene: Any, lighting: Lighting, prefix: str) -> list[Any]:
    """Give ``scene`` a new world for ``lighting`` and add its lamps; returns the new lamp objects."""
    world = bpy.data.worlds.new(f"{prefix} World")
    world.use_nodes = True
    nodes, links = world.node_tree.nodes, world.node_tree.links
    background = nodes["Background"]
    if lighting.hdri:
        files = world_hdri_files()
        if lighting.hdri not in files:
            raise StudioAvatarError(f"unknown world HDRI {lighting.hdri!r}; Blender bundles {', '.join(files)}")
        coords = nodes.new("ShaderNodeTexCoord")
        mapping = nodes.new("ShaderNodeMapping")
        mapping.inputs["Rotation"].default_value = (0.0, 0.0, math.radians(lighting.hdri_rotation_deg))
        environment = nodes.new("ShaderNodeTexEnvironment")
        environment.image = bpy.data.images.load(str(files[lighting.hdri]), check_existing=True)
        tint = nodes.new("ShaderNodeVectorMath")      # colour x tint, per channel
        tint.operation = "MULTIPLY"
        tint.inputs[1].default_value = lighting.world_rgb
        links.new(coords.outputs["Generated"], mapping.inputs["Vector"])
        links.new(mapping.outputs["Vector"], environment.inputs["Vector"])
        links.new(environment.outputs["Color"], tint.inputs[0])
        links.new(tint.outputs["Vector"], background.inputs["Color"])
    else:
        background.inputs["Color"].default_value = (*lighting.world_rgb, 1.0)
    background.inputs["Strength"].default_value = lighting.hdri_strength
    old = scene.world
    scene.world = world
    if old is not None and old.users == 0 and old.name.startswith(prefix):
        bpy.data.worlds.remove(old)
    lamps = []
    for i, lamp in enumerate(lighting.lamps):
        data = bpy.data.lights.new(f"{prefix} Lamp {i}", lamp.kind)
        data.color = lamp.rgb
        data.energy = lamp.power_w
        if lamp.kind == "AREA":
            data.size = lamp.size_m
        else:
            data.shadow_soft_size = lamp.size_m
        obj = bpy.data.objects.new(f"{prefix} Lamp {i}", data)
        obj.location = lamp.position
        obj.rotation_euler = _look_rotation(-np.asarray(lamp.position, np.float64))   # aim at the head's centre
        scene.collection.objects.link(obj)
        lamps.append(obj)
    return lamps


def _look_rotation(direction: np.ndarray) -> tuple[float, float, float]:
    """Euler XYZ rotating an object's -Z axis onto ``direction`` (lights and cameras look along -Z)."""
    d = np.asarray(direction, np.float64)
    d = d / max(np.linalg.norm(d), 1e-12)
    pitch = math.acos(float(np.clip(-d[2], -1.0, 1.0)))
    yaw = math.atan2(-d[0], d[1])        # R_z(yaw) R_x(pitch) (0, 0, -1) = d
    return (pitch, 0.0, yaw)


def studio_lighting() -> Lighting:
    """A three-point softbox rig in a dim neutral world: the reference light of ``gt/studio.png``."""
    white = kelvin_to_rgb(5600)
    return Lighting(hdri=None, world_rgb=(0.08, 0.08, 0.08), hdri_strength=1.0, lamps=(
        Lamp("AREA", (-0.9, -1.2, 0.5), white, 22.0, 1.0),    # key: front left of the face (image left), above
        Lamp("AREA", (1.1, -1.0, 0.2), white, 8.0, 1.2),     # fill: front right, lower and weaker
        Lamp("AREA", (0.3, 1.2, 0.9), white, 11.0, 0.8),      # rim from behind
    ))


PRESETS: dict[str, Lighting] = {
    "studio": studio_lighting(),
    "sunset": Lighting(hdri="sunset", hdri_rotation_deg=60.0, hdri_strength=1.0),
    "forest": Lighting(hdri="forest", hdri_rotation_deg=200.0, hdri_strength=1.5),
    "city": Lighting(hdri="city", hdri_rotation_deg=300.0, hdri_strength=1.0),
}
