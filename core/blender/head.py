"""Turns a ``HeadModel`` into Blender data: a rigged, shape-keyed, UV-mapped head with separate eyes.

This module owns the one conversion from the model frame (metres, +y up, +z
forward, +x the subject's left) to Blender's (+z up, the face looking along
-y, i.e. toward the default front view), and the Blender layout of a head:

- a new collection holding everything below;
- an armature with bones root, neck, jaw, eye_L, eye_R (FLAME's tree) at the
  model's joints for the given identity;
- the head mesh (identity baked into its rest positions, UV layer "UVMap",
  smooth shading, one vertex group per bone with the model's skin weights, an
  Armature modifier, one shape key per expression), parented to the armature;
- one mesh per eye, parented rigidly to its eye bone.

Every mesh has an integer point attribute ``studio_avatar_vertex``: the index
of each Blender vertex in the HeadModel, so later stages can map back.

It never modifies existing objects or data: every datablock is new and gets
Blender's automatic ".001" suffix where a name is taken. It computes nothing
about the model itself (core/head does); it needs numpy but not torch, so it
runs in a plain Blender.
"""

from __future__ import annotations

from typing import Any

import bpy
import numpy as np
from mathutils import Matrix, Vector

from ..head.model import HeadModel, HeadModelError

# model joint -> Blender bone; the _L/_R suffixes let Blender's mirror tools pair the eyes
BONE_NAMES = {"root": "root", "neck": "neck", "jaw": "jaw", "eye_left": "eye_L", "eye_right": "eye_R"}
EYE_OBJECTS = {"eye_left": "Eye_L", "eye_right": "Eye_R"}   # eye region (= joint) -> object name
UV_LAYER = "UVMap"
VERTEX_INDEX_ATTRIBUTE = "studio_avatar_vertex"
BASIS_KEY = "Basis"
FLAME_SLIDER_RANGE = 3.0       # FLAME expressions are signed PCA coefficients, typically within +-3

# (x, y, z) model -> (x, -z, y) Blender: a +90 degree rotation about x, so handedness is kept
MODEL_TO_BLENDER = np.array([[1, 0, 0], [0, 0, -1], [0, 1, 0]], np.float32)
_UP = np.array([0, 0, 1], np.float32)          # Blender frame
_FORWARD = np.array([0, -1, 0], np.float32)    # where the face looks in Blender
_BONE_DIRECTIONS = {                           # tail direction per joint, Blender frame
    "jaw": (_FORWARD - _UP) / np.sqrt(2),      # forward-down, toward the chin
    "eye_left": _FORWARD,
    "eye_right": _FORWARD,
}
_EYE_BONE_SCALE = 0.4                          # eye bones are shorter than the others


def to_blender(points_m: np.ndarray) -> np.ndarray:
    """(..., 3) model-frame points or directions -> Blender frame (same units)."""
    return np.asarray(points_m, np.float32) @ MODEL_TO_BLENDER.T


def shaped_vertices_m(model: HeadModel, shape: Any = None) -> np.ndarray:
    """(V, 3) rest vertices with identity coefficients ``shape`` (the first S' <= S) applied, model frame.

    The same as ``model.vertices(shape=...)`` at zero pose and expression, in
    numpy so that building a head in Blender needs no torch.
    """
    if shape is None:
        return np.asarray(model.template_m, np.float32)
    shape = np.asarray(shape, np.float32).reshape(-1)
    if shape.shape[0] > model.num_shape:
        raise HeadModelError(f"{shape.shape[0]} shape coefficients given; the {model.source} head model has {model.num_shape}")
    offsets = np.einsum("vck,k->vc", model.shape_basis[:, :, : shape.shape[0]], shape)
    return (model.template_m + offsets).astype(np.float32)


