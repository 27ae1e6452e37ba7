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
from studio_avatar.core.fit.stage import depth_jumps
from studio_avatar.core.frames import link_tracks, select_frames
from studio_avatar.core.head.model import axis_angle_to_matrix
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


def _axis_angle(R):
    angle = np.arccos(np.clip((np.trace(R, axis1=1, axis2=2) - 1) / 2, -1.0, 1.0))
    axis = np.stack([R[:, 2, 1] - R[:, 1, 2], R[:, 0, 2] - R[:, 2, 0], R[:, 1, 0] - R[:, 0, 1]], 1)
    return axis * (angle / (2 * np.sin(np.maximum(angle, 1e-9))))[:, None]


def test_rotation_errors_are_broken_down_by_how_far_the_head_is_turned(model):
    """A fit that sees every head turned 40% less than it is: the error grows with the turn, signed against it."""
    spec = HeadClipSpec(frames=24, width=640, height=480, seed=4)
    truth = sample_head_clip(model, spec)
    under = {**truth, "pose": truth["pose"].copy()}
    root = axis_angle_to_matrix(torch.as_tensor(truth["pose"][:, 0], dtype=torch.float64)).numpy()
    yaw = np.arctan2(root[:, 0, 2], root[:, 2, 2])                     # about the head's vertical (world y) axis
    turn_back = axis_angle_to_matrix(torch.as_tensor(np.stack([0 * yaw, -0.4 * yaw, 0 * yaw], 1))).numpy()
    under["pose"][:, 0] = _axis_angle(turn_back @ root)
    errors = compare_with_truth(model, under, truth)
    bands = {tuple(b["abs_yaw_deg"]): b for b in errors["by_yaw"]}
    assert sum(b["frames"] for b in bands.values()) == spec.frames
    for band in bands.values():
        middle = np.degrees(np.abs(yaw))[(np.degrees(np.abs(yaw)) >= band["abs_yaw_deg"][0])
                                         & (np.degrees(np.abs(yaw)) < band["abs_yaw_deg"][1])].mean()
        assert band["yaw_error_deg_toward_turn"] == pytest.approx(-0.4 * middle, rel=0.1, abs=0.3)
        assert band["rotation_error_deg_mean"] == pytest.approx(0.4 * middle, rel=0.1, abs=0.3)


