"""The Blender extension: validated and built by Blender's own tool, installed and enabled in an
isolated repository, panels and operators registered and drawable, the probe running through the worker."""

import zipfile

import bpy
import pytest
from addon_fixtures import addon_module
from blender_layout import DrawSelf, RecordingLayout, operator_rna
from build_extension import validate

from studio_avatar.core.synth.clip import write_turning_head_clip

MODULE = addon_module(__name__)
OPERATORS = ("studio_avatar.probe_video", "studio_avatar.select_video", "studio_avatar.cancel_job")


def test_manifest_passes_blenders_validator(repo_root):
    result = validate(repo_root)
    assert result.returncode == 0, result.stdout + result.stderr


def test_zip_holds_the_addon_and_nothing_else(extension_zip):
    names = zipfile.ZipFile(extension_zip).namelist()
    assert {"blender_manifest.toml", "__init__.py", "core/cli.py", "operators/probe.py", "panels/sidebar.py"} <= set(names)
    forbidden = ("tests/", "tools/", "bench/", ".venv/", ".ci/", ".git/", "demo_out/", "Makefile", "requirements")
    assert not [n for n in names if n.startswith(forbidden) or "__pycache__" in n]


def test_panel_and_operators_are_registered(installed):
    panel = bpy.types.STUDIO_AVATAR_PT_capture
    assert (panel.bl_space_type, panel.bl_region_type, panel.bl_category) == ("VIEW_3D", "UI", "Studio Avatar")
    for idname in OPERATORS:
        module, name = idname.split(".")
        assert operator_rna(idname).identifier == f"{module.upper()}_OT_{name}"
    assert "video_path" in bpy.types.Scene.bl_rna.properties["studio_avatar"].fixed_type.properties.keys()


def draw_panel(context):
    layout = RecordingLayout()
    bpy.types.STUDIO_AVATAR_PT_capture.draw(DrawSelf(layout), context)
    return layout


def test_panel_draws_every_state(scene_state):
    context = bpy.context
    empty = draw_panel(context)
    assert "studio_avatar.select_video" in empty.operators()
    assert any("Choose a phone video" in text for text in empty.labels())

    scene_state.video_path = "/videos/anna.mp4"
    assert any("Not probed" in text for text in draw_panel(context).labels())

    scene_state.video.fill({"path": "/videos/anna.mp4", "frames": 240, "fps": 30.0, "duration_s": 8.0, "width": 1920,
                            "height": 1080, "rotation_deg": 90, "display_width": 1080, "display_height": 1920,
                            "codec": "h264", "size_bytes": 23_400_000})
    scene_state.probe_status = "OK"
    labels = draw_panel(context).labels()
    assert "Resolution: 1920 × 1080, rotated 90° → 1080 × 1920" in labels
    assert "Frames: 240 at 30 fps" in labels and "Codec: h264" in labels and "File size: 23.4 MB" in labels

    scene_state.probe_status = "ERROR"
    scene_state.probe_error = "/videos/anna.mp4: the file is truncated or damaged: it declares 240 frames but only 12 can be decoded"
    text = " ".join(draw_panel(context).labels())
    assert "declares 240 frames but only 12 can be decoded" in text

    job = context.window_manager.studio_avatar_job
    job.running, job.stage, job.fraction, job.message, job.eta_s = True, "preview", 0.4, "decoding frame 3/8", 12.0
    try:
        layout = draw_panel(context)
        assert ("progress", pytest.approx(0.4), "40%  preview: decoding frame 3/8") in layout.calls
        assert "studio_avatar.cancel_job" in layout.operators() and "ETA 12s" in layout.labels()
    finally:
        job.running = False


def test_preferences_draw_and_defaults(installed):
    prefs = bpy.context.preferences.addons[MODULE].preferences
    assert (prefs.device, prefs.cache_dir, prefs.worker_python) == ("AUTO", "", "")
    layout = RecordingLayout()
    type(prefs).draw(DrawSelf(layout, prefs), bpy.context)
    assert [c[1] for c in layout.calls if c[0] == "prop"] == ["cache_dir", "device", "worker_python", "flame_model_path",
                                                             "flame_uv_path", "weights_dir", "torch_variant"]
    assert any(text.startswith("Cache in use: ") for text in layout.labels())


