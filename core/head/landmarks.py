"""Landmark embedding: where each of mediapipe's 478 face-mesh landmarks lies on a head model's surface.

Computed automatically for any ``HeadModel``: the neutral head is rendered
from several views with a face-like shading (skin, darker lips, eyebrows,
eyes with sclera, iris and pupil, a dark mouth), mediapipe's FaceMesh runs on
every render, each detected landmark is carried back onto the surface through
the rasterizer's triangle and barycentrics at its pixel, and the views vote:
a geometric median per landmark, snapped to the closest point of the surface
where that landmark may lie (iris landmarks on the eyeballs, all others on
skin). The report says how well the views agreed and how symmetric the result
is; the left/right pairing of mediapipe's landmarks comes from mediapipe
itself, by detecting every render and its mirror image.

This module owns the rendering for the detector, the back-projection, the
consensus and its report. It does not build head models (open_head.py,
flame.py), store the embedding (the builder does) or track videos.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..native_stderr import native_stderr_captured
from .model import NUM_LANDMARKS, HeadModel, HeadModelError

IRIS_LANDMARKS = np.arange(468, 478)
EYE_REGIONS = ("eye_left", "eye_right")
INNER_MOUTH_REGIONS = ("mouth_interior", "teeth", "tongue")
DEFAULT_VIEWS = tuple((yaw, pitch) for pitch in (-15.0, 0.0, 15.0) for yaw in (-30.0, 0.0, 30.0))  # degrees
MIN_VIEWS_DETECTED = 3
SUPERSAMPLING = 2                   # renders are rasterized this many times larger, then averaged down
FIELD_OF_VIEW_DEG = 20.0
FACE_FILL = 0.8                     # share of the image height taken by the face region's height

# Shading of the renders (sRGB 0..255) and of the painted eyes and brows.
SKIN_RGB = (222, 172, 142)
LIPS_RGB = (168, 92, 92)
MOUTH_RGB = (50, 22, 22)
TEETH_RGB = (225, 220, 205)
TONGUE_RGB = (140, 58, 58)
SCLERA_RGB = (236, 232, 226)
IRIS_RGB = (92, 64, 44)
PUPIL_RGB = (12, 8, 8)
BROW_RGB = (72, 52, 40)
BACKGROUND_RGB = (150, 160, 172)
AMBIENT = 0.35
IRIS_RADIUS_M = 0.0060
PUPIL_RADIUS_M = 0.0022


@dataclass
class LandmarkEmbedding:
    faces: np.ndarray          # (478,) int32 triangle of each landmark
    barycentrics: np.ndarray   # (478, 3) float32 weights of that triangle's corners, non-negative, summing to 1
    report: dict[str, Any]     # consistency of the views, symmetry, snapping (JSON-ready)


def embed_landmarks(model: HeadModel, views: tuple[tuple[float, float], ...] = DEFAULT_VIEWS, image_size: int = 512,
                    progress: Any = None) -> LandmarkEmbedding:
    """Embed mediapipe's 478 landmarks on ``model``'s neutral surface.

    views: (yaw, pitch) in degrees of the camera orbiting the face (yaw > 0
    sees the subject's left cheek, pitch > 0 looks from above); image_size:
    render size in pixels; progress: a stage tracker with ``update(fraction,
    message)`` or None. Raises HeadModelError when mediapipe finds the face in
    fewer than three renders.
    """
    import torch

    if len(views) < MIN_VIEWS_DETECTED or image_size < 128:
        raise ValueError(f"embed_landmarks needs at least {MIN_VIEWS_DETECTED} views and renders of at least 128 pixels")
    template = np.asarray(model.template_m, np.float64)
    assert template.ndim == 2 and template.shape[1] == 3, "template must be (V, 3)"
    faces = torch.as_tensor(model.faces, dtype=torch.long)
    verts = torch.as_tensor(template)
    size = image_size * SUPERSAMPLING
    painter = FacePainter(model)

    # renders first, then every detection in one quiet block (mediapipe logs from its own threads)
    images = render_views(painter, verts, faces, views, image_size, progress, "rendered landmark view {done}/{total}")
    detections = detect_faces(images)

    hits, hit_ok, mirror_votes, view_report = [], [], [], []
    for (yaw, pitch), (found, flipped) in zip(views, detections):
        view_report.append({"yaw_deg": float(yaw), "pitch_deg": float(pitch), "detected": found is not None})
        if found is None:
            continue
        points, ok = back_project(found * SUPERSAMPLING, view_raster(painter, verts, faces, yaw, pitch, size)[0], verts, faces)
        hits.append(points)
        hit_ok.append(ok)
        if flipped is not None:
            mirror_votes.append((found, np.stack([image_size - flipped[:, 0], flipped[:, 1]], -1)))
        if progress is not None:
            progress.update(0.8 + 0.2 * len(view_report) / len(views), "placing landmarks on the surface")

    detected = len(hits)
    if detected < MIN_VIEWS_DETECTED:
        raise HeadModelError(
            f"mediapipe found the face in only {detected} of {len(views)} renders of the {model.source} head "
            f"(needs {MIN_VIEWS_DETECTED}); check that the face looks along +z with +y up and that the regions "
            "face, lips, eye_left and eye_right are set"
        )
    points = np.stack(hits, 1)                     # (L, N, 3)
    valid = np.stack(hit_ok, 1)                    # (L, N)
    never = np.flatnonzero(~valid.any(1))
    if len(never):
        raise HeadModelError(
            f"landmarks {never[:10].tolist()} never landed on the {model.source} head's surface in {detected} views; "
            "frame the face so that it fills the renders (its 'face' region may be too small)"
        )

    consensus = geometric_median(points, valid)
    distance_mm = np.linalg.norm(points - consensus[:, None], axis=2) * 1000
    spread_mm = np.nanmedian(np.where(valid, distance_mm, np.nan), axis=1)
    tri, bary, surface = snap_to_surface(consensus, template, model)
    mirror = _mirror_table(mirror_votes)
    report = {
        "views": view_report,
        "views_detected": detected,
        "image_size": image_size,
        "spread_mm": {"mean": _r(spread_mm.mean()), "median": _r(np.median(spread_mm)), "max": _r(spread_mm.max()),
                      "worst_landmark": int(spread_mm.argmax())},
        "landmark_spread_mm": [_r(s) for s in spread_mm],
        "landmark_views": valid.sum(1).astype(int).tolist(),
        "snap_distance_mm": {"mean": _r(np.linalg.norm(surface - consensus, axis=1).mean() * 1000),
                             "max": _r(np.linalg.norm(surface - consensus, axis=1).max() * 1000)},
        "mirror": _mirror_report(mirror, tri, bary, template, model.faces, model.vertex_mirror),
    }
    return LandmarkEmbedding(tri.astype(np.int32), bary.astype(np.float32), report)


# -- rendering for the detector ---------------------------------------------------------------------

class FacePainter:
    """Colours a raster of the head so that a face detector sees a face (eyes and brows painted at rest positions)."""

    def __init__(self, model: HeadModel) -> None:
        import torch

        template = np.asarray(model.template_m, np.float64)
        faces = np.asarray(model.faces, np.int64)
        regions = model.regions
        face = regions.get("face")
        if face is None or not face.any():
            raise HeadModelError(f"the {model.source} head has no 'face' region; landmarks cannot be placed")
        lo, hi = template[face].min(0), template[face].max(0)
        self.target = (lo + hi) / 2
        half_height = (hi[1] - lo[1]) / 2 / FACE_FILL
        self.distance = float(half_height / np.tan(np.radians(FIELD_OF_VIEW_DEG) / 2) + hi[2] - self.target[2])

        albedo = np.tile(np.array(SKIN_RGB, np.float64), (len(template), 1))
        for name, rgb in (("lips", LIPS_RGB), ("mouth_interior", MOUTH_RGB), ("teeth", TEETH_RGB), ("tongue", TONGUE_RGB)):
            if name in regions:
                albedo[regions[name]] = rgb
        self.faces = torch.as_tensor(faces)
        self.albedo = torch.as_tensor(albedo)
        self.normals = torch.as_tensor(_vertex_normals(template, faces))
        self.eyes = []          # (triangle mask, eyeball centre, radius) per eye
        for name in EYE_REGIONS:
            mask = regions.get(name)
            if mask is not None and mask.any():
                centre = template[mask].mean(0)
                radius = float(np.linalg.norm(template[mask] - centre, axis=1).max())
                self.eyes.append((torch.as_tensor(mask[faces].all(1)), centre, radius))
        not_skin = _region_union(model, EYE_REGIONS + INNER_MOUTH_REGIONS)
        self.skin = torch.as_tensor(~not_skin[faces].any(1))   # triangles that may carry a painted brow

    def paint(self, raster: Any, position: Any, camera: Any, normals: Any = None, light: Any = None,
              background: Any = None) -> np.ndarray:
        """(H, W, 3) uint8 RGB: Lambert + ambient under a light above the camera, on a plain background.

        See ``shade`` for the arguments; this rounds its result to 8 bits.
        """
        import torch

        return self.shade(raster, position, camera, normals, light, background).clamp(0, 255).round().to(torch.uint8).numpy()

    def shade(self, raster: Any, position: Any, camera: Any = None, normals: Any = None, light: Any = None,
              background: Any = None) -> Any:
        """(H, W, 3) float RGB in 0..255 (not clamped), in the dtype of ``position``.

        raster: the head's raster; position (H, W, 3): per-pixel REST positions
        of the surface (the model's template frame; eyes and brows are painted
        there, so they follow the surface however it is posed); camera: its
        rotation turns rest normals into the camera frame (unused when
        ``normals`` is given); normals (H, W, 3): per-pixel normals already in
        the camera's (OpenCV) frame, e.g. of a posed head; light (3,): direction
        towards the light in the camera frame (default: above the camera);
        background: (H, W, 3) or (3,) RGB behind the head (default: plain grey).
        """
        import torch

        from ..render.raster import interpolate

        dtype = position.dtype
        mask = raster.mask
        tri = raster.face_index.clamp_min(0)
        albedo = interpolate(self.albedo.to(dtype), self.faces, raster)
        palette = torch.tensor([PUPIL_RGB, IRIS_RGB, SCLERA_RGB], dtype=albedo.dtype)
        for eye_tris, centre, radius in self.eyes:
            on_eye = mask & eye_tris[tri]
            direction = torch.nn.functional.normalize(position[on_eye] - torch.as_tensor(centre, dtype=dtype), dim=-1)
            # distance from the gaze axis (+z at rest) on the front half of the eyeball
            off_axis_m = torch.where(direction[:, 2] > 0, radius * torch.sqrt((1 - direction[:, 2] ** 2).clamp_min(0)),
                                     torch.full_like(direction[:, 2], float("inf")))
            albedo[on_eye] = palette[(off_axis_m >= PUPIL_RADIUS_M).long() + (off_axis_m >= IRIS_RADIUS_M).long()]
            albedo[mask & self.skin[tri] & _brow_band(position, centre, radius)] = torch.tensor(BROW_RGB, dtype=albedo.dtype)

        if normals is None:
            rotation = torch.as_tensor(camera.rotation)
            normal = torch.nn.functional.normalize(interpolate(self.normals, self.faces, raster) @ rotation.T, dim=-1)
        else:
            normal = torch.nn.functional.normalize(torch.as_tensor(normals, dtype=dtype), dim=-1)
        if light is None:
            light = torch.nn.functional.normalize(torch.tensor([0.0, -0.4, -1.0], dtype=normal.dtype), dim=0)  # camera frame
        else:
            light = torch.nn.functional.normalize(torch.as_tensor(light, dtype=normal.dtype), dim=0)
        shade = AMBIENT + (1 - AMBIENT) * (normal @ light).clamp_min(0)
        behind = torch.as_tensor(BACKGROUND_RGB if background is None else background, dtype=albedo.dtype)
        return torch.where(mask[..., None], albedo * shade[..., None], behind)




def view_raster(painter: FacePainter, verts: Any, faces: Any, yaw: float, pitch: float, size: int) -> tuple[Any, Any]:
    """Raster and camera of the head seen from (yaw, pitch) degrees by the painter's orbit camera, ``size`` pixels square."""
    from ..render.camera import project
    from ..render.raster import rasterize

    camera = _orbit_camera(painter.target, painter.distance, yaw, pitch, size)
    return rasterize(project(verts, camera), faces, size, size), camera


def render_views(painter: FacePainter, verts: Any, faces: Any, views: Any, image_size: int, progress: Any,
                 message: str) -> list[np.ndarray]:
    """(image_size, image_size, 3) uint8 renders per (yaw, pitch) view, supersampled; progress to 0.8."""
    from ..render.raster import interpolate

    size = image_size * SUPERSAMPLING
    images = []
    for k, (yaw, pitch) in enumerate(views):
        raster, camera = view_raster(painter, verts, faces, yaw, pitch, size)
        images.append(_downsample(painter.paint(raster, interpolate(verts, faces, raster), camera), SUPERSAMPLING))
        if progress is not None:
            progress.update(0.8 * (k + 1) / len(views), message.format(done=k + 1, total=len(views)))
    return images


def _brow_band(position: Any, eye_centre: np.ndarray, eye_radius: float) -> Any:
    """(H, W) bool: an arched band above the eye, in front of the eyeball centre (the painted eyebrow)."""
    lateral = (position[..., 0] - float(eye_centre[0])) * float(np.sign(eye_centre[0])) / eye_radius
    height = (position[..., 1] - float(eye_centre[1])) / eye_radius
    centre_line = 1.40 - 0.10 * (lateral - 0.4) ** 2                  # arched, highest above the iris' outer half
    thickness = 0.55 - 0.08 * (lateral + 1.4)                          # a full head medially, a thin tail
    return ((lateral > -1.4) & (lateral < 1.8) & ((height - centre_line).abs() < thickness / 2)
            & (position[..., 2] > float(eye_centre[2])))


def _region_union(model: HeadModel, names: tuple[str, ...]) -> np.ndarray:
    """(V,) bool: vertices in any of the named regions the model has."""
    mask = np.zeros(model.num_vertices, bool)
    for name in names:
        if name in model.regions:
            mask |= model.regions[name]
    return mask


def _vertex_normals(template: np.ndarray, faces: np.ndarray) -> np.ndarray:
    corners = template[faces]
    area_normal = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    normals = np.zeros_like(template)
    for k in range(3):
        np.add.at(normals, faces[:, k], area_normal)
    return normals / np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-12)


