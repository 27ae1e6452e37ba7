"""Batch renders of a built avatar (.blend): lightings x turntable views x expressions, plus a contact sheet.

A job is a deterministic list of ``RenderTask`` (lighting preset, camera yaw,
expression); ``plan_tasks`` makes it and every task has its own output file,
so a render farm can list the tasks (``studio-avatar render --list-tasks``)
and run one per machine (``--task N``). ``batch_render`` opens the .blend in
this Blender session (a CLI process of its own: it replaces the session's
data), finds its avatar (``core/blender/rig.py``), adds a camera orbiting
the head's vertical axis, sets the shape keys of each task's expression,
applies the lighting (``core/blender/lighting.py``) and writes 8-bit sRGB
PNGs atomically; ``write_contact_sheet`` assembles the images present into
one labelled grid. Nothing in the .blend is saved back.

EEVEE can abort the whole process when no EGL/GPU is found, so without
``task_index`` each EEVEE task runs in a child ``studio-avatar render --task N``
and a failure becomes a ``RenderError`` instead of killing the caller.
"""

from __future__ import annotations

import math
import os
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

import bpy
import cv2
import mathutils
import numpy as np

from ..atomic import atomic_path, atomic_write_bytes
from ..avatar_inputs import check_built_capture
from ..errors import InputError, StudioAvatarError
from ..native_stderr import native_stdout_captured
from .lighting import PRESETS, apply_lighting, remove_lighting
from .rig import Avatar, require_avatar

ENGINES = ("CYCLES", "EEVEE")
VIEW_FOV_DEG = 28.0
VIEW_MARGIN = 1.25                 # the head's height times this fills the frame
OBJECT_PREFIX = "Studio Avatar Render"
CONTACT_SHEET = "contact_sheet.png"
SHEET_CELL_MAX_PX = 256            # contact-sheet thumbnails are at most this big
SHEET_LABEL_WIDTH_PX = 180         # left column: "lighting / expression"
SHEET_HEADER_HEIGHT_PX = 28        # top row: "yaw +030"
EEVEE_TASK_TIMEOUT_S = 600
EEVEE_HINT = "; EEVEE could not start (no GPU/EGL?): use --engine CYCLES"

# named expressions: shape key -> value; any other shape key name (or "keyA+keyB") works too
EXPRESSIONS: dict[str, dict[str, float]] = {
    "neutral": {},
    "smile": {"mouthSmileLeft": 1.0, "mouthSmileRight": 1.0},
    "jawOpen": {"jawOpen": 1.0},
    "blink": {"eyeBlinkLeft": 1.0, "eyeBlinkRight": 1.0},
    "surprise": {"browInnerUp": 1.0, "browOuterUpLeft": 1.0, "browOuterUpRight": 1.0,
                 "eyeWideLeft": 1.0, "eyeWideRight": 1.0, "jawOpen": 0.4},
}


class RenderError(StudioAvatarError):
    """A renderer failed (EEVEE without a usable GPU/EGL, a crashed child render)."""


@dataclass(frozen=True)
class RenderTask:
    index: int                     # position in the plan (the farm's --task N)
    lighting: str                  # a lighting.PRESETS name
    yaw_deg: float                 # camera orbit about the head's vertical axis; + turns towards the avatar's left
    expression: str                # an EXPRESSIONS name, a shape key name, or shape keys joined by "+"

    @property
    def file_name(self) -> str:
        yaw = f"{round(self.yaw_deg):+04d}" if float(self.yaw_deg).is_integer() else f"{self.yaw_deg:+06.1f}"
        return f"{self.lighting}_yaw{yaw}_{self.expression}.png"

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "file": self.file_name}


