"""Run the blob stage in its own process (so a test can kill it mid-write).

Usage: python run_blob_stage.py CAPTURE TAG [STALL_MARKER]
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from devpath import load_package  # noqa: E402

load_package()
from stage_fixtures import BLOB, PIPELINE, BlobParams  # noqa: E402
from studio_avatar.core.capture import Capture  # noqa: E402
from studio_avatar.core.progress import Progress  # noqa: E402

capture = Capture.open(sys.argv[1])
params = BlobParams(tag=sys.argv[2], stall_marker=sys.argv[3] if len(sys.argv) > 3 else "")
PIPELINE.run(capture, Progress(), params={BLOB.name: params}, until=BLOB.name)
