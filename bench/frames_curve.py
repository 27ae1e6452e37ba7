"""Texture quality against the number of frames: two synthetic captures reconstructed with 8 ... 120 frames.

Usage: .venv/bin/python bench/frames_curve.py [--counts 8 16 32 64 120] [--size 512] [--texture-size 1024] [--fresh]

Each capture (120 frames, Cycles, seeded; reused unless --fresh) is reconstructed once per frame count, the
``frames`` stage keeping at most that many frames (spread over the head's turn and in time), with classic
delighting; ``studio-avatar eval`` scores the fused phone texture and ``delit_classic`` against the truth.
More frames should never score worse (InvertAvatar's observation: quality grows with the frames), and the
curve should say where more frames stop paying. Writes:

* ``bench/results/frames_curve.png``: per capture, exposure-matched PSNR of ``phone.png``, raw and
  exposure-matched PSNR of ``delit_classic`` on the observed face, and the face's coverage, against the frame count;
* ``bench/results/frames_curve.md``: the numbers, whether each curve is monotone (within
  ``MONOTONE_TOLERANCE_DB``) and the frame count from which it stays flat (within ``FLAT_DB`` of 120 frames' score);
* one JSON line per capture and count in ``bench/results.jsonl``.

Work folders go to ``bench/work/frames_curve/`` (not committed).
"""

import argparse
import json
import platform
import shutil
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))
from devpath import load_package  # noqa: E402

load_package()
from studio_avatar.core.eval.evaluate import evaluate_capture, json_ready  # noqa: E402
from track_fit import source_version  # noqa: E402
from studio_avatar.core.frames import FramesParams  # noqa: E402
from studio_avatar.core.head.open_head import get_open_head  # noqa: E402
from studio_avatar.core.pipeline import reconstruct  # noqa: E402
from studio_avatar.core.progress import Progress  # noqa: E402
from studio_avatar.core.synth import ground_truth as G  # noqa: E402
from studio_avatar.core.synth.phone_capture import SynthSpec, write_synthetic_capture  # noqa: E402
from studio_avatar.core.texture.unwrap import UnwrapParams  # noqa: E402

BENCH = Path(__file__).resolve().parent
RESULTS = BENCH / "results"
WORK = BENCH / "work" / "frames_curve"
# name -> (seed, skin tone 0 very light .. 1 very dark, world HDRI): two of the quality bench's captures
CAPTURES = {"very-light/studio": (101, 0.03, "studio"), "brown/forest": (105, 0.80, "forest")}
SYNTH_FRAMES = 120
CURVES = (  # (method, eval key, label)
    ("phone", "albedo_psnr_observed_matched", "phone.png PSNR obs (exp.)"),
    ("delit_classic", "albedo_psnr_observed", "delit_classic PSNR obs"),
    # the fused texture without the baked shading and without the calibration's exposure swings between frame sets
    ("delit_classic", "albedo_psnr_observed_matched", "delit_classic PSNR obs (exp.)"),
)
MONOTONE_TOLERANCE_DB = 0.1     # a drop smaller than this counts as noise, not as "worse"
FLAT_DB = 0.25                  # the curve has flattened once it stays within this of the 120-frame score


def synthesize(name: str, spec: SynthSpec, model, fresh: bool) -> tuple[Path, bool]:
    folder = WORK / name.replace("/", "-")
    scene = folder / "synth" / G.GT_DIR / G.SCENE_JSON
    if not fresh and (folder / "synth" / G.VIDEO_NAME).is_file() and scene.is_file() and \
            json.loads(scene.read_text()).get("spec") == json.loads(json.dumps(asdict(spec))):
        return folder, True
    if folder.exists():
        shutil.rmtree(folder)
    write_synthetic_capture(folder / "synth", spec, model, progress=Progress().stage("synth"))
    return folder, False


def curve_verdict(counts: list[int], values: list[float]) -> tuple[bool, int]:
    """Whether ``values`` never drops by more than the tolerance as the count grows, and where it flattens."""
    monotone = all(b >= a - MONOTONE_TOLERANCE_DB for a, b in zip(values, values[1:]))
    settled = [abs(v - values[-1]) <= FLAT_DB for v in values]       # the count from which every score stays near the last
    flat = next(n for k, n in enumerate(counts) if all(settled[k:]))
    return monotone, flat


