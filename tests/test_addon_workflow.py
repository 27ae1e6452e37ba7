"""The add-on's Reconstruct / Render & Export workflow on a small synthetic capture, through the installed extension.

A 16-frame turning-head clip (core/synth/head_clip.py) is reconstructed once by
``studio_avatar.reconstruct(wait=True)`` (draft preset, 256 texels); the tests
build its avatar, rerun a stage, batch-render and export it through the
worker, draw every sidebar panel in each state, and check that every operator
and property of the add-on has a tooltip.
"""

import importlib
import json
import os
import shutil
import threading
import time

import bpy
import cv2
import numpy as np
import pytest
from addon_fixtures import addon_module, reset_addon_scene
from blender_layout import DrawSelf, RecordingLayout
from test_batch_render import EXPRESSIONS, LIGHTINGS, check_each_axis_of_the_job

from studio_avatar.core.synth.head_clip import HeadClipSpec, write_head_clip

MODULE = addon_module(__name__)
STAGES = ["preview", "frames", "track", "fit", "unwrap", "delight_classic", "gmug"]   # gmug: the shipped weights
ROWS = STAGES + ["enhance"]        # every stage has a row; enhance (no --detail from the add-on yet) stays pending
DONE_ROWS = ["done"] * len(STAGES) + ["pending"]
RENDER_PX = 64


@pytest.fixture(scope="module", autouse=True)
def worker_on_the_session_cache(installed):
    """The worker shares the test session's cache (the head model is built once) and runs on the CPU."""
    prefs = bpy.context.preferences.addons[installed].preferences
    prefs.cache_dir, prefs.device = os.environ["STUDIO_AVATAR_CACHE"], "CPU"
    try:
        yield
    finally:
        prefs.cache_dir, prefs.device = "", "AUTO"


@pytest.fixture(scope="module")
def head_video(tmp_path_factory):
    from studio_avatar.core.head.open_head import get_open_head

    folder = tmp_path_factory.mktemp("take one")
    spec = HeadClipSpec(frames=16, width=320, height=240, yaw_deg=45.0, supersampling=1)
    write_head_clip(get_open_head(with_landmarks=True), folder / "turn.mp4", folder / "truth.npz", spec)
    return folder / "turn.mp4"


@pytest.fixture(scope="module")
def reconstructed(installed, head_video):
    """The operator's outcome: (its result, the scene's capture folder, the scene's stage rows)."""
    state = reset_addon_scene(installed).studio_avatar
    result = bpy.ops.studio_avatar.reconstruct(filepath=str(head_video), preset="DRAFT", texture_size=256, wait=True)
    rows = [(row.name, row.status, row.duration_s) for row in state.stages]
    return result, state.capture_dir, rows


def stage_records(capture_dir):
    return json.loads((capture_dir / "capture.json").read_text())["stages"]


def build_avatar(capture_dir):
    assert bpy.ops.studio_avatar.build_avatar(capture_dir=str(capture_dir), wait=True) == {"FINISHED"}
    return [c for c in bpy.data.collections if any(o.type == "ARMATURE" for o in c.objects)]


def test_reconstruct_then_build_avatar(reconstructed, head_video, scene_state):
    result, capture_dir, rows = reconstructed
    assert result == {"FINISHED"}
    assert capture_dir == str(head_video.parent / "turn_capture")   # the default: named after the video, beside it
    assert [(name, status) for name, status, _ in rows] == list(zip(ROWS, DONE_ROWS))
    assert all(duration >= 0 for _, status, duration in rows if status == "done")
    assert all(stage_records(head_video.parent / "turn_capture")[name]["status"] == "done" for name in STAGES)
    assert not bpy.context.window_manager.studio_avatar_job.running

    user_cube = bpy.data.objects.new("Cube", bpy.data.meshes.new("Cube"))
    bpy.context.scene.collection.objects.link(user_cube)
    avatars = build_avatar(capture_dir)
    assert len(avatars) == 1 and avatars[0].name in bpy.context.scene.collection.children
    assert any(o.type == "MESH" and o.data.shape_keys for o in avatars[0].objects)
    assert bpy.data.objects["Cube"] == user_cube and user_cube.users_collection == (bpy.context.scene.collection,)


