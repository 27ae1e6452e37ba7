"""``studio-avatar synth``: a phone-like video of a random head with everything about it known.

A seed decides everything: the identity (open-head shape coefficients), the
skin (``core/synth/albedo.py``), the motion, the expressions, the lighting and
the phone's artifacts. The frames are rendered with Cycles through bpy
(``core/blender/synth_render.py``): the head stands still under a world HDRI
bundled with Blender (rotated, tinted to a colour temperature) plus lamps with
small radii for hard shadows, while a handheld camera sweeps around it
(yaw ±60–90°, some pitch, shake and a changing distance; expressions, blinks
and glances as in ``head_clip``). The linear renders then go through a phone
model, all seeded:

* auto-exposure that meters the centre of the frame and follows with a lag,
  with a random exposure compensation;
* auto white balance: a partial grey-world correction, lagging, with a bias;
* motion blur along the image motion of the face during the shutter time;
* signal-dependent sensor noise (shot + read noise, more at higher gain);
* 8-bit sRGB and H.264 compression (Blender's FFmpeg).

Output: ``OUT/video.mp4`` and ``OUT/gt/`` (see ``core/synth/ground_truth.py``:
albedo, per-frame truth in fit.npz conventions, the UV irradiance baked in the
same scene, a studio-lit reference render and ``scene.json``). Same seed, same
albedo and ground truth bit for bit; the frames agree up to the renderer's and
the codec's noise.
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from ..atomic import atomic_path, atomic_write_json, atomic_write_npz
from ..color import luminance
from ..errors import InputError
from ..hashing import file_sha256
from ..head.model import HeadModel, axis_angle_to_matrix
from ..render.camera import axis_angle
from . import ground_truth as G
from .head_clip import HeadClipSpec, posed_vertices, sample_head_clip

HDRIS = ("city", "courtyard", "forest", "interior", "night", "studio", "sunrise", "sunset")
HDRI_GAIN = {"night": 6.0, "interior": 2.0, "forest": 1.5}      # the dim ones, brought near the others
WB_LIMIT = 1.35             # the auto white balance's largest gain (or cut) of one channel against the mean
CAMERA_ABOVE_DEG = 6.0      # phones are held a little above eye level: the head is seen slightly from above
SHAPE_SIGMA, SHAPE_COMPONENTS = 1.0, 60    # identity: coefficients ~ N(0, sigma^2) (one unit = one s.d. of the head model)
STUDIO_DISTANCE_M = 0.62     # camera to the face centre in the studio render
STUDIO_FOV_DEG = 28.0
# seed streams (numpy SeedSequence entropy [seed, stream]); the motion uses head_clip's PCG64(seed)
_SCENE_STREAM, _PHONE_STREAM, _SHAKE_STREAM, _NOISE_STREAM = 11, 12, 13, 14


@dataclass(frozen=True)
class SynthSpec:
    seed: int = 0
    frames: int = 48
    width: int = 512
    height: int = 512
    fps: float = 10.0                    # a 48-frame clip lasts 4.8 s: a slow sweep, few frames (render time)
    albedo_size: int = 2048
    shading_size: int = 256              # the baked irradiance's texture size (it is smooth)
    samples: int = 8                     # Cycles samples per pixel (denoised)
    bake_samples: int = 16
    studio_size: int = 512               # the studio reference render, pixels (square)
    tone: float | None = None            # skin tone 0 (very light) .. 1 (very dark); None: drawn from the seed
    hdri: str | None = None              # one of HDRIS; None: drawn from the seed
    yaw_deg: float | None = None         # sweep amplitude; None: drawn in 60..90
    artifacts: bool = True               # phone model (exposure, white balance, blur, noise); off: plain sRGB
    video_quality: str = "MEDIUM"        # H.264 constant rate factor preset of Blender's FFmpeg
    fov_deg: float = 0.0                 # vertical field of view; 0: drawn in 48..62 (phone main cameras)

    def validate(self) -> "SynthSpec":
        if self.frames < 2 or self.width < 64 or self.height < 64 or self.fps <= 0:
            raise InputError(f"cannot synthesize {self.frames} frames at {self.width}x{self.height}, {self.fps} fps "
                             "(need at least 2 frames of 64x64)")
        if max(self.width, self.height) > 4096 or not 64 <= self.albedo_size <= 8192 or not 32 <= self.shading_size <= 4096:
            raise InputError("frame sides must be at most 4096 pixels, --albedo-size 64..8192 and the shading bake 32..4096")
        if self.samples < 1 or self.bake_samples < 1 or not 64 <= self.studio_size <= 4096:
            raise InputError("render and bake samples must be at least 1 and the studio render 64..4096 pixels")
        if self.tone is not None and not 0.0 <= self.tone <= 1.0:
            raise InputError(f"--tone must be between 0 (very light) and 1 (very dark), not {self.tone}")
        if self.hdri is not None and self.hdri not in HDRIS:
            raise InputError(f"unknown lighting {self.hdri!r}; choose one of {', '.join(HDRIS)}")
        if self.yaw_deg is not None and not 0.0 <= self.yaw_deg <= 100.0:
            raise InputError(f"the yaw sweep must be within 0..100 degrees, not {self.yaw_deg}")
        return self


# -- sampling -------------------------------------------------------------------------------------

def sample_scene(spec: SynthSpec) -> dict[str, Any]:
    """Everything random about the scene except identity and motion: lighting, camera, phone, material."""
    rng = np.random.Generator(np.random.PCG64([spec.seed, _SCENE_STREAM]))
    hdri = spec.hdri or HDRIS[int(rng.integers(len(HDRIS)))]
    world_kelvin = float(rng.uniform(3500, 8000))
    lamps = []
    for _ in range(int(rng.choice([0, 1, 1, 2]))):
        azimuth = math.radians(rng.uniform(-110, 110))        # 0 = in front of the face (Blender -Y)
        elevation = math.radians(rng.uniform(-10, 65))
        distance = float(rng.uniform(0.7, 2.0))
        hard = bool(rng.uniform() < 0.6)
        irradiance = float(rng.uniform(1.0, 6.0))             # W/m^2 at the head, before the camera's exposure
        lamps.append({
            "kind": "POINT" if hard else "AREA",
            "position": (distance * math.sin(azimuth) * math.cos(elevation), -distance * math.cos(azimuth) * math.cos(elevation),
                         distance * math.sin(elevation)),
            "kelvin": float(rng.uniform(2700, 6500)),
            "power_w": irradiance * 4 * math.pi * distance ** 2 / (1.0 if hard else 2.0),
            "size_m": float(rng.uniform(0.005, 0.03)) if hard else float(rng.uniform(0.15, 0.6)),
        })
    return {
        "hdri": hdri,
        "hdri_rotation_deg": float(rng.uniform(0, 360)),
        "hdri_strength": float(rng.uniform(0.6, 1.4)) * HDRI_GAIN.get(hdri, 1.0),
        "world_kelvin": world_kelvin,
        "lamps": lamps,
        "fov_deg": spec.fov_deg or float(rng.uniform(48, 62)),
        "yaw_deg": spec.yaw_deg if spec.yaw_deg is not None else float(rng.uniform(60, 90)),
        "pitch_deg": float(rng.uniform(6, 15)),
        "distance_m": float(rng.uniform(0.38, 0.55)),
        "roughness": float(rng.uniform(0.35, 0.6)),
        "specular": float(rng.uniform(0.35, 0.6)),
        "tone": spec.tone if spec.tone is not None else float(rng.uniform()),
        "phone": {
            "exposure_compensation": float(2 ** rng.uniform(-0.5, 0.5)),
            "exposure_lag": float(rng.uniform(0.25, 0.6)),          # fraction of the way to the target per frame
            "wb_strength": float(rng.uniform(0.3, 0.7)),             # how much of the grey-world cast is removed
            "wb_bias": [float(v) for v in 2 ** rng.uniform(-0.06, 0.06, 3)],
            "shutter_s": float(1 / rng.uniform(30, 250)),
            "shot_noise": float(rng.uniform(1e-4, 5e-4)),           # variance per unit linear signal at gain 1
            "read_noise": float(rng.uniform(0.5, 2.0) / 255),       # std, linear, at gain 1
        },
    }


def sample_truth(model: HeadModel, spec: SynthSpec, scene: dict[str, Any]) -> dict[str, np.ndarray]:
    """Per-frame truth (fit.npz conventions): head_clip's motion and expressions plus handheld shake."""
    clip = HeadClipSpec(frames=spec.frames, width=spec.width, height=spec.height, fps=spec.fps, seed=spec.seed,
                        yaw_deg=scene["yaw_deg"], pitch_deg=scene["pitch_deg"], roll_deg=5.0,
                        distance_m=scene["distance_m"], distance_jitter_m=0.05, offset_jitter_m=0.02,
                        fov_y_deg=scene["fov_deg"], noise_sigma=0.0, shape_sigma=SHAPE_SIGMA, shape_components=SHAPE_COMPONENTS)
    gt = sample_head_clip(model, clip, landmarks=False)     # the pipeline detects its own landmarks
    # handheld shake: a small random camera rotation per frame (a little smoothed), v -> dR v in the camera frame
    import torch

    rng = np.random.Generator(np.random.PCG64([spec.seed, _SHAKE_STREAM]))
    n = spec.frames
    shake = np.radians(0.8) * rng.standard_normal((n + 2, 3))
    shake = (shake[:-2] + 2 * shake[1:-1] + shake[2:]) / 4
    _, joints = model.vertices(torch.as_tensor(gt["shape"][None]), return_joints=True)
    root = joints[0, 0].double().numpy()
    chin_down = _rotation_matrix(np.array([math.radians(CAMERA_ABOVE_DEG), 0.0, 0.0]))
    for i in range(n):
        d_rotation = _rotation_matrix(shake[i])
        rotation = d_rotation @ _rotation_matrix(gt["pose"][i, 0]) @ chin_down
        gt["pose"][i, 0] = axis_angle(rotation)
        gt["translation"][i] = d_rotation @ (root + gt["translation"][i]) - root
    gt.update(model_source=np.array(model.source), expression_names=np.array(model.expression_names),
              joint_names=np.array(model.joint_names))
    return gt


