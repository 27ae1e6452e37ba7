"""Differentiable face renders of UV albedos for the FaceID and perceptual losses: fixed lookup grids + grid_sample.

The mean open head is rasterized once per view (frontal and +-30 degrees,
``identity.VIEW_YAWS_DEG``, under the identity metric's studio light); each
pixel of a 150x150 face chip -- framed as dlib frames its chips
(``get_face_chip_details`` on its own 68 landmarks of that render, padding
0.25) -- gets the UV coordinate, the shading and the coverage of the render
pixel it comes from. Rendering a batch of albedos is then one
``grid_sample`` per view, so gradients reach every texel the face shows.

This module builds and applies those grids; it reads and writes no files.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F

from ..color import linear_to_srgb_torch, srgb_to_linear_torch
from .networks import assert_shape

CHIP_PX = 150           # dlib's face chip size
CHIP_PADDING = 0.25     # dlib's default padding around the landmarks
BACKGROUND_LINEAR = 0.05


@dataclass
class FaceRenderer:
    grids: torch.Tensor     # (V, 150, 150, 2) grid_sample coordinates into the UV texture (align_corners=False)
    shading: torch.Tensor   # (V, 1, 150, 150) linear irradiance of the studio light on the mean head
    mask: torch.Tensor      # (V, 1, 150, 150) 1 on the head, 0 on background

    @property
    def views(self) -> int:
        return int(self.grids.shape[0])

    def to(self, device: str | torch.device) -> "FaceRenderer":
        return FaceRenderer(self.grids.to(device), self.shading.to(device), self.mask.to(device))

    def render(self, albedo: torch.Tensor) -> torch.Tensor:
        """(N, 3, R, R) sRGB albedo in -1..1 -> (N * V, 3, 150, 150) sRGB 0..1 face chips (view-major per sample)."""
        assert_shape(albedo, (None, 3, None, None), "albedo")
        n, v = albedo.shape[0], self.views
        linear = srgb_to_linear_torch(((albedo + 1) / 2).clamp(0, 1))
        expanded = linear[:, None].expand(-1, v, -1, -1, -1).reshape(n * v, *linear.shape[1:])
        grids = self.grids[None].expand(n, -1, -1, -1, -1).reshape(n * v, *self.grids.shape[1:])
        sampled = F.grid_sample(expanded, grids, mode="bilinear", padding_mode="border", align_corners=False)
        shading = self.shading.repeat(n, 1, 1, 1)
        mask = self.mask.repeat(n, 1, 1, 1)
        image = sampled * shading * mask + BACKGROUND_LINEAR * (1 - mask)
        return linear_to_srgb_torch(image.clamp(0, 1))


@lru_cache(maxsize=1)
def face_renderer() -> FaceRenderer:
    """The renderer of the open head's mean face (built once per process; about a second)."""
    import cv2
    import dlib

    from ..color import srgb_to_linear
    from ..eval import identity
    from ..head.open_head import get_open_head
    from ..render.camera import camera_for, project
    from ..render.normals import vertex_normals
    from ..render.raster import interpolate, rasterize
    from ..render.uv_lookup import texcoords, uv_to_grid
    from ..synth.head_clip import posed_vertices
    from ..synth.textured_capture import smooth_albedo

    model = get_open_head()
    views = identity.studio_views(model, np.zeros(model.num_shape, np.float32))
    renders = identity.render_views(model, views, srgb_to_linear(smooth_albedo(model, 512)))
    boxes = identity.face_boxes(model, views)
    predictor, _ = identity.dlib_models()
    faces = torch.as_tensor(np.asarray(model.faces, np.int64))
    face_uv = torch.as_tensor(np.asarray(model.face_uv, np.int64))
    uv = torch.as_tensor(np.asarray(model.uv, np.float32))
    grids, shadings, masks = [], [], []
    for i, (render, box) in enumerate(zip(renders, boxes)):
        landmarks = predictor(np.ascontiguousarray(render), dlib.rectangle(*(int(v) for v in box)))
        chip_to_image = _chip_to_image(dlib.get_face_chip_details(landmarks, CHIP_PX, CHIP_PADDING))
        with torch.no_grad():
            verts = posed_vertices(model, views, i)
            camera = camera_for(views, i)
            raster = rasterize(project(verts, camera), faces, camera.height, camera.width)
            normals = F.normalize(interpolate(vertex_normals(verts, faces), faces, raster), dim=-1)
        mask = raster.mask
        texcoord = torch.zeros(*mask.shape, 2)
        texcoord[mask] = texcoords(raster, uv, face_uv)
        shading = torch.zeros(mask.shape)
        shading[mask] = identity.STUDIO_LIGHT.shading(normals[mask]).mean(-1).float()
        cols, rows = np.meshgrid(np.arange(CHIP_PX, dtype=np.float32), np.arange(CHIP_PX, dtype=np.float32))
        points = np.stack([cols, rows, np.ones_like(cols)], -1) @ chip_to_image.T            # (150, 150, 2) image px
        map_x, map_y = points[..., 0].astype(np.float32), points[..., 1].astype(np.float32)
        sample = lambda image, interp: cv2.remap(np.ascontiguousarray(image, np.float32), map_x, map_y, interp,  # noqa: E731
                                                 borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        chip_uv = sample(texcoord.numpy(), cv2.INTER_NEAREST)
        chip_mask = sample(mask.numpy().astype(np.float32), cv2.INTER_LINEAR) * (chip_uv.sum(-1) > 0)
        grids.append(uv_to_grid(chip_uv))
        shadings.append(sample(shading.numpy(), cv2.INTER_LINEAR)[None])
        masks.append(chip_mask[None])
    as_tensor = lambda arrays: torch.as_tensor(np.stack(arrays), dtype=torch.float32)  # noqa: E731
    return FaceRenderer(as_tensor(grids), as_tensor(shadings), as_tensor(masks))


def _chip_to_image(details) -> np.ndarray:
    """(2, 3) affine from chip pixel (col, row, 1) to image pixel, as dlib's extract_image_chip maps a chip."""
    rect, angle = details.rect, details.angle
    centre = np.array([rect.center().x, rect.center().y])
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    corners = np.array([[rect.left(), rect.top()], [rect.right(), rect.top()], [rect.right(), rect.bottom()]])
    image_points = (corners - centre) @ rotation.T + centre
    size = CHIP_PX - 1
    chip_points = np.array([[0, 0, 1], [size, 0, 1], [size, size, 1]], np.float64)
    return np.linalg.solve(chip_points, image_points).T
