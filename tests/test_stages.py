"""The stage runner: skip when up to date, rerun on change, atomic outputs, crash/cancel/kill safety."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from stage_fixtures import CHUNK, PIPELINE, BlobParams, new_capture

from studio_avatar.core.atomic import atomic_path, atomic_write_bytes
from studio_avatar.core.capture import Capture
from studio_avatar.core.errors import CaptureBusyError, CaptureError, Cancelled, StageError
from studio_avatar.core.progress import CallbackSink, CancelToken, Progress
from studio_avatar.core.stages import Pipeline, Stage

HELPER = Path(__file__).resolve().parent / "helpers" / "run_blob_stage.py"


def statuses(outcomes):
    return [(o.name, o.status) for o in outcomes]


def blob_bytes(tag, chunks=32):
    return tag.encode() * CHUNK * chunks


def test_runs_then_skips_until_params_or_inputs_change(tmp_path):
    capture = new_capture(tmp_path / "cap")
    assert statuses(PIPELINE.run(capture, Progress())) == [("blob", "done"), ("summary", "done")]
    assert capture.path("blob.bin").read_bytes() == blob_bytes("A")
    assert statuses(PIPELINE.run(capture, Progress())) == [("blob", "skipped"), ("summary", "skipped")]

    # a param change reruns the stage, and its new output reruns the stage downstream
    outcomes = PIPELINE.run(capture, Progress(), params={"blob": BlobParams(tag="B")})
    assert statuses(outcomes) == [("blob", "done"), ("summary", "done")]
    assert capture.path("summary.txt").read_text() == f"{32 * CHUNK} B"

    # a new source video reruns the stage that reads it; the blob comes out byte-identical,
    # so the stage downstream (keyed on content, not on time) stays up to date
    capture.manifest["source"]["sha256"] = "1" * 64
    outcomes = PIPELINE.run(capture, Progress(), params={"blob": BlobParams(tag="B")})
    assert statuses(outcomes) == [("blob", "done"), ("summary", "skipped")]


def test_manifest_records_params_hashes_versions_and_times(tmp_path):
    capture = new_capture(tmp_path / "cap")
    PIPELINE.run(capture, Progress(), params={"blob": BlobParams(tag="C", chunks=4)})
    manifest = json.loads((tmp_path / "cap" / "capture.json").read_text())
    record = manifest["stages"]["blob"]
    assert record["status"] == "done"
    assert record["params"] == {"tag": "C", "chunks": 4, "stall_marker": "", "fail_halfway": False}
    assert record["inputs"] == {"source": "0" * 64}
    assert set(record["outputs"]) == {"blob.bin", "blob.json"}
    import hashlib
    assert record["outputs"]["blob.bin"]["sha256"] == hashlib.sha256(blob_bytes("C", 4)).hexdigest()
    assert record["versions"]["python"].startswith("3.")
    assert record["started"] <= record["finished"]
    assert manifest["stages"]["summary"]["inputs"]["blob.bin"] == record["outputs"]["blob.bin"]["sha256"]


def test_changed_or_deleted_output_is_rebuilt(tmp_path):
    capture = new_capture(tmp_path / "cap")
    PIPELINE.run(capture, Progress())
    capture.path("blob.bin").write_bytes(b"edited by hand")
    assert PIPELINE.status(capture)[0]["status"] == "stale"
    assert statuses(PIPELINE.run(capture, Progress())) == [("blob", "done"), ("summary", "skipped")]
    assert capture.path("blob.bin").read_bytes() == blob_bytes("A")
    capture.path("summary.txt").unlink()
    assert statuses(PIPELINE.run(capture, Progress())) == [("blob", "skipped"), ("summary", "done")]


def test_force_and_until(tmp_path):
    capture = new_capture(tmp_path / "cap")
    assert statuses(PIPELINE.run(capture, Progress(), until="blob")) == [("blob", "done")]
    assert PIPELINE.status(capture)[1]["status"] == "pending"
    assert statuses(PIPELINE.run(capture, Progress(), force=["blob"])) == [("blob", "done"), ("summary", "done")]
    with pytest.raises(StageError, match="unknown stage"):
        PIPELINE.run(capture, Progress(), until="nope")


def test_failing_stage_keeps_previous_output(tmp_path):
    capture = new_capture(tmp_path / "cap")
    PIPELINE.run(capture, Progress())
    with pytest.raises(StageError, match="on purpose"):
        PIPELINE.run(capture, Progress(), params={"blob": BlobParams(tag="Z", fail_halfway=True)})
    assert capture.path("blob.bin").read_bytes() == blob_bytes("A")
    record = Capture.open(tmp_path / "cap").stage_record("blob")
    assert record["status"] == "failed" and "on purpose" in record["error"]
    assert not capture.staging_root.exists()


def test_cancel_mid_stage_keeps_previous_output_and_resumes(tmp_path):
    capture = new_capture(tmp_path / "cap")
    PIPELINE.run(capture, Progress())
    token = CancelToken()

    def cancel_at_chunk_five(event):
        if event["type"] == "progress" and event["message"] == "chunk 5":
            token.cancel()

    with pytest.raises(Cancelled, match="run the same command again"):
        PIPELINE.run(capture, Progress(CallbackSink(cancel_at_chunk_five), token, min_interval_s=0),
                     params={"blob": BlobParams(tag="B")})
    assert capture.path("blob.bin").read_bytes() == blob_bytes("A")
    assert Capture.open(tmp_path / "cap").stage_record("blob")["status"] == "cancelled"
    outcomes = PIPELINE.run(capture, Progress(), params={"blob": BlobParams(tag="B")})
    assert statuses(outcomes) == [("blob", "done"), ("summary", "done")]
    assert capture.path("blob.bin").read_bytes() == blob_bytes("B")


def test_killed_mid_write_keeps_previous_output_and_rerun_finishes(tmp_path):
    root = tmp_path / "cap"
    new_capture(root)
    first = subprocess.run([sys.executable, str(HELPER), str(root), "A"], capture_output=True, text=True, timeout=60)
    assert first.returncode == 0, first.stderr
    assert (root / "blob.bin").read_bytes() == blob_bytes("A")

    marker = tmp_path / "halfway"
    victim = subprocess.Popen([sys.executable, str(HELPER), str(root), "B", str(marker)], stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while not marker.exists():
        assert victim.poll() is None, victim.stderr.read().decode()
        assert time.monotonic() < deadline, "stage never reached its halfway point"
        time.sleep(0.02)
    staged = root / ".staging" / "blob" / "blob.bin"
    assert staged.stat().st_size > 0 and staged.read_bytes()[:1] == b"B"  # really mid-write
    victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=10)

    assert (root / "blob.bin").read_bytes() == blob_bytes("A")  # previous complete output untouched
    capture = Capture.open(root)
    assert capture.stage_record("blob")["status"] == "running"
    assert PIPELINE.status(capture)[0]["status"] == "interrupted"

    rerun = subprocess.run([sys.executable, str(HELPER), str(root), "B"], capture_output=True, text=True, timeout=60)
    assert rerun.returncode == 0, rerun.stderr
    assert (root / "blob.bin").read_bytes() == blob_bytes("B")
    assert Capture.open(root).stage_record("blob")["status"] == "done"
    assert not (root / ".staging").exists()


def test_second_process_on_same_capture_is_refused(tmp_path):
    root = tmp_path / "cap"
    new_capture(root)
    marker = tmp_path / "halfway"
    holder = subprocess.Popen([sys.executable, str(HELPER), str(root), "A", str(marker)])
    try:
        deadline = time.monotonic() + 60
        while not marker.exists():
            assert holder.poll() is None and time.monotonic() < deadline
            time.sleep(0.02)
        with pytest.raises(CaptureBusyError, match=f"pid {holder.pid}"):
            PIPELINE.run(Capture.open(root), Progress())
        assert PIPELINE.status(Capture.open(root))[0]["status"] == "running"
    finally:
        holder.kill()
        holder.wait()


def test_stage_contract_is_enforced(tmp_path):
    def sneaky(ctx):
        ctx.output("../outside.txt").write_text("x")

    def lazy(ctx):
        pass

    capture = new_capture(tmp_path / "cap")
    with pytest.raises(StageError, match="does not declare"):
        Pipeline([Stage("sneaky", 1, sneaky, outputs=("inside.txt",))]).run(capture, Progress())
    with pytest.raises(StageError, match="without writing"):
        Pipeline([Stage("lazy", 1, lazy, outputs=("result.txt",))]).run(capture, Progress())
    with pytest.raises(CaptureError, match="not a path inside"):
        capture.path("../escape")
    assert not (tmp_path / "outside.txt").exists()


def test_folder_outputs_are_replaced_whole(tmp_path):
    def write_frames(ctx):
        for i in range(ctx.params.count):
            ctx.output(f"frames/{i:03d}.txt").write_text(str(i))

    from dataclasses import dataclass

    @dataclass(frozen=True)
    class Count:
        count: int = 3

    pipeline = Pipeline([Stage("frames", 1, write_frames, outputs=("frames/",), params_type=Count)])
    capture = new_capture(tmp_path / "cap")
    pipeline.run(capture, Progress())
    pipeline.run(capture, Progress(), params={"frames": Count(2)})
    assert sorted(p.name for p in capture.path("frames").iterdir()) == ["000.txt", "001.txt"]


def test_atomic_path_leaves_old_file_on_error(tmp_path):
    target = tmp_path / "out.bin"
    atomic_write_bytes(target, b"old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("crash")
    assert target.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["out.bin"]
    assert oct(target.stat().st_mode & 0o777) != oct(0o600)  # not mkstemp's private mode


def test_capture_folder_rules(tmp_path):
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "thesis.docx").write_text("precious")
    with pytest.raises(CaptureError, match="not empty"):
        new_capture(tmp_path / "busy")
    assert (tmp_path / "busy" / "thesis.docx").read_text() == "precious"
    with pytest.raises(CaptureError, match="not a capture folder"):
        Capture.open(tmp_path / "busy")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "capture.json").write_text("{not json")
    with pytest.raises(CaptureError, match="unreadable"):
        Capture.open(tmp_path / "bad")
    newer = new_capture(tmp_path / "newer")
    newer.manifest["schema"] = 99
    (tmp_path / "newer" / "capture.json").write_text(json.dumps(newer.manifest))
    with pytest.raises(CaptureError, match="newer"):
        Capture.open(tmp_path / "newer")
