"""The add-on's preferences and everything that reads them: cache folder, device, worker interpreter, FLAME model
files, weights folder, and the Python dependencies (what is installed in Blender's Python and the add-on's
site-packages, with the Install button; the folder itself is put on ``sys.path`` here).

Operators and panels both read the preferences through this module and never import each other; it refers to
operators only by their idnames. It computes nothing else.
"""

import os
import site
import sys
import textwrap

import bpy
from bpy.props import EnumProperty, StringProperty

from . import idnames, strings
from .core import deps
from .core.paths import GMUG_WEIGHTS_NAME, weights_dir

ADDON_PACKAGE = __package__      # the extension's root package: bl_ext.<repo>.studio_avatar inside Blender


class STUDIO_AVATAR_AP_preferences(bpy.types.AddonPreferences):
    bl_idname = ADDON_PACKAGE

    cache_dir: StringProperty(name=strings.PREF_CACHE_DIR, description=strings.PREF_CACHE_DIR_TIP, subtype="DIR_PATH")
    device: EnumProperty(name=strings.PREF_DEVICE, description=strings.PREF_DEVICE_TIP,
                         items=strings.PREF_DEVICE_ITEMS, default="AUTO")
    worker_python: StringProperty(name=strings.PREF_PYTHON, description=strings.PREF_PYTHON_TIP, subtype="FILE_PATH")
    flame_model_path: StringProperty(name=strings.PREF_FLAME_MODEL, description=strings.PREF_FLAME_MODEL_TIP, subtype="FILE_PATH")
    flame_uv_path: StringProperty(name=strings.PREF_FLAME_UV, description=strings.PREF_FLAME_UV_TIP, subtype="FILE_PATH")
    weights_dir: StringProperty(name=strings.PREF_WEIGHTS_DIR, description=strings.PREF_WEIGHTS_DIR_TIP, subtype="DIR_PATH")
    torch_variant: EnumProperty(name=strings.DEPS_TORCH_VARIANT, description=strings.DEPS_TORCH_VARIANT_TIP,
                                items=strings.DEPS_TORCH_VARIANT_ITEMS, default="cpu")

    def draw(self, context):
        layout = self.layout
        layout.use_property_split = True
        layout.prop(self, "cache_dir")
        layout.prop(self, "device")
        layout.prop(self, "worker_python")
        layout.separator()
        layout.prop(self, "flame_model_path")
        layout.prop(self, "flame_uv_path")
        layout.prop(self, "weights_dir")
        info = layout.box().column(align=True)
        info.label(text=f"{strings.PREF_EFFECTIVE_CACHE}: {cache_folder(self)}", icon="FILE_FOLDER")
        info.label(text=f"{strings.PREF_WORKER}: {self.worker_python or sys.executable}", icon="CONSOLE")
        info.label(text=f"{strings.PREF_WEIGHTS_IN_USE}: {weights_folder(self)}", icon="FILE_FOLDER")
        info.label(text=f"{strings.PREF_DEPS_FOLDER}: {dependency_folder()}", icon="PACKAGE")
        draw_dependencies(layout.box(), self, context)


_STATE_ICONS = {"OK": "CHECKMARK", "MISSING": "CANCEL", "WRONG_VERSION": "ERROR"}


def draw_dependencies(box, prefs, context):
    """The Dependencies box: one line per package, the torch build, Install / Check, progress, last error."""
    box.label(text=strings.DEPS_BOX, icon="SCRIPTPLUGINS")
    if prefs.worker_python:
        box.label(text=strings.DEPS_WORKER_PYTHON_SET, icon="INFO")
    statuses = dependency_statuses()
    column = box.column(align=True)
    for status in statuses:
        found = f" (found {status.found_version})" if status.state == "WRONG_VERSION" else ""
        column.label(text=f"{status.name} {status.wanted_version}: {strings.DEPS_STATE[status.state]}{found}",
                     icon=_STATE_ICONS[status.state])
    job = getattr(context.window_manager, idnames.JOB_PROPERTY)
    if job.running and job.stage == deps.STAGE:
        box.progress(factor=job.fraction, text=f"{job.fraction * 100:.0f}%  {job.message}")
        box.operator(idnames.CANCEL_JOB, icon="CANCEL")
    else:
        if all(status.ok for status in statuses):
            box.label(text=strings.DEPS_ALL_OK, icon="CHECKMARK")
        box.row().prop(prefs, "torch_variant", expand=True)
        row = box.row()
        install = row.operator(idnames.INSTALL_DEPENDENCIES, icon="IMPORT")
        install.torch_variant = prefs.torch_variant
        row.operator(idnames.CHECK_DEPENDENCIES, icon="FILE_REFRESH")
    if DEPENDENCY_REPORT.error:
        errors = box.column(align=True)
        errors.label(text=f"{strings.DEPS_LAST_ERROR}:", icon="ERROR")
        for line in textwrap.wrap(DEPENDENCY_REPORT.error, 100):
            errors.label(text=line)


def get_preferences(context):
    return context.preferences.addons[ADDON_PACKAGE].preferences


def cache_folder(prefs, create=False) -> str:
    """The cache folder in use: the preference, or the add-on's user folder when that is empty."""
    if prefs.cache_dir:
        return bpy.path.abspath(prefs.cache_dir)
    return bpy.utils.extension_path_user(ADDON_PACKAGE, path="cache", create=create)


def dependency_folder() -> str:
    """Where the README installs the worker's Python packages for this add-on (may not exist)."""
    return bpy.utils.extension_path_user(ADDON_PACKAGE, path="site-packages", create=False)


def use_dependency_folder() -> None:
    """Make packages installed into the add-on's site-packages importable in Blender too (on register, and after
    an install: the folder may exist only then).

    Appended, not prepended, so Blender's own bundled modules (numpy) keep priority.
    """
    folder = dependency_folder()
    if os.path.isdir(folder) and folder not in sys.path:
        site.addsitedir(folder)


def weights_folder(prefs) -> str:
    """The weights folder in use: the preference, or the weights shipped with the add-on when that is empty."""
    return bpy.path.abspath(prefs.weights_dir) if prefs.weights_dir else str(weights_dir())


def gmug_weights_installed(prefs) -> bool:
    """Whether the weights folder in use holds GMug's weights (the worker checks them fully and falls back)."""
    return os.path.isfile(os.path.join(weights_folder(prefs), GMUG_WEIGHTS_NAME))


class DependencyReport:
    """What the last dependency check and install found (this session only; never saved)."""

    statuses: list[deps.Status] | None = None
    error: str = ""


DEPENDENCY_REPORT = DependencyReport()


def dependency_search_path() -> list[str]:
    """Where the worker finds packages: the add-on's site-packages first (it is put first on the worker's
    PYTHONPATH), then Blender's own Python."""
    return [dependency_folder(), *sys.path]


def dependency_statuses(refresh=False) -> list[deps.Status]:
    """The status of every pinned dependency (checked once, again on ``refresh``; metadata only, nothing imported)."""
    if refresh or DEPENDENCY_REPORT.statuses is None:
        DEPENDENCY_REPORT.statuses = deps.check_dependencies(dependency_search_path())
    return DEPENDENCY_REPORT.statuses


CLASSES = (STUDIO_AVATAR_AP_preferences,)
