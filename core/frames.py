"""Stage ``frames``: one pass over the video that follows one face, tracks its landmarks and keeps a well-spread set of good frames.

Every frame is decoded once (every ``stride``-th is looked at on very long
clips), at the working resolution (``max_side``), one frame in memory at a
time plus the few candidates held back. The tracker sees OpenCV's own BT.601
decode; the frames written are converted to the Y'CbCr matrix the stream
declares, on the writer thread (``frames.json`` records which; HDR video gets
a warning):

1. **follow**: ``track.follow.FaceFollower`` finds the largest face with the
   detector and runs FaceMesh (478 landmarks) on a crop that follows it. About ``DETECTION_ROUNDS`` frames spread over the clip also run
   the detector on the whole frame; those detections, linked into tracks by
   overlap, say how many people were seen (a warning names the others).
2. **measure** each frame with the face: sharpness (variance of the Laplacian
   of the face crop at a fixed size), exposure (mean level and clipped share in
   the face), face size and a yaw estimate from the landmarks.
3. **choose online**: the best frame of each of ``max_frames`` equal time slots
   is written as soon as its slot closes, and the best frame of each of
   ``max_frames // 3`` yaw bins is held back, so the whole turn is covered
   whatever the timing. At the end ``select_frames`` picks ``max_frames`` of
   these candidates (the best of each yaw bin of the range seen, then the best
   spread in time); the rest are deleted, and the kept frames are renamed
   ``frames/NNNN.png`` in time order. PNG encoding (``write_png8``) runs on a
   writer thread.
4. **second opinion**: ``mirror_disagreement`` runs FaceMesh on the mirrored
   crops of the kept frames (the ``track`` stage turns it into confidence).

``frames/frames.json`` lists, per kept frame, its index and time in the video,
the face box (the landmarks' box, in the written image's pixels), the scores
and why it was chosen; ``frames/landmarks.npz`` holds the kept frames'
landmarks and mirror disagreement in the same pixels.
"""

from __future__ import annotations

import json
import os
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from .atomic import atomic_write_npz
from .errors import CaptureError
from .image_io import write_png8
from .stages import Stage, StageContext
from .track.follow import NUM_LANDMARKS, FaceFollower, Sighting, mirror_disagreement
from .video import iter_frames
from .video_signal import apply_correction, decode_correction, read_colour_signal

FRAMES_DIR = "frames/"
FRAMES_JSON = "frames/frames.json"
LANDMARKS_NPZ = "frames/landmarks.npz"
SHARPNESS_CROP = 128             # face crops are resized to this before measuring sharpness
MAX_SCANNED = 900                # longer clips are looked at every k-th frame (all frames are still decoded)
DETECTION_ROUNDS = 30            # frames spread over the clip on which the detector counts the faces
LINK_IOU = 0.3                   # detections overlapping a track's last box this much continue it
LINK_GAP = 15                    # a track may miss this many detection rounds and continue
DARK_LEVEL = 0.04                # mean level (0..1) under which a frame counts as black
UNDER_EXPOSED, OVER_EXPOSED = 0.12, 0.92
EYE_OUTER, NOSE_TIP = (33, 263), 1   # mediapipe landmark numbers


@dataclass(frozen=True)
class FramesParams:
    max_frames: int = 120        # most frames kept for tracking and texturing
    min_frames: int = 8          # fewer usable frames than this is an error
    max_side: int = 1920         # working resolution: longer side of the written frames, pixels
    min_face_fraction: float = 0.08  # faces smaller than this share of the frame height are not used
    detection_confidence: float = 0.5
    mirror_check: bool = True    # FaceMesh on the kept frames' mirrored crops too, for per-landmark confidence


@dataclass
class _Detections:
    index: int                   # scan number
    boxes: list[np.ndarray]      # (4,) x0, y0, x1, y1 relative to the frame (0..1)


@dataclass(eq=False)
class _Seen:
    """One scanned frame on which the followed face was found, with its quality cues."""

    scan: int
    index: int
    time_s: float
    sighting: Sighting
    size: float                  # face box height / frame height
    yaw: float                   # rough yaw from the landmarks, -1 (one profile) .. 1 (the other)
    sharpness: float
    exposure: float              # mean level in the face box, 0..1
    clipped: float               # share of face pixels at 0 or 255
    image: np.ndarray | None = None       # held while the frame may still have to be written
    file: str | None = None               # its temporary file once written
    score: float = 0.0                    # selection score against the whole clip, once chosen


def read_frame(path: Any) -> np.ndarray:
    """A kept frame as 8-bit BGR; CaptureError when it is missing or unreadable."""
    import cv2

    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise CaptureError(f"{path}: the frame image is missing or unreadable; re-run the frames stage (`--force frames`)")
    return image


