"""Add > Mesh > Studio Avatar Head: load a head model (open head or FLAME) and build it in the scene.

Thin: it reads the preferences, asks ``core.head`` for the model and
``core.blender.head`` to build it, then places and selects the result. The
model loaders are imported when the operator runs, so registering the add-on
stays cheap and a missing loader dependency becomes a reported error.
"""

import os

import bpy
from bpy.props import EnumProperty, IntProperty

from .. import idnames, strings
from ..core.blender.head import build_head
from ..core.errors import InputError, StudioAvatarError
from ..panels.preferences import get_preferences
from .jobs import cache_dir


class STUDIO_AVATAR_OT_add_head(bpy.types.Operator):
    bl_idname = idnames.ADD_HEAD
    bl_label = strings.ADD_HEAD
    bl_description = strings.ADD_HEAD_TIP
    bl_options = {"REGISTER", "UNDO"}

    source: EnumProperty(name=strings.HEAD_SOURCE, description=strings.HEAD_SOURCE_TIP,
                         items=strings.HEAD_SOURCE_ITEMS, default="OPEN")
    num_expressions: IntProperty(name=strings.NUM_EXPRESSIONS, description=strings.NUM_EXPRESSIONS_TIP,
                                 default=0, min=0, soft_max=300)

    @classmethod
    def poll(cls, context):
        return context.mode == "OBJECT"

    def execute(self, context):
        wm = context.window_manager
        wm.progress_begin(0, 2)
        try:
            model = self.load_model(context)
            wm.progress_update(1)
            built = build_head(model, collection=context.collection, num_expressions=self.num_expressions or None)
        except StudioAvatarError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        except ImportError as exc:  # a dependency of the model loaders missing from this Blender's Python
            self.report({"ERROR"}, strings.ERR_MISSING_PACKAGE.format(name=exc.name))
            return {"CANCELLED"}
        finally:
            wm.progress_end()

        built["armature"].location = context.scene.cursor.location
        for obj in context.selected_objects:
            obj.select_set(False)
        new_objects = (built["armature"], built["mesh"], *built["eyes"])
        for obj in new_objects:
            obj.select_set(True)
        context.view_layer.objects.active = built["mesh"]
        keys = built["mesh"].data.shape_keys
        self.report({"INFO"}, strings.MSG_HEAD_ADDED.format(
            name=built["mesh"].name, vertices=sum(len(obj.data.vertices) for obj in new_objects[1:]),
            expressions=len(keys.key_blocks) - 1 if keys else 0))
        return {"FINISHED"}

    def load_model(self, context):
        if self.source == "FLAME":
            prefs = get_preferences(context)
            if not prefs.flame_model_path:
                raise InputError(strings.ERR_NO_FLAME)
            model_path = bpy.path.abspath(prefs.flame_model_path)
            if not os.path.isfile(model_path):
                raise InputError(strings.ERR_FLAME_MISSING.format(path=model_path))
            from ..core.head.flame import load_flame

            uv_path = bpy.path.abspath(prefs.flame_uv_path) if prefs.flame_uv_path else None
            return load_flame(model_path, uv_template_path=uv_path, num_expression=self.num_expressions or None)
        from ..core.head import open_head

        return open_head.get_open_head(cache_dir(context))

def draw_add_menu(self, context):
    """Entry in View3D > Add > Mesh."""
    self.layout.operator(idnames.ADD_HEAD, text=strings.ADD_HEAD_MENU, icon="USER")


MENU_ENTRIES = (("VIEW3D_MT_mesh_add", draw_add_menu),)
