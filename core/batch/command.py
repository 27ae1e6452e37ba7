"""What a batch task runs on a cluster node: one ``studio-avatar`` command line, as a child process.

Ray ships this module's functions by value (the add-on's package name depends
on where it is installed, so a node could not import it by name); it imports
nothing but the standard library. The command writes JSON-lines progress; its
``result`` or ``error`` event is what the task returns, with its log kept
beside the outputs (one section per attempt). A command that dies of a signal (the node ran out of
memory, the process was killed) raises :class:`NodeFailure`, which Ray retries;
one that exits with an error of its own (no face in the video, an unreadable
file) is a result, not retried.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from typing import Any

BUSY_EXIT_CODE = 75      # EX_TEMPFAIL: another process holds the capture; worth another try


class NodeFailure(RuntimeError):
    """The command did not finish for a reason of the machine, not of its input: retried."""


def run_command(argv: list[str], log_path: str) -> dict[str, Any]:
    """Run ``argv`` (a ``studio-avatar ... --progress jsonl`` command line; no shell) to the end.

    Returns ``{"ok", "exit_code", "result", "error", "error_type", "warnings", "seconds", "node"}``; stderr and the
    progress events go to ``log_path``.
    """
    started = time.monotonic()
    os.makedirs(os.path.dirname(log_path) or ".", exist_ok=True)
    result, error, error_type, warnings = None, "", "", []
    tail = " ".join(argv[-4:])                                  # the task's own arguments, for the log and errors
    with open(log_path, "a", encoding="utf-8") as log:        # a retried task's attempts follow each other
        log.write(f"== attempt on {os.uname().nodename} at {time.strftime('%Y-%m-%dT%H:%M:%S')}: {tail}\n")
        log.flush()
        process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=log, stdin=subprocess.DEVNULL, text=True)
        for line in process.stdout:
            log.write(line)
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if not isinstance(event, dict):
                continue
            if event.get("type") == "result":
                result = event.get("data")
            elif event.get("type") == "error":
                error, error_type = str(event.get("message", "")), str(event.get("error", ""))
            elif event.get("type") == "warning":
                warnings.append(str(event.get("message", "")))
        code = process.wait()
    if code < 0 or code == BUSY_EXIT_CODE:
        raise NodeFailure(f"... {tail}: exited with {code} (see {log_path})")
    return {"ok": code == 0, "exit_code": code, "result": result, "error": error or ("" if code == 0 else
            f"exited with {code}; see {log_path}"), "error_type": error_type, "warnings": warnings,
            "seconds": round(time.monotonic() - started, 2), "node": os.uname().nodename}
