"""`studio-avatar probe`: correct facts for real clips, one clear line and a non-zero exit for bad files."""

import json

import pytest

from studio_avatar.core.synth.clip import write_turning_head_clip


def test_probe_reports_the_facts_of_a_written_clip(cli, clip_30):
    out = cli("probe", str(clip_30))
    assert out.returncode == 0, out.stderr
    facts = json.loads(out.stdout)
    assert facts["frames"] == 30
    assert facts["fps"] == pytest.approx(30.0)
    assert facts["duration_s"] == pytest.approx(1.0, abs=1e-3)
    assert (facts["width"], facts["height"]) == (320, 240)
    assert (facts["display_width"], facts["display_height"]) == (320, 240)
    assert facts["rotation_deg"] == 0
    assert facts["codec"] == "mpeg4"
    assert facts["size_bytes"] == clip_30.stat().st_size


def test_probe_other_container_size_and_rate(cli, tmp_path):
    clip = write_turning_head_clip(tmp_path / "odd.avi", frames=17, width=200, height=360, fps=24.0, fourcc="MJPG")
    facts = json.loads(cli("probe", str(clip)).stdout)
    assert (facts["frames"], facts["width"], facts["height"], facts["codec"]) == (17, 200, 360, "mjpeg")
    assert facts["fps"] == pytest.approx(24.0)
    assert facts["duration_s"] == pytest.approx(17 / 24.0, abs=1e-3)


def _truncated_mp4(tmp_path, clip):
    data = clip.read_bytes()
    path = tmp_path / "cut.mp4"
    path.write_bytes(data[: len(data) // 2])
    return path, "truncated"


def _truncated_avi(tmp_path, clip):
    source = write_turning_head_clip(tmp_path / "full.avi", frames=30, fourcc="MJPG")
    data = source.read_bytes()
    path = tmp_path / "cut.avi"
    path.write_bytes(data[: int(len(data) * 0.6)])
    return path, "truncated"


def _empty(tmp_path, clip):
    path = tmp_path / "empty.mp4"
    path.write_bytes(b"")
    return path, "empty"


def _text_renamed(tmp_path, clip):
    path = tmp_path / "notes.mp4"
    path.write_text("shopping list: eggs, milk\n" * 20)
    return path, "not a video"


def _missing(tmp_path, clip):
    return tmp_path / "nowhere.mp4", "no such file"


def _directory(tmp_path, clip):
    path = tmp_path / "folder.mp4"
    path.mkdir()
    return path, "folder"


@pytest.mark.parametrize("make_bad", [_truncated_mp4, _truncated_avi, _empty, _text_renamed, _missing, _directory])
def test_probe_rejects_bad_files_with_one_clear_line(cli, tmp_path, clip_30, make_bad):
    path, problem = make_bad(tmp_path, clip_30)
    out = cli("probe", str(path))
    assert out.returncode != 0
    assert out.stdout == ""
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert "Traceback" not in out.stderr
    assert str(path) in lines[0]
    assert problem in lines[0].lower()
    assert lines[0].startswith("studio-avatar: error: ")


def test_worker_mode_reports_the_error_as_an_event(cli, tmp_path):
    missing = tmp_path / "gone.mov"
    out = cli("--worker", "probe", str(missing), stdin="")
    assert out.returncode == 2
    events = [json.loads(line) for line in out.stdout.splitlines()]
    assert events[-1]["type"] == "error"
    assert events[-1]["error"] == "VideoError"
    assert str(missing) in events[-1]["message"]


@pytest.mark.parametrize("degrees", [90, 180, 270])
def test_phone_rotation_is_reported_and_applied_when_decoding(cli, clip_30, tmp_path, degrees):
    import cv2
    from mp4_rotation import set_mp4_rotation

    from studio_avatar.core.video import iter_frames_at

    rotated = set_mp4_rotation(clip_30, tmp_path / f"portrait{degrees}.mp4", degrees)
    facts = json.loads(cli("probe", str(rotated)).stdout)
    assert facts["rotation_deg"] == degrees
    assert (facts["width"], facts["height"]) == (320, 240)
    swapped = degrees in (90, 270)
    assert (facts["display_width"], facts["display_height"]) == ((240, 320) if swapped else (320, 240))

    (_, _, raw), = iter_frames_at(clip_30, [7])
    (_, _, upright), = iter_frames_at(rotated, [7])
    code = {90: cv2.ROTATE_90_CLOCKWISE, 180: cv2.ROTATE_180, 270: cv2.ROTATE_90_COUNTERCLOCKWISE}[degrees]
    assert upright.shape == cv2.rotate(raw, code).shape
    assert abs(upright.astype(int) - cv2.rotate(raw, code)).mean() < 1.0


def test_decoding_downscales_large_frames_to_the_working_size(tmp_path):
    from studio_avatar.core.video import iter_frames_at

    big = write_turning_head_clip(tmp_path / "big.mp4", frames=3, width=1280, height=720)
    (index, time_s, image), = iter_frames_at(big, [2], max_side=640)
    assert (index, image.shape) == (2, (360, 640, 3))
    assert time_s == pytest.approx(2 / 30, abs=1e-3)
