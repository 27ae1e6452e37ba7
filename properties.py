"""Per-scene state (the chosen video and its probed facts) and the running job's progress."""

import bpy
from bpy.props import (BoolProperty, CollectionProperty, EnumProperty, FloatProperty, IntProperty, PointerProperty,
                       StringProperty)

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


class StudioAvatarExpressionGroupsOpen(bpy.types.PropertyGroup):
    """Which expression-slider boxes of the Avatar panel are open (one flag per face region)."""

    __annotations__ = {group: BoolProperty(name=label, description=tip, default=False)
                       for group, label, tip in strings.EXPRESSION_GROUPS}


class StudioAvatarStageRow(bpy.types.PropertyGroup):
    """One reconstruction stage of the scene's capture as capture.json records it (``name`` is the stage)."""

    status: EnumProperty(name="Status", description="Where this stage stands", items=strings.STAGE_STATUS_ITEMS,
                         default="pending")
    duration_s: FloatProperty(name="Duration", description="Seconds the stage's last run took; negative when unknown",
                              default=-1.0)
    error: StringProperty(name="Error", description="Why the stage's last run failed, or why it is stale")
    warnings: IntProperty(name="Warnings", description="Number of warnings the stage's last run recorded")


RENDER_LIGHTING_ITEMS = tuple(item for item in strings.LIGHTING_PRESET_ITEMS if item[0] != "ORIGINAL")


class StudioAvatarSceneState(bpy.types.PropertyGroup):
    """Scene.studio_avatar: the capture being worked on in this scene."""

    video_path: StringProperty(
        name=strings.VIDEO_PATH, description=strings.VIDEO_PATH_TIP, subtype="FILE_PATH", update=_video_path_changed
    )
    probe_status: EnumProperty(
        name="Probe Status",
        description="Whether the chosen video has been read",
        items=(
            ("NONE", "Not Probed", "The chosen video has not been read yet"),
            ("RUNNING", "Probing", "The worker is reading the video"),
            ("OK", "OK", "The video was read successfully"),
            ("ERROR", "Error", "The video could not be used"),
        ),
        default="NONE",
    )
    probe_error: StringProperty(name="Probe Error", description="Why the video could not be used")
    video: PointerProperty(type=StudioAvatarVideoFacts, name="Video Facts", description="What the probe read from the video")
    # Reconstruct
    capture_dir: StringProperty(name=strings.CAPTURE_FOLDER, description=strings.CAPTURE_DIR_TIP, subtype="DIR_PATH")
    preset: EnumProperty(name=strings.PRESET, description=strings.PRESET_TIP, items=strings.PRESET_ITEMS, default="STANDARD")
    texture_size: IntProperty(name=strings.TEXTURE_SIZE, description=strings.TEXTURE_SIZE_TIP, default=0, min=0, max=8192)
    texture_method: EnumProperty(name=strings.TEXTURE_METHOD, description=strings.TEXTURE_METHOD_TIP,
                                 items=strings.TEXTURE_METHOD_ITEMS, default="AUTO")
    device: EnumProperty(name=strings.RECON_DEVICE, description=strings.RECON_DEVICE_TIP, items=strings.PREF_DEVICE_ITEMS,
                         default="AUTO")
    recon_error: StringProperty(name="Reconstruct Error", description="Why the last reconstruction failed")
    stages: CollectionProperty(type=StudioAvatarStageRow, name=strings.STAGE_STATUS,
                               description="The capture's reconstruction stages and where each stands")
    # Render & Export
    render_dir: StringProperty(name=strings.RENDER_DIR, description=strings.RENDER_DIR_TIP, subtype="DIR_PATH",
                               default="//renders/")
    render_lightings: EnumProperty(name=strings.RENDER_LIGHTINGS, description=strings.RENDER_LIGHTINGS_TIP,
                                   items=RENDER_LIGHTING_ITEMS, options={"ENUM_FLAG"}, default={"studio"})
    render_views: StringProperty(name=strings.RENDER_VIEWS, description=strings.RENDER_VIEWS_TIP, default="0,30,-30")
    render_expressions: StringProperty(name=strings.RENDER_EXPRESSIONS, description=strings.RENDER_EXPRESSIONS_TIP,
                                       default="neutral,smile")
    render_engine: EnumProperty(name=strings.RENDER_ENGINE, description=strings.RENDER_ENGINE_TIP,
                                items=strings.RENDER_ENGINE_ITEMS, default="CYCLES")
    render_resolution: IntProperty(name=strings.RENDER_RESOLUTION, description=strings.RENDER_RESOLUTION_TIP,
                                   default=512, min=16, max=8192)
    render_samples: IntProperty(name=strings.RENDER_SAMPLES, description=strings.RENDER_SAMPLES_TIP, default=16,
                                min=1, max=4096)
    last_render: StringProperty(name="Last Contact Sheet", description=strings.LAST_RENDER_TIP, subtype="FILE_PATH")
    batch_videos_dir: StringProperty(name=strings.BATCH_VIDEOS_DIR, description=strings.BATCH_VIDEOS_DIR_TIP,
                                     subtype="DIR_PATH")
    batch_output_dir: StringProperty(name=strings.BATCH_OUTPUT_DIR, description=strings.BATCH_OUTPUT_DIR_TIP,
                                     subtype="DIR_PATH")
    batch_exports: StringProperty(name=strings.BATCH_EXPORTS, description=strings.BATCH_EXPORTS_TIP, default="glb")
    batch_ray_address: StringProperty(name=strings.BATCH_RAY_ADDRESS, description=strings.BATCH_RAY_ADDRESS_TIP)
    last_batch_index: StringProperty(name="Last Batch Gallery", description=strings.LAST_BATCH_TIP, subtype="FILE_PATH")
    last_batch_result: StringProperty(name="Last Batch", description=strings.LAST_BATCH_RESULT_TIP)
    lighting_preset: EnumProperty(name=strings.LIGHTING_PRESET, description=strings.LIGHTING_PRESET_TIP,
                                  items=strings.LIGHTING_PRESET_ITEMS, default="studio")
    lighting_rotation: FloatProperty(name=strings.LIGHTING_ROTATION, description=strings.LIGHTING_ROTATION_TIP,
                                     default=0.0, min=-360.0, max=360.0, soft_min=-180.0, soft_max=180.0)
    lighting_strength: FloatProperty(name=strings.LIGHTING_STRENGTH, description=strings.LIGHTING_STRENGTH_TIP,
                                     default=1.0, min=0.0, soft_max=4.0)
    expression_groups_open: PointerProperty(type=StudioAvatarExpressionGroupsOpen, name="Expression Groups",
                                            description="Which expression-slider boxes of the Avatar panel are open")