def plan_tasks(lightings: Sequence[str], views_deg: Sequence[float], expressions: Sequence[str]) -> list[RenderTask]:
    """Every (lighting, view, expression) combination, lighting-major then expression then view."""
    if not lightings or not views_deg or not expressions:
        raise InputError("a batch render needs at least one lighting, one view and one expression")
    unknown = [name for name in lightings if name not in PRESETS]
    if unknown:
        raise InputError(f"unknown lighting preset(s) {', '.join(unknown)}; choose from {', '.join(PRESETS)}")
    for expression in expressions:
        if not expression or any(not part or "/" in part or part.strip() != part for part in expression.split("+")):
            raise InputError(f"bad expression {expression!r}: use {', '.join(EXPRESSIONS)}, a shape key name, "
                             "or shape keys joined by '+'")
    for items, what in ((lightings, "lighting"), ([float(v) for v in views_deg], "view"), (expressions, "expression")):
        if len(set(items)) != len(items):
            raise InputError(f"a {what} is listed twice: {', '.join(map(str, items))}")
    return [RenderTask(i, lighting, float(yaw), expression) for i, (lighting, expression, yaw) in enumerate(
        (lighting, expression, yaw) for lighting in lightings for expression in expressions for yaw in views_deg)]


def expression_weights(expression: str, shape_keys: set[str]) -> dict[str, float]:
    """Shape key -> value for ``expression``; names the keys the avatar lacks."""
    weights: dict[str, float] = {}
    for part in expression.split("+"):
        weights.update(EXPRESSIONS.get(part, {part: 1.0}))
    missing = sorted(set(weights) - shape_keys)
    if missing:
        raise InputError(f"expression {expression!r} needs shape key(s) {', '.join(missing)} that the avatar lacks; use "
                         f"{', '.join(EXPRESSIONS)} or one of its {len(shape_keys)} shape keys (e.g. "
                         f"{', '.join(sorted(shape_keys)[:6])})")
    return weights


def list_tasks(blend: str | os.PathLike, lightings: Sequence[str], views_deg: Sequence[float],
               expressions: Sequence[str]) -> list[dict[str, Any]]:
    """The job's plan as JSON-able dicts, checked against the avatar (so a farm never gets a task that must fail)."""
    tasks, _ = _open_and_plan(blend, lightings, views_deg, expressions)
    return [task.to_dict() for task in tasks]


def _open_and_plan(blend: str | os.PathLike, lightings: Sequence[str], views_deg: Sequence[float],
                   expressions: Sequence[str]) -> tuple[list[RenderTask], Avatar]:
    """Plan the job, open the avatar in this session and check that it has every expression's shape keys."""
    tasks = plan_tasks(lightings, views_deg, expressions)
    avatar = open_avatar(blend)
    for expression in expressions:
        expression_weights(expression, shape_key_names(avatar))
    return tasks, avatar


def batch_render(blend: str | os.PathLike, output_dir: str | os.PathLike, lightings: Sequence[str] = ("studio",),
                 views_deg: Sequence[float] = (0.0,), expressions: Sequence[str] = ("neutral",), engine: str = "CYCLES",
                 resolution: int = 512, samples: int = 16, task_index: int | None = None, overwrite: bool = False,
                 contact_sheet: bool = True, progress: Any = None) -> dict[str, Any]:
    """Render the plan's tasks (or only ``task_index``) into ``output_dir``; see the module docstring.

    Existing images are kept unless ``overwrite``. The contact sheet is written
    after a whole job (never for a single task: farm tasks would race on it).
    Returns {"images": [paths in plan order], "rendered", "skipped",
    "contact_sheet": path or None, "engine", "seconds"}.
    """
    started = time.monotonic()
    if engine not in ENGINES:
        raise InputError(f"unknown render engine {engine!r}; choose from {', '.join(ENGINES)}")
    if not 16 <= resolution <= 8192 or not 1 <= samples <= 4096:
        raise InputError("--resolution must be between 16 and 8192 pixels and --samples between 1 and 4096")
    tasks, avatar = _open_and_plan(blend, lightings, views_deg, expressions)
    _check_recorded_capture(avatar, progress)
    chosen = tasks if task_index is None else [_task_at(tasks, task_index)]
    output_dir = Path(output_dir)
    todo = [task for task in chosen if overwrite or not (output_dir / task.file_name).is_file()]
    output_dir.mkdir(parents=True, exist_ok=True)
    if todo:
        if engine == "EEVEE" and task_index is None:
            _render_in_children(blend, output_dir, todo, lightings, views_deg, expressions, resolution, samples, progress)
        else:
            _render_here(avatar, output_dir, todo, engine, resolution, samples, progress)
    sheet = None
    if contact_sheet and task_index is None:
        sheet = write_contact_sheet(output_dir, lightings, views_deg, expressions)
    return {
        "images": [str((output_dir / task.file_name).resolve()) for task in chosen],
        "rendered": len(todo),
        "skipped": len(chosen) - len(todo),
        "contact_sheet": sheet,
        "engine": engine,
        "seconds": round(time.monotonic() - started, 2),
    }


