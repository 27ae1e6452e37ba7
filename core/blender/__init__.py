"""The Blender side of the core: turns core data (head models, later textures and materials) into Blender data.

The only part of ``core`` that imports ``bpy``. It runs inside a Blender
process (the add-on's operators, the build and render tools, tests on the bpy
module), never in the worker. Nothing here is imported by ``core/__init__.py``.
"""
