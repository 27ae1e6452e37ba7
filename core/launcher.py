"""How to start the core as a program: the ``studio-avatar`` script and Blender's worker process.

The extension folder is a package whose name depends on where it lives (a
git checkout, or ``bl_ext.<repo>.studio_avatar`` inside Blender). The
bootstrap below loads it under the fixed name ``studio_avatar`` from its
folder, so the same command line works from a venv and from Blender's own
Python. No shell is involved anywhere: argument lists only.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

PACKAGE_NAME = "studio_avatar"
EXTENSION_ROOT = Path(__file__).resolve().parent.parent

_BOOTSTRAP = """\
import importlib.util, sys
root = {root!r}
if {name!r} not in sys.modules:
    spec = importlib.util.spec_from_file_location({name!r}, root + "/__init__.py", submodule_search_locations=[root])
    module = importlib.util.module_from_spec(spec)
    sys.modules[{name!r}] = module
    spec.loader.exec_module(module)
from {name}.core.cli import exit_process, main
exit_process(main())
"""


def bootstrap_code(extension_root: str | os.PathLike = EXTENSION_ROOT) -> str:
    return _BOOTSTRAP.format(root=str(Path(extension_root).resolve()), name=PACKAGE_NAME)


BLENDER_PATHS_VARIABLE = "STUDIO_AVATAR_SITE_DIRS"   # Blender ignores PYTHONPATH: its worker gets the folders here

_BLENDER_PREAMBLE = """\
import os, site, sys
for folder in os.environ.get({variable!r}, "").split(os.pathsep):
    if folder:
        site.addsitedir(folder)
sys.argv = ["studio-avatar", *sys.argv[sys.argv.index("--") + 1:]]
"""


def worker_argv(args: list[str], python: str | None = None, extension_root: str | os.PathLike = EXTENSION_ROOT,
                blender: str | None = None) -> list[str]:
    """Command line that runs ``studio-avatar ARGS`` with ``python`` (default: this interpreter).

    ``-P`` keeps the current directory off ``sys.path`` so stray modules there cannot shadow ours.
    With ``blender`` (a Blender executable) the command runs inside ``blender -b`` instead: commands that
    need bpy (render, export, synth) cannot run in Blender's bundled Python interpreter, which has no bpy.
    """
    if blender:
        code = _BLENDER_PREAMBLE.format(variable=BLENDER_PATHS_VARIABLE) + bootstrap_code(extension_root)
        return [blender, "-b", "--factory-startup", "--python-exit-code", "1", "--python-expr", code, "--", *args]
    return [python or sys.executable, "-P", "-c", bootstrap_code(extension_root), *args]


def write_console_script(dest: str | os.PathLike, python: str | None = None, extension_root: str | os.PathLike = EXTENSION_ROOT) -> Path:
    """Write an executable ``studio-avatar`` script (like a pip console script, for this checkout)."""
    from .atomic import atomic_write_text

    dest = Path(dest)
    atomic_write_text(dest, f"#!{python or sys.executable} -P\n" + bootstrap_code(extension_root))
    dest.chmod(0o755)
    return dest
