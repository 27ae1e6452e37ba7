"""Benchmark the procedural skin albedo: skin-tone coverage (ITA) of a sample set, generation time, a contact sheet.

Usage: .venv/bin/python bench/albedo_ita.py [--samples 100] [--size 512] [--no-log]

Generates ``--samples`` albedos of the open head (seeds 0..N-1, tones drawn by
``sample_skin``) at ``--size`` and reports the spread of their face ITA
(min, 5th percentile, median, 95th percentile, max) and the count in each
Chardon / Del Bino category (very light > 55, light 41-55, intermediate
28-41, tan 10-28, brown -30-10, dark < -30). Times one 2048^2 and one 512^2
generation after a warm-up (the per-model layout is built once per process;
its time is reported apart). Writes a contact sheet of 12 face crops (sRGB,
8-bit, ITA in the corner) to bench/results/albedo_samples.png and appends one
JSON line to bench/results.jsonl.

Targets (this 2-core machine): 2048^2 under 5 s, 512^2 under 0.5 s; the set
must reach very light (ITA > 55) and dark (ITA < -30).
"""

import argparse
import json
import platform
import sys
import time
from collections import Counter
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))
from devpath import load_package  # noqa: E402

load_package()
from track_fit import source_version  # noqa: E402

from studio_avatar.core.color import ITA_CATEGORIES, ita_category, linear_to_srgb  # noqa: E402
from studio_avatar.core.head.source import load_head  # noqa: E402
from studio_avatar.core.synth.albedo import albedo_layout, generate_albedo  # noqa: E402

TARGET_2048_S = 5.0
TARGET_512_S = 0.5
SHEET_SEEDS = 12
FACE_CROP = (0.02, 0.70, 0.14, 0.86)   # rows then columns, fractions of the UV square: the face island


def timed(function, *args, **kwargs):
    start = time.perf_counter()
    result = function(*args, **kwargs)
    return result, time.perf_counter() - start


def contact_sheet(albedos, path):
    tiles = []
    for albedo in albedos:
        size = albedo.linear.shape[0]
        r0, r1, c0, c1 = (int(round(f * size)) for f in FACE_CROP)
        tile = np.ascontiguousarray((np.clip(linear_to_srgb(albedo.linear[r0:r1, c0:c1]), 0, 1) * 255).round().astype(np.uint8)[..., ::-1])
        cv2.putText(tile, f"ITA {albedo.ita_deg:.0f}", (6, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA)
        tiles.append(tile)
    rows = [np.concatenate(tiles[i:i + 4], 1) for i in range(0, len(tiles), 4)]
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), np.concatenate(rows, 0)):
        raise OSError(f"could not write {path}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=100)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--no-log", action="store_true", help="do not append to bench/results.jsonl")
    args = parser.parse_args()

    model = load_head(with_landmarks=False)
    _, layout_s = timed(albedo_layout, model)
    generate_albedo(model, 512, seed=0)                       # warm-up: lookup tables, OpenCV threads
    _, time_2048 = timed(generate_albedo, model, 2048, seed=1)
    _, time_512 = timed(generate_albedo, model, 512, seed=2)

    albedos, itas, start = [], [], time.perf_counter()
    for seed in range(args.samples):
        albedo = generate_albedo(model, args.size, seed=seed)
        itas.append(albedo.ita_deg)
        if seed < SHEET_SEEDS:
            albedos.append(albedo)
    per_sample_s = (time.perf_counter() - start) / args.samples
    itas = np.array(itas)
    counts = Counter(ita_category(value) for value in itas)
    sheet = Path(__file__).resolve().parent / "results" / "albedo_samples.png"
    contact_sheet(sorted(albedos, key=lambda a: -a.ita_deg), sheet)

    record = {
        "bench": "albedo", "date": time.strftime("%Y-%m-%d"), "machine": platform.machine(), "source": source_version(),
        "samples": args.samples, "size": args.size,
        "ita_min": round(float(itas.min()), 2), "ita_p5": round(float(np.percentile(itas, 5)), 2),
        "ita_median": round(float(np.median(itas)), 2), "ita_p95": round(float(np.percentile(itas, 95)), 2),
        "ita_max": round(float(itas.max()), 2),
        "ita_categories": {name: counts.get(name, 0) for name, _, _ in ITA_CATEGORIES},
        "layout_s": round(layout_s, 3), "time_2048_s": round(time_2048, 3), "time_512_s": round(time_512, 3),
        "per_sample_s": round(per_sample_s, 3), "contact_sheet": str(sheet.relative_to(sheet.parents[2])),
    }
    print(json.dumps(record))
    print(f"\nITA over {args.samples} samples: min {record['ita_min']:.1f}, p5 {record['ita_p5']:.1f}, median "
          f"{record['ita_median']:.1f}, p95 {record['ita_p95']:.1f}, max {record['ita_max']:.1f}")
    print("categories: " + ", ".join(f"{name} {count}" for name, count in record["ita_categories"].items()))
    verdict = lambda value, target: "PASS" if value < target else "MISS"  # noqa: E731
    print(f"2048^2 {time_2048:.2f} s (< {TARGET_2048_S:g} s: {verdict(time_2048, TARGET_2048_S)}), 512^2 {time_512:.3f} s "
          f"(< {TARGET_512_S:g} s: {verdict(time_512, TARGET_512_S)}), layout (once per model) {layout_s:.2f} s")
    if not args.no_log:
        with open(Path(__file__).resolve().parent / "results.jsonl", "a") as log:
            log.write(json.dumps(record) + "\n")


if __name__ == "__main__":
    main()
