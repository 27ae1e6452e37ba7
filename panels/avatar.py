"""The "Avatar" and "Lighting" panels of the Studio Avatar sidebar tab. Each section is a small draw function.

The Avatar panel shows the avatar of the active object, else the first one in
the scene (``core/blender/rig.py`` recognises it): its texture maps, its
expression sliders grouped by face region in collapsible boxes, the jaw, eye
and neck rotations, and Reset Pose. The Lighting panel picks a relighting
preset with rotation and strength, applies it, and says which one is active.
"""

import os

import bpy

from .. import idnames, strings
from ..core.blender.lighting import LIGHTING_TAG, active_lighting
from ..core.blender.rig import POSE_BONES, expression_groups, expression_keys, rotation_property, shown_avatar
from . import thumbnails
from .sidebar import StudioAvatarPanel

GROUP_LABELS = {group: label for group, label, _ in strings.EXPRESSION_GROUPS}
PRESET_LABELS = {preset: label for preset, label, _ in strings.LIGHTING_PRESET_ITEMS}


def draw_texture_maps(layout, avatar):
    """The skin material's images: thumbnails of their files, and name and size in pixels."""
    box = layout.box()
    box.label(text=strings.AVATAR_TEXTURES, icon="TEXTURE")
    material = avatar.head.material_slots[0].material if avatar.head.material_slots else None
    nodes = material.node_tree.nodes if material is not None and material.use_nodes else ()
    images = [node for node in nodes if node.type == "TEX_IMAGE" and node.image is not None]
    if not images:
        box.label(text=strings.AVATAR_NO_TEXTURES, icon="INFO")
    files = [bpy.path.abspath(node.image.filepath) for node in images if node.image.filepath and not node.image.packed_file]
    icons = [icon for icon in thumbnails.icon_ids(files) if icon]     # 0 until Blender has loaded a preview
    if icons:
        grid = box.grid_flow(columns=min(len(icons), 3), even_columns=True, align=True)
        for icon in icons:
            grid.template_icon(icon_value=icon, scale=4.0)
    for node in images:
        width, height = node.image.size
        box.label(text=f"{node.label or node.name}: {node.image.name} ({width} × {height})", icon="IMAGE_DATA")


def draw_expressions(layout, avatar, groups_open):
    """One collapsible box of sliders per face region (brows, eyes, ..., the rest)."""
    keys = {key.name: key for key in expression_keys(avatar)}
    if not keys:
        layout.label(text=strings.AVATAR_NO_EXPRESSIONS, icon="INFO")
        return
    layout.label(text=strings.AVATAR_EXPRESSIONS, icon="SHAPEKEY_DATA")
    for group, names in expression_groups(list(keys)):
        box = layout.box()
        is_open = getattr(groups_open, group)
        box.prop(groups_open, group, text=f"{GROUP_LABELS[group]} ({len(names)})", emboss=False,
                 icon="DISCLOSURE_TRI_DOWN" if is_open else "DISCLOSURE_TRI_RIGHT")
        if is_open:
            col = box.column(align=True)
            for name in names:
                col.prop(keys[name], "value", text=name, slider=True)


def draw_pose(layout, avatar):
    """The rotation of the jaw, eye and neck bones, in each bone's rotation mode."""
    box = layout.box()
    box.label(text=strings.AVATAR_POSE, icon="ARMATURE_DATA")
    for bone_name in POSE_BONES:
        pose_bone = avatar.armature.pose.bones.get(bone_name)
        if pose_bone is not None:
            box.column(align=True).prop(pose_bone, rotation_property(pose_bone), text=strings.POSE_BONE_LABELS[bone_name])


class STUDIO_AVATAR_PT_avatar(StudioAvatarPanel, bpy.types.Panel):
    bl_idname = idnames.PANEL_AVATAR
    bl_label = strings.AVATAR_PANEL

    def draw(self, context):
        layout = self.layout
        avatar = shown_avatar(context)
        if avatar is None:
            layout.label(text=strings.NO_AVATAR, icon="INFO")
            return
        state = getattr(context.scene, idnames.SCENE_PROPERTY)
        layout.label(text=avatar.head.name, icon="OUTLINER_OB_ARMATURE")
        if avatar.capture:
            layout.label(text=os.path.basename(os.path.normpath(avatar.capture)), icon="FILE_FOLDER")
        draw_texture_maps(layout, avatar)
        draw_expressions(layout, avatar, state.expression_groups_open)
        draw_pose(layout, avatar)
        layout.operator(idnames.RESET_POSE, text=strings.RESET_POSE, icon="LOOP_BACK")


class STUDIO_AVATAR_PT_lighting(StudioAvatarPanel, bpy.types.Panel):
    bl_idname = idnames.PANEL_LIGHTING
    bl_label = strings.LIGHTING_PANEL

    def draw(self, context):
        layout = self.layout
        scene = context.scene
        state = getattr(scene, idnames.SCENE_PROPERTY)
        layout.prop(state, "lighting_preset")
        col = layout.column(align=True)
        col.enabled = state.lighting_preset != "ORIGINAL"
        col.prop(state, "lighting_rotation")
        col.prop(state, "lighting_strength")
        op = layout.operator(idnames.APPLY_LIGHTING, text=strings.APPLY_LIGHTING, icon="LIGHT_AREA")
        op.preset, op.rotation, op.strength = state.lighting_preset, state.lighting_rotation, state.lighting_strength

        active = active_lighting(scene)
        if active is None:
            layout.label(text=strings.LIGHTING_ORIGINAL, icon="WORLD")
        else:
            layout.label(text=strings.LIGHTING_ACTIVE.format(preset=PRESET_LABELS.get(active, active)), icon="WORLD")
        user_lamps = sum(1 for obj in scene.objects if obj.type == "LIGHT" and not obj.get(LIGHTING_TAG))
        if active is not None and user_lamps:
            layout.label(text=strings.LIGHTING_USER_LAMPS.format(count=user_lamps), icon="LIGHT")