class StudioAvatarJobState(bpy.types.PropertyGroup):
    """WindowManager.studio_avatar_job: progress of the running background job (not saved in files)."""

    running: BoolProperty(name="Running", description="A background job is running")
    title: StringProperty(name="Job", description="What the job does")
    stage: StringProperty(name="Stage", description="Pipeline stage being worked on")
    fraction: FloatProperty(name="Progress", description="How much of the stage is done", min=0.0, max=1.0,
                            subtype="FACTOR")
    message: StringProperty(name="Message", description="What the worker is doing now")
    eta_s: FloatProperty(name="ETA", description="Estimated seconds left in this stage; negative when unknown", default=-1.0)
    cancelling: BoolProperty(name="Cancelling", description="Cancel was asked for; the worker is stopping")
    panel: StringProperty(name="Panel", description="Idname of the sidebar panel that shows this job's progress")


CLASSES = (StudioAvatarVideoFacts, StudioAvatarExpressionGroupsOpen, StudioAvatarStageRow, StudioAvatarSceneState,
           StudioAvatarJobState)


def attach():
    setattr(bpy.types.Scene, idnames.SCENE_PROPERTY, PointerProperty(type=StudioAvatarSceneState))
    setattr(bpy.types.WindowManager, idnames.JOB_PROPERTY, PointerProperty(type=StudioAvatarJobState))


def detach():
    delattr(bpy.types.WindowManager, idnames.JOB_PROPERTY)
    delattr(bpy.types.Scene, idnames.SCENE_PROPERTY)
