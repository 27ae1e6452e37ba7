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
2. at ``texture_size`` texels: the gain-corrected samples are fused by a
   weighted mean whose weights also fall for samples far from the reference
   (specular highlights, a blink, a misfit frame).

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
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..atomic import atomic_write_npz, read_npz
from ..capture import Capture
from ..color import SRGB8_TO_LINEAR, linear_to_srgb
from ..errors import CaptureError
from ..fit import FIT_NPZ, load_fit, load_fitted_model
from ..frames import FRAMES_JSON
from ..head.model import HeadModel
from ..image_io import push_pull_fill, sample_points, write_exr, write_png16
from ..render.normals import vertex_normals
from ..stages import Stage, StageContext
from .uv import TexelGeometry, texel_geometry

PHONE_PNG = "textures/phone.png"
COVERAGE_PNG = "textures/coverage.png"
NORMAL_EXR = "textures/normal.exr"
SHADING_NPZ = "textures/shading.npz"
VIEW_HEAD_PX = 320            # the per-frame depth and outline maps are made with the head this many pixels tall
OBSERVED = 0.1                # coverage above this: the texel counts as observed
COVERAGE_SCALE = 0.5          # coverage = 1 - exp(-summed weight / this): one good view gives ~0.86
TEXEL_BLOCK = 1 << 21         # texels sampled at once when fusing: bounds the per-frame temporaries at any texture size


@dataclass(frozen=True)
class UnwrapParams:
    texture_size: int = 2048          # texels across the fused texture
    reference_size: int = 512         # texels across the robust reference, exposure and shading statistics
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

    def prepare(self, index: int, height: int, width: int) -> dict[str, Any]:
        """The frame's depth map and distance-to-outline map of the posed head, at a reduced scale.

        Both only gate and weight samples, so they are rasterized with the head
        at most ``VIEW_HEAD_PX`` pixels tall (4K frames would cost seconds each).
        """
        import cv2
        import torch

        from ..render.raster import rasterize

        screen = self.screen[index]
        extent = float(screen[:, 1].max() - screen[:, 1].min())
        scale = min(1.0, VIEW_HEAD_PX / max(extent, 1.0))
        scaled = torch.cat([screen[:, :2] * scale, screen[:, 2:]], 1)
        size = (max(1, int(np.ceil(height * scale))), max(1, int(np.ceil(width * scale))))
        raster = rasterize(scaled, self.faces, *size)
        outline = cv2.distanceTransform(raster.mask.numpy().astype(np.uint8), cv2.DIST_L2, 5) / scale
        return {"depth": raster.depth.numpy().astype(np.float32), "outline": outline.astype(np.float32), "scale": scale}

    def sample(self, index: int, frame_linear: np.ndarray, view: dict[str, Any], geometry: TexelGeometry,
               start: int = 0, stop: int | None = None) -> tuple[Any, Any, Any]:
        """(rows (n,), colours (n, 3), weights (n,)) for the texels of ``geometry`` (those from ``start`` to ``stop``)
        this frame sees."""
        import torch

        p = self.params
        per_vertex = torch.cat([self.screen[index], self.cosine[index, :, None], self.pixel_m[index, :, None],
                                self.band[index, :, None]], 1)                                     # (V, 6)
        # candidate texels: on skin triangles with a corner facing the camera (a per-triangle test, then one gather)
        triangle_ok = (self.cosine[index] > p.min_cosine)[self.faces].any(1) & geometry.skin_triangles
        rows = torch.nonzero(triangle_ok[geometry.triangle[start:stop]]).squeeze(1) + start
        values = geometry.interpolate(per_vertex, rows)                                            # (n, 6)
        height, width = frame_linear.shape[:2]
        x, y = values[:, 0] - 0.5, values[:, 1] - 0.5                                             # pixel-centre coordinates
        inside = (x >= 0) & (y >= 0) & (x <= width - 1) & (y <= height - 1)
        rows, values, x, y = rows[inside], values[inside], x[inside], y[inside]
        colour = sample_points(frame_linear, x.numpy(), y.numpy())
        scale = view["scale"]
        x_view, y_view = ((x + 0.5) * scale - 0.5).numpy(), ((y + 0.5) * scale - 0.5).numpy()
        nearest_depth = sample_points(view["depth"], x_view, y_view, nearest=True)
        outline = sample_points(view["outline"], x_view, y_view)

        cosine = values[:, 3].clamp(0, 1)
        sine = (1 - cosine ** 2).clamp_min(0).sqrt()
        slack = 0.004 + 2.0 * values[:, 4] / scale * sine / cosine.clamp_min(0.1)                   # metres
        visible = torch.as_tensor(values[:, 2].numpy() <= nearest_depth + slack.numpy())
        facing_w = ((cosine - p.min_cosine) / (p.full_cosine - p.min_cosine)).clamp(0, 1) ** 2
        outline_w = (torch.as_tensor(outline) / max(p.silhouette_band * float(self.iod_px[index]), 1.0)).clamp(0, 1)
        weight = facing_w * outline_w * visible * values[:, 5]
        keep = weight > 1e-3
        return rows[keep], torch.as_tensor(colour)[keep], weight[keep]


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


