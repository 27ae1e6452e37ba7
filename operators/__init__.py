"""Blender operators: thin; they parse UI state, start core work in a worker and write results back."""

from .avatar import STUDIO_AVATAR_OT_reset_pose
from .batch import STUDIO_AVATAR_OT_batch_videos
from .build import STUDIO_AVATAR_OT_build_avatar
from .deps import STUDIO_AVATAR_OT_check_dependencies, STUDIO_AVATAR_OT_install_dependencies
from .head import MENU_ENTRIES, STUDIO_AVATAR_OT_add_head
from .jobs import STUDIO_AVATAR_OT_cancel_job, cancel_all_jobs
from .lighting import STUDIO_AVATAR_OT_apply_lighting
from .probe import STUDIO_AVATAR_OT_probe_video, STUDIO_AVATAR_OT_select_video
from .reconstruct import STUDIO_AVATAR_OT_reconstruct, STUDIO_AVATAR_OT_refresh_status, STUDIO_AVATAR_OT_rerun_stage
from .render import STUDIO_AVATAR_OT_batch_render, STUDIO_AVATAR_OT_export

CLASSES = (STUDIO_AVATAR_OT_probe_video, STUDIO_AVATAR_OT_select_video, STUDIO_AVATAR_OT_cancel_job,
           STUDIO_AVATAR_OT_add_head, STUDIO_AVATAR_OT_build_avatar)
CLASSES += (STUDIO_AVATAR_OT_check_dependencies, STUDIO_AVATAR_OT_install_dependencies)
CLASSES += (STUDIO_AVATAR_OT_apply_lighting, STUDIO_AVATAR_OT_reset_pose)
CLASSES += (STUDIO_AVATAR_OT_reconstruct, STUDIO_AVATAR_OT_rerun_stage, STUDIO_AVATAR_OT_refresh_status,
            STUDIO_AVATAR_OT_batch_render, STUDIO_AVATAR_OT_export, STUDIO_AVATAR_OT_batch_videos)

__all__ = ["CLASSES", "MENU_ENTRIES", "cancel_all_jobs"]
