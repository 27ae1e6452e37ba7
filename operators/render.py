"""Batch Render and Export from the add-on: the worker's ``render`` and ``export`` on the open file.

The worker opens a .blend of its own: the open file itself when it is saved
and unchanged, else a copy written into the cache folder
(``save_as_mainfile(copy=True)``: the open file, its path and its dirty state
stay as they are). Nothing in the scene is created or changed except the
scene's Studio Avatar state (the last contact sheet).
"""

import os

import bpy
from bpy.props import BoolProperty, EnumProperty, IntProperty, StringProperty

from .. import idnames, strings
from ..properties import RENDER_LIGHTING_ITEMS
from .jobs import WorkerJobMixin, cache_dir

RENDER_INPUT = "render_input.blend"
EXPORT_INPUT = "export_input.blend"
EXPORT_EXTENSIONS = {"GLB": ".glb", "FBX": ".fbx", "NPZ": ".npz"}


def blend_for_worker(context, name: str) -> str:
    """The open file as a worker can read it: its own path when saved and unchanged, else a fresh copy in the cache."""
    if bpy.data.filepath and not bpy.data.is_dirty:
        return bpy.data.filepath
    path = os.path.join(cache_dir(context), name)
    bpy.ops.wm.save_as_mainfile(filepath=path, copy=True, check_existing=False)
    return path


def resolve_output_dir(context, path: str) -> str:
    """``path`` made absolute; a relative or empty one in an unsaved file goes into the cache folder."""
    if not path or (path.startswith("//") and not bpy.data.filepath):
        return os.path.join(cache_dir(context), "renders")
    return os.path.normpath(bpy.path.abspath(path))


class STUDIO_AVATAR_OT_batch_render(WorkerJobMixin, bpy.types.Operator):
    bl_idname = idnames.BATCH_RENDER
    bl_label = strings.BATCH_RENDER
    bl_description = strings.BATCH_RENDER_TIP
    bl_options = {"REGISTER"}
    needs_bpy = True

    job_title = strings.RENDERING
    job_panel = idnames.PANEL_RENDER_EXPORT

    # empty strings and unset values take the scene's Render & Export settings
    output_dir: StringProperty(name=strings.RENDER_DIR, description=strings.RENDER_DIR_TIP, subtype="DIR_PATH",
                               options={"SKIP_SAVE"})
    lightings: StringProperty(name=strings.RENDER_LIGHTINGS, description=strings.RENDER_LIGHTINGS_TEXT_TIP,
                              options={"SKIP_SAVE"})
    views: StringProperty(name=strings.RENDER_VIEWS, description=strings.RENDER_VIEWS_TIP, options={"SKIP_SAVE"})
    expressions: StringProperty(name=strings.RENDER_EXPRESSIONS, description=strings.RENDER_EXPRESSIONS_TIP,
                                options={"SKIP_SAVE"})
    engine: EnumProperty(name=strings.RENDER_ENGINE, description=strings.RENDER_ENGINE_TIP,
                         items=strings.RENDER_ENGINE_ITEMS, default="CYCLES", options={"SKIP_SAVE"})
    resolution: IntProperty(name=strings.RENDER_RESOLUTION, description=strings.RENDER_RESOLUTION_TIP, default=512,
                            min=16, max=8192, options={"SKIP_SAVE"})
    samples: IntProperty(name=strings.RENDER_SAMPLES, description=strings.RENDER_SAMPLES_TIP, default=16, min=1,
                         max=4096, options={"SKIP_SAVE"})

    def execute(self, context):
        state = getattr(context.scene, idnames.SCENE_PROPERTY)
        lightings = self.lightings or ",".join(name for name, _, _ in RENDER_LIGHTING_ITEMS
                                               if name in state.render_lightings)
        chosen = {name: getattr(self, name) if self.properties.is_property_set(name) else getattr(state, f"render_{name}")
                  for name in ("engine", "resolution", "samples")}
        args = ["render", blend_for_worker(context, RENDER_INPUT),
                "-o", resolve_output_dir(context, self.output_dir or state.render_dir),
                f"--lightings={lightings}", f"--views={self.views or state.render_views}",   # "=": "-30,0" is no option
                f"--expressions={self.expressions or state.render_expressions}",
                "--engine", chosen["engine"], "--resolution", str(chosen["resolution"]),
                "--samples", str(chosen["samples"]), "--overwrite"]
        self._scene_name = context.scene.name
        return self.run_job(context, args)

    def job_finished(self, context, worker):
        if not worker.succeeded:
            return self.report_failed_job(worker)
        scene = bpy.data.scenes.get(self._scene_name)
        if scene is not None:
            getattr(scene, idnames.SCENE_PROPERTY).last_render = worker.result["contact_sheet"] or ""
        images = worker.result["images"]
        self.report({"INFO"}, strings.MSG_RENDERED.format(
            count=len(images), folder=os.path.dirname(images[0]) if images else ""))
        return {"FINISHED"}


class STUDIO_AVATAR_OT_export(WorkerJobMixin, bpy.types.Operator):
    bl_idname = idnames.EXPORT_AVATAR
    bl_label = strings.EXPORT_AVATAR
    bl_description = strings.EXPORT_AVATAR_TIP
    bl_options = {"REGISTER"}
    needs_bpy = True

    job_title = strings.EXPORTING
    job_panel = idnames.PANEL_RENDER_EXPORT

    filepath: StringProperty(name="File Path", description=strings.EXPORT_PATH_TIP, subtype="FILE_PATH",
                             options={"SKIP_SAVE"})
    format: EnumProperty(name=strings.EXPORT_FORMAT, description=strings.EXPORT_FORMAT_TIP,
                         items=strings.EXPORT_FORMAT_ITEMS, default="GLB")
    overwrite: BoolProperty(name=strings.EXPORT_OVERWRITE, description=strings.EXPORT_OVERWRITE_TIP, default=False,
                            options={"SKIP_SAVE"})
    check_existing: BoolProperty(default=True, options={"HIDDEN", "SKIP_SAVE"})

    def invoke(self, context, event):
        if not self.filepath:
            stem = os.path.splitext(bpy.data.filepath)[0] if bpy.data.filepath else "avatar"
            self.filepath = stem + EXPORT_EXTENSIONS[self.format]
        self.overwrite = True   # the file browser marks an existing file and the user chose it anyway
        context.window_manager.fileselect_add(self)
        return {"RUNNING_MODAL"}

    def execute(self, context):
        if not self.filepath:
            self.report({"ERROR"}, strings.ERR_NO_EXPORT_PATH)
            return {"CANCELLED"}
        output = bpy.path.ensure_ext(os.path.normpath(bpy.path.abspath(self.filepath)), EXPORT_EXTENSIONS[self.format])
        args = ["export", blend_for_worker(context, EXPORT_INPUT), "-o", output]
        if self.overwrite:
            args.append("--overwrite")
        return self.run_job(context, args)

    def job_finished(self, context, worker):
        if not worker.succeeded:
            return self.report_failed_job(worker)
        self.report({"INFO"}, strings.MSG_EXPORTED.format(path=worker.result["path"]))
        return {"FINISHED"}
