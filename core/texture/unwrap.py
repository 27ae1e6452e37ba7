"""Stage ``unwrap``: the selected frames sampled into the head's UV space and fused into one (still lit) texture.

For every frame of ``fit.npz`` each texel of the fitted, posed head is
projected into the frame and its colour sampled (bilinear, in linear light)
with a weight: visibility (a depth test against the head's own depth map),
viewing angle, distance to the head's silhouette in the image (where a small
fit error lands on background), a band around the eye and mouth openings
(eyelids and lips move more than the fit follows; less still while blinking)
and the frame's sharpness. Two passes:

1. at ``reference_size`` texels: every sample is kept, each frame's exposure
   and white balance (per-channel gains; phones auto-expose) is solved
   against the per-texel weighted median across frames, and that median
   becomes the robust reference; the head's light transfer (self-shadowed
   spherical harmonics, ``core/texture/shading.py``) is averaged per texel
   with the same weights, for delighting;
2. at ``work_size`` texels (1024): the gain-corrected samples are fused by
   a weighted mean whose weights also fall for samples far from the
   reference (specular highlights, a blink, a misfit frame), as running sums.
   The sums reach ``texture_size`` by bilinear interpolation within each UV
   island, except where a frame resolves finer than a work texel (on the
   triangles some frame shows at more than ``DETAIL_PIXELS`` pixels per work
   texel) and on island slivers too thin for the work grid: those texels are
   fused at ``texture_size`` itself. Detail is sampled at full size only
   where a frame has it.

How it stays fast: each frame is decoded once and cropped to the head; its
depth and outline maps come from one depth-only rasterization of the head's
box at ``VIEW_HEAD_PX``, shared by both passes; texels are visited in UV
tiles, so a frame samples only the tiles holding a triangle that faces it;
the weighted medians sort only the samples each texel has; frames run on a
pool of one thread per torch thread (each op single-threaded: frames in
parallel rather than every small op split across cores), and their sums are
added in frame order, so the result does not depend on the thread count or
timing. ``bench/unwrap_speed.py`` times the passes.

Outputs (``textures/``): ``phone.png`` (16-bit sRGB, black where never seen),
``coverage.png`` (16-bit, observation weight 0..1, 0 = never seen),
``normal.exr`` (the fitted neutral head's normals in the model frame, per
texel, for shading estimation -- not a tangent-space normal map) and
``shading.npz`` (per reference texel: light transfer for light fixed to the
camera and for light fixed to the head, the fused reference colour, the
frame gains). ``report.json`` gets ``texture.coverage_face`` and
``texture.coverage_head``.
"""

from __future__ import annotations

import json
from collections import deque
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import numpy as np

from ..atomic import atomic_write_npz, read_npz
from ..capture import Capture
from ..color import SRGB8_TO_LINEAR, linear_to_srgb
from ..errors import CaptureError
from ..fit import FIT_NPZ, load_fit, load_fitted_model
from ..frames import FRAMES_JSON, read_frame
from ..head.model import HeadModel
from ..image_io import point_maps, push_pull_fill, sample_at, sample_points, write_exr, write_png16
from ..render.normals import vertex_normals
from ..stages import Stage, StageContext
from .uv import TexelGeometry, interpolate_corners, skin_triangles, texel_geometry, uv_islands

PHONE_PNG = "textures/phone.png"
COVERAGE_PNG = "textures/coverage.png"
NORMAL_EXR = "textures/normal.exr"
SHADING_NPZ = "textures/shading.npz"
VIEW_HEAD_PX = 320            # the per-frame depth and outline maps are made with the head this many pixels tall
OPEN_EDGE_RINGS = 3           # depth maps leave out triangles turned away from the camera but for those this many rings
                              # of triangles from an open edge of the mesh (seen into, a face turned away can be nearest)
VIEW_MARGIN_PX = 2            # frames and their depth maps are cropped to the head with this many pixels around it
OBSERVED = 0.1                # coverage above this: the texel counts as observed
COVERAGE_SCALE = 0.5          # coverage = 1 - exp(-summed weight / this): one good view gives ~0.86
TILE_TEXELS = 16              # texels across a UV tile: a frame samples only the tiles holding a triangle facing it
DETAIL_PIXELS = 1.0           # a triangle some frame shows at more pixels per work texel than this is fused at full size
EDGE_COVERAGE = 0.2           # ... and so is a reference texel whose coverage differs by more from a neighbour's (a sharp
                              # visibility edge, e.g. behind the ears: the work grid would blur it by a texel), or
                              # that borders unseen skin
KEPT_FRAME_BYTES = 2e9        # 8-bit frame crops kept between the passes up to this total (beyond it: decoded again)


@dataclass(frozen=True)
class UnwrapParams:
    texture_size: int = 2048          # texels across the fused texture
    reference_size: int = 512         # texels across the robust reference, exposure and shading statistics
    work_size: int = 1024             # texels across the fusion in texture space; full size only where frames resolve more
    min_cosine: float = 0.10          # surface seen more edge-on than this (cosine to the view ray): not sampled
    full_cosine: float = 0.60         # ... at this cosine or more: full weight
    silhouette_band: float = 0.12     # weight ramps up over this fraction of the eye distance from the head's outline
    opening_band_mm: float = 6.0      # weight ramps up over this distance from the eye and mouth openings
    outlier_scale: float = 0.12       # relative colour difference to the reference at which a sample counts half


