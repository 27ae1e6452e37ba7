"""Render a labelled contact sheet of the head model in Blender (Cycles, CPU): views and expressions.

Tiles: front, side (the subject's left), back, jawOpen, smile
(mouthSmileLeft + mouthSmileRight) and blink (eyeBlinkLeft + eyeBlinkRight).
Expressions the model lacks are skipped with a note on their tile.

Usage:
    .venv/bin/python tools/head_contact_sheet.py OUT.png               # the open head (built once, cached)
    .venv/bin/python tools/head_contact_sheet.py OUT.png --synthetic   # the small synthetic test head
    .venv/bin/python tools/head_contact_sheet.py OUT.png --size 512 --samples 32

The staging functions (stage_head, aim_camera, render_still) are also used by
the tests' turntable render (tests/helpers/render_head_turntable.py).
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
from pathlib import Path

import bpy  # noqa: I001 - bpy before numpy/cv2, as in the rest of the Blender code
import cv2
import numpy as np
from mathutils import Vector

from devpath import REPO_ROOT, load_package

load_package()

from studio_avatar.core.blender.head import build_head  # noqa: E402
from studio_avatar.core.blender.preview import preview_stage  # noqa: E402

SKIN_RGB = (0.80, 0.60, 0.50)
EYE_RGB = (0.90, 0.90, 0.88)
BACKGROUND_BGR = (48, 48, 48)
# (label, azimuth of the camera in degrees: 0 = front, 90 = the subject's left, shape key values)
TILES = (
    ("front", 0, {}),
    ("side", 90, {}),
    ("back", 180, {}),
    ("jawOpen", 0, {"jawOpen": 1.0}),
    ("smile", 0, {"mouthSmileLeft": 1.0, "mouthSmileRight": 1.0}),
    ("blink", 0, {"eyeBlinkLeft": 1.0, "eyeBlinkRight": 1.0}),
)


def stage_head(model, size: int, samples: int) -> dict:
    """Empty the scene, build ``model`` with preview materials, a camera, a key light and a grey world.

    Cycles on the CPU, ``size`` x ``size`` pixels, transparent film (alpha = head coverage).
    Returns build_head's dict plus "camera", "center" and "radius" (Blender frame, metres).
    """
    bpy.ops.wm.read_homefile(use_empty=True, use_factory_startup=True)
    scene = bpy.context.scene
    built = build_head(model)
    _assign_material(built["mesh"], "Preview Skin", SKIN_RGB)
    for eye in built["eyes"]:
        _assign_material(eye, "Preview Eye", EYE_RGB)

    bpy.context.view_layer.update()
    points = np.concatenate([_world_vertices(obj) for obj in (built["mesh"], *built["eyes"])])
    low, high = points.min(0), points.max(0)
    center = (low + high) / 2
    radius = float(np.linalg.norm(high - low) / 2)

    camera = preview_stage(scene, "Preview", (0.25, 0.25, 0.25), (50, 0, 35), size, samples)   # key: front, above, subject's left
    scene.render.film_transparent = True
    scene.render.image_settings.color_mode = "RGBA"
    return {**built, "camera": camera, "center": center, "radius": radius}


def aim_camera(staged: dict, azimuth_deg: float) -> None:
    """Put the camera on a circle around the head, looking at its centre; 0 = front, 90 = the subject's left."""
    camera = staged["camera"]
    half_fov = camera.data.angle / 2
    distance = 1.1 * staged["radius"] / math.sin(half_fov)
    angle = math.radians(azimuth_deg)
    center = Vector(staged["center"])
    camera.location = center + distance * Vector((math.sin(angle), -math.cos(angle), 0.0))
    camera.rotation_euler = (center - camera.location).to_track_quat("-Z", "Y").to_euler()
    camera.data.clip_start, camera.data.clip_end = distance / 100, distance * 10


