"""Reset Pose: the avatar shown in the Avatar panel back to a neutral expression with its bones at rest."""

import bpy

from .. import idnames, strings
from ..core.blender.rig import find_avatar, reset_pose


def shown_avatar(context):
    """The avatar the Avatar panel shows: the active object's, else the first in the scene."""
    view_layer = getattr(context, "view_layer", None)
    return find_avatar(context.scene, view_layer.objects.active if view_layer else None)


class STUDIO_AVATAR_OT_reset_pose(bpy.types.Operator):
    bl_idname = idnames.RESET_POSE
    bl_label = strings.RESET_POSE
    bl_description = strings.RESET_POSE_TIP
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context):
        avatar = shown_avatar(context)
        if avatar is None:
            self.report({"ERROR"}, strings.ERR_NO_AVATAR)
            return {"CANCELLED"}
        reset_pose(avatar)
        self.report({"INFO"}, strings.MSG_POSE_RESET.format(name=avatar.head.name))
        return {"FINISHED"}