class FrameSampler:
    """Per frame: the posed head's screen geometry, and samples plus weights for any set of texels."""

    def __init__(self, model: HeadModel, fit: dict[str, np.ndarray], params: UnwrapParams) -> None:
        import torch

        self.model, self.params = model, params
        count = len(fit["pose"])
        shape = torch.as_tensor(np.asarray(fit["shape"], np.float32)[None, : model.num_shape])
        with torch.no_grad():
            world = model.vertices(shape, torch.as_tensor(np.asarray(fit["expression"], np.float32)[:, : model.num_expression]),
                                   torch.as_tensor(np.asarray(fit["pose"], np.float32)),
                                   torch.as_tensor(np.asarray(fit["translation"], np.float32)))
            rotation = torch.as_tensor(np.asarray(fit["camera_rotation"], np.float32))
            camera = torch.einsum("nij,nvj->nvi", rotation, world) + torch.as_tensor(np.asarray(fit["camera_translation"], np.float32))[:, None]
            normals = torch.einsum("nij,nvj->nvi", rotation, vertex_normals(world, model.faces))
        focal = torch.as_tensor(np.asarray(fit["focal_px"], np.float32)).reshape(count, 1)
        principal = torch.as_tensor(np.asarray(fit["principal_px"], np.float32)).reshape(count, 1, 2)
        depth = camera[..., 2].clamp_min(1e-4)
        self.screen = torch.stack([focal * camera[..., 0] / depth + principal[..., 0],
                                   focal * camera[..., 1] / depth + principal[..., 1], depth], -1)      # (N, V, 3)
        self.cosine = (normals * torch.nn.functional.normalize(-camera, dim=-1)).sum(-1)            # (N, V)
        self.pixel_m = depth / focal                                                                # metres per pixel
        self.iod_px = np.asarray(fit["iod_px"], np.float32) if "iod_px" in fit else np.full(count, 60.0, np.float32)
        self.band = opening_band(model, fit, params.opening_band_mm)                               # (N, V)
        self.faces = torch.as_tensor(np.asarray(model.faces, np.int64))
        # always in the depth maps: eyes, teeth, mouth, and the skin near the mesh's open edges
        self.always_drawn = ~skin_triangles(model) | _near_open_edges(self.faces, OPEN_EDGE_RINGS)

    def vertex_values(self, index: int) -> Any:
        """(V, 6) per vertex of frame ``index``: screen x, y (pixels), depth (m), cosine to the view ray, metres per
        pixel, opening-band weight -- what ``weigh`` needs interpolated at the texels."""
        import torch

        return torch.cat([self.screen[index], self.cosine[index, :, None], self.pixel_m[index, :, None],
                          self.band[index, :, None]], 1)

    def facing_triangles(self, index: int) -> Any:
        """(F,) bool: triangles with a corner facing frame ``index``'s camera (cosine above ``min_cosine``)."""
        return (self.cosine[index] > self.params.min_cosine)[self.faces].any(1)

    def prepare(self, index: int, height: int, width: int) -> dict[str, Any]:
        """The frame's depth map and distance-to-outline map of the posed head, at a reduced scale.

        Both only gate and weight samples, so they are rasterized with the head
        at most ``VIEW_HEAD_PX`` pixels tall (4K frames would cost seconds each),
        on the head's bounding box only (``origin``: the (x, y) pixel of the
        reduced frame at the maps' top-left corner), and without the skin
        triangles turned away from the camera (``OPEN_EDGE_RINGS``): a surface
        seen from outside is nearest where it faces the camera. One depth pass
        per frame serves both passes and every texture size.
        """
        import cv2
        import torch

        from ..render.raster import depth_map

        screen = self.screen[index]
        extent = float(screen[:, 1].max() - screen[:, 1].min())
        scale = min(1.0, VIEW_HEAD_PX / max(extent, 1.0))
        size = (max(1, int(np.ceil(height * scale))), max(1, int(np.ceil(width * scale))))
        (x0, y0), (x1, y1) = _head_box(screen[:, :2] * scale, size)
        shifted = torch.cat([screen[:, :2] * scale - torch.tensor([float(x0), float(y0)]), screen[:, 2:]], 1)
        toward = self.faces[_turned_toward(shifted, self.faces, self.cosine[index]) | self.always_drawn]
        depth = depth_map(shifted, toward, y1 - y0, x1 - x0).numpy().astype(np.float32)
        outline = cv2.distanceTransform(np.isfinite(depth).astype(np.uint8), cv2.DIST_L2, 5) / scale
        return {"depth": depth, "outline": outline.astype(np.float32), "scale": scale, "origin": (x0, y0)}

    def sample(self, index: int, frame_linear: np.ndarray, view: dict[str, Any], geometry: TexelGeometry,
               start: int = 0, stop: int | None = None) -> tuple[Any, Any, Any]:
        """(rows (n,), colours (n, 3), weights (n,)) for the texels of ``geometry`` (those from ``start`` to ``stop``)
        this frame sees."""
        import torch

        # candidate texels: on skin triangles with a corner facing the camera (a per-triangle test, then one gather)
        triangle_ok = self.facing_triangles(index) & geometry.skin_triangles
        rows = torch.nonzero(triangle_ok[geometry.triangle[start:stop]]).squeeze(1) + start
        values = geometry.interpolate(self.vertex_values(index), rows)                             # (n, 6)
        colour, weight = self.weigh(index, values, frame_linear, (0, 0), frame_linear.shape[:2], view)
        keep = torch.nonzero(weight > 0).squeeze(1)
        return rows[keep], colour[keep], weight[keep]

    def weigh(self, index: int, values: Any, frame_linear: np.ndarray, frame_origin: tuple[int, int],
              frame_size: tuple[int, int], view: dict[str, Any]) -> tuple[Any, Any]:
        """Colours (n, 3) and weights (n,) of texels with ``vertex_values`` interpolated to ``values`` (n, 6), weight 0
        where not seen (outside the frame, hidden, or 1e-3 at most). ``frame_linear`` is the frame (height, width
        ``frame_size``), or the crop of it whose top-left pixel is ``frame_origin`` (x, y)."""
        import torch

        p = self.params
        height, width = frame_size
        # as contiguous columns (numpy transposes faster than torch): every op below then runs on contiguous memory
        screen_x, screen_y, depth, cosine, pixel_m, band = torch.as_tensor(np.ascontiguousarray(values.numpy().T))
        # x - 0.5 is the pixel-centre coordinate: inside the frame for 0.5 <= x <= width - 0.5
        inside = (screen_x >= 0.5) & (screen_x <= width - 0.5) & (screen_y >= 0.5) & (screen_y <= height - 0.5)
        colour = sample_points(frame_linear, (screen_x - (0.5 + frame_origin[0])).numpy(),
                               (screen_y - (0.5 + frame_origin[1])).numpy())
        scale = view["scale"]
        view_x0, view_y0 = view.get("origin", (0, 0))
        maps = point_maps((screen_x * scale).sub_(0.5 + view_x0).numpy(), (screen_y * scale).sub_(0.5 + view_y0).numpy())
        nearest_depth = torch.as_tensor(sample_at(view["depth"], maps, nearest=True))
        outline = torch.as_tensor(sample_at(view["outline"], maps))

        cosine = cosine.clamp(0, 1)
        sine = (1 - cosine * cosine).sqrt_()
        slack = (pixel_m * (2.0 / scale)).mul_(sine).div_(cosine.clamp_min(0.1)).add_(0.004)        # metres
        visible = (depth <= nearest_depth.add_(slack)).logical_and_(inside)
        facing_w = cosine.sub_(p.min_cosine).mul_(1.0 / (p.full_cosine - p.min_cosine)).clamp_(0, 1).square_()
        outline_w = outline.mul_(1.0 / max(p.silhouette_band * float(self.iod_px[index]), 1.0)).clamp_(0, 1)
        weight = facing_w.mul_(outline_w).mul_(visible).mul_(band)
        return torch.as_tensor(colour), weight.masked_fill_(weight <= 1e-3, 0.0)


