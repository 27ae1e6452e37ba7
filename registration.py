"""Registers the add-on's Blender classes, menu entries and scene/window-manager properties (imports bpy)."""

import bpy

from . import operators, panels, preferences, properties

CLASSES = (*preferences.CLASSES, *properties.CLASSES, *operators.CLASSES, *panels.CLASSES)


def register():
    preferences.use_dependency_folder()
    for cls in CLASSES:
        bpy.utils.register_class(cls)
    properties.attach()
    for menu, draw in operators.MENU_ENTRIES:
        getattr(bpy.types, menu).append(draw)


def unregister():
    operators.cancel_all_jobs()
    for menu, draw in operators.MENU_ENTRIES:
        getattr(bpy.types, menu).remove(draw)
    properties.detach()
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
