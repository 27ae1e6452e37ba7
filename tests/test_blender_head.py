"""The head in Blender: core/blender/head.py builds the synthetic head as a rig that reproduces the model's
forward function; the Add Head operator and menu work in the installed extension; Cycles renders it."""

import dataclasses
import importlib
import os
import subprocess
import sys
from pathlib import Path

import bpy  # noqa: I001 - bpy must come first: it puts addon_utils on sys.path
import addon_utils
import cv2
import numpy as np
import pytest
import torch
from addon_fixtures import addon_module
from blender_layout import DrawSelf, RecordingLayout, operator_rna
from mathutils import Matrix
from synthetic_head import make_synthetic_head

from studio_avatar.core.blender.head import VERTEX_INDEX_ATTRIBUTE, build_head, to_blender
from studio_avatar.core.head.model import HeadModelError, axis_angle_to_matrix

MODULE = addon_module(__name__)
BONES = {"root": None, "neck": "root", "jaw": "neck", "eye_L": "neck", "eye_R": "neck"}


@pytest.fixture(scope="module")
def model():
    return make_synthetic_head()


@pytest.fixture
def head(model, empty_scene):
    return build_head(model)


def model_index(obj):
    index = np.empty(len(obj.data.vertices), np.int32)
    obj.data.attributes[VERTEX_INDEX_ATTRIBUTE].data.foreach_get("value", index)
    return index


def evaluated_world_vertices(obj):
    """World positions of ``obj``'s vertices after modifiers, shape keys and parenting."""
    depsgraph = bpy.context.evaluated_depsgraph_get()
    evaluated = obj.evaluated_get(depsgraph)
    mesh = evaluated.to_mesh()
    co = np.empty(len(mesh.vertices) * 3, np.float32)
    mesh.vertices.foreach_get("co", co)
    evaluated.to_mesh_clear()
    matrix = np.array(evaluated.matrix_world, np.float32)
    return co.reshape(-1, 3) @ matrix[:3, :3].T + matrix[:3, 3]


def model_vertices(model, **coefficients):
    batch = {name: torch.as_tensor(np.asarray(value, np.float32))[None] for name, value in coefficients.items()}
    return model.vertices(**batch)[0].numpy()


# -- build_head ----------------------------------------------------------------------------------

def test_build_creates_rig_mesh_shape_keys_and_eyes(model, head):
    armature, mesh, eyes = head["armature"], head["mesh"], head["eyes"]
    assert head["collection"].name in bpy.context.scene.collection.children
    assert set(head["collection"].objects) == {armature, mesh, *eyes}
    assert {bone.name: bone.parent.name if bone.parent else None for bone in armature.data.bones} == BONES
    assert (mesh.parent, mesh.parent_type) == (armature, "OBJECT")
    assert [(m.type, m.object) for m in mesh.modifiers] == [("ARMATURE", armature)]
    assert mesh.vertex_groups.keys() == list(BONES)
    assert mesh.data.shape_keys.key_blocks.keys() == ["Basis", *model.expression_names]
    assert all(polygon.use_smooth for polygon in mesh.data.polygons)
    assert [(eye.name, eye.parent, eye.parent_type, eye.parent_bone) for eye in eyes] == [
        ("Eye_L", armature, "BONE", "eye_L"), ("Eye_R", armature, "BONE", "eye_R")]

    objects = (mesh, *eyes)
    assert sum(len(obj.data.vertices) for obj in objects) == model.num_vertices
    assert sum(len(obj.data.polygons) for obj in objects) == len(model.polygons)
    assert np.array_equal(np.sort(np.concatenate([model_index(obj) for obj in objects])), np.arange(model.num_vertices))
    assert np.flatnonzero(model.regions["eye_left"]).tolist() == sorted(model_index(eyes[0]))


def test_rest_pose_matches_the_model_in_blenders_frame(model, empty_scene):
    shape = np.array([1.5, -2.0, 0.5], np.float32)
    head = build_head(model, shape=shape)
    expected = to_blender(model_vertices(model, shape=shape))
    for obj in (head["mesh"], *head["eyes"]):
        np.testing.assert_allclose(evaluated_world_vertices(obj), expected[model_index(obj)], atol=1e-6)
    # the face looks toward -Y: the eyes are in front of the head's centre, and above it
    eye_centre = evaluated_world_vertices(head["eyes"][0]).mean(0)
    assert eye_centre[1] < -0.05 and eye_centre[2] > 0.0 and eye_centre[0] > 0.0  # +x is the subject's left
    joints = to_blender(model.joint_regressor @ model_vertices(model, shape=shape))
    heads = np.array([bone.head_local for bone in head["armature"].data.bones])
    np.testing.assert_allclose(heads, joints, atol=1e-6)


