"""What a capture provides for building an avatar: the fitted identity, the head model it was fitted with, the best albedo.

Read by ``studio-avatar build`` and by the add-on's "Build Avatar from
Capture" before anything is built, so that a capture that is not ready fails
at once with a message that says which stage to run. Needs numpy only (no
torch, no bpy): Blender's UI process imports it. It reads the capture folder
and never writes to it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import TOOL_NAME
from .capture import Capture
from .errors import CaptureError
from .fit import FIT_NPZ, check_fitted_model, fit_model_files, load_fit
from .head.model import HeadModel

# best first: detail-enhanced final albedo, then the GMug output, then the classic delit baseline
ALBEDO_CHOICES = (
    ("final", "textures/albedo.png"),
    ("gmug", "textures/gmug.png"),
    ("delit_classic", "textures/delit_classic.png"),
)
# data maps (Non-Color) the avatar carries when present; textures/normal.exr is left out on purpose: it holds
# the fitted head's object-space normals for shading estimation, not a tangent-space normal map
DATA_MAPS = {"coverage": "textures/coverage.png"}


@dataclass(frozen=True)
class AvatarInputs:
    capture: Path                     # the capture folder
    shape: np.ndarray                 # (S,) fitted identity coefficients
    flame_model: str                  # FLAME model file the fit used ("": the open head)
    flame_uv: str                     # its UV template ("" if none)
    model_source: str                 # HeadModel.source of the fitted model
    model_fingerprint: str            # its metadata fingerprint ("" for models without one)
    albedo: Path                      # the best albedo present: sRGB PNG in the model's UV layout
    albedo_kind: str                  # which one: "final", "gmug" or "delit_classic"
    data_maps: dict[str, Path]        # name -> file, for the data maps present (Non-Color)


def read_avatar_inputs(capture_dir: str | os.PathLike, albedo: str = "best") -> AvatarInputs:
    """Everything needed from ``capture_dir`` to build its avatar; CaptureError says what is missing.

    ``albedo``: "best" (the first of ALBEDO_CHOICES present) or one of their names, which must be present.
    """
    capture = Capture.open(capture_dir)
    root = capture.root
    record = capture.stage_record("fit") or {}
    fit_path = capture.path(FIT_NPZ)
    if record.get("status") != "done" or not fit_path.is_file():
        raise CaptureError(f"{root}: the capture has no finished fit; run `{TOOL_NAME} reconstruct VIDEO -o {root}` first")
    flame_model, flame_uv = fit_model_files(capture)
    fit = load_fit(str(fit_path))
    present = [(kind, capture.path(name)) for kind, name in ALBEDO_CHOICES if capture.path(name).is_file()]
    if not present:
        names = ", ".join(name for _, name in ALBEDO_CHOICES)
        raise CaptureError(f"{root}: the capture has no albedo texture yet (looked for {names}); "
                           f"run reconstruct first: `{TOOL_NAME} reconstruct VIDEO -o {root}`")
    if albedo != "best":
        known = dict(ALBEDO_CHOICES)
        if albedo not in known:
            raise CaptureError(f"unknown albedo {albedo!r}; choose best or one of {', '.join(known)}")
        present = [(kind, path) for kind, path in present if kind == albedo]
        if not present:
            raise CaptureError(f"{root}: the capture has no {known[albedo]}; run reconstruct with that texture method first")
    albedo_kind, albedo_path = present[0]
    return AvatarInputs(
        capture=root, shape=np.asarray(fit["shape"], np.float32).reshape(-1),
        flame_model=flame_model, flame_uv=flame_uv,
        model_source=str(fit["model_source"]), model_fingerprint=str(fit["model_fingerprint"]),
        albedo=albedo_path, albedo_kind=albedo_kind,
        data_maps={name: capture.path(rel) for name, rel in DATA_MAPS.items() if capture.path(rel).is_file()},
    )


def check_head_model(inputs: AvatarInputs, model: HeadModel) -> None:
    """Refuse to build on another head model than the fit's: its shape coefficients and UVs would not match."""
    check_fitted_model(inputs.capture, model, inputs.model_source, inputs.model_fingerprint, len(inputs.shape))