def build_head(model: HeadModel, shape: Any = None, name: str = "Studio Avatar Head",
               collection: Any = None, num_expressions: int | None = None) -> dict[str, Any]:
    """Build ``model`` with identity ``shape`` as a rigged head in a new collection.

    collection: the parent of the new collection (default: the scene's master
    collection); it must be in the current view layer, because creating bones
    needs the armature's edit mode. num_expressions: how many expressions
    become shape keys (the first N; default all). Leaves Blender in object
    mode with the previously active object still active. Returns
    {"collection", "armature", "mesh", "eyes": [eye objects]}.
    """
    num_expressions = model.num_expression if num_expressions is None else min(num_expressions, model.num_expression)
    shaped_m = shaped_vertices_m(model, shape)
    verts = to_blender(shaped_m)
    joints = to_blender(model.joint_regressor @ shaped_m)
    deltas = np.einsum("rc,vce->vre", MODEL_TO_BLENDER, model.expression_basis[:, :, :num_expressions])
    names = list(model.expression_names[:num_expressions])
    part, eye_regions = _vertex_parts(model)
    polygon_part = _polygon_parts(model, part)
    signed = model.source.startswith("flame")

    if bpy.context.mode != "OBJECT":
        bpy.ops.object.mode_set(mode="OBJECT")
    head_collection = bpy.data.collections.new(name)
    (collection or bpy.context.scene.collection).children.link(head_collection)

    head_vertices = verts[part == 0]
    bone_length = 0.25 * float(np.ptp(head_vertices[:, 2]))
    armature = _armature(f"{name} Rig", model, joints, bone_length, head_collection)
    bone_names = [BONE_NAMES.get(joint, joint) for joint in model.joint_names]

    def part_object(part_id: int, object_name: str, origin: np.ndarray) -> tuple[Any, np.ndarray]:
        index = np.flatnonzero(part == part_id)
        obj = _mesh_object(object_name, verts[index] - origin, _local_polygons(model, polygon_part == part_id, index),
                           model.polygon_uv[polygon_part == part_id], model.uv, index, head_collection)
        obj.location = origin
        return obj, index

    mesh, index = part_object(0, name, np.zeros(3, np.float32))
    _add_shape_keys(mesh, verts[index], deltas[index], names, signed)
    _add_vertex_groups(mesh, model.skin_weights[index], bone_names)
    mesh.modifiers.new("Armature", "ARMATURE").object = armature
    mesh.parent = armature

    eyes = []
    for part_id, region in enumerate(eye_regions, start=1):
        joint = model.joint_names.index(region)
        eye, index = part_object(part_id, EYE_OBJECTS[region], joints[joint])
        moving = [k for k in range(num_expressions) if np.any(deltas[index, :, k])]
        if moving:
            _add_shape_keys(eye, verts[index] - joints[joint], deltas[index][:, :, moving], [names[k] for k in moving], signed)
        _parent_to_bone(eye, armature, bone_names[joint])
        eyes.append(eye)
    return {"collection": head_collection, "armature": armature, "mesh": mesh, "eyes": eyes}


def _vertex_parts(model: HeadModel) -> tuple[np.ndarray, list[str]]:
    """(V,) int8 part per vertex (0 = head, i = i-th eye region) and the eye regions present."""
    part = np.zeros(model.num_vertices, np.int8)
    regions = []
    for region in EYE_OBJECTS:
        mask = model.regions.get(region)
        if mask is None or not mask.any() or region not in model.joint_names:
            continue
        if np.any(part[mask]):
            raise HeadModelError(f"the {model.source} head model's eye regions overlap")
        regions.append(region)
        part[mask] = len(regions)
    if not np.any(part == 0):
        raise HeadModelError(f"the {model.source} head model has no vertices outside its eyes")
    return part, regions


def _polygon_parts(model: HeadModel, part: np.ndarray) -> np.ndarray:
    """(P,) part of each polygon; every corner must lie in the same part (eyes are separate meshes)."""
    polygons = model.polygons
    corner_part = part[polygons]
    polygon_part = corner_part[:, 0]
    mixed = np.any((polygons >= 0) & (corner_part != polygon_part[:, None]), axis=1)
    if mixed.any():
        raise HeadModelError(f"{int(mixed.sum())} polygons of the {model.source} head model join an eye region to "
                             "other vertices; eyes must be separate parts of the mesh")
    return polygon_part


def _local_polygons(model: HeadModel, selected: np.ndarray, index: np.ndarray) -> np.ndarray:
    """The selected polygons with vertex indices renumbered into ``index`` order (-1 padding kept)."""
    local = np.full(model.num_vertices, -1, np.int32)
    local[index] = np.arange(len(index), dtype=np.int32)
    polygons = model.polygons[selected]
    return np.where(polygons >= 0, local[polygons], -1)


