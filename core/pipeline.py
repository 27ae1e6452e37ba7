"""The reconstruction pipeline: which stages run, in which order.

Each stage lives in its own module. The texture method decides how far the
pipeline goes: ``classic`` stops after ``delight_classic``; ``gmug`` and
``auto`` (the default) also run ``gmug`` when its weights load, and fall back
to the classic texture with a one-line warning when they are missing or
corrupt.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .capture import Capture, describe_source
from .errors import CaptureError, InputError
from .fit import FIT_STAGE
from .frames import FRAMES_STAGE
from .gmug.stage import GMUG_STAGE, GMugParams
from .preview import PREVIEW_STAGE
from .track import TRACK_STAGE
from .progress import Progress
from .stages import Pipeline, StageOutcome
from .texture.delight import DELIGHT_CLASSIC_STAGE
from .texture.unwrap import UNWRAP_STAGE
from .video import probe_video

RECONSTRUCTION = Pipeline([PREVIEW_STAGE, FRAMES_STAGE, TRACK_STAGE, FIT_STAGE, UNWRAP_STAGE, DELIGHT_CLASSIC_STAGE,
                           GMUG_STAGE])
TEXTURE_METHODS = ("auto", "gmug", "classic")


def gmug_params(weights_dir: str | os.PathLike | None = None, device: str = "auto") -> GMugParams:
    """Params of the gmug stage with the shipped (or ``weights_dir``'s) weights; WeightsError if they are unusable."""
    from .device import resolve_device
    from .gmug.weights import load_gmug_cached
    from .hashing import path_sha256
    from .paths import GMUG_WEIGHTS_NAME, weights_dir as default_weights_dir
    from .weights import require_weights_file

    path = (Path(weights_dir or default_weights_dir()) / GMUG_WEIGHTS_NAME).resolve()
    require_weights_file(path)
    sha256 = path_sha256(path)
    load_gmug_cached(str(path), sha256, resolve_device(device))     # checked now; the stage reuses what was loaded
    return GMugParams(weights=str(path), weights_sha256=sha256, device=device)


def texture_plan(method: str, until: str | None, params: dict[str, Any], progress: Progress,
                 weights_dir: str | os.PathLike | None = None, device: str = "auto") -> str | None:
    """The last stage to run for texture ``method``; puts the gmug params into ``params`` when GMug will run."""
    if method not in TEXTURE_METHODS:
        raise InputError(f"unknown texture method {method!r}; choose one of {', '.join(TEXTURE_METHODS)}")
    names = RECONSTRUCTION.names()
    wants_gmug = until is None or names.index(until) >= names.index(GMUG_STAGE.name)
    if not wants_gmug:
        return until
    from .weights import WeightsError      # imports torch: only when GMug may run
    if method != "classic" and "gmug" not in params:
        try:
            params["gmug"] = gmug_params(weights_dir, device)
        except WeightsError as error:
            progress.warning(GMUG_STAGE.name, f"{error}; using the classic texture instead")
    if method == "classic" or "gmug" not in params:
        return DELIGHT_CLASSIC_STAGE.name
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
) -> tuple[Capture, list[StageOutcome]]:
    """Run the reconstruction stages for ``video`` in ``capture_dir``, skipping what is up to date.

    An existing capture made from other video content is not silently reused:
    that would mix two people's data. ``replace_source`` says the user wants it
    re-pointed; its stages then rerun because their input hash changes.
    """
    for name in ([until] if until else []) + list(force):     # every name checked before any folder is made
        RECONSTRUCTION.get(name)
    params = dict(params or {})
    until = texture_plan(texture_method, until, params, progress, weights_dir, device)
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
