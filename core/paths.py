"""Default locations (the user cache, the model weights) and the check of output paths the user gives.

Nothing here creates files outside what the user chose.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from .errors import InputError


def default_cache_dir() -> Path:
    """Per-user cache for built head models and other derived data (never inside the repo)."""
    override = os.environ.get("STUDIO_AVATAR_CACHE")
    if override:
        return Path(override).expanduser()
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
        return base / "studio-avatar" / "cache"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches" / "studio-avatar"
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "studio-avatar"


SHIPPED_WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"
GMUG_WEIGHTS_NAME = "gmug_128.safetensors"        # the GMug stage's weights inside the weights folder
ENHANCE_WEIGHTS_NAME = "enhance_64.safetensors"   # the enhance stage's


def weights_dir() -> Path:
    """Folder of the learned stages' weights (GMug, detail diffusion): ``STUDIO_AVATAR_WEIGHTS`` when set
    (the add-on's "Weights Folder" preference, the CLI's --weights-dir), else the weights shipped in weights/."""
    override = os.environ.get("STUDIO_AVATAR_WEIGHTS")
    return Path(override).expanduser() if override else SHIPPED_WEIGHTS_DIR


def check_output_path(path: str | os.PathLike, option: str = "-o") -> Path:
    """``path`` made absolute, after checking that it can be written: its nearest existing ancestor must be a
    writable folder (missing folders below it are created later). InputError in one line naming ``option``."""
    target = Path(path).expanduser().absolute()
    ancestor = target.parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise InputError(f"{option} {target}: {ancestor} is not a folder, so nothing can be written below it")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise InputError(f"{option} {target}: the folder {ancestor} is not writable")
    return target
