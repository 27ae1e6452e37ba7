"""Small stages with known outputs, for testing the stage runner (not part of the product)."""

import os
import time
from dataclasses import dataclass
from pathlib import Path

from studio_avatar.core.capture import Capture, stat_signature
from studio_avatar.core.errors import StageError
from studio_avatar.core.hashing import path_sha256
from studio_avatar.core.stages import Pipeline, Stage, StageContext

CHUNK = 64 * 1024


@dataclass(frozen=True)
class BlobParams:
    tag: str = "A"                # byte written into every position of the blob
    chunks: int = 32              # blob size in 64 KiB chunks
    stall_marker: str = ""        # if set: after half the chunks, create this file and hang (to be killed)
    fail_halfway: bool = False    # raise a StageError halfway through


def write_blob(ctx: StageContext) -> None:
    params: BlobParams = ctx.params
    with open(ctx.output("blob.bin"), "wb") as handle:
        for i in range(params.chunks):
            handle.write(params.tag.encode() * CHUNK)
            handle.flush()
            ctx.progress.update((i + 1) / params.chunks, f"chunk {i + 1}")
            if i == params.chunks // 2:
                if params.fail_halfway:
                    raise StageError("blob stage failed on purpose")
                if params.stall_marker:
                    os.fsync(handle.fileno())
                    Path(params.stall_marker).write_text(str(os.getpid()))
                    time.sleep(600)
    ctx.output("blob.json").write_text(f'{{"tag": "{params.tag}"}}')


def summarize(ctx: StageContext) -> None:
    blob = ctx.input("blob.bin").read_bytes()
    ctx.output("summary.txt").write_text(f"{len(blob)} {blob[:1].decode()}")


BLOB = Stage("blob", 1, write_blob, outputs=("blob.bin", "blob.json"), params_type=BlobParams)
SUMMARY = Stage("summary", 1, summarize, outputs=("summary.txt",), inputs=("blob.bin",))
PIPELINE = Pipeline([BLOB, SUMMARY])


def new_capture(root: Path, source_sha: str = "0" * 64) -> Capture:
    return Capture.create(root, {"path": "/nonexistent/video.mp4", "sha256": source_sha, "frames": 1})


def accept_edited_outputs(capture: Capture, stage: str) -> None:
    """Record stage ``stage``'s outputs as they are now, as if it had written them: for tests that edit a
    stage's outputs by hand to feed a later stage (which refuses outputs changed since their stage ran)."""
    record = capture.stage_record(stage)
    for relative, entry in record["outputs"].items():
        path = capture.path(relative)
        entry.update(sha256=path_sha256(path), signature=stat_signature(path))
    capture.set_stage_record(stage, record)