def set_expressions(staged: dict, values: dict[str, float]) -> list[str]:
    """Set shape key values by name (all others to 0) on the head and eyes; returns the names the head lacks."""
    present = set()
    for obj in (staged["mesh"], *staged["eyes"]):
        keys = obj.data.shape_keys
        for block in keys.key_blocks[1:] if keys else ():
            block.value = values.get(block.name, 0.0)
            present.add(block.name)
    return [name for name in values if name not in present]


def render_still(path: Path) -> Path:
    bpy.context.scene.render.filepath = str(path)
    bpy.ops.render.render(write_still=True)
    return path


def contact_sheet(model, out: Path, size: int = 320, samples: int = 16) -> Path:
    staged = stage_head(model, size, samples)
    tiles = []
    with tempfile.TemporaryDirectory(prefix="head-sheet-") as tmp:
        for index, (label, azimuth, values) in enumerate(TILES):
            missing = set_expressions(staged, values)
            if values and len(missing) == len(values):
                tile = np.full((size, size, 3), BACKGROUND_BGR, np.uint8)
            else:
                aim_camera(staged, azimuth)
                tile = _over_background(cv2.imread(str(render_still(Path(tmp) / f"{index}.png")), cv2.IMREAD_UNCHANGED))
            note = f"missing: {', '.join(missing)}" if missing else ""
            tiles.append(_label(tile, label, note))
    rows = [np.concatenate(tiles[i:i + 3], axis=1) for i in range(0, len(tiles), 3)]
    out.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(out), np.concatenate(rows, axis=0)):
        raise SystemExit(f"could not write {out}")
    return out


def _assign_material(obj, name: str, rgb: tuple[float, float, float]) -> None:
    material = bpy.data.materials.get(name) or bpy.data.materials.new(name)
    material.use_nodes = True
    material.node_tree.nodes["Principled BSDF"].inputs["Base Color"].default_value = (*rgb, 1.0)
    obj.data.materials.append(material)


def _world_vertices(obj) -> np.ndarray:
    co = np.empty(len(obj.data.vertices) * 3, np.float32)
    obj.data.vertices.foreach_get("co", co)
    matrix = np.array(obj.matrix_world, np.float32)
    return co.reshape(-1, 3) @ matrix[:3, :3].T + matrix[:3, 3]


def _over_background(bgra: np.ndarray) -> np.ndarray:
    alpha = bgra[:, :, 3:4].astype(np.float32) / 255
    return (bgra[:, :, :3] * alpha + np.array(BACKGROUND_BGR, np.float32) * (1 - alpha)).astype(np.uint8)


def _label(tile: np.ndarray, label: str, note: str) -> np.ndarray:
    tile = tile.copy()
    scale = tile.shape[0] / 320
    cv2.putText(tile, label, (int(8 * scale), int(24 * scale)), cv2.FONT_HERSHEY_SIMPLEX, 0.7 * scale,
                (255, 255, 255), max(1, int(2 * scale)), cv2.LINE_AA)
    if note:
        cv2.putText(tile, note, (int(8 * scale), tile.shape[0] - int(10 * scale)), cv2.FONT_HERSHEY_SIMPLEX,
                    0.4 * scale, (120, 200, 255), 1, cv2.LINE_AA)
    return tile


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out", type=Path, help="PNG file to write")
    parser.add_argument("--synthetic", action="store_true", help="use the small synthetic test head")
    parser.add_argument("--size", type=int, default=320, help="tile size in pixels (default 320)")
    parser.add_argument("--samples", type=int, default=16, help="Cycles samples per tile (default 16)")
    args = parser.parse_args(argv)
    if args.synthetic:
        sys.path.insert(0, str(REPO_ROOT / "tests" / "helpers"))
        from synthetic_head import make_synthetic_head

        model = make_synthetic_head()
    else:
        from studio_avatar.core.head.open_head import get_open_head

        model = get_open_head()
    print(f"wrote {contact_sheet(model, args.out, args.size, args.samples)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