def test_probe_operator_runs_the_worker_and_fills_the_scene(scene_state, tmp_path):
    clip = write_turning_head_clip(tmp_path / "take 1.mp4", frames=24, width=256, height=192, fps=24.0)
    assert bpy.ops.studio_avatar.probe_video(filepath=str(clip), wait=True) == {"FINISHED"}
    facts = scene_state.video
    assert scene_state.probe_status == "OK" and scene_state.video_path == str(clip)
    assert (facts.frames, facts.width, facts.height, facts.codec) == (24, 256, 192, "mpeg4")
    assert facts.fps == pytest.approx(24.0) and facts.duration_s == pytest.approx(1.0, abs=1e-3)
    assert not bpy.context.window_manager.studio_avatar_job.running


def test_select_video_operator_probes_the_chosen_file(scene_state, clip_30):
    # invoke() opens the file browser; Blender then calls execute() with the chosen path
    assert bpy.ops.studio_avatar.select_video("EXEC_DEFAULT", filepath=str(clip_30), wait=True) == {"FINISHED"}
    assert scene_state.probe_status == "OK" and scene_state.video.frames == 30


def test_probe_operator_shows_a_clear_error(scene_state, tmp_path):
    bad = tmp_path / "broken.mp4"
    bad.write_text("this is not a video")
    with pytest.raises(RuntimeError, match="not a video file"):
        bpy.ops.studio_avatar.probe_video(filepath=str(bad), wait=True)
    assert scene_state.probe_status == "ERROR"
    assert str(bad) in scene_state.probe_error and "Traceback" not in scene_state.probe_error
    labels = " ".join(draw_panel(bpy.context).labels())
    assert "not a video file" in labels


def test_changing_the_video_clears_old_facts(scene_state, clip_30):
    bpy.ops.studio_avatar.probe_video(filepath=str(clip_30), wait=True)
    assert scene_state.probe_status == "OK"
    scene_state.video_path = "/somewhere/else.mp4"
    assert scene_state.probe_status == "NONE"


def test_status_bar_line_shows_stage_percent_and_eta(installed):
    import importlib

    jobs = importlib.import_module(f"{MODULE}.operators.jobs")
    job = bpy.context.window_manager.studio_avatar_job
    job.stage, job.fraction, job.message, job.eta_s = "preview", 0.25, "decoding frame 2/8", 95.0
    assert jobs.status_line(job) == "Studio Avatar — preview: 25% decoding frame 2/8  ETA 1m35s"
    job.eta_s = -1.0
    assert jobs.status_line(job) == "Studio Avatar — preview: 25% decoding frame 2/8"


def test_worker_settings_follow_the_preferences(installed, tmp_path):
    import importlib
    import os
    import sys

    jobs = importlib.import_module(f"{MODULE}.operators.jobs")
    prefs = bpy.context.preferences.addons[MODULE].preferences
    python, options, paths = jobs.worker_settings(bpy.context)
    assert python == sys.executable and options[:2] == ["--device", "auto"]
    cache = options[options.index("--cache-dir") + 1]
    assert cache == bpy.utils.extension_path_user(MODULE, path="cache", create=False)  # the add-on's user folder
    assert cache.startswith(os.environ["BLENDER_USER_RESOURCES"])
    try:
        prefs.device, prefs.cache_dir, prefs.worker_python = "CPU", str(tmp_path / "cache"), "/opt/py/bin/python3"
        python, options, _ = jobs.worker_settings(bpy.context)
        assert python == "/opt/py/bin/python3"
        assert options == ["--device", "cpu", "--cache-dir", str(tmp_path / "cache")]
    finally:
        prefs.device, prefs.cache_dir, prefs.worker_python = "AUTO", "", ""