def head_to_camera(model: HeadModel, gt: dict[str, np.ndarray], index: int) -> tuple[np.ndarray, np.ndarray]:
    """Frame ``index``: the 4x4 rigid transform model frame -> camera frame, and the (V, 3) unrooted vertices.

    The head's root joint turns the whole mesh rigidly, so ``posed = R v + t`` with ``v`` the vertices
    of the same frame with the root pose and translation at zero (neck, jaw, eyes and expression kept).
    """
    import torch

    pose = np.array(gt["pose"][index], np.float32)
    rotation = _rotation_matrix(pose[0])
    pose[0] = 0.0
    shape = torch.as_tensor(np.asarray(gt["shape"], np.float32)[None])
    with torch.no_grad():
        local, joints = model.vertices(shape, torch.as_tensor(gt["expression"][index:index + 1]),
                                       torch.as_tensor(pose[None]), return_joints=True)
    root = joints[0, 0].double().numpy()
    matrix = np.eye(4)
    matrix[:3, :3] = rotation
    matrix[:3, 3] = root + gt["translation"][index].astype(np.float64) - rotation @ root
    return matrix, local[0].numpy()


def _rotation_matrix(vector: np.ndarray) -> np.ndarray:
    """(3, 3) float64 rotation of an axis-angle vector (the head model's Rodrigues formula, in double precision)."""
    import torch

    return axis_angle_to_matrix(torch.as_tensor(np.asarray(vector, np.float64))).numpy()


