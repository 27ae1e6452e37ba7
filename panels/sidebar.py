"""The "Studio Avatar" tab in the 3D View sidebar: Capture, Reconstruct, Render & Export.

Each section is a small draw function; the Avatar and Lighting panels live in
panels/avatar.py. A running job's progress shows in the panel its operator
names (``job_panel``), the status bar shows it too (operators/jobs.py).
"""

import os

import bpy

from .. import idnames, strings
from ..core.progress import format_duration
from ..preferences import get_preferences, gmug_weights_installed
from . import thumbnails

STAGE_ICONS = {"pending": "DOT", "running": "SORTTIME", "done": "CHECKMARK", "stale": "RECOVER_LAST",
               "failed": "ERROR", "cancelled": "CANCEL", "interrupted": "CANCEL"}
STAGE_STATUS_NAMES = {identifier: name for identifier, name, _ in strings.STAGE_STATUS_ITEMS}


class StudioAvatarPanel:
    """Shared placement of every Studio Avatar sidebar panel."""

    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = idnames.SIDEBAR_CATEGORY


def draw_job_progress(layout, job):
    """Progress bar, stage/message/ETA and a Cancel button while a background job runs."""
    box = layout.box()
    text = f"{job.stage}: {job.message}" if job.stage else job.title
    box.progress(factor=job.fraction, type="BAR", text=f"{job.fraction * 100:.0f}%  {text}")
    row = box.row()
    if job.eta_s >= 0:
        row.label(text=f"ETA {format_duration(job.eta_s)}", icon="TIME")
    row.operator(idnames.CANCEL_JOB, text=strings.CANCEL_JOB, icon="CANCEL")


def job_shown_in(job, panel_idname):
    """Whether ``job`` runs and belongs to this panel (jobs that name no panel show in the Capture panel)."""
    return job.running and (job.panel or idnames.PANEL_CAPTURE) == panel_idname


def draw_video_facts(layout, facts):
    col = layout.box().column(align=True)
    col.label(text=os.path.basename(facts.path), icon="FILE_MOVIE")
    resolution = f"{facts.width} × {facts.height}"
    if facts.rotation_deg:
        resolution += f", rotated {facts.rotation_deg}° → {facts.display_width} × {facts.display_height}"
    col.label(text=f"{strings.FACT_RESOLUTION}: {resolution}")
    col.label(text=f"{strings.FACT_FRAMES}: {facts.frames} at {facts.fps:.3g} fps")
    col.label(text=f"{strings.FACT_DURATION}: {format_duration(facts.duration_s)}")
    col.label(text=f"{strings.FACT_CODEC}: {facts.codec}")
    col.label(text=f"{strings.FACT_SIZE}: {facts.size_bytes / 1e6:.1f} MB")


def draw_error(layout, message, width=42):
    """A wrapped error message (labels do not wrap by themselves)."""
    col = layout.box().column(align=True)
    words, line, first = message.split(), "", True
    for word in words:
        if line and len(line) + len(word) + 1 > width:
            col.label(text=line, icon="ERROR" if first else "BLANK1")
            line, first = word, False
        else:
            line = f"{line} {word}".strip()
    col.label(text=line, icon="ERROR" if first else "BLANK1")


class STUDIO_AVATAR_PT_capture(StudioAvatarPanel, bpy.types.Panel):
    bl_idname = idnames.PANEL_CAPTURE
    bl_label = strings.CAPTURE_PANEL

    def draw(self, context):
        layout = self.layout
        state = getattr(context.scene, idnames.SCENE_PROPERTY)
        job = getattr(context.window_manager, idnames.JOB_PROPERTY)

        row = layout.row(align=True)
        row.prop(state, "video_path", text="")
        row.operator(idnames.SELECT_VIDEO, text="", icon="FILEBROWSER")
        row = layout.row()
        row.enabled = bool(state.video_path) and not job.running
        row.operator(idnames.PROBE_VIDEO, text=strings.PROBE_VIDEO, icon="FILE_REFRESH")

        if job_shown_in(job, idnames.PANEL_CAPTURE):
            draw_job_progress(layout, job)
        if not state.video_path:
            layout.label(text=strings.NO_VIDEO, icon="INFO")
        elif state.probe_status == "OK":
            draw_video_facts(layout, state.video)
        elif state.probe_status == "ERROR":
            draw_error(layout, state.probe_error)
        elif state.probe_status == "NONE":
            layout.label(text=strings.NOT_PROBED, icon="QUESTION")
        draw_chosen_frames(layout, state.capture_dir)

        layout.separator()
        row = layout.row()
        row.enabled = not job.running
        row.operator(idnames.BUILD_AVATAR, text=strings.BUILD_AVATAR, icon="OUTLINER_OB_ARMATURE")

    @classmethod
    def unregister(cls):
        thumbnails.release()


def draw_chosen_frames(layout, capture_dir):
    """Thumbnails of the frames the capture's frames stage chose (nothing before that stage has run)."""
    icons = thumbnails.icon_ids(thumbnails.chosen_frames(bpy.path.abspath(capture_dir))) if capture_dir else []
    if not icons:
        return
    layout.label(text=strings.CHOSEN_FRAMES, icon="IMAGE_DATA")
    grid = layout.grid_flow(columns=3, even_columns=True, align=True)
    for icon in icons:
        grid.template_icon(icon_value=icon, scale=3.0)


