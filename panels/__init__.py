"""Blender panels of the sidebar tab: they draw state; they never compute, and name operators only by idname."""

from .avatar import STUDIO_AVATAR_PT_avatar, STUDIO_AVATAR_PT_lighting
from .sidebar import STUDIO_AVATAR_PT_capture, STUDIO_AVATAR_PT_reconstruct, STUDIO_AVATAR_PT_render_export

CLASSES = (STUDIO_AVATAR_PT_capture, STUDIO_AVATAR_PT_reconstruct)
CLASSES += (STUDIO_AVATAR_PT_avatar, STUDIO_AVATAR_PT_lighting)
CLASSES += (STUDIO_AVATAR_PT_render_export,)