def test_the_silhouette_term_turns_an_under_turned_head_back_towards_its_outline(model):
    """Head points outside the person's silhouette cost: from a head turned 35% less than it is (as FaceMesh's sliding
    landmarks fit one), descending that cost alone turns it back towards the truth."""
    from studio_avatar.core.fit.optimize import FitOptions, _Problem, project_points
    from studio_avatar.core.render.raster import depth_map
    from studio_avatar.core.track.silhouette import SilhouetteMaps, outside_distance

    spec = HeadClipSpec(frames=8, width=640, height=480, seed=6, yaw_deg=70.0, expression_strength=0.0)
    truth = sample_head_clip(model, spec)
    T = lambda a: torch.as_tensor(np.asarray(a), dtype=torch.float32)  # noqa: E731
    focal, principal = float(truth["focal_px"][0]), T(np.asarray(truth["principal_px"]).reshape(-1, 2)[0])
    with torch.no_grad():
        verts = model.vertices(T(truth["shape"])[None, : model.num_shape], T(truth["expression"]), T(truth["pose"]), T(truth["translation"]))
        screen = project_points(verts, torch.tensor(focal), principal)
    scale = 0.5
    outside = np.stack([outside_distance(np.isfinite(depth_map(torch.cat([screen[k] * scale, -verts[k, :, 2:]], 1), model.faces,
                                                                  int(spec.height * scale), int(spec.width * scale)).numpy()), scale)
                        for k in range(spec.frames)])
    problem = _Problem(model, truth["landmarks_px"], truth["landmarks_visible"].astype(float), truth["time_s"], (spec.width, spec.height),
                       FitOptions(silhouette_weight=1.0), None, None, SilhouetteMaps(outside, scale, np.zeros(spec.frames, bool)))
    root = axis_angle_to_matrix(torch.as_tensor(truth["pose"][:, 0], dtype=torch.float64)).numpy()
    yaw = np.arctan2(root[:, 0, 2], root[:, 2, 2])
    turned = np.abs(np.degrees(yaw)) > 45
    slid = _axis_angle(axis_angle_to_matrix(torch.as_tensor(np.stack([0 * yaw, -0.35 * yaw, 0 * yaw], 1))).numpy() @ root)
    state = {"rot": torch.nn.Parameter(T(slid)), "trans": T(truth["translation"]), "expression": T(truth["expression"]),
             "jaw": T(truth["pose"][:, 2]), "gaze": torch.zeros(spec.frames, 2, 2), "shape": T(truth["shape"][: problem.S]),
             "log_focal": T([np.log(focal)])}
    face_size = T(problem.face_size)[:, None]
    frames = np.arange(spec.frames)
    cost = lambda: problem.outline.cost(state, problem, frames, face_size).sum()  # noqa: E731
    with torch.no_grad():
        at_truth = problem.outline.cost({**state, "rot": T(truth["pose"][:, 0])}, problem, frames, face_size).sum()
    start = float(cost().detach())
    assert float(at_truth) < 0.2 * start                        # the true head lies inside its silhouette

    optimizer = torch.optim.Adam([state["rot"]], lr=0.01)
    for _ in range(60):
        optimizer.zero_grad()
        cost().backward()
        optimizer.step()
    turned_to = axis_angle_to_matrix(state["rot"].detach().double()).numpy()
    ratio = np.arctan2(turned_to[:, 0, 2], turned_to[:, 2, 2])[turned] / yaw[turned]
    assert float(cost().detach()) < 0.5 * start
    print(f"\nturn recovered by the silhouette term alone: {np.round(ratio, 3)} of the true yaw (from 0.65)")
    assert np.all(ratio > 0.75), ratio                          # from 0.65 of the turn


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

    from studio_avatar.core.frames import _Detections

    big, small = (0.1, 0.1, 0.5, 0.6), (0.7, 0.2, 0.85, 0.4)
    rounds = [_Detections(i, [np.array(b, float) for b in ([small, big] if i % 5 else [small])]) for i in range(20)]
    tracks = link_tracks(rounds)
    assert len(tracks) == 2
    first = tracks[0]
    assert all(np.allclose(rounds[s].boxes[d], big) for s, d in first)  # the larger face wins though seen less often


def test_online_candidates_keep_each_slots_and_yaw_bins_best_with_few_images_held():
    from studio_avatar.core.frames import _Candidates, _Seen
    from studio_avatar.core.track.follow import Sighting

    rng = np.random.default_rng(0)
    n, count = 600, 30
    yaws = np.concatenate([np.zeros(500), np.linspace(-1, 1, 100)])   # long frontal part, then a quick turn
    sharpness = rng.uniform(50, 150, n)
    written, most_held = [], 0
    candidates = _Candidates(count, n, write=lambda seen: (written.append(seen.scan), setattr(seen, "file", "f")))
    seen_all = []
    for i in range(n):
        seen = _Seen(i, i, i / 30, Sighting(np.zeros((478, 3)), np.zeros((4, 4, 3), np.uint8), (0, 0, 1.0)),
                     0.3, float(yaws[i]), float(sharpness[i]), 0.5, 0.0)
        seen_all.append(seen)
        candidates.offer(seen, np.zeros((2, 2, 3), np.uint8))
        most_held = max(most_held, sum(s.image is not None for s in seen_all))
    pool = candidates.finish()
    assert most_held <= count // 3 + 1                                      # memory stays bounded whatever the length
    slots = np.arange(n) * count // n
    best_of_slot = [int(np.flatnonzero(slots == k)[np.argmax(sharpness[slots == k])]) for k in range(count)]
    assert sorted(written) == best_of_slot                                  # each slot's sharpest frame, written once
    scans = [s.scan for s in pool]
    assert scans == sorted(set(scans)) and set(best_of_slot) <= set(scans)
    turn = [s for s in pool if s.scan >= 500]
    assert len(turn) >= count // 3 - 1                                      # every yaw bin of the turn has its best
    assert all(s.file is not None or s.image is not None for s in pool)     # each candidate can still be written


