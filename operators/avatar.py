"""Reset Pose: the avatar shown in the Avatar panel back to a neutral expression with its bones at rest."""

import bpy

from .. import idnames, strings
from ..core.blender.rig import reset_pose, shown_avatar


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
