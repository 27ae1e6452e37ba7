"""A small synthetic "turning head" clip, for the demo and for tests of the video path.

This is a drawn stand-in until the rendered phone-capture generator exists: an
elliptical head with eyes, nose and mouth that turns left and right in front of
a gradient background, so that frames differ and have known timing.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..video import write_video


def draw_head_frame(width: int, height: int, yaw: float) -> np.ndarray:
    """One BGR frame of the drawn head turned by ``yaw`` (-1 = left profile .. 1 = right)."""
    import cv2

    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    background = np.stack([80 + 60 * ys / height, 90 + 40 * xs / width, np.full_like(xs, 110)], axis=-1)
    image = np.ascontiguousarray(background.astype(np.uint8))
    cx, cy = width / 2, height / 2
    rx, ry = 0.22 * min(width, height), 0.3 * min(width, height)
    skin = (120, 150, 205)
    cv2.ellipse(image, (round(cx), round(cy)), (round(rx), round(ry)), 0, 0, 360, skin, -1, cv2.LINE_AA)
    shift = yaw * rx * 0.6
    for side in (-1, 1):
        eye = (round(cx + shift + side * rx * 0.4 * (1 - 0.3 * abs(yaw))), round(cy - ry * 0.15))
        cv2.ellipse(image, eye, (max(2, round(rx * 0.14)), max(2, round(ry * 0.06))), 0, 0, 360, (245, 245, 245), -1, cv2.LINE_AA)
        cv2.circle(image, eye, max(1, round(rx * 0.06)), (60, 40, 30), -1, cv2.LINE_AA)
    nose = np.array([[cx + shift * 1.2, cy - ry * 0.05], [cx + shift * 1.4 + rx * 0.08, cy + ry * 0.2], [cx + shift * 1.2 - rx * 0.08, cy + ry * 0.2]])
    cv2.fillConvexPoly(image, np.round(nose).astype(np.int32), (100, 125, 185), cv2.LINE_AA)
    cv2.ellipse(image, (round(cx + shift), round(cy + ry * 0.45)), (max(2, round(rx * 0.3)), max(1, round(ry * 0.06))), 0, 0, 360, (90, 90, 170), -1, cv2.LINE_AA)
    return image


def write_turning_head_clip(
    path: str | os.PathLike,
    frames: int = 30,          # number of frames
    width: int = 320,          # frame width in pixels
    height: int = 240,         # frame height in pixels
    fps: float = 30.0,         # frames per second
    fourcc: str = "mp4v",      # codec FourCC; mp4v (.mp4) and MJPG (.avi) are always available
) -> Path:
    """Write the drawn turning-head clip atomically and return its path."""
    if frames < 1 or width < 16 or height < 16 or fps <= 0:
        raise InputError(f"cannot write a clip of {frames} frames at {width}x{height}, {fps} fps")
    images = (draw_head_frame(width, height, float(np.sin(2 * np.pi * i / max(frames, 2)))) for i in range(frames))
    return write_video(path, images, fps, (width, height), fourcc)