def test_one_pass_decodes_the_video_once_and_keeps_the_tracked_landmarks_of_the_frames_it_writes(model, tmp_path,
                                                                                                  monkeypatch):
    import studio_avatar.core.frames as frames_stage
    from studio_avatar.core.frames import FramesParams

    spec = HeadClipSpec(frames=60, width=480, height=360, seed=1, yaw_deg=35.0)
    truth = write_head_clip(model, tmp_path / "clip.mp4", tmp_path / "truth.npz", spec)
    decoded, real = [], frames_stage.iter_frames

    def counted(*args, **kwargs):
        for item in real(*args, **kwargs):
            decoded.append(item[0])
            yield item

    monkeypatch.setattr(frames_stage, "iter_frames", counted)
    capture, _ = reconstruct(tmp_path / "clip.mp4", tmp_path / "capture", Progress(), until="track",
                             params={"frames": FramesParams(max_frames=16)})
    assert decoded == list(range(60))                                       # every frame decoded once, in one pass
    listing = json.loads(capture.path("frames/frames.json").read_text())
    files = sorted(p.name for p in capture.path("frames").iterdir())
    assert files == [f"{k:04d}.png" for k in range(16)] + ["frames.json", "landmarks.npz"]
    indices = [e["index"] for e in listing["frames"]]
    assert indices == sorted(set(indices)) and len(indices) == 16
    with np.load(capture.path("tracking.npz")) as tracking:
        assert tracking["video_index"].tolist() == indices
        found, confidence = tracking["landmarks"][..., :2], tracking["confidence"]
    true_px, visible = truth["landmarks_px"][indices], truth["landmarks_visible"][indices]
    iod = np.linalg.norm(true_px[:, 33] - true_px[:, 263], axis=1)
    error = np.linalg.norm(found - true_px, axis=2) / iod[:, None]
    assert np.median(error[visible]) < 0.06, np.median(error[visible])    # the landmarks belong to the frame they are stored with
    assert confidence[visible].mean() > confidence[~visible].mean()         # the mirror check doubts the hidden side


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
    assert report["fit"]["silhouette_missed_frames"] == 0            # the person was found in every rendered frame
    # measured 4.02 mm and 1.92 deg mean (3.2 deg worst frame) at +-45 degrees of yaw
    assert errors["vertex_error_mm_mean"] < 5.0
    assert errors["rotation_error_deg_mean"] < 3.0
    assert abs(errors["focal_error_rel"]) < 0.1


def test_fit_is_deterministic(model, rendered_capture):
    folder, capture = rendered_capture
    before = capture.path("fit.npz").read_bytes()
    reconstruct(folder / "clip.mp4", capture.root, Progress(), until="fit", force=("fit",), params={"fit": FitParams()})
    assert capture.path("fit.npz").read_bytes() == before


def test_a_frame_whose_head_distance_jumps_is_a_tracking_failure_and_a_steady_approach_is_not():
    """The forest capture's failure: FaceMesh found the face 30-35% too small on two neighbouring frames."""
    time = np.arange(60)
    approach = -0.55 + 0.25 * time / 59                       # the phone comes 45% closer over the clip
    assert not depth_jumps(approach).any()
    wobble = approach * (1 + 0.06 * np.sin(time / 2.0))        # hand shake of +-6%
    assert not depth_jumps(wobble).any()
    broken = wobble.copy()
    broken[[20, 21]] *= (1.45, 1.67)
    broken[40] /= 1.4                                           # found too large: nearer
    assert np.flatnonzero(depth_jumps(broken)).tolist() == [20, 21, 40]
    assert not depth_jumps(np.array([-0.5, -1.0])).any()     # too few frames to judge
