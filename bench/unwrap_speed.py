"""Speed of the ``unwrap`` stage: many frames fused into a large texture, timed per pass.

Usage: .venv/bin/python bench/unwrap_speed.py [--frames 120] [--size 2048] [--reference 512] [--capture DIR] [--keep DIR]

Target: 120 frames into 2048^2 (reference 512^2) in at most 10 s on the
2-core CI CPU. The capture is the open head with a smooth skin albedo under
a warm key light (``core/synth/textured_capture.py``, 1280x720 frames, +-60
degree turn, the true fit as fit.npz), rendered with the project's own
rasterizer; its render time is not part of the target. ``--capture DIR``
renders it there once and reuses it on later runs (so that two versions of
the code can be timed on the same frames); ``--keep DIR`` copies the
stage's textures there for comparison.

The stage runs in this process after the open head and torch are loaded, with
a cold texel-geometry cache, as a worker would run it. The passes are timed by
wrapping the unwrap module's own functions: the reference pass, the fusion
pass and the writing follow one another (``reference_s`` includes the gain
solve, and waiting for set-up still running); ``setup_s`` is the rest of the
stage (fit and model loading, the sampler, metrics). ``geometry_s`` (texel
layouts, summed over calls) and ``light_s`` (light transfer) are timed too:
before the change they were part of the sequence, since they run on the
thread pool beside the reference pass. Prints the times and the load average
(``os.getloadavg``, before and after: other work on the machine skews the
numbers), and appends a line to ``bench/results.jsonl``.
"""

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))
from devpath import load_package  # noqa: E402

load_package()
from studio_avatar.core.capture import Capture  # noqa: E402
from studio_avatar.core.head.open_head import get_open_head  # noqa: E402
from studio_avatar.core.progress import Progress  # noqa: E402
from studio_avatar.core.stages import run_stage  # noqa: E402
from studio_avatar.core.synth.head_clip import HeadClipSpec  # noqa: E402
from studio_avatar.core.synth.textured_capture import Light, smooth_albedo, write_textured_capture  # noqa: E402
from studio_avatar.core.texture import unwrap  # noqa: E402
from studio_avatar.core.texture import uv  # noqa: E402
from track_fit import source_version  # noqa: E402

BENCH = Path(__file__).resolve().parent
TARGET_S = 10.0
TARGET_SETUP = (120, 2048)      # frames, texture size the target is set for
WARM_KEY = Light(ambient=(0.35, 0.30, 0.25), key=(0.90, 0.75, 0.55), direction=(0.6, 0.5, 0.6))
PASSES = {"geometry_s": "texel_geometry", "light_s": "_LightTransfer.of_fit", "reference_s": "_reference_pass",
          "fusion_s": "_fusion_pass", "write_s": "_write_outputs"}
SEQUENCE = ("reference_s", "fusion_s", "write_s")


def concurrent_setup() -> bool:
    """Whether this unwrap builds its layouts and light transfer on a thread pool beside the reference pass."""
    return hasattr(unwrap, "_frame_threads")


def capture_at(root: Path, frames: int, seed: int = 0) -> tuple[Capture, float]:
    """The bench capture in ``root``, rendered there unless it already holds one of ``frames`` frames."""
    if (root / "fit.npz").exists() and len(list((root / "frames").glob("*.png"))) == frames:
        return Capture.open(root), 0.0
    shutil.rmtree(root, ignore_errors=True)
    root.parent.mkdir(parents=True, exist_ok=True)
    model = get_open_head()
    started = time.perf_counter()
    spec = HeadClipSpec(frames=frames, width=1280, height=720, seed=seed, yaw_deg=60.0, expression_strength=0.3,
                        supersampling=1)
    capture, _ = write_textured_capture(root, model, smooth_albedo(model, 1024, seed=seed), WARM_KEY, spec)
    return capture, time.perf_counter() - started


