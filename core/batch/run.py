"""``studio-avatar batch``: many videos to avatars, renders and exports, scheduled by Ray on one machine or a cluster.

Per video the task graph is reconstruct -> build -> (one render task per image
of the lighting x view x expression matrix -> the contact sheet) and, beside
the renders, one export per format. Each task is a ``studio-avatar`` command
run by a Ray task on whichever node has room (``command.py``); the driver
submits a video's next tasks as its earlier ones finish, so a cluster stays
busy across videos. Inputs and outputs must sit on a path every node sees (a
shared filesystem): tasks pass paths, not data.

Without an address Ray starts on this machine's cores; with ``ray_address`` it
joins that cluster. Reconstructions ask for ``gpus_per_reconstruct`` GPUs (by
default one where the cluster has any), and the learned stages then run on CUDA. A task whose node fails is retried
(``max_retries``); a video that fails for a reason of its own (no face, an
unreadable file) is reported and skipped, and the others go on. Rerunning the
same command resumes: captures skip their finished stages, and the avatar,
renders and exports are made again only if what they are made from changed
(``jobs.py``). At the end ``OUT/summary.json`` and ``OUT/index.html`` (a static
gallery of the contact sheets, readable offline) describe every video.
"""

from __future__ import annotations

import contextlib
import sys
import time
from pathlib import Path
from typing import Any

from ..atomic import atomic_write_json
from ..errors import Cancelled, InputError
from ..hashing import json_sha256
from ..launcher import worker_argv
from . import command
from .gallery import write_gallery
from ..hashing import path_sha256
from .jobs import BatchOptions, VideoJob, build_key, plan_jobs, reconstruct_args, render_matrix_args

SUMMARY_JSON = "summary.json"
INDEX_HTML = "index.html"
REPORT_EVERY_S = 10.0         # the progress line is refreshed at least this often (its ETA), else on every change
RECONSTRUCT_CPUS = 2          # torch and the rasterizer use two threads well; more rarely pays on one video
BPY_TASKS = ("build", "list", "render", "sheet", "export")    # what Blender runs; reconstruct needs no bpy
# share of a video's work per task kind, for the overall progress and its ETA
WEIGHTS = {"reconstruct": 0.55, "build": 0.15, "render": 0.25, "export": 0.03}


def run_batch(videos: list[str | Path], out: str | Path, options: BatchOptions, progress: Any,
              ray_address: str | None = None) -> dict[str, Any]:
    """Every video through the task graph; returns the summary (also written to ``OUT/summary.json``)."""
    missing = [str(v) for v in videos if not Path(v).is_file()]
    if missing:
        raise InputError(f"no such video: {', '.join(missing)}")
    out = Path(out)
    try:
        jobs = plan_jobs(videos, out)
    except ValueError as error:
        raise InputError(str(error)) from None
    out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    # Ray's own messages (a worker died, and so on) go to stderr: stdout carries the result, or the progress lines
    with contextlib.redirect_stdout(sys.stderr):
        ray = _start_ray(ray_address)
        try:
            _Scheduler(ray, jobs, options, progress).run()
        finally:
            ray.shutdown()
    summary = {"videos": [job.summary() for job in jobs], "options": _options_record(options),
               "done": sum(job.status == "done" for job in jobs), "failed": sum(job.status == "failed" for job in jobs),
               "seconds": round(time.monotonic() - started, 1), "ray_address": ray_address or "local"}
    atomic_write_json(out / SUMMARY_JSON, summary)
    write_gallery(out / INDEX_HTML, summary)
    return {**summary, "summary": str((out / SUMMARY_JSON).resolve()), "index": str((out / INDEX_HTML).resolve())}


def _start_ray(address: str | None) -> Any:
    import ray

    # the task body is shipped by value: nodes need not be able to import this package by name
    ray.cloudpickle.register_pickle_by_value(command)
    kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False, "configure_logging": False}
    if address:
        ray.init(address=address, **kwargs)
    else:
        ray.init(**kwargs)
    return ray


def _options_record(options: BatchOptions) -> dict[str, Any]:
    from dataclasses import asdict

    return {key: list(value) if isinstance(value, tuple) else value for key, value in asdict(options).items()}