def test_existing_objects_with_the_same_names_are_untouched(model, empty_scene):
    bpy.ops.mesh.primitive_cube_add(size=0.5, location=(1.0, 2.0, 3.0))
    cube = bpy.context.object
    cube.name = cube.data.name = "Studio Avatar Head"
    eye = bpy.data.objects.new("Eye_L", None)
    old_collection = bpy.data.collections.new("Studio Avatar Head")
    empty_scene.collection.children.link(old_collection)
    old_collection.objects.link(eye)
    cube_vertices = [tuple(v.co) for v in cube.data.vertices]

    head = build_head(model)

    assert (cube.name, cube.data.name, tuple(cube.location)) == ("Studio Avatar Head", "Studio Avatar Head", (1.0, 2.0, 3.0))
    assert [tuple(v.co) for v in cube.data.vertices] == cube_vertices and cube.data.shape_keys is None
    assert (eye.name, list(old_collection.objects)) == ("Eye_L", [eye])
    assert (cube.parent, eye.parent, len(cube.vertex_groups), len(cube.modifiers)) == (None, None, 0, 0)
    assert head["mesh"].name == head["mesh"].data.name == head["collection"].name == "Studio Avatar Head.001"
    assert head["eyes"][0].name == "Eye_L.001"


def test_jaw_bone_moves_the_jaw_and_not_the_top_of_the_head(model, head):
    mesh = head["mesh"]
    index = model_index(mesh)
    rest = evaluated_world_vertices(mesh)
    jaw = head["armature"].pose.bones["jaw"]
    jaw.rotation_mode = "XYZ"
    jaw.rotation_euler = (0.4, 0.0, 0.0)
    moved = np.linalg.norm(evaluated_world_vertices(mesh) - rest, axis=1)
    jaw_weighted = model.skin_weights[index, 2] > 0.5
    top = model.template_m[index, 1] > 0.06
    assert jaw_weighted.sum() > 5 and top.sum() > 5
    assert moved[jaw_weighted].min() > 0.001 and moved[jaw_weighted].max() > 0.01
    assert moved[top].max() < 1e-6


def test_posed_rig_reproduces_the_model_forward(model, head):
    """Bone rotations equal to a model pose (axis-angle per joint) give the model's posed vertices."""
    pose = np.zeros((model.num_joints, 3), np.float32)
    pose[1] = (0.2, 0.3, -0.1)    # neck
    pose[2] = (0.35, 0.0, 0.05)   # jaw
    pose[3] = (0.0, 0.4, 0.0)     # left eye
    model_to_blender = Matrix(to_blender(np.eye(3)).T.tolist())
    rotations = axis_angle_to_matrix(torch.as_tensor(pose)).numpy()
    for joint, bone_name in enumerate(BONES):
        bone = head["armature"].data.bones[bone_name]
        rest = bone.matrix_local.to_3x3()
        world = model_to_blender @ Matrix(rotations[joint].tolist()) @ model_to_blender.transposed()
        pose_bone = head["armature"].pose.bones[bone_name]
        pose_bone.rotation_mode = "QUATERNION"
        pose_bone.matrix_basis = (rest.inverted() @ world @ rest).to_4x4()
    expected = to_blender(model_vertices(model, pose=pose))
    for obj in (head["mesh"], *head["eyes"]):
        np.testing.assert_allclose(evaluated_world_vertices(obj), expected[model_index(obj)], atol=2e-5)


def test_shape_keys_move_vertices_as_the_expression_basis_says(model, head):
    mesh = head["mesh"]
    keys = mesh.data.shape_keys.key_blocks
    keys["jawOpen"].value = 1.0
    keys["browUpLeft"].value = 0.5
    expected = to_blender(model_vertices(model, expression=[1.0, 0.5, 0.0]))[model_index(mesh)]
    np.testing.assert_allclose(evaluated_world_vertices(mesh), expected, atol=1e-6)
    assert np.abs(expected - to_blender(model.template_m[model_index(mesh)])).max() > 0.005


