"""Operators that choose a capture video and read its facts through the worker process."""

import os

import bpy
from bpy.props import StringProperty

from .. import idnames, strings
from .jobs import WorkerJobMixin

VIDEO_GLOB = "*.mp4;*.mov;*.m4v;*.avi;*.mkv;*.webm;*.MP4;*.MOV"


class ProbeVideoMixin(WorkerJobMixin):
    """Probe ``filepath`` (or the scene's video) in the worker and store the facts on the scene.

    Registered operator classes must not be subclassed, so both operators share this mixin.
    """

    bl_options = {"REGISTER"}
    job_title = strings.PROBING

    filepath: StringProperty(name=strings.VIDEO_PATH, description=strings.VIDEO_PATH_TIP, subtype="FILE_PATH",
                             options={"SKIP_SAVE"})

    def execute(self, context):
        state = getattr(context.scene, idnames.SCENE_PROPERTY)
        path = bpy.path.abspath(self.filepath or state.video_path)
        if not path:
            self.report({"ERROR"}, strings.ERR_NO_VIDEO)
            return {"CANCELLED"}
        if self.filepath:
            state.video_path = self.filepath
        state.probe_status, state.probe_error = "RUNNING", ""
        self._scene_name = context.scene.name
        return self.run_job(context, ["probe", os.path.normpath(path)])

    def job_finished(self, context, worker):
        scene = bpy.data.scenes.get(self._scene_name)
        state = getattr(scene, idnames.SCENE_PROPERTY) if scene else None
        if worker.succeeded:
            if state is not None:
                state.video.fill(worker.result)
                state.probe_status = "OK"
            self.report({"INFO"}, f"{os.path.basename(worker.result['path'])}: {worker.result['frames']} frames")
            return {"FINISHED"}
        if worker.cancel_requested:
            if state is not None:
                state.probe_status = "NONE"
            self.report({"WARNING"}, strings.MSG_CANCELLED)
            return {"CANCELLED"}
        message = worker.error_message()
        if state is not None:
            state.probe_status, state.probe_error = "ERROR", message
        self.report({"ERROR"}, message)
        return {"CANCELLED"}


class STUDIO_AVATAR_OT_probe_video(ProbeVideoMixin, bpy.types.Operator):
    bl_idname = idnames.PROBE_VIDEO
    bl_label = strings.PROBE_VIDEO
    bl_description = strings.PROBE_VIDEO_TIP


class STUDIO_AVATAR_OT_select_video(ProbeVideoMixin, bpy.types.Operator):
    bl_idname = idnames.SELECT_VIDEO
    bl_label = strings.SELECT_VIDEO
    bl_description = strings.SELECT_VIDEO_TIP

    filter_glob: StringProperty(default=VIDEO_GLOB, options={"HIDDEN"})
    filter_movie: bpy.props.BoolProperty(default=True, options={"HIDDEN"})

    def invoke(self, context, event):
        context.window_manager.fileselect_add(self)
        return {"RUNNING_MODAL"}
