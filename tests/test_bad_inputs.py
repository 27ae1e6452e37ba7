"""Bad inputs, one parametrised test per kind: each is refused cleanly (or handled), and no user file is touched.

Every case runs the real console entry (``studio-avatar ...`` in a fresh process) with ``--progress none`` and,
where the command must refuse, checks

* the exit code: 2 for a user error (core/errors.py), 75 for a capture another process is working on, 130 and
  143 for SIGINT and SIGTERM;
* that stderr is exactly one line ``studio-avatar: error: ...`` naming what is wrong (the file, the folder or the
  option), and stdout is empty;
* that there is no ``Traceback`` and no ``internal error``;
* that every file in the test's folder before the command is byte-identical after it (``snapshot`` /
  ``assert_kept``) and, where the case says so, that nothing was created at all.

The kinds:

* video files for ``probe`` and ``reconstruct``: missing, empty, a folder, text, truncated, overwritten in the
  middle (both refuse); no face, all black, 1 and 3 frames (probe reports them, reconstruct refuses them in its
  ``frames`` stage); rotation metadata, a 4K frame, a non-ASCII folder and file name, and two faces (both work,
  through ``--until frames``; the fit of the two-face clip is tested in test_video_to_fit_errors.py);
* FLAME files for ``head info --flame`` and ``reconstruct --flame``: missing, empty, a folder, text, truncated,
  corrupted, and a pickle whose unpickling would run a shell command (refused, and the command never runs);
  ``reconstruct`` refuses before any stage runs;
* capture folders for ``status``, ``build``, ``fit-preview`` and ``eval``: not a capture, an unreadable
  capture.json, no finished fit; ``reconstruct`` of another video into a capture; a run killed mid-stage
  (``status`` says interrupted, a second process meanwhile gets exit 75, the rerun resumes);
* ``build`` over an existing .blend, and over a user's own file in ``NAME_textures/``;
* ``eval`` with the ground truth of another video;
* bad paths and options of ``reconstruct``, and argparse-level errors;
* SIGINT and SIGTERM during ``reconstruct``: exit 130 and 143, and report.json lists the cancelled stage.
"""

import hashlib
import json
import os
import shlex
import shutil
import signal
import subprocess
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
from conftest import REPO_ROOT, run_cli
from mp4_rotation import set_mp4_rotation
from test_eval import head, world  # noqa: F401  (module fixtures: the open head; a textured capture and its truth)
from test_flame import synthetic_flame, write_flame_pickle

from studio_avatar.core.capture import Capture
from studio_avatar.core.launcher import worker_argv
from studio_avatar.core.pipeline import RECONSTRUCTION
from studio_avatar.core.progress import parse_event
from studio_avatar.core.synth.clip import write_turning_head_clip
from studio_avatar.core.synth.head_clip import HeadClipSpec, background_image, render_frames, sample_head_clip
from studio_avatar.core.video import write_video

ERROR_PREFIX = "studio-avatar: error: "
WIDTH, HEIGHT = 320, 240
NOT_USER_FILES = {".lock"}      # a capture's lock file: every process that takes the lock writes its pid into it
MARKER = "pwned"                # the file the malicious pickle's shell command would create


# -- running the tool and judging the outcome ---------------------------------------------------------

def run(cli, *args, **options):
    """``studio-avatar --progress none ARGS``: stderr then holds only errors."""
    return cli("--progress", "none", *args, **options)


def refused(out, *names, code=2, quiet_stdout=True):
    """Assert a clean refusal: ``code``, one error line on stderr and nothing else, naming each of ``names``."""
    assert out.returncode == code, f"exit {out.returncode}\nstdout: {out.stdout[-2000:]}\nstderr: {out.stderr[-4000:]}"
    assert "Traceback" not in out.stderr and "internal error" not in out.stderr, out.stderr
    lines = out.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(ERROR_PREFIX), out.stderr
    for name in names:
        assert name in lines[0], (name, lines[0])
    if quiet_stdout:
        assert out.stdout == "", out.stdout
    return lines[0]