def _check_recorded_capture(avatar: Avatar, progress: Any) -> None:
    """Refuse an avatar whose recorded capture is half-rerun (stale fit); warn if it was reconstructed since the build."""
    if avatar.capture:
        newer = check_built_capture(avatar.capture, avatar.fit_sha256, "render")
        if newer and progress is not None:
            progress.warning(newer)


def _task_at(tasks: list[RenderTask], index: int) -> RenderTask:
    if not 0 <= index < len(tasks):
        raise InputError(f"--task {index} is out of range: the job has tasks 0 to {len(tasks) - 1} (see --list-tasks)")
    return tasks[index]


def open_avatar(blend: str | os.PathLike) -> Avatar:
    """Open ``blend`` in this session (replacing its data); returns its avatar."""
    blend = Path(blend)
    if not blend.is_file():
        raise InputError(f"{blend} does not exist; build the avatar first (`studio-avatar build`)")
    with native_stdout_captured():
        bpy.ops.wm.open_mainfile(filepath=str(blend), load_ui=False)
    return require_avatar(bpy.context.scene, str(blend))


def _shaped_meshes(avatar: Avatar) -> list[Any]:
    """The avatar's meshes with shape keys (the head's expressions; eyes may have their own)."""
    return [obj for obj in avatar.meshes if obj.data.shape_keys is not None]


def shape_key_names(avatar: Avatar) -> set[str]:
    """The expression shape keys of the avatar's meshes (every key but each mesh's basis)."""
    return {key.name for obj in _shaped_meshes(avatar) for key in obj.data.shape_keys.key_blocks[1:]}


def _set_expression(avatar: Avatar, weights: dict[str, float]) -> None:
    for obj in _shaped_meshes(avatar):
        for key in obj.data.shape_keys.key_blocks[1:]:
            key.value = weights.get(key.name, 0.0)


def add_orbit_camera(scene: Any, avatar: Avatar) -> tuple[Any, np.ndarray, float]:
    """A new scene camera for the avatar's head: (camera, orbit centre in world metres, orbit radius in metres) for
    ``aim_camera``."""
    camera = bpy.data.objects.new(f"{OBJECT_PREFIX} Camera", bpy.data.cameras.new(f"{OBJECT_PREFIX} Camera"))
    scene.collection.objects.link(camera)
    scene.camera = camera
    camera.data.sensor_fit = "VERTICAL"
    camera.data.angle_y = math.radians(VIEW_FOV_DEG)
    camera.data.clip_start = 0.01
    depsgraph = bpy.context.evaluated_depsgraph_get()
    corners = np.concatenate([np.array([obj.matrix_world @ mathutils.Vector(c) for c in obj.evaluated_get(depsgraph).bound_box])
                              for obj in avatar.meshes])
    lo, hi = corners.min(0), corners.max(0)
    centre_m = (lo + hi) / 2
    radius_m = float(np.linalg.norm(corners[:, :2] - centre_m[:2], axis=1).max())   # nearest the camera can get the head
    distance_m = VIEW_MARGIN * float(hi[2] - lo[2]) / 2 / math.tan(math.radians(VIEW_FOV_DEG) / 2) + radius_m
    return camera, centre_m, distance_m


