"""Reconstruct from the add-on: run the pipeline's stages in the worker and show where each stage stands.

Thin: the worker runs ``studio-avatar reconstruct VIDEO -o CAPTURE ...``; the
stage records are read back in-process from capture.json (``core.capture`` and
``core.pipeline`` need only json and numpy). A failed or cancelled run keeps
the stages it finished, so running again resumes. Scene objects are never
touched; only the scene's Studio Avatar state changes.
"""

import os

import bpy
from bpy.props import EnumProperty, IntProperty, StringProperty

from .. import idnames, strings
from ..core.errors import StudioAvatarError
from .jobs import WorkerJobMixin

def scene_state(scene):
    return getattr(scene, idnames.SCENE_PROPERTY)


def default_capture_dir(video: str) -> str:
    """``<video folder>/<video stem>_capture``."""
    stem = os.path.splitext(os.path.basename(video))[0]
    return os.path.join(os.path.dirname(video), f"{stem}_capture")


def capture_source_video(folder: str) -> str | None:
    """The video a capture folder was made from (None when ``folder`` holds no readable capture)."""
    from ..core.capture import Capture

    try:
        return Capture.open(folder).source.get("path")
    except StudioAvatarError:
        return None


def reconstruct_args(video: str, capture_dir: str, preset: str, texture_size: int, device: str,
                     texture_method: str = "AUTO", force: tuple[str, ...] = ()) -> list[str]:
    """Worker arguments for one run; the global --device comes before the command and wins over the preferences'."""
    from ..core.pipeline import PRESET_SETTINGS

    max_frames, preset_size = PRESET_SETTINGS[preset]
    args = ["--device", device.lower(), "reconstruct", video, "-o", capture_dir,
            "--max-frames", str(max_frames), "--texture-size", str(texture_size or preset_size),
            "--texture-method", texture_method.lower()]
    for stage in force:
        args += ["--force", stage]
    return args


def refresh_stage_rows(state) -> None:
    """Fill ``state.stages`` from the capture folder's stage records (empty when there is no capture yet)."""
    from ..core.capture import Capture
    from ..core.pipeline import RECONSTRUCTION

    state.stages.clear()
    folder = bpy.path.abspath(state.capture_dir)
    if not folder or not os.path.isfile(os.path.join(folder, "capture.json")):
        return
    try:
        rows = RECONSTRUCTION.status(Capture.open(folder))
    except StudioAvatarError:
        return
    known = {item[0] for item in strings.STAGE_STATUS_ITEMS}
    for row in rows:
        item = state.stages.add()
        item.name = row["stage"]
        item.status = row["status"] if row["status"] in known else "pending"
        item.duration_s = -1.0 if row["duration_s"] is None else float(row["duration_s"])
        item.error = (row["reason"] if row["status"] == "stale" else row["error"]) or ""
        item.warnings = len(row["warnings"] or ())


class ReconstructJobMixin(WorkerJobMixin):
    """Runs the reconstruction in the worker and writes the outcome into the scene's state.

    Registered operator classes must not be subclassed, so reconstruct and rerun_stage share this mixin.
    """

    bl_options = {"REGISTER"}
    job_title = strings.RECONSTRUCTING
    job_panel = idnames.PANEL_RECONSTRUCT

    def start_reconstruct(self, context, video, capture_dir, force=()):
        state = scene_state(context.scene)
        state.capture_dir, state.recon_error = capture_dir, ""
        self._scene_name = context.scene.name
        args = reconstruct_args(video, capture_dir, state.preset, state.texture_size, state.device, state.texture_method,
                                force)
        return self.run_job(context, args)

    def job_finished(self, context, worker):
        scene = bpy.data.scenes.get(self._scene_name)
        state = scene_state(scene) if scene else None
        if worker.succeeded and state is not None:
            state.capture_dir = worker.result["capture"]
        elif state is not None and not worker.cancel_requested:
            state.recon_error = worker.error_message()
        if state is not None:
            refresh_stage_rows(state)
        if not worker.succeeded:
            return self.report_failed_job(worker)
        stages = worker.result["stages"]
        self.report({"INFO"}, strings.MSG_RECONSTRUCTED.format(
            capture=worker.result["capture"], done=sum(s["status"] in ("done", "skipped") for s in stages),
            total=len(stages)))
        return {"FINISHED"}