def plot(results: dict[str, dict[int, dict]], counts: list[int], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, len(results), figsize=(5.5 * len(results), 4.2), squeeze=False)
    for axis, (name, by_count) in zip(axes[0], results.items()):
        for method, key, label in CURVES:
            axis.plot(counts, [by_count[n]["methods"][method][key] for n in counts], "o-", label=label)
        axis.set_xscale("log", base=2)
        axis.set_xticks(counts, [str(n) for n in counts])
        axis.set_xlabel("frames kept")
        axis.set_ylabel("PSNR on the observed face (dB)")
        axis.set_title(name)
        twin = axis.twinx()
        twin.plot(counts, [by_count[n]["coverage_face"] for n in counts], "s--", color="grey", label="face coverage")
        twin.set_ylabel("face coverage")
        twin.set_ylim(0, 1.05)
        lines = axis.get_legend_handles_labels()
        extra = twin.get_legend_handles_labels()
        axis.legend(lines[0] + extra[0], lines[1] + extra[1], loc="lower right", fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--counts", type=int, nargs="+", default=[8, 16, 32, 64, 120])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--texture-size", type=int, default=1024)
    parser.add_argument("--fresh", action="store_true", help="re-render the synthetic captures")
    args = parser.parse_args()
    counts = sorted(set(args.counts))
    if counts[-1] > SYNTH_FRAMES or counts[0] < FramesParams().min_frames:
        parser.error(f"frame counts must lie in {FramesParams().min_frames}..{SYNTH_FRAMES}")

    model = get_open_head()
    results: dict[str, dict[int, dict]] = {}
    for name, (seed, tone, hdri) in CAPTURES.items():
        spec = replace(SynthSpec(), seed=seed, tone=tone, hdri=hdri, frames=SYNTH_FRAMES, width=args.size, height=args.size)
        print(f"== {name}: {SYNTH_FRAMES} frames {args.size}^2", flush=True)
        folder, reused = synthesize(name, spec, model, args.fresh)
        results[name] = {}
        for count in counts:
            started = time.perf_counter()
            capture, _ = reconstruct(folder / "synth" / G.VIDEO_NAME, folder / f"capture_{count:03d}", Progress(),
                                     params={"frames": FramesParams(max_frames=count),
                                             "unwrap": UnwrapParams(texture_size=args.texture_size,
                                                                    reference_size=min(512, args.texture_size))},
                                     texture_method="classic")
            reconstruct_s = time.perf_counter() - started
            scores = json_ready(evaluate_capture(capture.root, folder / "synth", identity=False))
            results[name][count] = scores
            record = {"bench": "frames_curve", "date": time.strftime("%Y-%m-%d"), "machine": platform.machine(),
                      "source": source_version(), "capture": name, "seed": seed, "frames_kept": count,
                      "synth_frames": SYNTH_FRAMES, "size": args.size, "texture_size": args.texture_size,
                      "synth_reused": reused, "reconstruct_s": round(reconstruct_s, 2),
                      "coverage_face": scores.get("coverage_face"),
                      **{f"{method}_{key}": scores["methods"][method].get(key) for method, key, _ in CURVES}}
            with open(BENCH / "results.jsonl", "a") as handle:
                handle.write(json.dumps(record) + "\n")
            print(f"   {count:4d} frames: " + "  ".join(f"{label} {scores['methods'][m][k]:.2f}" for m, k, label in CURVES)
                  + f"  coverage {scores['coverage_face']:.3f}  ({reconstruct_s:.0f} s)", flush=True)

    RESULTS.mkdir(parents=True, exist_ok=True)
    plot(results, counts, RESULTS / "frames_curve.png")
    md = ["# Quality against the number of frames", "",
          f"`bench/frames_curve.py` at {source_version()}, {time.strftime('%Y-%m-%d')}: {len(CAPTURES)} synthetic captures "
          f"({SYNTH_FRAMES} frames {args.size}², Cycles, H.264), each reconstructed keeping at most N frames, textures at "
          f"{args.texture_size}², classic delighting, scored by `studio-avatar eval` on the observed face. Plot: "
          "`frames_curve.png`.", "",
          "| capture | frames | " + " | ".join(label for _, _, label in CURVES) + " | face coverage |",
          "|" + "---|" * (len(CURVES) + 3)]
    for name, by_count in results.items():
        for count in counts:
            scores = by_count[count]
            md.append(f"| {name} | {count} | " + " | ".join(f"{scores['methods'][m][k]:.2f}" for m, k, _ in CURVES)
                      + f" | {scores['coverage_face']:.3f} |")
    md += ["", f"Monotone: no step to more frames loses more than {MONOTONE_TOLERANCE_DB} dB. Flattens: the fewest frames "
           f"from which every score stays within {FLAT_DB} dB of the 120-frame score.", ""]
    for name, by_count in results.items():
        for method, key, label in CURVES:
            monotone, flat = curve_verdict(counts, [by_count[n]["methods"][method][key] for n in counts])
            md.append(f"- {name}, {label}: monotone {'PASS' if monotone else 'FAIL'}; flattens at {flat} frames")
    (RESULTS / "frames_curve.md").write_text("\n".join(md) + "\n")
    print(f"wrote {RESULTS / 'frames_curve.md'} and {RESULTS / 'frames_curve.png'}")


if __name__ == "__main__":
    main()
