"""Capture what native libraries (FFmpeg inside OpenCV, mediapipe's C++ logging) print on fd 2.

Their messages would otherwise land on the user's terminal, or in the worker's
log, as noise; callers turn them into one readable diagnosis or drop them.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from typing import Iterator


@contextlib.contextmanager
def native_stderr_captured() -> Iterator[list[str]]:
    """Redirect file descriptor 2 for the block; the yielded list receives the captured lines at the end."""
    lines: list[str] = []
    try:
        saved = os.dup(2)
    except OSError:  # no usable fd 2 (some embedded hosts): nothing to capture
        yield lines
        return
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield lines
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            lines.extend(sink.read().decode("utf-8", "replace").splitlines())
