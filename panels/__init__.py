"""Blender panels and add-on preferences: they draw state; they never compute."""

from .preferences import STUDIO_AVATAR_AP_preferences
from .sidebar import STUDIO_AVATAR_PT_capture

CLASSES = (STUDIO_AVATAR_AP_preferences, STUDIO_AVATAR_PT_capture)