def aim_camera(camera: Any, centre_m: np.ndarray, distance_m: float, yaw_deg: float) -> None:
    """Put ``camera`` on the orbit at ``yaw_deg`` (0: in front of the face, which looks along -Y), looking at its axis."""
    yaw = math.radians(yaw_deg)
    camera.location = (centre_m[0] + distance_m * math.sin(yaw), centre_m[1] - distance_m * math.cos(yaw), centre_m[2])
    camera.rotation_euler = (math.pi / 2, 0.0, yaw)        # looks along +Y turned by yaw


def _engine_id(engine: str) -> str:
    if engine == "CYCLES":
        return "CYCLES"
    ids = {item.identifier for item in bpy.types.RenderSettings.bl_rna.properties["engine"].enum_items}
    return "BLENDER_EEVEE_NEXT" if "BLENDER_EEVEE_NEXT" in ids else "BLENDER_EEVEE"   # 4.2-4.5, then 5.0+


def _set_up_render(scene: Any, engine: str, resolution: int, samples: int) -> None:
    scene.render.engine = _engine_id(engine)
    if engine == "CYCLES":
        scene.cycles.device = "CPU"
        scene.cycles.samples = samples
        scene.cycles.use_denoising = True
        scene.cycles.denoising_quality = "FAST"
    else:
        scene.eevee.taa_render_samples = samples
    scene.render.resolution_x = scene.render.resolution_y = resolution
    scene.render.resolution_percentage = 100
    scene.view_settings.view_transform = "Standard"
    scene.view_settings.look = "None"
    scene.render.image_settings.file_format = "PNG"
    scene.render.image_settings.color_mode = "RGB"
    scene.render.image_settings.color_depth = "8"
    scene.render.use_file_extension = False
    for obj in list(scene.objects):          # lamps saved in the .blend would add to every preset
        if obj.type == "LIGHT":
            obj.hide_render = True


def _render_here(avatar: Avatar, output_dir: Path, tasks: list[RenderTask], engine: str, resolution: int, samples: int,
                 progress: Any) -> None:
    """Render ``tasks`` of ``avatar`` (opened by ``open_avatar``) in this process."""
    scene = bpy.context.scene
    _set_up_render(scene, engine, resolution, samples)
    camera, centre_m, distance_m = add_orbit_camera(scene, avatar)
    shape_keys = shape_key_names(avatar)
    lamps: list[Any] = []
    lit = None
    for done, task in enumerate(tasks):
        if task.lighting != lit:
            remove_lighting(scene, lamps)
            lamps, lit = apply_lighting(scene, PRESETS[task.lighting], OBJECT_PREFIX), task.lighting
        aim_camera(camera, centre_m, distance_m, task.yaw_deg)
        _set_expression(avatar, expression_weights(task.expression, shape_keys))
        with atomic_path(output_dir / task.file_name) as tmp:
            scene.render.filepath = str(tmp)
            try:
                with native_stdout_captured():
                    bpy.ops.render.render(write_still=True)
            except RuntimeError as exc:
                raise RenderError(f"{engine} failed to render task {task.index} ({task.file_name}): {exc}"
                                  + (EEVEE_HINT if engine == "EEVEE" else "")) from None
        if progress is not None:
            progress.update((done + 1) / len(tasks), f"rendered {task.file_name}", force=True)



