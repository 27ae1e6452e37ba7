"""The reconstruction pipeline: which stages run, in which order.

Later stages (frames, track, fit, unwrap, delight, gmug, detail) are appended
here as they are built; each lives in its own module.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .capture import Capture, describe_source
from .errors import CaptureError
from .fit import FIT_STAGE
from .frames import FRAMES_STAGE
from .preview import PREVIEW_STAGE
from .track import TRACK_STAGE
from .progress import Progress
from .stages import Pipeline, StageOutcome
from .texture.delight import DELIGHT_CLASSIC_STAGE
from .texture.unwrap import UNWRAP_STAGE
from .video import probe_video

RECONSTRUCTION = Pipeline([PREVIEW_STAGE, FRAMES_STAGE, TRACK_STAGE, FIT_STAGE, UNWRAP_STAGE, DELIGHT_CLASSIC_STAGE])


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
) -> tuple[Capture, list[StageOutcome]]:
    """Run the reconstruction stages for ``video`` in ``capture_dir``, skipping what is up to date.

    An existing capture made from other video content is not silently reused:
    that would mix two people's data. ``replace_source`` says the user wants it
    re-pointed; its stages then rerun because their input hash changes.
    """
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
