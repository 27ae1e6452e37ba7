"""Benchmark the video path: probe, source hashing, streamed decode, and the preview stage.

Usage: .venv/bin/python bench/video_io.py [--frames 300] [--width 1920 --height 1080]
Prints a JSON object and appends it to bench/results.jsonl.
"""

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))
from devpath import load_package  # noqa: E402

load_package()
from studio_avatar.core.hashing import file_sha256  # noqa: E402
from studio_avatar.core.pipeline import reconstruct  # noqa: E402
from studio_avatar.core.progress import Progress  # noqa: E402
from studio_avatar.core.synth.clip import write_turning_head_clip  # noqa: E402
from studio_avatar.core.video import iter_frames_at, probe_video  # noqa: E402


def timed(fn):
    start = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--width", type=int, default=1920)
    parser.add_argument("--height", type=int, default=1080)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        clip, write_s = timed(lambda: write_turning_head_clip(Path(tmp) / "bench.mp4", args.frames, args.width, args.height))
        facts, probe_s = timed(lambda: probe_video(clip))
        _, hash_s = timed(lambda: file_sha256(clip))
        _, decode_s = timed(lambda: sum(1 for _ in iter_frames_at(clip, range(args.frames), max_side=720)))
        _, preview_s = timed(lambda: reconstruct(clip, Path(tmp) / "capture", Progress()))
        size_mb = clip.stat().st_size / 1e6
    result = {
        "bench": "video_io",
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "clip": f"{args.frames} frames {args.width}x{args.height} mpeg4, {size_mb:.1f} MB",
        "write_clip_s": round(write_s, 3),
        "probe_s": round(probe_s, 3),
        "sha256_mb_per_s": round(size_mb / hash_s, 1),
        "decode_all_fps": round(args.frames / decode_s, 1),
        "reconstruct_preview_s": round(preview_s, 3),
        "frames_reported": facts.frames,
    }
    print(json.dumps(result, indent=2))
    with open(Path(__file__).resolve().parent / "results.jsonl", "a") as log:
        log.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
