"""The stage runner: skip what is up to date, write outputs atomically, resume after a crash or cancel.

A :class:`Stage` declares its inputs (``"source"`` for the video, or files that
earlier stages wrote), its outputs and a params dataclass. The runner

* computes a key from the stage's name, version, params and input hashes and
  skips the stage when the last run with that key is complete and its outputs
  are intact (unchanged hash);
* owns the one notion of *current* (:func:`stage_states`): a stage is current
  only if it finished, its outputs are intact, its recorded key matches the
  key its inputs would give now, and every stage that wrote those inputs is
  current too. Everything that reads a capture asks :func:`require_current`
  before it uses a stage's outputs;
* gives the stage a private staging folder to write into, and only after the
  stage returns moves each output into the capture with ``os.replace``. A
  crash, kill or cancel mid-stage leaves the previous complete outputs in
  place and a manifest that says the stage did not finish, so the next run
  redoes just that stage;
* records params, input hashes, output hashes, library versions, times and
  warnings in ``capture.json``.

Stages must not write anywhere but ``ctx.output(...)``.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from .atomic import atomic_write_json
from .capture import Capture, library_versions, signature_files, stat_signature, utc_now
from .errors import Cancelled, CaptureError, StageError, StudioAvatarError
from .hashing import json_sha256, path_sha256
from .progress import Progress, StageProgress

SOURCE = "source"
REPORT_NAME = "report.json"
TRASH_NAME = ".trash"          # files found in a stage's output folders that it did not write are moved here


@dataclass(frozen=True)
class NoParams:
    """Params of a stage that has none."""


@dataclass(frozen=True)
class Stage:
    name: str                                  # unique stage id, also the key in capture.json
    version: int                               # bump when a change alters the stage's outputs
    run: Callable[["StageContext"], None]      # does the work; writes only through ctx.output()
    outputs: tuple[str, ...]                   # capture-relative files, or folders ending in "/"
    inputs: tuple[str, ...] = (SOURCE,)        # "source" or capture-relative outputs of earlier stages
    params_type: type = NoParams               # frozen dataclass of the stage's parameters
    description: str = ""                      # one line, shown in --help and the add-on
    report_section: str = ""                   # key of the stage's metrics in report.json ("": the stage's name)


@dataclass(frozen=True)
class StageState:
    """Where a recorded stage stands now (see :func:`stage_states`)."""

    status: str          # done (current), stale, running, interrupted, failed, cancelled or pending
    reason: str = ""     # why it is not current
    rerun_from: str = ""  # the earliest stage of the chain that must run again ("" when current)


CURRENT = StageState("done")


@dataclass
class StageOutcome:
    name: str
    status: str                                # "done" or "skipped"
    duration_s: float = 0.0
    warnings: list[str] = field(default_factory=list)


class StageContext:
    """What a running stage sees: its params, inputs, a staging area for outputs, progress."""

    def __init__(self, stage: Stage, capture: Capture, params: Any, progress: StageProgress, staging: Path) -> None:
        self.stage = stage
        self.capture = capture
        self.params = params
        self.progress = progress
        self.staging = staging
        self.warnings: list[str] = []
        self.metrics: dict[str, Any] = {}      # JSON-ready figures for report.json (under the stage's name)

    @property
    def source(self) -> dict[str, Any]:
        return self.capture.source

    def input(self, relative: str) -> Path:
        if relative not in self.stage.inputs:
            raise StageError(f"stage {self.stage.name} reads {relative!r} but does not declare it as an input")
        return self.capture.path(relative)

    def output(self, relative: str) -> Path:
        """Path in the staging area to write ``relative`` to (parent folders are created)."""
        declared = any(
            relative == out or (out.endswith("/") and relative.startswith(out)) for out in self.stage.outputs
        )
        if not declared:
            raise StageError(f"stage {self.stage.name} writes {relative!r} but does not declare it as an output")
        self.capture.path(relative)  # validates the name
        target = self.staging / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        return target

    def warn(self, message: str) -> None:
        self.warnings.append(message)
        self.progress.warning(message)


def params_to_dict(params: Any) -> dict[str, Any]:
    return dataclasses.asdict(params) if dataclasses.is_dataclass(params) else dict(params or {})


class Pipeline:
    """An ordered list of stages run over one capture."""

    def __init__(self, stages: Sequence[Stage]) -> None:
        names = [s.name for s in stages]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate stage names in {names}")
        self.stages = list(stages)

    def names(self) -> list[str]:
        return [s.name for s in self.stages]

    def get(self, name: str) -> Stage:
        for stage in self.stages:
            if stage.name == name:
                return stage
        raise StageError(f"unknown stage {name!r}; stages are: {', '.join(self.names())}")

    def run(
        self,
        capture: Capture,
        progress: Progress,
        params: dict[str, Any] | None = None,
        until: str | None = None,
        force: Iterable[str] = (),
    ) -> list[StageOutcome]:
        """Run stages in order up to and including ``until``; ``force`` names stages to redo."""
        params = params or {}
        force = set(force)
        for name in list(force) + list(params) + ([until] if until else []):
            self.get(name)
        last = self.names().index(until) if until else len(self.stages) - 1
        outcomes = []
        with capture.locked():
            try:
                for stage in self.stages[: last + 1]:
                    stage_params = params.get(stage.name) or stage.params_type()
                    outcomes.append(run_stage(capture, stage, stage_params, progress, force=stage.name in force))
            finally:
                self.write_report(capture)
        return outcomes

    def write_report(self, capture: Capture) -> dict[str, Any]:
        """Write ``report.json``: every stage that ran, with its state (done, stale, failed, cancelled...), timing,
        warnings and error; the metrics of the current ones under their names."""
        report: dict[str, Any] = {"capture": str(capture.root), "stages": {}}
        states = stage_states(capture)
        for stage in self.stages:
            record = capture.stage_record(stage.name)
            if record is None:
                continue
            state = states[stage.name]
            report["stages"][stage.name] = {"status": state.status, "duration_s": record.get("duration_s"),
                                            "warnings": record.get("warnings", [])}
            if state.status != "done":
                report["stages"][stage.name]["reason"] = state.reason
            elif record.get("metrics"):
                report[stage.report_section or stage.name] = record["metrics"]
        atomic_write_json(capture.root / REPORT_NAME, report)
        return report

    def status(self, capture: Capture) -> list[dict[str, Any]]:
        """Per stage: pending, running, done (current), stale, failed, cancelled or interrupted, and why."""
        states = stage_states(capture)
        rows = []
        for stage in self.stages:
            record = capture.stage_record(stage.name) or {}
            state = states.get(stage.name, StageState("pending"))
            rows.append({
                "stage": stage.name,
                "status": state.status,
                "reason": state.reason,
                "rerun_from": state.rerun_from,
                "finished": record.get("finished"),
                "duration_s": record.get("duration_s"),
                "warnings": record.get("warnings", []),
                "error": record.get("error"),
            })
        return rows


def stage_key(name: str, version: int, params: dict[str, Any], inputs: dict[str, str]) -> str:
    """The key a run of stage ``name`` with these params and input hashes records."""
    return json_sha256({"stage": name, "version": version, "params": params, "inputs": inputs})


def producers(capture: Capture) -> dict[str, str]:
    """Capture-relative output name -> the stage whose record lists it."""
    return {output: name for name, record in capture.manifest["stages"].items() for output in record.get("outputs", {})}


def stage_states(capture: Capture) -> dict[str, StageState]:
    """The state of every stage recorded in ``capture.json``, from the manifest and the files alone.

    A finished stage is ``done`` (current) only if its outputs are intact, the
    key its recorded params give with its inputs' hashes *now* equals its
    recorded key, and the stages that wrote those inputs are current;
    otherwise it is ``stale``, with the reason and the first stage to rerun.
    """
    records = capture.manifest["stages"]
    writers = producers(capture)
    locked = capture.is_locked()
    states: dict[str, StageState] = {}

    def state_of(name: str) -> StageState:
        if name not in states:
            states[name] = _state(capture, name, records[name], writers, locked, state_of)
        return states[name]

    for name in records:
        state_of(name)
    return states


def _state(capture: Capture, name: str, record: dict[str, Any], writers: dict[str, str], locked: bool,
           state_of: Callable[[str], StageState]) -> StageState:
    status = record.get("status", "pending")
    if status == "running":
        return StageState("running" if locked else "interrupted", "it did not finish", name)
    if status != "done":
        return StageState(status, record.get("error") or f"it was {status}", name)
    if "key" not in record:
        return StageState("stale", "it has no record of its inputs", name)
    if not _outputs_intact(capture, record):
        return StageState("stale", "its outputs were changed or removed since it ran", name)
    current = {}
    for relative, recorded in record.get("inputs", {}).items():
        if relative == SOURCE:
            current[relative] = capture.source.get("sha256", "")
            if current[relative] != recorded:
                return StageState("stale", "the source video changed since it ran", name)
            continue
        output = relative.rstrip("/")
        writer = writers.get(output)
        if writer is not None and writer != name:
            upstream = state_of(writer)
            if upstream.status != "done":
                return StageState("stale", f"stage {writer}, which wrote its input {relative}, is {upstream.status}",
                                  upstream.rerun_from or writer)
        path = capture.path(output)
        if not path.exists():
            return StageState("stale", f"its input {relative} is missing", writer or name)
        current[relative] = _current_hash(capture, output, path)
        if current[relative] != recorded:
            return StageState("stale", f"its input {relative} changed since it ran", name)
    if stage_key(name, record.get("version", 0), record.get("params", {}), current) != record["key"]:
        return StageState("stale", "its inputs no longer give its recorded key", name)
    return CURRENT


def require_current(capture: Capture, relatives: Iterable[str], purpose: str,
                    states: dict[str, StageState] | None = None) -> None:
    """Refuse, naming the stage to rerun, unless each of ``relatives`` was written by a current stage
    (``states``: :func:`stage_states` already computed for this capture, for callers that ask several times)."""
    from . import TOOL_NAME

    writers = producers(capture)
    states = stage_states(capture) if states is None else states
    rerun = f"`{TOOL_NAME} reconstruct {capture.source.get('path', 'VIDEO')} -o {capture.root}`"
    for relative in relatives:
        writer = writers.get(relative.rstrip("/"))
        if writer is None:
            raise CaptureError(f"{capture.root}: {relative} was not written by any stage of this capture, so {purpose} "
                               f"cannot trust it; rerun {rerun}")
        state = states[writer]
        if state.status != "done":
            raise CaptureError(f"{capture.root}: {relative} is out of date (stage {writer} is {state.status}: "
                               f"{state.reason}), so {purpose} refuses it; rerun from stage {state.rerun_from}: {rerun}")


def is_current(capture: Capture, relative: str, states: dict[str, StageState] | None = None) -> bool:
    """True if ``relative`` was written by a stage that is current (``states`` as for :func:`require_current`)."""
    writer = producers(capture).get(relative.rstrip("/"))
    return writer is not None and (stage_states(capture) if states is None else states)[writer].status == "done"


def adopt_outputs(capture: Capture, name: str, outputs: Sequence[str], inputs: Sequence[str] = (),
                  params: dict[str, Any] | None = None, version: int = 1) -> None:
    """Record files written outside the runner (synthetic captures) as stage ``name``'s current outputs."""
    params = params or {}
    hashes = {relative: (capture.source["sha256"] if relative == SOURCE else
                         _current_hash(capture, relative.rstrip("/"), capture.path(relative.rstrip("/"))))
              for relative in inputs}
    entries = {}
    for relative in outputs:
        path = capture.path(relative.rstrip("/"))
        entries[relative.rstrip("/")] = {"sha256": path_sha256(path), "signature": stat_signature(path)}
    capture.set_stage_record(name, {"status": "done", "key": stage_key(name, version, params, hashes), "version": version,
                                    "params": params, "inputs": hashes, "outputs": entries, "finished": utc_now(),
                                    "warnings": []})


