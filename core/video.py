"""Video files: probing, and streaming decode of chosen frames.

Owns everything that touches a video container (through OpenCV's FFmpeg
backend). Never holds a whole clip in memory: frames are decoded one at a
time and only the wanted ones are converted, in the Y'CbCr matrix the stream
declares (``video_signal``: OpenCV itself always uses BT.601). Does not
write into captures.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

import numpy as np

from .atomic import atomic_path
from .errors import InputError, VideoError
from .native_stderr import native_stderr_captured
from .video_signal import apply_correction, decode_correction, read_colour_signal

# Friendly names for the FourCC codes FFmpeg reports for common phone/desktop codecs.
_CODEC_NAMES = {
    "avc1": "h264", "h264": "h264", "x264": "h264",
    "hev1": "hevc", "hvc1": "hevc", "hevc": "hevc", "h265": "hevc",
    "mp4v": "mpeg4", "xvid": "mpeg4", "divx": "mpeg4", "fmp4": "mpeg4",
    "mjpg": "mjpeg", "vp80": "vp8", "vp90": "vp9", "av01": "av1",
}

# Lines FFmpeg logs when it cannot use a file, and what they mean for a user.
_FFMPEG_DIAGNOSES = (
    ("moov atom not found", "the file is truncated or was not finished writing (its MP4 index is missing)"),
    ("invalid data found", "it is not a video file, or it is damaged"),
    ("end of file", "the file is truncated"),
    ("partial file", "the file is truncated"),
    ("could not find codec parameters", "its video stream cannot be read (damaged or unsupported codec)"),
)


@dataclass(frozen=True)
class VideoFacts:
    """What ``probe`` reports about a video. Sizes are in pixels as stored in the file."""

    path: str
    frames: int            # number of decodable frames
    fps: float             # average frame rate (variable-rate clips report their mean)
    duration_s: float
    width: int             # coded width, before applying ``rotation_deg``
    height: int
    rotation_deg: int      # clockwise rotation a player applies (phone portrait clips: 90 or 270)
    display_width: int     # width after rotation, as a person sees the clip
    display_height: int
    codec: str             # friendly codec name (h264, hevc, mpeg4, ...)
    fourcc: str
    size_bytes: int
    colour_matrix: str = "bt601"        # the Y'CbCr matrix frames are decoded with (what the stream declares)
    colour_source: str = "undeclared"   # where it was declared: "colr box", "H.264 VUI" or "undeclared"
    hdr: str | None = None              # "PQ" or "HLG" for HDR video (its tone is not mapped)

    def to_dict(self) -> dict:
        return asdict(self)


def _fourcc_text(value: float) -> str:
    code = int(value)
    chars = "".join(chr((code >> (8 * i)) & 0xFF) for i in range(4))
    return chars.strip("\x00 ").lower() if chars.isprintable() else ""


def _sniff_container(video: Path) -> str | None:
    """Name the container from the file's first bytes; None if it is no video format we know."""
    with open(video, "rb") as handle:
        head = handle.read(64)
    if head[4:8] in (b"ftyp", b"moov", b"mdat", b"wide", b"free", b"skip", b"pnot"):
        return "mp4"
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return "avi"
    if head[:4] == b"\x1a\x45\xdf\xa3":
        return "matroska"
    if head[:1] == b"\x47" or head[:4] in (b"\x00\x00\x01\xba", b"\x00\x00\x01\xb3"):
        return "mpeg"
    return None


def _cannot_open_reason(video: Path, ffmpeg_lines: Sequence[str]) -> str:
    if _sniff_container(video) is None:
        with open(video, "rb") as handle:
            head = handle.read(512)
        looks_like_text = all(32 <= b < 127 or b in (9, 10, 13) for b in head)
        content = "text" if looks_like_text else "data of an unknown format"
        return f"not a video file (it holds {content}, whatever its extension says)"
    return _diagnose(ffmpeg_lines, "the video is damaged or uses an unsupported format")


def _diagnose(ffmpeg_lines: Sequence[str], default: str) -> str:
    text = "\n".join(ffmpeg_lines).lower()
    for needle, meaning in _FFMPEG_DIAGNOSES:
        if needle in text:
            return meaning
    return default