def read_frame(path: Any) -> np.ndarray:
    import cv2

    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise CaptureError(f"{path}: the frame image is missing or unreadable; re-run the frames stage (`--force frames`)")
    return image


def bgr8_to_linear(image_bgr8: np.ndarray) -> np.ndarray:
    return SRGB8_TO_LINEAR[image_bgr8[..., ::-1]]


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


def _solve_gains(samples: Any, weights: Any, iterations: int = 3, stride: int = 4) -> tuple[Any, Any]:
    """Per-frame RGB gains (F, 3) and the gain-corrected weighted median (M, 3) of samples (F, M, 3).

    The gains are solved on every ``stride``-th texel (plenty for 3 x F numbers); the median uses all.
    """
    import torch

    frames = samples.shape[0]
    part, part_weights = samples[:, ::stride], weights[:, ::stride]
    gains = torch.ones(frames, 3)
    for _ in range(iterations):
        reference = weighted_median(part / gains[:, None, :], part_weights)
        good = (part_weights > 0.2)[..., None] & (reference[None] > 0.01) & (part > 0.005)
        ratio = torch.where(good, torch.log(part.clamp_min(1e-4) / reference[None].clamp_min(1e-4)), torch.nan)
        estimate = torch.nanmedian(ratio.transpose(1, 2).reshape(frames * 3, -1), dim=1).values.reshape(frames, 3)
        estimate = torch.where(torch.isfinite(estimate), estimate, torch.zeros_like(estimate))
        frame_weight = part_weights.sum(1, keepdim=True)
        estimate = estimate - (estimate * frame_weight).sum(0) / frame_weight.sum().clamp_min(1e-9)  # geometric mean 1
        gains = torch.exp(estimate)
    return gains, weighted_median(samples / gains[:, None, :], weights)


def unwrap_capture(capture: Capture, params: UnwrapParams, progress: Any, outputs: dict[str, Any]) -> dict[str, Any]:
    """Both passes over the capture's frames; writes the files named in ``outputs``; returns the metrics."""
    fit = load_fit(str(capture.path(FIT_NPZ)))
    if len(fit["pose"]) == 0:
        raise CaptureError(f"{capture.root}: fit.npz has no frames; re-run the reconstruction")
    progress.update(0.0, "loading the head model", force=True)
    model = load_fitted_model(capture, fit)
    files, sharp_weight = frame_files(capture.root, fit)
    sampler = FrameSampler(model, fit, params)
    high, low = texel_geometry(model, params.texture_size), texel_geometry(model, params.reference_size)
    progress.update(0.02, "light transfer of the fitted head", force=True)
    light = _LightTransfer.of_fit(model, fit)
    reference = _reference_pass(files, sharp_weight, sampler, low, light, progress.sub(0.05, 0.45))
    sums = _fusion_pass(files, sharp_weight, sampler, high, low, reference, params.outlier_scale, progress.sub(0.45, 0.92))
    progress.update(0.93, "writing the textures", force=True)
    coverage = _write_outputs(outputs, params, high, low, light, reference, *sums)
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
    gains: Any               # (N,) per-frame exposure gains
    colour: Any              # (L, 3) reference colour per texel
    weight: Any              # (L,) summed sample weight per texel
    transfer_camera: Any     # (L, 9) the weighted mean camera-fixed transfer per texel
    views: list              # the sampler's per-frame view data
    frames: list             # 8-bit frames kept for pass 2 (decoded once), or None where memory did not allow


def _reference_pass(files: list, sharp_weight: np.ndarray, sampler: FrameSampler, low: TexelGeometry,
                    light: _LightTransfer, progress: Any) -> _Reference:
    """Pass 1: the reference resolution, every sample kept; per-frame gains and the robust reference solved from them."""
    import torch

    count = len(files)
    frames_cache: list[np.ndarray | None] = [None] * count
    keep_frames = True
    samples = torch.zeros(count, low.count, 3)
    weights = torch.zeros(count, low.count)
    transfer_sum = torch.zeros(low.count, 9)
    views: list[dict[str, Any]] = []
    for i, path in enumerate(files):
        image = read_frame(path)
        keep_frames = keep_frames and image.nbytes * count < 2e9
        frames_cache[i] = image if keep_frames else None
        frame = bgr8_to_linear(image)
        views.append(sampler.prepare(i, *frame.shape[:2]))
        rows, colour, weight = sampler.sample(i, frame, views[i], low)
        weight = weight * float(sharp_weight[i])
        samples[i, rows], weights[i, rows] = colour, weight
        transfer_sum.index_add_(0, rows, weight[:, None] * low.interpolate(light.camera_transfer(i), rows))
        progress.update((i + 1) / count, f"sampling frame {i + 1}/{count} (reference)")
    gains, reference = _solve_gains(samples, weights)
    weight_low = weights.sum(0)
    return _Reference(gains, reference, weight_low, transfer_sum / weight_low.clamp_min(1e-6)[:, None], views, frames_cache)


