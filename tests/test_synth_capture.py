"""The Cycles phone-capture generator (`studio-avatar synth`): conventions, determinism, the shading bake, the phone.

Renders are tiny (few samples, 64-160 px) so the whole file stays under a
minute; the 48-frame 512^2 timing lives in bench/quality.py.
"""

import hashlib
import json
from dataclasses import replace

import numpy as np
import pytest

from studio_avatar.core.errors import InputError
from studio_avatar.core.head.open_head import get_open_head
from studio_avatar.core.render.camera import camera_for
from studio_avatar.core.synth import ground_truth as G
from studio_avatar.core.synth.head_clip import posed_vertices
from studio_avatar.core.synth.phone_capture import (PhoneCamera, SynthSpec, head_to_camera, sample_scene, sample_truth,
                                                    write_synthetic_capture)
from studio_avatar.core.render.camera import project
from studio_avatar.core.render.raster import rasterize

bpy = pytest.importorskip("bpy")
from studio_avatar.core.blender.lighting import Lighting  # noqa: E402
from studio_avatar.core.blender.synth_render import SynthScene  # noqa: E402

TINY = SynthSpec(frames=4, width=96, height=80, albedo_size=256, shading_size=64, samples=2, bake_samples=2,
                 studio_size=64, hdri="courtyard")


@pytest.fixture(scope="module")
def head():
    return get_open_head()


def _frames(video):
    import cv2

    capture = cv2.VideoCapture(str(video))
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            return frames
        frames.append(frame.astype(np.float32))


def test_cycles_frames_follow_the_fit_conventions(head, tmp_path):
    """The Cycles silhouette of each frame is the torch rasterizer's silhouette of the true fit (non-square, off-axis)."""
    from studio_avatar.core.image_io import write_png16

    spec = replace(TINY, width=160, height=120, frames=3, yaw_deg=70.0)
    truth = sample_truth(head, spec, sample_scene(spec))
    truth["principal_px"][:] = (86.0, 55.0)          # off-centre principal point: checks the lens shift signs
    write_png16(tmp_path / "grey.png", np.full((8, 8, 3), 0.5))
    scene = SynthScene(head.faces, head.face_uv, head.uv, tmp_path / "grey.png", Lighting(hdri=None), 160, 120, 1)
    faces = __import__("torch").as_tensor(np.asarray(head.faces, np.int64))
    try:
        for i in range(3):
            matrix, local = head_to_camera(head, truth, i)
            scene.set_vertices(local)
            scene.set_camera(matrix, float(truth["focal_px"][i]), truth["principal_px"][i])
            cycles_mask = scene.render(alpha=True)[..., 3] > 0.5
            ours = rasterize(project(posed_vertices(head, truth, i), camera_for(truth, i)), faces, 120, 160).mask.numpy()
            iou = (cycles_mask & ours).sum() / max((cycles_mask | ours).sum(), 1)
            assert ours.sum() > 500
            assert iou > 0.95, f"frame {i}: Cycles and the fit conventions disagree (IoU {iou:.3f})"
    finally:
        scene.close()


def test_bake_is_the_irradiance(head, tmp_path):
    """Under a uniform white world of radiance 1, open skin receives irradiance ~1 and the mouth's inside far less."""
    import torch

    from studio_avatar.core.image_io import write_png16
    from studio_avatar.core.texture.uv import texel_geometry

    write_png16(tmp_path / "grey.png", np.full((8, 8, 3), 0.5))
    scene = SynthScene(head.faces, head.face_uv, head.uv, tmp_path / "grey.png", Lighting(hdri=None, world_rgb=(1.0, 1.0, 1.0)),
                       64, 64, 1)
    try:
        scene.set_vertices(head.template_m)
        irradiance = scene.bake_irradiance(128, 64)
    finally:
        scene.close()
    geometry = texel_geometry(head, 128)
    per_texel = torch.as_tensor(irradiance.reshape(-1, 3))[geometry.texels].mean(1).numpy()
    face = geometry.regions["face"].numpy()
    mouth = geometry.regions["mouth_interior"].numpy()
    assert 0.75 < np.median(per_texel[face]) < 1.1
    assert np.median(per_texel[mouth]) < 0.5 * np.median(per_texel[face])


