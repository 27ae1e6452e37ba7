"""Benchmark video -> fit on synthetic head clips with known ground truth: stage speed and fit accuracy.

Usage: .venv/bin/python bench/track_fit.py [--quick] [--seeds 0 1 2] [--frames 300 --width 1280 --height 720]

For each seed a clip of the open head is rendered with ``write_head_clip``
(render time is reported but is not part of any target), then
``reconstruct(..., until="fit")`` runs on it twice: with the focal length
unknown (the default: estimated) and with it known (``FitParams(focal_mm35=...)``
from the ground truth). The second run reuses the capture, so only ``fit``
reruns. Prints a markdown table and appends one JSON line per reconstruction
(seed x focal mode) to bench/results.jsonl.

Default: 3 seeds of a 10 s, 30 fps, 1280x720 clip (300 frames), the clip the
targets are set for. --quick: 2 seeds of 60 frames at 640x480 (a smoke run;
its times are not compared with the targets).
"""

import argparse
import dataclasses
import json
import math
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))
from devpath import load_package  # noqa: E402

load_package()
from studio_avatar.core.fit.evaluate import compare_with_truth  # noqa: E402
from studio_avatar.core.fit.stage import FULL_FRAME_DIAGONAL_MM, FitParams, load_fit  # noqa: E402
from studio_avatar.core.head.open_head import get_open_head  # noqa: E402
from studio_avatar.core.pipeline import reconstruct  # noqa: E402
from studio_avatar.core.progress import Progress  # noqa: E402
from studio_avatar.core.synth.head_clip import HeadClipSpec, write_head_clip  # noqa: E402

TARGET_FRAMES_TRACK_S = 8.0     # frames + track stages, 10 s 720p clip
TARGET_FLOOR_RATIO = 2.0        # frames + track stages against the bare decode + FaceMesh loop on the same clip
TARGET_FIT_S = 15.0             # fit stage, 10 s 720p clip
TARGET_CLIP = (300, 1280, 720)  # frames, width, height the targets are set for


def source_version():
    """The checkout's commit, with "+dirty" when tracked or new files under core/ differ from it."""
    import subprocess

    root = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True,
                                check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "core"], cwd=root, capture_output=True, text=True,
                               check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return commit + ("+dirty" if dirty else "")


def timed(fn):
    start = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - start


def warm_up(model):
    """Import the heavy libraries and fill the user caches, so the first timed run measures work, not set-up."""
    import mediapipe  # noqa: F401
    import torch  # noqa: F401

    try:  # the fit's view-dependent landmark embedding (cached per model; ~10 s the first time)
        from studio_avatar.core.head.view_landmarks import get_view_landmarks
    except ImportError:
        return
    if getattr(FitParams(), "view_dependent_landmarks", False):
        get_view_landmarks(model)


def floor_loop(video):
    """Seconds of the floor the one-pass front end is held to: decode every frame and run streaming FaceMesh
    (478 landmarks, one face) on it, nothing else."""
    import cv2
    import mediapipe as mp

    from studio_avatar.core.native_stderr import native_stderr_captured

    start = time.perf_counter()
    with native_stderr_captured(), mp.solutions.face_mesh.FaceMesh(static_image_mode=False, refine_landmarks=True,
                                                                    max_num_faces=1) as mesh:
        capture = cv2.VideoCapture(str(video))
        while True:
            ok, image = capture.read()
            if not ok:
                break
            mesh.process(cv2.cvtColor(image, cv2.COLOR_BGR2RGB))
        capture.release()
    return time.perf_counter() - start


