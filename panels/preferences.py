"""Add-on preferences: cache folder, device, worker interpreter, FLAME model files."""

import sys

import bpy
from bpy.props import EnumProperty, StringProperty

from .. import strings

# the extension's root package: bl_ext.<repo>.studio_avatar inside Blender
ADDON_PACKAGE = __package__.rpartition(".")[0]


class STUDIO_AVATAR_AP_preferences(bpy.types.AddonPreferences):
    bl_idname = ADDON_PACKAGE

    cache_dir: StringProperty(name=strings.PREF_CACHE_DIR, description=strings.PREF_CACHE_DIR_TIP, subtype="DIR_PATH")
    device: EnumProperty(name=strings.PREF_DEVICE, description=strings.PREF_DEVICE_TIP,
                         items=strings.PREF_DEVICE_ITEMS, default="AUTO")
    worker_python: StringProperty(name=strings.PREF_PYTHON, description=strings.PREF_PYTHON_TIP, subtype="FILE_PATH")
    flame_model_path: StringProperty(name=strings.PREF_FLAME_MODEL, description=strings.PREF_FLAME_MODEL_TIP, subtype="FILE_PATH")
    flame_uv_path: StringProperty(name=strings.PREF_FLAME_UV, description=strings.PREF_FLAME_UV_TIP, subtype="FILE_PATH")

    def draw(self, context):
        layout = self.layout
        layout.use_property_split = True
        layout.prop(self, "cache_dir")
        layout.prop(self, "device")
        layout.prop(self, "worker_python")
        layout.separator()
        layout.prop(self, "flame_model_path")
        layout.prop(self, "flame_uv_path")
        info = layout.box().column(align=True)
        info.label(text=f"{strings.PREF_EFFECTIVE_CACHE}: {cache_folder(self)}", icon="FILE_FOLDER")
        info.label(text=f"{strings.PREF_WORKER}: {self.worker_python or sys.executable}", icon="CONSOLE")
        info.label(text=f"{strings.PREF_DEPS_FOLDER}: {dependency_folder()}", icon="PACKAGE")


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