def test_same_seed_same_capture(head, tmp_path):
    first = write_synthetic_capture(tmp_path / "a", TINY, head)
    write_synthetic_capture(tmp_path / "b", TINY, head)
    write_synthetic_capture(tmp_path / "c", replace(TINY, seed=1), head)
    a, b, c = (tmp_path / name for name in "abc")
    assert (a / "gt" / G.ALBEDO_PNG).read_bytes() == (b / "gt" / G.ALBEDO_PNG).read_bytes()
    assert (a / "gt" / G.ALBEDO_PNG).read_bytes() != (c / "gt" / G.ALBEDO_PNG).read_bytes()
    truth_a, truth_b = G.read_ground_truth(a), G.read_ground_truth(b)
    assert truth_a.truth.keys() == truth_b.truth.keys()
    for key in truth_a.truth:
        assert np.array_equal(truth_a.truth[key], truth_b.truth[key]), key
    scene_a, scene_b = (json.loads((root / "gt" / G.SCENE_JSON).read_text()) for root in (a, b))
    for root, scene in ((a, scene_a), (b, scene_b)):
        scene.pop("timings_s")
        # the frames differ by render noise, so each video has its own hash, the one its ground truth records
        assert scene.pop("video_sha256") == hashlib.sha256((root / G.VIDEO_NAME).read_bytes()).hexdigest()
    assert scene_a == scene_b
    frames_a, frames_b, frames_c = (_frames(root / G.VIDEO_NAME) for root in (a, b, c))
    assert len(frames_a) == len(frames_b) == TINY.frames
    assert max(np.abs(fa - fb).mean() for fa, fb in zip(frames_a, frames_b)) < 1.5      # renderer + codec noise only
    assert min(np.abs(fa - fc).mean() for fa, fc in zip(frames_a, frames_c)) > 3.0       # another seed is another video
    # the ground truth is complete and consistent
    truth = truth_a.truth
    assert truth["pose"].shape == (TINY.frames, head.num_joints, 3) and truth["image_size"].tolist() == [96, 80]
    assert truth_a.albedo_linear.shape == (256, 256, 3) and truth_a.shading.shape == (64, 64, 3)
    assert (a / "gt" / G.STUDIO_PNG).is_file()
    assert first["timings_s"]["frames_s"] > 0
    with pytest.raises(InputError, match="already holds"):
        write_synthetic_capture(a, TINY, head)


def test_phone_camera_exposes_and_adds_noise():
    settings = {"exposure_compensation": 1.0, "exposure_lag": 1.0, "wb_strength": 1.0, "wb_bias": [1.0, 1.0, 1.0],
                "shutter_s": 1 / 60, "shot_noise": 3e-4, "read_noise": 1 / 255}
    dark = np.full((64, 64, 3), 0.02, np.float32) * np.array([1.0, 0.8, 0.6], np.float32)
    bright = dark * 10
    from studio_avatar.core.color import srgb_to_linear

    out_dark = PhoneCamera(settings, 0, 30.0)(dark, 0, np.zeros(2))
    out_bright = PhoneCamera(settings, 0, 30.0)(bright, 0, np.zeros(2))
    for out in (out_dark, out_bright):   # metered to mid grey and white-balanced, whatever came in
        mean = srgb_to_linear(out.reshape(-1, 3) / 255.0).mean(0)
        assert abs(mean.mean() - 0.18) < 0.03 and np.ptp(mean) < 0.03
    assert out_dark.std() > 1.5 * out_bright.std()          # the dark scene needed more gain: more noise

    blurred = PhoneCamera(settings, 0, 30.0)
    edge = np.zeros((64, 64, 3), np.float32)
    edge[:, 32:] = 0.4
    sharp_out = PhoneCamera({**settings, "shot_noise": 0.0, "read_noise": 0.0}, 0, 30.0)(edge, 0, np.zeros(2))
    moving_out = PhoneCamera({**settings, "shot_noise": 0.0, "read_noise": 0.0}, 0, 30.0)(edge, 0, np.array([20.0, 0.0]))
    width = lambda img: int(((img[32, :, 1] > 10) & (img[32, :, 1] < 245)).sum())  # noqa: E731
    assert width(moving_out) >= width(sharp_out) + 3
    assert blurred.log == []


def test_bad_specs_are_refused():
    with pytest.raises(InputError, match="tone"):
        replace(TINY, tone=1.5).validate()
    with pytest.raises(InputError, match="lighting"):
        replace(TINY, hdri="moon").validate()
    with pytest.raises(InputError):
        replace(TINY, frames=1).validate()
