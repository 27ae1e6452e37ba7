"""View-dependent landmark embedding: where mediapipe puts each landmark on the head, per viewing angle.

mediapipe's FaceMesh does not track fixed surface points once a face turns:
beyond ~30 degrees of yaw it pulls the far cheek, jaw line and eye corners
towards the nose, so a fit against the frontal embedding underestimates the
turn (about 10 degrees at 60 degrees of yaw on our synthetic clips). This
module measures that behaviour on the head model itself: the neutral head is
rendered (with the landmark painter) at yaws from -75 to 75 degrees and a few
pitches, mediapipe runs on each render, each landmark is carried back onto the
surface, and the views of a yaw bin vote (geometric median, snapped to the
surface). A fit then interpolates, per frame, between the two bins around the
frame's current yaw (as DECA and others do with a "dynamic contour").

Landmarks mediapipe does not place on the head in a bin (face not found,
point off the surface) keep the frontal embedding there. The result is cached
in the user cache, keyed by the model's geometry and landmark embedding.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..atomic import atomic_write_npz, read_npz
from ..paths import default_cache_dir
from .landmarks import (
    SUPERSAMPLING, FacePainter, back_project, detect_faces, geometric_median, render_views, snap_to_surface, view_raster,
)
from .model import HeadModel

BIN_YAWS_DEG = (-75.0, -60.0, -45.0, -30.0, -15.0, 0.0, 15.0, 30.0, 45.0, 60.0, 75.0)
BIN_PITCHES_DEG = (-10.0, 0.0, 10.0)
IMAGE_SIZE = 384
FORMAT = 1


@dataclass
class ViewLandmarks:
    yaws_deg: np.ndarray        # (K,) bin centres, increasing
    faces: np.ndarray           # (K, L) triangle per landmark per bin
    barycentrics: np.ndarray    # (K, L, 3)
    measured: np.ndarray        # (K, L) bool: placed from renders (False: the frontal embedding stands in)

    def weights(self, yaw_deg: np.ndarray) -> np.ndarray:
        """(n, K) linear interpolation weights of each frame's yaw between the bins (clamped at the ends)."""
        yaw = np.clip(np.asarray(yaw_deg, np.float64), self.yaws_deg[0], self.yaws_deg[-1])
        upper = np.clip(np.searchsorted(self.yaws_deg, yaw, side="right"), 1, len(self.yaws_deg) - 1)
        lower = upper - 1
        t = (yaw - self.yaws_deg[lower]) / (self.yaws_deg[upper] - self.yaws_deg[lower])
        weights = np.zeros((len(yaw), len(self.yaws_deg)))
        rows = np.arange(len(yaw))
        weights[rows, lower] += 1 - t
        weights[rows, upper] += t
        return weights


def _model_key(model: HeadModel) -> str:
    digest = hashlib.sha256()
    for array in (model.template_m, model.faces, model.landmark_faces, model.landmark_barycentrics):
        digest.update(np.ascontiguousarray(array).tobytes())
    for name in sorted(model.regions):
        digest.update(name.encode() + np.packbits(model.regions[name]).tobytes())
    digest.update(repr((BIN_YAWS_DEG, BIN_PITCHES_DEG, IMAGE_SIZE, FORMAT)).encode())
    return digest.hexdigest()[:16]


def get_view_landmarks(model: HeadModel, cache_dir: str | os.PathLike | None = None, progress: Any = None) -> ViewLandmarks:
    """The view-dependent embedding of ``model`` from the user cache, measuring it first if needed (~10 s)."""
    path = Path(cache_dir or default_cache_dir()) / "heads" / f"view-landmarks-{_model_key(model)}.npz"
    if path.is_file():
        try:
            data = read_npz(path)
            return ViewLandmarks(data["yaws_deg"], data["faces"], data["barycentrics"], data["measured"])
        except (OSError, ValueError, KeyError):
            pass  # damaged cache entry: measure again
    result = measure_view_landmarks(model, progress)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_npz(path, yaws_deg=result.yaws_deg, faces=result.faces, barycentrics=result.barycentrics, measured=result.measured)
    return result


def measure_view_landmarks(model: HeadModel, progress: Any = None) -> ViewLandmarks:
    import torch

    template = np.asarray(model.template_m, np.float64)
    faces = torch.as_tensor(model.faces, dtype=torch.long)
    verts = torch.as_tensor(template)
    size = IMAGE_SIZE * SUPERSAMPLING
    painter = FacePainter(model)
    views = [(yaw, pitch) for yaw in BIN_YAWS_DEG for pitch in BIN_PITCHES_DEG]
    images = render_views(painter, verts, faces, views, IMAGE_SIZE, progress, "rendered view {done}/{total} for view-dependent landmarks")
    detections = detect_faces(images)

    L = len(model.landmark_faces)
    K = len(BIN_YAWS_DEG)
    out_faces = np.tile(model.landmark_faces.astype(np.int64), (K, 1))
    out_bary = np.tile(model.landmark_barycentrics.astype(np.float64), (K, 1, 1))
    measured = np.zeros((K, L), bool)
    for b in range(K):
        hits, valid = [], []
        for p in range(len(BIN_PITCHES_DEG)):
            index = b * len(BIN_PITCHES_DEG) + p
            found = detections[index][0]
            if found is None:
                continue
            # rasterized again rather than kept: 33 rasters of this size would hold ~0.5 GB
            points, ok = back_project(found * SUPERSAMPLING, view_raster(painter, verts, faces, *views[index], size)[0], verts, faces)
            hits.append(points)
            valid.append(ok)
        if not hits:
            continue
        points, ok = np.stack(hits, 1), np.stack(valid, 1)
        placed = ok.any(1)
        consensus = geometric_median(points, ok | ~placed[:, None])
        tri, bary, _ = snap_to_surface(np.where(placed[:, None], consensus, 0.0), template, model)
        out_faces[b, placed] = tri[placed]
        out_bary[b, placed] = bary[placed]
        measured[b] = placed
    if progress is not None:
        progress.update(1.0, "view-dependent landmarks placed")
    return ViewLandmarks(np.array(BIN_YAWS_DEG), out_faces.astype(np.int32), out_bary.astype(np.float32), measured)
