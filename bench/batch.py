"""Speed of ``studio-avatar batch`` on the local Ray against the same commands run one after another.

Usage: .venv/bin/python bench/batch.py [--frames 24] [--size 480x360] [--no-log]

Two synthetic turning-head clips (core/synth/head_clip.py, different seeds) go
through reconstruct (draft preset, 512^2 textures, classic), build, a 2 x 2 x 1
render matrix (64 px, 4 samples) and a glb export: once as the plain commands,
one after another (each video's ``reconstruct``, ``build``, ``render`` of the
whole matrix, ``export``), and once as one ``batch`` of both videos into a
fresh folder, both in this one run on this machine. Target: the batch takes at
most 1.2x the sequential commands (Ray's start and one process per render task
cost something; running the videos side by side wins some of it back). Prints
the times and appends a line to ``bench/results.jsonl``.
"""

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))
from devpath import REPO_ROOT, load_package  # noqa: E402

load_package()
from studio_avatar.core.head.open_head import get_open_head  # noqa: E402
from studio_avatar.core.launcher import worker_argv  # noqa: E402
from studio_avatar.core.synth.head_clip import HeadClipSpec, write_head_clip  # noqa: E402
from track_fit import source_version  # noqa: E402

BENCH = Path(__file__).resolve().parent
TARGET_RATIO = 1.2
MATRIX = ["--lightings", "studio,sunset", "--views=-30,0", "--expressions", "neutral", "--resolution", "64",
          "--samples", "4"]


def cli(*args: str) -> dict:
    done = subprocess.run(worker_argv(["--progress", "none", *args], extension_root=REPO_ROOT), capture_output=True,
                          text=True)
    if done.returncode != 0:
        sys.exit(f"{' '.join(args[:2])} failed: {done.stderr.strip().splitlines()[-1:]}")
    return json.loads(done.stdout)


def sequential(videos: list[Path], out: Path) -> float:
    started = time.perf_counter()
    for video in videos:
        folder = out / video.stem
        cli("reconstruct", str(video), "-o", str(folder / "capture"), "--max-frames", "40", "--texture-size", "512",
            "--texture-method", "classic")
        cli("build", str(folder / "capture"), "-o", str(folder / "avatar.blend"))
        cli("render", str(folder / "avatar.blend"), "-o", str(folder / "renders"), *MATRIX)
        cli("export", str(folder / "avatar.blend"), "-o", str(folder / "avatar.glb"))
    return time.perf_counter() - started


def batched(videos: list[Path], out: Path) -> float:
    started = time.perf_counter()
    summary = cli("batch", *map(str, videos), "-o", str(out), "--preset", "draft", "--texture-size", "512",
                  "--texture-method", "classic", *MATRIX, "--export", "glb")
    if summary["done"] != len(videos):
        sys.exit(f"the batch did not finish every video: {summary['videos']}")
    return time.perf_counter() - started


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=24)
    parser.add_argument("--size", default="480x360")
    parser.add_argument("--no-log", action="store_true", help="print only, do not append to bench/results.jsonl")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    with tempfile.TemporaryDirectory(prefix="batch-bench-") as tmp:
        root = Path(tmp)
        model = get_open_head(with_landmarks=True)
        videos = []
        for name, seed in (("anna", 1), ("ben", 2)):
            videos.append(root / f"{name}.mp4")
            write_head_clip(model, videos[-1], root / f"{name}.npz",
                            HeadClipSpec(frames=args.frames, width=width, height=height, yaw_deg=45.0, seed=seed))
        sequential_s = sequential(videos, root / "sequential")
        batch_s = batched(videos, root / "batch")
    ratio = batch_s / sequential_s
    verdict = "PASS" if ratio <= TARGET_RATIO else "FAIL"
    print(f"2 videos ({args.frames} frames {args.size}): commands one after another {sequential_s:.1f} s, "
          f"batch on the local Ray {batch_s:.1f} s, ratio {ratio:.2f} (target <= {TARGET_RATIO}: {verdict})")
    if not args.no_log:
        with open(BENCH / "results.jsonl", "a") as handle:
            handle.write(json.dumps({"bench": "batch", "date": time.strftime("%Y-%m-%d"), "machine": platform.machine(),
                                     "source": source_version(), "frames": args.frames, "size": args.size,
                                     "sequential_s": round(sequential_s, 1), "batch_s": round(batch_s, 1),
                                     "ratio": round(ratio, 3), "verdict": verdict}) + "\n")


if __name__ == "__main__":
    main()
