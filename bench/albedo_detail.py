"""Benchmark the fine detail of the procedural skin albedo: what 2048^2 adds over 512^2, by facial region.

Usage: .venv/bin/python bench/albedo_detail.py [--identities 6] [--size 2048] [--base 512] [--no-log]

For ``--identities`` seeds (0..N-1) with tones forced from very light to very
dark (and stubble forced on every other one, so the beard row has data), it
generates the albedo of the open head at ``--size`` and at ``--base``,
upsamples the base one bicubically to ``--size``, and reports on each region
``core/eval/metrics.band_energy`` -- the luminance energy between 1/8 and 1/2
of Nyquist at ``--size`` (wavelengths of 4-16 texels, about 0.7-3 mm on the
face at 2048^2) -- of both, and their ratio: how much real detail the large
albedo has over a smooth upsampling of the small one (1 = none). Regions:
``face`` is the model's face region (skin texels, brows and lash lines
included: the mask of the ``albedo_hf_energy_ratio_face`` metric); cheek,
nose, forehead, chin, beard are the generator's own zones (field > 0.5) on
face skin without brow or scalp hair; lips is the lip zone. Also reports
the relative contrast of the detail (sqrt(energy) / mean luminance, so light
and dark skin compare), the gradient correlation of the upsampled albedo with
the large one on the face, the face ITA, and the generation time of each
albedo (after a warm-up; the per-model layout is built once, apart).

Writes ``bench/results/albedo_detail.md`` and appends one JSON line to
``bench/results.jsonl``. Target: on every skin region the ratio is at least
2 (the large albedo is not a blurred small one), generation at 2048^2 under 5 s.
"""

import argparse
import dataclasses
import json
import platform
import sys
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))
from devpath import load_package  # noqa: E402

load_package()
from track_fit import source_version  # noqa: E402

from studio_avatar.core.color import luminance  # noqa: E402
from studio_avatar.core.eval.metrics import band_energy, gradient_correlation  # noqa: E402
from studio_avatar.core.head.source import load_head  # noqa: E402
from studio_avatar.core.synth.albedo import albedo_layout, generate_albedo, sample_skin  # noqa: E402
from studio_avatar.core.texture.uv import texel_geometry  # noqa: E402

BENCH = Path(__file__).resolve().parent
RESULTS = BENCH / "results"
SKIN_ZONES = ("cheek", "nose", "forehead", "chin", "beard")
REGIONS = ("face",) + SKIN_ZONES + ("lips",)
TARGET_RATIO = 2.0
TARGET_TIME_S = 5.0


def region_masks(model, size):
    """Region name -> (size, size) bool mask (see the module docstring)."""
    geometry = texel_geometry(model, size)
    face = np.zeros(size * size, bool)
    face[geometry.texels.numpy()[(geometry.regions["face"] & geometry.skin).numpy()]] = True
    face = face.reshape(size, size)
    fields = albedo_layout(model).fields

    def zone(name):
        return cv2.resize(fields[name], (size, size), interpolation=cv2.INTER_LINEAR) > 0.5

    hairless = face & ~zone("brow") & ~zone("hair") & ~zone("lips") & ~zone("upper_lid")
    masks = {"face": face, "lips": face & zone("lips")}
    masks.update({name: hairless & zone(name) for name in SKIN_ZONES})
    return masks


def measure(model, seed, tone, stubble, masks, size, base):
    skin = dataclasses.replace(sample_skin(seed, tone=tone), stubble=stubble)
    start = time.perf_counter()
    large = generate_albedo(model, size, seed=seed, skin=skin)
    time_large = time.perf_counter() - start
    start = time.perf_counter()
    small = generate_albedo(model, base, seed=seed, skin=skin)
    time_small = time.perf_counter() - start
    upsampled = np.clip(cv2.resize(small.linear, (size, size), interpolation=cv2.INTER_CUBIC), 0.0, 1.0)
    grey = luminance(large.linear)
    regions = {}
    for name, mask in masks.items():
        if mask.sum() < 100:
            continue
        energy, energy_up = band_energy(large.linear, mask), band_energy(upsampled, mask)
        regions[name] = {"energy": energy, "energy_upsampled": energy_up, "ratio": energy / energy_up,
                         "contrast": float(np.sqrt(energy) / grey[mask].mean())}
    return {"seed": seed, "tone": tone, "stubble": stubble, "ita_deg": large.ita_deg, "time_s": time_large,
            "time_base_s": time_small, "gradient_correlation_face": gradient_correlation(upsampled, large.linear, masks["face"]),
            "regions": regions}


