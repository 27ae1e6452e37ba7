"""Stage ``frames``: scan the video, follow one face, and keep a well-spread set of good frames.

Two streaming passes over the source (one decoded frame in memory at a time):

1. **scan** every frame (every ``stride``-th on very long clips) at a small
   analysis size: mediapipe's face detector, sharpness (variance of the
   Laplacian of the face crop at a fixed size), exposure (mean level and
   clipped share in the face), a rough yaw from the detector's keypoints.
   Detections are linked into tracks by overlap; the largest consistent track
   is the person we follow (a warning names any other face seen).
2. **select** up to ``max_frames`` frames of that track: the best frame of
   each yaw bin first (so the whole turn is covered), then frames spread in
   time, each weighted by its quality score; then decode just those at the
   working resolution (``max_side``) and write ``frames/NNNN.png``.

``frames/frames.json`` lists, per kept frame, its index and time in the video,
the face box (in the written image's pixels), the scores and why it was
chosen. Owns nothing else: landmarks are the ``track`` stage's job.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import CaptureError
from .native_stderr import native_stderr_captured
from .stages import Stage, StageContext
from .video import iter_frames, iter_frames_at

FRAMES_JSON = "frames/frames.json"
ANALYSIS_SIDE = 640              # longer side of the frames the scan looks at
SHARPNESS_CROP = 128             # face crops are resized to this before measuring sharpness
MAX_SCANNED = 900                # longer clips are scanned every k-th frame (all frames are still decoded)
LINK_IOU = 0.3                   # detections overlapping a track's last box this much continue it
LINK_GAP = 15                    # a track may miss this many scanned frames and continue
DARK_LEVEL = 0.04                # mean level (0..1) under which a frame counts as black
UNDER_EXPOSED, OVER_EXPOSED = 0.12, 0.92


@dataclass(frozen=True)
class FramesParams:
    max_frames: int = 120        # most frames kept for tracking and texturing
    min_frames: int = 8          # fewer usable frames than this is an error
    max_side: int = 1920         # working resolution: longer side of the written frames, pixels
    min_face_fraction: float = 0.08  # faces smaller than this share of the frame height are not used
    detection_confidence: float = 0.5


@dataclass
class _Scan:
    index: int
    time_s: float
    level: float                          # mean grey level of the whole frame, 0..1
    boxes: list[np.ndarray]               # (4,) x0, y0, x1, y1 relative to the frame (0..1)
    scores: list[float]
    yaws: list[float]                     # rough yaw from keypoints, -1 (one profile) .. 1 (the other)
    sharpness: list[float]
    exposure: list[float]                 # mean level in the face box
    clipped: list[float]                  # share of face pixels at 0 or 255


def scan_video(path: str, stride: int, params: FramesParams, progress: Any, total: int) -> list[_Scan]:
    """Pass 1: detections and quality measures for every ``stride``-th frame."""
    import cv2

    scans: list[_Scan] = []
    with native_stderr_captured():
        import mediapipe as mp

        with mp.solutions.face_detection.FaceDetection(model_selection=0, min_detection_confidence=params.detection_confidence) as detector:
            for index, time_s, image in iter_frames(path, stride=stride, max_side=ANALYSIS_SIDE):
                grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
                scan = _Scan(index, time_s, float(grey.mean()) / 255.0, [], [], [], [], [], [])
                if scan.level > DARK_LEVEL:
                    result = detector.process(np.ascontiguousarray(image[:, :, ::-1]))
                    for detection in result.detections or ():
                        _add_detection(scan, detection, grey)
                scans.append(scan)
                progress.update(min(1.0, (index + 1) / max(total, 1)), f"scanning frame {index + 1}/{total}")
    return scans


def _add_detection(scan: _Scan, detection: Any, grey: np.ndarray) -> None:
    import cv2

    box = detection.location_data.relative_bounding_box
    x0, y0 = max(0.0, box.xmin), max(0.0, box.ymin)
    x1, y1 = min(1.0, box.xmin + box.width), min(1.0, box.ymin + box.height)
    if x1 - x0 <= 0.01 or y1 - y0 <= 0.01:
        return
    height, width = grey.shape
    crop = grey[int(y0 * height):max(int(y0 * height) + 2, int(y1 * height)), int(x0 * width):max(int(x0 * width) + 2, int(x1 * width))]
    small = cv2.resize(crop, (SHARPNESS_CROP, SHARPNESS_CROP), interpolation=cv2.INTER_AREA)
    keypoints = detection.location_data.relative_keypoints
    eyes_x = (keypoints[0].x + keypoints[1].x) / 2
    yaw = float(np.clip((keypoints[2].x - eyes_x) / max(box.width, 1e-6) * 4.0, -1.0, 1.0))
    scan.boxes.append(np.array([x0, y0, x1, y1]))
    scan.scores.append(float(detection.score[0]))
    scan.yaws.append(yaw)
    scan.sharpness.append(float(cv2.Laplacian(small, cv2.CV_32F).var()))
    scan.exposure.append(float(crop.mean()) / 255.0)
    scan.clipped.append(float(((crop <= 2) | (crop >= 253)).mean()))


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def link_tracks(scans: list[_Scan]) -> list[list[tuple[int, int]]]:
    """Greedy overlap tracking: lists of (scan number, detection number), largest (sum of face areas) first."""
    tracks: list[list[tuple[int, int]]] = []
    for s, scan in enumerate(scans):
        order = np.argsort([-(b[2] - b[0]) * (b[3] - b[1]) for b in scan.boxes])
        taken: set[int] = set()
        for d in order:
            best, best_iou = None, LINK_IOU
            for t, track in enumerate(tracks):
                last_s, last_d = track[-1]
                if t in taken or s - last_s > LINK_GAP or last_s == s:
                    continue
                overlap = _iou(scans[last_s].boxes[last_d], scan.boxes[d])
                if overlap > best_iou:
                    best, best_iou = t, overlap
            if best is None:
                tracks.append([(s, int(d))])
                taken.add(len(tracks) - 1)
            else:
                tracks[best].append((s, int(d)))
                taken.add(best)

    def weight(track: list[tuple[int, int]]) -> float:
        return sum((scans[s].boxes[d][2] - scans[s].boxes[d][0]) * (scans[s].boxes[d][3] - scans[s].boxes[d][1]) for s, d in track)

    return sorted(tracks, key=weight, reverse=True)


def select_frames(times: np.ndarray, yaws: np.ndarray, scores: np.ndarray, count: int) -> tuple[np.ndarray, list[str]]:
    """Pick ``count`` of the candidates: the best of each yaw bin, then the best spread in time.

    Returns the chosen candidate numbers (sorted by time) and why each was chosen.
    """
    n = len(times)
    if n <= count:
        return np.arange(n), ["all usable frames kept"] * n
    chosen: dict[int, str] = {}
    bins = max(1, count // 3)
    lo, hi = float(yaws.min()), float(yaws.max())
    edges = np.linspace(lo, hi + 1e-9, bins + 1)
    which = np.clip(np.searchsorted(edges, yaws, side="right") - 1, 0, bins - 1)
    for b in range(bins):
        members = np.flatnonzero(which == b)
        if len(members):
            chosen[int(members[np.argmax(scores[members])])] = f"best of yaw bin {b + 1}/{bins}"
    span = max(float(times.max() - times.min()), 1e-6)
    quality = scores / max(float(scores.max()), 1e-9)
    while len(chosen) < count:
        picked = np.fromiter(chosen, int)
        gap = np.abs(times[:, None] - times[picked][None, :]).min(1) / span
        merit = quality * gap
        merit[picked] = -1.0
        chosen[int(np.argmax(merit))] = "spread in time"
    order = sorted(chosen, key=lambda c: times[c])
    return np.array(order), [chosen[c] for c in order]


def run_frames(ctx: StageContext) -> None:
    params: FramesParams = ctx.params
    source = ctx.source
    path, total = source["path"], int(source["frames"])
    if total < params.min_frames:
        raise CaptureError(
            f"{path}: the video has only {total} frame{'s' if total != 1 else ''}; a capture needs a video of the head "
            f"turning slowly from one side to the other (at least {params.min_frames} frames, ideally 5-15 seconds)"
        )
    stride = max(1, -(-total // MAX_SCANNED))
    scans = scan_video(path, stride, params, ctx.progress.sub(0.0, 0.7), total)
    if not scans:
        raise CaptureError(f"{path}: no frame could be decoded")
    if all(s.level <= DARK_LEVEL for s in scans):
        raise CaptureError(f"{path}: every frame is black (or nearly); the lens may have been covered, or the clip is corrupt")

    tracks = link_tracks(scans)
    if not tracks:
        raise CaptureError(
            f"{path}: no face was found in any of the {len(scans)} frames scanned; film the head from about "
            "arm's length with the face well lit and filling at least a third of the frame"
        )
    followed = tracks[0]
    others = [t for t in tracks[1:] if len(t) >= max(3, 0.1 * len(scans))]
    if others:
        ctx.warn(
            f"{len(others) + 1} different faces were seen; following the largest one (in {len(followed)} of "
            f"{len(scans)} frames) and ignoring the others"
        )

    rows, rejected, missing = _usable_rows(path, scans, followed, params)
    cues = _frame_cues(scans, rows)
    picks, why = select_frames(cues["time_s"], cues["yaw"], cues["score"], params.max_frames)
    entries, size_out = _write_frames(ctx, path, scans, rows, cues, picks, why, params.max_side)
    summary = {
        "frames_total": total, "frames_scanned": len(scans), "scan_stride": stride,
        "frames_with_face": len(followed), "frames_usable": len(rows), "frames_selected": len(entries),
        "faces_seen": 1 + len(others), "rejected": {"no face": missing, **rejected},
        "yaw_estimate_range": [round(float(cues["yaw"].min()), 3), round(float(cues["yaw"].max()), 3)],
    }
    ctx.output(FRAMES_JSON).write_text(json.dumps({**summary, "size": size_out, "frames": entries}, indent=1))
    ctx.metrics.update(summary)


def _usable_rows(path: str, scans: list, followed: list, params: FramesParams) -> tuple[list, dict[str, int], int]:
    """The followed face's (scan, detection) pairs that are big enough and neither too dark nor blown out, the
    rejection counts, and how many scanned frames missed the face; too few usable frames is the user's error."""
    rows, rejected = [], {"face too small": 0, "badly exposed": 0}
    for s, d in followed:
        scan = scans[s]
        box = scan.boxes[d]
        if box[3] - box[1] < params.min_face_fraction:
            rejected["face too small"] += 1
            continue
        if scan.exposure[d] < UNDER_EXPOSED or scan.exposure[d] > OVER_EXPOSED or scan.clipped[d] > 0.25:
            rejected["badly exposed"] += 1
            continue
        rows.append((s, d))
    missing = len(scans) - len(followed)
    if len(rows) < params.min_frames:
        reasons = [f"no face in {missing}"] if missing else []
        reasons += [f"{why} in {n}" for why, n in rejected.items() if n]
        raise CaptureError(
            f"{path}: only {len(rows)} of {len(scans)} scanned frames show a usable face ({'; '.join(reasons)}); "
            f"at least {params.min_frames} are needed. Keep the whole face in view, well lit, while turning the head"
        )
    return rows, rejected, missing


