"""The avatar's Blender materials: skin from the capture's albedo, procedural eyes, plain mouth parts.

All are Principled BSDF node trees sized for a head modelled in metres. Image
colour spaces are always set explicitly, because Blender reads 16-bit PNGs as
linear float data by default: the albedo is sRGB, every data map Non-Color.
This module only makes new materials and images; it never changes existing
ones and knows nothing about captures or head models (core/blender/avatar.py
decides what goes where).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any

import bpy

from ..errors import InputError

SRGB, NON_COLOR = "sRGB", "Non-Color"

# skin: light scatters furthest in red; Blender's radius is per channel, times the scale (metres)
SKIN_SUBSURFACE_WEIGHT = 0.15
SKIN_SUBSURFACE_RADIUS = (1.0, 0.2, 0.1)
SKIN_SUBSURFACE_SCALE_M = 0.005
SKIN_ROUGHNESS = 0.5
LIPS_ROUGHNESS = 0.38              # lips are moister and shinier than the rest of the face
SKIN_IOR = 1.4
SKIN_SPECULAR_LEVEL = 0.5

# eyes: angles from the eye's forward axis (-Y of the eye object, whose origin is the eyeball's centre)
IRIS_RADIUS_DEG = 26.0             # an iris of ~12 mm diameter on an eyeball of ~12-15 mm radius
PUPIL_RADIUS_DEG = 9.0
LIMBUS_WIDTH_DEG = 2.5             # the darker ring around the iris
SCLERA_COLOUR = (0.80, 0.76, 0.71)         # linear RGB
LIMBUS_COLOUR = (0.035, 0.025, 0.018)
IRIS_COLOUR = (0.16, 0.08, 0.035)          # brown
PUPIL_COLOUR = (0.004, 0.004, 0.004)
EYE_ROUGHNESS = 0.35
CORNEA_IOR = 1.376


@dataclass(frozen=True)
class PlainLook:
    """A single-colour Principled material (teeth, tongue, mouth interior)."""

    colour: tuple[float, float, float]     # linear RGB base colour
    roughness: float
    subsurface_weight: float


def load_image(path: str | os.PathLike, name: str, colour_space: str) -> Any:
    """A new image datablock reading ``path``, in ``colour_space`` (SRGB or NON_COLOR)."""
    try:
        image = bpy.data.images.load(os.fspath(path), check_existing=False)
    except RuntimeError as exc:
        raise InputError(f"{path}: Blender cannot read this image ({exc}); re-run the stage that wrote it") from None
    image.name = name
    image.colorspace_settings.name = colour_space
    return image


def skin_material(name: str, albedo: Any, data_maps: dict[str, Any], uv_layer: str, lips_attribute: str) -> Any:
    """Skin: albedo (sRGB) as base colour, subsurface scattering, roughness lowered where ``lips_attribute`` is 1.

    ``data_maps`` (label -> Non-Color image) are added as unconnected, labelled
    image nodes on the same UVs, for artists (e.g. where the texture was seen).
    """
    material, tree, bsdf = _principled(name, {
        "Subsurface Weight": SKIN_SUBSURFACE_WEIGHT, "Subsurface Radius": SKIN_SUBSURFACE_RADIUS,
        "Subsurface Scale": SKIN_SUBSURFACE_SCALE_M, "IOR": SKIN_IOR, "Specular IOR Level": SKIN_SPECULAR_LEVEL,
        "Coat Weight": 0.0,
    })
    nodes, links = tree.nodes, tree.links
    uv = _node(nodes, "ShaderNodeUVMap", (-900, 0))
    uv.uv_map = uv_layer
    texture = _image_node(nodes, albedo, "Albedo", (-600, 200))
    links.new(uv.outputs["UV"], texture.inputs["Vector"])
    links.new(texture.outputs["Color"], bsdf.inputs["Base Color"])

    lips = _node(nodes, "ShaderNodeAttribute", (-600, -150))
    lips.attribute_type, lips.attribute_name, lips.label = "GEOMETRY", lips_attribute, "Lips mask"
    roughness = _node(nodes, "ShaderNodeMapRange", (-350, -150))
    roughness.label = "Roughness (lips shinier)"
    roughness.clamp = True
    _set_inputs(roughness, {"From Min": 0.0, "From Max": 1.0, "To Min": SKIN_ROUGHNESS, "To Max": LIPS_ROUGHNESS})
    links.new(lips.outputs["Fac"], roughness.inputs["Value"])
    links.new(roughness.outputs["Result"], bsdf.inputs["Roughness"])

    for row, (label, image) in enumerate(data_maps.items()):
        data = _image_node(nodes, image, f"{label} (data)", (-600, -450 - 300 * row))
        links.new(uv.outputs["UV"], data.inputs["Vector"])
    return material


def eye_material(name: str) -> Any:
    """Eyeball: white sclera, limbal ring, brown iris and black pupil around the object's -Y axis, under a glossy cornea.

    Procedural from object coordinates, so it needs no texture and the iris
    follows the eye object as its bone turns. The object's origin must be the
    eyeball's centre (core/blender/head.py places eye objects there).
    """
    material, tree, bsdf = _principled(name, {
        "Roughness": EYE_ROUGHNESS, "Subsurface Weight": 0.05, "Subsurface Radius": SKIN_SUBSURFACE_RADIUS,
        "Subsurface Scale": 0.001, "Coat Weight": 1.0, "Coat Roughness": 0.02, "Coat IOR": CORNEA_IOR,
    })
    nodes, links = tree.nodes, tree.links
    coordinates = _node(nodes, "ShaderNodeTexCoord", (-1000, 0))
    direction = _node(nodes, "ShaderNodeVectorMath", (-800, 0))
    direction.operation = "NORMALIZE"
    facing = _node(nodes, "ShaderNodeVectorMath", (-600, 0))
    facing.operation, facing.label = "DOT_PRODUCT", "Cosine to the gaze axis"
    facing.inputs[1].default_value = (0.0, -1.0, 0.0)
    links.new(coordinates.outputs["Object"], direction.inputs[0])
    links.new(direction.outputs["Vector"], facing.inputs[0])

    ramp = _node(nodes, "ShaderNodeValToRGB", (-400, 0))
    ramp.label = "Sclera / iris / pupil"
    stops = [  # (angle from the axis in degrees, colour), from the sclera inward: the ramp runs over the cosine
        (IRIS_RADIUS_DEG + LIMBUS_WIDTH_DEG, SCLERA_COLOUR),
        (IRIS_RADIUS_DEG, LIMBUS_COLOUR),
        (IRIS_RADIUS_DEG - LIMBUS_WIDTH_DEG, IRIS_COLOUR),
        (PUPIL_RADIUS_DEG + 1.0, IRIS_COLOUR),
        (PUPIL_RADIUS_DEG, PUPIL_COLOUR),
    ]
    elements = ramp.color_ramp.elements
    elements[0].position, elements[0].color = 0.0, (*SCLERA_COLOUR, 1.0)
    elements[1].position, elements[1].color = 1.0, (*PUPIL_COLOUR, 1.0)
    for angle_deg, colour in stops:
        elements.new(math.cos(math.radians(angle_deg))).color = (*colour, 1.0)
    links.new(facing.outputs["Value"], ramp.inputs["Fac"])
    links.new(ramp.outputs["Color"], bsdf.inputs["Base Color"])
    material.diffuse_color = (*SCLERA_COLOUR, 1.0)
    return material


def plain_material(name: str, look: PlainLook) -> Any:
    """One colour, roughness and a little subsurface scattering (skin-like radii)."""
    material, _, _ = _principled(name, {
        "Base Color": (*look.colour, 1.0), "Roughness": look.roughness, "Subsurface Weight": look.subsurface_weight,
        "Subsurface Radius": SKIN_SUBSURFACE_RADIUS, "Subsurface Scale": SKIN_SUBSURFACE_SCALE_M,
        "Specular IOR Level": SKIN_SPECULAR_LEVEL, "Coat Weight": 0.0,
    })
    material.diffuse_color = (*look.colour, 1.0)
    return material


def _principled(name: str, values: dict[str, Any]) -> tuple[Any, Any, Any]:
    """A new material whose node tree is exactly a Principled BSDF into the output, with ``values`` set."""
    material = bpy.data.materials.new(name)
    material.use_nodes = True
    tree = material.node_tree
    tree.nodes.clear()
    output = _node(tree.nodes, "ShaderNodeOutputMaterial", (350, 0))
    bsdf = _node(tree.nodes, "ShaderNodeBsdfPrincipled", (0, 0))
    tree.links.new(bsdf.outputs["BSDF"], output.inputs["Surface"])
    _set_inputs(bsdf, values)
    return material, tree, bsdf


def _node(nodes: Any, kind: str, location: tuple[float, float]) -> Any:
    node = nodes.new(kind)
    node.location = location
    return node


def _image_node(nodes: Any, image: Any, label: str, location: tuple[float, float]) -> Any:
    node = _node(nodes, "ShaderNodeTexImage", location)
    node.image, node.label = image, label
    return node


def _set_inputs(node: Any, values: dict[str, Any]) -> None:
    for socket, value in values.items():
        node.inputs[socket].default_value = value