def succeeded(out):
    assert out.returncode == 0, out.stderr[-4000:]
    assert "Traceback" not in out.stderr, out.stderr
    return json.loads(out.stdout)


def snapshot(folder: Path) -> dict[str, str]:
    """Relative path -> sha256 of every file under ``folder`` (folders map to "folder")."""
    entries = {}
    for path in sorted(folder.rglob("*")):
        if path.name in NOT_USER_FILES:
            continue
        digest = "folder" if path.is_dir() else hashlib.sha256(path.read_bytes()).hexdigest()
        entries[path.relative_to(folder).as_posix()] = digest
    return entries


def assert_kept(before: dict[str, str], folder: Path, created: bool = True) -> None:
    """Everything in ``before`` is still in ``folder`` with the same bytes; with ``created=False``, nothing is new."""
    after = snapshot(folder)
    changed = sorted(name for name, digest in before.items() if after.get(name) != digest)
    assert not changed, f"changed or removed: {changed}"
    if not created:
        assert sorted(set(after) - set(before)) == [], "created although the command was refused"


def stage_statuses(out_json):
    return [(stage["stage"], stage["status"]) for stage in out_json["stages"]]


def recorded_status(capture: Path, stage: str) -> str:
    return json.loads((capture / "capture.json").read_text())["stages"][stage]["status"]


def start_reconstruct(video: Path, capture: Path, until: str = "frames") -> subprocess.Popen:
    """``studio-avatar reconstruct`` (JSON-lines progress on stdout) in a fresh process, returned once stage
    ``until`` has started: its record says "running" and the process holds the capture's lock."""
    argv = worker_argv(["--progress", "jsonl", "reconstruct", str(video), "-o", str(capture), "--until", until],
                       extension_root=REPO_ROOT)
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for line in process.stdout:
        event = parse_event(line)
        if event and event["type"] == "stage" and event.get("stage") == until and event.get("status") == "started":
            return process
    process.wait(timeout=60)
    pytest.fail(f"stage {until} never started (exit {process.returncode}): {process.stderr.read()[-2000:]}")


# -- clips --------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def footage(head):
    """The rendered head: 12 BGR frames (320x240) turning 20 degrees each way, and the model for more."""
    spec = HeadClipSpec(frames=12, width=WIDTH, height=HEIGHT, seed=2, yaw_deg=20.0)
    return SimpleNamespace(head=head, face=list(render_frames(head, sample_head_clip(head, spec, landmarks=False), spec)))


@pytest.fixture(scope="module")
def face_clip(footage, tmp_path_factory):
    return write_video(tmp_path_factory.mktemp("face") / "face.mp4", footage.face, 30.0, (WIDTH, HEIGHT))


@pytest.fixture(scope="module")
def turning_clip(head, tmp_path_factory):
    """48 frames of the rendered head: the frames stage runs long enough on it to be stopped mid-stage."""
    spec = HeadClipSpec(frames=48, width=WIDTH, height=HEIGHT, seed=6, yaw_deg=30.0, supersampling=1)
    frames = render_frames(head, sample_head_clip(head, spec, landmarks=False), spec)
    return write_video(tmp_path_factory.mktemp("turning") / "turning.mp4", frames, spec.fps, (WIDTH, HEIGHT))


def copied(source: Path, folder: Path) -> Path:
    return Path(shutil.copyfile(source, folder / source.name))


def write_clip(path: Path, frames) -> Path:
    height, width = frames[0].shape[:2]
    return write_video(path, frames, 30.0, (width, height))


def background(seed, width=WIDTH, height=HEIGHT):
    return np.ascontiguousarray(background_image(seed, width, height)[..., ::-1].astype(np.uint8))


def missing_video(folder, footage):
    return folder / "holiday.mp4"


def empty_video(folder, footage):
    path = folder / "empty.mp4"
    path.write_bytes(b"")
    return path


def folder_video(folder, footage):
    path = folder / "clips.mp4"
    path.mkdir()
    (path / "readme.txt").write_text("my clips\n")
    return path


def text_video(folder, footage):
    path = folder / "notes.mp4"
    path.write_text("shopping list: eggs, milk\n" * 20)
    return path