def check_video_path(path: str | os.PathLike) -> Path:
    """Fail early, with the file's name, for paths that cannot be a video."""
    video = Path(path).expanduser()
    if not video.exists():
        raise VideoError(f"{video}: no such file")
    if video.is_dir():
        raise VideoError(f"{video}: is a folder, not a video file")
    if not video.is_file():
        raise VideoError(f"{video}: is not a regular file")
    size = video.stat().st_size
    if size == 0:
        raise VideoError(f"{video}: the file is empty (0 bytes)")
    if not os.access(video, os.R_OK):
        raise VideoError(f"{video}: permission denied; make the file readable")
    return video


def _open(video: Path, auto_rotate: bool):
    import cv2

    capture = cv2.VideoCapture(str(video), cv2.CAP_FFMPEG)
    if not capture.isOpened():
        capture.release()
        return None
    capture.set(cv2.CAP_PROP_ORIENTATION_AUTO, float(auto_rotate))
    return capture


def probe_video(path: str | os.PathLike) -> VideoFacts:
    """Read a video's facts and prove they hold by decoding its first and last frames.

    Raises :class:`VideoError` naming the file and the problem for missing,
    empty, non-video, truncated or undecodable files.
    """
    video = check_video_path(path)
    with native_stderr_captured() as ffmpeg_log:
        capture = _open(video, auto_rotate=False)
        if capture is not None:
            try:
                facts = _probe_open_capture(capture, video)
            finally:
                capture.release()
    if capture is None:
        raise VideoError(f"{video}: cannot open as a video: {_cannot_open_reason(video, ffmpeg_log)}")
    if isinstance(facts, str):
        raise VideoError(f"{video}: {facts if facts else _diagnose(ffmpeg_log, 'no frame could be decoded')}")
    return facts