def _render_in_children(blend: str | os.PathLike, output_dir: Path, tasks: list[RenderTask], lightings: Sequence[str],
                        views_deg: Sequence[float], expressions: Sequence[str], resolution: int, samples: int,
                        progress: Any) -> None:
    """One child ``studio-avatar render --task N --engine EEVEE`` per task: an EGL abort ends the child, not us."""
    from ..launcher import worker_argv

    common = ["--progress", "none", "render", str(Path(blend).resolve()), "-o", str(output_dir.resolve()),
              "--lightings=" + ",".join(lightings), "--views=" + ",".join(f"{float(v):g}" for v in views_deg),
              "--expressions=" + ",".join(expressions), "--engine", "EEVEE", "--resolution", str(resolution),
              "--samples", str(samples), "--overwrite"]
    for done, task in enumerate(tasks):
        try:
            # inside a real Blender this interpreter has no bpy for a child: run the child in Blender itself
            child = subprocess.run(worker_argv([*common, "--task", str(task.index)], blender=bpy.app.binary_path or None),
                                   capture_output=True, text=True,
                                   timeout=EEVEE_TASK_TIMEOUT_S, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            raise RenderError(f"EEVEE took over {EEVEE_TASK_TIMEOUT_S} s for task {task.index}{EEVEE_HINT}") from None
        if child.returncode != 0 or not (output_dir / task.file_name).is_file():
            last = next((line for line in reversed(child.stderr.splitlines()) if line.strip()), "no message")
            if child.returncode == InputError.exit_code:     # the child's own clear error: pass it on as it is
                raise RenderError(last.removeprefix("studio-avatar: error: "))
            how = f"was killed by signal {-child.returncode}" if child.returncode < 0 else f"exited with {child.returncode}"
            raise RenderError(f"EEVEE render of task {task.index} {how} ({last.strip()[:300]}){EEVEE_HINT}")
        if progress is not None:
            progress.update((done + 1) / len(tasks), f"rendered {task.file_name} (EEVEE)", force=True)


def write_contact_sheet(output_dir: str | os.PathLike, lightings: Sequence[str], views_deg: Sequence[float],
                        expressions: Sequence[str]) -> str:
    """A labelled grid of the job's images in ``output_dir`` (rows lighting x expression, columns views).

    Missing images leave a grey cell; no image at all is an error. Returns the sheet's path.
    """
    output_dir = Path(output_dir)
    tasks = plan_tasks(lightings, views_deg, expressions)
    images = {task.index: cv2.imread(str(output_dir / task.file_name), cv2.IMREAD_COLOR) for task in tasks}
    present = [image for image in images.values() if image is not None]
    if not present:
        raise InputError(f"no rendered images of this job in {output_dir}; render them first")
    cell = min(SHEET_CELL_MAX_PX, max(max(image.shape[:2]) for image in present))
    columns, rows = len(views_deg), len(lightings) * len(expressions)
    sheet = np.full((SHEET_HEADER_HEIGHT_PX + rows * cell, SHEET_LABEL_WIDTH_PX + columns * cell, 3), 32, np.uint8)
    font, scale, white = cv2.FONT_HERSHEY_SIMPLEX, 0.45, (235, 235, 235)
    for column, yaw in enumerate(views_deg):
        cv2.putText(sheet, f"yaw {float(yaw):+g}", (SHEET_LABEL_WIDTH_PX + column * cell + 6, SHEET_HEADER_HEIGHT_PX - 9),
                    font, scale, white, 1, cv2.LINE_AA)
    for task in tasks:
        row, column = divmod(task.index, columns)
        top, left = SHEET_HEADER_HEIGHT_PX + row * cell, SHEET_LABEL_WIDTH_PX + column * cell
        if column == 0:
            for line, text in enumerate((task.lighting, task.expression)):
                cv2.putText(sheet, text[:22], (6, top + cell // 2 - 4 + 18 * line), font, scale, white, 1, cv2.LINE_AA)
        image = images[task.index]
        if image is None:
            sheet[top:top + cell, left:left + cell] = 80
            cv2.putText(sheet, "missing", (left + 6, top + cell // 2), font, scale, white, 1, cv2.LINE_AA)
        else:
            sheet[top:top + cell, left:left + cell] = cv2.resize(image, (cell, cell), interpolation=cv2.INTER_AREA)
    ok, png = cv2.imencode(".png", sheet)
    assert ok, "OpenCV could not encode the contact sheet"
    atomic_write_bytes(output_dir / CONTACT_SHEET, png.tobytes())
    return str((output_dir / CONTACT_SHEET).resolve())