def test_rerun_stage_redoes_that_stage_with_the_scene_settings(reconstructed, head_video, scene_state):
    capture_dir = head_video.parent / "turn_capture"
    before = stage_records(capture_dir)
    scene_state.video_path, scene_state.capture_dir = str(head_video), str(capture_dir)
    scene_state.preset, scene_state.texture_size = "DRAFT", 256     # what reconstructed it: earlier stages stay up to date
    assert bpy.ops.studio_avatar.rerun_stage(stage="unwrap", wait=True) == {"FINISHED"}
    after = stage_records(capture_dir)
    # only unwrap ran again: its output came out identical, so delight_classic's inputs did not change either
    assert [name for name in STAGES if after[name]["finished"] != before[name]["finished"]] == ["unwrap"]
    assert [row.status for row in scene_state.stages] == DONE_ROWS

    scene_state.stages.clear()
    assert bpy.ops.studio_avatar.refresh_status() == {"FINISHED"}
    assert [row.name for row in scene_state.stages] == ROWS


def test_cancel_stops_the_worker_within_2_s_and_keeps_a_resumable_capture(installed, scene_state, head_video, tmp_path):
    jobs = importlib.import_module(f"{MODULE}.operators.jobs")
    capture_dir = tmp_path / "cancelled"
    cancelled_at = []

    def cancel_once_tracked():    # what the Cancel button does, once the slow fit stage has started
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not cancelled_at:
            try:
                tracked = stage_records(capture_dir).get("track", {}).get("status") == "done"
            except (OSError, ValueError):
                tracked = False
            worker = jobs.active_job()
            if tracked and worker is not None:
                cancelled_at.append(time.monotonic())
                worker.request_cancel()
            time.sleep(0.05)

    canceller = threading.Thread(target=cancel_once_tracked)
    canceller.start()
    result = bpy.ops.studio_avatar.reconstruct(filepath=str(head_video), capture_dir=str(capture_dir), preset="DRAFT",
                                               texture_size=256, wait=True)
    ended = time.monotonic()
    canceller.join()
    assert result == {"CANCELLED"} and cancelled_at and ended - cancelled_at[0] < 2.0
    statuses = {row.name: row.status for row in scene_state.stages}
    assert [statuses[name] for name in STAGES[:3]] == ["done"] * 3 and statuses["fit"] in ("cancelled", "interrupted")
    assert scene_state.recon_error == "" and scene_state.capture_dir == str(capture_dir)
    assert not bpy.context.window_manager.studio_avatar_job.running


def test_a_failing_reconstruct_shows_its_message(scene_state, tmp_path):
    bad = tmp_path / "broken.mp4"
    bad.write_text("this is not a video")
    with pytest.raises(RuntimeError, match="not a video file"):   # the operator's ERROR report (the Info log)
        bpy.ops.studio_avatar.reconstruct(filepath=str(bad), wait=True)
    assert "not a video file" in scene_state.recon_error and "Traceback" not in scene_state.recon_error
    assert scene_state.capture_dir == str(tmp_path / "broken_capture") and len(scene_state.stages) == 0
    text = " ".join(draw(bpy.types.STUDIO_AVATAR_PT_reconstruct).labels())
    assert "Reconstruction failed" in text and "not a video file" in text


def test_texture_method_reaches_the_worker_and_missing_gmug_weights_are_announced(scene_state, tmp_path):
    reconstruct_args = importlib.import_module(f"{MODULE}.operators.reconstruct").reconstruct_args
    args = reconstruct_args("v.mp4", "cap", "DRAFT", 0, "AUTO", "GMUG")
    assert args[args.index("--texture-method") + 1] == "gmug"
    assert scene_state.texture_method == "AUTO"                                  # the default
    prefs = bpy.context.preferences.addons[MODULE].preferences
    previous = prefs.weights_dir
    try:
        prefs.weights_dir = str(tmp_path)                                  # an empty weights folder
        scene_state.texture_method = "GMUG"
        assert "GMug weights not found" in " ".join(draw(bpy.types.STUDIO_AVATAR_PT_reconstruct).labels())
        scene_state.texture_method = "CLASSIC"
        assert "GMug weights not found" not in " ".join(draw(bpy.types.STUDIO_AVATAR_PT_reconstruct).labels())
        (tmp_path / "gmug_128.safetensors").write_bytes(b"0")
        scene_state.texture_method = "AUTO"
        assert "GMug weights not found" not in " ".join(draw(bpy.types.STUDIO_AVATAR_PT_reconstruct).labels())
    finally:
        prefs.weights_dir = previous