def _mesh_object(name: str, verts: np.ndarray, polygons: np.ndarray, polygon_uv: np.ndarray, uv: np.ndarray,
                 model_index: np.ndarray, collection: Any) -> Any:
    """A new mesh object from (P, 4) -1-padded polygons, with UVs and the model-vertex-index attribute."""
    corners = polygons >= 0
    loop_starts = np.concatenate([[0], np.cumsum(corners.sum(1))[:-1]]).astype(np.int32)
    mesh = bpy.data.meshes.new(name)
    mesh.vertices.add(len(verts))
    mesh.vertices.foreach_set("co", np.ascontiguousarray(verts, np.float32).ravel())
    mesh.loops.add(int(corners.sum()))
    mesh.loops.foreach_set("vertex_index", np.ascontiguousarray(polygons[corners], np.int32))
    mesh.polygons.add(len(polygons))
    mesh.polygons.foreach_set("loop_start", loop_starts)
    mesh.update(calc_edges=True)
    uv_layer = mesh.uv_layers.new(name=UV_LAYER)
    uv_layer.uv.foreach_set("vector", np.ascontiguousarray(uv[polygon_uv[corners]], np.float32).ravel())
    attribute = mesh.attributes.new(VERTEX_INDEX_ATTRIBUTE, "INT", "POINT")
    attribute.data.foreach_set("value", np.ascontiguousarray(model_index, np.int32))
    if mesh.validate(verbose=False):
        raise HeadModelError(f"the head model's polygons for {name!r} are not a valid mesh (Blender had to repair them)")
    mesh.shade_smooth()
    obj = bpy.data.objects.new(name, mesh)
    collection.objects.link(obj)
    return obj


def _add_shape_keys(obj: Any, basis: np.ndarray, deltas: np.ndarray, names: list[str], signed: bool) -> None:
    """Basis plus one relative shape key per (V, 3, K) delta column, in the object's frame."""
    obj.shape_key_add(name=BASIS_KEY, from_mix=False)
    for k, key_name in enumerate(names):
        key = obj.shape_key_add(name=key_name, from_mix=False)
        key.data.foreach_set("co", np.ascontiguousarray(basis + deltas[:, :, k], np.float32).ravel())
        if signed:
            key.slider_min, key.slider_max = -FLAME_SLIDER_RANGE, FLAME_SLIDER_RANGE


def _add_vertex_groups(obj: Any, weights: np.ndarray, bone_names: list[str]) -> None:
    """One vertex group per bone from (V, J) weights; zero weights are not stored.

    Blender's API sets one weight for a list of vertices per call, so vertices
    are batched by equal weight (rigid regions become a single call).
    """
    for j, bone in enumerate(bone_names):
        group = obj.vertex_groups.new(name=bone)
        column = weights[:, j]
        weighted = np.flatnonzero(column > 0)
        values, which = np.unique(column[weighted], return_inverse=True)
        order = np.argsort(which, kind="stable")
        batches = np.split(weighted[order], np.cumsum(np.bincount(which, minlength=len(values)))[:-1])
        for value, batch in zip(values, batches):
            group.add(batch.tolist(), float(value), "REPLACE")


def _armature(name: str, model: HeadModel, joints: np.ndarray, bone_length: float, collection: Any) -> Any:
    """A new armature object with one bone per joint, heads at ``joints`` (Blender frame), FLAME's parents."""
    armature = bpy.data.objects.new(name, bpy.data.armatures.new(name))
    armature.show_in_front = True
    collection.objects.link(armature)
    view_layer = bpy.context.view_layer
    previous = view_layer.objects.active
    view_layer.objects.active = armature
    bpy.ops.object.mode_set(mode="EDIT")
    try:
        bones = []
        for joint, parent, head in zip(model.joint_names, model.joint_parents, joints):
            bone = armature.data.edit_bones.new(BONE_NAMES.get(joint, joint))
            length = bone_length * (_EYE_BONE_SCALE if joint in EYE_OBJECTS else 1.0)
            bone.head = Vector(head)
            bone.tail = Vector(head + _BONE_DIRECTIONS.get(joint, _UP) * length)
            if parent >= 0:
                bone.parent = bones[parent]
            bones.append(bone)
    finally:
        bpy.ops.object.mode_set(mode="OBJECT")
        view_layer.objects.active = previous
    for pose_bone in armature.pose.bones:
        pose_bone.rotation_mode = "XYZ"      # Euler angles: what the Avatar panel's jaw/eye/neck sliders show
    return armature


def _parent_to_bone(obj: Any, armature: Any, bone_name: str) -> None:
    """Parent ``obj`` rigidly to a bone of ``armature``, keeping its current world placement at rest."""
    bone = armature.data.bones[bone_name]
    # a bone child hangs from the bone's tail; the parent inverse cancels the rest transform
    rest = armature.matrix_world @ bone.matrix_local @ Matrix.Translation((0.0, bone.length, 0.0))
    obj.parent = armature
    obj.parent_type = "BONE"
    obj.parent_bone = bone_name
    obj.matrix_parent_inverse = rest.inverted()
