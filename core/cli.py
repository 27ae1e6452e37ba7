"""``studio-avatar``: the command-line tool, and the worker process the Blender add-on starts.

Examples::

    studio-avatar probe clip.mp4
    studio-avatar reconstruct clip.mp4 -o captures/anna
    studio-avatar status captures/anna
    studio-avatar build captures/anna -o anna.blend
    studio-avatar demo -o demo_out
    studio-avatar --worker probe clip.mp4      # JSON-lines protocol on stdout, "cancel" on stdin

Human mode prints progress on stderr and results on stdout. With ``--worker``
(or ``--progress jsonl``) every message is a JSON line on stdout (see
core/progress.py). User errors end with one line ``studio-avatar: error: ...``
and a non-zero exit code, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import traceback
from pathlib import Path
from typing import Any, Callable

from . import TOOL_NAME, __version__
from .device import DEVICE_CHOICES
from .errors import InputError, StudioAvatarError
from .progress import CancelToken, JsonLinesSink, NullSink, Progress, TextSink

EXIT_INTERNAL = 70  # EX_SOFTWARE
DEMO_TEXTURE_SIZE = 1024


def _cmd_probe(args: argparse.Namespace, progress: Progress) -> dict[str, Any]:
    from .video import probe_video

    return probe_video(args.video).to_dict()


def _cmd_reconstruct(args: argparse.Namespace, progress: Progress) -> dict[str, Any]:
    from .pipeline import reconstruct

    capture, outcomes = reconstruct(
        args.video, args.output, progress, until=args.until, force=tuple(args.force), replace_source=args.replace_source,
        params=_stage_params(args),
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

        if not 64 <= args.texture_size <= 8192:
            raise InputError(f"--texture-size must be between 64 and 8192 texels, not {args.texture_size}")
        params["unwrap"] = UnwrapParams(texture_size=args.texture_size, reference_size=min(512, args.texture_size))
    if args.focal_mm35 or args.flame:
        params["fit"] = FitParams(focal_mm35=args.focal_mm35 or 0.0, flame_model=str(Path(args.flame).resolve()) if args.flame else "",
                                  flame_uv=str(Path(args.flame_uv).resolve()) if args.flame_uv else "")
    return params


def _cmd_fit_preview(args: argparse.Namespace, progress: Progress) -> dict[str, Any]:
    from .fit.preview import write_fit_preview

    return write_fit_preview(args.capture, args.output, fps=args.fps, progress=progress.stage("fit-preview"))


def _cmd_status(args: argparse.Namespace, progress: Progress) -> dict[str, Any]:
    from .capture import Capture
    from .pipeline import RECONSTRUCTION

    capture = Capture.open(args.capture)
    return {"capture": str(capture.root.resolve()), "source": capture.source, "stages": RECONSTRUCTION.status(capture)}


def _cmd_demo(args: argparse.Namespace, progress: Progress) -> dict[str, Any]:
    import numpy as np

    from .fit import load_fit
    from .fit.evaluate import compare_with_truth
    from .head.obj_export import export_obj
    from .head.source import load_head
    from .pipeline import reconstruct
    from .synth.head_clip import HeadClipSpec, write_head_clip
    from .texture.unwrap import UnwrapParams

    out = Path(args.output)
    video, truth_path = out / "demo_clip.mp4", out / "demo_truth.npz"
    model = load_head(cache_dir=args.cache_dir)
    if not (video.exists() and truth_path.exists()):
        progress.stage("synth").update(0.0, "rendering the synthetic demo clip (head turning, known ground truth)", force=True)
        write_head_clip(model, video, truth_path, HeadClipSpec(frames=90, width=640, height=480, yaw_deg=45.0, seed=0))
    capture, outcomes = reconstruct(video, out / "capture", progress,
                                    params={"unwrap": UnwrapParams(texture_size=DEMO_TEXTURE_SIZE, reference_size=512)})
    errors = compare_with_truth(model, load_fit(str(capture.path("fit.npz"))), dict(np.load(truth_path)))
    head_obj = export_obj(model, out / "head.obj")
    report = json.loads(capture.path("report.json").read_text())
    result = {
        "video": str(video.resolve()),
        "capture": str(capture.root.resolve()),
        "stages": [{"stage": o.name, "status": o.status} for o in outcomes],
        "head": str(head_obj.resolve()),
        "fit": {"reproj_iod_mean": report["fit"]["reproj_iod_mean"],
                "face_vertex_error_mm_vs_truth": round(errors["vertex_error_mm_mean"], 3),
                "rotation_error_deg_vs_truth": round(errors["rotation_error_deg_mean"], 3)},
        "texture": {k: report["texture"][k] for k in ("coverage_face", "coverage_head")},
        "textures": {name: str(capture.path(f"textures/{name}").resolve()) for name in ("phone.png", "delit_classic.png")},
        "check_the_fit": f"studio-avatar fit-preview {capture.root.resolve()} -o {(out / 'fit_preview.mp4').resolve()}",
    }
    try:
        from .avatar_inputs import read_avatar_inputs
        from .blender.avatar import write_avatar_blend
    except ImportError as exc:   # no bpy in this Python: the capture is still complete
        result["avatar"] = f"not built ({exc}); run `studio-avatar build` where bpy is installed"
        return result
    progress.stage("build").update(0.0, "building avatar.blend", force=True)
    built = write_avatar_blend(load_head(cache_dir=args.cache_dir, with_landmarks=False), read_avatar_inputs(capture.root),
                               out / "avatar.blend", overwrite=True)
    result["avatar"] = built["blend"]
    return result


def _cmd_build(args: argparse.Namespace, progress: Progress) -> dict[str, Any]:
    from .avatar_inputs import read_avatar_inputs
    from .head.source import load_head

    try:
        from .blender.avatar import check_blend_output, write_avatar_blend
    except ImportError as exc:
        if exc.name != "bpy":
            raise
        raise StudioAvatarError(
            "`build` needs Blender's Python module bpy (pip install bpy==4.5.15 in Python 3.11, as the README says); "
            "inside Blender use Studio Avatar > Build Avatar from Capture instead") from None
    stage = progress.stage("build")
    check_blend_output(args.output, args.overwrite)  # before the slow part: refuse an existing file at once
    stage.update(0.0, "reading the capture", force=True)
    inputs = read_avatar_inputs(args.capture)
    stage.update(0.05, "loading the head model the fit used", force=True)
    model = load_head(inputs.flame_model or None, inputs.flame_uv or None, args.cache_dir, with_landmarks=False)
    stage.update(0.4, f"building the rigged head with the {inputs.albedo_kind} albedo", force=True)
    result = write_avatar_blend(model, inputs, args.output, pack=args.pack, overwrite=args.overwrite, name=args.name)
    stage.update(1.0, f"wrote {result['blend']}", force=True)
    return result


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
    path = export_obj(model, args.path)
    return {"path": str(path.resolve()), "source": model.source, "vertices": model.num_vertices}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
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
    parser.add_argument("--debug", action="store_true", help="print tracebacks of internal errors")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

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
    rec.add_argument("--max-frames", type=int, default=None, help="most frames to keep from the video (default 120)")
    rec.add_argument("--focal-mm35", type=float, default=None,
                     help="the camera's 35 mm-equivalent focal length, if known (default: estimated)")
    rec.add_argument("--flame", default=None, metavar="PKL", help="fit a FLAME model (.pkl or .npz) instead of the open head")
    rec.add_argument("--flame-uv", default=None, metavar="OBJ", help="FLAME UV template for --flame")
    rec.add_argument("--texture-size", type=int, default=None, metavar="TEXELS",
                     help="texels across the UV textures (default 2048)")
    rec.set_defaults(handler=_cmd_reconstruct)

    preview = commands.add_parser("fit-preview", help="draw the fitted head over the frames into a video, to check the fit")
    preview.add_argument("capture", help="capture folder with a finished fit")
    preview.add_argument("-o", "--output", required=True, help="video to write (.mp4 or .avi)")
    preview.add_argument("--fps", type=float, default=8.0, help="frames per second of the preview (default 8)")
    preview.set_defaults(handler=_cmd_fit_preview)

    status = commands.add_parser("status", help="show which stages of a capture are done, stale or pending")
    status.add_argument("capture", help="capture folder")
    status.set_defaults(handler=_cmd_status)

    build = commands.add_parser("build", help="write the avatar of a reconstructed capture as a .blend "
                                "(rigged head with the fitted identity, skin, eye and mouth materials)")
    build.add_argument("capture", help="capture folder with a finished fit and an albedo texture")
    build.add_argument("-o", "--output", required=True, help=".blend file to write; its images go into NAME_textures/ beside it")
    build.add_argument("--pack", action="store_true", help="pack the images into the .blend instead of copying them beside it")
    build.add_argument("--overwrite", action="store_true", help="replace the .blend if it exists")
    build.add_argument("--name", default="Studio Avatar", help="name of the avatar's collection and head mesh")
    build.set_defaults(handler=_cmd_build)

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

    demo = commands.add_parser("demo", help="make the embedded demo clip, reconstruct it, and export the head model")
    demo.add_argument("-o", "--output", default="demo_out", help="output folder (default: demo_out)")
    demo.set_defaults(handler=_cmd_demo)
    return parser


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
        token.cancel("cancelled by the user" if signum == signal.SIGINT else "cancelled (terminated)")
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


if __name__ == "__main__":  # pragma: no cover - run through core/launcher.py
    sys.exit(main())
