"""Captures with a known albedo, lighting and fit: the ground truth for the texture stages.

``write_textured_capture`` renders the open head (or any head model) with a
given UV albedo under a given light into the frames of a capture folder, and
writes the ground-truth fit as the capture's ``fit.npz`` (recorded as a done
``fit`` stage): the texture stages then run on it exactly as after a real
reconstruction, with the fit error taken out of the measurement.

The light is Lambertian: ``radiance = albedo * (ambient + key * max(0, n . l))``
per colour channel, ``l`` the direction towards the key light in the world
frame (the OpenGL camera frame of the fit conventions), no shadows. Frames are
rendered supersampled and stored as 8-bit sRGB PNGs, as the frames stage
stores them.

``smooth_albedo`` makes a plausible, smooth skin albedo for such tests (the
full biophysical albedo generator is a separate module); its detail is kept
coarser than a frame pixel so that resampling alone cannot limit a test.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from ..atomic import atomic_write_npz
from ..capture import Capture
from ..head.model import HeadModel
from ..render.camera import camera_for
from .head_clip import HeadClipSpec, posed_vertices, sample_head_clip

WHITE = (1.0, 1.0, 1.0)


@dataclass(frozen=True)
class Light:
    ambient: tuple[float, float, float] = WHITE           # uniform irradiance (linear RGB)
    key: tuple[float, float, float] = (0.0, 0.0, 0.0)     # directional light's irradiance at normal incidence
    direction: tuple[float, float, float] = (0.0, 0.0, 1.0)  # towards the key light, world frame (camera looks along -z)

    def shading(self, normals: Any) -> Any:
        """(..., 3) world normals -> (..., 3) irradiance."""
        import torch

        direction = torch.nn.functional.normalize(torch.tensor(self.direction, dtype=torch.float32), dim=0)
        cosine = (torch.as_tensor(normals) @ direction).clamp_min(0)[..., None]
        return torch.tensor(self.ambient) + torch.tensor(self.key) * cosine


FLAT_WHITE = Light()


def smooth_albedo(model: HeadModel, size: int, seed: int = 0, skin_srgb: tuple[int, int, int] = (196, 148, 122)) -> np.ndarray:
    """(size, size, 3) linear albedo: a skin tone with smooth blotches, redder lips and cheeks, darker brows region."""
    import cv2
    import torch

    from ..color import srgb_to_linear
    from ..texture.uv import texel_geometry

    rng = np.random.default_rng(seed)
    base = srgb_to_linear(np.array(skin_srgb, np.float32) / 255.0)
    geometry = texel_geometry(model, size)
    noise = rng.standard_normal((size // 16 + 2, size // 16 + 2, 3)).astype(np.float32)
    noise = cv2.resize(noise, (size, size), interpolation=cv2.INTER_CUBIC)
    noise = cv2.GaussianBlur(noise, (0, 0), size / 64)
    noise /= max(float(np.abs(noise).max()), 1e-6)
    albedo = base[None, None] * (1.0 + 0.18 * noise[..., :1] + 0.05 * noise)
    image = torch.as_tensor(albedo.reshape(-1, 3))
    tint = torch.ones(geometry.count, 3)
    for region, factor in (("lips", (1.05, 0.62, 0.66)), ("scalp", (0.55, 0.5, 0.5)), ("ears", (1.02, 0.92, 0.92))):
        if region in geometry.regions:
            tint[geometry.regions[region]] = torch.tensor(factor)
    non_skin = ~geometry.skin
    tint[non_skin] = torch.tensor((0.9, 0.55, 0.5))
    flat = image.clone()
    flat[geometry.texels] = image[geometry.texels] * tint
    out = flat.reshape(size, size, 3).numpy()
    out = cv2.GaussianBlur(out, (0, 0), size / 256)                     # no edge sharper than ~1/100 of the texture
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def render_textured_frames(model: HeadModel, gt: dict[str, np.ndarray], albedo_linear: np.ndarray, light: Light,
                           supersampling: int = 2, background_linear: tuple[float, float, float] = (0.05, 0.06, 0.07)
                           ) -> Iterator[np.ndarray]:
    """(H, W, 3) uint8 sRGB RGB frames of ground truth ``gt`` with the UV albedo under ``light``."""
    import cv2
    import torch

    from ..color import linear_to_srgb
    from ..image_io import sample_points
    from ..render.camera import project
    from ..render.normals import vertex_normals
    from ..render.raster import interpolate, rasterize
    from ..render.uv_lookup import texcoords

    width, height = (int(v) for v in gt["image_size"])
    ss = supersampling
    faces = torch.as_tensor(np.asarray(model.faces, np.int64))
    face_uv = torch.as_tensor(np.asarray(model.face_uv, np.int64))
    uv = torch.as_tensor(np.asarray(model.uv, np.float32))
    size = albedo_linear.shape[0]
    albedo = np.ascontiguousarray(albedo_linear, np.float32)
    for i in range(len(gt["pose"])):
        with torch.no_grad():
            verts = posed_vertices(model, gt, i)
            normals = vertex_normals(verts, faces)
        raster = rasterize(project(verts, camera_for(gt, i, ss)), faces, height * ss, width * ss)
        mask = raster.mask
        frame = np.empty((height * ss, width * ss, 3), np.float32)
        frame[:] = background_linear
        if bool(mask.any()):
            texcoord = texcoords(raster, uv, face_uv)
            colour = sample_points(albedo, (texcoord[:, 0] * size - 0.5).numpy(), ((1 - texcoord[:, 1]) * size - 0.5).numpy())
            normal = torch.nn.functional.normalize(interpolate(normals, faces, raster)[mask], dim=1)
            frame[mask.numpy()] = colour * light.shading(normal).numpy()
        frame = cv2.resize(frame, (width, height), interpolation=cv2.INTER_AREA) if ss > 1 else frame
        yield np.clip(np.rint(linear_to_srgb(frame) * 255), 0, 255).astype(np.uint8)


def write_textured_capture(root: str | os.PathLike, model: HeadModel, albedo_linear: np.ndarray, light: Light,
                           spec: HeadClipSpec = HeadClipSpec()) -> tuple[Capture, dict[str, np.ndarray]]:
    """A capture folder with rendered frames and the true fit (as a done ``fit`` stage); returns it and the truth."""
    import cv2

    from ..fit.stage import FIT_NPZ
    from ..frames import FRAMES_JSON
    from ..stages import SOURCE, adopt_outputs

    gt = sample_head_clip(model, spec)
    root = Path(root)
    capture = Capture.create(root, {"path": str(root / "synthetic"), "sha256": f"synthetic-textured-{spec.seed}",
                                    "synthetic": True})
    (root / "frames").mkdir()
    entries = []
    for i, frame in enumerate(render_textured_frames(model, gt, albedo_linear, light, spec.supersampling)):
        name = f"{i:04d}.png"
        if not cv2.imwrite(str(root / "frames" / name), frame[..., ::-1]):
            raise OSError(f"could not write {root / 'frames' / name}")
        entries.append({"file": name, "index": i, "time_s": float(gt["time_s"][i]), "sharpness": 100.0})
    (root / FRAMES_JSON).write_text(json.dumps({"size": [spec.width, spec.height], "frames": entries}, indent=1))
    n = len(gt["pose"])
    fit = {key: gt[key] for key in ("shape", "expression", "pose", "translation", "focal_px", "principal_px",
                                    "camera_rotation", "camera_translation", "image_size", "time_s")}
    fit.update(frame=np.arange(n), video_index=gt["frame_index"], model_source=np.array(model.source),
               model_fingerprint=np.array(str(model.metadata.get("fingerprint", ""))),
               expression_names=np.array(model.expression_names), joint_names=np.array(model.joint_names),
               iod_px=_iod_px(model, gt))
    atomic_write_npz(root / FIT_NPZ, **fit)
    # recorded as the frames and fit stages would record them, so that the stages after them see current inputs
    adopt_outputs(capture, "frames", ["frames/"], inputs=[SOURCE])
    adopt_outputs(capture, "fit", [FIT_NPZ], inputs=[SOURCE], params={"flame_model": "", "flame_uv": ""})
    return capture, gt


def _iod_px(model: HeadModel, gt: dict[str, np.ndarray]) -> np.ndarray:
    """(N,) inter-ocular distance in pixels (outer eye corners of the landmark embedding)."""
    import torch

    out = []
    for i in range(len(gt["pose"])):
        with torch.no_grad():
            points = model.landmarks(posed_vertices(model, gt, i)[None])[0][[33, 263]].numpy()
        out.append(float(gt["focal_px"][i]) * np.linalg.norm(points[0] - points[1]) / max(-points[:, 2].mean(), 1e-6))
    return np.asarray(out, np.float32)