# -- the phone ------------------------------------------------------------------------------------

class PhoneCamera:
    """Auto-exposure, auto white balance, motion blur, noise and 8-bit sRGB for a sequence of linear renders."""

    def __init__(self, settings: dict[str, Any], seed: int, fps: float):
        self.settings = settings
        self.seed = seed
        self.fps = fps
        self.gain: float | None = None
        self.white: np.ndarray | None = None
        self.log: list[dict[str, Any]] = []

    def __call__(self, linear: np.ndarray, index: int, motion_px: np.ndarray) -> np.ndarray:
        import cv2

        s = self.settings
        height, width = linear.shape[:2]
        centre = linear[height // 4: 3 * height // 4, width // 4: 3 * width // 4]
        level = float(luminance(np.asarray(centre, np.float32)).mean())
        target = 0.18 * s["exposure_compensation"] / max(level, 1e-4)
        lag = s["exposure_lag"]
        self.gain = target if self.gain is None else float(np.exp((1 - lag) * np.log(self.gain) + lag * np.log(target)))
        mean_rgb = np.maximum(centre.reshape(-1, 3).mean(0), 1e-5)
        cast = mean_rgb / mean_rgb.mean()
        # a partial grey-world correction, limited like a phone's AWB (it will not paint a warm room blue)
        white_target = np.clip(cast ** -s["wb_strength"], 1 / WB_LIMIT, WB_LIMIT)
        self.white = white_target if self.white is None else (1 - lag) * self.white + lag * white_target
        rgb_gain = (self.gain * self.white * np.asarray(s["wb_bias"])).astype(np.float32)
        image = linear * rgb_gain

        # motion blur: a line kernel along the face's image motion during the shutter time
        blur = np.asarray(motion_px, np.float64) * self.fps * s["shutter_s"]
        length = float(np.linalg.norm(blur))
        if length > 0.75:
            size = int(math.ceil(length)) | 1
            kernel = np.zeros((size, size), np.float32)
            c = size // 2
            direction = blur / length
            for t in np.linspace(-0.5, 0.5, 4 * size):
                x, y = c + t * length * direction[0], c + t * length * direction[1]
                kernel[int(round(y)), int(round(x))] += 1.0
            image = cv2.filter2D(image, -1, kernel / kernel.sum(), borderType=cv2.BORDER_REFLECT)

        rng = np.random.Generator(np.random.PCG64([self.seed, _NOISE_STREAM, index]))
        iso = max(float(self.gain), 1.0)
        variance = s["shot_noise"] * iso * np.clip(image, 0, None) + (s["read_noise"] * iso) ** 2
        image = image + np.sqrt(variance) * rng.standard_normal(image.shape, dtype=np.float32)
        from ..color import linear_to_srgb

        self.log.append({"frame": index, "gain": round(float(self.gain), 5), "white": [round(float(v), 5) for v in rgb_gain / self.gain],
                         "blur_px": round(length, 3)})
        return np.clip(np.rint(linear_to_srgb(image) * 255), 0, 255).astype(np.uint8)


def face_motion_px(model: HeadModel, gt: dict[str, np.ndarray]) -> np.ndarray:
    """(N, 2) image motion of the face centre per frame (central difference), pixels per frame."""
    import torch

    from ..render.camera import camera_for, project

    face = model.regions.get("face", np.ones(model.num_vertices, bool))
    points = []
    for i in range(len(gt["pose"])):
        with torch.no_grad():
            centre = posed_vertices(model, gt, i)[torch.as_tensor(face)].mean(0, keepdim=True)
        points.append(project(centre, camera_for(gt, i))[0, :2].numpy())
    points = np.asarray(points, np.float64)
    return np.gradient(points, axis=0) if len(points) > 1 else np.zeros_like(points)


# -- the capture ----------------------------------------------------------------------------------

def studio_camera(model: HeadModel, shape: np.ndarray, size: int = 512) -> dict[str, Any]:
    """The studio reference view: frontal, face centre on the optical axis at STUDIO_DISTANCE_M."""
    import torch

    with torch.no_grad():
        verts = model.vertices(torch.as_tensor(np.asarray(shape, np.float32)[None]))[0].numpy()
    face = model.regions.get("face", np.ones(model.num_vertices, bool))
    lo, hi = verts[face].min(0), verts[face].max(0)
    centre = (lo + hi) / 2
    matrix = np.eye(4)
    matrix[:3, 3] = -np.array([centre[0], centre[1], hi[2] + STUDIO_DISTANCE_M - (hi[2] - centre[2])])
    focal = 0.5 * size / math.tan(math.radians(STUDIO_FOV_DEG) / 2)
    return {"head_to_camera": matrix.tolist(), "focal_px": focal, "principal_px": [size / 2, size / 2], "size": [size, size]}


def write_synthetic_capture(out: str | os.PathLike, spec: SynthSpec = SynthSpec(), model: HeadModel | None = None,
                            progress: Any = None, overwrite: bool = False) -> dict[str, Any]:
    """Render ``spec`` into ``out`` (video.mp4 + gt/); returns a summary with the paths and timings.

    progress: a StageProgress-like object (``update(fraction, message)``), or None.
    """
    from ..blender.synth_render import SynthScene, encode_h264
    from ..color import linear_to_srgb
    from ..head.source import load_head
    from ..image_io import write_png16
    from .albedo import generate_albedo, sample_skin

    spec.validate()
    out = Path(out)
    video = out / G.VIDEO_NAME
    gt_dir = out / G.GT_DIR
    if not overwrite and (video.exists() or gt_dir.exists()):
        raise InputError(f"{out} already holds a synthetic capture; choose another folder or pass --overwrite")
    out.mkdir(parents=True, exist_ok=True)
    model = model or load_head(with_landmarks=True)
    report = _reporter(progress)
    timings: dict[str, float] = {}
    started = time.perf_counter()

    report(0.0, "sampling the identity, skin, motion and light")
    scene_params = sample_scene(spec)
    gt = sample_truth(model, spec, scene_params)
    albedo = generate_albedo(model, spec.albedo_size, spec.seed, skin=sample_skin(spec.seed, scene_params["tone"]))
    timings["albedo_s"] = time.perf_counter() - started

    tmp = Path(tempfile.mkdtemp(prefix=".synth-", dir=out))
    try:
        staged = tmp / G.GT_DIR
        staged.mkdir()
        write_png16(staged / G.ALBEDO_PNG, linear_to_srgb(albedo.linear))
        render = SynthScene(model.faces, model.face_uv, model.uv, staged / G.ALBEDO_PNG, scene_lighting(scene_params),
                            spec.width, spec.height,
                            spec.samples, roughness=scene_params["roughness"], specular=scene_params["specular"])
        try:
            # the true shading: irradiance in UV space, neutral head, in this scene
            report(0.03, "baking the true shading")
            t0 = time.perf_counter()
            neutral = _bake_shading(render, model, gt, spec, staged / G.SHADING_EXR)
            timings["bake_s"] = time.perf_counter() - t0

            t0 = time.perf_counter()
            phone = PhoneCamera(scene_params["phone"], spec.seed, spec.fps)
            files = _render_frames(render, model, gt, spec, phone, tmp / "frames", report)
            timings["frames_s"] = time.perf_counter() - t0

            report(0.91, "rendering the studio reference")
            t0 = time.perf_counter()
            camera = studio_camera(model, gt["shape"], spec.studio_size)
            _render_studio(render, camera, neutral, staged / G.STUDIO_PNG)
            timings["studio_s"] = time.perf_counter() - t0

            report(0.95, "encoding H.264")
            t0 = time.perf_counter()
            encoded = tmp / G.VIDEO_NAME
            encode_h264(files, spec.fps, (spec.width, spec.height), encoded, spec.video_quality)
            timings["encode_s"] = time.perf_counter() - t0
        finally:
            render.close()

        atomic_write_npz(staged / G.TRUTH_NPZ, **gt)
        timings["total_s"] = time.perf_counter() - started
        atomic_write_json(staged / G.SCENE_JSON, {
            "seed": spec.seed, "spec": asdict(spec), "skin": albedo.to_dict(), "scene": scene_params,
            "phone_log": phone.log if spec.artifacts else [], "studio_camera": camera,
            "model": {"source": model.source, "fingerprint": str(model.metadata.get("fingerprint", ""))},
            "timings_s": {key: round(value, 3) for key, value in timings.items()},
            "video_sha256": file_sha256(encoded),    # eval checks that a capture was made from this very video
        })
        _publish(staged, encoded, gt_dir, video)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    report(1.0, f"wrote {video}")
    return {"video": str(video.resolve()), "gt": str(gt_dir.resolve()), "frames": spec.frames,
            "size": [spec.width, spec.height], "skin_ita_deg": round(float(albedo.ita_deg), 2), "hdri": scene_params["hdri"],
            "timings_s": {key: round(value, 2) for key, value in timings.items()}}


def scene_lighting(scene_params: dict[str, Any]) -> Any:
    """The Blender ``Lighting`` of a sampled scene: its HDRI, tinted to the world's colour temperature, and lamps."""
    from ..blender.lighting import Lamp, Lighting
    from ..color import blackbody_rgb

    world_tint = blackbody_rgb(scene_params["world_kelvin"]) / blackbody_rgb(6500)
    lamps = tuple(Lamp(lamp["kind"], tuple(lamp["position"]), tuple(float(v) for v in blackbody_rgb(lamp["kelvin"])),
                       lamp["power_w"], lamp["size_m"]) for lamp in scene_params["lamps"])
    return Lighting(hdri=scene_params["hdri"], hdri_rotation_deg=scene_params["hdri_rotation_deg"],
                    hdri_strength=scene_params["hdri_strength"],
                    world_rgb=tuple(float(v) for v in world_tint / world_tint.max()), lamps=lamps)


def _bake_shading(render: Any, model: HeadModel, gt: dict[str, np.ndarray], spec: SynthSpec, path: Path) -> np.ndarray:
    """The true shading: irradiance in UV space of the neutral head in this scene, written as EXR; returns the
    neutral head's (V, 3) vertices."""
    import torch

    from ..image_io import write_exr

    with torch.no_grad():
        neutral = model.vertices(torch.as_tensor(gt["shape"][None]))[0].numpy()
    render.set_vertices(neutral)
    write_exr(path, render.bake_irradiance(spec.shading_size, spec.bake_samples))
    return neutral


def _render_frames(render: Any, model: HeadModel, gt: dict[str, np.ndarray], spec: SynthSpec, phone: PhoneCamera,
                   frames_dir: Path, report: Any) -> list[Path]:
    """Every frame of the clip through the phone (or plain sRGB without artifacts) into ``frames_dir`` as PNG."""
    import cv2

    from ..color import linear_to_srgb

    motion = face_motion_px(model, gt)
    frames_dir.mkdir()
    files = []
    for i in range(spec.frames):
        matrix, local = head_to_camera(model, gt, i)
        render.set_vertices(local)
        render.set_camera(matrix, float(gt["focal_px"][i]), gt["principal_px"][i])
        linear = render.render()
        frame = phone(linear, i, motion[i]) if spec.artifacts else \
            np.clip(np.rint(linear_to_srgb(linear) * 255), 0, 255).astype(np.uint8)
        files.append(frames_dir / f"{i:05d}.png")
        if not cv2.imwrite(str(files[-1]), frame[..., ::-1]):
            raise OSError(f"could not write {files[-1]}")
        report(0.06 + 0.84 * (i + 1) / spec.frames, f"rendered frame {i + 1}/{spec.frames}")
    return files


def _render_studio(render: Any, camera: dict[str, Any], neutral: np.ndarray, path: Path) -> None:
    """The neutral head under the studio preset from the studio camera, written as 8-bit sRGB."""
    import cv2

    from ..blender.lighting import studio_lighting
    from ..color import linear_to_srgb

    render.set_lighting(studio_lighting())
    render.set_vertices(neutral)
    _resize(render, *camera["size"])
    render.set_camera(np.asarray(camera["head_to_camera"]), camera["focal_px"], camera["principal_px"])
    studio = render.render()
    if not cv2.imwrite(str(path), np.clip(np.rint(linear_to_srgb(studio) * 255), 0, 255).astype(np.uint8)[..., ::-1]):
        raise OSError(f"could not write {path}")


def _publish(staged: Path, encoded: Path, gt_dir: Path, video: Path) -> None:
    """The ground truth first, then the video (its presence marks a complete capture)."""
    if video.exists():
        video.unlink()
    if gt_dir.exists():
        shutil.rmtree(gt_dir)
    os.replace(staged, gt_dir)
    with atomic_path(video) as final:
        shutil.copyfile(encoded, final)


def _resize(render: Any, width: int, height: int) -> None:
    render.width, render.height = width, height
    render.scene.render.resolution_x, render.scene.render.resolution_y = width, height


def _reporter(progress: Any):
    def report(fraction: float, message: str) -> None:
        if progress is not None:
            progress.update(fraction, message, force=True)
    return report


def spec_from_args(seed: int, frames: int, size: str, **kwargs: Any) -> SynthSpec:
    try:
        width, height = (int(v) for v in size.lower().split("x"))
    except ValueError:
        raise InputError(f"--size must look like 512x512, not {size!r}") from None
    return replace(SynthSpec(), seed=seed, frames=frames, width=width, height=height,
                   **{key: value for key, value in kwargs.items() if value is not None}).validate()