def _orbit_camera(target: np.ndarray, distance: float, yaw_deg: float, pitch_deg: float, size: int) -> Any:
    from ..render.camera import PinholeCamera

    yaw, pitch = np.radians(yaw_deg), np.radians(pitch_deg)
    offset = distance * np.array([np.sin(yaw) * np.cos(pitch), np.sin(pitch), np.cos(yaw) * np.cos(pitch)])
    return PinholeCamera.look_at(target + offset, target, fov_y_deg=FIELD_OF_VIEW_DEG, width=size, height=size)


def _downsample(image: np.ndarray, factor: int) -> np.ndarray:
    height, width = image.shape[0] // factor, image.shape[1] // factor
    return image.reshape(height, factor, width, factor, 3).mean((1, 3)).round().astype(np.uint8)


# -- detection ------------------------------------------------------------------------------------

def detect_faces(images: list[np.ndarray]) -> list[tuple[np.ndarray | None, np.ndarray | None]]:
    """Mediapipe FaceMesh on each (H, W, 3) uint8 RGB image and on its mirror image: (478, 2) pixels or None each.

    Mediapipe's C++ logging writes to file descriptor 2 from its own threads,
    so descriptor 2 points at /dev/null from creating the detector until it is
    closed; nothing else runs meanwhile.
    """
    found = []
    with native_stderr_captured():  # mediapipe logs straight to fd 2
        try:
            import mediapipe as mp
        except ImportError:
            raise HeadModelError(
                "placing landmarks on a head model needs mediapipe 0.10.21; install it with "
                "`pip install --no-deps mediapipe==0.10.21 'protobuf<5' attrs matplotlib`"
            ) from None

        with mp.solutions.face_mesh.FaceMesh(static_image_mode=True, refine_landmarks=True, max_num_faces=1) as mesh:
            for image in images:
                assert image.ndim == 3 and image.shape[2] == 3 and image.dtype == np.uint8, "images must be (H, W, 3) uint8"
                mirrored = np.ascontiguousarray(image[:, ::-1])
                found.append((_landmark_pixels(mesh.process(image), image.shape), _landmark_pixels(mesh.process(mirrored), image.shape)))
    return found


