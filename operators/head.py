"""Add > Mesh > Studio Avatar Head: prepare a head model in the worker, then build it in the scene.

Thin: the worker process (``studio-avatar head info``) builds or loads the
model (open head or FLAME; torch, mediapipe and the model sources stay out of
Blender's UI process) and caches it; this operator reads the cached folder with
``HeadModel.load`` (numpy + safetensors), asks ``core.blender.head`` to build it,
then places and selects the result.
"""

import os

import bpy
from bpy.props import EnumProperty, IntProperty

from .. import idnames, strings
from ..core.blender.head import build_head
from ..core.errors import InputError, StudioAvatarError
from ..preferences import get_preferences
from .jobs import WorkerJobMixin


class STUDIO_AVATAR_OT_add_head(WorkerJobMixin, bpy.types.Operator):
    bl_idname = idnames.ADD_HEAD
    bl_label = strings.ADD_HEAD
    bl_description = strings.ADD_HEAD_TIP
    bl_options = {"REGISTER", "UNDO"}

    job_title = strings.PREPARING_HEAD

    source: EnumProperty(name=strings.HEAD_SOURCE, description=strings.HEAD_SOURCE_TIP,
                         items=strings.HEAD_SOURCE_ITEMS, default="OPEN")
    num_expressions: IntProperty(name=strings.NUM_EXPRESSIONS, description=strings.NUM_EXPRESSIONS_TIP,
                                 default=0, min=0, soft_max=300)

    @classmethod
    def poll(cls, context):
        return context.mode == "OBJECT"

    def execute(self, context):
        try:
            args = ["head", "info", *self.flame_arguments(context)]
        except InputError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        self._scene_name = context.scene.name
        self._collection_name = context.collection.name
        return self.run_job(context, args)

    def flame_arguments(self, context):
        if self.source != "FLAME":
            return []
        prefs = get_preferences(context)
        if not prefs.flame_model_path:
            raise InputError(strings.ERR_NO_FLAME)
        model_path = bpy.path.abspath(prefs.flame_model_path)
        if not os.path.isfile(model_path):
            raise InputError(strings.ERR_FLAME_MISSING.format(path=model_path))
        args = ["--flame", model_path]
        if prefs.flame_uv_path:
            args += ["--flame-uv", bpy.path.abspath(prefs.flame_uv_path)]
        return args

    def job_finished(self, context, worker):
        if not worker.succeeded:
            return self.report_failed_job(worker)
        scene = bpy.data.scenes.get(self._scene_name) or context.scene
        collection = bpy.data.collections.get(self._collection_name) or scene.collection
        try:
            model = load_cached_head(worker.result["cache_folder"])
            built = build_head(model, collection=collection, num_expressions=self.num_expressions or None)
        except StudioAvatarError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}

        new_objects = place_and_select(context, scene, built)
        keys = built["mesh"].data.shape_keys
        self.report({"INFO"}, strings.MSG_HEAD_ADDED.format(
            name=built["mesh"].name, vertices=sum(len(obj.data.vertices) for obj in new_objects[1:]),
            expressions=len(keys.key_blocks) - 1 if keys else 0))
        return {"FINISHED"}


def load_cached_head(folder):
    """The head model a worker prepared in ``folder`` (numpy + safetensors, no torch)."""
    from ..core.head.model import HeadModel

    try:
        return HeadModel.load(folder)
    except ImportError as exc:  # safetensors missing from this Blender's Python
        raise StudioAvatarError(strings.ERR_MISSING_PACKAGE.format(name=exc.name)) from None


def place_and_select(context, scene, built):
    """Put a built head's rig at the 3D cursor and make its objects the selection (the head mesh active).

    Returns the new objects, the armature first.
    """
    built["armature"].location = scene.cursor.location
    view_layer = context.view_layer
    for obj in view_layer.objects:
        obj.select_set(False)
    new_objects = (built["armature"], built["mesh"], *built["eyes"])
    for obj in new_objects:
        obj.select_set(True)
    view_layer.objects.active = built["mesh"]
    return new_objects


def draw_add_menu(self, context):
    """Entry in View3D > Add > Mesh."""
    self.layout.operator(idnames.ADD_HEAD, text=strings.ADD_HEAD_MENU, icon="USER")


MENU_ENTRIES = (("VIEW3D_MT_mesh_add", draw_add_menu),)
