"""Studio Avatar pipeline core.

Everything that turns a phone video into an avatar lives here. This package
never imports ``bpy`` (except ``core/blender/``, used only by the build and
render stages inside a Blender process), so it runs in plain Python: in the
tests, in the ``studio-avatar`` command-line tool and in the worker process
that the Blender add-on starts. Heavy dependencies (cv2, torch) are imported
by the modules that need them, never at package import.
"""

__version__ = "0.1.0"
TOOL_NAME = "studio-avatar"
