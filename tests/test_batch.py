"""``studio-avatar batch`` on Ray: the task graph runs every video to its renders and exports, a bad video is reported
and skipped, a rerun resumes; and the pieces (job planning, the node-side command runner, the gallery) on their own."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from headless_chromium import headless_page

from studio_avatar.core.batch.command import NodeFailure, run_command
from studio_avatar.core.batch.gallery import write_gallery
from studio_avatar.core.batch.jobs import BatchOptions, plan_jobs
from studio_avatar.core.head.open_head import get_open_head
from studio_avatar.core.launcher import worker_argv
from studio_avatar.core.synth.head_clip import HeadClipSpec, write_head_clip


def test_jobs_get_one_folder_per_video_and_the_same_video_twice_is_refused(tmp_path):
    a, b = tmp_path / "x" / "take.mp4", tmp_path / "y" / "take.mp4"
    jobs = plan_jobs([a, b, tmp_path / "anna smith.mov"], tmp_path / "out")
    names = [job.name for job in jobs]
    assert names[0] != names[1] and all(name.startswith("take-") for name in names[:2])   # same stem, told apart
    assert names[2] == "anna_smith"
    with pytest.raises(ValueError, match="listed twice"):
        plan_jobs([a, a], tmp_path / "out")
    with pytest.raises(ValueError, match="--export takes"):
        BatchOptions(exports=("obj",))


def _events(*events: dict, exit_code: int = 0) -> list[str]:
    lines = "".join(f"print({json.dumps(json.dumps(event))})\n" for event in events)
    return [sys.executable, "-c", f"import sys\n{lines}sys.exit({exit_code})"]


def test_the_command_runner_returns_the_result_or_the_users_error_and_raises_on_a_node_failure(tmp_path):
    ok = run_command(_events({"type": "progress", "stage": "x"}, {"type": "result", "data": {"answer": 42}}),
                     str(tmp_path / "ok.log"))
    assert ok["ok"] and ok["result"] == {"answer": 42} and ok["exit_code"] == 0
    assert '"answer": 42' in (tmp_path / "ok.log").read_text()            # the log keeps the events
    refused = run_command(_events({"type": "error", "message": "no face in the video", "error": "VideoError"},
                                  exit_code=2), str(tmp_path / "refused.log"))
    assert not refused["ok"] and refused["error"] == "no face in the video" and refused["error_type"] == "VideoError"
    killed = [sys.executable, "-c", f"import os, signal; os.kill(os.getpid(), {int(signal.SIGKILL)})"]
    with pytest.raises(NodeFailure, match="exited with -9"):
        run_command(killed, str(tmp_path / "killed.log"))


def test_the_gallery_escapes_what_it_shows(tmp_path):
    summary = {"done": 0, "failed": 1, "seconds": 3.0, "videos": [{
        "video": "/v/<b>.mp4", "name": "<script>x</script>", "status": "failed", "error": "bad <input> & worse",
        "timings_s": {"reconstruct": 2.5}, "renders": 0, "renders_total": 0, "exports": [], "contact_sheet": None}]}
    write_gallery(tmp_path / "index.html", summary)
    page = (tmp_path / "index.html").read_text()
    assert "<script>" not in page and "&lt;script&gt;x&lt;/script&gt;" in page
    assert "bad &lt;input&gt; &amp; worse" in page and "0 of 1 videos done, 1 failed" in page


@pytest.fixture(scope="module")
def batch_inputs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("batch videos")
    model = get_open_head(with_landmarks=True)
    for name, seed in (("anna", 1), ("ben", 2)):
        spec = HeadClipSpec(frames=16, width=320, height=240, yaw_deg=45.0, supersampling=1, seed=seed)
        write_head_clip(model, folder / f"{name}.mp4", folder / f"{name}_truth.npz", spec)
    (folder / "broken.mp4").write_text("not a video")
    return folder


BATCH_ARGS = ["--preset", "draft", "--texture-size", "256", "--texture-method", "classic", "--resolution", "64",
              "--samples", "2", "--lightings", "studio,sunset", "--views", "-30,0", "--export", "npz,glb"]
IMAGES = ["contact_sheet.png", "studio_yaw+000_neutral.png", "studio_yaw-030_neutral.png", "sunset_yaw+000_neutral.png",
          "sunset_yaw-030_neutral.png"]


def _processes() -> dict[int, tuple[int, str]]:
    """pid -> (parent pid, command line) of this machine's processes."""
    found = {}
    for folder in Path("/proc").iterdir():
        if folder.name.isdigit():
            try:
                cmdline = (folder / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                parent = int((folder / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            found[int(folder.name)] = (parent, cmdline)
    return found


def _kill_a_render_task_and_its_worker(out: Path, timeout_s: float) -> str:
    """Wait for a `render ... --task N` command of the batch into ``out``, then kill it and the Ray worker process
    running it; returns N."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for pid, (parent, cmdline) in _processes().items():
            if " render " in cmdline and " --task " in cmdline and f" {out}/" in cmdline:
                for victim in (parent, pid):
                    os.kill(victim, signal.SIGKILL)
                return cmdline.rsplit(" --task ", 1)[1].split()[0]
        time.sleep(0.05)
    raise AssertionError("no render task started")


def test_a_batch_survives_a_killed_worker_skips_a_bad_video_and_a_rerun_does_no_work(batch_inputs, tmp_path, repo_root):
    out = tmp_path / "out"
    videos = [str(batch_inputs / name) for name in ("anna.mp4", "broken.mp4", "ben.mp4")]
    argv = worker_argv(["batch", *videos, "-o", str(out), *BATCH_ARGS], extension_root=repo_root)
    batch = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    killed = _kill_a_render_task_and_its_worker(out, 600)
    stdout, stderr = batch.communicate(timeout=900)
    assert batch.returncode == 0, stderr
    summary = json.loads((out / "summary.json").read_text())
    assert json.loads(stdout)["done"] == summary["done"] == 2 and summary["failed"] == 1
    anna, broken, ben = summary["videos"]
    for video in (anna, ben):
        folder = out / video["name"]
        assert video["status"] == "done" and video["renders"] == video["renders_total"] == 4, video
        assert sorted(p.name for p in (folder / "renders").iterdir()) == IMAGES
        assert sorted(video["exports"]) == ["glb", "npz"] and (folder / "avatar.glb").is_file() and (folder / "avatar.npz").is_file()
    attempts = [(out / name / "logs" / f"render-{killed}.log").read_text().count("== attempt") for name in ("anna", "ben")]
    assert sorted(attempts) == [1, 2], attempts                      # the killed task ran again, on one video
    assert broken["status"] == "failed" and broken["error_type"] == "VideoError" and "not a video file" in broken["error"]
    assert "\n" not in broken["error"]
    assert (out / "broken" / "logs" / "reconstruct.log").read_text().count("== attempt") == 1     # not retried
    assert "the batch goes on without this video" in stderr

    with headless_page() as page:
        page.open((out / "index.html").as_uri())
        loaded = page.run("return [...document.images].map(i => [i.getAttribute('src'), i.complete && i.naturalWidth > 0])")
        text = page.run("return document.body.innerText")
    assert sorted(loaded) == [["anna/renders/contact_sheet.png", True], ["ben/renders/contact_sheet.png", True]]
    assert "not a video file" in text and "2 of 3 videos done, 1 failed" in text

    records = {name: json.loads((out / name / "capture" / "capture.json").read_text())["stages"] for name in ("anna", "ben")}
    made = {path: path.stat().st_mtime_ns for name in ("anna", "ben")
            for path in [out / name / "avatar.blend", out / name / "avatar.glb", *(out / name / "renders").iterdir()]}
    again = subprocess.run(argv, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr
    for name in ("anna", "ben"):
        assert json.loads((out / name / "capture" / "capture.json").read_text())["stages"] == records[name]   # no stage ran
        assert f"[{name}: build] up to date, skipped" in again.stderr and f"[{name}: renders] up to date, skipped" in again.stderr
    assert {path: path.stat().st_mtime_ns for path in made} == made
    timings = [video["timings_s"] for video in json.loads((out / "summary.json").read_text())["videos"] if video["status"] == "done"]
    assert all(set(t) == {"reconstruct"} for t in timings), timings       # only the capture check ran


def test_batch_refuses_missing_videos_at_once(tmp_path, cli):
    result = cli("batch", str(tmp_path / "nowhere.mp4"), "-o", str(tmp_path / "out"))
    assert result.returncode == 2 and "no such video" in result.stderr
    assert not (tmp_path / "out").exists()


def test_ray_retries_a_task_whose_node_failed(tmp_path):
    import ray

    from studio_avatar.core.batch import command

    marker = tmp_path / "crashed once"
    crash_first = [sys.executable, "-c", "import json, os, sys\n"
                   "if not os.path.exists(sys.argv[1]):\n    open(sys.argv[1], 'w').close(); os.kill(os.getpid(), 9)\n"
                   "print(json.dumps({'type': 'result', 'data': {'attempt': 2}}))", str(marker)]
    ray.cloudpickle.register_pickle_by_value(command)
    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        task = ray.remote(command.run_command).options(max_retries=2, retry_exceptions=[command.NodeFailure])
        outcome = ray.get(task.remote(crash_first, str(tmp_path / "task.log")))
        no_retries = ray.remote(command.run_command).options(max_retries=0, retry_exceptions=[command.NodeFailure])
        marker.unlink()
        with pytest.raises(Exception, match="exited with -9"):
            ray.get(no_retries.remote(crash_first, str(tmp_path / "again.log")))
    finally:
        ray.shutdown()
    assert outcome["ok"] and outcome["result"] == {"attempt": 2}