def verdict(ok):
    return "PASS" if ok else "MISS"


def markdown(rows, args, layout_s):
    times = [row["time_s"] for row in rows]
    lines = ["# Procedural albedo: fine detail at 2048² over 512²", "",
             f"`.venv/bin/python bench/albedo_detail.py --identities {args.identities} --size {args.size} --base {args.base}"
             f"{' --no-log' if args.no_log else ''}` at {source_version()}, {time.strftime('%Y-%m-%d')}, {platform.machine()} "
             "CPU (2 shared cores).", "",
             f"Band energy (`core/eval/metrics.band_energy`, 1/8-1/2 of Nyquist at {args.size}²) of the {args.size}² albedo "
             f"over that of the {args.base}² albedo of the same identity upsampled bicubically: 1 = no detail beyond "
             f"{args.base}², target ≥ {TARGET_RATIO:g} on every skin region. Tones forced from 0 (very light) to 1 (very "
             "dark), stubble on every other identity.", "",
             "| seed | tone | stubble | ITA° | " + " | ".join(REGIONS)
             + f" | grad. corr. face | {args.size}² s | {args.base}² s |",
             "|---" * (len(REGIONS) + 7) + "|"]
    for row in rows:
        ratios = [f"{row['regions'][name]['ratio']:.2f}" if name in row["regions"] else "–" for name in REGIONS]
        lines.append(f"| {row['seed']} | {row['tone']:.2f} | {row['stubble']:.1f} | {row['ita_deg']:.1f} | "
                     + " | ".join(ratios)
                     + f" | {row['gradient_correlation_face']:.3f} | {row['time_s']:.2f} | {row['time_base_s']:.2f} |")
    lines += ["", "Per region, over the identities that have it: mean band energy (linear luminance²) at "
              f"{args.size}² and of the upsampled {args.base}², their ratio (min / mean), and the relative contrast of "
              f"the {args.size}² detail, sqrt(energy) / mean luminance.", "",
              f"| region | energy {args.size}² | energy {args.base}² up | ratio min | ratio mean | contrast |",
              "|---|---|---|---|---|---|"]
    for name in REGIONS:
        values = [row["regions"][name] for row in rows if name in row["regions"]]
        ratios = [value["ratio"] for value in values]
        lines.append(f"| {name} | {np.mean([v['energy'] for v in values]):.3g} | "
                     f"{np.mean([v['energy_upsampled'] for v in values]):.3g} | {min(ratios):.2f} | {np.mean(ratios):.2f} | "
                     f"{np.mean([v['contrast'] for v in values]):.4f} |")
    skin_ratio = min(row["regions"][name]["ratio"] for row in rows for name in SKIN_ZONES + ("lips",) if name in row["regions"])
    lines += ["", f"Smallest skin-region ratio {skin_ratio:.2f} (≥ {TARGET_RATIO:g}: {verdict(skin_ratio >= TARGET_RATIO)}); "
              f"{args.size}² generation median {np.median(times):.2f} s, max {max(times):.2f} s "
              f"(< {TARGET_TIME_S:g} s: {verdict(max(times) < TARGET_TIME_S)}); layout (once per model) {layout_s:.2f} s."]
    return lines


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--identities", type=int, default=6)
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument("--base", type=int, default=512)
    parser.add_argument("--no-log", action="store_true", help="do not append to bench/results.jsonl")
    args = parser.parse_args()

    model = load_head(with_landmarks=False)
    start = time.perf_counter()
    albedo_layout(model)
    layout_s = time.perf_counter() - start
    generate_albedo(model, args.base, seed=0)                 # warm-up: lookup tables, OpenCV threads
    masks = region_masks(model, args.size)
    rows = []
    for seed in range(args.identities):
        tone = seed / max(args.identities - 1, 1)
        rows.append(measure(model, seed, tone, 0.8 if seed % 2 else 0.0, masks, args.size, args.base))
        print(json.dumps({k: (round(v, 4) if isinstance(v, float) else v) for k, v in rows[-1].items() if k != "regions"}),
              {name: round(value["ratio"], 2) for name, value in rows[-1]["regions"].items()}, flush=True)

    md = markdown(rows, args, layout_s)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "albedo_detail.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))
    if not args.no_log:
        with open(BENCH / "results.jsonl", "a") as log:
            log.write(json.dumps({"bench": "albedo_detail", "date": time.strftime("%Y-%m-%d"), "machine": platform.machine(),
                                  "source": source_version(), "size": args.size, "base": args.base, "identities": rows}) + "\n")


if __name__ == "__main__":
    main()
