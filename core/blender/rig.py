"""A built head or avatar in the open scene: finding it, grouping its expression keys, putting it back at rest.

For the add-on's Avatar panel and Reset Pose. A head (``core/blender/head.py``)
is recognised by its structure, not by names the user may change: an armature
with the bones of ``BONE_NAMES`` and, among its children, a mesh with shape
keys parented to the armature itself (the head; the eyes hang from their
bones). Avatars built from a capture also carry ``CAPTURE_PROPERTY`` on their
collection. This module never creates, renames or deletes data.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mathutils import Vector

from .avatar import CAPTURE_PROPERTY
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
    def capture(self) -> str:
        """The capture folder the avatar was built from ("" for a head added without a capture)."""
        collection = self.collection
        return str(collection.get(CAPTURE_PROPERTY, "")) if collection is not None else ""

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
    """The avatar of ``active`` when it belongs to one in ``scene``, else the first in ``scene`` by rig name."""
    avatar = avatar_of(active) if active is not None and active.name in scene.objects else None
    if avatar is not None:
        return avatar
    rigs = sorted((obj for obj in scene.objects if obj.type == "ARMATURE"), key=lambda obj: obj.name)
    return next((avatar for avatar in map(_as_avatar, rigs) if avatar is not None), None)


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
