"""Stage ``track``: landmarks of the followed face on each frame the ``frames`` stage kept.

Per frame, the face box found by the ``frames`` stage (the one person we
follow) is cropped with a margin, so another person in the picture cannot be
picked up, and mediapipe 0.10.21's legacy FaceMesh (``refine_landmarks``: 468
mesh points + 10 iris points) runs on the crop and on its mirror image. The
mirror run, mapped back through the left/right partner table, gives a second
opinion on every landmark: where the two agree the landmark is well defined,
where they disagree (the face contour, the far side of a turned face,
occluded points) it is not. The disagreement becomes a per-landmark
confidence in 0..1.

Frames where no mesh is found, or the mesh lands off the followed face, are
dropped and counted with the reason. Writes ``tracking.npz``:

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
from typing import Any

import numpy as np

from ..atomic import atomic_write_npz, read_npz
from ..errors import CaptureError
from ..native_stderr import native_stderr_captured
from ..stages import Stage, StageContext

NUM_LANDMARKS = 478
TRACKING_NPZ = "tracking.npz"
CROP_MARGIN = 2.0          # crop side = this x the larger side of the detector's face box
CROP_MAX_SIDE = 640        # crops are shrunk to at most this many pixels before FaceMesh
AGREEMENT_TOLERANCE = 0.03  # disagreement (share of the face size) at which confidence falls to exp(-1/2)
_MIRROR_FILE = Path(__file__).with_name("landmark_mirror.json")


@dataclass(frozen=True)
class TrackParams:
    min_frames: int = 8                 # fewer tracked frames than this is an error
    detection_confidence: float = 0.5   # FaceMesh's face detector threshold
    mirror_check: bool = True           # run FaceMesh on the mirrored crop too, for per-landmark confidence


def landmark_mirror() -> np.ndarray:
    """(478,) the left/right partner of each landmark (itself on the midline), -1 where unknown."""
    table = np.array(json.loads(_MIRROR_FILE.read_text())["partner"], np.int64)
    assert table.shape == (NUM_LANDMARKS,)
    return table


class FaceMeshTracker:
    """mediapipe FaceMesh on face crops; use as a context manager (it silences mediapipe's native logging)."""

    def __init__(self, detection_confidence: float = 0.5, mirror_check: bool = True) -> None:
        self.detection_confidence = detection_confidence
        self.mirror_check = mirror_check
        self.partner = landmark_mirror()

    def __enter__(self) -> "FaceMeshTracker":
        self._quiet = native_stderr_captured()
        self._quiet.__enter__()
        import mediapipe as mp

        self._mesh = mp.solutions.face_mesh.FaceMesh(
            static_image_mode=True, refine_landmarks=True, max_num_faces=1,
            min_detection_confidence=self.detection_confidence)
        return self

    def __exit__(self, *exc: Any) -> None:
        try:
            self._mesh.close()
        finally:
            self._quiet.__exit__(*exc)

    def _run(self, rgb: np.ndarray) -> np.ndarray | None:
        result = self._mesh.process(rgb)
        if not result.multi_face_landmarks:
            return None
        height, width = rgb.shape[:2]
        points = np.array([(p.x, p.y, p.z) for p in result.multi_face_landmarks[0].landmark], np.float64)
        if len(points) != NUM_LANDMARKS:
            return None
        return points * np.array([width, height, width])

    def track(self, image_bgr: np.ndarray, face_box: np.ndarray) -> tuple[np.ndarray | None, np.ndarray | None, str]:
        """Landmarks (478, 3) in image pixels and disagreement (478,) in pixels, or None with the reason."""
        import cv2

        height, width = image_bgr.shape[:2]
        x0, y0, x1, y1 = face_box
        side = CROP_MARGIN * max(x1 - x0, y1 - y0)
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        left, top = int(round(cx - side / 2)), int(round(cy - side / 2))
        size = int(round(side))
        crop = _crop_padded(image_bgr, left, top, size)
        scale = min(1.0, CROP_MAX_SIDE / size)
        if scale < 1.0:
            crop = cv2.resize(crop, (round(size * scale), round(size * scale)), interpolation=cv2.INTER_AREA)
        rgb = np.ascontiguousarray(crop[:, :, ::-1])
        found = self._run(rgb)
        if found is None:
            return None, None, "no face mesh found"
        to_image = np.array([1 / scale, 1 / scale, 1 / scale])
        landmarks = found * to_image + np.array([left, top, 0.0])
        centre = landmarks[:, :2].mean(0)
        if not (x0 - 0.25 * (x1 - x0) <= centre[0] <= x1 + 0.25 * (x1 - x0) and y0 - 0.25 * (y1 - y0) <= centre[1] <= y1 + 0.25 * (y1 - y0)):
            return None, None, "mesh landed off the followed face"
        disagreement = np.full(NUM_LANDMARKS, np.nan)
        if self.mirror_check:
            flipped = self._run(np.ascontiguousarray(rgb[:, ::-1]))
            if flipped is not None:
                flipped[:, 0] = rgb.shape[1] - flipped[:, 0]
                back = flipped * to_image + np.array([left, top, 0.0])
                known = self.partner >= 0
                disagreement[known] = np.linalg.norm(back[self.partner[known], :2] - landmarks[known, :2], axis=1)
        return landmarks, disagreement, ""


def _crop_padded(image: np.ndarray, left: int, top: int, size: int) -> np.ndarray:
    """A size x size crop whose top-left is (left, top); outside the image is filled by edge replication."""
    import cv2

    height, width = image.shape[:2]
    pad = [max(0, -top), max(0, top + size - height), max(0, -left), max(0, left + size - width)]
    if any(pad):
        image = cv2.copyMakeBorder(image, *pad, cv2.BORDER_REPLICATE)
        left, top = left + pad[2], top + pad[0]
    return image[top:top + size, left:left + size]


def confidence_from_disagreement(disagreement: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """(N, 478) confidence 0..1 from the mirror disagreement relative to each frame's face size (1 where unknown)."""
    extent = np.ptp(landmarks[..., :2], axis=1)                            # (N, 2)
    face_size = np.sqrt(extent[:, 0] * extent[:, 1])[:, None]
    ratio = disagreement / (AGREEMENT_TOLERANCE * np.maximum(face_size, 1.0))
    return np.where(np.isfinite(ratio), np.exp(-0.5 * ratio ** 2), 1.0).astype(np.float32)


def run_track(ctx: StageContext) -> None:
    import cv2

    params: TrackParams = ctx.params
    frames_dir = ctx.input("frames/")
    listing = json.loads((frames_dir / "frames.json").read_text())
    entries = listing["frames"]
    rows, dropped = [], {}
    with FaceMeshTracker(params.detection_confidence, params.mirror_check) as tracker:
        for k, entry in enumerate(ctx.progress.iterate(entries, total=len(entries), message="landmarks on frame {done}/{total}")):
            image = cv2.imread(str(frames_dir / entry["file"]), cv2.IMREAD_COLOR)
            if image is None:
                raise CaptureError(f"{frames_dir / entry['file']}: cannot read this frame; rerun the frames stage")
            landmarks, disagreement, why = tracker.track(image, np.asarray(entry["face_box"], np.float64))
            if landmarks is None:
                dropped[why] = dropped.get(why, 0) + 1
                continue
            rows.append((k, entry, landmarks, disagreement))
    total = len(entries)
    reasons = ", ".join(f"{why}: {n}" for why, n in sorted(dropped.items()))
    if len(rows) < params.min_frames:
        raise CaptureError(
            f"face landmarks were found on only {len(rows)} of the {total} selected frames ({reasons or 'none dropped'}); "
            f"at least {params.min_frames} are needed. Film the face larger, sharper and better lit"
        )
    if dropped:
        ctx.warn(f"{total - len(rows)} of {total} frames dropped by the tracker ({reasons})")

    landmarks = np.stack([r[2] for r in rows]).astype(np.float32)
    disagreement = np.stack([r[3] for r in rows]).astype(np.float32)
    confidence = confidence_from_disagreement(disagreement, landmarks)
    bbox = np.concatenate([landmarks[..., :2].min(1), landmarks[..., :2].max(1)], 1)
    atomic_write_npz(ctx.output(TRACKING_NPZ), frame=np.array([r[0] for r in rows], np.int32),
                     video_index=np.array([r[1]["index"] for r in rows], np.int64),
                     time_s=np.array([r[1]["time_s"] for r in rows], np.float64),
                     landmarks=landmarks, confidence=confidence, disagreement_px=disagreement,
                     bbox=bbox.astype(np.float32), image_size=np.array(listing["size"], np.int32))
    measured = np.isfinite(disagreement)
    ctx.metrics.update({
        "frames_total": total, "frames_tracked": len(rows), "frames_dropped": dict(sorted(dropped.items())),
        "confidence_mean": round(float(confidence.mean()), 4),
        "mirror_disagreement_px_median": round(float(np.median(disagreement[measured])), 3) if measured.any() else None,
    })


def load_tracking(path: str | Path) -> dict[str, np.ndarray]:
    return read_npz(path)


TRACK_STAGE = Stage(
    name="track",
    version=1,
    run=run_track,
    outputs=(TRACKING_NPZ,),
    inputs=("frames/",),
    params_type=TrackParams,
    description="478 face landmarks per selected frame, with per-landmark confidence",
)