def sidebar_panels():
    return [cls for cls in bpy.types.Panel.__subclasses__()
            if getattr(cls, "bl_category", "") == "Studio Avatar" and cls.is_registered]


def draw(panel):
    layout = RecordingLayout()
    panel.draw(DrawSelf(layout), bpy.context)
    return layout


def draw_all():
    """Every sidebar panel that polls true, drawn against the recording layout (which checks every name)."""
    return {cls.bl_idname: draw(cls) for cls in sidebar_panels() if not hasattr(cls, "poll") or cls.poll(bpy.context)}


def test_every_panel_draws_in_every_state(reconstructed, scene_state, head_video):
    assert {"STUDIO_AVATAR_PT_capture", "STUDIO_AVATAR_PT_reconstruct", "STUDIO_AVATAR_PT_render_export"} <= {
        cls.bl_idname for cls in sidebar_panels()}
    no_capture = draw_all()
    assert "Choose a phone video of a head to begin" in no_capture["STUDIO_AVATAR_PT_capture"].labels()
    assert "studio_avatar.reconstruct" in no_capture["STUDIO_AVATAR_PT_reconstruct"].operators()
    assert any("No capture yet" in text for text in no_capture["STUDIO_AVATAR_PT_reconstruct"].labels())
    assert {"studio_avatar.batch_render", "studio_avatar.export"} <= set(no_capture["STUDIO_AVATAR_PT_render_export"].operators())

    job = bpy.context.window_manager.studio_avatar_job
    job.running, job.panel, job.stage, job.fraction, job.message, job.eta_s = (
        True, "STUDIO_AVATAR_PT_reconstruct", "fit", 0.5, "frame 8/16", 20.0)
    try:
        running = draw_all()
        assert ("progress", pytest.approx(0.5), "50%  fit: frame 8/16") in running["STUDIO_AVATAR_PT_reconstruct"].calls
        assert "studio_avatar.cancel_job" in running["STUDIO_AVATAR_PT_reconstruct"].operators()
        assert not [c for c in running["STUDIO_AVATAR_PT_capture"].calls if c[0] == "progress"]
    finally:
        job.running, job.panel = False, ""

    scene_state.recon_error = "fit: the face was tracked in only 3 of 16 frames; film the head turning slowly"
    scene_state.capture_dir = str(head_video.parent / "turn_capture")
    failed_row = scene_state.stages.add()
    failed_row.name, failed_row.status, failed_row.error = "fit", "failed", "tracked in only 3 of 16 frames"
    failed = draw_all()["STUDIO_AVATAR_PT_reconstruct"]
    assert any("film the head turning slowly" in text for text in failed.labels())
    assert "studio_avatar.build_avatar" not in failed.operators()

    scene_state.recon_error = ""
    bpy.ops.studio_avatar.refresh_status()
    scene_state.last_render = "/renders/contact_sheet.png"
    done = draw_all()
    reconstruct_panel = done["STUDIO_AVATAR_PT_reconstruct"]
    assert reconstruct_panel.operators().count("studio_avatar.rerun_stage") == len(ROWS)
    assert "studio_avatar.build_avatar" in reconstruct_panel.operators()
    assert len([c for c in done["STUDIO_AVATAR_PT_capture"].calls if c[0] == "template_icon"]) == 6
    assert "contact_sheet.png" in done["STUDIO_AVATAR_PT_render_export"].labels()


def test_batch_render_writes_every_image_and_a_contact_sheet(reconstructed, scene_state, tmp_path):
    build_avatar(reconstructed[1])
    assert bpy.data.is_dirty and not bpy.data.filepath
    out = tmp_path / "renders"
    result = bpy.ops.studio_avatar.batch_render(
        output_dir=str(out), lightings=",".join(LIGHTINGS), views="0,30", expressions=",".join(EXPRESSIONS),
        engine="CYCLES", resolution=RENDER_PX, samples=4, wait=True)
    assert result == {"FINISHED"}
    assert not bpy.data.filepath and bpy.data.is_dirty             # the open file stays as it was (a copy was rendered)
    images = {path.name: cv2.imread(str(path)) for path in sorted(out.glob("*_yaw*.png"))}
    assert len(images) == 8 and all(image.shape == (RENDER_PX, RENDER_PX, 3) for image in images.values())
    check_each_axis_of_the_job(images)
    assert scene_state.last_render == str(out / "contact_sheet.png") and cv2.imread(scene_state.last_render) is not None