def test_uv_layer_holds_the_models_uvs(model, head):
    mesh = head["mesh"].data
    assert mesh.uv_layers.keys() == ["UVMap"]
    uv = np.empty(len(mesh.loops) * 2, np.float32)
    mesh.uv_layers["UVMap"].uv.foreach_get("vector", uv)
    eye = model.regions["eye_left"] | model.regions["eye_right"]
    head_polygons = ~eye[model.polygons[:, 0]]
    polygon_uv = model.polygon_uv[head_polygons]
    np.testing.assert_array_equal(uv.reshape(-1, 2), model.uv[polygon_uv[polygon_uv >= 0]])


def test_num_expressions_limits_the_shape_keys(model, empty_scene):
    head = build_head(model, num_expressions=1)
    assert head["mesh"].data.shape_keys.key_blocks.keys() == ["Basis", "jawOpen"]


def test_polygons_joining_an_eye_to_the_head_are_refused(model, empty_scene):
    polygons = model.polygons.copy()
    polygons[0, 0] = np.flatnonzero(model.regions["eye_left"])[0]
    with pytest.raises(HeadModelError, match="eyes must be separate"):
        build_head(dataclasses.replace(model, polygons=polygons))
    assert len(bpy.data.objects) == 0


# -- the operator and menu in the installed extension ----------------------------------------------

def add_menu_entries():
    return [draw for draw in getattr(bpy.types.VIEW3D_MT_mesh_add.draw, "_draw_funcs", ()) if draw.__module__.startswith(MODULE)]


def test_add_head_is_registered_in_the_add_mesh_menu(installed):
    assert operator_rna("studio_avatar.add_head").identifier == "STUDIO_AVATAR_OT_add_head"
    entries = add_menu_entries()
    assert len(entries) == 1
    layout = RecordingLayout()
    entries[0](DrawSelf(layout), bpy.context)
    assert layout.calls == [("operator", "studio_avatar.add_head", "Studio Avatar Head")]


def test_add_head_builds_the_open_head_at_the_cursor(scene):
    """The real path: the worker builds and caches the open head, the operator builds it in the scene."""
    jobs = importlib.import_module(f"{MODULE}.operators.jobs")
    bpy.context.scene.cursor.location = (0.5, 0.0, 1.5)
    assert bpy.ops.studio_avatar.add_head() == {"FINISHED"}
    assert list((Path(jobs.cache_dir(bpy.context)) / "heads").glob("open-head-*/head.safetensors"))
    mesh = bpy.context.view_layer.objects.active
    rig = mesh.parent
    assert mesh.name == "Studio Avatar Head" and len(mesh.data.shape_keys.key_blocks) == 53
    assert rig.type == "ARMATURE" and sorted(b.name for b in rig.data.bones) == sorted(BONES)
    assert tuple(rig.location) == (0.5, 0.0, 1.5)
    assert {obj.name for obj in bpy.context.selected_objects} == {"Studio Avatar Head", "Studio Avatar Head Rig", "Eye_L", "Eye_R"}
    eyes = [obj for obj in bpy.context.selected_objects if obj.name.startswith("Eye_")]
    assert all(eye.parent == rig and eye.parent_bone in ("eye_L", "eye_R") for eye in eyes)
    before = evaluated_world_vertices(mesh)
    rig.pose.bones["jaw"].rotation_mode = "XYZ"
    rig.pose.bones["jaw"].rotation_euler = (0.3, 0.0, 0.0)
    assert np.linalg.norm(evaluated_world_vertices(mesh) - before, axis=1).max() > 0.005


def test_add_head_limits_the_expressions(scene, open_head_model):
    assert bpy.ops.studio_avatar.add_head(num_expressions=2) == {"FINISHED"}
    keys = bpy.context.view_layer.objects.active.data.shape_keys.key_blocks.keys()
    assert keys == ["Basis", *open_head_model.expression_names[:2]]


def test_add_head_reports_a_broken_head_model(scene, tmp_path):
    prefs = bpy.context.preferences.addons[MODULE].preferences
    broken = tmp_path / "generic_model.pkl"
    broken.write_bytes(b"\x80\x02not really a pickle")
    try:
        prefs.flame_model_path = str(broken)
        with pytest.raises(RuntimeError, match="not a FLAME model") as raised:
            bpy.ops.studio_avatar.add_head(source="FLAME")
    finally:
        prefs.flame_model_path = ""
    assert "Traceback" not in str(raised.value) and len(bpy.data.objects) == 0