def _turned_toward(screen: Any, faces: Any, cosine: Any) -> Any:
    """(F,) bool: triangles whose screen-space winding is that of the triangles facing the camera (by their corners'
    ``cosine`` (V,) to the view ray): not turned away."""
    a, b, c = (screen[faces[:, k], :2] for k in range(3))
    area = (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (c[:, 0] - a[:, 0]) * (b[:, 1] - a[:, 1])
    facing = cosine[faces].min(1).values > 0.5
    return area * (1.0 if float(area[facing].sum()) >= 0 else -1.0) > 0


def _near_open_edges(faces: Any, rings: int) -> Any:
    """(F,) bool: triangles within ``rings`` rings of neighbours (sharing a vertex) of an edge only one triangle has."""
    import torch

    edges = torch.sort(torch.cat([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]]), dim=1).values
    unique, counts = torch.unique(edges, dim=0, return_counts=True)
    near = torch.zeros(int(faces.max()) + 1, dtype=torch.bool)
    near[unique[counts == 1].reshape(-1)] = True
    for _ in range(rings):
        triangles = near[faces].any(1)
        near[faces[triangles].reshape(-1)] = True
    return near[faces].any(1)


def _head_box(points_px: Any, size: tuple[int, int]) -> tuple[tuple[int, int], tuple[int, int]]:
    """((x0, y0), (x1, y1)): the pixels of an image of ``size`` (height, width) around ``points_px`` (n, 2) with
    ``VIEW_MARGIN_PX`` to spare (every bilinear tap of a point inside the head), at least one pixel."""
    low = (points_px.min(0).values.floor() - VIEW_MARGIN_PX).tolist()
    high = (points_px.max(0).values.ceil() + VIEW_MARGIN_PX + 1).tolist()
    x0, y0 = (int(min(max(value, 0), limit - 1)) for value, limit in zip(low, (size[1], size[0])))
    x1, y1 = (int(min(max(value, start + 1), limit)) for value, start, limit in zip(high, (x0, y0), (size[1], size[0])))
    return (x0, y0), (x1, y1)


def opening_band(model: HeadModel, fit: dict[str, np.ndarray], band_mm: float) -> Any:
    """(N, V) weight of each vertex from its distance to the eye and mouth openings (rest head), less while blinking."""
    import torch

    template = torch.as_tensor(np.asarray(model.template_m, np.float32))
    count = len(fit["pose"])
    out = torch.ones(count, model.num_vertices)
    names = [str(n) for n in fit.get("expression_names", model.expression_names)]
    expression = np.asarray(fit["expression"], np.float32)
    for openings, blink_names in ((("eye_left",), ("eyeBlinkLeft",)), (("eye_right",), ("eyeBlinkRight",)),
                                  (("mouth_interior", "teeth", "tongue"), ("jawOpen",))):
        inside = np.zeros(model.num_vertices, bool)
        for name in openings:
            inside |= np.asarray(model.regions.get(name, np.zeros(model.num_vertices, bool)), bool)
        if not inside.any():
            continue
        distance = torch.cdist(template, template[torch.as_tensor(inside)]).min(1).values * 1000.0      # mm
        ramp = (distance / band_mm).clamp(0.25, 1.0)
        closing = np.zeros(count, np.float32)
        for name in blink_names:
            if name in names:
                closing = np.maximum(closing, expression[:, names.index(name)])
        # while an eye closes (or the jaw opens) the band around it matters more: its weight shrinks further
        strength = torch.as_tensor(np.clip(closing, 0, 1))[:, None]
        out = out * (ramp[None] ** (1 + 3 * strength))
    return out


def frame_files(capture_root: Any, fit: dict[str, np.ndarray]) -> tuple[list[Any], np.ndarray]:
    listing = json.loads((capture_root / FRAMES_JSON).read_text())
    entries = listing["frames"]
    files, sharpness = [], []
    for position in np.asarray(fit["frame"]).astype(int):
        entry = entries[position]
        files.append(capture_root / "frames" / entry["file"])
        sharpness.append(float(entry.get("sharpness", 1.0)))
    sharp = np.asarray(sharpness, np.float64)
    weights = np.clip(0.25 + 0.75 * sharp / max(sharp.max(), 1e-9), 0.25, 1.0)
    return files, weights.astype(np.float32)


def bgr8_to_linear(image_bgr8: np.ndarray) -> np.ndarray:
    return SRGB8_TO_LINEAR[image_bgr8[..., ::-1]]


@dataclass
class _FrameCrop:
    """The part of a frame the head covers (8-bit BGR, as decoded), where it lies, and the frame's size."""
    image_bgr8: np.ndarray
    origin: tuple[int, int]     # (x, y) of the crop's top-left pixel in the frame
    size: tuple[int, int]       # the whole frame's (height, width)

    @classmethod
    def read(cls, path: Any, sampler: FrameSampler, index: int) -> "_FrameCrop":
        image = read_frame(path)
        (x0, y0), (x1, y1) = _head_box(sampler.screen[index][:, :2], image.shape[:2])
        return cls(np.ascontiguousarray(image[y0:y1, x0:x1]), (x0, y0), image.shape[:2])

    def linear(self) -> np.ndarray:
        return bgr8_to_linear(self.image_bgr8)


def weighted_median(values: Any, weights: Any) -> Any:
    """(F, M, C) values and (F, M) weights -> (M, C) weighted median over F (per channel)."""
    import torch

    order = torch.argsort(values, dim=0)
    sorted_values = torch.gather(values, 0, order)
    sorted_weights = torch.gather(weights[..., None].expand_as(values), 0, order)
    cumulative = sorted_weights.cumsum(0)
    half = cumulative[-1:] / 2
    position = (cumulative < half).sum(0, keepdim=True).clamp(max=values.shape[0] - 1)
    return torch.gather(sorted_values, 0, position)[0]


