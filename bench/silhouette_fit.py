"""The fit with and without the person's silhouette, on the quality bench's captures (known truth).

Usage: .venv/bin/python bench/silhouette_fit.py [--weights 0 0.3 1] [--only NAME ...] [--no-log]

Needs the captures ``bench/quality.py`` leaves in ``bench/work/quality/``
(run it first). For each capture it refits the landmarks of its
``tracking.npz`` with ``FitOptions(silhouette_weight=w)`` for every weight
(0: landmarks only; the silhouette maps from ``core/fit/stage.frame_silhouettes``),
with the focal length estimated as the stage does, and compares the fit
with the truth (``compare_with_truth``): mean rotation error, posed vertex
error, focal error, the reprojection error, the fit's seconds, and the
rotation error by true |yaw| with the yaw error toward the turn. Prints one
line per capture and weight and the means per weight; appends one JSON
line per weight (``"bench": "silhouette_fit"``) to ``bench/results.jsonl``.
"""

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))
from devpath import load_package  # noqa: E402

load_package()
from studio_avatar.core.fit.evaluate import compare_with_truth  # noqa: E402
from studio_avatar.core.fit.optimize import CAMERA_ROTATION, FitOptions, fit_landmarks  # noqa: E402
from studio_avatar.core.fit.stage import frame_silhouettes  # noqa: E402
from studio_avatar.core.head.open_head import get_open_head  # noqa: E402
from studio_avatar.core.head.view_landmarks import get_view_landmarks  # noqa: E402
from studio_avatar.core.track.stage import load_tracking  # noqa: E402
from track_fit import source_version  # noqa: E402

BENCH = Path(__file__).resolve().parent
WORK = BENCH / "work" / "quality"


def fit_dict(result, tracking, image_size):
    n = len(result.pose)
    return {"shape": result.shape, "expression": result.expression, "pose": result.pose, "translation": result.translation,
            "focal_px": np.full(n, result.focal_px), "principal_px": np.tile(result.principal_px, (n, 1)),
            "camera_rotation": np.tile(CAMERA_ROTATION, (n, 1, 1)), "camera_translation": np.zeros((n, 3)),
            "video_index": tracking["video_index"], "image_size": np.array(image_size)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", type=float, nargs="+", default=[0.0, 0.3])
    parser.add_argument("--only", nargs="*", default=None, help="capture folder names (e.g. dark-city)")
    parser.add_argument("--no-log", action="store_true")
    args = parser.parse_args()
    folders = [p for p in sorted(WORK.iterdir()) if (p / "capture" / "tracking.npz").is_file() and (not args.only or p.name in args.only)]
    if not folders:
        sys.exit(f"no captures in {WORK}: run bench/quality.py first")
    model = get_open_head()
    view = get_view_landmarks(model)
    rows = {w: [] for w in args.weights}
    for folder in folders:
        tracking = load_tracking(str(folder / "capture" / "tracking.npz"))
        truth = dict(np.load(folder / "synth" / "gt" / "truth.npz"))
        image_size = tuple(int(v) for v in tracking["image_size"])
        started = time.perf_counter()
        silhouette = frame_silhouettes(folder / "capture" / "frames", tracking["frame"], image_size)
        silhouette_s = time.perf_counter() - started
        for weight in args.weights:
            started = time.perf_counter()
            result = fit_landmarks(model, tracking["landmarks"][..., :2], tracking["confidence"], image_size,
                                   times_s=tracking["time_s"], options=FitOptions(silhouette_weight=weight), view=view,
                                   silhouette=silhouette if weight > 0 else None)
            fit_s = time.perf_counter() - started
            errors = compare_with_truth(model, fit_dict(result, tracking, image_size), truth)
            row = {"capture": folder.name, "rotation_error_deg_mean": errors["rotation_error_deg_mean"],
                   "vertex_error_mm_mean": errors["vertex_error_mm_mean"], "focal_error_rel": errors["focal_error_rel"],
                   "reproj_iod_mean": float(result.reproj_iod_per_frame.mean()), "fit_s": fit_s,
                   "silhouette_s": silhouette_s, "by_yaw": errors["by_yaw"]}
            rows[weight].append(row)
            bands = ", ".join(f"|yaw| {b['abs_yaw_deg'][0]:g}+: {b['rotation_error_deg_mean']:.1f} deg ({b['yaw_error_deg_toward_turn']:+.1f})"
                              for b in errors["by_yaw"])
            print(f"{folder.name:24s} weight {weight:g}: rotation {row['rotation_error_deg_mean']:.2f} deg, vertex "
                  f"{row['vertex_error_mm_mean']:.1f} mm, focal {100 * row['focal_error_rel']:+.1f}%, reproj/IOD "
                  f"{row['reproj_iod_mean']:.4f}, fit {fit_s:.1f} s; {bands}", flush=True)
    for weight, found in rows.items():
        mean = lambda key: float(np.mean([r[key] for r in found]))  # noqa: E731
        print(f"weight {weight:g}: mean rotation {mean('rotation_error_deg_mean'):.2f} deg, vertex {mean('vertex_error_mm_mean'):.2f} mm, "
              f"|focal| {100 * np.mean([abs(r['focal_error_rel']) for r in found]):.1f}%, fit {mean('fit_s'):.1f} s")
        if not args.no_log:
            record = {"bench": "silhouette_fit", "date": time.strftime("%Y-%m-%d"), "machine": platform.machine(),
                      "source": source_version(), "silhouette_weight": weight,
                      "captures": [{k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items()} for r in found]}
            with open(BENCH / "results.jsonl", "a") as out:
                out.write(json.dumps(record) + "\n")


if __name__ == "__main__":
    main()