def measure(scan: int, index: int, time_s: float, grey: np.ndarray, sighting: Sighting) -> _Seen:
    import cv2

    height, width = grey.shape
    x0, y0, x1, y1 = sighting.box
    left, top = int(np.clip(x0, 0, width - 2)), int(np.clip(y0, 0, height - 2))
    crop = grey[top:max(top + 2, int(np.clip(y1, 0, height))), left:max(left + 2, int(np.clip(x1, 0, width)))]
    small = cv2.resize(crop, (SHARPNESS_CROP, SHARPNESS_CROP), interpolation=cv2.INTER_LINEAR)
    points = sighting.landmarks
    eyes_x = points[list(EYE_OUTER), 0].mean()
    yaw = float(np.clip((points[NOSE_TIP, 0] - eyes_x) / max(x1 - x0, 1e-6) * 4.0, -1.0, 1.0))
    return _Seen(scan, index, time_s, sighting, float((y1 - y0) / height), yaw,
                 float(cv2.Laplacian(small, cv2.CV_32F).var()), float(crop.mean()) / 255.0,
                 float(((crop <= 2) | (crop >= 253)).mean()))


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def link_tracks(rounds: list[_Detections]) -> list[list[tuple[int, int]]]:
    """Greedy overlap tracking: lists of (round number, detection number), largest (sum of face areas) first."""
    tracks: list[list[tuple[int, int]]] = []
    for s, detections in enumerate(rounds):
        order = np.argsort([-(b[2] - b[0]) * (b[3] - b[1]) for b in detections.boxes])
        taken: set[int] = set()
        for d in order:
            best, best_iou = None, LINK_IOU
            for t, track in enumerate(tracks):
                last_s, last_d = track[-1]
                if t in taken or s - last_s > LINK_GAP or last_s == s:
                    continue
                overlap = _iou(rounds[last_s].boxes[last_d], detections.boxes[d])
                if overlap > best_iou:
                    best, best_iou = t, overlap
            if best is None:
                tracks.append([(s, int(d))])
                taken.add(len(tracks) - 1)
            else:
                tracks[best].append((s, int(d)))
                taken.add(best)

    def weight(track: list[tuple[int, int]]) -> float:
        return sum((rounds[s].boxes[d][2] - rounds[s].boxes[d][0]) * (rounds[s].boxes[d][3] - rounds[s].boxes[d][1])
                   for s, d in track)

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


def quality_scores(sharpness: np.ndarray, size: np.ndarray, exposure: np.ndarray, sharp_median: float,
                   size_max: float) -> np.ndarray:
    """Selection score: sharper (up to twice the clip's median), larger and better-exposed faces score higher."""
    return (np.sqrt(np.minimum(sharpness / max(sharp_median, 1e-9), 2.0)) * np.sqrt(size / max(size_max, 1e-9))
            * (1.0 - 2.0 * np.abs(exposure - 0.5) ** 2))