def _seen_weighted_median(values: Any, weights: Any, gains: Any = None, texels: Any = None, pool: Any = None) -> Any:
    """``weighted_median`` over frames of non-negative float32 values laid out texel by texel, (M, F, C) (divided by
    per-frame ``gains`` (F, C) if given), with (M, F) weights, at the texels ``texels`` (all if None), sorting only
    the samples of positive weight: the result is the same (a zero weight never holds the median), and 0 where a
    texel has none.

    Texels go in groups of similar observation counts (rounded up to 8), each group sorted once as packed
    (value, weight) integers, on ``pool``'s threads when given."""
    import torch

    texels = torch.arange(values.shape[0]) if texels is None else texels
    counts = (weights.index_select(0, texels) > 0).sum(1)
    width = (counts + 7) // 8 * 8
    groups = [torch.nonzero(width == k).squeeze(1) for k in torch.unique(width).tolist() if k > 0]
    out = torch.zeros(len(texels), values.shape[2])
    run = pool.map if pool is not None else map
    medians = run(lambda group: _group_median(values, weights, gains, texels[group]), groups)
    for group, median in zip(groups, medians):
        out[group] = median
    return out


def _group_median(values: Any, weights: Any, gains: Any, texels: Any) -> Any:
    """(n, C) weighted medians of the texels ``texels`` over their observations (``_seen_weighted_median``)."""
    import torch

    frames, channels = values.shape[1:]
    weight = weights.index_select(0, texels)                                    # (n, F)
    counts = (weight > 0).sum(1)
    flat = torch.nonzero(weight.reshape(-1) > 0).squeeze(1)                     # observations, texel by texel
    texel, frame = flat // frames, flat % frames
    slot = torch.arange(len(flat)) - torch.repeat_interleave(torch.cumsum(counts, 0) - counts, counts)
    width = int(counts.max())
    value = values.reshape(-1, channels).index_select(0, texels.index_select(0, texel) * frames + frame)
    value = value if gains is None else value / gains.index_select(0, frame)
    # the float32 bits of a non-negative value order like the value: sort (value bits << 32 | weight bits), per
    # channel and texel, padded with +inf of weight 0 (sorted last)
    low_bits = lambda x: x.contiguous().view(torch.int32).long() & 0xFFFFFFFF  # noqa: E731
    value_bits = low_bits(value.clamp_min_(0).add_(0.0)) << 32
    weight_bits = low_bits(weight.reshape(-1).index_select(0, flat))
    keys = torch.full((channels, len(texels) * width), 0x7F800000 << 32, dtype=torch.long)
    place = texel * width + slot
    for c in range(channels):
        keys[c].index_put_((place,), value_bits[:, c] | weight_bits)
    keys = keys.numpy().reshape(channels, len(texels), width)
    keys.sort(axis=-1)
    words = keys.view(np.uint32)                                   # little-endian: (weight bits, value bits) pairs
    cumulative = np.cumsum(words[..., 0::2].view(np.float32), axis=-1)
    position = (cumulative < cumulative[..., -1:] / 2).sum(-1).clip(max=width - 1)
    chosen = np.take_along_axis(words[..., 1::2], position[..., None], -1)[..., 0]
    return torch.as_tensor(np.ascontiguousarray(chosen.view(np.float32).T))