def test_export_writes_a_glb_that_reimports(reconstructed, scene_state, tmp_path):
    build_avatar(reconstructed[1])
    target = tmp_path / "anna"
    assert bpy.ops.studio_avatar.export(filepath=str(target), format="GLB", wait=True) == {"FINISHED"}
    glb = tmp_path / "anna.glb"
    assert glb.is_file()
    with pytest.raises(RuntimeError, match="already exists"):
        bpy.ops.studio_avatar.export(filepath=str(glb), format="GLB", wait=True)
    bpy.ops.wm.read_homefile(use_empty=True, use_factory_startup=True)
    bpy.ops.import_scene.gltf(filepath=str(glb))
    assert any(o.type == "ARMATURE" for o in bpy.data.objects)
    assert any(o.type == "MESH" and o.data.shape_keys and "jawOpen" in o.data.shape_keys.key_blocks
               for o in bpy.data.objects)


def test_every_operator_and_property_has_a_tooltip(installed):
    registration = importlib.import_module(f"{MODULE}.registration")
    missing = []
    for cls in registration.CLASSES:
        if issubclass(cls, bpy.types.Operator) and not cls.bl_description.strip():
            missing.append(cls.__name__)
        base = next(b for b in (bpy.types.Operator, bpy.types.PropertyGroup, bpy.types.AddonPreferences, bpy.types.Panel)
                    if issubclass(cls, b))
        inherited = set(base.bl_rna.properties.keys())
        for prop in cls.bl_rna.properties:
            if prop.identifier not in inherited and not prop.is_hidden and not prop.description.strip():
                missing.append(f"{cls.__name__}.{prop.identifier}")
    assert not missing, f"no description: {missing}"


def avatar_facts(objects) -> dict:
    """What an FBX export promises to carry of an avatar: the rig's bones; the head's vertices, shape keys and
    materials with the albedo's pixels, skinned to the rig; the eyes, hanging from their bones."""
    (armature,) = [obj for obj in objects if obj.type == "ARMATURE"]
    meshes = sorted((obj for obj in objects if obj.type == "MESH"), key=lambda obj: (-len(obj.data.vertices), obj.name))
    head = meshes[0]
    albedo = next(node.image for node in head.data.materials[0].node_tree.nodes if node.type == "TEX_IMAGE")
    pixels = np.empty(len(albedo.pixels), np.float32)
    albedo.pixels.foreach_get(pixels)
    return {
        "bones": sorted(bone.name for bone in armature.data.bones),
        "mesh_vertices": [len(mesh.data.vertices) for mesh in meshes],
        "head_shape_keys": sorted(key.name for key in head.data.shape_keys.key_blocks),
        "head_materials": [material.name for material in head.data.materials],
        "albedo_px": tuple(albedo.size),
        "albedo_mean": round(float(pixels.mean()), 4),
        "head_skinned": head.find_armature() == armature,
        "parent_bones": [mesh.parent_bone if mesh.parent == armature else None for mesh in meshes],
    }


