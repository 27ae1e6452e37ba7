"""One video's work in a batch: where its files go, the command lines of its tasks, and what a rerun may skip.

Per video ``OUT/NAME/``: ``capture/`` (the reconstruction, resumable stage by
stage), ``avatar.blend`` (+ ``avatar_textures/``), ``renders/`` (one PNG per
image of the lighting x view x expression matrix and ``contact_sheet.png``),
``avatar.glb`` / ``.fbx`` / ``.npz`` and ``logs/`` (each task's progress and
stderr). ``batch_state.json`` keeps, per product, the hash of what it was made
from: a rerun rebuilds the avatar only when the capture changed, renders and
exports again only when the avatar did, and otherwise skips them.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..atomic import atomic_write_json
from ..hashing import json_sha256
from ..pipeline import PRESET_SETTINGS

EXPORT_FORMATS = ("glb", "fbx", "npz")
STATE_JSON = "batch_state.json"
CONTACT_SHEET = "contact_sheet.png"      # what `render --contact-sheet-only` writes into the renders folder


@dataclass(frozen=True)
class BatchOptions:
    preset: str = "STANDARD"                       # DRAFT, STANDARD or HIGH (frames kept, texture size)
    texture_method: str = "auto"                   # auto, gmug or classic
    max_frames: int = 0                            # overrides of the preset (0: the preset's)
    texture_size: int = 0
    lightings: tuple[str, ...] = ("studio",)       # the render matrix
    views: tuple[float, ...] = (0.0,)
    expressions: tuple[str, ...] = ("neutral",)
    exports: tuple[str, ...] = ()                  # any of EXPORT_FORMATS
    engine: str = "CYCLES"
    resolution: int = 512
    samples: int = 16
    device: str = "auto"                           # of the learned stages, on the node that reconstructs
    gpus_per_reconstruct: float | None = None      # GPUs a reconstruction asks for (None: 1 where the cluster has any)
    max_retries: int = 2                           # per task, when its node fails
    blender: str = ""                              # a Blender executable for the tasks that need bpy (build, render,
                                                   # export), where the worker's Python has no bpy (the add-on)

    def __post_init__(self) -> None:
        if self.preset not in PRESET_SETTINGS:
            raise ValueError(f"preset must be one of {', '.join(PRESET_SETTINGS)}, not {self.preset!r}")
        unknown = sorted(set(self.exports) - set(EXPORT_FORMATS))
        if unknown:
            raise ValueError(f"--export takes {', '.join(EXPORT_FORMATS)}, not {', '.join(unknown)}")


@dataclass
class VideoJob:
    """A video's place in the batch and how far it got."""
    video: Path
    folder: Path
    status: str = "pending"                        # pending, running, done, failed
    step: str = ""                                 # the task it is at (reconstruct, build, render, ...)
    error: str = ""
    error_type: str = ""
    timings_s: dict[str, float] = field(default_factory=dict)
    renders_total: int = 0
    renders_done: int = 0
    exports_done: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    avatar_key: str = ""                           # sha256 of avatar.blend once built: what renders and exports come from

    @property
    def name(self) -> str:
        return self.folder.name

    @property
    def capture(self) -> Path:
        return self.folder / "capture"

    @property
    def blend(self) -> Path:
        return self.folder / "avatar.blend"

    @property
    def renders(self) -> Path:
        return self.folder / "renders"

    @property
    def contact_sheet(self) -> Path:
        return self.renders / CONTACT_SHEET

    def log(self, task: str) -> str:
        return str(self.folder / "logs" / f"{task}.log")

    def export_path(self, kind: str) -> Path:
        return self.folder / f"avatar.{kind}"

    def read_state(self) -> dict[str, str]:
        try:
            state = json.loads((self.folder / STATE_JSON).read_text())
        except (OSError, ValueError):
            return {}
        return state if isinstance(state, dict) else {}

    def write_state(self, **keys: Any) -> None:
        atomic_write_json(self.folder / STATE_JSON, {**self.read_state(), **keys})

    def summary(self) -> dict[str, Any]:
        return {"video": str(self.video), "name": self.name, "status": self.status, "step": self.step,
                "error": self.error, "error_type": self.error_type, "timings_s": self.timings_s,
                "renders": self.renders_done, "renders_total": self.renders_total, "exports": self.exports_done,
                "warnings": self.warnings,
                "contact_sheet": self.contact_sheet.relative_to(self.folder).as_posix() if self.contact_sheet.is_file() else None}


def plan_jobs(videos: list[str | Path], out: Path) -> list[VideoJob]:
    """One job per video, each in its own folder named after the file (a short hash of its path tells apart two
    files of the same name); the same video twice is refused."""
    resolved = [Path(v).resolve() for v in videos]
    duplicates = sorted({str(v) for v in resolved if resolved.count(v) > 1})
    if duplicates:
        raise ValueError(f"the same video is listed twice: {', '.join(duplicates)}")
    stems = [re.sub(r"[^A-Za-z0-9._-]+", "_", v.stem) or "video" for v in resolved]
    jobs = []
    for video, stem in zip(resolved, stems):
        name = stem if stems.count(stem) == 1 else f"{stem}-{hashlib.sha256(str(video).encode()).hexdigest()[:8]}"
        jobs.append(VideoJob(video, out / name))
    return jobs


def build_key(job: VideoJob) -> str:
    """What the avatar is made from: the hashes of every stage output the capture records (not its timestamps)."""
    stages = json.loads((job.capture / "capture.json").read_text()).get("stages", {})
    return json_sha256({name: {path: out.get("sha256") for path, out in record.get("outputs", {}).items()}
                        for name, record in stages.items()})


def render_matrix_args(job: VideoJob, options: BatchOptions) -> list[str]:
    return ["render", str(job.blend), "-o", str(job.renders), "--lightings", ",".join(options.lightings),
            f"--views={','.join(f'{v:g}' for v in options.views)}", "--expressions", ",".join(options.expressions),
            "--engine", options.engine, "--resolution", str(options.resolution), "--samples", str(options.samples)]


def reconstruct_args(job: VideoJob, options: BatchOptions) -> list[str]:
    max_frames, texture_size = PRESET_SETTINGS[options.preset]
    return ["--device", options.device, "reconstruct", str(job.video), "-o", str(job.capture),
            "--max-frames", str(options.max_frames or max_frames), "--texture-size", str(options.texture_size or texture_size),
            "--texture-method", options.texture_method]
