"""Stage ``track``: mediapipe's 478 face-mesh landmarks on every selected frame, with a confidence each."""

from .stage import TRACK_STAGE, TrackParams, load_tracking

__all__ = ["TRACK_STAGE", "TrackParams", "load_tracking"]
