"""Client side of the worker process: start ``studio-avatar --worker ...``, read its events, cancel it.

Used by the Blender add-on (so heavy work never runs on Blender's UI thread)
and by tests. bpy-free. The worker speaks the JSON-lines protocol of
core/progress.py on stdout; "cancel" on its stdin asks it to stop at the next
progress update, and a worker that does not stop within the grace period is
terminated, then killed.
"""

from __future__ import annotations

import collections
import os
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable

from .errors import WorkerError
from .launcher import BLENDER_PATHS_VARIABLE, EXTENSION_ROOT, worker_argv
from .progress import parse_event


class WorkerProcess:
    """One running ``studio-avatar --worker`` command."""

    def __init__(
        self,
        args: list[str],                               # command-line arguments after --worker
        python: str | None = None,                     # interpreter to run (default: this one)
        extension_root: str | os.PathLike = EXTENSION_ROOT,
        extra_paths: tuple[str, ...] = (),             # folders prepended to PYTHONPATH (dependency folders)
        cancel_grace_s: float = 1.0,                   # time a worker gets to stop cleanly after "cancel"
        blender: str | None = None,                    # run inside this Blender executable (commands that need bpy)
    ) -> None:
        self.argv = worker_argv(["--worker", *args], python=python, extension_root=extension_root, blender=blender)
        self.extra_paths = tuple(p for p in extra_paths if p)
        self.cancel_grace_s = cancel_grace_s
        self.events: "queue.Queue[dict[str, Any]]" = queue.Queue()
        self.stderr_tail: collections.deque[str] = collections.deque(maxlen=40)
        self.result: Any = None
        self.error: dict[str, Any] | None = None
        self.process: subprocess.Popen | None = None
        self._cancel_deadline: float | None = None
        self._readers: list[threading.Thread] = []

    # -- lifecycle ------------------------------------------------------------------------------
    def start(self) -> "WorkerProcess":
        env = dict(os.environ, PYTHONUNBUFFERED="1", PYTHONIOENCODING="utf-8")
        if self.extra_paths:
            env["PYTHONPATH"] = os.pathsep.join([*self.extra_paths, env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
            env[BLENDER_PATHS_VARIABLE] = os.pathsep.join(self.extra_paths)
        flags = subprocess.CREATE_NO_WINDOW if sys.platform == "win32" else 0
        try:
            self.process = subprocess.Popen(
                self.argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                text=True, encoding="utf-8", errors="replace", bufsize=1, env=env, creationflags=flags,
            )
        except OSError as exc:
            raise WorkerError(f"cannot start the worker with {self.argv[0]}: {exc.strerror or exc}") from None
        self._readers = [
            threading.Thread(target=self._read_stdout, name="worker-stdout", daemon=True),
            threading.Thread(target=self._read_stderr, name="worker-stderr", daemon=True),
        ]
        for reader in self._readers:
            reader.start()
        return self

    def _read_stdout(self) -> None:
        assert self.process and self.process.stdout
        for line in self.process.stdout:
            event = parse_event(line)
            if event is None:
                if line.strip():
                    self.stderr_tail.append(line.rstrip())
                continue
            if event["type"] == "result":
                self.result = event.get("data")
            elif event["type"] == "error":
                self.error = event
            self.events.put(event)

    def _read_stderr(self) -> None:
        assert self.process and self.process.stderr
        for line in self.process.stderr:
            if line.strip():
                self.stderr_tail.append(line.rstrip())

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    @property
    def returncode(self) -> int | None:
        return None if self.process is None else self.process.poll()

    def poll_events(self) -> list[dict[str, Any]]:
        """Events received so far (non-blocking); also enforces the cancel deadline."""
        self._enforce_cancel_deadline()
        out = []
        while True:
            try:
                out.append(self.events.get_nowait())
            except queue.Empty:
                return out

    def request_cancel(self) -> None:
        """Ask the worker to stop; it is terminated if still running after the grace period."""
        if not self.running or self._cancel_deadline is not None:
            return
        self._cancel_deadline = time.monotonic() + self.cancel_grace_s
        try:
            assert self.process and self.process.stdin
            self.process.stdin.write("cancel\n")
            self.process.stdin.flush()
        except (OSError, ValueError):
            self._cancel_deadline = time.monotonic()

    def _enforce_cancel_deadline(self) -> None:
        if self._cancel_deadline is None or not self.running:
            return
        overdue = time.monotonic() - self._cancel_deadline
        if overdue >= 0.5:
            self.process.kill()
        elif overdue >= 0:
            self.process.terminate()

    @property
    def cancel_requested(self) -> bool:
        return self._cancel_deadline is not None

    def cancel(self, timeout_s: float = 5.0) -> int | None:
        """Cancel and wait for the process to end."""
        self.request_cancel()
        return self.wait(timeout_s)

    def wait(self, timeout_s: float | None = None, on_event: Callable[[dict[str, Any]], None] | None = None) -> int | None:
        """Wait for the worker to end, passing events to ``on_event`` as they arrive."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while self.running and (deadline is None or time.monotonic() < deadline):
            for event in self.poll_events():
                if on_event:
                    on_event(event)
            time.sleep(0.02)
        if not self.running:
            for reader in self._readers:
                reader.join(timeout=2.0)
        for event in self.poll_events():
            if on_event:
                on_event(event)
        return self.returncode

    # -- outcome --------------------------------------------------------------------------------
    @property
    def succeeded(self) -> bool:
        return self.returncode == 0 and self.error is None

    def error_message(self) -> str:
        """The worker's own one-line error, else the last line it printed, else its exit code."""
        if self.error:
            return str(self.error.get("message"))
        code = self.returncode
        detail = next((line for line in reversed(self.stderr_tail) if line.strip()), "no output")
        return f"the worker stopped without a result (exit code {code}): {detail}"


def run_worker(args: list[str], on_event: Callable[[dict[str, Any]], None] | None = None,
               timeout_s: float | None = None, **options: Any) -> Any:
    """Run a worker to completion and return its result, or raise WorkerError with its message."""
    worker = WorkerProcess(args, **options).start()
    worker.wait(timeout_s, on_event)
    if worker.running:
        worker.cancel()
        raise WorkerError(f"the worker did not finish within {timeout_s:.0f} s and was stopped")
    if not worker.succeeded:
        raise WorkerError(worker.error_message())
    return worker.result


def dependency_dirs(root: str | os.PathLike | None) -> tuple[str, ...]:
    """Extra import folders for the worker: ``root`` if it exists (the add-on's site-packages)."""
    return (str(root),) if root and Path(root).is_dir() else ()