def _input_hashes(capture: Capture, stage: Stage) -> dict[str, str]:
    hashes = {}
    for name in stage.inputs:
        if name == SOURCE:
            hashes[name] = capture.source["sha256"]
            continue
        path = capture.path(name)
        if not path.exists():
            raise StageError(f"stage {stage.name} needs {name}, which is missing; run the earlier stages first")
        hashes[name] = _current_hash(capture, name.rstrip("/"), path)
    return hashes


def _current_hash(capture: Capture, relative: str, path: Path) -> str:
    """An earlier stage recorded this output's hash; trust it while size and mtime are unchanged."""
    for record in capture.manifest["stages"].values():
        entry = record.get("outputs", {}).get(relative)
        if entry and entry.get("signature") == stat_signature(path):
            return entry["sha256"]
    return path_sha256(path)


def _outputs_intact(capture: Capture, record: dict[str, Any]) -> bool:
    for relative, entry in record.get("outputs", {}).items():
        path = capture.path(relative)
        if not path.exists():
            return False
        if entry.get("signature") != stat_signature(path) and entry.get("sha256") != path_sha256(path):
            return False
    return True


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        path.unlink()


def _keep_unknown_files(capture: Capture, ctx: StageContext, name: str, dest: Path, previous: dict[str, Any]) -> None:
    """Move files in the output folder ``dest`` that no earlier run of the stage wrote to CAP/.trash/, with a warning."""
    ours = signature_files(previous.get(name, {}).get("signature", ""))
    unknown = [path for path in sorted(dest.rglob("*")) if path.is_file() and path.relative_to(dest).as_posix() not in ours]
    if not unknown:
        return
    trash = capture.root / TRASH_NAME / f"{ctx.stage.name}-{utc_now().replace(':', '')}" / name
    for path in unknown:
        target = trash / path.relative_to(dest)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(path, target)
    shown = ", ".join(path.relative_to(dest).as_posix() for path in unknown[:3]) + (" ..." if len(unknown) > 3 else "")
    ctx.warn(f"{len(unknown)} file(s) in {name}/ that the stage did not write ({shown}) were moved to "
             f"{trash.relative_to(capture.root)}/ before its outputs were replaced")


