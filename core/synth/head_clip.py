"""A synthetic "phone video" of a head model with known ground truth, rendered without Blender.

The head (any ``HeadModel``; the open head by default in tests and the demo)
gets a random identity, turns its face from one side to the other in front of
a fixed phone camera, nods and tilts a little, talks, smiles, raises its brows,
blinks and glances around, all smooth in time and all drawn from one seed. Each
frame is the posed mesh rasterized in torch (supersampled, then averaged
down), painted like the landmark embedding's renders (skin, lips, brows, eyes
with iris and pupil) under a seeded light, over a blurred background, with
sensor noise. Same seed, same ground truth and bit-identical frames.

Ground-truth conventions (also those of the pipeline's ``fit.npz``):

* world frame = camera frame with OpenGL axes: x right, y up, the camera at the
  origin looking along -z;
* frame i's head: ``model.vertices(shape[None], expression[i:i+1],
  pose[i:i+1], translation[i:i+1])``; a frontal head has root pose ~0 and
  translation ~(0, -y, -d) (its face looks along +z, at the camera);
* pixels: ``u = cx + fx X / (-Z)``, ``v = cy - fy Y / (-Z)``, i.e.
  ``PinholeCamera(fx, fy, cx, cy, rotation=diag(1, -1, -1), translation=0)``
  with ``project`` (OpenCV image convention: origin at the top-left corner,
  pixel centres at +0.5);
* yaw > 0 turns the face towards image right (the subject's left), pitch > 0
  lifts the chin, roll > 0 tilts the top of the head towards image left
  (counter-clockwise as the camera sees it).

This module owns the sampling of the motion, the rendering and the clip and
ground-truth files; it does not detect landmarks or fit anything.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any, Iterator

import numpy as np

from ..atomic import atomic_write_npz
from ..errors import InputError
from ..head.model import HeadModel, HeadModelError
from ..render.camera import axis_angle, camera_for

CAMERA_ROTATION = np.diag([1.0, -1.0, -1.0])   # world (OpenGL axes) -> OpenCV camera frame
VISIBLE_DEPTH_TOLERANCE_M = 0.005             # a landmark this close to the depth buffer's surface is visible
KNOT_SPACING_S = 0.5                           # smooth random signals get a new random value this often
BLINK_HALF_WIDTH_S = 0.08
# streams of the seed (numpy SeedSequence entropy [seed, stream]); the ground truth uses PCG64(seed) itself
_BACKGROUND_STREAM, _LIGHT_STREAM, _NOISE_STREAM = 1, 2, 3


@dataclass(frozen=True)
class HeadClipSpec:
    frames: int = 30                 # number of frames
    width: int = 640                 # frame size, pixels
    height: int = 480
    fps: float = 30.0
    seed: int = 0                    # everything random (identity, motion, light, background, noise) follows it
    yaw_deg: float = 60.0            # the face turns 0 -> +yaw -> 0 -> -yaw -> 0 over the clip (plus a little jitter)
    pitch_deg: float = 10.0          # amplitude of a smooth random nod
    roll_deg: float = 4.0            # amplitude of a smooth random tilt
    distance_m: float = 0.45         # camera to the centre of the face, frontal
    distance_jitter_m: float = 0.03  # smooth random variation of the distance
    offset_jitter_m: float = 0.012   # smooth random sideways / vertical drift of the head
    fov_y_deg: float = 50.0          # vertical field of view (phone-like)
    shape_sigma: float = 0.8         # identity: the first ``shape_components`` coefficients ~ N(0, sigma^2), rest 0
    shape_components: int = 20
    expression_strength: float = 1.0  # scales every expression amplitude (0 = neutral face throughout)
    blinks_per_s: float = 0.4        # mean blink rate
    eye_deg: float = 4.0             # amplitude of the eyes' smooth random gaze (yaw; pitch is 0.6 of it)
    noise_sigma: float = 2.0         # Gaussian sensor noise, 8-bit levels
    supersampling: int = 2           # frames are rasterized this many times larger, then averaged down
    light_spread_deg: float = 35.0   # the light comes from within this angle of "above the camera"

    @property
    def duration_s(self) -> float:
        return self.frames / self.fps

    def validate(self) -> "HeadClipSpec":
        if self.frames < 1 or self.width < 64 or self.height < 64 or self.fps <= 0 or self.supersampling < 1:
            raise InputError(f"cannot make a head clip of {self.frames} frames at {self.width}x{self.height}, "
                             f"{self.fps} fps, supersampling {self.supersampling}")
        if not 1.0 <= self.fov_y_deg <= 150.0 or self.distance_m - self.distance_jitter_m < 0.2:
            raise InputError(f"a head clip needs a field of view in 1..150 degrees and the face at least 0.2 m "
                             f"from the camera (got {self.fov_y_deg} degrees, {self.distance_m} m)")
        return self


# -- ground truth ---------------------------------------------------------------------------------

def sample_head_clip(model: HeadModel, spec: HeadClipSpec = HeadClipSpec(), landmarks: bool = True) -> dict[str, np.ndarray]:
    """The ground truth of the clip ``spec`` describes (no images): see the module docstring for conventions.

    Keys: shape (S,), expression (N, E), pose (N, J, 3), translation (N, 3),
    focal_px (N,), principal_px (N, 2), image_size (2,) [width, height],
    camera_rotation (N, 3, 3), camera_translation (N, 3), frame_index (N,),
    time_s (N,), landmarks_px (N, 478, 2), landmarks_visible (N, 478) and
    model_fingerprint (a 0-d string array). ``landmarks=False`` leaves out the
    two landmark keys and the per-frame rasterization that makes them.
    """
    spec.validate()
    if landmarks and not model.has_landmarks:
        raise HeadModelError(f"the {model.source} head model has no landmark embedding; a head clip needs one")
    joints = list(model.joint_names)
    if joints[:3] != ["root", "neck", "jaw"] or model.num_joints != 5:
        raise HeadModelError(f"a head clip needs FLAME's joints (root, neck, jaw, eyes), not {joints}")
    rng = np.random.Generator(np.random.PCG64(spec.seed))
    n = spec.frames
    t = np.arange(n) / max(n - 1, 1)                      # 0..1 over the clip
    knots = max(3, 1 + math.ceil(spec.duration_s / KNOT_SPACING_S))

    shape = np.zeros(model.num_shape, np.float32)
    used = min(spec.shape_components, model.num_shape)
    shape[:used] = rng.normal(0.0, spec.shape_sigma, used)
    motion = _head_motion(rng, spec, t, knots)              # the draws keep this order: seeds stay reproducible
    expression = _expressions(rng, model, spec, t, knots)

    pose = np.zeros((n, model.num_joints, 3), np.float64)
    head_rotation = np.stack([_rotation(y, p, r) for y, p, r in zip(motion["yaw"], motion["pitch"], motion["roll"])])
    pose[:, 0] = [axis_angle(R) for R in head_rotation]
    eye_pose = [axis_angle(_rotation(y, p, 0.0)) for y, p in zip(motion["eye_yaw"], motion["eye_pitch"])]
    pose[:, 3] = pose[:, 4] = eye_pose
    translation = _translation(model, shape, head_rotation, motion["distance"], motion["offset"])

    focal = 0.5 * spec.height / math.tan(math.radians(spec.fov_y_deg) / 2)
    gt: dict[str, np.ndarray] = {
        "shape": shape,
        "expression": expression.astype(np.float32),
        "pose": pose.astype(np.float32),
        "translation": translation.astype(np.float32),
        "focal_px": np.full(n, focal, np.float32),
        "principal_px": np.tile(np.array([spec.width / 2, spec.height / 2], np.float32), (n, 1)),
        "image_size": np.array([spec.width, spec.height], np.int64),
        "camera_rotation": np.tile(CAMERA_ROTATION.astype(np.float32), (n, 1, 1)),
        "camera_translation": np.zeros((n, 3), np.float32),
        "frame_index": np.arange(n, dtype=np.int64),
        "time_s": (np.arange(n) / spec.fps).astype(np.float64),
        "model_fingerprint": np.array(str(model.metadata.get("fingerprint", ""))),
    }
    if landmarks:
        gt["landmarks_px"], gt["landmarks_visible"] = _true_landmarks(model, gt, spec)
    return gt


def _head_motion(rng: np.random.Generator, spec: HeadClipSpec, t: np.ndarray, knots: int) -> dict[str, np.ndarray]:
    """The sweep, a nod, a tilt, a drift in distance and position, and the eyes' wandering, per frame."""
    return {
        "yaw": spec.yaw_deg * np.sin(2 * np.pi * t) + 0.05 * spec.yaw_deg * _smooth(rng, t, knots),
        "pitch": spec.pitch_deg * _smooth(rng, t, knots),
        "roll": spec.roll_deg * _smooth(rng, t, knots),
        "distance": spec.distance_m + spec.distance_jitter_m * _smooth(rng, t, knots),
        "offset": spec.offset_jitter_m * np.stack([_smooth(rng, t, knots), _smooth(rng, t, knots)], 1),
        "eye_yaw": spec.eye_deg * _smooth(rng, t, knots),
        "eye_pitch": 0.6 * spec.eye_deg * _smooth(rng, t, knots),
    }


