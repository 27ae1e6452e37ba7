"""The real-clip skin-tone benchmark: face ITA° of real videos against their avatar's frontal studio render.

Usage: .venv/bin/python bench/realclips.py [--weights-dir DIR] [--only d6 d20 ...] [--samples 16] [--fresh] [--no-log]

For each clip of ``../shared/realclips/*.mp4`` (real talking heads, small
head turns; internal evaluation only, see that folder's README) it runs, via
the CLI, ``studio-avatar [--weights-dir DIR] reconstruct`` (1024² textures,
texture method auto: GMug too when DIR or the shipped weights/ hold its
weights; the capture is resumable, so a re-run only redoes stale stages),
then per albedo of the capture (``delit_classic``, and ``gmug`` when its
texture was made with the weights in use) ``build`` and ``render`` (studio
lighting, yaw 0, Cycles, 512²; skipped when the render is newer than the
albedo and the fit, unless --fresh). Skin tone: the ITA° = atan2(L* - 50, b*)
(CIELAB D65, ``core/color``) of the median linear colour of 7x7 px
patches around 7 cheek and forehead FaceMesh landmarks, on the most frontal
kept video frame (fitted head orientation closest to facing the camera) and
on each render. Writes:

* ``bench/results/realclips.md``: per clip the frame ITA°, each method's
  render ITA° and difference (render - frame), the mean |difference| and
  "within 10° on every clip" per method, and the timings (numbers only:
  nothing derived from the clips may be committed);
* ``bench/work/realclips/sheet.png`` (not committed): per clip, frame |
  classic render | gmug render, face crops with the patches and ITA°;
* one JSON line per clip in ``bench/results.jsonl`` (``"bench": "realclips"``; --no-log skips).

Work folders: ``bench/work/realclips/<clip>/`` (capture, .blend, renders).
"""

import argparse
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))
from devpath import load_package  # noqa: E402

load_package()
from studio_avatar.core.color import SKIN_TONE_LANDMARKS, SRGB8_TO_LINEAR, ita_degrees  # noqa: E402
from studio_avatar.core.hashing import path_sha256  # noqa: E402
from studio_avatar.core.native_stderr import native_stderr_captured  # noqa: E402
from studio_avatar.core.paths import GMUG_WEIGHTS_NAME, weights_dir as default_weights_dir  # noqa: E402
from track_fit import source_version  # noqa: E402

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
CLIPS = ROOT.parent / "shared" / "realclips"
WORK = BENCH / "work" / "realclips"
CLI = ROOT / ".venv" / "bin" / "studio-avatar"
METHODS = ("delit_classic", "gmug")
RENDER_NAME = "studio_yaw+000_neutral.png"   # core/blender/batch_render: LIGHTING_yawDEG_EXPRESSION.png
PATCH = 3                      # half side: 7x7 px patches
TOLERANCE_DEG = 10.0           # acceptance: |render - frame| ITA° on every clip
OFFSETS = np.stack(np.meshgrid(np.arange(-PATCH, PATCH + 1), np.arange(-PATCH, PATCH + 1)), -1).reshape(-1, 2)


def cli(*args, weights_dir=None):
    """Run the CLI quietly (nice'd like this process); its stderr is shown only when it fails."""
    argv = [str(CLI), "--progress", "none"] + (["--weights-dir", str(weights_dir)] if weights_dir else []) + [str(a) for a in args]
    done = subprocess.run(argv, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"{' '.join(argv)} failed ({done.returncode}):\n{done.stderr[-3000:]}")


def frontal_frame(capture):
    """The kept frame whose fitted head faces the camera most squarely: (path, angle in degrees)."""
    fit = np.load(capture / "fit.npz", allow_pickle=False)
    rotvec, position = fit["pose"][:, 0].astype(np.float64), fit["translation"].astype(np.float64)
    angle = np.linalg.norm(rotvec, axis=1, keepdims=True)
    axis = rotvec / np.maximum(angle, 1e-12)
    z = np.array([0.0, 0.0, 1.0])        # the head model faces +z; the camera sits at the origin (OpenGL axes)
    forward = z * np.cos(angle) + np.cross(axis, z) * np.sin(angle) + axis * axis[:, 2:] * (1 - np.cos(angle))
    to_camera = -position / np.linalg.norm(position, axis=1, keepdims=True)
    degrees = np.degrees(np.arccos(np.clip((forward * to_camera).sum(1), -1, 1)))
    best = int(np.argmin(degrees))
    frames = json.loads((capture / "frames" / "frames.json").read_text())["frames"]
    return capture / "frames" / frames[int(fit["frame"][best])]["file"], float(degrees[best])


