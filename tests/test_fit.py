"""Fitting the head model to landmarks, measured against known ground truth.

1. Landmarks projected from a posed head with known shape, expressions, pose
   and camera, plus noise, dropouts and gross outliers -> fit -> per-frame
   face vertices and reprojection error (renderer-independent).
2. The full path on real pixels: a rendered clip of the head -> frames ->
   track (mediapipe) -> fit, compared with the clip's ground truth.
"""

import json

import numpy as np
import pytest
import torch

from studio_avatar.core.fit import FitParams, load_fit
from studio_avatar.core.fit.evaluate import compare_with_truth
from studio_avatar.core.fit.optimize import FitOptions, fit_landmarks
from studio_avatar.core.frames import link_tracks, select_frames
from studio_avatar.core.head.open_head import get_open_head
from studio_avatar.core.pipeline import reconstruct
from studio_avatar.core.progress import Progress
from studio_avatar.core.synth.head_clip import HeadClipSpec, sample_head_clip, write_head_clip


@pytest.fixture(scope="module")
def model():
    return get_open_head()


def _fit_dict(result, frame_index):
    n = len(result.pose)
    return {"shape": result.shape, "expression": result.expression, "pose": result.pose, "translation": result.translation,
            "focal_px": np.full(n, result.focal_px), "camera_rotation": np.tile(np.diag([1.0, -1.0, -1.0]), (n, 1, 1)),
            "camera_translation": np.zeros((n, 3)), "video_index": frame_index}


def test_subset_vertices_match_the_full_forward(model):
    g = torch.Generator().manual_seed(0)
    shape = torch.randn(1, 30, generator=g, dtype=torch.float64)
    expression = torch.rand(3, 52, generator=g, dtype=torch.float64) * 0.3
    pose = torch.randn(3, 5, 3, generator=g, dtype=torch.float64) * 0.2
    translation = torch.randn(3, 3, generator=g, dtype=torch.float64)
    full = model.vertices(shape.expand(3, -1), expression, pose, translation)
    ids = np.array([0, 5, 77, 1000, model.num_vertices - 1])
    part = model.vertices(shape, expression, pose, translation, subset=ids)
    assert torch.allclose(full[:, ids], part, atol=1e-12)


def test_fit_recovers_a_known_head_from_noisy_landmarks(model):
    spec = HeadClipSpec(frames=40, width=1280, height=720, seed=3)
    truth = sample_head_clip(model, spec)
    rng = np.random.default_rng(7)
    observed = truth["landmarks_px"].astype(np.float64).copy()
    extent = np.ptp(observed, axis=1)
    face_size = np.sqrt(extent[:, 0] * extent[:, 1])
    observed += rng.normal(0.0, 1.0, observed.shape) * 0.0025 * face_size[:, None, None]   # tracker jitter
    confidence = truth["landmarks_visible"].astype(np.float64)                             # hidden ones are not tracked
    dropped = rng.random(confidence.shape) < 0.05
    observed[dropped], confidence[dropped] = np.nan, 0.0                                   # dropouts
    outliers = rng.random(confidence.shape) < 0.005
    observed[outliers] += rng.normal(0.0, 40.0, (int(outliers.sum()), 2))                  # gross tracker failures

    result = fit_landmarks(model, observed, confidence, (spec.width, spec.height), times_s=truth["time_s"],
                           options=FitOptions(focal_px=float(truth["focal_px"][0])))
    errors = compare_with_truth(model, _fit_dict(result, truth["frame_index"]), truth)
    print(f"\nsynthetic landmarks: face vertices {errors['vertex_error_mm_mean']:.2f} mm mean "
          f"(worst frame {errors['vertex_error_mm_max_frame']:.2f}), rotation {errors['rotation_error_deg_mean']:.2f} deg, "
          f"reprojection {100 * result.reproj_iod_per_frame.mean():.2f}% IOD")
    assert errors["vertex_error_mm_mean"] < 2.0
    assert result.reproj_iod_per_frame.mean() < 0.01
    assert errors["rotation_error_deg_mean"] < 2.0


