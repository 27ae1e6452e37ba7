"""Blender operators: thin; they parse UI state, start core work in a worker and write results back."""

from .build import STUDIO_AVATAR_OT_build_avatar
from .head import MENU_ENTRIES, STUDIO_AVATAR_OT_add_head
from .jobs import STUDIO_AVATAR_OT_cancel_job, cancel_all_jobs
from .probe import STUDIO_AVATAR_OT_probe_video, STUDIO_AVATAR_OT_select_video

CLASSES = (STUDIO_AVATAR_OT_probe_video, STUDIO_AVATAR_OT_select_video, STUDIO_AVATAR_OT_cancel_job,
           STUDIO_AVATAR_OT_add_head, STUDIO_AVATAR_OT_build_avatar)

__all__ = ["CLASSES", "MENU_ENTRIES", "cancel_all_jobs"]
