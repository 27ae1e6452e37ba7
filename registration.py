"""Registers the add-on's Blender classes, menu entries and scene/window-manager properties (imports bpy)."""

import os
import site
import sys

import bpy

from . import operators, panels, properties

_CLASSES = (*properties.CLASSES, *operators.CLASSES, *panels.CLASSES)


def _use_dependency_folder():
    """Make packages installed into the add-on's site-packages (see README) importable in Blender too.

    Appended, not prepended, so Blender's own bundled modules (numpy) keep priority.
    """
    folder = panels.preferences.dependency_folder()
    if os.path.isdir(folder) and folder not in sys.path:
        site.addsitedir(folder)


def register():
    _use_dependency_folder()
    for cls in _CLASSES:
        bpy.utils.register_class(cls)
    properties.attach()
    for menu, draw in operators.MENU_ENTRIES:
        getattr(bpy.types, menu).append(draw)


def unregister():
    operators.cancel_all_jobs()
    for menu, draw in operators.MENU_ENTRIES:
        getattr(bpy.types, menu).remove(draw)
    properties.detach()
    for cls in reversed(_CLASSES):
        bpy.utils.unregister_class(cls)
