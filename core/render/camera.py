"""The pinhole camera, projection into it, and the rotations cameras and poses are made of.

Cameras follow OpenCV: in the camera frame x points right, y down and the
camera looks along its +z; world to camera is ``X_cam = R @ X_world + t``, and
a point projects to ``(fx X/Z + cx, fy Y/Z + cy)`` with depth ``Z``.
``camera_for`` reads one frame's camera from the per-frame arrays a fit or a
ground truth stores (``focal_px``, ``principal_px``, ``image_size``,
``camera_rotation``, ``camera_translation``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass
class PinholeCamera:
    fx: float                 # focal length along x, pixels
    fy: float                 # focal length along y, pixels
    cx: float                 # principal point, pixels from the left edge (width / 2 when centred)
    cy: float                 # principal point, pixels from the top edge (height / 2 when centred)
    rotation: np.ndarray      # (3, 3) world-to-camera rotation R
    translation: np.ndarray   # (3,) world-to-camera translation t (metres): X_cam = R X_world + t
    width: int                # image width, pixels
    height: int               # image height, pixels

    @classmethod
    def look_at(cls, eye_m: Any, target_m: Any, up: Any = (0.0, 1.0, 0.0), fov_y_deg: float = 30.0,
                width: int = 512, height: int = 512) -> "PinholeCamera":
        """A centred camera at ``eye_m`` looking at ``target_m``, with ``up`` pointing up in the image."""
        eye, target = np.asarray(eye_m, np.float64), np.asarray(target_m, np.float64)
        forward = target - eye
        forward /= np.linalg.norm(forward)
        right = np.cross(forward, np.asarray(up, np.float64))
        norm = np.linalg.norm(right)
        if norm < 1e-9:
            raise ValueError("look_at: the up vector is parallel to the viewing direction; pass another up")
        right /= norm
        down = np.cross(forward, right)
        rotation = np.stack([right, down, forward])
        focal = 0.5 * height / np.tan(np.radians(fov_y_deg) / 2)
        return cls(float(focal), float(focal), width / 2, height / 2, rotation, -rotation @ eye, width, height)


def project(vertices_m: Any, camera: PinholeCamera) -> Any:
    """(..., 3) world points -> (..., 3) ``[x_px, y_px, depth_m]`` for ``rasterize`` (differentiable)."""
    import torch

    points = torch.as_tensor(vertices_m)
    assert points.shape[-1] == 3, f"project: points must be (..., 3), got {tuple(points.shape)}"
    rotation = torch.as_tensor(camera.rotation, dtype=points.dtype, device=points.device)
    translation = torch.as_tensor(camera.translation, dtype=points.dtype, device=points.device)
    cam = points @ rotation.T + translation
    depth = cam[..., 2]
    return torch.stack([camera.fx * cam[..., 0] / depth + camera.cx, camera.fy * cam[..., 1] / depth + camera.cy, depth], -1)


def camera_for(gt: dict[str, np.ndarray], index: int = 0, supersampling: int = 1) -> PinholeCamera:
    """The ``PinholeCamera`` of frame ``index`` of a ground truth (scaled for a ``supersampling`` x raster)."""
    s = supersampling
    focal = float(gt["focal_px"][index]) * s
    cx, cy = (float(c) * s for c in gt["principal_px"][index])
    width, height = (int(n) * s for n in gt["image_size"])
    return PinholeCamera(focal, focal, cx, cy, np.asarray(gt["camera_rotation"][index], np.float64),
                         np.asarray(gt["camera_translation"][index], np.float64), width, height)


def axis_angle(rotation: np.ndarray) -> np.ndarray:
    """Axis-angle vector of a rotation matrix by less than 180 degrees."""
    vee = np.array([rotation[2, 1] - rotation[1, 2], rotation[0, 2] - rotation[2, 0], rotation[1, 0] - rotation[0, 1]]) / 2
    sin = np.linalg.norm(vee)
    cos = (np.trace(rotation) - 1) / 2
    angle = math.atan2(sin, cos)
    return vee * (angle / sin if sin > 1e-12 else 1.0)
