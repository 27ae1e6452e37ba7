"""Lighting setups for Cycles renders of a head: Blender's bundled world HDRIs and lamps with blackbody colours.

``Lighting`` describes a setup as data (JSON-able); ``apply_lighting`` adds it
to a scene as a new world and new lamp objects (named with a prefix, nothing
existing is changed or removed) and ``remove_lighting`` takes those lamps away
again. The synthetic captures draw random setups; ``PRESETS`` are the fixed
looks the demo, the benchmarks and the add-on's relighting use. Positions are
in Blender's world frame relative to the head's centre (the origin unless a
centre is given), the face looking along -Y and Z up.

Relighting the open scene (the add-on) goes through ``set_scene_lighting`` and
``restore_scene_lighting``: the add-on's world, lamps and the "Studio Avatar
Lighting" collection carry the custom property ``LIGHTING_TAG``, and only data
with that tag is ever replaced or removed; the user's world is remembered on
the scene (``USER_WORLD_PROPERTY``, which also keeps it from being orphaned)
and given back on restore. The user's own lamps stay as they are and add to
the preset's light.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import bpy
import numpy as np

from ..errors import InputError, StudioAvatarError

STUDIO_LIGHT_DIR = ("studiolights", "world")
LIGHTING_COLLECTION = "Studio Avatar Lighting"    # Blender adds ".001" if the user has a collection of that name
LIGHTING_TAG = "studio_avatar_lighting"            # custom property on the add-on's world, lamps and collection
USER_WORLD_PROPERTY = "studio_avatar_user_world"   # scene custom property: the user's world while ours is active


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

    def adjusted(self, rotation_deg: float = 0.0, strength: float = 1.0) -> Lighting:
        """This setup turned by ``rotation_deg`` about the vertical axis (counter-clockwise seen from above: the
        HDRI and the lamp positions alike), its world strength and lamp power times ``strength``."""
        turn = math.radians(rotation_deg)
        cos, sin = math.cos(turn), math.sin(turn)
        lamps = tuple(dataclasses.replace(lamp, position=(cos * x - sin * y, sin * x + cos * y, z),
                                          power_w=lamp.power_w * strength)
                      for lamp in self.lamps for x, y, z in [lamp.position])
        # the mapping node turns the lookup direction: the environment itself turns the other way
        return dataclasses.replace(self, hdri_rotation_deg=self.hdri_rotation_deg - rotation_deg,
                                   hdri_strength=self.hdri_strength * strength, lamps=lamps)


def remove_lighting(scene: Any, lamps: list[Any]) -> None:
    """Remove lamp objects made by ``apply_lighting`` (and their light data)."""
    for obj in lamps:
        data = obj.data
        bpy.data.objects.remove(obj)
        if data is not None and data.users == 0:
            bpy.data.lights.remove(data)


def apply_lighting(scene: Any, lighting: Lighting, prefix: str, collection: Any = None,
                   center: tuple[float, float, float] = (0.0, 0.0, 0.0)) -> list[Any]:
    """Give ``scene`` a new world for ``lighting`` and add its lamps; returns the new lamp objects.

    collection: where the lamps go (default the scene's master collection);
    center: the head's centre in the world frame, which the lamps surround and aim at.
    """
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
        obj.location = np.asarray(lamp.position, np.float64) + center
        obj.rotation_euler = _look_rotation(-np.asarray(lamp.position, np.float64))   # aim at the head's centre
        (collection or scene.collection).objects.link(obj)
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
    """A three-point softbox rig in a dim neutral world: the reference light of ``gt/studio.png``.

    Like a photographer's white-balanced, grey-card-exposed studio shot, the render shows the albedo itself: the
    lamps are neutral (the renders' white) and bright enough that a flat grey albedo renders to its own value at
    the median cheek and forehead pixel of a frontal view (measured on a fitted head: 0.96-0.98 per channel). A
    warm lamp or a dim rig would make every avatar read darker and yellower than its skin.
    """
    white = (1.0, 1.0, 1.0)
    return Lighting(hdri=None, world_rgb=(0.08, 0.08, 0.08), hdri_strength=1.0, lamps=(
        Lamp("AREA", (-0.9, -1.2, 0.5), white, 24.0, 1.0),    # key: front left of the face (image left), above
        Lamp("AREA", (1.1, -1.0, 0.2), white, 8.7, 1.2),     # fill: front right, lower and weaker
        Lamp("AREA", (0.3, 1.2, 0.9), white, 12.0, 0.8),      # rim from behind
    ))


PRESETS: dict[str, Lighting] = {
    "studio": studio_lighting(),
    "sunset": Lighting(hdri="sunset", hdri_rotation_deg=60.0, hdri_strength=1.0),
    "forest": Lighting(hdri="forest", hdri_rotation_deg=200.0, hdri_strength=1.5),
    "city": Lighting(hdri="city", hdri_rotation_deg=300.0, hdri_strength=1.0),
    "courtyard": Lighting(hdri="courtyard"),
    "interior": Lighting(hdri="interior"),
    "night": Lighting(hdri="night", hdri_strength=2.0),
    "studio_hdri": Lighting(hdri="studio"),          # Blender's studio world HDRI ("studio" is the lamp rig)
    "sunrise": Lighting(hdri="sunrise"),
}


def active_lighting(scene: Any) -> str | None:
    """The preset the add-on lit ``scene`` with, or None when the scene shows its own world."""
    world = scene.world
    return world.get(LIGHTING_TAG) if world is not None else None


def set_scene_lighting(scene: Any, preset: str, rotation_deg: float = 0.0, strength: float = 1.0,
                       center: tuple[float, float, float] = (0.0, 0.0, 0.0)) -> list[Any]:
    """Light ``scene`` with ``PRESETS[preset]`` turned by ``rotation_deg`` and scaled by ``strength``.

    Replaces only the add-on's previous lighting (tagged world and lamps); the
    world the scene showed before the add-on's first one is remembered for
    ``restore_scene_lighting``. Lamps go into the "Studio Avatar Lighting"
    collection around ``center``. Nothing is rendered. Returns the new lamps.
    """
    if preset not in PRESETS:
        raise InputError(f"unknown lighting preset {preset!r}; choose from {', '.join(PRESETS)}")
    if active_lighting(scene) is None:
        _remember_user_world(scene, scene.world)
    else:
        _drop_our_world(scene)
    _remove_lamps(scene)
    lamps = apply_lighting(scene, PRESETS[preset].adjusted(rotation_deg, strength), f"Studio Avatar {preset}",
                           collection=_lighting_collection(scene), center=center)
    scene.world[LIGHTING_TAG] = preset
    for lamp in lamps:
        lamp[LIGHTING_TAG] = preset
    return lamps


def restore_scene_lighting(scene: Any) -> None:
    """Take the add-on's lighting out of ``scene`` and give it back the world it had before."""
    _remove_lamps(scene)
    collection = _find_lighting_collection(scene)
    if collection is not None and not collection.all_objects:
        bpy.data.collections.remove(collection)
    if active_lighting(scene) is not None:
        _drop_our_world(scene)
        scene.world = scene.get(USER_WORLD_PROPERTY)
    if USER_WORLD_PROPERTY in scene:
        del scene[USER_WORLD_PROPERTY]


def _remember_user_world(scene: Any, world: Any) -> None:
    if world is None:
        scene.pop(USER_WORLD_PROPERTY, None)
    else:
        scene[USER_WORLD_PROPERTY] = world     # an ID reference: it also keeps the world from being orphaned


def _drop_our_world(scene: Any) -> None:
    """Unset the add-on's world from ``scene``; delete it unless something else (another scene) uses it."""
    world, scene.world = scene.world, None
    if world.users == 0:
        bpy.data.worlds.remove(world)


def _find_lighting_collection(scene: Any) -> Any:
    return next((c for c in scene.collection.children_recursive if c.get(LIGHTING_TAG)), None)


def _lighting_collection(scene: Any) -> Any:
    collection = _find_lighting_collection(scene)
    if collection is None:
        collection = bpy.data.collections.new(LIGHTING_COLLECTION)
        collection[LIGHTING_TAG] = True
        scene.collection.children.link(collection)
    return collection


def _remove_lamps(scene: Any) -> None:
    remove_lighting(scene, [obj for obj in scene.objects if obj.type == "LIGHT" and obj.get(LIGHTING_TAG)])
