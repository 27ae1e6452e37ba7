"""Choose the head model for a run: FLAME when the user gives a FLAME file, else the open head."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

from ..hashing import file_sha256
from ..paths import default_cache_dir
from .model import HeadModel, HeadModelError


def check_head_files(flame_model: str | os.PathLike | None, flame_uv: str | os.PathLike | None = None) -> None:
    """Refuse a --flame / --flame-uv path that is missing, a folder, empty or unreadable, in one line, before any work."""
    if flame_uv and not flame_model:
        raise HeadModelError("--flame-uv needs --flame: the UV template belongs to a FLAME model file")
    for option, value in (("--flame", flame_model), ("--flame-uv", flame_uv)):
        if not value:
            continue
        path = Path(value).expanduser()
        if not path.exists():
            raise HeadModelError(f"{option} {path}: no such file")
        if not path.is_file():
            raise HeadModelError(f"{option} {path}: is a folder, not a file; give the FLAME "
                                 f"{'model file (.pkl or .npz)' if option == '--flame' else 'UV template (.obj or .npz)'}")
        try:
            with open(path, "rb") as handle:
                empty = not handle.read(1)
        except OSError as exc:
            raise HeadModelError(f"{option} {path}: cannot be read ({exc.strerror})") from None
        if empty:
            raise HeadModelError(f"{option} {path}: the file is empty")


def load_head(flame_model: str | os.PathLike | None = None, flame_uv: str | os.PathLike | None = None,
              cache_dir: str | os.PathLike | None = None, with_landmarks: bool = True) -> HeadModel:
    check_head_files(flame_model, flame_uv)
    if flame_model:
        from .flame import load_flame

        return load_flame(flame_model, uv_template_path=flame_uv)
    from .open_head import get_open_head

    return get_open_head(cache_dir, with_landmarks=with_landmarks)


def cached_head_folder(flame_model: str | os.PathLike | None = None, flame_uv: str | os.PathLike | None = None,
                       cache_dir: str | os.PathLike | None = None, with_landmarks: bool = True) -> Path:
    """Make sure the head model is in the user cache and return its folder (head.safetensors + head.json).

    This is how a process without torch or the model sources (Blender's UI)
    gets a model: a worker prepares the folder, the UI reads it with
    ``HeadModel.load``. FLAME entries are keyed by the hashes of the given files.
    """
    check_head_files(flame_model, flame_uv)
    if not flame_model:
        from .open_head import get_open_head, open_head_cache_dir

        get_open_head(cache_dir, with_landmarks=with_landmarks)
        return open_head_cache_dir(cache_dir)
    key = hashlib.sha256()
    for path in (flame_model, flame_uv):
        key.update(file_sha256(path).encode() if path else b"-")
    folder = Path(cache_dir or default_cache_dir()) / "heads" / f"flame-{key.hexdigest()[:16]}"
    if not (folder / "head.json").is_file():
        load_head(flame_model, flame_uv).save_as_cache_entry(folder)
    return folder


def describe(model: HeadModel) -> dict[str, Any]:
    """What `studio-avatar head info` prints."""
    return {
        "source": model.source,
        "vertices": model.num_vertices,
        "faces": int(model.faces.shape[0]),
        "polygons": int(model.polygons.shape[0]),
        "joints": list(model.joint_names),
        "joint_parents": list(model.joint_parents),
        "shape_components": model.num_shape,
        "expression_names": list(model.expression_names),
        "uv_symmetric": bool(model.uv_symmetric),
        "regions": {name: int(mask.sum()) for name, mask in sorted(model.regions.items())},
        "landmarks": int(model.landmark_faces.shape[0]),
        "landmark_consistency": _landmark_summary(model.metadata.get("landmarks")),
    }


def _landmark_summary(report: dict[str, Any] | None) -> dict[str, Any] | None:
    """The headline numbers of the landmark embedding report (the full report stays in head.json)."""
    if not report:
        return None
    mirror = report.get("mirror", {})
    return {
        "views_detected": report.get("views_detected"),
        "views": len(report.get("views", [])),
        "spread_mm": report.get("spread_mm"),
        "snap_distance_mm": report.get("snap_distance_mm"),
        "mirror_mean_error_mm": mirror.get("mean_error_mm"),
        "mirror_max_error_mm": mirror.get("max_error_mm"),
    }
