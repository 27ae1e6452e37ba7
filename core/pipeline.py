"""The reconstruction pipeline: which stages run, in which order.

Each stage lives in its own module. The texture method decides how far the
pipeline goes: ``classic`` stops after ``delight_classic``; ``gmug`` and
``auto`` (the default) also run ``gmug`` when its weights load, and fall back
to the classic texture with a one-line warning when they are missing or
corrupt. ``detail="enhance"`` then also runs ``enhance`` (skin detail by
diffusion) when its weights load; it is off by default until the bench shows
that the shipped weights help (issue 15).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .capture import Capture, describe_source
from .errors import CaptureError, InputError
from .fit import FIT_STAGE
from .frames import FRAMES_STAGE
from .enhance.stage import ENHANCE_STAGE, EnhanceParams
from .gmug.stage import GMUG_STAGE, GMugParams
from .preview import PREVIEW_STAGE
from .track import TRACK_STAGE
from .progress import Progress
from .stages import Pipeline, StageOutcome
from .texture.delight import DELIGHT_CLASSIC_STAGE
from .texture.unwrap import UNWRAP_STAGE
from .video import probe_video

RECONSTRUCTION = Pipeline([PREVIEW_STAGE, FRAMES_STAGE, TRACK_STAGE, FIT_STAGE, UNWRAP_STAGE, DELIGHT_CLASSIC_STAGE,
                           GMUG_STAGE, ENHANCE_STAGE])
# quality preset -> (most frames kept, texels across the UV textures): the add-on's Reconstruct and `batch`
PRESET_SETTINGS = {"DRAFT": (40, 1024), "STANDARD": (80, 2048), "HIGH": (120, 4096)}
TEXTURE_METHODS = ("auto", "gmug", "classic")
DETAIL_METHODS = ("none", "enhance")


def _checked_weights(weights_dir: str | os.PathLike | None, name: str, what: str) -> tuple[str, str]:
    """(resolved path, sha256) of the weights file ``name``; WeightsError if it is missing."""
    from .hashing import path_sha256
    from .paths import weights_dir as default_weights_dir
    from .weights import require_weights_file

    path = (Path(weights_dir or default_weights_dir()) / name).resolve()
    require_weights_file(path, what)
    return str(path), path_sha256(path)


def gmug_params(weights_dir: str | os.PathLike | None = None, device: str = "auto") -> GMugParams:
    """Params of the gmug stage with the shipped (or ``weights_dir``'s) weights; WeightsError if they are unusable."""
    from .device import resolve_device
    from .gmug.weights import load_gmug_cached
    from .paths import GMUG_WEIGHTS_NAME

    path, sha256 = _checked_weights(weights_dir, GMUG_WEIGHTS_NAME, "GMug")
    load_gmug_cached(path, sha256, resolve_device(device))     # checked now; the stage reuses what was loaded
    return GMugParams(weights=path, weights_sha256=sha256, device=device)


def enhance_params(weights_dir: str | os.PathLike | None = None, device: str = "auto") -> EnhanceParams:
    """Params of the enhance stage with the shipped (or ``weights_dir``'s) weights; WeightsError if they are unusable."""
    from .device import resolve_device
    from .enhance.weights import load_enhance_cached
    from .paths import ENHANCE_WEIGHTS_NAME

    path, sha256 = _checked_weights(weights_dir, ENHANCE_WEIGHTS_NAME, "enhance")
    load_enhance_cached(path, sha256, resolve_device(device))
    return EnhanceParams(weights=path, weights_sha256=sha256, device=device)


def texture_plan(method: str, until: str | None, params: dict[str, Any], progress: Progress,
                 weights_dir: str | os.PathLike | None = None, device: str = "auto", detail: str = "none") -> str | None:
    """The last stage to run for texture ``method`` and ``detail``; puts the learned stages' params into ``params``
    for those that will run (a learned stage whose weights do not load is left out with a one-line warning)."""
    if method not in TEXTURE_METHODS:
        raise InputError(f"unknown texture method {method!r}; choose one of {', '.join(TEXTURE_METHODS)}")
    if detail not in DETAIL_METHODS:
        raise InputError(f"unknown detail method {detail!r}; choose one of {', '.join(DETAIL_METHODS)}")
    names = RECONSTRUCTION.names()
    last = names.index(until) if until else len(names) - 1
    if last < names.index(GMUG_STAGE.name):
        return until
    from .weights import WeightsError      # imports torch: only when a learned stage may run
    if method != "classic" and "gmug" not in params:
        try:
            params["gmug"] = gmug_params(weights_dir, device)
        except WeightsError as error:
            progress.warning(GMUG_STAGE.name, f"{error}; using the classic texture instead")
    if method == "classic" or "gmug" not in params:
        return DELIGHT_CLASSIC_STAGE.name
    if last < names.index(ENHANCE_STAGE.name) or (detail == "none" and until != ENHANCE_STAGE.name):
        return GMUG_STAGE.name if until is None else until
    if "enhance" not in params:
        try:
            params["enhance"] = enhance_params(weights_dir, device)
        except WeightsError as error:
            progress.warning(ENHANCE_STAGE.name, f"{error}; the albedo stays without added detail")
            return GMUG_STAGE.name
    return until


def open_or_create_capture(video: str | os.PathLike, capture_dir: str | os.PathLike) -> tuple[Capture, dict[str, Any]]:
    """Open ``capture_dir`` (creating it if new) and describe ``video`` as its source."""
    facts = probe_video(video).to_dict()
    root = Path(capture_dir).expanduser()
    if (root / "capture.json").is_file():
        capture = Capture.open(root)
        return capture, describe_source(video, facts, known=capture.source)
    source = describe_source(video, facts)
    return Capture.create(root, source), source


def reconstruct(
    video: str | os.PathLike,
    capture_dir: str | os.PathLike,
    progress: Progress,
    until: str | None = None,
    force: tuple[str, ...] = (),
    params: dict[str, Any] | None = None,
    replace_source: bool = False,
    texture_method: str = "auto",
    weights_dir: str | os.PathLike | None = None,
    device: str = "auto",
    detail: str = "none",
) -> tuple[Capture, list[StageOutcome]]:
    """Run the reconstruction stages for ``video`` in ``capture_dir``, skipping what is up to date.

    An existing capture made from other video content is not silently reused:
    that would mix two people's data. ``replace_source`` says the user wants it
    re-pointed; its stages then rerun because their input hash changes.
    """
    for name in ([until] if until else []) + list(force):     # every name checked before any folder is made
        RECONSTRUCTION.get(name)
    params = dict(params or {})
    until = texture_plan(texture_method, until, params, progress, weights_dir, device, detail)
    capture, source = open_or_create_capture(video, capture_dir)
    with capture.locked():
        if source["sha256"] != capture.source.get("sha256") and not replace_source:
            raise CaptureError(
                f"{capture.root}: this capture was made from another video ({capture.source.get('path')}); "
                "choose a new capture folder, or pass --replace-source to rebuild it from this video"
            )
        if source != capture.source:
            capture.manifest["source"] = source
            capture.save()
        outcomes = RECONSTRUCTION.run(capture, progress, params=params, until=until, force=force)
    return capture, outcomes