def _frame_cues(scans: list, rows: list) -> dict[str, np.ndarray]:
    """Per usable row: time, yaw, sharpness, face size, exposure, detection score, and the selection score."""
    cues = {
        "time_s": np.array([scans[s].time_s for s, _ in rows]),
        "yaw": np.array([scans[s].yaws[d] for s, d in rows]),
        "sharpness": np.array([scans[s].sharpness[d] for s, d in rows]),
        "size": np.array([scans[s].boxes[d][3] - scans[s].boxes[d][1] for s, d in rows]),
        "exposure": np.array([scans[s].exposure[d] for s, d in rows]),
        "detection": np.array([scans[s].scores[d] for s, d in rows]),
    }
    sharp, size = cues["sharpness"], cues["size"]
    cues["score"] = (np.sqrt(np.minimum(sharp / max(np.median(sharp), 1e-9), 2.0)) * np.sqrt(size / size.max())
                     * (1.0 - 2.0 * np.abs(cues["exposure"] - 0.5) ** 2) * cues["detection"])
    return cues


def _write_frames(ctx: StageContext, path: str, scans: list, rows: list, cues: dict[str, np.ndarray], picks: list,
                  why: list, max_side: int) -> tuple[list[dict], list[int] | None]:
    """Decode the picked frames and write them as frames/NNNN.png; their frames.json entries and the image size."""
    import cv2

    chosen = {scans[rows[p][0]].index: (p, reason) for p, reason in zip(picks, why)}
    entries = []
    sub = ctx.progress.sub(0.7, 1.0)
    size_out = None
    for k, (index, time_s, image) in enumerate(iter_frames_at(path, sorted(chosen), max_side=max_side)):
        p, reason = chosen[index]
        s, d = rows[p]
        height, width = image.shape[:2]
        size_out = [width, height]
        name = f"frames/{k:04d}.png"
        if not cv2.imwrite(str(ctx.output(name)), image, [cv2.IMWRITE_PNG_COMPRESSION, 1]):
            raise OSError(f"could not write {name}")
        box = scans[s].boxes[d] * np.array([width, height, width, height])
        entries.append({
            "file": name.split("/", 1)[1], "index": index, "time_s": round(time_s, 4),
            "face_box": [round(float(v), 1) for v in box], "detection_score": round(float(cues["detection"][p]), 4),
            "sharpness": round(float(cues["sharpness"][p]), 2), "exposure": round(float(cues["exposure"][p]), 4),
            "yaw_estimate": round(float(cues["yaw"][p]), 3), "score": round(float(cues["score"][p]), 4), "chosen": reason,
        })
        sub.update((k + 1) / len(chosen), f"writing frame {k + 1}/{len(chosen)}")
    return entries, size_out


FRAMES_STAGE = Stage(
    name="frames",
    version=1,
    run=run_frames,
    outputs=("frames/",),
    params_type=FramesParams,
    description="scan the video, follow one face, keep well-spread sharp frames",
)

