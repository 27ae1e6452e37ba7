"""Background jobs for operators: start the worker process, show its progress, cancel it.

One job runs at a time. Interactive runs are modal (a timer polls the worker,
so Blender stays responsive; Esc or the Cancel button stops it); with
``wait=True`` or in background mode the operator blocks until the worker ends,
which is what scripts and batch jobs want.
"""

import sys

import bpy
from bpy.props import BoolProperty

from .. import idnames, strings
from ..core.errors import WorkerError
from ..core.progress import format_duration
from ..core.worker import WorkerProcess, dependency_dirs
from ..preferences import cache_folder, dependency_folder, get_preferences

_ACTIVE: dict[str, WorkerProcess] = {}


def active_job():
    worker = _ACTIVE.get("job")
    return worker if worker is not None and worker.running else None


def cancel_all_jobs():
    worker = _ACTIVE.pop("job", None)
    if worker is not None and worker.running:
        worker.cancel()


def job_state(context):
    return getattr(context.window_manager, idnames.JOB_PROPERTY)


def cache_dir(context) -> str:
    """The cache folder the worker writes into (created if it is the add-on's default)."""
    return cache_folder(get_preferences(context), create=True)


def worker_settings(context):
    """Interpreter, global CLI options and import folders for the worker, from the add-on preferences."""
    prefs = get_preferences(context)
    python = bpy.path.abspath(prefs.worker_python) if prefs.worker_python else sys.executable
    options = ["--device", prefs.device.lower(), "--cache-dir", cache_dir(context)]
    if prefs.weights_dir:
        options += ["--weights-dir", bpy.path.abspath(prefs.weights_dir)]
    return python, options, dependency_dirs(dependency_folder())


def _redraw_sidebars(context):
    screen = getattr(context, "screen", None)
    for area in screen.areas if screen else ():
        if area.type == "VIEW_3D":
            area.tag_redraw()


class WorkerJobMixin:
    """Operator mixin: ``run_job(context, args)`` runs ``studio-avatar ARGS`` as a background job.

    Subclasses set ``job_title`` and implement ``job_finished(context, worker)``
    returning the operator's result set. ``start_job(context, job)`` runs any object with
    WorkerProcess's interface instead (the dependency install).
    """

    job_title = "Studio Avatar"
    needs_bpy = False          # True: the worker's command imports bpy (render, export)
    job_panel = idnames.PANEL_CAPTURE   # the sidebar panel that draws this job's progress

    wait: BoolProperty(name="Wait", description=strings.PROBE_WAIT_TIP, default=False, options={"SKIP_SAVE"})

    def run_job(self, context, args):
        python, options, extra_paths = worker_settings(context)
        # commands that need bpy run inside Blender itself: its bundled Python interpreter has no bpy
        # (under the bpy module, binary_path is empty and this interpreter has bpy)
        blender = bpy.app.binary_path if self.needs_bpy and bpy.app.binary_path else None
        return self.start_job(context, WorkerProcess([*options, *args], python=python, extra_paths=extra_paths,
                                                     blender=blender))

    def start_job(self, context, worker):
        """Start ``worker`` (a WorkerProcess, or anything with its interface) as the one background job."""
        if active_job() is not None:
            self.report({"ERROR"}, strings.ERR_JOB_RUNNING)
            return {"CANCELLED"}
        try:
            worker.start()
        except WorkerError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        _ACTIVE["job"] = worker
        state = job_state(context)
        state.running, state.cancelling = True, False
        state.title, state.stage, state.message, state.fraction, state.eta_s = self.job_title, "", "", 0.0, -1.0
        state.panel = self.job_panel

        if self.wait or bpy.app.background:
            worker.wait(on_event=lambda event: self._apply_event(context, event))
            return self._end_job(context, worker)
        wm = context.window_manager
        self._timer = wm.event_timer_add(0.1, window=context.window)
        wm.modal_handler_add(self)
        wm.progress_begin(0, 100)
        return {"RUNNING_MODAL"}

    def modal(self, context, event):
        worker = _ACTIVE.get("job")
        if worker is None:
            return self._stop_modal(context, None)
        if event.type == "ESC" and event.value == "PRESS":
            worker.request_cancel()
            job_state(context).cancelling = True
        if event.type != "TIMER":
            return {"PASS_THROUGH"}
        for item in worker.poll_events():
            self._apply_event(context, item)
        if worker.running:
            return {"PASS_THROUGH"}
        worker.wait(2.0, on_event=lambda item: self._apply_event(context, item))
        return self._stop_modal(context, worker)

    def _stop_modal(self, context, worker):
        wm = context.window_manager
        wm.event_timer_remove(self._timer)
        wm.progress_end()
        if context.workspace is not None:
            context.workspace.status_text_set(None)
        if worker is None:
            job_state(context).running = False
            return {"CANCELLED"}
        return self._end_job(context, worker)

    def _apply_event(self, context, event):
        state = job_state(context)
        kind = event["type"]
        if kind == "progress":
            state.stage = event["stage"]
            state.fraction = float(event["fraction"])
            state.message = event.get("message") or ""
            state.eta_s = -1.0 if event.get("eta_s") is None else float(event["eta_s"])
            if not (self.wait or bpy.app.background):
                context.window_manager.progress_update(int(state.fraction * 100))
                if context.workspace is not None:
                    context.workspace.status_text_set(status_line(state))
                _redraw_sidebars(context)
        elif kind == "warning":
            self.report({"WARNING"}, f"{event.get('stage', '')}: {event['message']}")

    def _end_job(self, context, worker):
        _ACTIVE.pop("job", None)
        state = job_state(context)
        state.running, state.cancelling = False, False
        _redraw_sidebars(context)
        return self.job_finished(context, worker)

    def job_finished(self, context, worker):
        raise NotImplementedError

    def report_failed_job(self, worker):
        """Report why ``worker`` did not succeed (cancelled, or its one-line error); returns {"CANCELLED"}."""
        if worker.cancel_requested:
            self.report({"WARNING"}, strings.MSG_CANCELLED)
        else:
            self.report({"ERROR"}, worker.error_message())
        return {"CANCELLED"}


def status_line(state) -> str:
    """One line for the status bar and the panel: stage, percent, message, ETA."""
    eta = f"  ETA {format_duration(state.eta_s)}" if state.eta_s >= 0 else ""
    stage = f"{state.stage}: " if state.stage else ""
    return f"{strings.ADDON_NAME} — {stage}{state.fraction * 100:.0f}% {state.message}{eta}".rstrip()


class STUDIO_AVATAR_OT_cancel_job(bpy.types.Operator):
    bl_idname = idnames.CANCEL_JOB
    bl_label = strings.CANCEL_JOB
    bl_description = strings.CANCEL_JOB_TIP
    bl_options = {"INTERNAL"}

    @classmethod
    def poll(cls, context):
        return active_job() is not None

    def execute(self, context):
        worker = active_job()
        if worker is not None:
            worker.request_cancel()
            job_state(context).cancelling = True
        return {"FINISHED"}
