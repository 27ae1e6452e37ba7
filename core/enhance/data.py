"""Training data of the detail network: crops of synthetic 2048² albedos, and what a capture would give in their place.

:class:`PatchBank` generates albedos with ``core/synth/albedo.py`` (which
draws pores, fine furrows, lip lines and stubble at 2048², measured in
bench/results/albedo_detail.md), keeps ``crops`` random skin crops of each as
16-bit arrays in the run folder (made once, reused on resume), and holds
them in memory.

:func:`degrade` turns a batch of true crops into the network's inputs, with
fresh randomness every time:

* the *base* is what ``gmug.png`` holds at 2048², as the gmug stage composes
  it: where the capture saw well, the truth at the video's resolution
  (downsampled 2.5-8x: 2.3 px/mm of a 1080p close-up down to 0.7 px/mm of
  the quality bench's 512² frames, against 5.8 texels/mm); where it saw
  little or nothing, the truth at GMug's own
  resolution (8-16x coarser: 128² or 256² upsampled); in between, the same
  blend of the two as the gmug stage's (``OBSERVED_BLEND`` over the
  coverage); upsampled back, with a small colour error;
* the *phone texture*: the truth under a smooth, coloured, randomly exposed
  light, blurred to the video's resolution, with sensor noise;
* the *coverage*: smooth random fields, sometimes zero (unseen: the network
  must invent plausible detail from the base alone);
* the *target*: the truth minus the base (before its colour error), i.e.
  the detail alone, under the base's colour error (that error is not the
  network's to undo: base + detail is the truth in the base's colour).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..atomic import atomic_write_npz
from ..gmug.stage import OBSERVED_BLEND

ALBEDO_SIZE = 2048            # texture size the crops come from (the Standard preset's texel density)
DOWNSCALE = (2.5, 8.0)        # how much coarser than 2048^2 the video sees the face (1080p close-up .. 512^2 frames)
COMPLETION_DOWNSCALE = (8.0, 16.0)   # ... and GMug's completion is (a 256^2 or 128^2 network, upsampled)
UNSEEN_FRACTION = 0.3         # crops the capture never saw (real captures complete half the head)
MARGIN = 16                   # extra texels around each crop, so that blurs see real neighbours


class PatchBank:
    """``identities`` synthetic albedos' random skin crops of ``tile + 2 * MARGIN`` texels, (N, C, C, 3) uint16."""

    def __init__(self, folder: Path, identities: int, crops: int, tile: int, seed: int, albedo_size: int = ALBEDO_SIZE,
                 progress: Any = None) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.tile = tile
        side = tile + 2 * MARGIN
        parts = []
        for identity in range(identities):
            path = folder / f"identity{identity:04d}_{albedo_size}_{side}.npz"
            if not path.is_file():
                atomic_write_npz(path, crops=_skin_crops(seed + identity, crops, side, albedo_size))
            with np.load(path) as data:
                parts.append(data["crops"])
            if progress is not None:
                progress.update((identity + 1) / identities, f"training albedos {identity + 1}/{identities}")
        self.crops = np.concatenate(parts)
        self.per_identity = crops

    def rows(self, identities: range) -> np.ndarray:
        return np.concatenate([np.arange(i * self.per_identity, (i + 1) * self.per_identity) for i in identities])


def _skin_crops(seed: int, count: int, side: int, albedo_size: int) -> np.ndarray:
    """``count`` crops of ``side`` texels lying inside the skin of one synthetic albedo (2x more on the face)."""
    from ..head.open_head import get_open_head
    from ..synth.albedo import generate_albedo, sample_skin
    from ..texture.uv import texel_geometry

    model = get_open_head(with_landmarks=False)
    linear = generate_albedo(model, albedo_size, seed=seed, skin=sample_skin(seed)).linear
    geometry = texel_geometry(model, albedo_size)
    skin = geometry.image(geometry.skin).numpy()
    face = geometry.image(geometry.regions["face"] & geometry.skin).numpy()
    rng = np.random.default_rng(seed)
    candidates = np.argwhere(skin[side // 2: -side // 2, side // 2: -side // 2]) + side // 2
    weights = np.where(face[candidates[:, 0], candidates[:, 1]], 2.0, 1.0)
    crops = []
    while len(crops) < count:
        y, x = candidates[rng.choice(len(candidates), p=weights / weights.sum())] - side // 2
        if skin[y:y + side, x:x + side].mean() > 0.95:         # wholly on one UV island
            crops.append(linear[y:y + side, x:x + side])
    return np.round(np.clip(np.stack(crops), 0, 1) * 65535).astype(np.uint16)


def _resample(image: np.ndarray, factor: float) -> np.ndarray:
    """An (S, S, 3) image seen ``factor`` times coarser: area-downsampled, bicubic back to S."""
    import cv2

    side = image.shape[0]
    small = max(4, int(round(side / factor)))
    return cv2.resize(cv2.resize(image, (small, small), interpolation=cv2.INTER_AREA), (side, side),
                      interpolation=cv2.INTER_CUBIC)


def _smooth_field(rng: np.random.Generator, count: int, side: int, cells: int = 3) -> np.ndarray:
    """(N, S, S) smooth random fields in about -1..1 (bicubic from a cells x cells grid)."""
    import cv2

    return np.stack([cv2.resize(rng.uniform(-1, 1, (cells, cells)).astype(np.float32), (side, side),
                                interpolation=cv2.INTER_CUBIC) for _ in range(count)])


def degrade(crops: np.ndarray, rng: np.random.Generator, tile: int) -> dict[str, np.ndarray]:
    """Network inputs and target for (N, C, C, 3) uint16 true crops: "base", "phone" (N, T, T, 3), "coverage"
    (N, T, T) and "detail" (N, T, T, 3, the truth minus the base), linear 0..1."""
    truth = crops.astype(np.float32) / 65535.0
    count, side = len(truth), truth.shape[1]
    low = np.stack([_resample(image, rng.uniform(*DOWNSCALE)) for image in truth])
    completed = np.stack([_resample(image, rng.uniform(*COMPLETION_DOWNSCALE)) for image in truth])
    colour_error = np.exp(rng.normal(0.0, 0.03, (count, 1, 1, 3))).astype(np.float32)
    light = np.exp(0.25 * _smooth_field(rng, count, side))[..., None] * np.exp(rng.normal(0.0, 0.1, (count, 1, 1, 3)))
    exposure = np.exp(rng.uniform(np.log(0.3), np.log(1.5), (count, 1, 1, 1)))
    lit = np.stack([_resample(image, rng.uniform(*DOWNSCALE)) for image in truth * light * exposure])
    phone = lit + rng.normal(0.0, 1.0, lit.shape) * (0.004 + 0.01 * np.sqrt(np.clip(lit, 0, None)))
    unseen = rng.uniform(size=(count, 1, 1)) < UNSEEN_FRACTION
    coverage = np.where(unseen, 0.0, np.clip(0.6 + 0.6 * _smooth_field(rng, count, side), 0.0, 1.0))
    low_edge, high_edge = OBSERVED_BLEND
    seen = np.clip((coverage - low_edge) / (high_edge - low_edge), 0.0, 1.0)[..., None]
    base = seen * low + (1 - seen) * completed
    inner = slice(MARGIN, MARGIN + tile)
    return {"base": np.clip(base * colour_error, 0, 1)[:, inner, inner].astype(np.float32),
            "phone": np.clip(phone, 0, 1)[:, inner, inner].astype(np.float32),
            "coverage": coverage[:, inner, inner].astype(np.float32),
            "detail": ((truth - base) * colour_error)[:, inner, inner].astype(np.float32)}