def skin_ita(mesh, path):
    """(ITA° of the skin patches' median linear colour, (478, 2) landmarks px, 8-bit RGB image); ITA NaN if no face."""
    import cv2

    image = np.ascontiguousarray(cv2.imread(str(path), cv2.IMREAD_COLOR)[..., ::-1])
    height, width = image.shape[:2]
    with native_stderr_captured():     # mediapipe logs straight to fd 2
        found = mesh.process(image).multi_face_landmarks
    if not found:
        return float("nan"), None, image
    points = np.array([(p.x * width, p.y * height) for p in found[0].landmark])
    centres = np.rint(points[SKIN_TONE_LANDMARKS]).astype(int)
    xy = centres[:, None] + OFFSETS[None]
    pixels = image[np.clip(xy[..., 1], 0, height - 1), np.clip(xy[..., 0], 0, width - 1)].reshape(-1, 3)
    return float(ita_degrees(np.median(SRGB8_TO_LINEAR[pixels], 0))), points, image


def face_tile(image, points, ita, label, tile=256):
    """Square face crop with the skin patches drawn and the label / ITA° written, (tile, tile, 3) BGR."""
    import cv2

    out = image[..., ::-1].copy()
    if points is not None:
        for x, y in np.rint(points[SKIN_TONE_LANDMARKS]).astype(int):
            cv2.rectangle(out, (x - PATCH, y - PATCH), (x + PATCH, y + PATCH), (0, 255, 0), 1)
        (x0, y0), (x1, y1) = points.min(0), points.max(0)
        side, (cx, cy) = 1.3 * max(x1 - x0, y1 - y0), ((x0 + x1) / 2, (y0 + y1) / 2)
        x0, y0 = int(max(cx - side / 2, 0)), int(max(cy - side / 2, 0))
        out = out[y0:y0 + int(side), x0:x0 + int(side)]
    out = cv2.resize(out, (tile, tile), interpolation=cv2.INTER_AREA)
    text = f"{label}  ITA {ita:.1f}" if np.isfinite(ita) else f"{label}  no face found"
    cv2.putText(out, text, (6, tile - 8), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(out, text, (6, tile - 8), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA)
    return out


def num(value):
    """Rounded for the JSON line; None for NaN (no face found)."""
    return round(value, 2) if np.isfinite(value) else None


def fmt(value, pattern="{:.1f}"):
    return "–" if value is None or not np.isfinite(value) else pattern.format(value)


def run_clip(clip, mesh, args, weights_dir, weights, weights_sha):
    """Reconstruct, build, render and measure one clip: (its JSON record, its contact-sheet row or None)."""
    folder = WORK / clip.stem
    capture = folder / "capture"
    timings, notes, result = {}, [], {}
    record = {"bench": "realclips", "date": time.strftime("%Y-%m-%d"), "machine": platform.machine(), "source": source_version(),
              "clip": clip.stem, "samples": args.samples, "methods": result, "timings_s": timings, "notes": notes}
    print(f"== {clip.stem}: reconstruct", flush=True)
    started = time.perf_counter()
    try:
        cli("reconstruct", clip, "-o", capture, "--texture-size", 1024, "--texture-method", "auto", weights_dir=weights_dir)
    except RuntimeError as error:            # e.g. no face followed, too few usable frames: the clip fails, the bench goes on
        notes.append(str(error).splitlines()[-1])
    timings["reconstruct_s"] = round(time.perf_counter() - started, 2)
    stages = json.loads((capture / "capture.json").read_text())["stages"] if (capture / "capture.json").is_file() else {}
    record["stage_s"] = {k: v.get("duration_s") for k, v in stages.items() if v.get("status") == "done"}
    notes += [f"{k}: {w}" for k, v in stages.items() for w in v.get("warnings", [])]
    if stages.get("delight_classic", {}).get("status") != "done":
        return record, None
    methods = ["delit_classic"]
    gmug = stages.get("gmug", {})
    if gmug.get("status") == "done" and (capture / "textures" / "gmug.png").is_file():
        if weights_sha and gmug.get("params", {}).get("weights_sha256") == weights_sha:
            methods.append("gmug")
        else:
            notes.append("textures/gmug.png was made with other weights than the ones in use: not measured")
    record.update(weights=str(weights) if "gmug" in methods else None, weights_sha256=weights_sha if "gmug" in methods else None)

    frame, record["frame_angle_deg"] = frontal_frame(capture)
    started = time.perf_counter()
    frame_ita, points, image = skin_ita(mesh, frame)
    measure_s = time.perf_counter() - started
    record.update(frame=frame.name, frame_ita_deg=num(frame_ita))
    if points is None:
        notes.append("FaceMesh found no face on the frontal frame")
    tiles = [face_tile(image, points, frame_ita, f"{clip.stem} frame {frame.stem}")]
    for method in METHODS:
        if method not in methods:
            tiles.append(np.full_like(tiles[0], 255))
            continue
        blend, renders = folder / f"{method}.blend", folder / f"render_{method}"
        render = renders / RENDER_NAME
        newest_input = max((capture / "textures" / f"{method}.png").stat().st_mtime, (capture / "fit.npz").stat().st_mtime)
        if args.fresh or not render.is_file() or render.stat().st_mtime < newest_input:
            print(f"   {method}: build, render", flush=True)
            started = time.perf_counter()
            cli("build", capture, "-o", blend, "--albedo", method, "--overwrite")
            timings[f"{method}_build_s"] = round(time.perf_counter() - started, 2)
            started = time.perf_counter()
            cli("render", blend, "-o", renders, "--lightings", "studio", "--views", 0, "--engine", "CYCLES",
                "--resolution", 512, "--samples", args.samples, "--overwrite")
            timings[f"{method}_render_s"] = round(time.perf_counter() - started, 2)
        started = time.perf_counter()
        ita, render_points, render_image = skin_ita(mesh, render)
        measure_s += time.perf_counter() - started
        if render_points is None:
            notes.append(f"FaceMesh found no face on the {method} render")
        result[method] = {"ita_deg": num(ita), "difference_deg": num(ita - frame_ita)}
        tiles.append(face_tile(render_image, render_points, ita, method))
    timings["measure_s"] = round(measure_s, 2)
    return record, np.concatenate(tiles, 1)


def main():
    import cv2
    import mediapipe as mp

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights-dir", type=Path, default=None, help="GMug weights folder (default: the shipped weights/)")
    parser.add_argument("--only", nargs="*", default=None, help="clip names (e.g. d6 d20)")
    parser.add_argument("--samples", type=int, default=16, help="Cycles samples per pixel")
    parser.add_argument("--fresh", action="store_true", help="rebuild and re-render even when the renders are up to date")
    parser.add_argument("--no-log", action="store_true", help="do not append to bench/results.jsonl")
    args = parser.parse_args()
    weights_dir = args.weights_dir.resolve() if args.weights_dir else None
    weights = (weights_dir or default_weights_dir()) / GMUG_WEIGHTS_NAME
    weights_sha = path_sha256(weights) if weights.is_file() else None

    clips = sorted((p for p in CLIPS.glob("*.mp4") if not args.only or p.stem in args.only), key=lambda p: int(p.stem[1:]))
    records, sheet_rows = [], []
    with native_stderr_captured():     # mediapipe logs straight to fd 2, most of it on the first image
        mesh = mp.solutions.face_mesh.FaceMesh(static_image_mode=True, refine_landmarks=True, max_num_faces=1)
        mesh.process(np.zeros((64, 64, 3), np.uint8))
    with mesh:
        for clip in clips:
            record, row = run_clip(clip, mesh, args, weights_dir, weights, weights_sha)
            records.append(record)
            sheet_rows += [row] if row is not None else []
            if not args.no_log:
                with open(BENCH / "results.jsonl", "a") as handle:
                    handle.write(json.dumps(record) + "\n")
            print(f"   frame {record.get('frame')} ({fmt(record.get('frame_angle_deg'))}° off frontal) ITA {fmt(record.get('frame_ita_deg'))}; "
                  + "; ".join(f"{m} ITA {fmt(v['ita_deg'])} ({fmt(v['difference_deg'], '{:+.1f}')})" for m, v in record["methods"].items())
                  + f"; {sum(record['timings_s'].values()):.0f} s" + "".join(f"\n   note: {n}" for n in record["notes"]), flush=True)

    WORK.mkdir(parents=True, exist_ok=True)
    if sheet_rows and not cv2.imwrite(str(WORK / "sheet.png"), np.concatenate(sheet_rows, 0)):
        raise OSError(f"could not write {WORK / 'sheet.png'}")
    md = ["# Real-clip skin-tone benchmark", "",
          f"`bench/realclips.py` at {source_version()}, {time.strftime('%Y-%m-%d')}, GMug weights: "
          f"{weights if weights_sha else 'none (classic only)'}. ITA° (CIELAB D65) of the median colour of 7x7 px patches "
          "at 7 cheek and forehead FaceMesh landmarks, on the most frontal kept frame of the real clip and on the avatar's "
          f"frontal studio render (Cycles, {args.samples} samples, 512²); difference = render - frame. Numbers only: "
          "the clips and anything made from them stay out of the repository.", "",
          "| clip | frame ° off frontal | frame ITA° | classic ITA° | classic diff | gmug ITA° | gmug diff |",
          "|---|---|---|---|---|---|---|"]
    for r in records:
        cells = [fmt(r["methods"].get(m, {}).get(k), p) for m in METHODS for k, p in (("ita_deg", "{:.1f}"), ("difference_deg", "{:+.1f}"))]
        md.append(f"| {r['clip']} | {fmt(r.get('frame_angle_deg'))} | {fmt(r.get('frame_ita_deg'))} | " + " | ".join(cells) + " |")
    md += [""]
    for method in METHODS:
        differences = np.array([r["methods"].get(method, {}).get("difference_deg") for r in records], float)   # None -> NaN
        if np.isfinite(differences).any():
            ok = bool(np.all(np.abs(differences) <= TOLERANCE_DEG))          # a clip without a number fails
            md.append(f"- {method}: mean |difference| {np.nanmean(np.abs(differences)):.1f}° over "
                      f"{np.isfinite(differences).sum()}/{len(records)} clips; within {TOLERANCE_DEG:.0f}° on every clip: "
                      f"{'PASS' if ok else 'FAIL'}")
    keys = sorted({k for r in records for k in r["timings_s"]}, key=lambda k: (k != "reconstruct_s", k == "measure_s", k))
    md += ["", "## Times (s)", "", "This run's wall time per step (steps skipped as up to date are absent or near 0), and "
           "the reconstruction stages' own durations when they last ran.", "",
           "| clip | " + " | ".join(keys) + " | total | stages (last run) |", "|" + "---|" * (len(keys) + 3)]
    for r in records:
        stages = ", ".join(f"{k} {v:.0f}" for k, v in r["stage_s"].items() if v is not None)
        md.append(f"| {r['clip']} | " + " | ".join(fmt(r["timings_s"].get(k)) for k in keys)
                  + f" | {sum(r['timings_s'].values()):.1f} | {stages} |")
    notes = [f"- {r['clip']}: {n}" for r in records for n in r["notes"]]
    md += (["", "## Notes", ""] + notes) if notes else []
    results = BENCH / "results"
    results.mkdir(parents=True, exist_ok=True)
    (results / "realclips.md").write_text("\n".join(md) + "\n")
    print("\n".join(md[6:]))
    print(f"wrote {results / 'realclips.md'} and {WORK / 'sheet.png'}")


if __name__ == "__main__":
    main()