def timing_wrappers(totals: dict[str, float]) -> list[tuple[object, str, object]]:
    """Wrap each pass function of the unwrap module (where it exists) to add its seconds to ``totals``;
    returns (owner, name, original) to undo it."""
    undo = []
    for key, dotted in PASSES.items():
        owner, name = unwrap, dotted
        if "." in dotted:
            owner_name, name = dotted.split(".")
            owner = getattr(unwrap, owner_name, None)
        original = getattr(owner, name, None) if owner is not None else None
        if original is None:
            continue
        function = getattr(original, "__func__", original)

        def timed(*args, _function=function, _key=key, **kwargs):
            started = time.perf_counter()
            try:
                return _function(*args, **kwargs)
            finally:
                totals[_key] = totals.get(_key, 0.0) + time.perf_counter() - started

        undo.append((owner, name, owner.__dict__[name] if isinstance(owner, type) else original))
        setattr(owner, name, classmethod(timed) if isinstance(owner.__dict__.get(name), classmethod) else timed)
    return undo


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=120)
    parser.add_argument("--size", type=int, default=2048, help="texture size")
    parser.add_argument("--reference", type=int, default=512, help="reference size")
    parser.add_argument("--capture", default=None, help="render the capture here once and reuse it")
    parser.add_argument("--keep", default=None, help="copy the stage's textures/ here")
    parser.add_argument("--no-log", action="store_true", help="do not append to bench/results.jsonl")
    args = parser.parse_args()

    import torch

    get_open_head()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(args.capture) if args.capture else Path(tmp) / "capture"
        capture, render_s = capture_at(root, args.frames)
        uv._CACHE.clear()           # cold, as in a fresh worker
        totals: dict[str, float] = {}
        undo = timing_wrappers(totals)
        load_before = os.getloadavg()[0]
        outcome = run_stage(capture, unwrap.UNWRAP_STAGE, unwrap.UnwrapParams(texture_size=args.size,
                                                                               reference_size=args.reference),
                            Progress(), force=True)
        load_after = os.getloadavg()[0]
        for owner, name, original in undo:
            setattr(owner, name, original)
        if args.keep:
            shutil.rmtree(args.keep, ignore_errors=True)
            shutil.copytree(root / "textures", args.keep)
        metrics = capture.stage_record("unwrap")["metrics"]
    total = round(outcome.duration_s, 2)
    passes = {key: round(totals.get(key, 0.0), 2) for key in PASSES}
    sequence = sum(totals.get(key, 0.0) for key in SEQUENCE)
    passes["setup_s"] = round(total - sequence - (0.0 if concurrent_setup() else totals.get("geometry_s", 0.0)
                                                  + totals.get("light_s", 0.0)), 2)
    target = (args.frames, args.size) == TARGET_SETUP
    verdict = ("PASS" if total <= TARGET_S else "FAIL") if target else "n/a"
    print(f"unwrap: {args.frames} frames into {args.size}^2 (reference {args.reference}^2), torch threads "
          f"{torch.get_num_threads()}: {total} s (target {TARGET_S:g} s at 120 frames into 2048^2: {verdict})")
    print("  " + ", ".join(f"{key} {value}" for key, value in passes.items()))
    print(f"  load average {load_before:.2f} -> {load_after:.2f}; coverage face {metrics['coverage_face']}, "
          f"head {metrics['coverage_head']}" + (f"; capture rendered in {render_s:.1f} s" if render_s else ""))
    if not args.no_log:
        with open(BENCH / "results.jsonl", "a") as handle:
            handle.write(json.dumps({"bench": "unwrap_speed", "date": time.strftime("%Y-%m-%d"),
                                     "machine": platform.machine(), "source": source_version(), "frames": args.frames,
                                     "size": args.size, "reference": args.reference, "total_s": total, **passes,
                                     "load_average": [round(load_before, 2), round(load_after, 2)],
                                     "coverage_face": metrics["coverage_face"], "verdict": verdict}) + "\n")


if __name__ == "__main__":
    main()