def _landmark_pixels(result: Any, shape: tuple[int, ...]) -> np.ndarray | None:
    if not result.multi_face_landmarks:
        return None
    landmarks = result.multi_face_landmarks[0].landmark
    assert len(landmarks) == NUM_LANDMARKS, f"mediapipe returned {len(landmarks)} landmarks, expected {NUM_LANDMARKS}"
    return np.array([(p.x * shape[1], p.y * shape[0]) for p in landmarks], np.float64)


# -- from pixels to the surface -------------------------------------------------------------------

def back_project(landmarks_px: np.ndarray, raster: Any, verts: Any, faces: Any) -> tuple[np.ndarray, np.ndarray]:
    """(L, 2) pixels -> (L, 3) surface points under them and (L,) whether a triangle was there."""
    import torch

    height, width = raster.face_index.shape
    col = np.floor(landmarks_px[:, 0]).astype(np.int64)
    row = np.floor(landmarks_px[:, 1]).astype(np.int64)
    inside = (col >= 0) & (col < width) & (row >= 0) & (row < height)
    col, row = np.clip(col, 0, width - 1), np.clip(row, 0, height - 1)
    tri = raster.face_index[row, col]
    hit = torch.as_tensor(inside) & (tri >= 0)
    corners = verts[faces[tri.clamp_min(0)]]                                  # (L, 3, 3)
    points = torch.einsum("lk,lkc->lc", raster.barycentrics[row, col].to(verts.dtype), corners)
    return points.numpy(), hit.numpy()