def _probe_open_capture(capture, video: Path) -> "VideoFacts | str":
    """Probe an opened capture; returns the facts, or a problem description."""
    import cv2

    header_frames = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    fps = float(capture.get(cv2.CAP_PROP_FPS))
    fourcc = _fourcc_text(capture.get(cv2.CAP_PROP_FOURCC))
    rotation = int(round(capture.get(cv2.CAP_PROP_ORIENTATION_META))) % 360

    ok, first = capture.read()
    if not ok or first is None:
        return f"the first frame cannot be decoded ({fourcc or 'unknown codec'}); the file is damaged or its codec is unsupported"
    height, width = first.shape[:2]

    frames = header_frames
    last_time_s = None
    if header_frames > 1:
        capture.set(cv2.CAP_PROP_POS_FRAMES, header_frames - 1)
        ok, last = capture.read()
        if ok and last is not None:
            last_time_s = capture.get(cv2.CAP_PROP_POS_MSEC) / 1000.0
        else:
            # The container's count may be an estimate; count what really decodes.
            capture.set(cv2.CAP_PROP_POS_FRAMES, 0)
            frames = 0
            while capture.grab():
                frames += 1
            missing = header_frames - frames
            if missing > max(2, header_frames // 100):
                return (
                    f"the file is truncated or damaged: it declares {header_frames} frames "
                    f"but only {frames} can be decoded"
                )
    elif header_frames <= 0:
        frames = 1
        while capture.grab():
            frames += 1

    if not fps or not np.isfinite(fps) or fps <= 0:
        return "the video has no valid frame rate"
    duration = frames / fps
    if last_time_s is not None and last_time_s > 0:
        duration = max(duration, last_time_s + 1.0 / fps)

    swap = rotation in (90, 270)
    signal = read_colour_signal(video)
    return VideoFacts(
        path=str(video.resolve()),
        frames=int(frames),
        fps=round(fps, 4),
        duration_s=round(duration, 4),
        width=int(width),
        height=int(height),
        rotation_deg=rotation,
        display_width=int(height if swap else width),
        display_height=int(width if swap else height),
        codec=_CODEC_NAMES.get(fourcc, fourcc or "unknown"),
        fourcc=fourcc,
        size_bytes=video.stat().st_size,
        colour_matrix=signal.matrix,
        colour_source=signal.source,
        hdr=signal.hdr,
    )


def iter_frames_at(
    path: str | os.PathLike,
    indices: Sequence[int],
    max_side: int | None = None,
) -> Iterator[tuple[int, float, np.ndarray]]:
    """Stream-decode a video and yield ``(index, time_s, image_bgr)`` for the wanted frame indices.

    Frames come upright (rotation metadata applied) and, with ``max_side``,
    downscaled so the longer side is at most that many pixels. Frames that are
    not wanted are grabbed but never converted, so memory stays at one frame.
    """
    wanted = sorted(set(int(i) for i in indices))
    if wanted:
        chosen = set(wanted)
        yield from _stream(path, chosen.__contains__, wanted[-1], max_side)


def iter_frames(path: str | os.PathLike, stride: int = 1, max_side: int | None = None,
                declared_colour: bool = True) -> Iterator[tuple[int, float, np.ndarray]]:
    """Stream-decode every ``stride``-th frame to the end of the video: ``(index, time_s, image_bgr)``.

    Frame times come from the container (variable-frame-rate clips keep their
    real timing). Decoding stops quietly at the last decodable frame. With
    ``declared_colour`` False the frames are OpenCV's BT.601 decode, for a
    caller that corrects only the frames it keeps (``video_signal``).
    """
    if stride < 1:
        raise ValueError("stride must be at least 1")
    yield from _stream(path, lambda i: i % stride == 0, None, max_side, declared_colour)


def _stream(path: str | os.PathLike, wanted: Callable[[int], bool], last: int | None,
            max_side: int | None, declared_colour: bool = True) -> Iterator[tuple[int, float, np.ndarray]]:
    """Decode frames in order; convert those ``wanted`` says; stop after ``last`` (None: at the end)."""
    import cv2

    video = check_video_path(path)
    correction = decode_correction(read_colour_signal(video)) if declared_colour else None
    with native_stderr_captured() as ffmpeg_log:
        capture = _open(video, auto_rotate=True)
    if capture is None:
        raise VideoError(f"{video}: cannot open as a video: {_cannot_open_reason(video, ffmpeg_log)}")
    try:
        position = 0
        while last is None or position <= last:
            if not wanted(position):
                if not capture.grab():
                    if last is None:
                        return
                    raise VideoError(f"{video}: the video ends at frame {position}, before frame {last}; it may be truncated")
                position += 1
                continue
            ok, image = capture.read()
            if not ok or image is None:
                if last is None:
                    return
                raise VideoError(f"{video}: frame {position} cannot be decoded; the file may be damaged or truncated")
            time_s = capture.get(cv2.CAP_PROP_POS_MSEC) / 1000.0
            yield position, time_s, apply_correction(downscale(image, max_side), correction)
            position += 1
    finally:
        capture.release()


def write_video(path: str | os.PathLike, frames: Iterable[np.ndarray], fps: float, size: tuple[int, int],
                fourcc: str = "mp4v") -> Path:
    """Encode (H, W, 3) uint8 BGR ``frames`` of ``size`` (width, height) into a video that appears whole or not at all.

    mp4v (.mp4) and MJPG (.avi) are always available in OpenCV's FFmpeg. The
    frames are consumed one at a time, so a generator keeps memory at one frame.
    """
    import cv2

    dest = Path(path)
    with atomic_path(dest) as tmp:
        writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*fourcc), fps, tuple(size))
        if not writer.isOpened():
            raise InputError(f"{dest}: OpenCV cannot write {fourcc} video to this file type (use .mp4 for mp4v, .avi for MJPG)")
        try:
            for frame in frames:
                writer.write(frame)
        finally:
            writer.release()
    return dest


def downscale(image: np.ndarray, max_side: int | None) -> np.ndarray:
    """``image`` shrunk (area filter) so its longer side is at most ``max_side`` pixels; unchanged if smaller."""
    import cv2

    if not max_side or max(image.shape[:2]) <= max_side:
        return image
    scale = max_side / max(image.shape[:2])
    size = (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)
