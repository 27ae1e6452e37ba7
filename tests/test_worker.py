"""The worker client: results, surfaced errors, ordered progress, and cancel within 2 s."""

import time
from pathlib import Path

import pytest

from studio_avatar.core.capture import Capture
from studio_avatar.core.errors import WorkerError
from studio_avatar.core.synth.clip import write_turning_head_clip
from studio_avatar.core.worker import WorkerProcess, run_worker

FAKE = Path(__file__).resolve().parent / "helpers" / "fake_extension"


def test_probe_through_worker_returns_the_facts(clip_30):
    result = run_worker(["probe", str(clip_30)], timeout_s=60)
    assert (result["frames"], result["width"], result["height"]) == (30, 320, 240)


def test_failing_worker_surfaces_its_message(tmp_path):
    bad = tmp_path / "holiday.mp4"
    bad.write_text("not a video")
    with pytest.raises(WorkerError) as info:
        run_worker(["probe", str(bad)], timeout_s=60)
    assert str(bad) in str(info.value) and "not a video file" in str(info.value)


def test_worker_that_crashes_without_protocol_reports_its_last_words(tmp_path):
    worker = WorkerProcess(["probe", "x"], python=str(tmp_path / "no-python-here"))
    with pytest.raises(WorkerError, match="cannot start the worker"):
        worker.start()


def test_reconstruct_events_arrive_in_order(clip_30, tmp_path):
    events = []
    result = run_worker(["reconstruct", str(clip_30), "-o", str(tmp_path / "cap"), "--until", "preview"], on_event=events.append, timeout_s=120)
    kinds = [(e["type"], e.get("status")) for e in events if e["type"] != "progress"]
    assert kinds == [("stage", "started"), ("stage", "done"), ("result", None)]
    progress = [e["fraction"] for e in events if e["type"] == "progress"]
    assert progress == sorted(progress) and progress[-1] == 1.0
    assert result["stages"] == [{"stage": "preview", "status": "done", "duration_s": result["stages"][0]["duration_s"], "warnings": []}]


@pytest.mark.parametrize("behaviour", ["polite", "stubborn"])
def test_cancel_stops_the_worker_within_two_seconds(behaviour):
    worker = WorkerProcess([behaviour], extension_root=FAKE, cancel_grace_s=1.0).start()
    deadline = time.monotonic() + 30
    while not [e for e in worker.poll_events() if e["type"] == "progress"]:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    started = time.monotonic()
    worker.request_cancel()
    worker.wait(timeout_s=5)
    assert not worker.running
    assert time.monotonic() - started < 2.0
    assert worker.returncode != 0 and not worker.succeeded
    if behaviour == "polite":
        assert worker.returncode == 130 and worker.error_message() == "cancelled politely"


def test_real_worker_cancel_leaves_a_resumable_capture(tmp_path):
    clip = write_turning_head_clip(tmp_path / "long.mp4", frames=300, width=320, height=240)
    capture_dir = tmp_path / "cap"
    worker = WorkerProcess(["reconstruct", str(clip), "-o", str(capture_dir), "--until", "preview"]).start()
    worker.request_cancel()  # arrives before the stage's first progress check
    assert worker.wait(timeout_s=30) == 130
    assert "resume" in worker.error_message()
    assert Capture.open(capture_dir).stage_record("preview")["status"] == "cancelled"
    result = run_worker(["reconstruct", str(clip), "-o", str(capture_dir), "--until", "preview"], timeout_s=120)
    assert result["stages"][0]["status"] == "done"
    assert (capture_dir / "preview" / "contact.png").stat().st_size > 0


def test_blender_worker_command_runs_the_cli_with_the_arguments_after_the_separator(tmp_path):
    """Inside a real Blender the worker for bpy commands is `blender -b ... --python-expr CODE -- ARGS`: CODE must
    hand ARGS (and only those) to the CLI and make the dependency folders importable (Blender ignores PYTHONPATH)."""
    import os
    import subprocess
    import sys

    from studio_avatar.core.launcher import BLENDER_PATHS_VARIABLE, worker_argv

    argv = worker_argv(["--version"], blender="/opt/blender/blender")
    assert argv[:6] == ["/opt/blender/blender", "-b", "--factory-startup", "--python-exit-code", "1", "--python-expr"]
    assert argv[7:] == ["--", "--version"]
    site_dir = tmp_path / "deps"
    site_dir.mkdir()
    marker = tmp_path / "marker"
    (site_dir / "probe.pth").write_text(f"import pathlib; pathlib.Path({str(marker)!r}).write_text('seen')\n")
    # plain Python stands in for Blender: Blender's own options before "--" must not reach the CLI
    out = subprocess.run([sys.executable, "-c", argv[6], "-b", "--factory-startup", "--", "--version"], capture_output=True,
                         text=True, timeout=60, env=dict(os.environ, **{BLENDER_PATHS_VARIABLE: str(site_dir)}))
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("studio-avatar ") and marker.read_text() == "seen"
