"""A built head or avatar in the open scene: finding it, grouping its expression keys, putting it back at rest.

The one avatar lookup of the Blender side: the add-on's Avatar panel, Reset
Pose and relighting, and the command-line render and export all use
``find_avatar`` (``require_avatar`` when there must be one). A head
(``core/blender/head.py``) is recognised by what ``build_head`` writes, not by
names the user may change: an armature with the bones of ``BONE_NAMES`` and,
among its children, a mesh with shape keys parented to the armature itself
(the head; the eyes hang from their bones). ``build_avatar`` marks the
collection of an avatar built from a capture with ``CAPTURE_PROPERTY`` (and
the fit it used, ``FIT_PROPERTY``); those come before heads added without a
capture. This module never creates, renames or deletes data.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mathutils import Vector

from ..errors import InputError
from .avatar import CAPTURE_PROPERTY, FIT_PROPERTY
from .head import BONE_NAMES

# expression shape keys by face region: (group id, name prefix), in panel order; ARKit names start with these
EXPRESSION_REGIONS = (
    ("brows", "brow"), ("eyes", "eye"), ("cheeks", "cheek"), ("nose", "nose"),
    ("mouth", "mouth"), ("jaw", "jaw"), ("tongue", "tongue"),
)
OTHER_EXPRESSIONS = "other"              # group of every other key (FLAME's expression_000, ...)
POSE_BONES = ("jaw", "eye_L", "eye_R", "neck")   # the bones an artist poses, in panel order
ROTATION_PROPERTIES = {"QUATERNION": "rotation_quaternion", "AXIS_ANGLE": "rotation_axis_angle"}  # else Euler


@dataclass(frozen=True)
class Avatar:
    armature: Any                        # the rig (bones of BONE_NAMES)
    head: Any                            # the head mesh, with the expression shape keys
    eyes: tuple[Any, ...]                # the eye meshes (children of the eye bones)

    @property
    def collection(self) -> Any:
        return self.armature.users_collection[0] if self.armature.users_collection else None

    @property
    def name(self) -> str:
        """The avatar's collection's name (the rig's when the user moved it out of every collection)."""
        return self.collection.name if self.collection is not None else self.armature.name

    @property
    def capture(self) -> str:
        """The capture folder the avatar was built from ("" for a head added without a capture)."""
        return self._collection_property(CAPTURE_PROPERTY)

    @property
    def fit_sha256(self) -> str:
        """The hash of the fit the avatar was built from ("" for a head added without a capture)."""
        return self._collection_property(FIT_PROPERTY)

    def _collection_property(self, name: str) -> str:
        collection = self.collection
        return str(collection.get(name, "")) if collection is not None else ""

    @property
    def meshes(self) -> tuple[Any, ...]:
        return (self.head, *self.eyes)


def avatar_of(obj: Any) -> Avatar | None:
    """The avatar ``obj`` belongs to (its rig, head or an eye), or None."""
    while obj is not None:
        if obj.type == "ARMATURE":
            return _as_avatar(obj)
        obj = obj.parent
    return None


def find_avatar(scene: Any, active: Any = None) -> Avatar | None:
    """The avatar of ``active`` when it belongs to one in ``scene``; else the first in ``scene``: avatars built from
    a capture before heads added without one, each in rig-name order. None when the scene has neither."""
    avatar = avatar_of(active) if active is not None and active.name in scene.objects else None
    if avatar is not None:
        return avatar
    avatars = (_as_avatar(obj) for obj in scene.objects if obj.type == "ARMATURE")
    return min((avatar for avatar in avatars if avatar is not None),
               key=lambda avatar: (not avatar.capture, avatar.armature.name), default=None)


def require_avatar(scene: Any, source: str) -> Avatar:
    """``find_avatar(scene)``, or an InputError naming ``source`` (the .blend) when it holds none."""
    avatar = find_avatar(scene)
    if avatar is None:
        raise InputError(f"{source}: holds no Studio Avatar (no armature with the bones {', '.join(BONE_NAMES.values())} "
                         "and a shape-keyed head mesh); use a .blend written by `studio-avatar build`")
    return avatar


def shown_avatar(context: Any) -> Avatar | None:
    """The avatar the add-on's Avatar panel shows and its operators act on: the active object's, else the first."""
    view_layer = getattr(context, "view_layer", None)
    return find_avatar(context.scene, view_layer.objects.active if view_layer else None)


def _as_avatar(armature: Any) -> Avatar | None:
    if not set(BONE_NAMES.values()) <= set(armature.data.bones.keys()):
        return None
    meshes = [child for child in armature.children if child.type == "MESH"]
    heads = [m for m in meshes if m.parent_type == "OBJECT" and m.data.shape_keys is not None]
    if not heads:
        return None
    return Avatar(armature, heads[0], tuple(m for m in meshes if m.parent_type == "BONE"))


def head_centre(avatar: Avatar) -> tuple[float, float, float]:
    """World-frame centre of the head mesh's bounding box: where relighting aims its lamps."""
    corners = [avatar.head.matrix_world @ Vector(corner) for corner in avatar.head.bound_box]
    return tuple(sum(c[axis] for c in corners) / len(corners) for axis in range(3))


def expression_groups(names: list[str]) -> list[tuple[str, list[str]]]:
    """(group id, names) per face region that has keys, in EXPRESSION_REGIONS order, the rest last as "other"."""
    groups: dict[str, list[str]] = {group: [] for group, _ in EXPRESSION_REGIONS}
    groups[OTHER_EXPRESSIONS] = []
    for name in names:
        group = next((group for group, prefix in EXPRESSION_REGIONS if name.startswith(prefix)), OTHER_EXPRESSIONS)
        groups[group].append(name)
    return [(group, members) for group, members in groups.items() if members]


def expression_keys(avatar: Avatar) -> list[Any]:
    """The head's expression shape keys (every key block but the basis)."""
    return list(avatar.head.data.shape_keys.key_blocks[1:])


def rotation_property(pose_bone: Any) -> str:
    """The pose bone property that holds its rotation in its current rotation mode."""
    return ROTATION_PROPERTIES.get(pose_bone.rotation_mode, "rotation_euler")


def reset_pose(avatar: Avatar) -> None:
    """Neutral expression (every shape key of the head and eyes at 0) and every bone at rest."""
    for mesh in avatar.meshes:
        if mesh.data.shape_keys is not None:
            for key in mesh.data.shape_keys.key_blocks[1:]:
                key.value = 0.0
    for pose_bone in avatar.armature.pose.bones:
        pose_bone.location = (0.0, 0.0, 0.0)
        pose_bone.rotation_quaternion = (1.0, 0.0, 0.0, 0.0)
        pose_bone.rotation_euler = (0.0, 0.0, 0.0)
        pose_bone.rotation_axis_angle = (0.0, 0.0, 1.0, 0.0)
        pose_bone.scale = (1.0, 1.0, 1.0)