def geometric_median(points: np.ndarray, valid: np.ndarray, iterations: int = 64) -> np.ndarray:
    """(L, N, 3) points with (L, N) validity -> (L, 3) geometric medians (Weiszfeld, from the median)."""
    masked = np.where(valid[..., None], points, np.nan)
    estimate = np.nanmedian(masked, axis=1)
    weights_valid = valid.astype(np.float64)
    for _ in range(iterations):
        distance = np.linalg.norm(points - estimate[:, None], axis=2)
        weights = weights_valid / np.maximum(distance, 1e-7)
        estimate = (weights[..., None] * points).sum(1) / weights.sum(1, keepdims=True)
    return estimate


def snap_to_surface(points: np.ndarray, template: np.ndarray, model: HeadModel,
                     candidates: int = 48) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Closest allowed surface point per landmark: (triangle (L,), barycentrics (L, 3), point (L, 3)).

    Iris landmarks may only lie on the eyeballs; every other landmark only on
    triangles touching no eyeball, teeth, tongue or mouth-interior vertex.
    """
    faces = np.asarray(model.faces, np.int64)
    eyes = _region_union(model, EYE_REGIONS)
    eye_tris = np.flatnonzero(eyes[faces].all(1))
    skin_tris = np.flatnonzero(~_region_union(model, EYE_REGIONS + INNER_MOUTH_REGIONS)[faces].any(1))
    is_iris = np.isin(np.arange(len(points)), IRIS_LANDMARKS)
    if not len(eye_tris):
        eye_tris = skin_tris        # a head without eyeballs: the irises go on the closest skin

    tri = np.zeros(len(points), np.int64)
    bary = np.zeros((len(points), 3))
    for subset, allowed in ((is_iris, eye_tris), (~is_iris, skin_tris)):
        corners = template[faces[allowed]]                                      # (T, 3, 3)
        centroid_distance = np.linalg.norm(points[subset, None] - corners.mean(1)[None], axis=2)
        nearest = np.argsort(centroid_distance, axis=1)[:, :candidates]          # (n, K)
        distance, weights = _closest_on_triangles(points[subset], corners[nearest])
        best = distance.argmin(1)
        rows = np.arange(len(best))
        tri[subset] = allowed[nearest[rows, best]]
        bary[subset] = weights[rows, best]
    surface = np.einsum("lk,lkc->lc", bary, template[faces[tri]])
    return tri, bary, surface


def _closest_on_triangles(points: np.ndarray, corners: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """points (N, 3), corners (N, K, 3, 3) -> distance (N, K) and barycentrics (N, K, 3) of the closest points.

    Candidates per triangle: the projection onto its plane when it falls
    inside, and the closest point of each edge; the nearest one wins.
    """
    p = points[:, None, :]
    a, b, c = corners[:, :, 0], corners[:, :, 1], corners[:, :, 2]
    e0, e1, d = b - a, c - a, p - a
    d00, d01, d11 = (e0 * e0).sum(-1), (e0 * e1).sum(-1), (e1 * e1).sum(-1)
    d20, d21 = (d * e0).sum(-1), (d * e1).sum(-1)
    denom = d00 * d11 - d01 * d01
    safe = np.where(np.abs(denom) > 1e-30, denom, 1.0)
    v = (d11 * d20 - d01 * d21) / safe
    w = (d00 * d21 - d01 * d20) / safe
    plane = np.stack([1 - v - w, v, w], -1)
    plane_ok = (np.abs(denom) > 1e-30) & (plane >= 0).all(-1)

    options = [plane]
    for i, j in ((0, 1), (1, 2), (2, 0)):
        start, edge = corners[:, :, i], corners[:, :, j] - corners[:, :, i]
        t = np.clip(((p - start) * edge).sum(-1) / np.maximum((edge * edge).sum(-1), 1e-30), 0, 1)
        weights = np.zeros(t.shape + (3,))
        weights[..., i], weights[..., j] = 1 - t, t
        options.append(weights)
    options = np.stack(options, 2)                                                 # (N, K, 4, 3)
    closest = np.einsum("nkoc,nkcx->nkox", options, corners)
    distance = np.linalg.norm(closest - p[:, :, None], axis=-1)
    distance[..., 0] = np.where(plane_ok, distance[..., 0], np.inf)
    pick = distance.argmin(-1)
    n, k = np.indices(pick.shape)
    return distance[n, k, pick], options[n, k, pick]


# -- symmetry -------------------------------------------------------------------------------------

def _mirror_table(votes: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """(478,) mirror partner of each landmark, -1 where the pairing is not mutual.

    Each vote pairs a render's landmarks with those of its mirror image mapped
    back: landmark i of the mirror image sits where i's partner sits in the
    render. Where landmarks crowd (closed lips, mouth corners) positions alone
    are ambiguous, so mediapipe's symmetric mesh decides among the plausible
    partners: a true pair's mesh neighbours are each other's partners' neighbours.
    """
    from mediapipe.python.solutions.face_mesh_connections import FACEMESH_IRISES, FACEMESH_TESSELATION

    if not votes:
        return np.full(NUM_LANDMARKS, -1, np.int64)
    cost = np.zeros((NUM_LANDMARKS, NUM_LANDMARKS))
    for original, mirrored_back in votes:
        scale = np.ptp(original, axis=0).max()
        cost += np.linalg.norm(mirrored_back[:, None] - original[None], axis=2) / scale
    cost = cost + cost.T                          # a pair is seen from both sides: i's image at j, j's at i
    edges = np.array(sorted(FACEMESH_TESSELATION | FACEMESH_IRISES))
    adjacency = np.zeros((NUM_LANDMARKS, NUM_LANDMARKS))
    adjacency[edges[:, 0], edges[:, 1]] = adjacency[edges[:, 1], edges[:, 0]] = 1
    plausible = cost <= 3 * cost.min(1, keepdims=True)
    tie_break = cost / cost.max()                 # below 1: decides only between equal neighbour counts
    everyone = np.arange(NUM_LANDMARKS)
    table = cost.argmin(1)
    for _ in range(3):
        mutual = table[table] == everyone
        partners = np.zeros((NUM_LANDMARKS, NUM_LANDMARKS))
        partners[everyone[mutual], table[mutual]] = 1
        agreement = adjacency @ partners @ adjacency      # neighbours of i whose partners neighbour j
        table = np.where(plausible, agreement - tie_break, -np.inf).argmax(1)
    return np.where(table[table] == everyone, table, -1)


def _mirror_report(table: np.ndarray, tri: np.ndarray, bary: np.ndarray, template: np.ndarray,
                   faces: np.ndarray, vertex_mirror: np.ndarray) -> dict[str, Any]:
    """Distance (mm) between each landmark and its partner's point carried to the other side by the vertex mirror."""
    paired = np.flatnonzero(table >= 0)
    faces = np.asarray(faces, np.int64)
    here = np.einsum("lk,lkc->lc", bary, template[faces[tri]])
    mirrored = np.einsum("lk,lkc->lc", bary, template[vertex_mirror[faces[tri]]])   # each landmark's twin point
    error_mm = np.linalg.norm(here[paired] - mirrored[table[paired]], axis=1) * 1000
    return {
        "table": table.tolist(),
        "pairs": int((table[paired] != paired).sum() // 2),
        "self_paired": int((table[paired] == paired).sum()),
        "unpaired": int(NUM_LANDMARKS - len(paired)),
        "mean_error_mm": _r(error_mm.mean()) if len(paired) else None,
        "max_error_mm": _r(error_mm.max()) if len(paired) else None,
        "worst_landmark": int(paired[error_mm.argmax()]) if len(paired) else None,
    }


def _r(value: float) -> float:
    return round(float(value), 3)