def _expressions(rng: np.random.Generator, model: HeadModel, spec: HeadClipSpec, t: np.ndarray, knots: int) -> np.ndarray:
    """(N, E) float64 expression weights in 0..1: a smile, the jaw, the brows and blinks."""
    n = len(t)
    expression = np.zeros((n, model.num_expression), np.float64)
    smile = 0.55 * _smooth01(rng, t, knots)
    smile_asymmetry = 0.1 * _smooth(rng, t, knots)
    named = {
        "jawOpen": 0.35 * _smooth01(rng, t, knots) ** 1.5,
        "mouthSmileLeft": smile + smile_asymmetry,
        "mouthSmileRight": smile - smile_asymmetry,
        "browInnerUp": 0.5 * _smooth01(rng, t, knots) ** 2,
        "eyeBlinkLeft": _blinks(rng, t * (n - 1) / spec.fps, spec.blinks_per_s, spec.duration_s),
    }
    named["eyeBlinkRight"] = named["eyeBlinkLeft"]
    for name, values in named.items():
        if name in model.expression_names:
            expression[:, model.expression_names.index(name)] = values * spec.expression_strength
    return np.clip(expression, 0.0, 1.0)


def _translation(model: HeadModel, shape: np.ndarray, head_rotation: np.ndarray, distance: np.ndarray,
                 offset: np.ndarray) -> np.ndarray:
    """(N, 3) root translation that puts the head's pivot (behind the face, at the height of its centre) where the
    motion says: ``offset`` sideways and up, ``distance`` in front of the camera."""
    import torch

    template = np.asarray(model.template_m, np.float64)
    face = model.regions.get("face")
    face_points = template[face] if face is not None and face.any() else template
    face_centre = (face_points.min(0) + face_points.max(0)) / 2
    pivot = np.array([0.0, face_centre[1], (template[:, 2].min() + template[:, 2].max()) / 2])
    _, rest_joints = model.vertices(shape=torch.as_tensor(shape[None]), return_joints=True)
    root = rest_joints[0, 0].double().numpy()
    target = np.concatenate([offset, -(distance + face_centre[2] - pivot[2])[:, None]], 1)
    return target - (np.einsum("nij,j->ni", head_rotation, pivot - root) + root)