def test_fit_without_noise_is_nearly_exact(model):
    spec = HeadClipSpec(frames=12, width=640, height=480, seed=5)
    truth = sample_head_clip(model, spec)
    result = fit_landmarks(model, truth["landmarks_px"], truth["landmarks_visible"].astype(float), (640, 480),
                           times_s=truth["time_s"], options=FitOptions(focal_px=float(truth["focal_px"][0])))
    errors = compare_with_truth(model, _fit_dict(result, truth["frame_index"]), truth)
    assert errors["vertex_error_mm_mean"] < 1.5
    assert result.reproj_iod_per_frame.mean() < 0.003
    # a wrong model (mirror-flipped landmarks) must not fit: the measure can fail
    flipped = truth["landmarks_px"].copy()
    flipped[..., 0] = 640 - flipped[..., 0]
    bad = fit_landmarks(model, flipped, truth["landmarks_visible"].astype(float), (640, 480), times_s=truth["time_s"],
                        options=FitOptions(focal_px=float(truth["focal_px"][0]), iterations_full=100))
    assert compare_with_truth(model, _fit_dict(bad, truth["frame_index"]), truth)["vertex_error_mm_mean"] > 5.0


def test_frame_selection_covers_the_turn_and_follows_the_biggest_face():
    times = np.linspace(0, 10, 300)
    yaws = np.concatenate([np.zeros(240), np.linspace(-1, 1, 60)])     # frontal for 8 s, then a quick turn
    scores = np.ones(300)
    picks, why = select_frames(times, yaws, scores, 30)
    assert len(picks) == 30 and len(set(picks.tolist())) == 30
    chosen = yaws[picks]
    assert chosen.min() < -0.8 and chosen.max() > 0.8                  # both ends of the turn are in (one yaw bin = 0.2)
    assert (np.abs(chosen) > 0.2).sum() >= 8                            # the turn is not drowned by frontal frames
    assert any(w.startswith("best of yaw bin") for w in why) and any(w == "spread in time" for w in why)

    from studio_avatar.core.frames import _Scan

    def scan(i, boxes):
        n = len(boxes)
        return _Scan(i, i / 30, 0.5, [np.array(b, float) for b in boxes], [0.9] * n, [0.0] * n, [1.0] * n, [0.5] * n, [0.0] * n)

    big, small = (0.1, 0.1, 0.5, 0.6), (0.7, 0.2, 0.85, 0.4)
    scans = [scan(i, [small, big] if i % 5 else [small]) for i in range(20)]
    tracks = link_tracks(scans)
    assert len(tracks) == 2
    first = tracks[0]
    assert all(np.allclose(scans[s].boxes[d], big) for s, d in first)   # the larger face wins though seen less often


@pytest.fixture(scope="module")
def rendered_capture(model, tmp_path_factory):
    folder = tmp_path_factory.mktemp("rendered")
    spec = HeadClipSpec(frames=30, width=640, height=480, seed=0, yaw_deg=45.0)
    write_head_clip(model, folder / "clip.mp4", folder / "truth.npz", spec)
    capture, outcomes = reconstruct(folder / "clip.mp4", folder / "capture", Progress(), until="fit")
    return folder, capture


def test_full_path_on_a_rendered_video(model, rendered_capture):
    folder, capture = rendered_capture
    truth = dict(np.load(folder / "truth.npz"))
    fit = load_fit(str(capture.path("fit.npz")))
    report = json.loads(capture.path("report.json").read_text())
    errors = compare_with_truth(model, fit, truth)
    print(f"\nrendered clip: face vertices {errors['vertex_error_mm_mean']:.2f} mm mean (worst frame "
          f"{errors['vertex_error_mm_max_frame']:.2f}), rotation {errors['rotation_error_deg_mean']:.2f} deg mean / "
          f"{errors['rotation_error_deg_max']:.2f} max, focal {100 * errors['focal_error_rel']:+.1f}%, "
          f"reprojection {100 * report['fit']['reproj_iod_mean']:.2f}% IOD")
    assert report["track"]["frames_total"] == 30 and report["track"]["frames_tracked"] >= 28
    assert len(report["fit"]["reproj_iod_per_frame"]) == report["track"]["frames_tracked"]
    assert report["fit"]["reproj_iod_mean"] < 0.03
    # measured 4.02 mm and 1.92 deg mean (3.2 deg worst frame) at +-45 degrees of yaw
    assert errors["vertex_error_mm_mean"] < 5.0
    assert errors["rotation_error_deg_mean"] < 3.0
    assert abs(errors["focal_error_rel"]) < 0.1


def test_fit_is_deterministic(model, rendered_capture):
    folder, capture = rendered_capture
    before = capture.path("fit.npz").read_bytes()
    reconstruct(folder / "clip.mp4", capture.root, Progress(), until="fit", force=("fit",), params={"fit": FitParams()})
    assert capture.path("fit.npz").read_bytes() == before
