"""Every Blender idname of the add-on in one place (operators, panels, property groups)."""

OPERATOR_PREFIX = "studio_avatar"

PROBE_VIDEO = "studio_avatar.probe_video"
SELECT_VIDEO = "studio_avatar.select_video"
CANCEL_JOB = "studio_avatar.cancel_job"
ADD_HEAD = "studio_avatar.add_head"
BUILD_AVATAR = "studio_avatar.build_avatar"
RECONSTRUCT = "studio_avatar.reconstruct"
RERUN_STAGE = "studio_avatar.rerun_stage"
REFRESH_STATUS = "studio_avatar.refresh_status"
BATCH_RENDER = "studio_avatar.batch_render"
EXPORT_AVATAR = "studio_avatar.export"
BATCH_VIDEOS = "studio_avatar.batch_videos"
APPLY_LIGHTING = "studio_avatar.apply_lighting"
RESET_POSE = "studio_avatar.reset_pose"
INSTALL_DEPENDENCIES = "studio_avatar.install_dependencies"
CHECK_DEPENDENCIES = "studio_avatar.check_dependencies"

PANEL_CAPTURE = "STUDIO_AVATAR_PT_capture"
PANEL_RECONSTRUCT = "STUDIO_AVATAR_PT_reconstruct"
PANEL_RENDER_EXPORT = "STUDIO_AVATAR_PT_render_export"
PANEL_AVATAR = "STUDIO_AVATAR_PT_avatar"
PANEL_LIGHTING = "STUDIO_AVATAR_PT_lighting"
SIDEBAR_CATEGORY = "Studio Avatar"

SCENE_PROPERTY = "studio_avatar"          # bpy.types.Scene.studio_avatar
JOB_PROPERTY = "studio_avatar_job"        # bpy.types.WindowManager.studio_avatar_job


def class_name(idname: str) -> str:
    """Blender's class naming for an operator idname: studio_avatar.probe_video -> STUDIO_AVATAR_OT_probe_video."""
    module, name = idname.split(".")
    return f"{module.upper()}_OT_{name}"
