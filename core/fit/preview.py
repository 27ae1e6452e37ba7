"""``studio-avatar fit-preview``: the fitted mesh drawn over the frames, so a person can judge the fit.

Per fitted frame: the frame image, the head's wireframe (front-facing
polygons only) in the fit's pose, the tracked landmarks (green) and the
fitted ones (red), and a caption with the frame's landmark error. Written as
an mp4 (atomically) into a path the user chose. Reads the capture; writes
nothing into it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from ..capture import Capture
from ..errors import CaptureError, InputError
from ..stages import require_current
from ..video import write_video
from .stage import FIT_NPZ, load_fit

WIRE_BGR = (255, 200, 80)
TRACKED_BGR = (80, 220, 80)
FITTED_BGR = (60, 60, 235)


def _wire_segments(model: Any, cam_verts: np.ndarray, pixels: np.ndarray) -> list[np.ndarray]:
    """Closed pixel polylines (2 fractional bits) of the polygons facing a camera at the origin.

    Triangles repeat their first corner as a fourth, so every polygon is a
    4-point outline and the whole set is one array.
    """
    corners = np.where(model.polygons >= 0, model.polygons, model.polygons[:, :1])
    p0, p1, p2 = cam_verts[corners[:, 0]], cam_verts[corners[:, 1]], cam_verts[corners[:, 2]]
    facing = (np.cross(p1 - p0, p2 - p0) * -cam_verts[corners].mean(1)).sum(1) > 0
    return list(np.round(pixels[corners[facing]] * 4).astype(np.int32))


def write_fit_preview(capture_dir: str | os.PathLike, output: str | os.PathLike, fps: float = 8.0,
                      progress: Any = None) -> dict[str, Any]:
    """Write the overlay video; returns where and how many frames."""
    import cv2
    import torch

    from ..head.source import load_head
    from ..render.camera import PinholeCamera, project

    capture = Capture.open(capture_dir)
    fit_path = capture.path(FIT_NPZ)
    if not fit_path.is_file():
        raise CaptureError(f"{capture.root}: has no fit yet; run `studio-avatar reconstruct VIDEO -o {capture.root} --until fit` first")
    require_current(capture, [FIT_NPZ, "frames/"], "fit-preview")   # never the old fit over new frames
    dest = Path(output).expanduser()
    if dest.suffix.lower() not in (".mp4", ".avi"):
        raise InputError(f"{dest}: the preview is a video; give a path ending in .mp4 or .avi")
    fit = load_fit(str(fit_path))
    params = (capture.stage_record("fit") or {}).get("params", {})
    model = load_head(params.get("flame_model") or None, params.get("flame_uv") or None)
    if str(fit["model_source"]) != model.source:
        raise CaptureError(f"{capture.root}: the fit was made with the {fit['model_source']} head, but {model.source} is loaded")
    listing = json.loads(capture.path("frames/frames.json").read_text())["frames"]
    N = len(fit["pose"])
    T = lambda a: torch.as_tensor(np.asarray(a), dtype=torch.float32)  # noqa: E731
    width, height = (int(v) for v in fit["image_size"])
    fourcc = "mp4v" if dest.suffix.lower() == ".mp4" else "MJPG"

    def frames() -> Any:
        for i in range(N):
            name = listing[int(fit["frame"][i])]["file"]
            image = cv2.imread(str(capture.path("frames") / name), cv2.IMREAD_COLOR)
            if image is None:
                raise CaptureError(f"{capture.root}: frame image {name} is missing; rerun the frames stage")
            with torch.no_grad():
                verts = model.vertices(T(fit["shape"][None]), T(fit["expression"][i:i + 1]), T(fit["pose"][i:i + 1]),
                                       T(fit["translation"][i:i + 1]))[0]
            camera = PinholeCamera(float(fit["focal_px"][i]), float(fit["focal_px"][i]), float(fit["principal_px"][i, 0]),
                                   float(fit["principal_px"][i, 1]), fit["camera_rotation"][i].astype(np.float64),
                                   fit["camera_translation"][i].astype(np.float64), width, height)
            pixels = project(verts.double(), camera)[:, :2].numpy()
            cam_verts = verts.double().numpy() @ camera.rotation.T + camera.translation
            overlay = image.copy()
            cv2.polylines(overlay, _wire_segments(model, cam_verts, pixels), True, WIRE_BGR, 1, cv2.LINE_AA, shift=2)
            image = cv2.addWeighted(overlay, 0.55, image, 0.45, 0)
            for points, colour in ((fit["landmarks_px"][i], TRACKED_BGR), (fit["projected_px"][i], FITTED_BGR)):
                for x, y in np.round(points * 4).astype(np.int32):
                    cv2.circle(image, (int(x), int(y)), 8, colour, -1, cv2.LINE_AA, shift=2)
            caption = (f"video frame {int(fit['video_index'][i])}  t={float(fit['time_s'][i]):.2f}s  "
                       f"landmark error {100 * float(fit['reproj_iod_per_frame'][i]):.2f}% of eye distance")
            cv2.putText(image, caption, (10, 24), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 0, 0), 3, cv2.LINE_AA)
            cv2.putText(image, caption, (10, 24), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 255), 1, cv2.LINE_AA)
            yield image
            if progress is not None:
                progress.update((i + 1) / N, f"drawing frame {i + 1}/{N}")

    write_video(dest, frames(), fps, (width, height), fourcc)
    return {"preview": str(dest.resolve()), "frames": N, "fps": fps}
