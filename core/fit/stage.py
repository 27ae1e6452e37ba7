"""Stage ``fit``: the head model fitted to the tracked landmarks; writes ``fit.npz``.

A frame whose fitted head distance jumps against the kept frames around it
(``depth_jumps``: FaceMesh found the face too small or too large, and its
landmarks still fit) is left out of ``fit.npz`` with a warning, so no later
stage samples its pixels onto the wrong texels.

``fit.npz`` (conventions in ``core/fit/optimize.py``; the synthetic ground
truth of ``core/synth/head_clip.py`` uses the same keys):

- ``shape`` (S,) identity coefficients; per frame ``expression`` (N, E),
  ``pose`` (N, J, 3) axis-angle (root, neck, jaw, eye_left, eye_right),
  ``translation`` (N, 3) metres
- camera per frame: ``focal_px`` (N,), ``principal_px`` (N, 2),
  ``camera_rotation`` (N, 3, 3) and ``camera_translation`` (N, 3) (world to
  OpenCV camera: ``PinholeCamera(f, f, cx, cy, R, t, w, h)`` renders the
  frame), ``image_size`` (2,) width, height of the frame images
- ``frame`` (N,) position in ``frames/frames.json``, ``video_index``,
  ``time_s``; ``landmarks_px`` (N, 478, 2) observed, ``projected_px`` fitted,
  ``weights`` (N, 478), ``reproj_iod_per_frame`` (N,), ``iod_px`` (N,)
- ``expression_names``, ``joint_names``, ``model_source``, ``model_fingerprint``
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import TOOL_NAME
from ..atomic import atomic_write_npz, read_npz
from ..errors import CaptureError
from ..stages import Stage, StageContext
from ..frames import FRAMES_DIR, read_frame
from ..track.stage import TRACKING_NPZ, load_tracking
from .optimize import CAMERA_ROTATION, FitOptions, fit_landmarks

FIT_NPZ = "fit.npz"
FULL_FRAME_DIAGONAL_MM = 43.27     # a 35 mm film frame's diagonal: the reference of "35 mm equivalent" focal lengths
DEPTH_NEIGHBOURS = 3               # a frame's distance is judged against this many kept frames either side of it ...
DEPTH_JUMP = 1.25                  # ... and it is a tracking failure when it is this many times nearer or farther
                                   # (measured: FaceMesh shrank a dim forest face 30-35% for two frames: 1.45x, 1.67x)


@dataclass(frozen=True)
class FitParams:
    focal_mm35: float = 0.0        # the camera's 35 mm-equivalent focal length if known (0: estimate it)
    shape_components: int = 50     # identity components to fit
    identity_frames: int = 40      # frames used to fit the identity
    flame_model: str = ""          # FLAME model file to fit instead of the open head
    flame_uv: str = ""             # FLAME UV template (.obj) for that model
    view_dependent_landmarks: bool = True  # follow how mediapipe's landmarks slide as the face turns
    silhouette: bool = True        # keep the whole head inside the person's outline in every frame (pins turned faces)


def focal_px_from_mm35(focal_mm35: float, image_size: tuple[int, int]) -> float:
    """Pixels from a 35 mm-equivalent focal length (defined on the frame diagonal)."""
    return focal_mm35 / FULL_FRAME_DIAGONAL_MM * math.hypot(*image_size)


def run_fit(ctx: StageContext) -> None:
    from ..head.source import load_head

    params: FitParams = ctx.params
    tracking = load_tracking(ctx.input(TRACKING_NPZ))
    image_size = tuple(int(v) for v in tracking["image_size"])
    progress = ctx.progress
    progress.update(0.0, "loading the head model", force=True)
    model = load_head(params.flame_model or None, params.flame_uv or None)
    options = FitOptions(
        shape_components=params.shape_components, identity_frames=params.identity_frames,
        focal_px=focal_px_from_mm35(params.focal_mm35, image_size) if params.focal_mm35 > 0 else 0.0,
    )
    view = None
    if params.view_dependent_landmarks:
        from ..head.view_landmarks import get_view_landmarks

        progress.update(0.01, "placing view-dependent landmarks (first time only, ~10 s)", force=True)
        view = get_view_landmarks(model)
    silhouette = None
    if params.silhouette:
        progress.update(0.015, "finding the person's outline in the frames", force=True)
        silhouette = frame_silhouettes(ctx.input(FRAMES_DIR), tracking["frame"], image_size)
    result = fit_landmarks(model, tracking["landmarks"][..., :2], tracking["confidence"], image_size,
                           times_s=tracking["time_s"], options=options, progress=progress.sub(0.03, 0.97),
                           cancel=progress.progress.cancel, view=view, silhouette=silhouette)
    keep = ~depth_jumps(result.translation[:, 2])
    left_out = [int(v) for v in tracking["video_index"][~keep]]
    if left_out:
        plural = "s" if len(left_out) > 1 else ""
        ctx.warn(f"{len(left_out)} frame{plural} left out (video frame{plural} {', '.join(map(str, left_out))}): the landmarks put the head more than {DEPTH_JUMP}x nearer or farther "
                 "than in the frames around, a tracking failure")
    N = int(keep.sum())
    atomic_write_npz(
        ctx.output(FIT_NPZ), shape=result.shape, expression=result.expression[keep], pose=result.pose[keep],
        translation=result.translation[keep], focal_px=np.full(N, result.focal_px, np.float32),
        principal_px=np.tile(result.principal_px, (N, 1)).astype(np.float32),
        camera_rotation=np.tile(CAMERA_ROTATION, (N, 1, 1)).astype(np.float32), camera_translation=np.zeros((N, 3), np.float32),
        image_size=np.array(image_size, np.int32), frame=tracking["frame"][keep], video_index=tracking["video_index"][keep],
        time_s=tracking["time_s"][keep], landmarks_px=tracking["landmarks"][keep][..., :2],
        projected_px=result.projected_px[keep], weights=result.weights[keep],
        reproj_iod_per_frame=result.reproj_iod_per_frame[keep].astype(np.float32), iod_px=result.iod_px[keep].astype(np.float32),
        expression_names=np.array(model.expression_names), joint_names=np.array(model.joint_names),
        model_source=np.array(model.source), model_fingerprint=np.array(str(model.metadata.get("fingerprint", ""))),
    )
    per_frame = result.reproj_iod_per_frame[keep]
    worst = int(np.argmax(per_frame))
    ctx.metrics.update({
        "frames": N, "model": model.source,
        "frames_left_out": left_out,
        "reproj_iod_mean": round(float(per_frame.mean()), 5),
        "reproj_iod_max": round(float(per_frame.max()), 5),
        "reproj_iod_per_frame": [round(float(v), 5) for v in per_frame],
        "reproj_px_median": result.info.get("reproj_px_median"),
        "focal_px": round(result.focal_px, 2), "focal_known": result.info["focal_known"],
        "focal_pnp_estimate_px": result.info.get("focal_pnp_estimate_px"),
        "identity_frames": result.info["identity_frames"], "optimizer_seconds": result.info["seconds"],
        "silhouette_missed_frames": None if silhouette is None else int(silhouette.missed.sum()),
    })
    if per_frame[worst] > 0.05:
        ctx.warn(f"frame {int(tracking['video_index'][keep][worst])} of the video fits poorly (landmark error {100 * per_frame[worst]:.1f}% "
                 "of the eye distance); check it with `studio-avatar fit-preview`")


def depth_jumps(depth: np.ndarray, neighbours: int = DEPTH_NEIGHBOURS, jump: float = DEPTH_JUMP) -> np.ndarray:
    """(N,) bool: frames (in time order) whose head distance ``depth`` (N,) is more than ``jump`` times off the median
    of the ``neighbours`` frames either side. A head does not move that much between neighbouring kept frames; a face
    FaceMesh found too small or too large (on a dim frame, half turned away) does, while its landmarks still fit."""
    distance = np.abs(np.asarray(depth, np.float64))
    out = np.zeros(len(distance), bool)
    for i in range(len(distance)):
        around = np.r_[distance[max(0, i - neighbours): i], distance[i + 1: i + 1 + neighbours]]
        if len(around) >= 2:
            out[i] = abs(np.log(distance[i] / np.median(around))) > np.log(jump)
    if out.all():
        out[:] = False                           # nothing to judge against: keep them all
    return out


def frame_silhouettes(frames_dir: Any, positions: np.ndarray, image_size: tuple[int, int]) -> Any:
    """The person's silhouette maps of the tracked frames (positions in ``frames.json``), read one at a time."""
    import json

    from ..track.silhouette import person_silhouettes

    entries = json.loads((frames_dir / "frames.json").read_text())["frames"]
    frames = (read_frame(frames_dir / entries[position]["file"]) for position in np.asarray(positions).astype(int))
    return person_silhouettes(frames, len(positions), image_size)


