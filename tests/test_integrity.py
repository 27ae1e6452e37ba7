"""Integrity: one notion of "current", no silent overwrites or deletions.

The first part drives the stage runner with the small stages of
tests/helpers/stage_fixtures.py; the rest runs the real console entry on two
short rendered clips of different people:

* a capture re-pointed at another video with ``--until track`` shows the
  later stages as ``stale``; build and fit-preview refuse them until a full
  reconstruct makes them current again;
* ``build --overwrite`` replaces only the files in ``NAME_textures/`` that
  an earlier build wrote, and never one edited since;
* a stage rerun moves unknown files in its folders to ``CAP/.trash/``;
* report.json lists failed stages.

Bad inputs one kind at a time (signals, a user's file beside a .blend, another
video's ground truth, bad options) are in test_bad_inputs.py.
"""

import hashlib
import json
import subprocess

import cv2
import pytest
from stage_fixtures import BLOB, PIPELINE, SUMMARY, BlobParams, new_capture

from studio_avatar.core.errors import CaptureError, StageError
from studio_avatar.core.progress import Progress
from studio_avatar.core.stages import REPORT_NAME, TRASH_NAME, require_current, run_stage, stage_states


def states(capture):
    return {name: state.status for name, state in stage_states(capture).items()}


def replace_source(capture, sha):
    capture.manifest["source"]["sha256"] = sha
    capture.save()


# -- the stage runner ---------------------------------------------------------------------------------

def test_a_source_change_makes_every_stage_after_it_stale(tmp_path):
    capture = new_capture(tmp_path / "cap")
    PIPELINE.run(capture, Progress())
    assert states(capture) == {"blob": "done", "summary": "done"}
    replace_source(capture, "1" * 64)
    found = stage_states(capture)
    assert found["blob"].status == "stale" and "source video changed" in found["blob"].reason
    assert found["summary"].status == "stale" and found["summary"].rerun_from == "blob"   # transitively
    with pytest.raises(CaptureError, match=r"summary.txt is out of date .*rerun from stage blob"):
        require_current(capture, ["summary.txt"], "build")


def test_until_after_a_source_change_leaves_the_later_stages_stale_until_they_run(tmp_path):
    capture = new_capture(tmp_path / "cap")
    PIPELINE.run(capture, Progress())
    replace_source(capture, "1" * 64)
    PIPELINE.run(capture, Progress(), params={"blob": BlobParams(tag="B")}, until="blob")   # new content, then stop
    found = stage_states(capture)
    assert found["blob"].status == "done"
    assert found["summary"].status == "stale" and "blob.bin changed" in found["summary"].reason
    assert [row["status"] for row in PIPELINE.status(capture)] == ["done", "stale"]
    PIPELINE.run(capture, Progress(), params={"blob": BlobParams(tag="B")})
    assert states(capture) == {"blob": "done", "summary": "done"}
    assert (capture.root / "summary.txt").read_text().endswith("B")


def test_a_stage_refuses_inputs_of_a_stale_stage(tmp_path):
    capture = new_capture(tmp_path / "cap")
    PIPELINE.run(capture, Progress())
    replace_source(capture, "1" * 64)
    with pytest.raises(CaptureError, match="blob.bin is out of date"):
        run_stage(capture, SUMMARY, SUMMARY.params_type(), Progress(), force=True)


def test_an_edited_output_makes_its_stage_and_the_ones_after_it_stale(tmp_path):
    capture = new_capture(tmp_path / "cap")
    PIPELINE.run(capture, Progress())
    (capture.root / "blob.bin").write_bytes(b"edited")
    assert states(capture) == {"blob": "stale", "summary": "stale"}


def test_report_lists_failed_stages_with_their_error(tmp_path):
    capture = new_capture(tmp_path / "cap")
    with pytest.raises(StageError):
        PIPELINE.run(capture, Progress(), params={"blob": BlobParams(fail_halfway=True)})
    report = json.loads((capture.root / REPORT_NAME).read_text())
    assert report["stages"]["blob"]["status"] == "failed"
    assert "failed on purpose" in report["stages"]["blob"]["reason"]


def test_a_rerun_moves_files_it_did_not_write_out_of_its_output_folder(tmp_path):
    from studio_avatar.core.stages import Pipeline, Stage

    def write_folder(ctx):
        ctx.output("parts/a.txt").write_text(ctx.params.tag)

    stage = Stage("parts", 1, write_folder, outputs=("parts/",), params_type=BlobParams)
    capture = new_capture(tmp_path / "cap")
    Pipeline([stage]).run(capture, Progress())
    (capture.root / "parts" / "mine.txt").write_bytes(b"my notes")
    outcome = run_stage(capture, stage, BlobParams(tag="B"), Progress())
    assert sorted(p.name for p in (capture.root / "parts").iterdir()) == ["a.txt"]
    kept = list((capture.root / TRASH_NAME).rglob("mine.txt"))
    assert len(kept) == 1 and kept[0].read_bytes() == b"my notes"
    assert any("mine.txt" in warning and TRASH_NAME in warning for warning in outcome.warnings)