def truncated_video(folder, footage):
    data = write_clip(folder / "whole.mp4", footage.face).read_bytes()
    path = folder / "cut.mp4"
    path.write_bytes(data[: len(data) // 2])
    return path


def corrupted_video(folder, footage):
    """The face clip with 2000 bytes of its frame data overwritten, a third of the way in."""
    path = write_clip(folder / "damaged.mp4", footage.face)
    data = bytearray(path.read_bytes())
    start = len(data) // 3
    data[start:start + 2000] = b"\xff" * 2000
    path.write_bytes(bytes(data))
    return path


def no_face_video(folder, footage):
    wide = background(5, WIDTH + 20, HEIGHT + 10)
    panning = [np.ascontiguousarray(wide[i // 2:i // 2 + HEIGHT, i:i + WIDTH]) for i in range(10)]
    return write_clip(folder / "empty_room.mp4", panning)


def black_video(folder, footage):
    return write_clip(folder / "lens_cap.mp4", [np.zeros((HEIGHT, WIDTH, 3), np.uint8)] * 10)


def one_frame_video(folder, footage):
    return write_clip(folder / "photo.mp4", footage.face[:1])


def three_frame_video(folder, footage):
    return write_clip(folder / "blink.mp4", footage.face[:3])


def rotated_video(folder, footage):
    """A portrait phone clip: the frames stored turned a quarter counter-clockwise, with a 90 degree display matrix."""
    stored = [np.ascontiguousarray(cv2.rotate(frame, cv2.ROTATE_90_COUNTERCLOCKWISE)) for frame in footage.face]
    return set_mp4_rotation(write_clip(folder / "stored.mp4", stored), folder / "portrait.mp4", 90)


def video_4k(folder, footage):
    return write_clip(folder / "uhd.mp4", [cv2.resize(frame, (3840, 2160)) for frame in footage.face])


def unicode_named_video(folder, footage):
    named = folder / "Ünïcødé 头像 – ☺"
    named.mkdir()
    return write_clip(named / "Ånna_日本語 ✓.mp4", footage.face)


def two_faces_video(folder, footage):
    """A smaller head on the left half, a larger one on the right (240x240 each)."""
    n, side = 24, 240
    near = HeadClipSpec(frames=n, width=side, height=side, seed=3, yaw_deg=25.0)
    far = HeadClipSpec(frames=n, width=side, height=side, seed=4, yaw_deg=25.0, distance_m=0.75)
    near_frames = render_frames(footage.head, sample_head_clip(footage.head, near, landmarks=False), near)
    far_frames = render_frames(footage.head, sample_head_clip(footage.head, far, landmarks=False), far)
    side_by_side = [np.concatenate([small, large], 1) for small, large in zip(far_frames, near_frames)]
    return write_clip(folder / "two_people.mp4", side_by_side)


# -- video files --------------------------------------------------------------------------------------

UNREADABLE_VIDEOS = [
    pytest.param(missing_video, "no such file", id="missing"),
    pytest.param(empty_video, "empty", id="empty"),
    pytest.param(folder_video, "folder", id="folder"),
    pytest.param(text_video, "not a video", id="text"),
    pytest.param(truncated_video, "truncated", id="truncated"),
    pytest.param(corrupted_video, "damaged", id="corrupted-mid-file"),
]


@pytest.mark.parametrize("command", ["probe", "reconstruct"])
@pytest.mark.parametrize("make_video, problem", UNREADABLE_VIDEOS)
def test_unreadable_video_file_is_refused(cli, tmp_path, footage, command, make_video, problem):
    video = make_video(tmp_path, footage)
    before = snapshot(tmp_path)
    extra = ["-o", str(tmp_path / "capture"), "--until", "frames"] if command == "reconstruct" else []
    line = refused(run(cli, command, str(video), *extra), str(video))
    assert problem in line.lower(), line
    assert_kept(before, tmp_path, created=False)          # reconstruct made no capture folder


UNSUITABLE_VIDEOS = [
    pytest.param(no_face_video, 10, "no face was found in any of the 10 frames", id="no-face"),
    pytest.param(black_video, 10, "every frame is black", id="all-black"),
    pytest.param(one_frame_video, 1, "the video has only 1 frame;", id="one-frame"),
    pytest.param(three_frame_video, 3, "the video has only 3 frames;", id="three-frames"),
]


@pytest.mark.parametrize("make_video, frames, problem", UNSUITABLE_VIDEOS)
def test_unsuitable_video_is_probed_but_not_reconstructed(cli, tmp_path, footage, make_video, frames, problem):
    video = make_video(tmp_path, footage)
    assert succeeded(run(cli, "probe", str(video)))["frames"] == frames
    before = snapshot(tmp_path)
    capture = tmp_path / "capture"
    refused(run(cli, "reconstruct", str(video), "-o", str(capture), "--until", "frames"), str(video), problem)
    assert_kept(before, tmp_path)
    assert recorded_status(capture, "frames") == "failed" and not (capture / "frames").exists()


ODD_BUT_USABLE_VIDEOS = [   # stored (width, height), rotation, (width, height) of the frames written, faces seen
    pytest.param(rotated_video, (HEIGHT, WIDTH), 90, (WIDTH, HEIGHT), 1, id="rotation-90"),
    pytest.param(video_4k, (3840, 2160), 0, (1920, 1080), 1, id="4k-frames"),      # frames are written at 1920 at most
    pytest.param(unicode_named_video, (WIDTH, HEIGHT), 0, (WIDTH, HEIGHT), 1, id="unicode-path"),
    pytest.param(two_faces_video, (480, 240), 0, (480, 240), 2, id="two-faces"),
]


@pytest.mark.parametrize("make_video, stored, rotation, written, faces", ODD_BUT_USABLE_VIDEOS)
def test_odd_but_usable_video_is_probed_and_reconstructed(cli, tmp_path, footage, make_video, stored, rotation, written, faces):
    video = make_video(tmp_path, footage)
    facts = succeeded(run(cli, "probe", str(video)))
    assert facts["path"] == str(video.resolve())
    assert (facts["width"], facts["height"], facts["rotation_deg"]) == (*stored, rotation)
    assert (facts["display_width"], facts["display_height"]) == (stored[::-1] if rotation in (90, 270) else stored)

    before = snapshot(tmp_path)
    capture = video.parent / "capture ✓"
    result = succeeded(run(cli, "reconstruct", str(video), "-o", str(capture), "--until", "frames"))
    assert stage_statuses(result) == [("preview", "done"), ("frames", "done")]
    assert_kept(before, tmp_path)
    assert json.loads((capture / "capture.json").read_text())["source"]["path"] == str(video.resolve())
    listing = json.loads((capture / "frames" / "frames.json").read_text())
    assert listing["size"] == list(written) and listing["frames_selected"] >= 8
    assert cv2.imread(str(capture / "frames" / listing["frames"][0]["file"])).shape == (written[1], written[0], 3)
    assert listing["faces_seen"] == faces
    frames_warnings = result["stages"][1]["warnings"]
    assert any("2 different faces were seen; following the largest one" in w for w in frames_warnings) == (faces == 2)


# -- FLAME files --------------------------------------------------------------------------------------

class _RunsShell:
    """Unpickles into ``os.system(command)``: what a tampered model file would do with plain pickle.load."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


def flame_pickle(path: Path) -> Path:
    """A small file of FLAME's structure (chumpy Ch and scipy csc_matrix inside), as test_flame.py writes it."""
    write_flame_pickle(path, synthetic_flame())
    return path


def missing_flame(folder):
    return folder / "generic_model.pkl"


def empty_flame(folder):
    path = folder / "generic_model.pkl"
    path.write_bytes(b"")
    return path


def folder_flame(folder):
    path = folder / "FLAME2020"
    path.mkdir()
    (path / "readme.txt").write_text("FLAME 2020 goes here\n")
    return path


def text_flame(folder):
    path = folder / "generic_model.pkl"
    path.write_text("username: anna\npassword: hunter2\n")
    return path


def truncated_flame(folder):
    path = flame_pickle(folder / "generic_model.pkl")
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    return path


def corrupted_flame(folder):
    """32 bytes overwritten across the pickle's opcodes at the ``posedirs`` entry (a quarter of the way in)."""
    path = flame_pickle(folder / "generic_model.pkl")
    data = bytearray(path.read_bytes())
    at = data.index(b"posedirs") - 8
    assert len(data) // 4 < at < 3 * len(data) // 4          # really in the middle of the file
    data[at:at + 32] = b"\xff" * 32
    path.write_bytes(bytes(data))
    return path


def malicious_flame(folder):
    """A pickle that runs ``touch MARKER`` when loaded with pickle.load (checked here on a control marker)."""
    import pickle

    control = folder / "control-marker"
    pickle.loads(pickle.dumps(_RunsShell(f"touch {shlex.quote(str(control))}")))
    assert control.exists(), "the payload does not run: the test would prove nothing"
    control.unlink()
    path = folder / "generic_model.pkl"
    path.write_bytes(pickle.dumps({"v_template": _RunsShell(f"touch {shlex.quote(str(folder / MARKER))}")}, protocol=2))
    return path


BAD_FLAME_FILES = [
    pytest.param(missing_flame, id="missing"),
    pytest.param(empty_flame, id="empty"),
    pytest.param(folder_flame, id="folder"),
    pytest.param(text_flame, id="text"),
    pytest.param(truncated_flame, id="truncated"),
    pytest.param(corrupted_flame, id="corrupted"),
    pytest.param(malicious_flame, id="malicious-pickle"),
]


@pytest.mark.parametrize("command", ["head-info", "reconstruct"])
@pytest.mark.parametrize("make_flame", BAD_FLAME_FILES)
def test_bad_flame_file_is_refused(cli, tmp_path, face_clip, command, make_flame):
    flame = make_flame(tmp_path)
    before = snapshot(tmp_path)
    if command == "head-info":
        refused(run(cli, "head", "info", "--flame", str(flame)), str(flame))
    else:
        capture = tmp_path / "capture"
        out = run(cli, "reconstruct", str(face_clip), "-o", str(capture), "--until", "fit", "--flame", str(flame))
        refused(out, str(flame))
        assert not (capture / "preview").exists() and not (capture / "frames").exists(), "stages ran before the refusal"
    assert not (tmp_path / MARKER).exists(), "the pickle's code ran"
    assert_kept(before, tmp_path, created=command == "reconstruct")


# -- capture folders ----------------------------------------------------------------------------------

def foreign_folder(folder):
    path = folder / "Documents"
    path.mkdir()
    (path / "taxes.pdf").write_bytes(b"%PDF-1.4 my taxes")
    return path


def unreadable_manifest(folder):
    path = folder / "capture"
    (path / "preview").mkdir(parents=True)
    (path / "preview" / "contact.png").write_bytes(b"\x89PNG the user's sheet")
    (path / "capture.json").write_text('{"format": "studio-avatar-capture", "schema": 1, "stages": {')
    return path


def capture_without_fit(folder):
    path = folder / "capture"
    Capture.create(path, {"path": "/videos/anna.mp4", "sha256": "0" * 64, "frames": 30})
    return path


CAPTURE_STATES = {   # make the folder, words the error line must hold
    "not-a-capture": (foreign_folder, "not a capture folder"),
    "unreadable-capture-json": (unreadable_manifest, "capture.json"),
    "no-finished-fit": (capture_without_fit, "fit"),
}
CAPTURE_COMMANDS = {
    "status": [],
    "fit-preview": ["-o", "{out}/preview.mp4"],
    "eval": ["--gt", "{gt}", "--no-identity"],
    "build": ["-o", "{out}/avatar.blend"],
}


def _capture_cases():
    for command in CAPTURE_COMMANDS:
        for state in CAPTURE_STATES:
            if (command, state) == ("status", "no-finished-fit"):
                continue        # status of an unfinished capture is no error: it lists the pending stages
            marks = [pytest.mark.blender] if command == "build" else []
            yield pytest.param(command, state, marks=marks, id=f"{command}-{state}")


@pytest.mark.parametrize("command, state", list(_capture_cases()))
def test_unusable_capture_folder_is_refused(cli, tmp_path, world, command, state):
    make_folder, problem = CAPTURE_STATES[state]
    capture = make_folder(tmp_path)
    options = [option.format(out=tmp_path / "out", gt=world[1]) for option in CAPTURE_COMMANDS[command]]
    before = snapshot(tmp_path)
    refused(run(cli, command, str(capture), *options), str(capture), problem)
    assert_kept(before, tmp_path, created=False)


def test_reconstruct_into_a_capture_of_another_video_changes_nothing(cli, tmp_path, clip_30):
    capture = tmp_path / "capture"
    succeeded(run(cli, "reconstruct", str(copied(clip_30, tmp_path)), "-o", str(capture), "--until", "preview"))
    other = write_turning_head_clip(tmp_path / "other.mp4", frames=12, width=160, height=120)
    before = snapshot(tmp_path)
    refused(run(cli, "reconstruct", str(other), "-o", str(capture), "--until", "preview"), str(capture), "--replace-source")
    assert_kept(before, tmp_path, created=False)


def test_killed_run_is_interrupted_holds_off_a_second_process_and_resumes(cli, tmp_path, turning_clip):
    video = copied(turning_clip, tmp_path)
    capture = tmp_path / "capture"
    victim = start_reconstruct(video, capture)
    try:
        victim.send_signal(signal.SIGSTOP)          # frozen mid-stage, still holding the capture's lock
        before = snapshot(tmp_path)
        busy = run(cli, "reconstruct", str(video), "-o", str(capture), "--until", "frames")
        refused(busy, str(capture), f"pid {victim.pid}", code=75)
        assert_kept(before, tmp_path, created=False)
    finally:
        victim.kill()
        victim.communicate(timeout=60)
    assert recorded_status(capture, "frames") == "running"       # the record of a stage that never finished

    status = succeeded(run(cli, "status", str(capture)))
    assert stage_statuses(status)[:3] == [("preview", "done"), ("frames", "interrupted"), ("track", "pending")]
    before = snapshot(tmp_path)
    rerun = succeeded(run(cli, "reconstruct", str(video), "-o", str(capture), "--until", "frames"))
    assert stage_statuses(rerun) == [("preview", "skipped"), ("frames", "done")]
    assert_kept({"turning.mp4": before["turning.mp4"]}, tmp_path)
    assert stage_statuses(succeeded(run(cli, "status", str(capture))))[:2] == [("preview", "done"), ("frames", "done")]
    assert not (capture / ".staging").exists()


@pytest.mark.parametrize("signum, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)], ids=["SIGINT", "SIGTERM"])
def test_signal_cancels_reconstruct_with_its_exit_code_and_reports_the_stage(tmp_path, turning_clip, signum, code):
    video = copied(turning_clip, tmp_path)
    capture = tmp_path / "capture"
    before = snapshot(tmp_path)
    victim = start_reconstruct(video, capture)
    victim.send_signal(signum)
    stdout, stderr = victim.communicate(timeout=60)
    out = subprocess.CompletedProcess(victim.args, victim.returncode, stdout, stderr)
    line = refused(out, code=code, quiet_stdout=False)     # stdout holds the JSON-lines progress
    assert "cancel" in line.lower()
    assert_kept(before, tmp_path)
    assert recorded_status(capture, "frames") == "cancelled" and not (capture / "frames").exists()
    report = json.loads((capture / "report.json").read_text())
    assert report["stages"]["frames"]["status"] == "cancelled", report["stages"]
    assert report["stages"]["preview"]["status"] == "done", report["stages"]


# -- build and eval outputs ---------------------------------------------------------------------------

@pytest.mark.blender
@pytest.mark.parametrize("users_file", ["mine.blend", "mine_textures/delit_classic.png"],
                         ids=["existing-blend", "file-in-textures-folder"])
def test_build_never_replaces_a_users_file(cli, tmp_path, world, users_file):
    precious = tmp_path / users_file
    precious.parent.mkdir(parents=True, exist_ok=True)
    precious.write_bytes(b"the user's own work")
    before, capture_before = snapshot(tmp_path), snapshot(world[0])
    out = run(cli, "build", str(world[0]), "-o", str(tmp_path / "mine.blend"), timeout=300)
    if users_file == "mine.blend":
        refused(out, str(precious), "--overwrite")
    elif out.returncode != 0:        # refusing is one right answer; building without touching the user's file another
        refused(out, str(precious.parent))
    assert_kept(before, tmp_path, created=out.returncode == 0)
    assert snapshot(world[0]) == capture_before


@pytest.fixture(scope="module")
def other_videos_truth(tmp_path_factory):
    """`studio-avatar synth` of another head (2 frames of 64x64): OUT/video.mp4 and its ground truth OUT/gt/."""
    out = tmp_path_factory.mktemp("synth") / "bob"
    made = run_cli("--progress", "none", "synth", str(out), "--seed", "3", "--frames", "2", "--size", "64x64",
                   "--samples", "1", "--albedo-size", "64", "--no-artifacts", timeout=600)
    assert made.returncode == 0, made.stderr[-4000:]
    return out


@pytest.mark.blender
@pytest.mark.parametrize("gt_folder", ["OUT", "OUT/gt"])
def test_eval_refuses_the_ground_truth_of_another_video(cli, world, other_videos_truth, gt_folder):
    capture = world[0]
    video_sha = hashlib.sha256((other_videos_truth / "video.mp4").read_bytes()).hexdigest()
    assert Capture.open(capture).source["sha256"] != video_sha
    gt = other_videos_truth if gt_folder == "OUT" else other_videos_truth / "gt"
    before, capture_before = snapshot(other_videos_truth), snapshot(capture)
    line = refused(run(cli, "eval", str(capture), "--gt", str(gt), "--no-identity", "--json", timeout=300))
    assert "video" in line.lower() and ("ground truth" in line.lower() or str(gt) in line), line
    assert_kept(before, other_videos_truth, created=False)
    assert snapshot(capture) == capture_before


# -- paths and options --------------------------------------------------------------------------------

BAD_ARGUMENTS = [   # the command line ({video}, {capture} filled in), and what the error line must name
    pytest.param(["reconstruct", "{video}", "-o", "/dev/null/capture", "--until", "preview"], ["/dev/null/capture"],
                 id="output-inside-a-file"),
    pytest.param(["reconstruct", "{video}", "-o", "{capture}", "--until", "frames", "--max-frames", "0"], ["--max-frames"],
                 id="max-frames-0"),
    pytest.param(["reconstruct", "{video}", "-o", "{capture}", "--until", "frames", "--max-frames", "-5"], ["--max-frames"],
                 id="max-frames-negative"),
    pytest.param(["reconstruct", "{video}", "-o", "{capture}", "--until", "frames", "--focal-mm35", "-3"], ["--focal-mm35"],
                 id="focal-negative"),
    pytest.param(["reconstruct", "{video}", "-o", "{capture}", "--until", "bogus"], ["bogus", ", ".join(RECONSTRUCTION.names())],
                 id="until-unknown-stage"),
    pytest.param(["reconstruct", "{video}", "-o", "{capture}", "--texture-size", "abc"], ["--texture-size", "abc"],
                 id="texture-size-not-a-number"),
    pytest.param(["reconstruct", "{video}", "-o", "{capture}", "--texture-method", "magic"], ["--texture-method", "magic"],
                 id="texture-method-unknown"),
    pytest.param(["reconstruct", "{video}", "-o", "{capture}", "--frobnicate"], ["--frobnicate"], id="unknown-option"),
    pytest.param(["reconstruct", "{video}"], ["-o/--output"], id="missing-required-option"),
    pytest.param(["frobnicate", "{video}"], ["frobnicate"], id="unknown-command"),
]


@pytest.mark.parametrize("argv, names", BAD_ARGUMENTS)
def test_bad_path_or_option_is_refused_before_anything_is_written(cli, tmp_path, clip_30, argv, names):
    video = copied(clip_30, tmp_path)
    argv = [arg.format(video=video, capture=tmp_path / "capture") for arg in argv]
    before = snapshot(tmp_path)
    refused(run(cli, *argv), *names)
    assert_kept(before, tmp_path, created=False)
