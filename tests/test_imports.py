"""Importing the add-on package and its core must not import bpy (the core runs in plain Python)."""

import subprocess
import sys


def test_package_and_core_import_without_bpy(repo_root):
    code = f"""
import sys
sys.path.insert(0, {str(repo_root / 'tools')!r})
from devpath import load_package
load_package()
import importlib
for name in ("studio_avatar.core", "studio_avatar.core.cli", "studio_avatar.core.pipeline",
             "studio_avatar.core.stages", "studio_avatar.core.video", "studio_avatar.core.worker",
             "studio_avatar.core.progress", "studio_avatar.core.capture", "studio_avatar.core.launcher"):
    importlib.import_module(name)
heavy = sorted(m for m in ("bpy", "torch", "cv2", "diffusers", "mediapipe") if m in sys.modules)
print(",".join(heavy) or "none")
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    # bpy must never come in; torch/cv2 are imported lazily by the functions that need them
    assert out.stdout.strip() == "none", f"heavy modules imported at package import: {out.stdout.strip()}"


def test_register_module_is_the_only_bpy_entry(repo_root):
    """The root __init__ imports nothing at module level (Blender calls register() later)."""
    source = (repo_root / "__init__.py").read_text()
    body = [line for line in source.splitlines() if line.startswith(("import ", "from "))]
    assert body == [], f"top-level imports in __init__.py: {body}"
