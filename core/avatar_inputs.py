"""What a capture provides for building an avatar: the fitted identity, the head model it was fitted with, the best albedo.

Read by ``studio-avatar build`` and by the add-on's "Build Avatar from
Capture" before anything is built, so that a capture that is not ready, or
whose results are stale, fails at once with a message that says which stage
to run. Needs numpy only (no
torch, no bpy): Blender's UI process imports it. It reads the capture folder
and never writes to it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import TOOL_NAME
from .capture import MANIFEST_NAME, Capture
from .errors import CaptureError
from .fit import FIT_NPZ, check_fitted_model, fit_model_files, load_fit
from .hashing import path_sha256
from .head.model import HeadModel
from .stages import is_current, require_current, stage_states

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
    fit_sha256: str                   # hash of the fit.npz read (the .blend records it)
    albedo: Path                      # the best current albedo: sRGB PNG in the model's UV layout
    albedo_kind: str                  # which one: "final", "gmug" or "delit_classic"
    data_maps: dict[str, Path]        # name -> file, for the current data maps present (Non-Color)
    skipped: tuple[str, ...] = ()     # why better albedos present were passed over (they are stale)


def read_avatar_inputs(capture_dir: str | os.PathLike, albedo: str = "best") -> AvatarInputs:
    """Everything needed from ``capture_dir`` to build its avatar; CaptureError says what is missing or stale.

    ``albedo``: "best" (the first current one of ALBEDO_CHOICES; stale ones are
    passed over and named in ``skipped``) or one of their names, which must be
    present and current.
    """
    capture = Capture.open(capture_dir)
    root = capture.root
    record = capture.stage_record("fit") or {}
    fit_path = capture.path(FIT_NPZ)
    if record.get("status") != "done" or not fit_path.is_file():
        raise CaptureError(f"{root}: the capture has no finished fit; run `{TOOL_NAME} reconstruct VIDEO -o {root}` first")
    states = stage_states(capture)
    require_current(capture, [FIT_NPZ], "build", states)
    flame_model, flame_uv = fit_model_files(capture)
    fit = load_fit(str(fit_path))
    known = dict(ALBEDO_CHOICES)
    if albedo != "best" and albedo not in known:
        raise CaptureError(f"unknown albedo {albedo!r}; choose best or one of {', '.join(known)}")
    wanted = [(kind, name) for kind, name in ALBEDO_CHOICES if albedo in ("best", kind)]
    present = [(kind, name) for kind, name in wanted if capture.path(name).is_file()]
    if not present:
        if albedo != "best":
            raise CaptureError(f"{root}: the capture has no {known[albedo]}; run reconstruct with that texture method first")
        names = ", ".join(name for _, name in ALBEDO_CHOICES)
        raise CaptureError(f"{root}: the capture has no albedo texture yet (looked for {names}); "
                           f"run reconstruct first: `{TOOL_NAME} reconstruct VIDEO -o {root}`")
    skipped = []
    for index, (kind, name) in enumerate(present):
        try:
            require_current(capture, [name], "build", states)
        except CaptureError as stale:
            if index == len(present) - 1:
                raise
            skipped.append(str(stale))
            continue
        albedo_kind, albedo_path = kind, capture.path(name)
        break
    data_maps = {}
    for label, name in DATA_MAPS.items():
        if capture.path(name).is_file() and is_current(capture, name, states):
            data_maps[label] = capture.path(name)
    return AvatarInputs(
        capture=root, shape=np.asarray(fit["shape"], np.float32).reshape(-1),
        flame_model=flame_model, flame_uv=flame_uv,
        model_source=str(fit["model_source"]), model_fingerprint=str(fit["model_fingerprint"]),
        fit_sha256=path_sha256(fit_path), albedo=albedo_path, albedo_kind=albedo_kind, data_maps=data_maps,
        skipped=tuple(skipped),
    )


def check_built_capture(capture_dir: str, fit_sha256: str, purpose: str) -> str:
    """For an avatar built from ``capture_dir``: refuse (CaptureError) while that capture's fit is stale; returns a
    warning ("" if none) when the capture was reconstructed again since the build (its fit is not ``fit_sha256``).
    A capture that is gone, or no capture, is no concern: a built .blend stands on its own."""
    root = Path(capture_dir) if capture_dir else None
    if root is None or not (root / MANIFEST_NAME).is_file():
        return ""
    capture = Capture.open(root)
    require_current(capture, [FIT_NPZ], purpose)
    if fit_sha256 and path_sha256(capture.path(FIT_NPZ)) != fit_sha256:
        return (f"the capture {root} was reconstructed again since this avatar was built; rebuild the avatar "
                f"(`{TOOL_NAME} build {root}`) to use its new fit and textures")
    return ""


def check_head_model(inputs: AvatarInputs, model: HeadModel) -> None:
    """Refuse to build on another head model than the fit's: its shape coefficients and UVs would not match."""
    check_fitted_model(inputs.capture, model, inputs.model_source, inputs.model_fingerprint, len(inputs.shape))
