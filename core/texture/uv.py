"""The head model's UV space as texels: which triangle and barycentrics each texel has, its region, its mirror.

Everything that works on textures of a head (unwrap, delighting, completion,
synthetic albedos) starts from :class:`TexelGeometry`: the model's UV layout
rasterized once at a texture size, so that any per-vertex quantity (posed
positions, normals, light transfer) becomes a per-texel one with a gather and
a weighted sum, with no loop over triangles or texels.

Image convention: row 0 is the top of the texture (v = 1), as PNG files and
Blender images (after Blender's bottom-up flip) expect. This module knows
head models and tensors; it reads and writes no files.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..head.model import HeadModel

SKIN_REGIONS = ("face", "scalp", "ears", "neck", "lips")            # texels of skin: textured from the frames
NON_SKIN_REGIONS = ("eye_left", "eye_right", "mouth_interior", "teeth", "tongue")


@dataclass
class TexelGeometry:
    """The covered texels of a ``size`` x ``size`` texture of ``model`` (M of them), flat and row-major."""

    size: int
    texels: Any             # (M,) long: flat index row * size + col of each covered texel
    triangle: Any           # (M,) long: the model triangle under the texel
    barycentrics: Any       # (M, 3) float32: weights of the triangle's vertices at the texel centre
    corners: Any            # (M, 3) long: the triangle's vertex indices (model.faces[triangle])
    regions: dict[str, Any]  # region name -> (M,) bool (the region most of the triangle's corners belong to)
    skin: Any               # (M,) bool: texels in SKIN_REGIONS (or not in any non-skin region)
    mirror: Any             # (M,) long: position (in 0..M-1) of each texel's mirror texel, -1 if it is not covered
    skin_triangles: Any     # (F,) bool: model triangles whose texels are skin

    @property
    def count(self) -> int:
        return int(self.texels.shape[0])

    def interpolate(self, per_vertex: Any, rows: Any = None) -> Any:
        """(V, C) per-vertex values -> (M, C) per texel (or (len(rows), C) for the texels ``rows``)."""
        import torch

        values = torch.as_tensor(per_vertex)
        corners, bary = (self.corners, self.barycentrics) if rows is None else (self.corners[rows], self.barycentrics[rows])
        return interpolate_corners(values, corners, bary)

    def image(self, per_texel: Any, fill: float = 0.0) -> Any:
        """(M, C) or (M,) per-texel values -> (size, size, C) / (size, size) image, ``fill`` elsewhere."""
        import torch

        values = torch.as_tensor(per_texel)
        out = torch.full((self.size * self.size,) + tuple(values.shape[1:]), fill, dtype=values.dtype)
        out[self.texels] = values
        return out.reshape((self.size, self.size) + tuple(values.shape[1:]))

    def gather(self, image: Any) -> Any:
        """(size, size, ...) image -> (M, ...) values at the covered texels."""
        import torch

        flat = torch.as_tensor(image).reshape((self.size * self.size,) + tuple(image.shape[2:]))
        return flat[self.texels]

    def in_islands(self, model: HeadModel, prefix: str) -> Any:
        """(M,) bool: texels inside the UV boxes of the model's islands whose name starts with ``prefix``."""
        import torch

        out = torch.zeros(self.count, dtype=torch.bool)
        u = ((self.texels % self.size).float() + 0.5) / self.size
        v = 1.0 - ((self.texels // self.size).float() + 0.5) / self.size
        for name, island in model.metadata.get("uv_islands", {}).items():
            if name.startswith(prefix):
                u0, v0, u1, v1 = island["box"]
                out |= (u >= u0) & (u <= u1) & (v >= v0) & (v <= v1)
        return out

    def face_surface(self, model: HeadModel, rest_normals: Any) -> Any:
        """(M,) bool: the face as coverage is measured on it -- the face region without its underside (normal
        more than 30 degrees below horizontal: under the chin) and without the eye sockets behind the eyeballs."""
        face = self.regions.get("face", self.skin)
        downward = self.interpolate(rest_normals)[:, 1] < -0.5
        return face & ~downward & ~self.in_islands(model, "eye_cavity")

    def sample_image(self, image: np.ndarray, rows: Any = None) -> Any:
        """(M, C): an (S, S, C) texture of any resolution S sampled bilinearly at these texels' centres (or
        (len(rows), C) at the texels ``rows``)."""
        import torch

        from ..image_io import sample_points

        scale = image.shape[0] / self.size
        texels = self.texels if rows is None else self.texels[rows]
        row, col = (texels // self.size).float(), (texels % self.size).float()
        return torch.as_tensor(sample_points(image, ((col + 0.5) * scale - 0.5).numpy(), ((row + 0.5) * scale - 0.5).numpy()))

    def mask(self) -> Any:
        """(size, size) bool: covered texels."""
        import torch

        out = torch.zeros(self.size * self.size, dtype=torch.bool)
        out[self.texels] = True
        return out.reshape(self.size, self.size)


def interpolate_corners(per_vertex: Any, corners: Any, barycentrics: Any) -> Any:
    """(V, C) per-vertex values -> (n, C) at points given by their triangle's (n, 3) corners and barycentrics."""
    import torch

    values = torch.as_tensor(per_vertex)
    # one fused gather-and-weigh (a bag of three corners per point): several times faster than a gather per corner
    return torch.nn.functional.embedding_bag(corners, values, per_sample_weights=barycentrics.to(values.dtype), mode="sum")


def uv_islands(model: HeadModel) -> np.ndarray:
    """(F,) int64: the UV island of each triangle (triangles sharing a UV vertex are on one island), numbered by
    their lowest triangle index."""
    face_uv = np.asarray(model.face_uv, np.int64)
    label = np.arange(len(face_uv))
    while True:   # label propagation through shared UV vertices: a few dozen rounds for a head's islands
        vertex_label = np.full(len(model.uv), len(face_uv))
        np.minimum.at(vertex_label, face_uv.reshape(-1), np.repeat(label, 3))
        updated = vertex_label[face_uv].min(1)
        if np.array_equal(updated, label):
            return label
        label = updated


_CACHE: dict[tuple[Any, ...], TexelGeometry] = {}


def texel_geometry(model: HeadModel, size: int) -> TexelGeometry:
    """The model's UV layout rasterized at ``size`` (cached per model and size for the process)."""
    key = (id(model), model.metadata.get("fingerprint"), len(model.faces), size)
    if key not in _CACHE:
        if len(_CACHE) > 4:
            _CACHE.clear()
        _CACHE[key] = _build(model, size)
    return _CACHE[key]


def _build(model: HeadModel, size: int) -> TexelGeometry:
    import torch

    from ..render.raster import rasterize

    uv = torch.as_tensor(np.asarray(model.uv, np.float64))
    points = torch.stack([uv[:, 0] * size, (1.0 - uv[:, 1]) * size, torch.ones(len(uv), dtype=torch.float64)], 1)
    raster = rasterize(points, torch.as_tensor(np.asarray(model.face_uv, np.int64)), size, size, perspective_correct=False)
    flat_face = raster.face_index.reshape(-1)
    texels = torch.nonzero(flat_face >= 0).squeeze(1)
    triangle = flat_face[texels]
    barycentrics = raster.barycentrics.reshape(-1, 3)[texels].float()
    corners = torch.as_tensor(np.asarray(model.faces, np.int64))[triangle]

    triangle_regions = _triangle_regions(model)
    regions = {name: inside[triangle] for name, inside in triangle_regions.items()}
    skin = _skin_of(triangle_regions, len(model.faces))

    mirror = torch.full((len(texels),), -1, dtype=torch.long)
    if model.uv_symmetric:
        position = torch.full((size * size,), -1, dtype=torch.long)
        position[texels] = torch.arange(len(texels))
        mirrored = torch.as_tensor(model.texel_mirror_map(size).reshape(-1))[texels]
        mirror = position[mirrored]
    return TexelGeometry(size, texels, triangle, barycentrics, corners, regions, skin[triangle], mirror, skin)


def _triangle_regions(model: HeadModel) -> dict[str, Any]:
    """Region name -> (F,) bool: the triangles most of whose corners are in the region."""
    import torch

    faces = torch.as_tensor(np.asarray(model.faces, np.int64))
    return {name: torch.as_tensor(np.asarray(vertex_mask, bool))[faces].sum(1) >= 2
            for name, vertex_mask in model.regions.items()}


def skin_triangles(model: HeadModel) -> Any:
    """(F,) bool: triangles of skin (textured from the frames): in none of the ``NON_SKIN_REGIONS``."""
    return _skin_of(_triangle_regions(model), len(model.faces))


def _skin_of(triangle_regions: dict[str, Any], count: int) -> Any:
    import torch

    non_skin = torch.zeros(count, dtype=torch.bool)
    for name in NON_SKIN_REGIONS:
        if name in triangle_regions:
            non_skin |= triangle_regions[name]
    return ~non_skin