class STUDIO_AVATAR_OT_reconstruct(ReconstructJobMixin, bpy.types.Operator):
    bl_idname = idnames.RECONSTRUCT
    bl_label = strings.RECONSTRUCT
    bl_description = strings.RECONSTRUCT_TIP

    filepath: StringProperty(name=strings.VIDEO_PATH, description=strings.RECONSTRUCT_VIDEO_TIP, subtype="FILE_PATH",
                             options={"SKIP_SAVE"})
    capture_dir: StringProperty(name=strings.CAPTURE_FOLDER, description=strings.RECONSTRUCT_CAPTURE_TIP,
                                subtype="DIR_PATH", options={"SKIP_SAVE"})
    preset: EnumProperty(name=strings.PRESET, description=strings.PRESET_TIP, items=strings.PRESET_ITEMS,
                         default="STANDARD", options={"SKIP_SAVE"})
    texture_size: IntProperty(name=strings.TEXTURE_SIZE, description=strings.TEXTURE_SIZE_TIP, default=0, min=0,
                              max=8192, options={"SKIP_SAVE"})
    texture_method: EnumProperty(name=strings.TEXTURE_METHOD, description=strings.TEXTURE_METHOD_TIP,
                                 items=strings.TEXTURE_METHOD_ITEMS, default="AUTO", options={"SKIP_SAVE"})
    device: EnumProperty(name=strings.RECON_DEVICE, description=strings.RECON_DEVICE_TIP,
                         items=strings.PREF_DEVICE_ITEMS, default="AUTO", options={"SKIP_SAVE"})

    def execute(self, context):
        state = scene_state(context.scene)
        # settings a script passes win and are kept on the scene (rerun_stage reuses them); the rest come from it
        for name in ("preset", "texture_size", "texture_method", "device"):
            if self.properties.is_property_set(name):
                setattr(state, name, getattr(self, name))
        video = bpy.path.abspath(self.filepath or state.video_path)
        if not video:
            self.report({"ERROR"}, strings.ERR_NO_VIDEO)
            return {"CANCELLED"}
        video = os.path.normpath(video)
        if self.filepath and self.filepath != state.video_path:
            state.video_path = self.filepath
        return self.start_reconstruct(context, video, self._capture_dir(state, video))

    def _capture_dir(self, state, video):
        """The operator's folder, else the scene's when it was made from this video, else one beside the video."""
        if self.capture_dir:
            return os.path.normpath(bpy.path.abspath(self.capture_dir))
        current = bpy.path.abspath(state.capture_dir)
        if current and capture_source_video(current) == os.path.realpath(video):
            return os.path.normpath(current)
        return default_capture_dir(video)


class STUDIO_AVATAR_OT_rerun_stage(ReconstructJobMixin, bpy.types.Operator):
    bl_idname = idnames.RERUN_STAGE
    bl_label = strings.RERUN_STAGE
    bl_description = strings.RERUN_STAGE_TIP

    stage: StringProperty(name="Stage", description=strings.STAGE_NAME_TIP)

    def execute(self, context):
        state = scene_state(context.scene)
        folder = bpy.path.abspath(state.capture_dir)
        if not folder:
            self.report({"ERROR"}, strings.ERR_NO_CAPTURE_DIR)
            return {"CANCELLED"}
        video = bpy.path.abspath(state.video_path) or capture_source_video(folder)
        if not video:
            self.report({"ERROR"}, strings.ERR_NO_VIDEO)
            return {"CANCELLED"}
        return self.start_reconstruct(context, os.path.normpath(video), os.path.normpath(folder), force=(self.stage,))


class STUDIO_AVATAR_OT_refresh_status(bpy.types.Operator):
    bl_idname = idnames.REFRESH_STATUS
    bl_label = strings.REFRESH_STATUS
    bl_description = strings.REFRESH_STATUS_TIP
    bl_options = {"REGISTER"}

    def execute(self, context):
        refresh_stage_rows(scene_state(context.scene))
        return {"FINISHED"}
