"""Batch Videos from the add-on: the worker's ``batch`` over a folder of videos, with the Batch Render settings.

The batch driver runs in the worker's Python; its tasks that need bpy (build,
render, export) run in this Blender executable (``--blender``). Nothing in the
open file changes except the scene's Studio Avatar state (the last gallery).
"""

import os

import bpy
from bpy.props import EnumProperty, StringProperty

from .. import idnames, strings
from ..properties import RENDER_LIGHTING_ITEMS
from .jobs import WorkerJobMixin

VIDEO_EXTENSIONS = (".mp4", ".mov", ".m4v", ".avi", ".mkv", ".webm")


def folder_videos(folder: str) -> list[str]:
    """The videos directly in ``folder``, sorted by name."""
    if not os.path.isdir(folder):
        return []
    return sorted(os.path.join(folder, name) for name in os.listdir(folder)
                  if name.lower().endswith(VIDEO_EXTENSIONS) and os.path.isfile(os.path.join(folder, name)))


def batch_args(videos: list[str], output: str, state, preset: str, exports: str, ray_address: str,
               blender: str) -> list[str]:
    """The worker's command line: the videos, the scene's texture and render settings, the exports."""
    lightings = ",".join(name for name, _, _ in RENDER_LIGHTING_ITEMS if name in state.render_lightings)
    args = ["batch", *videos, "-o", output, "--preset", preset, "--texture-method", state.texture_method.lower(),
            f"--lightings={lightings}", f"--views={state.render_views}", f"--expressions={state.render_expressions}",
            "--engine", state.render_engine, "--resolution", str(state.render_resolution),
            "--samples", str(state.render_samples), f"--export={exports}"]
    if state.texture_size:
        args += ["--texture-size", str(state.texture_size)]
    if ray_address:
        args += ["--ray-address", ray_address]
    if blender:
        args += ["--blender", blender]
    return args


class STUDIO_AVATAR_OT_batch_videos(WorkerJobMixin, bpy.types.Operator):
    bl_idname = idnames.BATCH_VIDEOS
    bl_label = strings.BATCH_VIDEOS
    bl_description = strings.BATCH_VIDEOS_TIP
    bl_options = {"REGISTER"}

    job_title = strings.BATCHING
    job_panel = idnames.PANEL_RENDER_EXPORT

    # empty strings take the scene's Render & Export settings
    videos_dir: StringProperty(name=strings.BATCH_VIDEOS_DIR, description=strings.BATCH_VIDEOS_DIR_TIP,
                               subtype="DIR_PATH", options={"SKIP_SAVE"})
    output_dir: StringProperty(name=strings.BATCH_OUTPUT_DIR, description=strings.BATCH_OUTPUT_DIR_TIP,
                               subtype="DIR_PATH", options={"SKIP_SAVE"})
    preset: EnumProperty(name=strings.PRESET, description=strings.PRESET_TIP, items=strings.PRESET_ITEMS,
                         default="STANDARD", options={"SKIP_SAVE"})
    exports: StringProperty(name=strings.BATCH_EXPORTS, description=strings.BATCH_EXPORTS_TIP, options={"SKIP_SAVE"})
    ray_address: StringProperty(name=strings.BATCH_RAY_ADDRESS, description=strings.BATCH_RAY_ADDRESS_TIP,
                                options={"SKIP_SAVE"})

    def execute(self, context):
        state = getattr(context.scene, idnames.SCENE_PROPERTY)
        chosen = {name: getattr(self, name) if self.properties.is_property_set(name) else getattr(state, f"batch_{name}", "")
                  for name in ("videos_dir", "output_dir", "exports", "ray_address")}
        preset = self.preset if self.properties.is_property_set("preset") else state.preset
        if not chosen["videos_dir"] or not chosen["output_dir"]:
            self.report({"ERROR"}, strings.ERR_NO_BATCH_PATHS)
            return {"CANCELLED"}
        folder = os.path.normpath(bpy.path.abspath(chosen["videos_dir"]))
        videos = folder_videos(folder)
        if not videos:
            self.report({"ERROR"}, strings.ERR_NO_VIDEOS.format(folder=folder))
            return {"CANCELLED"}
        output = os.path.normpath(bpy.path.abspath(chosen["output_dir"]))
        self._scene_name = context.scene.name
        # under the bpy module binary_path is empty: the worker's own Python has bpy then
        return self.run_job(context, batch_args(videos, output, state, preset, chosen["exports"], chosen["ray_address"],
                                                bpy.app.binary_path or ""))

    def job_finished(self, context, worker):
        if not worker.succeeded:
            return self.report_failed_job(worker)
        result = worker.result
        scene = bpy.data.scenes.get(self._scene_name)
        counts = {"done": result["done"], "total": len(result["videos"]), "failed": result["failed"]}
        if scene is not None:
            state = getattr(scene, idnames.SCENE_PROPERTY)
            state.last_batch_index, state.last_batch_result = result["index"], strings.MSG_BATCH_RESULT.format(**counts)
        self.report({"WARNING"} if result["failed"] else {"INFO"}, strings.MSG_BATCHED.format(**counts, index=result["index"]))
        return {"FINISHED"}
