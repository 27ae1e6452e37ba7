"""Build Avatar from Capture: the capture's avatar (rigged head, fitted identity, materials) in the open scene.

Thin: ``core.avatar_inputs`` checks the capture here at once (numpy only);
the worker (``studio-avatar head info``) prepares the head model the fit used
(torch and the model sources stay out of Blender's UI process); then
``core.blender.avatar`` builds the avatar into a new collection, which is
placed at the 3D cursor and selected. Existing objects are never touched.
"""

import os

import bpy
from bpy.props import BoolProperty, StringProperty

from .. import idnames, strings
from ..core.avatar_inputs import read_avatar_inputs
from ..core.blender.avatar import build_avatar
from ..core.errors import StudioAvatarError
from .head import load_cached_head, place_and_select
from .jobs import WorkerJobMixin


class STUDIO_AVATAR_OT_build_avatar(WorkerJobMixin, bpy.types.Operator):
    bl_idname = idnames.BUILD_AVATAR
    bl_label = strings.BUILD_AVATAR
    bl_description = strings.BUILD_AVATAR_TIP
    bl_options = {"REGISTER", "UNDO"}

    job_title = strings.PREPARING_HEAD

    capture_dir: StringProperty(name=strings.CAPTURE_FOLDER, description=strings.CAPTURE_FOLDER_TIP, subtype="DIR_PATH",
                                options={"SKIP_SAVE"})
    # what the file browser fills in; kept for scripts written before capture_dir
    directory: StringProperty(name=strings.CAPTURE_FOLDER, description=strings.CAPTURE_FOLDER_TIP, subtype="DIR_PATH")
    pack_images: BoolProperty(name=strings.PACK_IMAGES, description=strings.PACK_IMAGES_TIP, default=False)
    filter_folder: BoolProperty(default=True, options={"HIDDEN", "SKIP_SAVE"})

    @classmethod
    def poll(cls, context):
        return context.mode == "OBJECT"

    def invoke(self, context, event):
        if self.capture_dir:   # the Reconstruct panel's button names the scene's capture: no browser needed
            return self.execute(context)
        context.window_manager.fileselect_add(self)
        return {"RUNNING_MODAL"}

    def execute(self, context):
        folder = bpy.path.abspath(self.capture_dir or self.directory)
        if not folder:
            self.report({"ERROR"}, strings.ERR_NO_CAPTURE)
            return {"CANCELLED"}
        try:
            self._inputs = read_avatar_inputs(os.path.normpath(folder))
        except StudioAvatarError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        args = ["head", "info", "--no-landmarks"]  # the fit already made the landmark embedding; building needs none
        if self._inputs.flame_model:
            args += ["--flame", self._inputs.flame_model]
            if self._inputs.flame_uv:
                args += ["--flame-uv", self._inputs.flame_uv]
        self._scene_name = context.scene.name
        self._collection_name = context.collection.name
        return self.run_job(context, args)

    def job_finished(self, context, worker):
        if not worker.succeeded:
            return self.report_failed_job(worker)
        scene = bpy.data.scenes.get(self._scene_name) or context.scene
        collection = bpy.data.collections.get(self._collection_name) or scene.collection
        inputs = self._inputs
        try:
            model = load_cached_head(worker.result["cache_folder"])
            built = build_avatar(model, inputs, collection=collection, pack=self.pack_images)
        except StudioAvatarError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        place_and_select(context, scene, built)
        for message in inputs.skipped:
            self.report({"WARNING"}, message)
        self.report({"INFO"}, strings.MSG_AVATAR_BUILT.format(
            name=built["collection"].name, capture=os.path.basename(inputs.capture), albedo=inputs.albedo_kind))
        return {"FINISHED"}
