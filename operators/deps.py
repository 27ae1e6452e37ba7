"""Operators of the preferences' Dependencies box: check which packages are installed, install the missing ones.

Install is the add-on's only use of the network, and only when the user presses it: pip runs with Blender's
own Python as a background job (progress in the preferences and the status bar; Esc or Cancel stops it) and
writes only into the add-on's user site-packages, with its download cache inside the add-on's cache folder.
"""

import importlib
import os
import sys

import bpy
from bpy.props import EnumProperty

from .. import idnames, strings
from ..core import deps
from ..preferences import (
    DEPENDENCY_REPORT, cache_folder, dependency_folder, dependency_statuses, get_preferences, use_dependency_folder,
)
from .jobs import WorkerJobMixin, job_state


def installer_python() -> str:
    """The Python that pip installs for: inside Blender ``sys.executable`` is Blender's bundled Python (the one
    that runs the worker by default); under the bpy module it is the module's own interpreter."""
    return sys.executable


def _redraw_preferences():
    for window in bpy.context.window_manager.windows:
        for area in window.screen.areas:
            if area.type == "PREFERENCES":
                area.tag_redraw()


class STUDIO_AVATAR_OT_check_dependencies(bpy.types.Operator):
    bl_idname = idnames.CHECK_DEPENDENCIES
    bl_label = strings.CHECK_DEPENDENCIES
    bl_description = strings.CHECK_DEPENDENCIES_TIP
    bl_options = {"INTERNAL"}

    def execute(self, context):
        dependency_statuses(refresh=True)
        _redraw_preferences()
        return {"FINISHED"}


class STUDIO_AVATAR_OT_install_dependencies(WorkerJobMixin, bpy.types.Operator):
    bl_idname = idnames.INSTALL_DEPENDENCIES
    bl_label = strings.INSTALL_DEPENDENCIES
    bl_description = strings.INSTALL_DEPENDENCIES_TIP
    bl_options = {"REGISTER"}
    job_title = strings.DEPS_BOX

    torch_variant: EnumProperty(name=strings.DEPS_TORCH_VARIANT, description=strings.DEPS_TORCH_VARIANT_TIP,
                                items=strings.DEPS_TORCH_VARIANT_ITEMS, default="cpu")

    def execute(self, context):
        missing = deps.missing_requirements(dependency_statuses(refresh=True))
        if not missing:
            self.report({"INFO"}, strings.DEPS_ALL_OK)
            return {"FINISHED"}
        DEPENDENCY_REPORT.error = ""
        # pip's download cache goes into the add-on's cache folder, not the user's ~/.cache/pip
        pip_cache = os.path.join(cache_folder(get_preferences(context), create=True), "pip")
        job = deps.DependencyInstall(installer_python(), dependency_folder(), self.torch_variant, missing,
                                     pip_cache_dir=pip_cache)
        result = self.start_job(context, job)
        if job_state(context).running:
            job_state(context).stage = deps.STAGE  # the preferences show progress from the first redraw on
        return result

    def _apply_event(self, context, event):
        super()._apply_event(context, event)
        if not (self.wait or bpy.app.background):
            _redraw_preferences()

    def job_finished(self, context, worker):
        use_dependency_folder()       # the folder may exist only now: make it importable in this session
        importlib.invalidate_caches()
        dependency_statuses(refresh=True)
        if not (self.wait or bpy.app.background):
            _redraw_preferences()
        if worker.succeeded:
            self.report({"INFO"}, strings.MSG_DEPS_INSTALLED.format(folder=dependency_folder()))
            return {"FINISHED"}
        if not worker.cancel_requested:
            DEPENDENCY_REPORT.error = worker.error_message()
        return self.report_failed_job(worker)
