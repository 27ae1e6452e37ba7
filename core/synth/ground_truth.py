"""The ground-truth folder of a synthetic capture (``OUT/gt/``), written by ``studio-avatar synth``.

Layout (every file written atomically):

* ``albedo.png`` -- the true UV albedo of the open head, 16-bit sRGB PNG
  (``image_io.read_image`` gives float sRGB in 0..1; ``srgb_to_linear`` for
  linear reflectance). Same UV layout as the capture's ``textures/*.png``.
* ``truth.npz`` -- the true head and camera per video frame, in the
  conventions of the pipeline's ``fit.npz`` (see ``core/synth/head_clip.py``):
  ``shape`` (S,), ``expression`` (N, E), ``pose`` (N, J, 3),
  ``translation`` (N, 3), ``focal_px`` (N,), ``principal_px`` (N, 2),
  ``camera_rotation`` (N, 3, 3), ``camera_translation`` (N, 3),
  ``image_size`` (2,) = (width, height), ``time_s`` (N,),
  ``frame_index`` (N,) (the video frame), ``model_source``,
  ``model_fingerprint``, ``expression_names``, ``joint_names``. The camera of
  the fit conventions sits at the origin; the head's root pose and
  translation carry the relative motion of head and phone.
* ``shading.exr`` -- the true diffuse irradiance in UV space (linear RGB,
  half float), baked by Cycles in the scene the frames were rendered in, for
  the neutral head: ``phone-lit radiance ~= albedo * shading`` on skin. It
  is what the delighting has to remove, and what ``eval`` correlates the
  albedo error with (shading leakage).
* ``studio.png`` -- a reference render of the true avatar under the studio
  light (8-bit sRGB), from the ``studio_camera`` recorded in ``scene.json``.
* ``scene.json`` -- the seed, the skin parameters of the albedo generator
  (melanin, haemoglobin, ITA°), the light setup (world HDRI, its rotation
  and strength, extra lamps with colour temperatures), the phone artifacts
  (per-frame exposure and white-balance gains, noise, blur), the render
  settings, the timings and ``video_sha256``, the hash of the video made
  with it (``eval`` refuses a capture made from any other video).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError

GT_DIR = "gt"
ALBEDO_PNG = "albedo.png"
TRUTH_NPZ = "truth.npz"
SHADING_EXR = "shading.exr"
STUDIO_PNG = "studio.png"
SCENE_JSON = "scene.json"
VIDEO_NAME = "video.mp4"
FILES = (ALBEDO_PNG, TRUTH_NPZ, SHADING_EXR, STUDIO_PNG, SCENE_JSON)


@dataclass
class GroundTruth:
    root: Path
    albedo_linear: np.ndarray          # (T, T, 3) float32 linear reflectance
    truth: dict[str, np.ndarray]       # truth.npz
    shading: np.ndarray | None         # (t, t, 3) float32 linear irradiance, or None when not baked
    scene: dict[str, Any]


def resolve_gt_dir(path: str | os.PathLike) -> Path:
    """``path`` itself when it holds the ground-truth files, else ``path/gt``."""
    root = Path(path)
    if (root / TRUTH_NPZ).is_file():
        return root
    if (root / GT_DIR / TRUTH_NPZ).is_file():
        return root / GT_DIR
    raise InputError(f"{root} is not a synthetic capture's ground truth (no {TRUTH_NPZ} in it or in its {GT_DIR}/ "
                     "folder); make one with `studio-avatar synth OUT`")


def read_ground_truth(path: str | os.PathLike, with_shading: bool = True) -> GroundTruth:
    from ..color import srgb_to_linear
    from ..image_io import read_exr, read_image

    root = resolve_gt_dir(path)
    missing = [name for name in (ALBEDO_PNG, SCENE_JSON) if not (root / name).is_file()]
    if missing:
        raise InputError(f"the ground truth in {root} is incomplete (missing {', '.join(missing)}); re-run `studio-avatar synth`")
    with np.load(root / TRUTH_NPZ, allow_pickle=False) as data:
        truth = {key: data[key] for key in data.files}
    albedo = srgb_to_linear(read_image(root / ALBEDO_PNG)).astype(np.float32)
    shading = read_exr(root / SHADING_EXR).astype(np.float32) if with_shading and (root / SHADING_EXR).is_file() else None
    scene = json.loads((root / SCENE_JSON).read_text())
    return GroundTruth(root, albedo, truth, shading, scene)


def ground_truth_video_sha256(gt: GroundTruth) -> str:
    """The hash of the video this ground truth belongs to ("" if unknown): recorded in scene.json, else of OUT/video.mp4."""
    from ..hashing import file_sha256

    recorded = str(gt.scene.get("video_sha256", ""))
    if recorded:
        return recorded
    video = gt.root.parent / VIDEO_NAME
    return file_sha256(video) if video.is_file() else ""
