"""Speed of the ``enhance`` stage at a capture's texture size: load, tiled DDIM over the skin texels, PNG write.

Usage: .venv/bin/python bench/enhance_speed.py [--size 2048] [--steps 4] [--device auto] [--weights weights/enhance_64.safetensors]

Target: at most 3 minutes for a 2048^2 texture on the 2-core CI CPU. The
inputs are synthetic (a skin tone with noise on the UV layout's skin
texels): speed depends on the texture size, the steps and the number of
tiles, not on the content. Prints the times and appends a line to
``bench/results.jsonl``.
"""

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))
from devpath import load_package  # noqa: E402

load_package()
from studio_avatar.core.color import linear_to_srgb  # noqa: E402
from studio_avatar.core.device import resolve_device  # noqa: E402
from studio_avatar.core.enhance.stage import skin_layout  # noqa: E402
from studio_avatar.core.enhance.weights import load_enhance  # noqa: E402
from studio_avatar.core.image_io import write_png16  # noqa: E402
from track_fit import source_version  # noqa: E402

BENCH = Path(__file__).resolve().parent
TARGET_S = 180.0


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--weights", default=str(BENCH.parent / "weights" / "enhance_64.safetensors"))
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    layout = skin_layout(args.size)
    base = np.clip(np.array([0.5, 0.33, 0.25], np.float32) + rng.normal(0, 0.02, (args.size, args.size, 3)), 0, 1)
    base = (base * layout[..., None]).astype(np.float32)
    phone, coverage = (base * 0.7).astype(np.float32), (layout * 0.8).astype(np.float32)
    device = resolve_device(args.device)
    times = {}
    started = time.perf_counter()
    pipeline, _ = load_enhance(args.weights, device)
    times["load_s"] = time.perf_counter() - started
    started = time.perf_counter()
    enhanced = pipeline(base, phone, coverage, layout, steps=args.steps)
    times["denoise_s"] = time.perf_counter() - started
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        write_png16(Path(tmp) / "albedo.png", linear_to_srgb(enhanced))
    times["write_s"] = time.perf_counter() - started
    tiles = len(pipeline.tiles(layout, pipeline.default_overlap))
    times = {k: round(v, 2) for k, v in times.items()}
    total = round(sum(times.values()), 2)
    verdict = "PASS" if total <= TARGET_S or args.size != 2048 else "FAIL"
    print(f"enhance stage at {args.size}^2, {args.steps} steps, {tiles} tiles of {pipeline.config.tile}^2 on {device}: "
          f"{times} total {total} s (target {TARGET_S:.0f} s at 2048^2: {verdict})")
    with open(BENCH / "results.jsonl", "a") as handle:
        handle.write(json.dumps({"bench": "enhance_speed", "date": time.strftime("%Y-%m-%d"), "machine": platform.machine(),
                                 "source": source_version(), "size": args.size, "steps": args.steps, "tiles": tiles,
                                 "device": device, **times, "total_s": total}) + "\n")


if __name__ == "__main__":
    main()
