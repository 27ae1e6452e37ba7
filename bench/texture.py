"""Benchmark the texture stages on synthetic captures with a known albedo and light: stage times and accuracy.

Usage: .venv/bin/python bench/texture.py [--quick] [--frames 60] [--size 2048] [--seeds 0 1]

For each seed a capture of the open head with a smooth skin albedo is
rendered (``core/synth/textured_capture.py``; 1280x720 frames, +-60 degree
turn, the true fit as fit.npz) under a flat white light and under a warm key
light fixed to the camera; then ``unwrap`` and ``delight_classic`` run on it.
Prints per-stage seconds and, on observed face texels, the PSNR (sRGB) of the
phone texture and of the delit texture against the true albedo (raw and after
one exposure gain), coverage, and appends one JSON line per capture to
bench/results.jsonl.

Targets (this 2-core machine): unwrap + fuse of 60 frames into 2048^2 under
20 s; delight_classic under 5 s. --quick: 30 frames at 640x480 into 1024^2
(a smoke run; its times are not compared with the targets).
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
from studio_avatar.core.color import linear_to_srgb, srgb_to_linear  # noqa: E402
from studio_avatar.core.head.open_head import get_open_head  # noqa: E402
from studio_avatar.core.image_io import read_image  # noqa: E402
from studio_avatar.core.progress import Progress  # noqa: E402
from studio_avatar.core.render.normals import vertex_normals  # noqa: E402
from studio_avatar.core.stages import run_stage  # noqa: E402
from studio_avatar.core.synth.head_clip import HeadClipSpec  # noqa: E402
from studio_avatar.core.synth.textured_capture import FLAT_WHITE, Light, smooth_albedo, write_textured_capture  # noqa: E402
from studio_avatar.core.texture.delight import DELIGHT_CLASSIC_STAGE, DelightParams  # noqa: E402
from studio_avatar.core.texture.unwrap import UNWRAP_STAGE, UnwrapParams  # noqa: E402
from studio_avatar.core.texture.uv import texel_geometry  # noqa: E402

TARGET_UNWRAP_S = 20.0
TARGET_DELIGHT_S = 5.0
TARGET_SETUP = (60, 2048)       # frames, texture size the targets are set for
LIGHTS = {"flat white": FLAT_WHITE,
          "warm key": Light(ambient=(0.35, 0.30, 0.25), key=(0.90, 0.75, 0.55), direction=(0.6, 0.5, 0.6))}


def psnr(truth, estimate):
    return float(10 * np.log10(1.0 / np.mean((truth - estimate) ** 2)))


def scores(capture, model, albedo_linear, size):
    geometry = texel_geometry(model, size)
    flat = lambda image: image.reshape((size * size,) + image.shape[2:])[geometry.texels.numpy()]  # noqa: E731
    face = geometry.face_surface(model, vertex_normals(model.vertices()[0], model.faces)).numpy()
    seen = (flat(read_image(capture.path("textures/coverage.png"))) > 0.1) & face & geometry.skin.numpy()
    truth = flat(albedo_linear)[seen]
    out = {}
    for name, file in (("phone", "phone.png"), ("delit_classic", "delit_classic.png")):
        estimate = flat(srgb_to_linear(read_image(capture.path(f"textures/{file}"))))[seen]
        gain = float((estimate * truth).sum() / (estimate * estimate).sum())
        out[f"{name}_psnr"] = round(psnr(linear_to_srgb(truth), linear_to_srgb(estimate)), 2)
        out[f"{name}_psnr_exposure_matched"] = round(psnr(linear_to_srgb(truth), linear_to_srgb(estimate * gain)), 2)
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="30 frames at 640x480 into 1024^2 (smoke run)")
    parser.add_argument("--frames", type=int, default=None)
    parser.add_argument("--size", type=int, default=None, help="texture size")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--no-log", action="store_true", help="do not append to bench/results.jsonl")
    args = parser.parse_args()
    frames = args.frames or (30 if args.quick else 60)
    size = args.size or (1024 if args.quick else 2048)
    width, height = (640, 480) if args.quick else (1280, 720)
    model = get_open_head()
    records = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:
            albedo = smooth_albedo(model, size, seed=seed)
            for light_name, light in LIGHTS.items():
                spec = HeadClipSpec(frames=frames, width=width, height=height, seed=seed, yaw_deg=60.0,
                                    expression_strength=0.3, noise_sigma=1.0)
                root = Path(tmp) / f"seed{seed}-{light_name.replace(' ', '-')}"
                start = time.perf_counter()
                capture, _ = write_textured_capture(root, model, albedo, light, spec)
                render_s = time.perf_counter() - start
                unwrap = run_stage(capture, UNWRAP_STAGE, UnwrapParams(texture_size=size), Progress())
                delight = run_stage(capture, DELIGHT_CLASSIC_STAGE, DelightParams(), Progress())
                metrics = capture.stage_record("unwrap")["metrics"]
                record = {
                    "bench": "texture", "date": time.strftime("%Y-%m-%d"), "machine": platform.machine(),
                    "capture": f"{frames} frames {width}x{height}, +-60 deg, seed {seed}, {light_name}",
                    "texture_size": size, "render_s": round(render_s, 2),
                    "unwrap_s": unwrap.duration_s, "delight_classic_s": delight.duration_s,
                    "coverage_face": metrics["coverage_face"], "coverage_head": metrics["coverage_head"],
                    "light_model": capture.stage_record("delight_classic")["metrics"]["light_model"],
                    **scores(capture, model, albedo, size),
                }
                records.append(record)
                print(json.dumps(record), file=sys.stderr)

    print("\n| capture | unwrap s | delight s | coverage face / head | phone PSNR (exp.) | delit PSNR (exp.) |")
    print("|---|---|---|---|---|---|")
    for r in records:
        print(f"| {r['capture']} | {r['unwrap_s']:.2f} | {r['delight_classic_s']:.2f} | {r['coverage_face']:.3f} / "
              f"{r['coverage_head']:.3f} | {r['phone_psnr']:.2f} ({r['phone_psnr_exposure_matched']:.2f}) | "
              f"{r['delit_classic_psnr']:.2f} ({r['delit_classic_psnr_exposure_matched']:.2f}) |")
    unwrap_s = float(np.mean([r["unwrap_s"] for r in records]))
    delight_s = float(np.mean([r["delight_classic_s"] for r in records]))
    if (frames, size) == TARGET_SETUP:
        verdict = lambda value, target: "PASS" if value < target else "MISS"  # noqa: E731
        print(f"\ntargets: unwrap+fuse {unwrap_s:.2f} s (< {TARGET_UNWRAP_S:g} s: {verdict(unwrap_s, TARGET_UNWRAP_S)}), "
              f"delight_classic {delight_s:.2f} s (< {TARGET_DELIGHT_S:g} s: {verdict(delight_s, TARGET_DELIGHT_S)})")
    else:
        print(f"\nmean unwrap {unwrap_s:.2f} s, delight {delight_s:.2f} s (targets apply to 60 frames into 2048^2)")
    if not args.no_log:
        with open(Path(__file__).resolve().parent / "results.jsonl", "a") as log:
            for record in records:
                log.write(json.dumps(record) + "\n")


if __name__ == "__main__":
    main()