def test_readme_scripting_example_reconstructs_renders_and_exports(installed, head_video, tmp_path, repo_root):
    """The README's batch script, as written, with lighter settings (draft preset, tiny renders) on two videos."""
    import sys

    readme = (repo_root / "README.md").read_text()
    section = readme[readme.index("### Scripting"):]
    code = section[section.index("```python") + len("```python"):]
    code = code[:code.index("```")]
    for heavy, light in (('preset="STANDARD"', 'preset="DRAFT", texture_size=256'), ("resolution=768", "resolution=32, samples=2"),
                         ('bpy.ops.wm.read_homefile(use_empty=True)', 'bpy.ops.wm.read_homefile(use_empty=True, use_factory_startup=True)')):
        assert heavy in code, heavy
        code = code.replace(heavy, light)
    videos = []
    for name in ("anna", "ben"):
        videos.append(tmp_path / f"{name}.mp4")
        shutil.copyfile(head_video, videos[-1])
    broken = tmp_path / "broken.mp4"
    broken.write_text("not a video")
    argv = sys.argv
    sys.argv = ["blender", "--", str(videos[0]), str(broken), str(videos[1])]
    try:
        exec(compile(code, "README.md", "exec"), {"__name__": "__main__"})
    finally:
        sys.argv = argv
    built = avatar_facts(bpy.context.scene.objects)      # the last video's avatar is still in the open scene
    assert built["head_skinned"] and built["parent_bones"] == ["", "eye_L", "eye_R"]
    for video in videos:            # copies of one video: the same avatar twice
        capture = video.with_name(video.stem + "_capture")
        renders = sorted(p.name for p in (capture / "renders").glob("*.png"))
        assert len(renders) == 3 * 3 * 2 + 1 and "contact_sheet.png" in renders      # lightings x views x expressions + sheet
        reset_addon_scene(installed)
        bpy.ops.import_scene.fbx(filepath=str(capture / "avatar.fbx"))
        assert sorted(obj.type for obj in bpy.data.objects) == ["ARMATURE", "MESH", "MESH", "MESH"], video.name
        assert avatar_facts(bpy.data.objects) == built, video.name
        assert all(image.packed_file is not None for image in bpy.data.images), "the FBX embeds its textures"
    assert not (tmp_path / "broken_capture" / "renders").exists()                  # the failure was reported and skipped


def test_batch_videos_runs_a_folder_in_the_worker_and_draws_in_every_state(scene_state, head_video, tmp_path):
    folder, out = tmp_path / "videos", tmp_path / "batch"
    folder.mkdir()
    idle = draw(bpy.types.STUDIO_AVATAR_PT_render_export)
    assert "studio_avatar.batch_videos" in idle.operators() and "wm.path_open" not in idle.operators()
    scene_state.batch_videos_dir, scene_state.batch_output_dir = str(folder), str(out)
    with pytest.raises(RuntimeError, match="No videos"):
        bpy.ops.studio_avatar.batch_videos(wait=True)

    job = bpy.context.window_manager.studio_avatar_job
    job.running, job.panel, job.stage, job.fraction, job.message, job.eta_s = (
        True, "STUDIO_AVATAR_PT_render_export", "batch", 0.4, "anna: render", 30.0)
    try:
        running = draw(bpy.types.STUDIO_AVATAR_PT_render_export)
        assert ("progress", pytest.approx(0.4), "40%  batch: anna: render") in running.calls
        assert "studio_avatar.cancel_job" in running.operators()
    finally:
        job.running, job.panel = False, ""

    shutil.copyfile(head_video, folder / "anna.mp4")
    shutil.copyfile(head_video, folder / "ben.mov")
    (folder / "broken.mp4").write_text("not a video")
    (folder / "notes.txt").write_text("not a video either, and not picked up")
    scene_state.batch_videos_dir, scene_state.batch_output_dir = str(folder), str(out)
    scene_state.preset, scene_state.texture_size, scene_state.texture_method = "DRAFT", 256, "CLASSIC"
    scene_state.render_lightings, scene_state.render_views, scene_state.render_expressions = {"studio"}, "0", "neutral"
    scene_state.render_resolution, scene_state.render_samples, scene_state.batch_exports = RENDER_PX, 2, "npz"
    assert bpy.ops.studio_avatar.batch_videos(wait=True) == {"FINISHED"}
    summary = json.loads((out / "summary.json").read_text())
    assert [(video["name"], video["status"]) for video in summary["videos"]] == [
        ("anna", "done"), ("ben", "done"), ("broken", "failed")]
    for name in ("anna", "ben"):
        assert (out / name / "avatar.npz").is_file() and (out / name / "renders" / "contact_sheet.png").is_file()
    assert scene_state.last_batch_index == str(out / "index.html")
    done = draw(bpy.types.STUDIO_AVATAR_PT_render_export)
    assert "studio_avatar.batch_videos" in done.operators() and "wm.path_open" in done.operators()
    assert "2 of 3 videos done, 1 failed" in done.labels()
