"""Bad videos on the way to a fit: each is refused with a specific message, and two people are handled.

Every case runs the real console entry (``studio-avatar reconstruct VIDEO -o
CAPTURE --until fit``) on a small clip written here: an error exits non-zero
with one ``studio-avatar: error: ...`` line that says what is wrong and never a
traceback; a clip with two faces succeeds, warns, and follows the larger face.
"""

import json

import cv2
import numpy as np
import pytest

from studio_avatar.core.head.open_head import get_open_head
from studio_avatar.core.synth.head_clip import HeadClipSpec, background_image, render_frames, sample_head_clip

WIDTH, HEIGHT = 320, 240


@pytest.fixture(scope="module")
def head():
    return get_open_head()


@pytest.fixture(scope="module")
def head_frames(head):
    """4 BGR frames (320x240) of a rendered head turning a little."""
    spec = HeadClipSpec(frames=4, width=WIDTH, height=HEIGHT, seed=2, yaw_deg=15.0)
    return list(render_frames(head, sample_head_clip(head, spec), spec))


def background(seed, width=WIDTH, height=HEIGHT):
    return np.ascontiguousarray(background_image(seed, width, height)[..., ::-1].astype(np.uint8))


def write_clip(path, frames, fps=30.0):
    height, width = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
    assert writer.isOpened()
    for frame in frames:
        writer.write(frame)
    writer.release()
    return path


def reconstruct_fails(cli, video, capture):
    out = cli("reconstruct", str(video), "-o", str(capture), "--until", "fit")
    assert out.returncode != 0, out.stdout
    assert "Traceback" not in out.stderr and "internal error" not in out.stderr
    errors = [line for line in out.stderr.splitlines() if line.startswith("studio-avatar: error: ")]
    assert len(errors) == 1, out.stderr
    return errors[0]


def stage_record(capture, name):
    return json.loads((capture / "capture.json").read_text())["stages"][name]


def test_no_face_in_any_frame(cli, tmp_path):
    wide = background(5, WIDTH + 40, HEIGHT + 20)
    frames = [np.ascontiguousarray(wide[i // 2:i // 2 + HEIGHT, i:i + WIDTH]) for i in range(30)]  # the camera pans
    video = write_clip(tmp_path / "empty_room.mp4", frames)
    error = reconstruct_fails(cli, video, tmp_path / "cap")
    assert "no face was found in any of the 30 frames" in error
    assert "face well lit" in error
    record = stage_record(tmp_path / "cap", "frames")
    assert record["status"] == "failed" and "no face was found" in record["error"]
    assert not (tmp_path / "cap" / "frames").exists()


def test_face_in_fewer_frames_than_needed(cli, head_frames, tmp_path):
    frames = [background(2) for _ in range(30)]
    for k, frame in zip((5, 12, 19, 26), head_frames):
        frames[k] = frame
    video = write_clip(tmp_path / "glimpses.mp4", frames)
    error = reconstruct_fails(cli, video, tmp_path / "cap")
    assert "only 4 of 30 scanned frames show a usable face" in error
    assert "no face in 26" in error and "at least 8 are needed" in error
    assert stage_record(tmp_path / "cap", "frames")["status"] == "failed"


def test_all_black_video(cli, tmp_path):
    video = write_clip(tmp_path / "lens_cap.mp4", [np.zeros((HEIGHT, WIDTH, 3), np.uint8)] * 30)
    error = reconstruct_fails(cli, video, tmp_path / "cap")
    assert "every frame is black" in error and "lens may have been covered" in error


def test_one_frame_video(cli, head_frames, tmp_path):
    video = write_clip(tmp_path / "photo.mp4", head_frames[:1])
    error = reconstruct_fails(cli, video, tmp_path / "cap")
    assert "the video has only 1 frame;" in error
    assert "at least 8 frames" in error and "turning slowly" in error


def test_two_people_follows_the_larger_face(cli, head, tmp_path):
    n, side = 24, 240
    near = HeadClipSpec(frames=n, width=side, height=side, seed=3, yaw_deg=25.0)                    # larger head
    far = HeadClipSpec(frames=n, width=side, height=side, seed=4, yaw_deg=25.0, distance_m=0.75)    # smaller head
    near_frames = render_frames(head, sample_head_clip(head, near), near)
    far_frames = render_frames(head, sample_head_clip(head, far), far)
    # the smaller head on the left half, the larger on the right: the followed face is not simply the first one
    frames = [np.concatenate([small, large], 1) for small, large in zip(far_frames, near_frames)]
    video = write_clip(tmp_path / "two_people.mp4", frames)
    capture = tmp_path / "cap"

    out = cli("reconstruct", str(video), "-o", str(capture), "--until", "fit")
    assert out.returncode == 0, out.stderr
    assert "Traceback" not in out.stderr
    assert "2 different faces were seen; following the largest one" in out.stderr
    stages = {s["stage"]: s for s in json.loads(out.stdout)["stages"]}
    assert [s["status"] for s in stages.values()] == ["done"] * 4 and list(stages) == ["preview", "frames", "track", "fit"]
    assert any("different faces were seen" in w for w in stages["frames"]["warnings"])
    record = stage_record(capture, "frames")
    assert any("2 different faces were seen" in w for w in record["warnings"])
    assert record["metrics"]["faces_seen"] == 2

    listing = json.loads((capture / "frames" / "frames.json").read_text())
    assert listing["size"] == [2 * side, side] and len(listing["frames"]) >= 8
    for entry in listing["frames"]:
        x0, y0, x1, y1 = entry["face_box"]
        assert side <= x0 < x1 <= 2 * side, entry                    # on the larger head's half
        assert y1 - y0 > 0.3 * side, entry                           # the larger head's face, not the far one's
    with np.load(capture / "tracking.npz") as tracking:
        assert (tracking["landmarks"][..., 0] > side).all()          # the tracker stayed on that face too
    report = json.loads((capture / "report.json").read_text())
    assert report["track"]["frames_tracked"] >= 8
    assert np.isfinite(report["fit"]["reproj_iod_mean"])
