"""Compare a fit with known ground truth (synthetic clips): geometry, rotation and focal-length errors.

Both sides follow the ``fit.npz`` conventions; the truth's camera is scaled to
the frame images the fit was made on when they differ in size (the frames
stage may resize the video). Frames are matched by their index in the video.
One thing a single camera cannot observe is the absolute size of the scene (a
head twice as large, twice as far, looks the same), so the geometry error is
measured after the one scale about the camera centre that best aligns the
whole fitted sequence with the truth (it changes no projection); the
unaligned error is reported too. The rotation error is also broken down by
how far the true head is turned (``by_yaw``), with the mean yaw error
towards the turn (negative: the fit sees the head turned less than it is).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..head.model import HeadModel, axis_angle_to_matrix

# |yaw| bands of the truth that the rotation error is broken down by: mediapipe's landmarks hold well within
# +-45 degrees and collapse towards a frontal face beyond ~60
YAW_BANDS_DEG = ((0.0, 45.0), (45.0, 60.0), (60.0, 180.0))


def _camera_space(model: HeadModel, params: dict[str, np.ndarray], rows: np.ndarray) -> np.ndarray:
    """(n, V, 3) vertices in the OpenCV camera frame for the given rows."""
    import torch

    T = lambda a: torch.as_tensor(np.asarray(a), dtype=torch.float64)  # noqa: E731
    with torch.no_grad():
        verts = model.vertices(T(params["shape"][None]), T(params["expression"][rows]), T(params["pose"][rows]),
                               T(params["translation"][rows])).numpy()
    R, t = params["camera_rotation"][rows].astype(np.float64), params["camera_translation"][rows].astype(np.float64)
    return np.einsum("nrc,nvc->nvr", R, verts) + t[:, None]


def truth_in_frame_pixels(truth: dict[str, np.ndarray], size: Any) -> dict[str, np.ndarray]:
    """The ground truth with its camera scaled to frame images of ``size`` = (width, height)."""
    scale = float(size[0]) / float(truth["image_size"][0])
    if abs(scale - 1.0) < 1e-9:
        return truth
    return {**truth, "focal_px": truth["focal_px"] * scale, "principal_px": truth["principal_px"] * scale,
            "image_size": np.asarray(size, np.int64)}


def compare_with_truth(model: HeadModel, fit: dict[str, np.ndarray], truth: dict[str, np.ndarray],
                       region: str = "face") -> dict[str, Any]:
    """Errors of ``fit`` against ``truth`` over the frames both have (matched by ``video_index``/``frame_index``)."""
    import torch

    if "image_size" in fit and "image_size" in truth:
        truth = truth_in_frame_pixels(truth, fit["image_size"])

    fit_index = np.asarray(fit.get("video_index", np.arange(len(fit["pose"]))))
    truth_index = np.asarray(truth.get("frame_index", truth.get("video_index", np.arange(len(truth["pose"])))))
    lookup = {int(v): k for k, v in enumerate(truth_index)}
    pairs = np.array([(k, lookup[int(v)]) for k, v in enumerate(fit_index) if int(v) in lookup])
    if not len(pairs):
        raise ValueError("the fit and the ground truth share no frame")
    mask = model.regions[region]
    fitted = _camera_space(model, fit, pairs[:, 0])[:, mask]
    true = _camera_space(model, truth, pairs[:, 1])[:, mask]
    scale = float((fitted * true).sum() / (fitted ** 2).sum())
    per_frame = np.linalg.norm(scale * fitted - true, axis=-1).mean(1) * 1000
    raw = np.linalg.norm(fitted - true, axis=-1).mean() * 1000

    def head_rotation(params: dict[str, np.ndarray], rows: np.ndarray) -> np.ndarray:
        root = axis_angle_to_matrix(torch.as_tensor(params["pose"][rows, 0], dtype=torch.float64)).numpy()
        return params["camera_rotation"][rows].astype(np.float64) @ root

    relative = np.einsum("nji,njk->nik", head_rotation(fit, pairs[:, 0]), head_rotation(truth, pairs[:, 1]))
    angle = np.degrees(np.arccos(np.clip((np.trace(relative, axis1=1, axis2=2) - 1) / 2, -1.0, 1.0)))
    fitted_yaw, true_yaw = _yaw_deg(head_rotation(fit, pairs[:, 0])), _yaw_deg(head_rotation(truth, pairs[:, 1]))
    by_yaw = []
    for low, high in YAW_BANDS_DEG:
        band = (np.abs(true_yaw) >= low) & (np.abs(true_yaw) < high)
        if band.any():       # signed towards the turn: < 0 means the fit sees the head turned less than it is
            toward = np.sign(true_yaw[band]) * (fitted_yaw[band] - true_yaw[band])
            by_yaw.append({"abs_yaw_deg": [low, high], "frames": int(band.sum()), "rotation_error_deg_mean": float(angle[band].mean()),
                           "yaw_error_deg_toward_turn": float(toward.mean())})
    focal_fit = float(np.mean(fit["focal_px"][pairs[:, 0]]))
    focal_true = float(np.mean(truth["focal_px"][pairs[:, 1]]))
    return {
        "frames_compared": int(len(pairs)),
        "vertex_error_mm_mean": float(per_frame.mean()),
        "vertex_error_mm_max_frame": float(per_frame.max()),
        "vertex_error_mm_per_frame": per_frame.tolist(),
        "vertex_error_mm_unaligned": float(raw),
        "scale_alignment": scale,
        "rotation_error_deg_mean": float(angle.mean()),
        "rotation_error_deg_max": float(angle.max()),
        "focal_error_rel": focal_fit / focal_true - 1.0,
        "by_yaw": by_yaw,
    }


def _yaw_deg(head_to_camera: np.ndarray) -> np.ndarray:
    """(n,) yaw of each head (OpenCV camera frame, the head's +z its forward) about the camera's vertical axis."""
    forward = head_to_camera[:, :, 2]
    return np.degrees(np.arctan2(forward[:, 0], -forward[:, 2]))