# -- the console entry on real clips ------------------------------------------------------------------

@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    """Two 12-frame clips of two different rendered people."""
    from studio_avatar.core.head.open_head import get_open_head
    from studio_avatar.core.synth.head_clip import HeadClipSpec, render_frames, sample_head_clip

    head = get_open_head()
    folder = tmp_path_factory.mktemp("clips")
    paths = []
    for seed in (5, 6):
        spec = HeadClipSpec(frames=12, width=320, height=240, seed=seed, yaw_deg=40.0)
        path = folder / f"person{seed}.mp4"
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 30.0, (320, 240))
        for frame in render_frames(head, sample_head_clip(head, spec), spec):
            writer.write(frame)
        writer.release()
        paths.append(path)
    return paths


def reconstruct(cli, video, capture, *extra):
    out = cli("reconstruct", str(video), "-o", str(capture), "--texture-method", "classic", "--texture-size", "256", *extra)
    assert out.returncode == 0, out.stderr[-3000:]
    return out


def status(cli, capture):
    out = cli("status", str(capture))
    assert out.returncode == 0, out.stderr
    return {row["stage"]: row for row in json.loads(out.stdout)["stages"]}


def refusal(out):
    assert out.returncode == 2, out.stdout + out.stderr
    assert "Traceback" not in out.stderr
    lines = [line for line in out.stderr.splitlines() if line.startswith("studio-avatar: error: ")]
    assert len(lines) == 1, out.stderr
    return lines[0]


@pytest.fixture(scope="module")
def capture(clips, tmp_path_factory):
    """A finished classic capture of the first person."""
    from conftest import run_cli

    root = tmp_path_factory.mktemp("captures") / "anna"
    reconstruct(run_cli, clips[0], root)
    return root


def tree_hashes(folder):
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.blender
def test_a_replaced_source_leaves_later_stages_stale_and_consumers_refuse_them(cli, clips, capture, tmp_path):
    root = tmp_path / "cap"
    subprocess.run(["cp", "-a", str(capture), str(root)], check=True)
    reconstruct(cli, clips[1], root, "--replace-source", "--until", "track")
    rows = status(cli, root)
    assert [rows[name]["status"] for name in ("preview", "frames", "track")] == ["done"] * 3
    for name in ("fit", "unwrap", "delight_classic"):
        assert rows[name]["status"] == "stale", rows[name]
        assert rows[name]["rerun_from"] == "fit", rows[name]

    built = refusal(cli("build", str(root), "-o", str(tmp_path / "mix.blend")))
    assert "fit.npz is out of date" in built and "rerun from stage fit" in built
    assert not (tmp_path / "mix.blend").exists() and not (tmp_path / "mix_textures").exists()
    preview = refusal(cli("fit-preview", str(root), "-o", str(tmp_path / "mix.mp4")))
    assert "fit.npz is out of date" in preview and not (tmp_path / "mix.mp4").exists()

    reconstruct(cli, clips[1], root)
    rows = status(cli, root)
    assert all(rows[name]["status"] == "done" for name in rows if name not in ("gmug", "enhance")), rows   # classic
    assert cli("fit-preview", str(root), "-o", str(tmp_path / "ok.mp4")).returncode == 0
    done = cli("build", str(root), "-o", str(tmp_path / "ok.blend"))
    assert done.returncode == 0, done.stderr


@pytest.mark.blender
def test_build_overwrite_replaces_only_the_files_build_wrote(cli, capture, tmp_path):
    """(A user's file in a folder build never wrote is in test_bad_inputs.py.)"""
    blend, folder = tmp_path / "ok.blend", tmp_path / "ok_textures"
    assert cli("build", str(capture), "-o", str(blend)).returncode == 0
    (folder / "notes.txt").write_text("keep me")
    assert "--overwrite" in refusal(cli("build", str(capture), "-o", str(blend)))
    again = cli("build", str(capture), "-o", str(blend), "--overwrite")
    assert again.returncode == 0, again.stderr
    assert (folder / "notes.txt").read_text() == "keep me"

    edited = folder / "delit_classic.png"
    edited.write_bytes(b"retouched by hand")
    before = tree_hashes(tmp_path)
    assert "edited since" in refusal(cli("build", str(capture), "-o", str(blend), "--overwrite"))
    assert tree_hashes(tmp_path) == before


def test_a_stage_rerun_keeps_a_users_file_in_its_folder(cli, clips, tmp_path):
    root = tmp_path / "cap"
    assert cli("reconstruct", str(clips[0]), "-o", str(root), "--until", "preview").returncode == 0
    (root / "preview" / "mine.txt").write_text("my notes")
    rerun = cli("reconstruct", str(clips[0]), "-o", str(root), "--until", "preview")
    assert rerun.returncode == 0, rerun.stderr
    assert "did not write (mine.txt)" in rerun.stderr
    kept = list((root / TRASH_NAME).rglob("mine.txt"))
    assert len(kept) == 1 and kept[0].read_text() == "my notes"
    assert status(cli, root)["preview"]["status"] == "done"
