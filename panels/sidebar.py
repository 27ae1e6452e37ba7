"""The "Studio Avatar" tab in the 3D View sidebar. Each section is a small draw function."""

import os

import bpy

from .. import idnames, strings
from ..core.progress import format_duration


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

        if job.running:
            draw_job_progress(layout, job)
        if not state.video_path:
            layout.label(text=strings.NO_VIDEO, icon="INFO")
        elif state.probe_status == "OK":
            draw_video_facts(layout, state.video)
        elif state.probe_status == "ERROR":
            draw_error(layout, state.probe_error)
        elif state.probe_status == "NONE":
            layout.label(text=strings.NOT_PROBED, icon="QUESTION")

        layout.separator()
        row = layout.row()
        row.enabled = not job.running
        row.operator(idnames.BUILD_AVATAR, text=strings.BUILD_AVATAR, icon="OUTLINER_OB_ARMATURE")
