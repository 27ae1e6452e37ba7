"""Blender panels and add-on preferences: they draw state; they never compute."""

from .avatar import STUDIO_AVATAR_PT_avatar, STUDIO_AVATAR_PT_lighting
from .preferences import STUDIO_AVATAR_AP_preferences
from .sidebar import STUDIO_AVATAR_PT_capture, STUDIO_AVATAR_PT_reconstruct, STUDIO_AVATAR_PT_render_export

CLASSES = (STUDIO_AVATAR_AP_preferences, STUDIO_AVATAR_PT_capture, STUDIO_AVATAR_PT_reconstruct)
CLASSES += (STUDIO_AVATAR_PT_avatar, STUDIO_AVATAR_PT_lighting)
CLASSES += (STUDIO_AVATAR_PT_render_export,)
