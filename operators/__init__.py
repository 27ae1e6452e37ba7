"""Blender operators: thin; they parse UI state, start core work in a worker and write results back."""

from .jobs import STUDIO_AVATAR_OT_cancel_job, cancel_all_jobs
from .probe import STUDIO_AVATAR_OT_probe_video, STUDIO_AVATAR_OT_select_video

CLASSES = (STUDIO_AVATAR_OT_probe_video, STUDIO_AVATAR_OT_select_video, STUDIO_AVATAR_OT_cancel_job)

__all__ = ["CLASSES", "cancel_all_jobs"]
