"""Benchmark the UV-space texture corpus (``studio-avatar synth-textures``): samples per hour and bytes per sample.

Usage: .venv/bin/python bench/texture_corpus.py [--count 32] [--size 512] [--samples-per-identity 8] [--threads N]

Writes ``--count`` samples with ``core/synth/texture_corpus.write_texture_corpus``
into a temporary folder, after loading the head model and Blender's HDRIs
(set-up, not timed), and prints the wall time (timed here around the whole
call; the corpus's own ``seconds`` is recorded as ``corpus_seconds``), samples
per hour (PNG writes included), the time one identity takes (visibility, light
transfer, albedo; timed once before) and the disk use per sample; appends one
JSON line (``"bench": "texture_corpus"``) to bench/results.jsonl. The load
average is recorded too: the reference machine has 2 cores that other work may
share. The corpus's speed is measured here only, not in the unit tests (a timed
test on a shared machine measures its load, and ``> 0`` measures nothing).

Target (this 2-core machine): thousands of samples per hour at 512^2 (about
1-1.5 s per sample amortized, including the PNG writes).
"""

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))
from devpath import load_package  # noqa: E402

load_package()
from track_fit import source_version  # noqa: E402

from studio_avatar.core.head.source import load_head  # noqa: E402
from studio_avatar.core.synth import texture_corpus  # noqa: E402
from studio_avatar.core.texture.uv import texel_geometry  # noqa: E402

TARGET_SAMPLES_PER_HOUR = 2000.0


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=32)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--samples-per-identity", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own choice)")
    parser.add_argument("--no-log", action="store_true", help="do not append to bench/results.jsonl")
    args = parser.parse_args()

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    model = load_head(with_landmarks=False)
    texel_geometry(model, args.size)
    folder = texture_corpus.environment_folder()
    texture_corpus.load_environments(str(folder) if folder else None)

    texture_corpus.make_identity(model, 64, seed=0)          # warm-up: per-model caches (albedo layout, eye bands)
    start = time.perf_counter()
    texture_corpus.make_identity(model, args.size, seed=0)
    identity_s = time.perf_counter() - start
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        summary = texture_corpus.write_texture_corpus(tmp, args.count, size=args.size, seed=args.seed,
                                                      samples_per_identity=args.samples_per_identity, model=model)
        wall_s = time.perf_counter() - start
        if summary["written"] != args.count:     # a fresh folder: every sample is made (none skipped as done)
            sys.exit(f"texture_corpus wrote {summary['written']} of {args.count} samples: {summary}")
        files = [p for p in Path(tmp).iterdir() if p.suffix == ".png"]
        unique = {p.stat().st_ino: p.stat().st_size for p in files}
        first = json.loads((Path(tmp) / texture_corpus.INDEX_JSONL).read_text().splitlines()[0])
    seconds = round(wall_s, 2)                  # timed here, around the whole call (the summary's own time is kept too)
    record = {
        "bench": "texture_corpus", "date": time.strftime("%Y-%m-%d"), "machine": platform.machine(),
        "source": source_version(), "size": args.size, "count": args.count,
        "samples_per_identity": args.samples_per_identity, "torch_threads": torch.get_num_threads(),
        "load_average": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "hdris": folder is not None, "albedo_generator": first["albedo"].get("generator"),
        "seconds": seconds, "corpus_seconds": summary["seconds"],
        "seconds_per_sample": round(seconds / max(args.count, 1), 3),
        "identity_s": round(identity_s, 3),
        "samples_per_hour": round(args.count / seconds * 3600, 1),
        "disk_mb_per_sample": round(sum(unique.values()) / 1e6 / max(args.count, 1), 3),
    }
    print(json.dumps(record), file=sys.stderr)
    verdict = "PASS" if record["samples_per_hour"] >= TARGET_SAMPLES_PER_HOUR else "MISS"
    print(f"\n{args.count} samples at {args.size}^2 in {seconds:.1f} s: {record['seconds_per_sample']:.2f} s per sample, "
          f"{record['samples_per_hour']:.0f} per hour ({verdict}: target >= {TARGET_SAMPLES_PER_HOUR:.0f}); "
          f"an identity takes {identity_s:.2f} s of it (once per {args.samples_per_identity} samples); "
          f"{record['disk_mb_per_sample']:.2f} MB per sample on disk (load average {record['load_average']})")
    if not args.no_log:
        with open(Path(__file__).resolve().parent / "results.jsonl", "a") as log:
            log.write(json.dumps(record) + "\n")


if __name__ == "__main__":
    main()