def draw_stage_rows(layout, state, job):
    """One row per reconstruction stage: status icon, duration (or status), re-run button; why it failed or is stale."""
    box = layout.box()
    header = box.row()
    header.label(text=strings.STAGE_STATUS)
    header.operator(idnames.REFRESH_STATUS, text="", icon="FILE_REFRESH")
    for stage in state.stages:
        row = box.row(align=True)
        row.label(text=stage.name, icon=STAGE_ICONS[stage.status])
        done = stage.status == "done" and stage.duration_s >= 0
        row.label(text=format_duration(stage.duration_s) if done else STAGE_STATUS_NAMES[stage.status])
        button = row.row(align=True)
        button.enabled = not job.running
        button.operator(idnames.RERUN_STAGE, text="", icon="PLAY").stage = stage.name
        if stage.status in ("failed", "stale") and stage.error:
            draw_error(box, stage.error)


def capture_complete(state):
    """An avatar can be built: the classic albedo (at least) is current and nothing is stale or running; learned
    stages the capture did not run (classic texture, no --detail) may stay pending."""
    statuses = {stage.name: stage.status for stage in state.stages}
    return statuses.get("delight_classic") == "done" and not any(s in ("stale", "running") for s in statuses.values())


class STUDIO_AVATAR_PT_reconstruct(StudioAvatarPanel, bpy.types.Panel):
    bl_idname = idnames.PANEL_RECONSTRUCT
    bl_label = strings.RECONSTRUCT_PANEL

    def draw(self, context):
        layout = self.layout
        state = getattr(context.scene, idnames.SCENE_PROPERTY)
        job = getattr(context.window_manager, idnames.JOB_PROPERTY)

        settings = layout.column()
        settings.enabled = not job.running
        settings.prop(state, "preset")
        settings.prop(state, "texture_size")
        settings.prop(state, "texture_method")
        settings.prop(state, "device")
        settings.prop(state, "capture_dir")
        if state.texture_method != "CLASSIC" and not gmug_weights_installed(get_preferences(context)):
            layout.label(text=strings.GMUG_WEIGHTS_MISSING, icon="INFO")
        row = layout.row()
        row.scale_y = 1.4
        row.enabled = bool(state.video_path) and not job.running
        row.operator(idnames.RECONSTRUCT, text=strings.RECONSTRUCT, icon="PLAY")

        if job_shown_in(job, idnames.PANEL_RECONSTRUCT):
            draw_job_progress(layout, job)
        if state.recon_error:
            layout.label(text=strings.RECON_FAILED, icon="CANCEL")
            draw_error(layout, state.recon_error)
        if not state.capture_dir and not state.stages:
            layout.label(text=strings.NO_CAPTURE_YET, icon="INFO")
            return
        draw_stage_rows(layout, state, job)
        if capture_complete(state):
            row = layout.row()
            row.enabled = not job.running
            build = row.operator(idnames.BUILD_AVATAR, text=strings.BUILD_AVATAR, icon="OUTLINER_OB_ARMATURE")
            build.capture_dir = state.capture_dir


def draw_batch_section(layout, state, job):
    """A folder of videos through the whole pipeline (the render settings above), with the last batch's gallery."""
    layout.separator()
    layout.label(text=strings.BATCH_HEADER, icon="SEQUENCE")
    settings = layout.column()
    settings.enabled = not job.running
    settings.prop(state, "batch_videos_dir")
    settings.prop(state, "batch_output_dir")
    settings.prop(state, "preset")
    settings.prop(state, "batch_exports")
    settings.prop(state, "batch_ray_address")
    row = layout.row()
    row.enabled = not job.running and bool(state.batch_videos_dir and state.batch_output_dir)
    row.operator(idnames.BATCH_VIDEOS, text=strings.BATCH_VIDEOS, icon="RENDER_ANIMATION")
    if state.last_batch_index:
        row = layout.row()
        failed = not state.last_batch_result.endswith(" 0 failed")
        row.label(text=state.last_batch_result, icon="ERROR" if failed else "CHECKMARK")
        row.operator("wm.path_open", text=strings.OPEN_BATCH_GALLERY, icon="FILE_FOLDER").filepath = state.last_batch_index


class STUDIO_AVATAR_PT_render_export(StudioAvatarPanel, bpy.types.Panel):
    bl_idname = idnames.PANEL_RENDER_EXPORT
    bl_label = strings.RENDER_EXPORT_PANEL
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context):
        layout = self.layout
        state = getattr(context.scene, idnames.SCENE_PROPERTY)
        job = getattr(context.window_manager, idnames.JOB_PROPERTY)

        layout.label(text=strings.RENDER_HEADER, icon="RENDER_STILL")
        settings = layout.column()
        settings.enabled = not job.running
        grid = settings.grid_flow(columns=2, even_columns=True, align=True)
        grid.prop(state, "render_lightings", expand=True)
        settings.prop(state, "render_views")
        settings.prop(state, "render_expressions")
        settings.prop(state, "render_engine")
        row = settings.row(align=True)
        row.prop(state, "render_resolution")
        row.prop(state, "render_samples")
        settings.prop(state, "render_dir")
        row = layout.row()
        row.enabled = not job.running and bool(state.render_lightings)
        row.operator(idnames.BATCH_RENDER, text=strings.BATCH_RENDER, icon="RENDER_ANIMATION")
        if job_shown_in(job, idnames.PANEL_RENDER_EXPORT):
            draw_job_progress(layout, job)
        if state.last_render:
            row = layout.row()
            row.label(text=os.path.basename(state.last_render), icon="IMAGE_DATA")
            folder = row.operator("wm.path_open", text=strings.OPEN_RENDER_FOLDER, icon="FILE_FOLDER")
            folder.filepath = os.path.dirname(state.last_render)

        layout.separator()
        layout.label(text=strings.EXPORT_HEADER, icon="EXPORT")
        row = layout.row(align=True)
        row.enabled = not job.running
        for identifier, name, _ in strings.EXPORT_FORMAT_ITEMS:
            row.operator(idnames.EXPORT_AVATAR, text=name.split(" (")[0]).format = identifier
        draw_batch_section(layout, state, job)
