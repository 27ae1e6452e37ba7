"""Smooth (area-weighted) vertex normals, as renderers and texture samplers shade with them."""

from __future__ import annotations

from typing import Any


def vertex_normals(vertices: Any, faces: Any) -> Any:
    """(B, V, 3) or (V, 3) area-weighted unit vertex normals (torch)."""
    import torch

    verts = torch.as_tensor(vertices)
    single = verts.ndim == 2
    verts = verts[None] if single else verts
    faces = torch.as_tensor(faces).long()
    corners = verts[:, faces]                                                    # (B, F, 3, 3)
    area_normal = torch.linalg.cross(corners[:, :, 1] - corners[:, :, 0], corners[:, :, 2] - corners[:, :, 0], dim=-1)
    normals = torch.zeros_like(verts)
    for k in range(3):
        normals.index_add_(1, faces[:, k], area_normal)
    normals = torch.nn.functional.normalize(normals, dim=-1)
    return normals[0] if single else normals