class _Candidates:
    """Online choice with bounded memory: the best usable frame of each of ``count`` equal slots of the scan
    (handed to ``write`` as soon as its slot closes) and the best of each of ``count // 3`` yaw bins over -1..1
    (its image held until the end unless it was written as a slot's best)."""

    def __init__(self, count: int, expected_scans: int, write: Any) -> None:
        self.count, self.expected, self.write = count, max(expected_scans, 1), write
        self.bins = max(1, count // 3)
        self.slot_best: _Seen | None = None
        self.yaw_best: dict[int, _Seen] = {}
        self.written: list[_Seen] = []
        self.sharpness: list[float] = []      # of every usable frame so far
        self.size_max = 0.0

    @staticmethod
    def _score(seen: _Seen, sharp_median: float) -> float:
        return float(quality_scores(np.array(seen.sharpness), np.array(seen.size), np.array(seen.exposure),
                                    sharp_median, 1.0))

    def _slot(self, scan: int) -> int:
        return min(self.count - 1, scan * self.count // self.expected)

    def offer(self, seen: _Seen, image: np.ndarray) -> None:
        self.sharpness.append(seen.sharpness)
        self.size_max = max(self.size_max, seen.size)
        if self.slot_best is not None and self._slot(self.slot_best.scan) != self._slot(seen.scan):
            self._commit()
        sharp_median = float(np.median(self.sharpness))       # once per frame: it changes with every frame
        score = self._score(seen, sharp_median)
        if self.slot_best is None or score > self._score(self.slot_best, sharp_median):
            seen.image = image
            self.slot_best, replaced = seen, self.slot_best
            self._release(replaced)
        yaw_bin = min(self.bins - 1, int((seen.yaw + 1.0) / 2.0 * self.bins))
        held = self.yaw_best.get(yaw_bin)
        if held is None or score > self._score(held, sharp_median):
            seen.image = image
            self.yaw_best[yaw_bin] = seen
            self._release(held)

    def _commit(self) -> None:
        best, self.slot_best = self.slot_best, None
        self.write(best)
        self.written.append(best)
        best.image = None            # the writer holds it until encoded

    def _release(self, seen: _Seen | None) -> None:
        """Drop ``seen``'s image once it is neither the open slot's best nor an unwritten yaw bin's best."""
        if seen is None or seen is self.slot_best:
            return
        if seen.file is None and any(seen is held for held in self.yaw_best.values()):
            return
        seen.image = None

    def finish(self) -> list[_Seen]:
        """All candidates, in scan order."""
        if self.slot_best is not None:
            self._commit()
        unique = {id(s): s for s in [*self.written, *self.yaw_best.values()]}
        return sorted(unique.values(), key=lambda s: s.scan)


class _Writer:
    """PNG encoding on a worker thread, into temporary names in the staging area."""

    def __init__(self, ctx: StageContext, correction: np.ndarray | None) -> None:
        self.ctx = ctx
        self.correction = correction          # the declared colour matrix's, applied only to what is written
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="frames-png")
        self.pending: list[Future] = []

    def __call__(self, seen: _Seen) -> None:
        seen.file = f"frames/scan{seen.scan:06d}.png"
        self.pending.append(self.pool.submit(self._write, self.ctx.output(seen.file), seen.image))

    def _write(self, path: Any, image: np.ndarray) -> None:
        write_png8(path, apply_correction(image, self.correction))

    def close(self) -> None:
        try:
            for job in self.pending:
                job.result()
        finally:
            self.pool.shutdown(wait=True)


def run_frames(ctx: StageContext) -> None:
    import cv2

    params: FramesParams = ctx.params
    source = ctx.source
    path, total = source["path"], int(source["frames"])
    if total < params.min_frames:
        raise CaptureError(
            f"{path}: the video has only {total} frame{'s' if total != 1 else ''}; a capture needs a video of the head "
            f"turning slowly from one side to the other (at least {params.min_frames} frames, ideally 5-15 seconds)"
        )
    stride = max(1, -(-total // MAX_SCANNED))
    expected = -(-total // stride)
    detect_every = max(1, expected // DETECTION_ROUNDS)
    signal = read_colour_signal(path)
    writer = _Writer(ctx, decode_correction(signal))
    candidates = _Candidates(params.max_frames, expected, writer)
    rounds: list[_Detections] = []
    rejected = {"face too small": 0, "badly exposed": 0}
    scanned = dark = with_face = 0                # frames seen, black, and showing the followed face
    size_out = None
    progress = ctx.progress.sub(0.0, 0.92)
    try:
        with FaceFollower(params.detection_confidence) as follower:
            for scan, (index, time_s, image) in enumerate(iter_frames(path, stride, params.max_side, declared_colour=False)):
                scanned += 1
                size_out = [image.shape[1], image.shape[0]]
                progress.update(min(1.0, (index + 1) / max(total, 1)), f"following the face: frame {index + 1}/{total}")
                grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
                if float(grey[::4, ::4].mean()) / 255.0 <= DARK_LEVEL:
                    dark += 1
                    continue
                faces = None
                if scan % detect_every == 0:
                    faces = follower.detect(image)
                    rounds.append(_Detections(scan, faces))
                sighting = follower.follow(image, faces)
                if sighting is None:
                    continue
                seen = measure(scan, index, time_s, grey, sighting)     # kept (with its crop) only as a candidate
                with_face += 1
                if seen.size < params.min_face_fraction:
                    rejected["face too small"] += 1
                elif seen.exposure < UNDER_EXPOSED or seen.exposure > OVER_EXPOSED or seen.clipped > 0.25:
                    rejected["badly exposed"] += 1
                else:
                    candidates.offer(seen, image)
        pool = candidates.finish()
        _check_faces(ctx, path, scanned, dark, with_face, rounds, rejected, params)
        kept, why = _choose(candidates, pool, params.max_frames)
        for seen in kept:
            if seen.file is None:
                writer(seen)
    finally:
        writer.close()
    for seen in set(pool) - set(kept):
        if seen.file is not None:
            os.remove(ctx.output(seen.file))
    ctx.progress.update(0.94, "second opinion on the landmarks (mirrored crops)")
    sightings = [s.sighting for s in kept]
    disagreement = (mirror_disagreement(sightings, params.detection_confidence) if params.mirror_check
                    else np.full((len(kept), NUM_LANDMARKS), np.nan))
    entries = _name_in_time_order(ctx, kept, why)
    atomic_write_npz(ctx.output(LANDMARKS_NPZ), landmarks=np.stack([s.landmarks for s in sightings]).astype(np.float32),
                     disagreement_px=disagreement.astype(np.float32))
    others = _other_faces(rounds)
    if signal.hdr:
        ctx.warn(f"the video is HDR ({signal.hdr}); its tone is not mapped to SDR, so the skin tone may be off: "
                 "film in SDR (on iPhones: Settings > Camera > Record Video > HDR Video off)")
    summary = {
        "frames_total": total, "frames_scanned": scanned, "scan_stride": stride, "detection_rounds": len(rounds),
        "frames_with_face": with_face, "frames_usable": with_face - sum(rejected.values()),
        "frames_candidates": len(pool), "frames_selected": len(entries), "faces_seen": 1 + others,
        "rejected": {"no face": scanned - with_face, **rejected},
        "yaw_estimate_range": [round(min(s.yaw for s in kept), 3), round(max(s.yaw for s in kept), 3)],
        "colour_matrix": signal.matrix, "colour_declared_in": signal.source,
    }
    ctx.output(FRAMES_JSON).write_text(json.dumps({**summary, "size": size_out, "frames": entries}, indent=1))
    ctx.metrics.update(summary)
    ctx.progress.update(1.0, f"kept {len(entries)} frames")


def _other_faces(rounds: list[_Detections]) -> int:
    """How many people besides the followed one the detection rounds saw (tracks in at least a tenth of them)."""
    tracks = link_tracks(rounds)
    return sum(1 for t in tracks[1:] if len(t) >= max(3, 0.1 * len(rounds)))


def _check_faces(ctx: StageContext, path: str, scanned: int, dark: int, with_face: int,
                 rounds: list[_Detections], rejected: dict[str, int], params: FramesParams) -> None:
    """The user's errors (nothing decoded, all black, no face, too few usable frames) and the other-faces warning."""
    if not scanned:
        raise CaptureError(f"{path}: no frame could be decoded")
    if dark == scanned:
        raise CaptureError(f"{path}: every frame is black (or nearly); the lens may have been covered, or the clip is corrupt")
    if not with_face:
        raise CaptureError(
            f"{path}: no face was found in any of the {scanned} frames scanned; film the head from about "
            "arm's length with the face well lit and filling at least a third of the frame"
        )
    usable_total = with_face - sum(rejected.values())
    if usable_total < params.min_frames:
        missing = scanned - with_face
        reasons = [f"no face in {missing}"] if missing else []
        reasons += [f"{why} in {n}" for why, n in rejected.items() if n]
        raise CaptureError(
            f"{path}: only {usable_total} of {scanned} scanned frames show a usable face ({'; '.join(reasons)}); "
            f"at least {params.min_frames} are needed. Keep the whole face in view, well lit, while turning the head"
        )
    others = _other_faces(rounds)
    if others:
        ctx.warn(f"{others + 1} different faces were seen; following the largest one (in {with_face} of "
                 f"{scanned} frames) and ignoring the others")


def _choose(candidates: _Candidates, pool: list[_Seen], count: int) -> tuple[list[_Seen], list[str]]:
    """``select_frames`` over the candidates, scored against the whole clip's usable frames."""
    scores = quality_scores(np.array([s.sharpness for s in pool]), np.array([s.size for s in pool]),
                            np.array([s.exposure for s in pool]), float(np.median(candidates.sharpness)),
                            candidates.size_max)
    picks, why = select_frames(np.array([s.time_s for s in pool]), np.array([s.yaw for s in pool]), scores, count)
    kept = [pool[p] for p in picks]
    for seen, p in zip(kept, picks):
        seen.score = float(scores[p])
    return kept, why


def _name_in_time_order(ctx: StageContext, kept: list[_Seen], why: list[str]) -> list[dict]:
    """Rename the kept frames' files to frames/NNNN.png (time order); their frames.json entries."""
    entries = []
    for k, seen in enumerate(kept):
        name = f"frames/{k:04d}.png"
        os.replace(ctx.output(seen.file), ctx.output(name))
        entries.append({
            "file": name.split("/", 1)[1], "index": seen.index, "time_s": round(seen.time_s, 4),
            "face_box": [round(float(v), 1) for v in seen.sighting.box],
            "sharpness": round(seen.sharpness, 2), "exposure": round(seen.exposure, 4),
            "yaw_estimate": round(seen.yaw, 3), "score": round(seen.score, 4), "chosen": why[k],
        })
    return entries


FRAMES_STAGE = Stage(
    name="frames",
    version=3,
    run=run_frames,
    outputs=("frames/",),
    params_type=FramesParams,
    description="one pass over the video: follow one face, track its landmarks, keep well-spread sharp frames",
)
