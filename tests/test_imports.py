"""Importing the add-on package and its core must not import bpy (the core runs in plain Python)."""

from fresh_import import heavy_modules_after_import


def test_package_and_core_import_without_bpy():
    modules = ["studio_avatar.core", "studio_avatar.core.cli", "studio_avatar.core.pipeline",
               "studio_avatar.core.stages", "studio_avatar.core.video", "studio_avatar.core.worker",
               "studio_avatar.core.progress", "studio_avatar.core.capture", "studio_avatar.core.launcher"]
    heavy = heavy_modules_after_import(modules, ("bpy", "torch", "cv2", "diffusers", "mediapipe"))
    # bpy must never come in; torch/cv2 are imported lazily by the functions that need them
    assert heavy == [], f"heavy modules imported at package import: {','.join(heavy)}"


def test_register_module_is_the_only_bpy_entry(repo_root):
    """The root __init__ imports nothing at module level (Blender calls register() later)."""
    source = (repo_root / "__init__.py").read_text()
    body = [line for line in source.splitlines() if line.startswith(("import ", "from "))]
    assert body == [], f"top-level imports in __init__.py: {body}"