def _true_landmarks(model: HeadModel, gt: dict[str, np.ndarray], spec: HeadClipSpec) -> tuple[np.ndarray, np.ndarray]:
    """(N, L, 2) true landmark projections and (N, L) visibility: where their triangle faces the camera and the
    depth buffer agrees."""
    import torch

    from ..render.camera import project
    from ..render.raster import rasterize

    n = len(gt["pose"])
    faces = torch.as_tensor(np.asarray(model.faces, np.int64))
    landmark_px = np.zeros((n, len(model.landmark_faces), 2), np.float32)
    visible = np.zeros((n, len(model.landmark_faces)), bool)
    for i in range(n):
        verts = posed_vertices(model, gt, i)
        camera = camera_for(gt, i)
        points = model.landmarks(verts[None])[0]
        projected = project(points, camera)
        landmark_px[i] = projected[:, :2].numpy()
        raster = rasterize(project(verts, camera), faces, spec.height, spec.width)
        corners = verts[faces[torch.as_tensor(model.landmark_faces, dtype=torch.long)]]   # (L, 3, 3) world
        normal = torch.linalg.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
        facing = (normal * points).sum(1) < 0                       # the camera (origin) is in front of the triangle
        col, row = projected[:, 0].floor().long(), projected[:, 1].floor().long()
        inside = (col >= 0) & (col < spec.width) & (row >= 0) & (row < spec.height)
        surface = raster.depth[row.clamp(0, spec.height - 1), col.clamp(0, spec.width - 1)]
        unoccluded = projected[:, 2] <= surface + VISIBLE_DEPTH_TOLERANCE_M
        visible[i] = (facing & inside & unoccluded).numpy()
    return landmark_px, visible


