"""Stage ``track``: the followed face's landmarks on each kept frame, with a per-landmark confidence.

The landmarks themselves are found in the ``frames`` stage's single pass over
the video (``track.follow``: FaceMesh on a crop that follows the
face, ``refine_landmarks``: 468 mesh points + 10 iris points), together with
the mirror check: FaceMesh on each kept frame's mirrored crop, mapped back
through the left/right partner table. This stage turns the disagreement of the
two into a per-landmark confidence in 0..1 (where they agree the landmark is
well defined; the face contour, the far side of a turned face and occluded
points are not) and writes ``tracking.npz``:

- ``frame`` (N,) position in ``frames/frames.json``; ``video_index`` (N,),
  ``time_s`` (N,)
- ``landmarks`` (N, 478, 3) float32: x, y in pixels of the frame image, z in
  the same pixel units (mediapipe's relative depth, smaller = nearer)
- ``confidence`` (N, 478) float32 and ``disagreement_px`` (N, 478)
- ``bbox`` (N, 4) the landmarks' box x0, y0, x1, y1; ``image_size`` (2,) width, height
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..atomic import atomic_write_npz, read_npz
from ..errors import CaptureError
from ..stages import Stage, StageContext
from .follow import NUM_LANDMARKS

TRACKING_NPZ = "tracking.npz"
AGREEMENT_TOLERANCE = 0.03  # disagreement (share of the face size) at which confidence falls to exp(-1/2)


@dataclass(frozen=True)
class TrackParams:
    min_frames: int = 8                 # fewer tracked frames than this is an error


def confidence_from_disagreement(disagreement: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """(N, 478) confidence 0..1 from the mirror disagreement relative to each frame's face size (1 where unknown)."""
    extent = np.ptp(landmarks[..., :2], axis=1)                            # (N, 2)
    face_size = np.sqrt(extent[:, 0] * extent[:, 1])[:, None]
    ratio = disagreement / (AGREEMENT_TOLERANCE * np.maximum(face_size, 1.0))
    return np.where(np.isfinite(ratio), np.exp(-0.5 * ratio ** 2), 1.0).astype(np.float32)


def run_track(ctx: StageContext) -> None:
    params: TrackParams = ctx.params
    frames_dir = ctx.input("frames/")
    listing = json.loads((frames_dir / "frames.json").read_text())
    entries = listing["frames"]
    try:
        found = read_npz(frames_dir / "landmarks.npz")
    except FileNotFoundError:
        raise CaptureError(f"{frames_dir}: the frames have no landmarks (written by an older version); "
                           "rerun the frames stage") from None
    landmarks, disagreement = found["landmarks"], found["disagreement_px"]
    if landmarks.shape != (len(entries), NUM_LANDMARKS, 3) or disagreement.shape != landmarks.shape[:2]:
        raise CaptureError(f"{frames_dir}: landmarks.npz does not match frames.json; rerun the frames stage")
    if len(entries) < params.min_frames:
        raise CaptureError(
            f"face landmarks were found on only {len(entries)} frames; at least {params.min_frames} are needed. "
            "Film the face larger, sharper and better lit"
        )
    ctx.progress.update(0.5, "landmark confidence")
    confidence = confidence_from_disagreement(disagreement, landmarks)
    bbox = np.concatenate([landmarks[..., :2].min(1), landmarks[..., :2].max(1)], 1)
    atomic_write_npz(ctx.output(TRACKING_NPZ), frame=np.arange(len(entries), dtype=np.int32),
                     video_index=np.array([e["index"] for e in entries], np.int64),
                     time_s=np.array([e["time_s"] for e in entries], np.float64),
                     landmarks=landmarks.astype(np.float32), confidence=confidence,
                     disagreement_px=disagreement.astype(np.float32),
                     bbox=bbox.astype(np.float32), image_size=np.array(listing["size"], np.int32))
    measured = np.isfinite(disagreement)
    ctx.metrics.update({
        "frames_total": len(entries), "frames_tracked": len(entries),
        "mirror_checked": int(measured.any(1).sum()),
        "confidence_mean": round(float(confidence.mean()), 4),
        "mirror_disagreement_px_median": round(float(np.median(disagreement[measured])), 3) if measured.any() else None,
    })


def load_tracking(path: str | Path) -> dict[str, np.ndarray]:
    return read_npz(path)


TRACK_STAGE = Stage(
    name="track",
    version=2,
    run=run_track,
    outputs=(TRACKING_NPZ,),
    inputs=("frames/",),
    params_type=TrackParams,
    description="478 face landmarks per kept frame, with per-landmark confidence",
)
