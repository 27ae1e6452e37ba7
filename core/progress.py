"""The progress protocol shared by the CLI and the Blender add-on.

A run reports through a :class:`Progress` object. Each event is a flat JSON
object with a ``type``; a worker writes them one per line on stdout
(``--progress jsonl``) and the add-on reads them back with :func:`parse_event`.

Event types (all fields are JSON scalars):

``progress``  stage, fraction (0..1 within the stage), message, eta_s (seconds or null)
``stage``     stage, status (started | done | skipped | failed | cancelled), duration_s
``warning``   stage, message
``result``    data (the command's result object)
``error``     message, error (class name), exit_code

Cancellation is cooperative: every ``update`` checks the run's
:class:`CancelToken` and raises :class:`~core.errors.Cancelled` once it is set.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from typing import Any, Callable, Iterable, Iterator, Protocol, TextIO, TypeVar

from .errors import Cancelled

EVENT_TYPES = ("progress", "stage", "warning", "result", "error")
T = TypeVar("T")


class CancelToken:
    """Set from a signal handler, a UI thread or a test; checked by the running stage."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self.reason = "cancelled by the user"
        self.exit_code = Cancelled.exit_code

    def cancel(self, reason: str | None = None, exit_code: int | None = None) -> None:
        """Cancel at the next check; ``exit_code``: what the process exits with (128 + signal number for a signal)."""
        if reason:
            self.reason = reason
        if exit_code is not None:
            self.exit_code = exit_code
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def check(self) -> None:
        if self._event.is_set():
            cancelled = Cancelled(f"Run {self.reason}; completed stages are kept, run the same command again to resume.")
            cancelled.exit_code = self.exit_code
            raise cancelled


class ProgressSink(Protocol):
    def emit(self, event: dict[str, Any]) -> None: ...


class NullSink:
    def emit(self, event: dict[str, Any]) -> None:
        pass


class CallbackSink:
    def __init__(self, callback: Callable[[dict[str, Any]], None]) -> None:
        self.callback = callback

    def emit(self, event: dict[str, Any]) -> None:
        self.callback(event)


class JsonLinesSink:
    """One JSON object per line; flushed at once so a reading parent sees it live."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self._lock = threading.Lock()

    def emit(self, event: dict[str, Any]) -> None:
        line = json.dumps(event, separators=(",", ":"), default=str)
        with self._lock:
            self.stream.write(line + "\n")
            self.stream.flush()


class TextSink:
    """Human-readable progress for a terminal: one updating line per stage, ETA included."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        self.interactive = bool(getattr(self.stream, "isatty", lambda: False)())
        self._open_line = False

    def _write(self, text: str, transient: bool) -> None:
        if self.interactive and transient:
            self.stream.write("\r\x1b[2K" + text)
            self._open_line = True
        else:
            if self._open_line:
                self.stream.write("\r\x1b[2K")
                self._open_line = False
            self.stream.write(text + "\n")
        self.stream.flush()

    def emit(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        if kind == "progress":
            eta = event.get("eta_s")
            eta_text = f"  ETA {format_duration(eta)}" if eta else ""
            text = f"[{event['stage']}] {event['fraction'] * 100:5.1f}%  {event.get('message', '')}{eta_text}"
            self._write(text, transient=True)
        elif kind == "stage":
            status = event["status"]
            if status == "started":
                return
            if status == "skipped":
                self._write(f"[{event['stage']}] up to date, skipped", transient=False)
                return
            duration = event.get("duration_s")
            took = f" in {format_duration(duration)}" if duration is not None else ""
            self._write(f"[{event['stage']}] {status}{took}", transient=False)
        elif kind == "warning":
            self._write(f"warning: [{event.get('stage', '')}] {event['message']}", transient=False)


def format_duration(seconds: float) -> str:
    seconds = max(0.0, float(seconds))
    if seconds < 60:
        return f"{seconds:.0f}s" if seconds >= 10 else f"{seconds:.1f}s"
    minutes, secs = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def parse_event(line: str) -> dict[str, Any] | None:
    """Decode one protocol line; None for anything else (stray prints, blank lines)."""
    line = line.strip()
    if not line.startswith("{"):
        return None
    try:
        event = json.loads(line)
    except ValueError:
        return None
    if not isinstance(event, dict) or event.get("type") not in EVENT_TYPES:
        return None
    return event


class Progress:
    """Reporter for one run: hands out stage trackers, throttles events and checks for cancel."""

    def __init__(
        self,
        sink: ProgressSink | None = None,
        cancel: CancelToken | None = None,
        min_interval_s: float = 0.1,          # fewest seconds between two progress events of a stage
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.sink = sink or NullSink()
        self.cancel = cancel or CancelToken()
        self.min_interval_s = min_interval_s
        self.clock = clock

    def emit(self, event_type: str, **fields: Any) -> None:
        assert event_type in EVENT_TYPES, event_type
        self.sink.emit({"type": event_type, **fields})

    def stage(self, name: str) -> "StageProgress":
        return StageProgress(self, name)

    def warning(self, stage: str, message: str) -> None:
        self.emit("warning", stage=stage, message=message)


class StageProgress:
    """Progress of one stage (fraction 0..1), with a linear ETA once there is enough to go on."""

    def __init__(self, progress: Progress, name: str, start: float = 0.0, end: float = 1.0, root: "StageProgress | None" = None) -> None:
        self.progress = progress
        self.name = name
        self.start = start
        self.end = end
        self._root = root or self
        if root is None:
            self.started_at = progress.clock()
            self._last_emit = -float("inf")
            self._last_fraction = 0.0

    def update(self, fraction: float, message: str = "", force: bool = False) -> None:
        """Report ``fraction`` (0..1 of this range); raises Cancelled if the run was cancelled."""
        self.progress.cancel.check()
        root = self._root
        total = self.start + (self.end - self.start) * min(max(float(fraction), 0.0), 1.0)
        total = max(total, root._last_fraction)  # never go backwards on screen
        now = self.progress.clock()
        if not force and now - root._last_emit < self.progress.min_interval_s and total < 1.0:
            return
        root._last_emit = now
        root._last_fraction = total
        elapsed = now - root.started_at
        eta = None
        if 0.02 <= total < 1.0 and elapsed >= 0.5:
            eta = round(elapsed * (1.0 - total) / total, 1)
        elif total >= 1.0:
            eta = 0.0
        self.progress.emit("progress", stage=self.name, fraction=round(total, 4), message=message, eta_s=eta)

    def sub(self, start: float, end: float) -> "StageProgress":
        """A tracker for the part [start, end] of this range (nested loops report 0..1 into it)."""
        span = self.end - self.start
        return StageProgress(self.progress, self.name, self.start + span * start, self.start + span * end, self._root)

    def iterate(self, items: Iterable[T], total: int, message: str = "{done}/{total}") -> Iterator[T]:
        """Yield ``items`` while reporting done/total after each one."""
        self.update(0.0, message.format(done=0, total=total))
        for done, item in enumerate(items, start=1):
            yield item
            self.update(done / max(total, 1), message.format(done=done, total=total))

    def warning(self, message: str) -> None:
        self.progress.warning(self.name, message)
