"""Capture what native libraries print on fd 2 (FFmpeg inside OpenCV, mediapipe's C++ logging) or fd 1 (Blender).

Their messages would otherwise land on the user's terminal, or in the worker's
log, as noise; callers turn them into one readable diagnosis or drop them.
Blender's renderer prints its status lines on stdout, where the CLI's JSON
result and the worker's JSON-lines protocol go: those must be captured.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from typing import Iterator


@contextlib.contextmanager
def native_stderr_captured() -> Iterator[list[str]]:
    """Redirect file descriptor 2 for the block; the yielded list receives the captured lines at the end."""
    with _fd_captured(2) as lines:
        yield lines


@contextlib.contextmanager
def native_stdout_captured() -> Iterator[list[str]]:
    """Redirect file descriptor 1 (and flush Python's stdout around it) for the block, like native_stderr_captured."""
    sys.stdout.flush()
    with _fd_captured(1) as lines:
        try:
            yield lines
        finally:
            sys.stdout.flush()


@contextlib.contextmanager
def _fd_captured(fd: int) -> Iterator[list[str]]:
    lines: list[str] = []
    try:
        saved = os.dup(fd)
    except OSError:  # no usable descriptor (some embedded hosts): nothing to capture
        yield lines
        return
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), fd)
        try:
            yield lines
        finally:
            os.dup2(saved, fd)
            os.close(saved)
            sink.seek(0)
            lines.extend(sink.read().decode("utf-8", "replace").splitlines())
