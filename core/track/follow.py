"""Following one face through a video in a single pass: mediapipe's face detector and FaceMesh on a crop around it.

``FaceFollower`` is fed every scanned frame in order. It finds the largest
face with the detector (at a small analysis size), then runs mediapipe
0.10.21's legacy FaceMesh (``refine_landmarks``: 468 mesh points + 10 iris
points) on a square crop around that face, so another person in the picture
cannot be picked up and the detector does not look at the whole frame again.
The crop stays where it is while the face stays well inside it and moves when
the face drifts towards its border or changes size (re-centring it on every
frame's landmarks was measured to make the fitted rotation worse: 3.3 -> 3.6
degrees). When the mesh is lost the next frame starts again from the detector.

FaceMesh runs per image (its static mode), not in its streaming mode: on the
bench's 720p clip the streaming mode's landmarks, tracked from the previous
frame, are closer to the truth on average, yet the fit's head rotation got
worse with them (3.3 -> 4.0 degrees mean, known focal length 3.6 -> 4.3),
for 30% less time (bench/README.md, track_fit).

``mirror_disagreement`` gives a second opinion on the landmarks of the frames
finally kept: FaceMesh on their mirrored crops, mapped back through the
left/right partner table. Where the two agree a landmark is well defined;
where they disagree (the face contour, the far side of a turned face, occluded
points) it is not. The ``track`` stage turns that into a confidence.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..native_stderr import native_stderr_captured

NUM_LANDMARKS = 478
DETECTION_SIDE = 640       # longer side of the frames the face detector looks at
CROP_MARGIN = 2.0          # crop side = this x the larger side of the face's box
CROP_SIDE = 384            # crops are resized to this many pixels (FaceMesh's model sees the face at 192 px)
RECROP_BORDER = 0.08       # the crop moves when the face comes this close (share of the crop side) to its border ...
RECROP_SCALE = 0.25        # ... or when the face's size differs this much from the size the crop was made for
_MIRROR_FILE = Path(__file__).with_name("landmark_mirror.json")


def landmark_mirror() -> np.ndarray:
    """(478,) the left/right partner of each landmark (itself on the midline), -1 where unknown."""
    table = np.array(json.loads(_MIRROR_FILE.read_text())["partner"], np.int64)
    assert table.shape == (NUM_LANDMARKS,)
    return table


@dataclass
class Sighting:
    """The followed face on one frame."""

    landmarks: np.ndarray      # (478, 3) x, y in frame pixels; z in the same units (mediapipe's depth, smaller = nearer)
    crop: np.ndarray           # (CROP_SIDE, CROP_SIDE, 3) RGB: what FaceMesh saw
    crop_origin: tuple[int, int, float]   # left, top (frame pixels) and scale (crop pixels per frame pixel)

    @property
    def box(self) -> np.ndarray:
        """(4,) x0, y0, x1, y1 of the landmarks, frame pixels."""
        return np.concatenate([self.landmarks[:, :2].min(0), self.landmarks[:, :2].max(0)])


class FaceFollower:
    """Detector + FaceMesh following the largest face; use as a context manager (it silences mediapipe)."""

    def __init__(self, detection_confidence: float = 0.5) -> None:
        self.detection_confidence = detection_confidence
        self._crop: tuple[int, int, int] | None = None    # left, top, side in frame pixels; None: find the face first

    def __enter__(self) -> "FaceFollower":
        self._quiet = native_stderr_captured()
        self._quiet.__enter__()
        import mediapipe as mp

        self._detector = mp.solutions.face_detection.FaceDetection(
            model_selection=0, min_detection_confidence=self.detection_confidence)
        self._mesh = mp.solutions.face_mesh.FaceMesh(
            static_image_mode=True, refine_landmarks=True, max_num_faces=1,
            min_detection_confidence=self.detection_confidence)
        return self

    def __exit__(self, *exc: Any) -> None:
        try:
            self._mesh.close()
            self._detector.close()
        finally:
            self._quiet.__exit__(*exc)

    def detect(self, image_bgr: np.ndarray) -> list[np.ndarray]:
        """Every face the detector finds: (4,) boxes x0, y0, x1, y1 relative to the frame (0..1), largest first."""
        from ..video import downscale

        small = downscale(image_bgr, DETECTION_SIDE)
        result = self._detector.process(np.ascontiguousarray(small[:, :, ::-1]))
        boxes = []
        for detection in result.detections or ():
            box = detection.location_data.relative_bounding_box
            x0, y0 = max(0.0, box.xmin), max(0.0, box.ymin)
            x1, y1 = min(1.0, box.xmin + box.width), min(1.0, box.ymin + box.height)
            if x1 - x0 > 0.01 and y1 - y0 > 0.01:
                boxes.append(np.array([x0, y0, x1, y1]))
        return sorted(boxes, key=lambda b: -(b[2] - b[0]) * (b[3] - b[1]))

    def follow(self, image_bgr: np.ndarray, faces: list[np.ndarray] | None = None) -> Sighting | None:
        """The followed face on the next frame, or None (then the next call looks for the face again).

        ``faces``: this frame's ``detect`` result when the caller already has it.
        """
        height, width = image_bgr.shape[:2]
        if self._crop is None:
            faces = self.detect(image_bgr) if faces is None else faces
            if not faces:
                return None
            self._crop = _crop_around(faces[0] * np.array([width, height, width, height]))
        left, top, side = self._crop
        scale = CROP_SIDE / side
        crop = _crop_padded(image_bgr, left, top, side, scale)
        found = _mesh_points(self._mesh, crop)
        if found is None:
            self._crop = None
            return None
        landmarks = found / scale + np.array([left, top, 0.0])
        sighting = Sighting(landmarks, crop, (left, top, scale))
        self._crop = self._crop if _crop_still_fits(self._crop, sighting.box) else _crop_around(sighting.box)
        return sighting


def _mesh_points(mesh: Any, rgb: np.ndarray) -> np.ndarray | None:
    """FaceMesh's 478 points in ``rgb``'s pixels (z scaled like x), or None."""
    result = mesh.process(rgb)
    if not result.multi_face_landmarks:
        return None
    points = np.array([(p.x, p.y, p.z) for p in result.multi_face_landmarks[0].landmark], np.float64)
    if len(points) != NUM_LANDMARKS:
        return None
    height, width = rgb.shape[:2]
    return points * np.array([width, height, width])


def _crop_around(box: np.ndarray) -> tuple[int, int, int]:
    """The square crop (left, top, side) centred on a face box (frame pixels)."""
    x0, y0, x1, y1 = box
    side = max(8, int(round(CROP_MARGIN * max(x1 - x0, y1 - y0))))
    return int(round((x0 + x1 - side) / 2)), int(round((y0 + y1 - side) / 2)), side


def _crop_still_fits(crop: tuple[int, int, int], box: np.ndarray) -> bool:
    left, top, side = crop
    border = RECROP_BORDER * side
    inside = box[0] >= left + border and box[1] >= top + border and box[2] <= left + side - border and box[3] <= top + side - border
    made_for = side / CROP_MARGIN
    return inside and abs(max(box[2] - box[0], box[3] - box[1]) / made_for - 1.0) <= RECROP_SCALE


def _crop_padded(image: np.ndarray, left: int, top: int, side: int, scale: float) -> np.ndarray:
    """RGB crop of the square (left, top, side) resized by ``scale``; outside the image is edge-replicated."""
    import cv2

    height, width = image.shape[:2]
    pad = [max(0, -top), max(0, top + side - height), max(0, -left), max(0, left + side - width)]
    if any(pad):
        image = cv2.copyMakeBorder(image, *pad, cv2.BORDER_REPLICATE)
        left, top = left + pad[2], top + pad[0]
    crop = image[top:top + side, left:left + side]
    size = max(1, round(side * scale))
    # bilinear: FaceMesh resamples its region of interest again, and an area filter costs ~5x more
    return cv2.cvtColor(cv2.resize(crop, (size, size), interpolation=cv2.INTER_LINEAR), cv2.COLOR_BGR2RGB)


def mirror_disagreement(sightings: list[Sighting], detection_confidence: float = 0.5) -> np.ndarray:
    """(N, 478) pixel distance between each landmark and its partner's position found on the mirrored crop.

    NaN where the mirrored crop shows no face or the landmark has no partner.
    """
    partner = landmark_mirror()
    known = partner >= 0
    out = np.full((len(sightings), NUM_LANDMARKS), np.nan)
    with native_stderr_captured():
        import mediapipe as mp

        with mp.solutions.face_mesh.FaceMesh(static_image_mode=True, refine_landmarks=True, max_num_faces=1,
                                             min_detection_confidence=detection_confidence) as mesh:
            for k, sighting in enumerate(sightings):
                flipped = _mesh_points(mesh, np.ascontiguousarray(sighting.crop[:, ::-1]))
                if flipped is None:
                    continue
                left, top, scale = sighting.crop_origin
                flipped[:, 0] = sighting.crop.shape[1] - flipped[:, 0]
                back = flipped / scale + np.array([left, top, 0.0])
                out[k, known] = np.linalg.norm(back[partner[known], :2] - sighting.landmarks[known, :2], axis=1)
    return out