def test_add_head_from_flame_needs_the_model_file(scene, tmp_path):
    prefs = bpy.context.preferences.addons[MODULE].preferences
    with pytest.raises(RuntimeError, match="Set the FLAME model file"):
        bpy.ops.studio_avatar.add_head(source="FLAME")
    try:
        prefs.flame_model_path = str(tmp_path / "generic_model.pkl")
        with pytest.raises(RuntimeError, match="FLAME model file not found: .*generic_model.pkl"):
            bpy.ops.studio_avatar.add_head(source="FLAME")
    finally:
        prefs.flame_model_path = ""
    assert len(bpy.data.objects) == 0


def test_preferences_draw_the_flame_files(installed):
    prefs = bpy.context.preferences.addons[MODULE].preferences
    assert (prefs.flame_model_path, prefs.flame_uv_path) == ("", "")
    layout = RecordingLayout()
    type(prefs).draw(DrawSelf(layout, prefs), bpy.context)
    drawn = [c[1] for c in layout.calls if c[0] == "prop"]
    assert drawn.index("flame_uv_path") == drawn.index("flame_model_path") + 1   # model first, then its UV file


def test_disabling_the_extension_removes_the_menu_entry(installed):
    addon_utils.disable(MODULE)
    try:
        assert add_menu_entries() == []
    finally:
        addon_utils.enable(MODULE)
    assert addon_utils.check(MODULE)[1] and len(add_menu_entries()) == 1


# -- the real open head -----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def open_head_model():
    from studio_avatar.core.head.open_head import build_open_head

    return build_open_head()


def test_open_head_in_blender_has_rig_52_shape_keys_and_posable_jaw(open_head_model, empty_scene):
    built = build_head(open_head_model)
    mesh, armature = built["mesh"], built["armature"]
    keys = [key.name for key in mesh.data.shape_keys.key_blocks]
    assert keys[0] == "Basis" and keys[1:] == open_head_model.expression_names and len(keys) == 53
    assert sorted(bone.name for bone in armature.data.bones) == sorted(BONES)
    assert sorted(eye.parent_bone for eye in built["eyes"]) == ["eye_L", "eye_R"]
    total = len(mesh.data.vertices) + sum(len(eye.data.vertices) for eye in built["eyes"])
    assert total == open_head_model.num_vertices

    rest = evaluated_world_vertices(mesh)
    jaw = armature.pose.bones["jaw"]
    jaw.rotation_mode = "XYZ"
    jaw.rotation_euler = (0.35, 0.0, 0.0)
    posed = evaluated_world_vertices(mesh)
    jaw.rotation_euler = (0.0, 0.0, 0.0)
    index = model_index(mesh)
    moved = np.linalg.norm(posed - rest, axis=1)
    lips = open_head_model.regions["lips"][index]
    crown = open_head_model.template_m[index, 1] > open_head_model.template_m[:, 1].max() - 0.03
    assert moved[lips].max() > 0.005 and moved[crown].max() < 1e-6


# -- rendering ----------------------------------------------------------------------------------

def test_cycles_turntable_shows_the_open_head_from_four_sides(repo_root, tmp_path):
    env = {**os.environ, "HOME": str(tmp_path / "home"), "XDG_CACHE_HOME": str(tmp_path / "cache")}
    script = repo_root / "tests" / "helpers" / "render_head_turntable.py"
    result = subprocess.run([sys.executable, str(script), str(tmp_path)], env=env, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    views = [cv2.imread(str(tmp_path / f"view_{azimuth:03d}.png"), cv2.IMREAD_UNCHANGED) for azimuth in (0, 90, 180, 270)]
    for view in views:
        assert view.shape == (128, 128, 4)
        coverage = (view[:, :, 3] > 127).mean()    # transparent film: alpha is where the head is
        assert 0.05 < coverage < 0.8, coverage
    # compare at 16x16 so that sampling noise cannot pass for a difference
    shaded = [cv2.resize(view[:, :, :3] * (view[:, :, 3:] / 255.0), (16, 16), interpolation=cv2.INTER_AREA) for view in views]
    for i in range(4):
        for j in range(i + 1, 4):
            assert np.abs(shaded[i] - shaded[j]).mean() > 1.0, (i, j)