def posed_vertices(model: HeadModel, gt: dict[str, np.ndarray], index: int) -> Any:
    """(V, 3) float32 torch world vertices of frame ``index`` of a ground truth."""
    import torch

    def row(key: str) -> Any:
        return torch.as_tensor(np.asarray(gt[key][index:index + 1], np.float32))

    shape = torch.as_tensor(np.asarray(gt["shape"], np.float32)[None])
    return model.vertices(shape, row("expression"), row("pose"), row("translation"))[0]


def _smooth(rng: np.random.Generator, t: np.ndarray, knots: int) -> np.ndarray:
    """A smooth random signal in [-1, 1] over t in [0, 1]: random knot values joined by smoothstep curves."""
    values = rng.uniform(-1.0, 1.0, knots)
    position = np.clip(t, 0.0, 1.0) * (knots - 1)
    k = np.minimum(np.floor(position).astype(int), knots - 2)
    f = position - k
    s = f * f * (3 - 2 * f)
    return values[k] * (1 - s) + values[k + 1] * s


def _smooth01(rng: np.random.Generator, t: np.ndarray, knots: int) -> np.ndarray:
    return (_smooth(rng, t, knots) + 1) / 2


def _blinks(rng: np.random.Generator, time_s: np.ndarray, rate_per_s: float, duration_s: float) -> np.ndarray:
    """Eyelid closure 0..1 over time: a few short triangular blinks at random times."""
    count = rng.poisson(rate_per_s * duration_s)
    starts = rng.uniform(0.0, duration_s, count)
    closure = np.zeros_like(time_s)
    for start in starts:
        closure = np.maximum(closure, 1 - np.abs(time_s - start) / BLINK_HALF_WIDTH_S)
    return np.clip(closure, 0.0, 1.0)


def _rotation(yaw_deg: float, pitch_deg: float, roll_deg: float) -> np.ndarray:
    """R = R_y(yaw) R_x(-pitch) R_z(roll): yaw turns +z towards +x, pitch > 0 lifts the face (+z towards +y)."""
    y, p, r = np.radians([yaw_deg, -pitch_deg, roll_deg])
    ry = np.array([[np.cos(y), 0, np.sin(y)], [0, 1, 0], [-np.sin(y), 0, np.cos(y)]])
    rx = np.array([[1, 0, 0], [0, np.cos(p), -np.sin(p)], [0, np.sin(p), np.cos(p)]])
    rz = np.array([[np.cos(r), -np.sin(r), 0], [np.sin(r), np.cos(r), 0], [0, 0, 1]])
    return ry @ rx @ rz


# -- rendering ------------------------------------------------------------------------------------

def render_frames(model: HeadModel, gt: dict[str, np.ndarray], spec: HeadClipSpec = HeadClipSpec()) -> Iterator[np.ndarray]:
    """(H, W, 3) uint8 BGR frames of a ground truth, one at a time (``spec`` gives supersampling, light, noise)."""
    import torch

    from ..head.landmarks import FacePainter
    from ..render.camera import project
    from ..render.normals import vertex_normals
    from ..render.raster import RasterResult, interpolate, rasterize

    spec.validate()
    width, height = (int(v) for v in gt["image_size"])
    ss = spec.supersampling
    painter = FacePainter(model)
    faces = torch.as_tensor(np.asarray(model.faces, np.int64))
    template = torch.as_tensor(np.asarray(model.template_m, np.float32))
    flip = torch.tensor([1.0, -1.0, -1.0])                       # world (OpenGL axes) -> OpenCV camera axes
    background = background_image(spec.seed, width, height)      # (H, W, 3) float32 RGB
    background_ss = torch.as_tensor(background).repeat_interleave(ss, 0).repeat_interleave(ss, 1)
    light = torch.as_tensor(_light(spec), dtype=torch.float32)

    for i in range(len(gt["frame_index"])):
        verts = posed_vertices(model, gt, i)
        raster = rasterize(project(verts, camera_for(gt, i, ss)), faces, height * ss, width * ss)
        frame = background.copy()
        rows, cols = torch.nonzero(raster.mask.any(1)).squeeze(1), torch.nonzero(raster.mask.any(0)).squeeze(1)
        if len(rows):
            # paint only the head's bounding box (whole output pixels), then average it down into the frame
            r0, r1 = int(rows[0]) // ss, int(rows[-1]) // ss + 1
            c0, c1 = int(cols[0]) // ss, int(cols[-1]) // ss + 1
            box = (slice(r0 * ss, r1 * ss), slice(c0 * ss, c1 * ss))
            crop = RasterResult(raster.face_index[box], raster.barycentrics[box], raster.depth[box])
            # rest positions (where eyes and brows are painted) and posed normals in the camera frame, together
            rest_and_normals = interpolate(torch.cat([template, vertex_normals(verts, faces) * flip], 1), faces, crop)
            rgb = painter.shade(crop, rest_and_normals[..., :3], normals=rest_and_normals[..., 3:], light=light,
                                background=background_ss[box])
            frame[r0:r1, c0:c1] = rgb.reshape(r1 - r0, ss, c1 - c0, ss, 3).mean((1, 3)).numpy()
        if spec.noise_sigma > 0:
            noise_rng = np.random.Generator(np.random.PCG64([spec.seed, _NOISE_STREAM, i]))
            frame += spec.noise_sigma * noise_rng.standard_normal(frame.shape, dtype=np.float32)
        yield np.ascontiguousarray(np.clip(np.rint(frame), 0, 255).astype(np.uint8)[..., ::-1])