def _commit_outputs(capture: Capture, ctx: StageContext, previous: dict[str, Any]) -> dict[str, dict[str, str]]:
    """Move staged outputs into the capture, each with one atomic rename, and describe them; unknown files in
    output folders are kept (moved to CAP/.trash/), never deleted."""
    stage, staging = ctx.stage, ctx.staging
    committed = {}
    for relative in stage.outputs:
        name = relative.rstrip("/")
        staged = staging / name
        if not staged.exists():
            raise StageError(f"stage {stage.name} finished without writing its output {relative}")
        entry = {"sha256": path_sha256(staged)}
        dest = capture.path(name)
        dest.parent.mkdir(parents=True, exist_ok=True)
        if staged.is_dir() and dest.is_dir():
            _keep_unknown_files(capture, ctx, name, dest, previous)
        if staged.is_dir() and dest.exists():
            # a folder cannot be renamed over a non-empty one: swap the old one out first
            trash = staging.parent / f"{stage.name}.old"
            _remove(trash)
            os.replace(dest, trash)
            os.replace(staged, dest)
            _remove(trash)
        else:
            os.replace(staged, dest)
        entry["signature"] = stat_signature(dest)
        committed[name] = entry
    return committed


def run_stage(capture: Capture, stage: Stage, params: Any, progress: Progress, force: bool = False) -> StageOutcome:
    """Run one stage unless it is up to date. The caller holds the capture lock."""
    if not isinstance(params, stage.params_type):
        raise TypeError(f"stage {stage.name} takes {stage.params_type.__name__}, not {type(params).__name__}")
    params_dict = params_to_dict(params)
    inputs = _input_hashes(capture, stage)
    key = stage_key(stage.name, stage.version, params_dict, inputs)
    previous = capture.stage_record(stage.name)
    if not force and previous and previous.get("status") == "done" and previous.get("key") == key and _outputs_intact(capture, previous):
        progress.emit("stage", stage=stage.name, status="skipped", duration_s=0.0)
        return StageOutcome(stage.name, "skipped", warnings=list(previous.get("warnings", [])))

    require_current(capture, [name for name in stage.inputs if name != SOURCE], f"stage {stage.name}")
    staging = capture.staging_root / stage.name
    _remove(staging)  # leftovers of a crashed or killed run
    staging.mkdir(parents=True)
    record: dict[str, Any] = {
        "status": "running",
        "key": key,
        "version": stage.version,
        "params": params_dict,
        "inputs": inputs,
        "versions": library_versions(),
        "started": utc_now(),
        "pid": os.getpid(),
        "warnings": [],
    }
    if previous and previous.get("status") == "done":
        record["outputs"] = previous.get("outputs", {})  # still on disk until this run commits
    capture.set_stage_record(stage.name, record)
    progress.emit("stage", stage=stage.name, status="started")
    tracker = progress.stage(stage.name)
    ctx = StageContext(stage, capture, params, tracker, staging)
    started = time.monotonic()

    def finish(status: str, **extra: Any) -> None:
        record.update(status=status, finished=utc_now(), duration_s=round(time.monotonic() - started, 3),
                      warnings=ctx.warnings, metrics=ctx.metrics, **extra)
        record.pop("pid", None)
        _remove(staging)
        _drop_empty_staging_root(capture)
        capture.set_stage_record(stage.name, record)
        progress.emit("stage", stage=stage.name, status=status, duration_s=record["duration_s"])

    try:
        tracker.update(0.0, "starting", force=True)
        stage.run(ctx)
        tracker.update(1.0, "writing outputs", force=True)
        record["outputs"] = _commit_outputs(capture, ctx, (previous or {}).get("outputs", {}))
    except Cancelled:
        finish("cancelled")
        raise
    except StudioAvatarError as exc:
        finish("failed", error=str(exc))
        raise
    except BaseException as exc:
        finish("failed", error=f"internal error: {type(exc).__name__}: {exc}")
        raise
    finish("done")
    return StageOutcome(stage.name, "done", record["duration_s"], list(ctx.warnings))


def _drop_empty_staging_root(capture: Capture) -> None:
    """Drop the staging root once no stage is using it, so finished captures stay tidy."""
    root = capture.staging_root
    if root.is_dir() and not any(root.iterdir()):
        root.rmdir()
