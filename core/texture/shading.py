"""Diffuse shading of a head under distant light: order-2 spherical harmonics with self-shadowing.

A distant light is 9 spherical-harmonic (SH) coefficients per colour channel
(``light`` (9, 3)). A surface point's *transfer* vector (9,) says how it turns
that light into irradiance: ``irradiance = transfer @ light``. Without
shadowing the transfer is the clamped cosine lobe around the normal; here it
is integrated over many directions with the head's own occlusion (precomputed
radiance transfer), so that eye sockets, nostrils, the chin's underside and
the ears' folds darken as they do under real light -- the ambient occlusion
the delighting must not mistake for albedo.

Conventions: directions and normals in one frame (the head's model frame for
``head_transfer``); ``sh_basis`` uses the real SH with the usual constants.
This module knows meshes and tensors, not capture folders.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

SH_COUNT = 9
VISIBILITY_DIRECTIONS = 64        # directions the occlusion is sampled in (Fibonacci sphere)
VISIBILITY_RESOLUTION = 128       # depth-map size per direction, pixels across the head (~2.5 mm: occlusion is smooth)


def sh_basis(directions: Any) -> Any:
    """(..., 3) unit vectors -> (..., 9) real SH basis values (bands 0..2)."""
    import torch

    d = torch.as_tensor(directions)
    x, y, z = d[..., 0], d[..., 1], d[..., 2]
    return torch.stack([
        torch.full_like(x, 0.282095),
        0.488603 * y, 0.488603 * z, 0.488603 * x,
        1.092548 * x * y, 1.092548 * y * z, 0.315392 * (3 * z * z - 1), 1.092548 * x * z, 0.546274 * (x * x - y * y),
    ], -1)


def sphere_directions(count: int) -> np.ndarray:
    """(count, 3) nearly uniform unit vectors (Fibonacci spiral), deterministic."""
    k = np.arange(count) + 0.5
    z = 1 - 2 * k / count
    radius = np.sqrt(1 - z * z)
    angle = math.pi * (1 + 5 ** 0.5) * k
    return np.stack([radius * np.cos(angle), radius * np.sin(angle), z], 1)


def visibility(vertices: Any, normals: Any, faces: Any, directions: np.ndarray,
               resolution: int = VISIBILITY_RESOLUTION) -> Any:
    """(V, D) float32: 1 where vertex v sees direction d unoccluded by the mesh, from orthographic depth maps.

    All D depth maps are rasterized in one call, as tiles of one image.
    """
    import torch

    from ..render.raster import rasterize

    verts = torch.as_tensor(vertices, dtype=torch.float64)
    normals = torch.as_tensor(normals, dtype=torch.float64)
    faces = torch.as_tensor(faces).long()
    dirs = torch.as_tensor(directions, dtype=torch.float64)
    D, V = len(dirs), len(verts)
    centre = (verts.max(0).values + verts.min(0).values) / 2
    radius = float((verts - centre).norm(dim=1).max()) * 1.02
    pixel = 2 * radius / resolution
    # an orthonormal image frame (a right, b down) per direction
    helper = torch.where((dirs[:, 2].abs() < 0.9)[:, None], torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64),
                         torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64))
    a = torch.nn.functional.normalize(torch.linalg.cross(helper, dirs, dim=1), dim=1)
    b = torch.linalg.cross(dirs, a, dim=1)
    local = verts - centre
    columns = int(math.ceil(math.sqrt(D)))
    tile_x = (torch.arange(D) % columns).double() * resolution
    tile_y = (torch.arange(D) // columns).double() * resolution
    x = (local @ a.T + radius) / pixel                                                  # (V, D)
    y = (radius - local @ b.T) / pixel
    depth = 2 * radius + 1.0 - local @ dirs.T
    screen = torch.stack([x + tile_x, y + tile_y, depth], -1).transpose(0, 1).reshape(D * V, 3)
    tiled_faces = (faces[None] + (torch.arange(D) * V)[:, None, None]).reshape(-1, 3)
    rows_total = int(math.ceil(D / columns)) * resolution
    depth_map = rasterize(screen, tiled_faces, rows_total, columns * resolution, perspective_correct=False).depth
    col = (x.floor().clamp(0, resolution - 1) + tile_x).long()
    row = (y.floor().clamp(0, resolution - 1) + tile_y).long()
    cosine = (normals @ dirs.T).clamp(-1, 1)
    sine = (1 - cosine ** 2).clamp_min(0).sqrt()
    slack = 0.003 + 2 * pixel * sine / cosine.abs().clamp_min(0.1)              # depth varies across a pixel on slanted surface
    return (depth <= depth_map[row, col].double() + slack).float()


def occluded_cosine(normals: Any, visible: Any, directions: np.ndarray) -> Any:
    """(V, D) each vertex's clamped cosine to each direction, zero where occluded, times the direction's solid angle."""
    import torch

    dirs = torch.as_tensor(directions, dtype=torch.float32)
    cosine = (torch.as_tensor(normals, dtype=torch.float32) @ dirs.T).clamp_min(0)
    return cosine * torch.as_tensor(visible, dtype=torch.float32) * (4 * math.pi / len(dirs))


def transfer(weights: Any, directions: np.ndarray, rotation: Any = None) -> Any:
    """(V, 9) transfer vectors: irradiance = transfer @ light (light as SH in the frame ``rotation`` maps to).

    ``weights`` (V, D) from ``occluded_cosine`` and ``directions`` (D, 3) in the
    mesh's frame. ``rotation`` (3, 3): mesh frame -> light frame (e.g. a frame's
    head rotation, for light fixed to the camera); None: light in the mesh frame.
    """
    import torch

    dirs = torch.as_tensor(directions, dtype=torch.float32)
    rotated = dirs if rotation is None else dirs @ torch.as_tensor(rotation, dtype=torch.float32).T
    return weights @ sh_basis(rotated)


def fit_light(transfer_t: Any, radiance: Any, weight: Any, iterations: int = 4, ridge: float = 1e-4) -> Any:
    """(9, C) light minimizing sum weight * (transfer @ light - radiance)^2, reweighted against outliers (IRLS).

    transfer_t (M, 9), radiance (M, C), weight (M,). The residual scale for the
    robust (Cauchy) reweighting is the median absolute residual.
    """
    import torch

    A = torch.as_tensor(transfer_t, dtype=torch.float64)
    Y = torch.as_tensor(radiance, dtype=torch.float64)
    w0 = torch.as_tensor(weight, dtype=torch.float64)
    w = w0.clone()
    light = None
    for _ in range(iterations):
        Aw = A * w[:, None]
        normal = A.T @ Aw + ridge * float(w.sum()) * torch.eye(A.shape[1], dtype=torch.float64)
        light = torch.linalg.solve(normal, Aw.T @ Y)
        residual = (A @ light - Y).norm(dim=1)
        scale = float(residual[w0 > 0].median()) * 2.0 + 1e-6
        w = w0 / (1 + (residual / scale) ** 2)
    return light.float()