def run_once(model, video, capture, gt, params, label):
    """One reconstruct(..., until="fit"): per-stage seconds, rates and accuracy against the truth."""
    (_, outcomes), wall_s = timed(lambda: reconstruct(video, capture, Progress(), until="fit", params=params))
    seconds = {o.name: o.duration_s if o.status == "done" else None for o in outcomes}
    report = json.loads((capture / "report.json").read_text())
    frames, track, fit = report["frames"], report["track"], report["fit"]
    selected, tracked = frames["frames_selected"], track["frames_tracked"]
    errors = compare_with_truth(model, load_fit(str(capture / "fit.npz")), gt)

    def rate(count, stage):
        return round(count / seconds[stage], 1) if seconds.get(stage) else None

    return {
        "focal": label,
        "wall_s": round(wall_s, 2),
        "frames_s": seconds.get("frames"), "track_s": seconds.get("track"), "fit_s": seconds.get("fit"),
        "frames_video_fps": rate(frames["frames_total"], "frames"),
        "track_fps": rate(selected, "track"),
        "fit_fps": rate(tracked, "fit"),
        "frames_selected": selected, "frames_tracked": tracked,
        "reproj_iod_mean": fit["reproj_iod_mean"],
        "vertex_error_mm_mean": round(errors["vertex_error_mm_mean"], 3),
        "rotation_error_deg_mean": round(errors["rotation_error_deg_mean"], 3),
        "rotation_error_deg_max": round(errors["rotation_error_deg_max"], 3),
        "focal_error_rel": round(errors["focal_error_rel"], 4),
        "rotation_by_yaw": [{k: (round(v, 2) if isinstance(v, float) else v) for k, v in band.items()} for band in errors["by_yaw"]],
        "focal_fit_px": fit.get("focal_px"), "focal_pnp_estimate_px": fit.get("focal_pnp_estimate_px"),
        "warnings": [w for o in outcomes for w in o.warnings],
    }


def fmt(value, digits=2):
    if value is None:
        return "skipped"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 seeds of 60 frames at 640x480 (smoke run)")
    parser.add_argument("--seeds", type=int, nargs="+", default=None)
    parser.add_argument("--frames", type=int, default=None)
    parser.add_argument("--width", type=int, default=None)
    parser.add_argument("--height", type=int, default=None)
    parser.add_argument("--no-log", action="store_true", help="do not append to bench/results.jsonl")
    args = parser.parse_args()
    seeds = args.seeds or ([0, 1] if args.quick else [0, 1, 2])
    frames = args.frames or (60 if args.quick else 300)
    width, height = args.width or (640 if args.quick else 1280), args.height or (480 if args.quick else 720)
    on_target_clip = (frames, width, height) == TARGET_CLIP

    model, head_s = timed(get_open_head)
    _, warm_s = timed(lambda: warm_up(model))
    print(f"head model {head_s:.1f} s, warm-up (imports, caches) {warm_s:.1f} s", file=sys.stderr)
    date, machine = time.strftime("%Y-%m-%d"), f"{platform.machine()} {platform.processor() or ''}".strip()
    version = source_version()
    records = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in seeds:
            spec = HeadClipSpec(frames=frames, width=width, height=height, fps=30.0, seed=seed)
            video, truth_path = Path(tmp) / f"seed{seed}.mp4", Path(tmp) / f"seed{seed}.npz"
            gt, render_s = timed(lambda: write_head_clip(model, video, truth_path, spec))
            print(f"seed {seed}: rendered {frames} frames {width}x{height} in {render_s:.1f} s", file=sys.stderr)
            focal_px = float(np.mean(gt["focal_px"]))
            focal_mm35 = focal_px / math.hypot(width, height) * FULL_FRAME_DIAGONAL_MM
            capture = Path(tmp) / f"capture{seed}"
            floor_s = floor_loop(video)
            for label, params in (("estimated", None), ("known", {"fit": FitParams(focal_mm35=focal_mm35)})):
                row = run_once(model, video, capture, gt, params, label)
                record = {
                    "bench": "track_fit", "date": date, "machine": machine, "source": version,
                    "clip": f"{frames} frames {width}x{height} {spec.fps:g} fps mp4v, head clip seed {seed}",
                    "seed": seed, "render_s": round(render_s, 2), "focal_true_px": round(focal_px, 2),
                    "floor_decode_facemesh_s": round(floor_s, 2),
                    "fit_params": dataclasses.asdict(FitParams(focal_mm35=round(focal_mm35, 3)) if params else FitParams()),
                    **row,
                }
                records.append(record)
                print(f"seed {seed} focal {label}: frames {fmt(row['frames_s'])}, track {fmt(row['track_s'])}, "
                      f"fit {fmt(row['fit_s'])} (s); vertex error {row['vertex_error_mm_mean']:.2f} mm; focal {row['focal_fit_px']} px "
                      f"(PnP estimate {row['focal_pnp_estimate_px']}, true {focal_px:.1f})", file=sys.stderr)

    print_table(records, on_target_clip)
    if not args.no_log:
        with open(Path(__file__).resolve().parent / "results.jsonl", "a") as log:
            for record in records:
                log.write(json.dumps(record) + "\n")


