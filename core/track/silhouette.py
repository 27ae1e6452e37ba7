"""Where each kept frame shows the person: mediapipe's selfie segmentation, as a distance-outside map for the fit.

Landmarks pin a turned face's yaw poorly: beyond ~60 degrees FaceMesh's mesh
hugs the visible profile whatever the turn, and the landmark fit
underestimated the yaw there by 12-17 degrees on the quality bench's
synthetic clips. The outline of the head does not slide: every point of the
head projects inside the person's silhouette. The person mask (mediapipe
0.10.21's legacy selfie segmentation, general model, bundled in its wheel)
also holds hair, the body, hands and anything the person holds, so it is
only used one-sided: the fit pays for head points that project *outside* the
mask (``core/fit/optimize.py``), never for mask pixels the head does not
cover.

``SilhouetteMaps.outside`` holds, per frame, the distance in frame pixels
from each pixel to the nearest person pixel (0 inside), at ``scale`` of the
frame's size. A frame whose mask holds too little (the segmentation missed
the person) gets an all-zero map: no silhouette term there.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..native_stderr import native_stderr_captured

MAP_LONG_SIDE = 320          # distance maps are this many pixels along the frame's longer side
PERSON_THRESHOLD = 0.5       # segmentation confidence above this is the person
MIN_PERSON_FRACTION = 0.01   # a mask covering less of the frame than this is a miss


@dataclass
class SilhouetteMaps:
    outside: np.ndarray      # (N, h, w) float32: distance (frame pixels) to the person mask, 0 inside
    scale: float             # map pixels per frame pixel
    missed: np.ndarray       # (N,) bool: frames whose segmentation found no person


def outside_distance(person: np.ndarray, scale: float) -> np.ndarray:
    """(h, w) float32 distance in frame pixels from each pixel of a (h, w) bool mask at ``scale`` to the mask."""
    import cv2

    if not person.any():
        return np.zeros(person.shape, np.float32)
    return (cv2.distanceTransform((~person).astype(np.uint8), cv2.DIST_L2, 5) / scale).astype(np.float32)


def person_silhouettes(frames_bgr: Any, count: int, frame_size: tuple[int, int]) -> SilhouetteMaps:
    """Silhouette maps of ``count`` BGR frames (an iterable) of ``frame_size`` (width, height)."""
    import cv2

    width, height = frame_size
    scale = MAP_LONG_SIDE / max(width, height)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    outside = np.zeros((count, size[1], size[0]), np.float32)
    missed = np.zeros(count, bool)
    with native_stderr_captured():
        import mediapipe as mp

        with mp.solutions.selfie_segmentation.SelfieSegmentation(model_selection=0) as segmenter:
            for k, frame in enumerate(frames_bgr):
                small = cv2.resize(frame, size, interpolation=cv2.INTER_AREA)
                person = segmenter.process(np.ascontiguousarray(small[:, :, ::-1])).segmentation_mask > PERSON_THRESHOLD
                missed[k] = person.mean() < MIN_PERSON_FRACTION
                if not missed[k]:
                    outside[k] = outside_distance(person, scale)
    return SilhouetteMaps(outside, scale, missed)