def _lower_medians(values: np.ndarray, segments: np.ndarray) -> np.ndarray:
    """(S, C): per segment of rows of ``values`` (n, C) (``segments`` (S + 1,) row offsets) and channel, the lower
    median of the non-NaN values (NaN where none), as ``torch.nanmedian`` gives it, by selection, not sorting."""
    out = np.full((len(segments) - 1, values.shape[1]), np.nan, np.float32)
    for s, (start, stop) in enumerate(zip(segments[:-1], segments[1:])):
        for c in range(values.shape[1]):
            good = values[start:stop, c]
            good = good[~np.isnan(good)]
            if good.size:
                out[s, c] = np.partition(good, (good.size - 1) // 2)[(good.size - 1) // 2]
    return out


def _solve_gains(samples: Any, weights: Any, part: Any, iterations: int = 3, pool: Any = None) -> tuple[Any, Any]:
    """Per-frame RGB gains (F, 3) and the gain-corrected weighted median (M, 3) of samples (F, M, 3).

    The gains are solved on the texels ``part`` (every fourth texel of the layout is plenty for 3 x F numbers); the
    median uses all.
    """
    import torch

    frames, size, _ = samples.shape
    # the medians take the samples texel by texel (numpy transposes faster than torch)
    by_texel = torch.as_tensor(np.ascontiguousarray(samples.numpy().transpose(1, 0, 2)))
    weights_by_texel = torch.as_tensor(np.ascontiguousarray(weights.numpy().T))
    # the samples the gains are measured on: weight above 0.2, frame by frame
    part_weights = weights.index_select(1, part)
    flat = torch.nonzero(part_weights.reshape(-1) > 0.2).squeeze(1)
    frame, texel = flat // len(part), flat % len(part)
    value = samples.reshape(frames * size, 3).index_select(0, frame * size + part.index_select(0, texel))
    segments = np.searchsorted(frame.numpy(), np.arange(frames + 1))
    frame_weight = part_weights.sum(1, keepdim=True)
    gains = torch.ones(frames, 3)
    for _ in range(iterations):
        reference = _seen_weighted_median(by_texel, weights_by_texel, gains, part, pool).index_select(0, texel)
        good = (reference > 0.01) & (value > 0.005)
        ratio = torch.where(good, torch.log(value.clamp_min(1e-4) / reference.clamp_min(1e-4)), torch.nan)
        estimate = torch.as_tensor(_lower_medians(ratio.numpy(), segments))
        estimate = torch.where(torch.isfinite(estimate), estimate, torch.zeros_like(estimate))
        estimate = estimate - (estimate * frame_weight).sum(0) / frame_weight.sum().clamp_min(1e-9)  # geometric mean 1
        gains = torch.exp(estimate)
    return gains, _seen_weighted_median(by_texel, weights_by_texel, gains, pool=pool)


@dataclass
class _TexelSet:
    """Some texels of a TexelGeometry in UV-tile order, so that a frame samples only the tiles it can see: a frame's
    texels are a few runs of consecutive rows, and its results go back into running sums slice by slice."""
    positions: Any       # (n,) long: each texel's position in its geometry (0..M-1)
    corners: Any         # (n, 3) int32: its triangle's vertices
    barycentrics: Any    # (n, 3) float32
    tile_start: Any      # (T + 1,) long: each tile's first row (and n)
    pair_tile: Any       # (P,) long: (tile, triangle) pairs: the triangle has texels in the tile
    pair_triangle: Any   # (P,) long

    @classmethod
    def of(cls, geometry: TexelGeometry, selected: Any) -> "_TexelSet":
        """The texels where ``selected`` (M,) is set."""
        import torch

        positions = torch.nonzero(selected).squeeze(1)
        texels = geometry.texels[positions]
        tiles_across = -(-geometry.size // TILE_TEXELS)
        tile = (texels // geometry.size // TILE_TEXELS) * tiles_across + (texels % geometry.size) // TILE_TEXELS
        order = torch.argsort(tile, stable=True)
        positions = positions[order]
        counts = torch.unique_consecutive(tile[order], return_counts=True)[1]
        compact_tile = torch.repeat_interleave(torch.arange(len(counts)), counts)
        triangles = len(geometry.skin_triangles)
        pairs = torch.unique(compact_tile * triangles + geometry.triangle[positions])
        return cls(positions, geometry.corners[positions].int(), geometry.barycentrics[positions],
                   torch.cat([torch.zeros(1, dtype=torch.long), torch.cumsum(counts, 0)]),
                   pairs // triangles, pairs % triangles)

    @property
    def count(self) -> int:
        return int(self.positions.shape[0])

    def runs(self, triangle_ok: Any) -> list[tuple[int, int]]:
        """Row ranges [start, stop) of the tiles that hold a triangle where ``triangle_ok`` (F,) is set."""
        import torch

        active = torch.zeros(len(self.tile_start) + 1, dtype=torch.bool)        # a False tile either side
        active[self.pair_tile[triangle_ok[self.pair_triangle]] + 1] = True
        change = torch.nonzero(active[1:] != active[:-1]).squeeze(1)
        return list(zip(self.tile_start[change[0::2]].tolist(), self.tile_start[change[1::2]].tolist()))

    def gather(self, per_texel: Any, runs: list[tuple[int, int]]) -> Any:
        """The rows of ``per_texel`` (n, ...) in this set's order that ``runs`` covers, one after another."""
        import torch

        return torch.cat([per_texel[a:b] for a, b in runs]) if runs else per_texel[:0]

    def interpolate(self, per_vertex: Any, runs: list[tuple[int, int]]) -> Any:
        """(V, C) per-vertex values -> (rows in ``runs``, C)."""
        return interpolate_corners(per_vertex, self.gather(self.corners, runs), self.gather(self.barycentrics, runs))


def _add_runs(target: Any, runs: list[tuple[int, int]], values: Any) -> None:
    """``target[a:b] += `` the matching rows of ``values`` (runs' rows one after another), run by run."""
    offset = 0
    for a, b in runs:
        target[a:b] += values[offset:offset + b - a]
        offset += b - a


def _sample_texels(sampler: FrameSampler, index: int, frame: _FrameCrop, frame_linear: np.ndarray,
                   view: dict[str, Any], texels: _TexelSet) -> tuple[list, Any, Any]:
    """(runs, colours (n, 3), weights (n,)) of frame ``index`` at the texels of ``texels`` in the tiles it faces."""
    runs = texels.runs(sampler.facing_triangles(index))
    values = texels.interpolate(sampler.vertex_values(index), runs)
    colour, weight = sampler.weigh(index, values, frame_linear, frame.origin, frame.size, view)
    return runs, colour, weight


@contextmanager
def _frame_threads() -> Iterator[tuple[Any, int]]:
    """(pool, workers): one thread per torch thread, each running single-threaded torch and OpenCV ops; both
    libraries' thread counts come back afterwards."""
    from concurrent.futures import ThreadPoolExecutor

    import cv2
    import torch

    threads, cv_threads = torch.get_num_threads(), cv2.getNumThreads()
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="unwrap")
    try:
        yield pool, threads
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        torch.set_num_threads(threads)
        cv2.setNumThreads(cv_threads)


def _in_order(pool: Any, function: Callable[[int], Any], count: int, ahead: int) -> Iterator[Any]:
    """``function(i)`` for i in 0..count-1 run on ``pool``, the results yielded in order, at most ``ahead`` waiting."""
    pending: deque = deque()
    for i in range(count):
        pending.append(pool.submit(function, i))
        if len(pending) > ahead:
            yield pending.popleft().result()
    while pending:
        yield pending.popleft().result()


@dataclass
class _FullSizeLayout:
    """The texture_size layout before pass 1's coverage is known: its skin texels, those whose triangle some frame
    resolves finer than the work grid or with no work texel of their island near (``finer``), and their work-size
    neighbours."""
    geometry: TexelGeometry
    skin: Any                  # (S,) long: positions of the skin texels; None where the work size is the texture size
    finer: Any                 # (S,) bool
    neighbours: Any            # (S, 4) int32: work-size neighbours' positions (M_work where there is none)
    weights: Any               # (S, 4) float32: their bilinear weights, 0 for a neighbour that does not count

    @classmethod
    def of(cls, model: HeadModel, sampler: FrameSampler, work: TexelGeometry, size: int) -> "_FullSizeLayout":
        import torch

        high = texel_geometry(model, size)
        if size == work.size:
            return cls(high, None, None, None, None)
        skin = torch.nonzero(high.skin).squeeze(1)
        neighbours, weights = _work_neighbours(model, high, skin, work)
        finer = _detail_triangles(sampler, model, work.size)[high.triangle[skin]] | (weights.sum(1) <= 0)
        return cls(high, skin, finer, neighbours, weights)

    def split(self, low: TexelGeometry, weight_low: Any) -> "_FullSize":
        """The final split: the ``finer`` texels and those near sharp coverage edges of the reference pass
        (``weight_low`` (L,)) are fused at full size, the other skin texels carried over from the work size."""
        import torch

        if self.skin is None:
            return _FullSize(self.geometry, None, None, None, None)
        high = self.geometry
        detail = self.finer | _coverage_edges(low, weight_low, high)[self.skin]
        selected = torch.zeros(high.count, dtype=torch.bool)
        selected[self.skin[detail]] = True
        carried = torch.nonzero(~detail).squeeze(1)
        weights = self.weights[carried]
        return _FullSize(high, _TexelSet.of(high, selected), self.skin[carried], self.neighbours[carried],
                         weights / weights.sum(1, keepdim=True))


@dataclass
class _FullSize:
    """How the work-size sums reach the texture_size layout: carried over by bilinear weights among the work texels
    of the same UV island, or fused at full size (``detail``)."""
    geometry: TexelGeometry
    detail: _TexelSet | None   # the texels fused at full size (None: the work size is the texture size)
    carried: Any               # (U,) long: positions of the texels carried over from the work size
    neighbours: Any            # (U, 4) int32: their work-size neighbours' positions (M_work where there is none)
    weights: Any               # (U, 4) float32: bilinear weights among the neighbours that count, summing to 1

    def sums(self, work_sums: Any, detail_sums: Any) -> Any:
        """(M, 5) sums at texture_size from the (M_work, 5) sums in work geometry order and the detail set's."""
        import torch

        if self.detail is None:
            return work_sums
        out = torch.zeros(self.geometry.count, work_sums.shape[1])
        padded = torch.cat([work_sums, torch.zeros(1, work_sums.shape[1])])
        out[self.carried] = torch.nn.functional.embedding_bag(self.neighbours, padded, per_sample_weights=self.weights,
                                                              mode="sum")
        out[self.detail.positions] = detail_sums
        return out


def _work_neighbours(model: HeadModel, high: TexelGeometry, rows: Any, work: TexelGeometry) -> tuple[Any, Any]:
    """Per texel ``rows`` of ``high``: its four bilinear neighbours at the work size ((n, 4) int32 positions in
    ``work``, ``work.count`` where none) and their bilinear weights, 0 for a neighbour that is not a skin texel of the
    same UV island (the work grid must not blend islands that lie side by side in the layout)."""
    import torch

    islands = torch.as_tensor(uv_islands(model))
    position = torch.full((work.size * work.size,), work.count, dtype=torch.long)
    position[work.texels] = torch.arange(work.count)
    work_island = torch.cat([torch.where(work.skin, islands[work.triangle], -1), torch.tensor([-1])])
    island = islands[high.triangle[rows]]
    texels = high.texels[rows]
    ratio = work.size / high.size
    v = ((texels // high.size).float() + 0.5) * ratio - 0.5
    u = ((texels % high.size).float() + 0.5) * ratio - 0.5
    row0, col0 = v.floor().long(), u.floor().long()
    fraction_v, fraction_u = v - row0, u - col0
    neighbours, weights = [], []
    for dr, dc in ((0, 0), (0, 1), (1, 0), (1, 1)):
        row, col = row0 + dr, col0 + dc
        inside = (row >= 0) & (row < work.size) & (col >= 0) & (col < work.size)
        found = torch.where(inside, position[row.clamp(0, work.size - 1) * work.size + col.clamp(0, work.size - 1)],
                            work.count)
        valid = work_island[found] == island
        neighbours.append(torch.where(valid, found, work.count).int())
        weights.append((fraction_v if dr else 1 - fraction_v) * (fraction_u if dc else 1 - fraction_u) * valid)
    return torch.stack(neighbours, 1), torch.stack(weights, 1)


def _coverage_edges(low: TexelGeometry, weight_low: Any, high: TexelGeometry) -> Any:
    """(M_high,) bool: texels of ``high`` inside a reference texel whose coverage (from ``weight_low``) differs by more
    than ``EDGE_COVERAGE`` from that of a skin texel next to it, or on the border of the seen skin (where the work
    grid would spread a seen texel's colour onto unseen ones, or the other way round)."""
    import cv2
    import torch

    coverage = low.image(1.0 - torch.exp(-weight_low / COVERAGE_SCALE)).numpy()
    skin = low.image(low.skin).numpy()
    kernel = np.ones((3, 3), np.uint8)
    highest = cv2.dilate(np.where(skin, coverage, -1.0).astype(np.float32), kernel)
    lowest = cv2.erode(np.where(skin, coverage, 2.0).astype(np.float32), kernel)
    edge = torch.as_tensor(skin & ((highest - lowest > EDGE_COVERAGE) | ((lowest <= 0) & (highest > 0)))).reshape(-1)
    ratio = low.size / high.size
    row = (((high.texels // high.size).float() + 0.5) * ratio).long()
    col = (((high.texels % high.size).float() + 0.5) * ratio).long()
    return edge[row * low.size + col]


def _detail_triangles(sampler: FrameSampler, model: HeadModel, work_size: int) -> Any:
    """(F,) bool: triangles some frame shows (a corner facing it) at more than ``DETAIL_PIXELS`` pixels per work
    texel across (the square root of the screen area over the UV area)."""
    import torch

    def doubled_area(points: Any, faces: Any) -> Any:
        a, b, c = (points[..., faces[:, k], :] for k in range(3))
        return ((b[..., 0] - a[..., 0]) * (c[..., 1] - a[..., 1]) - (c[..., 0] - a[..., 0]) * (b[..., 1] - a[..., 1])).abs()

    uv_area = doubled_area(torch.as_tensor(np.asarray(model.uv, np.float32)) * work_size,
                           torch.as_tensor(np.asarray(model.face_uv, np.int64))).clamp_min(1e-9)
    screen_area = doubled_area(sampler.screen[..., :2], sampler.faces)                               # (N, F)
    facing = (sampler.cosine > sampler.params.min_cosine)[:, sampler.faces].any(-1)
    return ((screen_area / uv_area).sqrt() * facing).amax(0) > DETAIL_PIXELS


def _skin_texels(model: HeadModel, size: int) -> tuple[TexelGeometry, _TexelSet]:
    """The layout at ``size`` and its skin texels (the texels unwrap samples) as a tile-ordered set."""
    geometry = texel_geometry(model, size)
    return geometry, _TexelSet.of(geometry, geometry.skin)


def unwrap_capture(capture: Capture, params: UnwrapParams, progress: Any, outputs: dict[str, Any]) -> dict[str, Any]:
    """Both passes over the capture's frames; writes the files named in ``outputs``; returns the metrics."""
    fit = load_fit(str(capture.path(FIT_NPZ)))
    if len(fit["pose"]) == 0:
        raise CaptureError(f"{capture.root}: fit.npz has no frames; re-run the reconstruction")
    progress.update(0.0, "loading the head model", force=True)
    model = load_fitted_model(capture, fit)
    files, sharp_weight = frame_files(capture.root, fit)
    work_size = min(params.work_size, params.texture_size)
    with _frame_threads() as (pool, workers):
        progress.update(0.02, "light transfer of the fitted head", force=True)
        light_job = pool.submit(_LightTransfer.of_fit, model, fit)
        sampler = FrameSampler(model, fit, params)
        work_job = pool.submit(_skin_texels, model, work_size)
        full_job = pool.submit(lambda: _FullSizeLayout.of(model, sampler, work_job.result()[0], params.texture_size))
        low, low_set = _skin_texels(model, params.reference_size)
        reference = _reference_pass(files, sharp_weight, sampler, low, low_set, (pool, workers), progress.sub(0.05, 0.45))
        (work, work_set), light = work_job.result(), light_job.result()
        full = full_job.result().split(low, reference.weight)
        sums = _fusion_pass(files, sharp_weight, sampler, (low, low_set, work, work_set, full), reference, light,
                            params.outlier_scale, (pool, workers), progress.sub(0.45, 0.92))
        progress.update(0.93, "writing the textures", force=True)
        coverage = _write_outputs(outputs, params, full.geometry, low, light, reference, sums, pool)
    high = full.geometry
    observed = coverage > OBSERVED
    face = high.face_surface(model, light.rest_normals)
    gains = reference.gains
    return {
        "coverage_face": round(float(observed[face].float().mean()), 4) if bool(face.any()) else 0.0,
        "coverage_head": round(float(observed[high.skin].float().mean()), 4),
        "frames": len(files), "texture_size": params.texture_size,
        "frame_gain_range": [round(float(gains.min()), 4), round(float(gains.max()), 4)],
    }


@dataclass
class _LightTransfer:
    """The fitted identity at rest: its normals (the normal map) and self-shadowed light transfer, and the rotations
    that carry a light fixed to the camera into the head's frame for each frame."""
    rest_normals: Any        # (V, 3)
    lobes: Any               # (V, D) occluded cosine lobes
    directions: np.ndarray   # (D, 3)
    head_rotations: np.ndarray      # (N, 3, 3)
    camera_rotation: np.ndarray     # (N, 3, 3)

    @classmethod
    def of_fit(cls, model: HeadModel, fit: dict[str, np.ndarray]) -> "_LightTransfer":
        import torch

        from ..head.model import axis_angle_to_matrix
        from .shading import VISIBILITY_DIRECTIONS, occluded_cosine, sphere_directions, visibility

        with torch.no_grad():
            rest = model.vertices(torch.as_tensor(np.asarray(fit["shape"], np.float32)[None, : model.num_shape]))[0]
        rest_normals = vertex_normals(rest, model.faces)
        directions = sphere_directions(VISIBILITY_DIRECTIONS)
        lobes = occluded_cosine(rest_normals, visibility(rest, rest_normals, model.faces, directions), directions)
        head_rotations = axis_angle_to_matrix(torch.as_tensor(np.asarray(fit["pose"], np.float32)[:, 0])).numpy()
        return cls(rest_normals, lobes, directions, head_rotations, np.asarray(fit["camera_rotation"], np.float32))

    def head_transfer(self) -> Any:
        """(V, 9) transfer in the head's frame."""
        from .shading import transfer

        return transfer(self.lobes, self.directions)

    def camera_transfer(self, frame: int) -> Any:
        """(V, 9) transfer of a light fixed to frame ``frame``'s camera: the sampling directions turned by the head's
        rotation in the camera frame."""
        from .shading import transfer

        return transfer(self.lobes, self.directions, rotation=self.camera_rotation[frame] @ self.head_rotations[frame])


@dataclass
class _Reference:
    """Pass 1's results at the reference resolution."""
    gains: Any               # (N, 3) per-frame exposure and white-balance gains
    colour: Any              # (L, 3) reference colour per texel
    weight: Any              # (L,) summed sample weight per texel
    set_weights: Any         # (N, L_skin) each frame's sample weights at the reference texel set's texels
    runs: list               # per frame: the reference texel set's runs it sampled
    views: list              # the sampler's per-frame view data
    frames: list             # frame crops kept for pass 2 (decoded once), or None where memory did not allow


def _reference_pass(files: list, sharp_weight: np.ndarray, sampler: FrameSampler, low: TexelGeometry,
                    low_set: _TexelSet, threads: tuple[Any, int], progress: Any) -> _Reference:
    """Pass 1: the reference resolution, every sample kept; per-frame gains and the robust reference solved from them."""
    import torch

    pool, workers = threads
    count = len(files)

    def sample_frame(i: int) -> tuple[_FrameCrop, dict[str, Any], list, Any, Any]:
        frame = _FrameCrop.read(files[i], sampler, i)
        view = sampler.prepare(i, *frame.size)
        runs, colour, weight = _sample_texels(sampler, i, frame, frame.linear(), view, low_set)
        return frame, view, runs, colour, weight * float(sharp_weight[i])

    samples = torch.zeros(count, low_set.count, 3)
    weights = torch.zeros(count, low_set.count)
    views, runs_of, frames, kept_bytes = [], [], [], 0
    for i, (frame, view, runs, colour, weight) in enumerate(_in_order(pool, sample_frame, count, 2 * workers)):
        _add_runs(samples[i], runs, colour)
        _add_runs(weights[i], runs, weight)
        kept_bytes += frame.image_bgr8.nbytes
        frames.append(frame if kept_bytes <= KEPT_FRAME_BYTES else None)
        views.append(view)
        runs_of.append(runs)
        progress.update((i + 1) / count, f"sampling frame {i + 1}/{count} (reference)")
    progress.update(1.0, "solving the frame gains and the reference", force=True)
    gains, reference_set = _solve_gains(samples, weights, torch.nonzero(low_set.positions % 4 == 0).squeeze(1), pool=pool)
    del samples
    colour, weight_low = torch.zeros(low.count, 3), torch.zeros(low.count)
    colour[low_set.positions], weight_low[low_set.positions] = reference_set, weights.sum(0)
    return _Reference(gains, colour, weight_low, weights, runs_of, views, frames)


def _fusion_pass(files: list, sharp_weight: np.ndarray, sampler: FrameSampler, layout: tuple, reference: _Reference,
                 light: _LightTransfer, outlier_scale: float, threads: tuple[Any, int], progress: Any) -> dict[str, Any]:
    """Pass 2: the work size (and full size where detail is needed), fused by a weighted mean robust to samples far
    from the reference, as running sums added in frame order. Returns ``sums`` (M, 5) at texture_size (colour sum
    (3), robust weight sum, observed weight sum) and ``transfer_camera`` (L, 9), the reference weights' mean
    camera-fixed light transfer. Consumes the kept frames."""
    import torch

    low, low_set, work, work_set, full = layout
    pool, workers = threads
    seen_low = reference.weight > 1e-3
    reference_image = low.image(torch.where(seen_low[:, None], reference.colour, torch.zeros_like(reference.colour))).numpy()
    reference_image = push_pull_fill(reference_image, low.image(seen_low).numpy())
    targets = [(work_set, work.sample_image(reference_image, work_set.positions))]
    if full.detail is not None:
        targets.append((full.detail, full.geometry.sample_image(reference_image, full.detail.positions)))
    targets = [(texels, colour, colour.norm(dim=1) + 0.02) for texels, colour in targets]

    def fuse_frame(i: int) -> list[tuple[list, Any]]:
        frame = reference.frames[i] if reference.frames[i] is not None else _FrameCrop.read(files[i], sampler, i)
        reference.frames[i] = None
        frame_linear = frame.linear()
        out = []
        for texels, reference_colour, reference_scale in targets:
            runs, colour, weight = _sample_texels(sampler, i, frame, frame_linear, reference.views[i], texels)
            colour.mul_(1.0 / reference.gains[i])
            weight.mul_(float(sharp_weight[i]))
            out.append((runs, _robust_terms(colour, weight, texels.gather(reference_colour, runs),
                                            texels.gather(reference_scale, runs), outlier_scale)))
        low_runs = reference.runs[i]
        transfer = low_set.interpolate(light.camera_transfer(i), low_runs)
        out.append((low_runs, low_set.gather(reference.set_weights[i], low_runs)[:, None] * transfer))
        return out

    sums = [torch.zeros(texels.count, 5) for texels, _, _ in targets] + [torch.zeros(low_set.count, 9)]
    count = len(files)
    for i, contributions in enumerate(_in_order(pool, fuse_frame, count, 2 * workers)):
        for total, (runs, values) in zip(sums, contributions):
            _add_runs(total, runs, values)
        progress.update((i + 1) / count, f"fusing frame {i + 1}/{count}")
    work_sums = torch.zeros(work.count, 5)
    work_sums[work_set.positions] = sums[0]
    transfer_sum = torch.zeros(low.count, 9)
    transfer_sum[low_set.positions] = sums[-1]
    return {"sums": full.sums(work_sums, sums[1] if full.detail is not None else None),
            "transfer_camera": transfer_sum / reference.weight.clamp_min(1e-6)[:, None]}


def _robust_terms(colour: Any, weight: Any, reference: Any, reference_scale: Any, outlier_scale: float) -> Any:
    """(n, 5) what the fusion sums per sample: colour x robust weight (3), robust weight, weight. The robust weight
    falls with the colour's distance to the reference relative to ``reference_scale`` (the reference's norm + 0.02)."""
    import torch

    difference = ((colour - reference).square_() @ torch.ones(3)).sqrt_().div_(reference_scale)
    robust = weight / difference.div_(outlier_scale).square_().add_(1.0)
    out = torch.empty(len(weight), 5)
    torch.mul(colour, robust[:, None], out=out[:, :3])
    out[:, 3], out[:, 4] = robust, weight
    return out


def _write_outputs(outputs: dict[str, Any], params: UnwrapParams, high: TexelGeometry, low: TexelGeometry,
                   light: _LightTransfer, reference: _Reference, fused: dict[str, Any], pool: Any) -> Any:
    """The phone texture, coverage, normal map and shading data, each written on ``pool``; returns the (M,) coverage."""
    import torch

    sums = fused["sums"]
    coverage = 1.0 - torch.exp(-sums[:, 4] / COVERAGE_SCALE)

    def phone() -> None:
        weight_sum = sums[:, 3]
        colour = sums[:, :3] / weight_sum.clamp_min(1e-9)[:, None]
        colour[weight_sum <= 1e-6] = 0.0
        write_png16(outputs[PHONE_PNG], linear_to_srgb(high.image(colour.clamp_(0, 1)).numpy()))

    def normals() -> None:
        texel_normals = torch.nn.functional.normalize(high.interpolate(light.rest_normals), dim=1)
        write_exr(outputs[NORMAL_EXR], high.image(texel_normals).numpy())

    def shading() -> None:
        atomic_write_npz(outputs[SHADING_NPZ],
                         size=np.int32(params.reference_size),
                         transfer_camera=low.image(fused["transfer_camera"]).numpy().astype(np.float16),
                         transfer_head=low.image(low.interpolate(light.head_transfer())).numpy().astype(np.float16),
                         weight=low.image(reference.weight).numpy().astype(np.float32),
                         reference_linear=low.image(reference.colour).numpy().astype(np.float16),
                         frame_gains=reference.gains.numpy().astype(np.float32))

    jobs = [pool.submit(phone), pool.submit(lambda: write_png16(outputs[COVERAGE_PNG], high.image(coverage).numpy())),
            pool.submit(normals), pool.submit(shading)]
    for job in jobs:
        job.result()
    return coverage


def run_unwrap(ctx: StageContext) -> None:
    ctx.input(FIT_NPZ)
    ctx.input("frames/")
    outputs = {name: ctx.output(name) for name in (PHONE_PNG, COVERAGE_PNG, NORMAL_EXR, SHADING_NPZ)}
    metrics = unwrap_capture(ctx.capture, ctx.params, ctx.progress, outputs)
    ctx.metrics.update(metrics)
    if metrics["coverage_face"] < 0.8:
        ctx.warn(f"only {100 * metrics['coverage_face']:.0f}% of the face was seen well; turn the head further both ways "
                 "in the video for a complete texture")


def load_shading(path: str) -> dict[str, np.ndarray]:
    return read_npz(path)


UNWRAP_STAGE = Stage(
    name="unwrap",
    version=2,
    run=run_unwrap,
    outputs=(PHONE_PNG, COVERAGE_PNG, NORMAL_EXR, SHADING_NPZ),
    inputs=(FIT_NPZ, "frames/"),
    params_type=UnwrapParams,
    description="sample the frames into the head's UV space and fuse them (still lit), with coverage and normals",
    report_section="texture",
)