def load_fit(path: str) -> dict[str, np.ndarray]:
    return read_npz(path)


def fit_model_files(capture: Any) -> tuple[str, str]:
    """The FLAME model and UV files the capture's fit used ("" for the open head); CaptureError if one is gone."""
    root = capture.root
    params = (capture.stage_record("fit") or {}).get("params", {})
    flame_model, flame_uv = str(params.get("flame_model") or ""), str(params.get("flame_uv") or "")
    for path in (flame_model, flame_uv):
        if path and not os.path.isfile(path):
            raise CaptureError(f"{root}: the fit used the FLAME file {path}, which is missing; put it back, or re-run the fit "
                               f"with another model (`{TOOL_NAME} reconstruct VIDEO -o {root} --flame PKL --force fit`)")
    return flame_model, flame_uv


def check_fitted_model(capture_root: Any, model: Any, fit_source: str, fit_fingerprint: str, shape_length: int) -> None:
    """Refuse ``model`` unless the fit was made with it: its shape coefficients and UVs would not match."""
    fingerprint = str(model.metadata.get("fingerprint", ""))
    if (model.source, fingerprint) != (fit_source, fit_fingerprint) or shape_length > model.num_shape:
        raise CaptureError(
            f"{capture_root}: the fit was made with another head model ({_model_label(fit_source, fit_fingerprint)}) "
            f"than the one available now ({_model_label(model.source, fingerprint)}), e.g. after an update of the open head; "
            f"re-run the fit and the stages after it: `{TOOL_NAME} reconstruct VIDEO -o {capture_root} --force fit`"
        )


def load_fitted_model(capture: Any, fit: dict[str, np.ndarray]) -> Any:
    """The head model ``fit`` (the capture's fit.npz) was fitted with, checked by fingerprint."""
    from ..head.source import load_head

    flame_model, flame_uv = fit_model_files(capture)
    model = load_head(flame_model or None, flame_uv or None)
    check_fitted_model(capture.root, model, str(fit["model_source"]), str(fit["model_fingerprint"]),
                       int(np.asarray(fit["shape"]).size))
    return model


def _model_label(source: str, fingerprint: str) -> str:
    return f"{source} {fingerprint[:12]}".strip()


FIT_STAGE = Stage(
    name="fit",
    version=3,
    run=run_fit,
    outputs=(FIT_NPZ,),
    inputs=(TRACKING_NPZ, FRAMES_DIR),
    params_type=FitParams,
    description="fit the head model's identity and per-frame pose, expression and camera to the landmarks",
)
