"""Speed of the ``gmug`` stage at a capture's texture size: load, W+ inversion, composition with the classic texture, PNG write.

Usage: .venv/bin/python bench/gmug_speed.py [--size 2048] [--device auto] [--weights weights/gmug_128.safetensors]

Target: at most 60 s for a 2048^2 output on the 2-core CI CPU, inversion
included. The input is a synthetic phone texture (a smooth skin tone with
noise, seen where the UV layout has texels): speed does not depend on the
content. Prints the times and appends a line to ``bench/results.jsonl``.
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
from studio_avatar.core.gmug.inputs import uv_masks  # noqa: E402
from studio_avatar.core.gmug.invert import gmug_albedo  # noqa: E402
from studio_avatar.core.gmug.stage import compose_albedo  # noqa: E402
from studio_avatar.core.gmug.weights import load_gmug  # noqa: E402
from studio_avatar.core.image_io import read_image, write_png16  # noqa: E402
from track_fit import source_version  # noqa: E402

BENCH = Path(__file__).resolve().parent
TARGET_S = 60.0


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--weights", default=str(BENCH.parent / "weights" / "gmug_128.safetensors"))
    args = parser.parse_args()

    import cv2

    rng = np.random.default_rng(0)
    islands = cv2.resize(uv_masks(128).islands, (args.size, args.size), interpolation=cv2.INTER_NEAREST)
    phone = np.clip(np.array([0.62, 0.45, 0.36], np.float32) + rng.normal(0, 0.03, (args.size, args.size, 3)), 0, 1)
    phone = (phone * islands[..., None]).astype(np.float32)
    coverage = (islands * 0.9).astype(np.float32)
    device = resolve_device(args.device)
    with tempfile.TemporaryDirectory() as tmp:
        write_png16(Path(tmp) / "phone.png", phone)
        write_png16(Path(tmp) / "coverage.png", coverage)
        times = {}
        started = time.perf_counter()
        models = load_gmug(args.weights, device)
        phone_srgb, cover = read_image(Path(tmp) / "phone.png"), read_image(Path(tmp) / "coverage.png")
        times["load_s"] = time.perf_counter() - started
        started = time.perf_counter()
        low, _ = gmug_albedo(models, phone_srgb, cover)
        times["inversion_s"] = time.perf_counter() - started
        started = time.perf_counter()
        albedo, _ = compose_albedo(low, phone_srgb, cover)     # the phone texture stands in for the classic one
        times["compose_s"] = time.perf_counter() - started
        started = time.perf_counter()
        write_png16(Path(tmp) / "gmug.png", linear_to_srgb(np.clip(albedo, 0, 1)))
        times["write_s"] = time.perf_counter() - started
    times = {k: round(v, 2) for k, v in times.items()}
    total = round(sum(times.values()), 2)
    verdict = "PASS" if total <= TARGET_S or args.size != 2048 else "FAIL"
    print(f"gmug stage at {args.size}^2 on {device}: {times} total {total} s (target {TARGET_S:.0f} s at 2048^2: {verdict})")
    with open(BENCH / "results.jsonl", "a") as handle:
        handle.write(json.dumps({"bench": "gmug_speed", "date": time.strftime("%Y-%m-%d"), "machine": platform.machine(),
                                 "source": source_version(), "size": args.size, "device": device, **times,
                                 "total_s": total}) + "\n")


if __name__ == "__main__":
    main()
