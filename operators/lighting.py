"""Apply Lighting: relight the open scene with a preset at once, or give it back its own world.

Thin: ``core.blender.lighting`` replaces only the add-on's own (tagged) world
and lamps; the lamps surround the head of the avatar shown in the Avatar
panel (the origin when there is none). Nothing is rendered, so switching is
instant; the operator is undoable and its Adjust Last Operation panel retunes
rotation and strength live.
"""

import bpy
from bpy.props import EnumProperty, FloatProperty

from .. import idnames, strings
from ..core.blender.lighting import restore_scene_lighting, set_scene_lighting
from ..core.blender.rig import head_centre, shown_avatar

ORIGINAL = "ORIGINAL"


class STUDIO_AVATAR_OT_apply_lighting(bpy.types.Operator):
    bl_idname = idnames.APPLY_LIGHTING
    bl_label = strings.APPLY_LIGHTING
    bl_description = strings.APPLY_LIGHTING_TIP
    bl_options = {"REGISTER", "UNDO"}

    preset: EnumProperty(name=strings.LIGHTING_PRESET, description=strings.LIGHTING_PRESET_TIP,
                         items=strings.LIGHTING_PRESET_ITEMS, default="studio")
    rotation: FloatProperty(name=strings.LIGHTING_ROTATION, description=strings.LIGHTING_ROTATION_TIP,
                            default=0.0, min=-360.0, max=360.0, soft_min=-180.0, soft_max=180.0)
    strength: FloatProperty(name=strings.LIGHTING_STRENGTH, description=strings.LIGHTING_STRENGTH_TIP,
                            default=1.0, min=0.0, soft_max=4.0)

    def execute(self, context):
        scene = context.scene
        state = getattr(scene, idnames.SCENE_PROPERTY)
        state.lighting_preset, state.lighting_rotation, state.lighting_strength = self.preset, self.rotation, self.strength
        if self.preset == ORIGINAL:
            restore_scene_lighting(scene)
            self.report({"INFO"}, strings.MSG_LIGHTING_RESTORED)
            return {"FINISHED"}
        avatar = shown_avatar(context)
        set_scene_lighting(scene, self.preset, self.rotation, self.strength,
                           center=head_centre(avatar) if avatar else (0.0, 0.0, 0.0))
        self.report({"INFO"}, strings.MSG_LIGHTING_APPLIED.format(preset=self.preset))
        return {"FINISHED"}
