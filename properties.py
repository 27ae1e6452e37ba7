"""Per-scene state (the chosen video and its probed facts) and the running job's progress."""

import bpy
from bpy.props import BoolProperty, EnumProperty, FloatProperty, IntProperty, PointerProperty, StringProperty

from . import idnames, strings


def _video_path_changed(self, context):
    # facts belong to the file they were read from: a new path needs a new probe
    self.probe_status = "NONE"
    self.probe_error = ""


class StudioAvatarVideoFacts(bpy.types.PropertyGroup):
    """What the worker's probe reported about the chosen video (read-only for users)."""

    path: StringProperty(name="Probed File", description="File these facts were read from")
    frames: IntProperty(name="Frames", description="Number of decodable frames")
    fps: FloatProperty(name="Frame Rate", description="Average frames per second", precision=3)
    duration_s: FloatProperty(name="Duration", description="Length of the clip", unit="TIME_ABSOLUTE")
    width: IntProperty(name="Width", description="Stored frame width in pixels")
    height: IntProperty(name="Height", description="Stored frame height in pixels")
    rotation_deg: IntProperty(name="Rotation", description="Clockwise rotation from the file's metadata (phones: 90/270)")
    display_width: IntProperty(name="Display Width", description="Frame width after rotation")
    display_height: IntProperty(name="Display Height", description="Frame height after rotation")
    codec: StringProperty(name="Codec", description="Video codec")
    size_bytes: FloatProperty(name="Size", description="File size in bytes")

    def fill(self, facts: dict) -> None:
        for key in ("path", "frames", "fps", "duration_s", "width", "height", "rotation_deg",
                    "display_width", "display_height", "codec", "size_bytes"):
            setattr(self, key, facts[key])


class StudioAvatarSceneState(bpy.types.PropertyGroup):
    """Scene.studio_avatar: the capture being worked on in this scene."""

    video_path: StringProperty(
        name=strings.VIDEO_PATH, description=strings.VIDEO_PATH_TIP, subtype="FILE_PATH", update=_video_path_changed
    )
    probe_status: EnumProperty(
        name="Probe Status",
        items=(
            ("NONE", "Not Probed", "The chosen video has not been read yet"),
            ("RUNNING", "Probing", "The worker is reading the video"),
            ("OK", "OK", "The video was read successfully"),
            ("ERROR", "Error", "The video could not be used"),
        ),
        default="NONE",
    )
    probe_error: StringProperty(name="Probe Error", description="Why the video could not be used")
    video: PointerProperty(type=StudioAvatarVideoFacts)


class StudioAvatarJobState(bpy.types.PropertyGroup):
    """WindowManager.studio_avatar_job: progress of the running background job (not saved in files)."""

    running: BoolProperty(name="Running")
    title: StringProperty(name="Job", description="What the job does")
    stage: StringProperty(name="Stage", description="Pipeline stage being worked on")
    fraction: FloatProperty(name="Progress", min=0.0, max=1.0, subtype="FACTOR")
    message: StringProperty(name="Message")
    eta_s: FloatProperty(name="ETA", description="Estimated seconds left in this stage; negative when unknown", default=-1.0)
    cancelling: BoolProperty(name="Cancelling")


CLASSES = (StudioAvatarVideoFacts, StudioAvatarSceneState, StudioAvatarJobState)


def attach():
    setattr(bpy.types.Scene, idnames.SCENE_PROPERTY, PointerProperty(type=StudioAvatarSceneState))
    setattr(bpy.types.WindowManager, idnames.JOB_PROPERTY, PointerProperty(type=StudioAvatarJobState))


def detach():
    delattr(bpy.types.WindowManager, idnames.JOB_PROPERTY)
    delattr(bpy.types.Scene, idnames.SCENE_PROPERTY)