def _fusion_pass(files: list, sharp_weight: np.ndarray, sampler: FrameSampler, high: TexelGeometry, low: TexelGeometry,
                 reference: _Reference, outlier_scale: float, progress: Any) -> tuple[Any, Any, Any]:
    """Pass 2: full resolution, fused by a weighted mean robust to samples far from the reference; returns the
    (M, 3) colour sum, the (M,) robust weight sum and the (M,) observed weight sum. Consumes the kept frames."""
    import torch

    seen_low = reference.weight > 1e-3
    reference_image = low.image(torch.where(seen_low[:, None], reference.colour, torch.zeros_like(reference.colour))).numpy()
    reference_image = push_pull_fill(reference_image, low.image(seen_low).numpy())
    reference_high = high.sample_image(reference_image)                                                  # (M, 3)
    colour_sum = torch.zeros(high.count, 3)
    weight_sum = torch.zeros(high.count)
    observed_sum = torch.zeros(high.count)
    count, frames_cache = len(files), reference.frames
    for i, path in enumerate(files):
        frame = bgr8_to_linear(frames_cache[i] if frames_cache[i] is not None else read_frame(path))
        frames_cache[i] = None
        for start in range(0, high.count, TEXEL_BLOCK):
            rows, colour, weight = sampler.sample(i, frame, reference.views[i], high, start, start + TEXEL_BLOCK)
            weight = weight * float(sharp_weight[i])
            colour = colour / reference.gains[i]
            ref = reference_high[rows]
            difference = (colour - ref).norm(dim=1) / (ref.norm(dim=1) + 0.02)
            robust = 1.0 / (1.0 + (difference / outlier_scale) ** 2)
            colour_sum.index_add_(0, rows, (weight * robust)[:, None] * colour)
            weight_sum.index_add_(0, rows, weight * robust)
            observed_sum.index_add_(0, rows, weight)
        progress.update((i + 1) / count, f"fusing frame {i + 1}/{count}")
    return colour_sum, weight_sum, observed_sum


def _write_outputs(outputs: dict[str, Any], params: UnwrapParams, high: TexelGeometry, low: TexelGeometry,
                   light: _LightTransfer, reference: _Reference, colour_sum: Any, weight_sum: Any, observed_sum: Any) -> Any:
    """The phone texture, coverage, normal map and shading data; returns the (M,) coverage.

    One output at a time, each sum dropped once used: at 4096^2 every (M, 3) array is 160 MB."""
    import torch

    colour_sum /= weight_sum.clamp_min(1e-9)[:, None]
    colour_sum[weight_sum <= 1e-6] = 0.0
    del weight_sum
    write_png16(outputs[PHONE_PNG], linear_to_srgb(high.image(colour_sum.clamp_(0, 1)).numpy()))
    del colour_sum
    coverage = 1.0 - torch.exp(-observed_sum / COVERAGE_SCALE)
    del observed_sum
    write_png16(outputs[COVERAGE_PNG], high.image(coverage).numpy())
    rest_texel_normals = torch.nn.functional.normalize(high.interpolate(light.rest_normals), dim=1)
    write_exr(outputs[NORMAL_EXR], high.image(rest_texel_normals).numpy())
    del rest_texel_normals
    atomic_write_npz(outputs[SHADING_NPZ],
                     size=np.int32(params.reference_size),
                     transfer_camera=low.image(reference.transfer_camera).numpy().astype(np.float16),
                     transfer_head=low.image(low.interpolate(light.head_transfer())).numpy().astype(np.float16),
                     weight=low.image(reference.weight).numpy().astype(np.float32),
                     reference_linear=low.image(reference.colour).numpy().astype(np.float16),
                     frame_gains=reference.gains.numpy().astype(np.float32))
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
    version=1,
    run=run_unwrap,
    outputs=(PHONE_PNG, COVERAGE_PNG, NORMAL_EXR, SHADING_NPZ),
    inputs=(FIT_NPZ, "frames/"),
    params_type=UnwrapParams,
    description="sample the frames into the head's UV space and fuse them (still lit), with coverage and normals",
    report_section="texture",
)
