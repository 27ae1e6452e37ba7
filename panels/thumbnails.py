"""Thumbnails of a capture's chosen frames for the sidebar, through one ``bpy.utils.previews`` collection.

Panels redraw often, so the frame list (``frames/frames.json``) is read again
only when that file changes; Blender loads each preview image lazily. Frames a
rerun rewrites get new previews (the key holds the file's modification time).
"""

import json
import os

import bpy.utils.previews

MAX_THUMBNAILS = 6

_previews = None
_chosen: dict[str, tuple[int, list[str]]] = {}   # frames.json path -> (its mtime, the picked frame files)


def chosen_frames(capture_dir: str, count: int = MAX_THUMBNAILS) -> list[str]:
    """Up to ``count`` evenly spaced files of the frames the capture's frames stage chose; [] when there are none."""
    index = os.path.join(capture_dir, "frames", "frames.json")
    try:
        mtime = os.stat(index).st_mtime_ns
    except OSError:
        return []
    cached = _chosen.get(index)
    if cached and cached[0] == mtime:
        return cached[1]
    try:
        with open(index, encoding="utf-8") as file:
            names = [frame["file"] for frame in json.load(file)["frames"]]
    except (OSError, ValueError, KeyError, TypeError):
        names = []
    if len(names) > count:
        names = [names[round(i * (len(names) - 1) / (count - 1))] for i in range(count)]
    picked = [os.path.join(capture_dir, "frames", name) for name in names]
    _chosen[index] = (mtime, picked)
    return picked


def icon_ids(paths: list[str]) -> list[int]:
    """Preview icon ids of image files (0 until Blender has loaded one, e.g. in background mode)."""
    global _previews
    if _previews is None:
        _previews = bpy.utils.previews.new()
    ids = []
    for path in paths:
        try:
            key = f"{path}:{os.stat(path).st_mtime_ns}"
        except OSError:
            continue
        preview = _previews.get(key) or _previews.load(key, path, "IMAGE")
        ids.append(preview.icon_id)
    return ids


def release() -> None:
    """Free the previews (on unregister)."""
    global _previews
    if _previews is not None:
        bpy.utils.previews.remove(_previews)
        _previews = None
    _chosen.clear()