def print_table(records, on_target_clip):
    print("\n| seed | focal | render s | floor s | frames s (video fps) | track s (fps) | frames+track s (x floor) "
          "| fit s (fps) | reproj/IOD | vertex mm | rot deg mean / max | focal err |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in records:
        both = None if r["frames_s"] is None or r["track_s"] is None else r["frames_s"] + r["track_s"]
        ratio = None if both is None else both / r["floor_decode_facemesh_s"]
        print(f"| {r['seed']} | {r['focal']} | {r['render_s']:.1f} | {r['floor_decode_facemesh_s']:.2f} "
              f"| {fmt(r['frames_s'])} ({fmt(r['frames_video_fps'], 1)}) "
              f"| {fmt(r['track_s'])} ({fmt(r['track_fps'], 1)}) | {fmt(both)} ({fmt(ratio)}) "
              f"| {fmt(r['fit_s'])} ({fmt(r['fit_fps'], 1)}) "
              f"| {r['reproj_iod_mean']:.4f} | {r['vertex_error_mm_mean']:.2f} "
              f"| {r['rotation_error_deg_mean']:.2f} / {r['rotation_error_deg_max']:.2f} | {100 * r['focal_error_rel']:+.1f}% |")

    first = [r for r in records if r["frames_s"] is not None and r["track_s"] is not None]
    frames_track = float(np.mean([r["frames_s"] + r["track_s"] for r in first])) if first else float("nan")
    ratio = float(np.mean([(r["frames_s"] + r["track_s"]) / r["floor_decode_facemesh_s"] for r in first])) if first else float("nan")
    fit_s = float(np.mean([r["fit_s"] for r in records if r["fit_s"] is not None]))
    if on_target_clip:
        verdict = lambda value, target: "PASS" if value < target else "MISS"  # noqa: E731
        print(f"\ntargets (10 s 720p clip, mean over seeds): frames+track {frames_track:.2f} s "
              f"(target < {TARGET_FRAMES_TRACK_S:g} s: {verdict(frames_track, TARGET_FRAMES_TRACK_S)}), "
              f"{ratio:.2f} x the decode + FaceMesh floor (target <= {TARGET_FLOOR_RATIO:g}: "
              f"{verdict(ratio, TARGET_FLOOR_RATIO + 1e-9)}), "
              f"fit {fit_s:.2f} s (target < {TARGET_FIT_S:g} s: {verdict(fit_s, TARGET_FIT_S)})")
    else:
        print(f"\nmean frames+track {frames_track:.2f} s ({ratio:.2f} x the decode + FaceMesh floor), fit {fit_s:.2f} s (targets frames+track < "
              f"{TARGET_FRAMES_TRACK_S:g} s and fit < {TARGET_FIT_S:g} s apply to the 300-frame 1280x720 clip only)")
    for label in ("estimated", "known"):
        rows = [r for r in records if r["focal"] == label]
        if rows:
            print(f"focal {label}: mean vertex error {np.mean([r['vertex_error_mm_mean'] for r in rows]):.2f} mm, "
                  f"rotation {np.mean([r['rotation_error_deg_mean'] for r in rows]):.2f} deg "
                  f"(max {max(r['rotation_error_deg_max'] for r in rows):.2f}), "
                  f"reproj/IOD {np.mean([r['reproj_iod_mean'] for r in rows]):.4f}, "
                  f"|focal error| {100 * np.mean([abs(r['focal_error_rel']) for r in rows]):.1f}%")
            bands = [band for r in rows for band in r["rotation_by_yaw"]]
            for low, high in sorted({tuple(b["abs_yaw_deg"]) for b in bands}):
                same = [b for b in bands if tuple(b["abs_yaw_deg"]) == (low, high)]
                frames = sum(b["frames"] for b in same)
                mean = lambda key: sum(b[key] * b["frames"] for b in same) / frames  # noqa: E731
                print(f"  |true yaw| {low:g}-{high:g} deg ({frames} frames): rotation error {mean('rotation_error_deg_mean'):.2f} deg, "
                      f"yaw error toward the turn {mean('yaw_error_deg_toward_turn'):+.2f} deg")


if __name__ == "__main__":
    main()
