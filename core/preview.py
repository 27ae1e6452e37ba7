"""Stage ``preview``: a contact sheet of evenly spaced frames, so a person can see what was captured.

Reads the source video (streamed, one frame in memory) and writes
``preview/contact.png`` plus ``preview/preview.json`` (which frames, at what
times). Owns nothing else.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np

from .stages import Stage, StageContext
from .video import iter_frames_at


@dataclass(frozen=True)
class PreviewParams:
    count: int = 8             # number of frames on the sheet
    columns: int = 4           # frames per row
    tile_height: int = 180     # height of one frame on the sheet, in pixels


def evenly_spaced(frames: int, count: int) -> list[int]:
    """``count`` frame indices spread over ``frames``, first and last included."""
    count = max(1, min(count, frames))
    return sorted(set(np.linspace(0, frames - 1, count).round().astype(int).tolist()))


def make_preview(ctx: StageContext) -> None:
    import cv2

    params: PreviewParams = ctx.params
    indices = evenly_spaced(int(ctx.source["frames"]), params.count)
    tiles, entries = [], []
    for index, time_s, image in ctx.progress.iterate(
        iter_frames_at(ctx.source["path"], indices), total=len(indices), message="decoding frame {done}/{total}"
    ):
        scale = params.tile_height / image.shape[0]
        tiles.append(cv2.resize(image, (max(1, round(image.shape[1] * scale)), params.tile_height), interpolation=cv2.INTER_AREA))
        entries.append({"index": index, "time_s": round(time_s, 4)})
    tile_width = max(t.shape[1] for t in tiles)
    rows = -(-len(tiles) // params.columns)
    sheet = np.zeros((rows * params.tile_height, min(len(tiles), params.columns) * tile_width, 3), np.uint8)
    for k, tile in enumerate(tiles):
        r, c = divmod(k, params.columns)
        sheet[r * params.tile_height:(r + 1) * params.tile_height, c * tile_width:c * tile_width + tile.shape[1]] = tile
    if not cv2.imwrite(str(ctx.output("preview/contact.png")), sheet):
        raise OSError("could not encode the contact sheet as PNG")
    ctx.output("preview/preview.json").write_text(json.dumps({"frames": entries, "tile_height": params.tile_height}, indent=2))


PREVIEW_STAGE = Stage(
    name="preview",
    version=1,
    run=make_preview,
    outputs=("preview/",),
    params_type=PreviewParams,
    description="contact sheet of evenly spaced frames",
)
