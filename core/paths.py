"""Default locations: the user cache and the model weights. Nothing here creates files outside what the user chose."""

from __future__ import annotations

import os
import sys
from pathlib import Path


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


def weights_dir() -> Path:
    """Folder of the learned stages' weights (GMug, detail diffusion): ``STUDIO_AVATAR_WEIGHTS`` when set
    (the add-on's "Weights Folder" preference, the CLI's --weights-dir), else the weights shipped in weights/."""
    override = os.environ.get("STUDIO_AVATAR_WEIGHTS")
    return Path(override).expanduser() if override else SHIPPED_WEIGHTS_DIR