class _Scheduler:
    """Submits each video's tasks as the ones they depend on finish, and follows them to the end."""

    def __init__(self, ray: Any, jobs: list[VideoJob], options: BatchOptions, progress: Any):
        self.ray, self.jobs, self.options, self.progress = ray, jobs, options, progress
        self.stage = progress.stage("batch")
        self._reported: tuple[float, str, float] = (-1.0, "", 0.0)
        self.pending: dict[Any, tuple[VideoJob, str, Any]] = {}       # object ref -> (job, task kind, detail)
        self.in_flight: dict[str, int] = {}                            # job name -> tasks running
        resources = ray.cluster_resources()
        cpus = max(1.0, float(resources.get("CPU", 1.0)))
        gpus = options.gpus_per_reconstruct
        gpus = float(gpus if gpus is not None else (1.0 if resources.get("GPU", 0.0) > 0 else 0.0))
        remote = ray.remote(command.run_command)
        base = {"max_retries": options.max_retries, "retry_exceptions": [command.NodeFailure]}
        self.heavy = remote.options(num_cpus=min(float(RECONSTRUCT_CPUS), cpus), num_gpus=gpus, **base)
        self.light = remote.options(num_cpus=1, **base)

    def run(self) -> None:
        for job in self.jobs:
            job.status, job.step = "running", "reconstruct"
            self._submit(job, "reconstruct", None, reconstruct_args(job, self.options), heavy=True)
        self._report("started")
        while self.pending:
            if self.progress.cancel.cancelled:
                for ref in self.pending:
                    self.ray.cancel(ref, force=True)
                raise Cancelled("Batch cancelled; finished captures, renders and exports are kept, run the same "
                                "command again to resume.")
            ready, _ = self.ray.wait(list(self.pending), num_returns=1, timeout=0.5)
            for ref in ready:
                job, kind, detail = self.pending.pop(ref)
                self.in_flight[job.name] -= 1
                self._finished(job, kind, detail, self._outcome(ref))
            self._report(", ".join(f"{job.name}: {job.step}" for job in self.jobs if job.status == "running")[:200])

    def _submit(self, job: VideoJob, kind: str, detail: Any, args: list[str], heavy: bool = False) -> None:
        blender = self.options.blender if kind in BPY_TASKS else ""
        argv = worker_argv(["--progress", "jsonl", *args], python=sys.executable, blender=blender or None)
        task = f"{kind}-{detail}" if detail is not None else kind
        ref = (self.heavy if heavy else self.light).remote(argv, job.log(task))
        self.pending[ref] = (job, kind, detail)
        self.in_flight[job.name] = self.in_flight.get(job.name, 0) + 1

    def _outcome(self, ref: Any) -> dict[str, Any]:
        try:
            return self.ray.get(ref)
        except Exception as error:      # the node failed more often than max_retries allows
            return {"ok": False, "error": f"the task's node failed {self.options.max_retries + 1} times: "
                    f"{str(error).splitlines()[-1] if str(error) else type(error).__name__}", "error_type": "NodeFailure",
                    "seconds": 0.0, "warnings": []}

    def _finished(self, job: VideoJob, kind: str, detail: Any, outcome: dict[str, Any]) -> None:
        job.timings_s[kind] = round(job.timings_s.get(kind, 0.0) + float(outcome.get("seconds", 0.0)), 2)
        job.warnings += outcome.get("warnings", [])
        if job.status == "failed":
            return
        if not outcome["ok"]:
            job.status, job.error, job.error_type = "failed", outcome["error"], outcome.get("error_type", "")
            self.progress.emit("stage", stage=f"{job.name}: {kind}", status="failed", duration_s=outcome.get("seconds"))
            self.progress.warning(job.name, f"{kind} failed: {job.error}; the batch goes on without this video")
            return
        self.progress.emit("stage", stage=f"{job.name}: {kind if detail is None else f'{kind} {detail}'}", status="done",
                           duration_s=outcome.get("seconds"))
        getattr(self, f"_after_{kind}")(job, detail, outcome.get("result") or {})
        if self.in_flight[job.name] == 0 and job.status == "running":
            job.status, job.step = "done", "done"

    def _after_reconstruct(self, job: VideoJob, detail: Any, result: dict[str, Any]) -> None:
        job.step = "build"
        if job.blend.is_file() and job.read_state().get("build") == build_key(job):
            self.progress.emit("stage", stage=f"{job.name}: build", status="skipped")
            self._after_build(job, None, {})
            return
        args = ["build", str(job.capture), "-o", str(job.blend), "--name", job.name]
        self._submit(job, "build", None, args + (["--overwrite"] if job.blend.exists() else []))

    def _after_build(self, job: VideoJob, detail: Any, result: dict[str, Any]) -> None:
        job.write_state(build=build_key(job))
        job.avatar_key, state = path_sha256(job.blend), job.read_state()
        job.step = "render"
        plan = state.get("render_plan", {})
        if plan.get("key") == self._plan_key(job):
            self._after_list(job, None, {"tasks": plan["tasks"]}, listed=False)
        else:
            self._submit(job, "list", None, render_matrix_args(job, self.options) + ["--list-tasks"])
        for kind in self.options.exports:
            path = job.export_path(kind)
            if path.is_file() and state.get(f"export_{kind}") == job.avatar_key:
                job.exports_done.append(kind)
                self.progress.emit("stage", stage=f"{job.name}: export {kind}", status="skipped")
                continue
            self._submit(job, "export", kind, ["export", str(job.blend), "-o", str(path)] + (["--overwrite"] if path.exists() else []))

    def _plan_key(self, job: VideoJob) -> str:
        return json_sha256([job.avatar_key, render_matrix_args(job, self.options)])

    def _after_list(self, job: VideoJob, detail: Any, result: dict[str, Any], listed: bool = True) -> None:
        tasks = result.get("tasks", [])
        if listed:
            job.write_state(render_plan={"key": self._plan_key(job), "tasks": tasks})
        job.renders_total = len(tasks)
        current = job.read_state().get("renders") == job.avatar_key    # else a new avatar: its old images are wrong
        for task in tasks:
            if current and (job.renders / task["file"]).is_file():
                job.renders_done += 1
                continue
            self._submit(job, "render", task["index"], render_matrix_args(job, self.options) + ["--task", str(task["index"])]
                         + ([] if current else ["--overwrite"]))
        if job.renders_done == job.renders_total:
            self._after_render(job, None, {})

    def _after_render(self, job: VideoJob, detail: Any, result: dict[str, Any]) -> None:
        if detail is not None:
            job.renders_done += 1
        if job.renders_done < job.renders_total:
            return
        if detail is None and job.contact_sheet.is_file():    # nothing was rendered again
            self.progress.emit("stage", stage=f"{job.name}: renders", status="skipped")
            return
        self._submit(job, "sheet", None, render_matrix_args(job, self.options) + ["--contact-sheet-only"])

    def _after_sheet(self, job: VideoJob, detail: Any, result: dict[str, Any]) -> None:
        job.write_state(renders=job.avatar_key)

    def _after_export(self, job: VideoJob, detail: Any, result: dict[str, Any]) -> None:
        job.exports_done.append(detail)
        job.write_state(**{f"export_{detail}": job.avatar_key})

    def _report(self, message: str) -> None:
        fraction = sum(self._fraction(job) for job in self.jobs) / max(len(self.jobs), 1)
        now = time.monotonic()
        if (fraction, message) != self._reported[:2] or now - self._reported[2] >= REPORT_EVERY_S:
            self._reported = (fraction, message, now)
            self.stage.update(fraction, message, force=True)

    def _fraction(self, job: VideoJob) -> float:
        if job.status in ("done", "failed"):
            return 1.0
        done = {"reconstruct": job.step != "reconstruct", "build": job.step not in ("reconstruct", "build")}
        fraction = WEIGHTS["reconstruct"] * done["reconstruct"] + WEIGHTS["build"] * done["build"]
        if job.renders_total:
            fraction += WEIGHTS["render"] * job.renders_done / job.renders_total
        if self.options.exports:
            fraction += WEIGHTS["export"] * len(job.exports_done) / len(self.options.exports)
        return min(fraction, 0.99)