def _light(spec: HeadClipSpec) -> np.ndarray:
    """Direction towards the light in the OpenCV camera frame: above the camera, turned by up to the spread."""
    rng = np.random.Generator(np.random.PCG64([spec.seed, _LIGHT_STREAM]))
    azimuth = np.radians(rng.uniform(-spec.light_spread_deg, spec.light_spread_deg))
    elevation = np.radians(22.0 + rng.uniform(-0.5, 0.5) * spec.light_spread_deg)
    return np.array([np.sin(azimuth) * np.cos(elevation), -np.sin(elevation), -np.cos(azimuth) * np.cos(elevation)])


def background_image(seed: int, width: int, height: int) -> np.ndarray:
    """(H, W, 3) float32 RGB 0..255 behind the head of a clip: a muted gradient with a few blurred shapes on it."""
    import cv2

    rng = np.random.Generator(np.random.PCG64([seed, _BACKGROUND_STREAM]))

    def muted() -> np.ndarray:
        grey = rng.uniform(60, 200)
        return np.clip(grey + rng.uniform(-35, 35, 3), 0, 255)

    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    angle = rng.uniform(0, 2 * np.pi)
    along = (np.cos(angle) * (xs - width / 2) + np.sin(angle) * (ys - height / 2)) / max(width, height) + 0.5
    along = np.clip(along, 0, 1)[..., None]
    image = ((1 - along) * muted() + along * muted()).astype(np.float32)
    for _ in range(int(rng.integers(3, 7))):
        layer = np.zeros((height, width), np.float32)
        centre = (int(rng.uniform(0, width)), int(rng.uniform(0, height)))
        axes = (int(rng.uniform(0.05, 0.3) * width), int(rng.uniform(0.05, 0.3) * height))
        if rng.uniform() < 0.5:
            cv2.ellipse(layer, centre, axes, float(rng.uniform(0, 180)), 0, 360, 1.0, -1)
        else:
            cv2.rectangle(layer, (centre[0] - axes[0], centre[1] - axes[1]), (centre[0] + axes[0], centre[1] + axes[1]), 1.0, -1)
        layer = cv2.GaussianBlur(layer, (0, 0), sigmaX=0.02 * max(width, height) * rng.uniform(0.5, 2.0))[..., None]
        image = (1 - 0.7 * layer) * image + 0.7 * layer * muted().astype(np.float32)
    return np.ascontiguousarray(image, np.float32)


# -- files ----------------------------------------------------------------------------------------

def write_head_clip(model: HeadModel, video_path: str | os.PathLike, gt_path: str | os.PathLike,
                    spec: HeadClipSpec = HeadClipSpec(), progress: Any = None) -> dict[str, np.ndarray]:
    """Write the clip (mp4, codec mp4v) and its ground truth (.npz), each atomically; returns the ground truth.

    progress: an object with ``update(fraction, message)`` or None.
    """
    from ..video import write_video

    gt = sample_head_clip(model, spec)
    atomic_write_npz(gt_path, **gt)

    def frames() -> Iterator[np.ndarray]:
        for i, frame in enumerate(render_frames(model, gt, spec)):
            yield frame
            if progress is not None:
                progress.update((i + 1) / spec.frames, f"rendered frame {i + 1}/{spec.frames}")

    write_video(video_path, frames(), spec.fps, (spec.width, spec.height))
    return gt
