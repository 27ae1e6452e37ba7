"""The Avatar and Lighting panels of the installed extension: relighting the open scene with presets (only the
add-on's own world and lamps are ever replaced), Reset Pose, and panels that draw in every state."""

import importlib
import math

import bpy
import cv2
import numpy as np
import pytest
from addon_fixtures import addon_module
from blender_layout import DrawSelf, RecordingLayout, operator_rna
from mathutils import Vector
from synthetic_head import make_synthetic_head

from studio_avatar.core.avatar_inputs import AvatarInputs
from studio_avatar.core.blender.avatar import build_avatar
from studio_avatar.core.blender.export import ARKIT_BLENDSHAPES
from studio_avatar.core.blender.lighting import LIGHTING_TAG, PRESETS, world_hdri_files
from studio_avatar.core.blender.rig import expression_groups

MODULE = addon_module(__name__)
OPERATORS = ("studio_avatar.apply_lighting", "studio_avatar.reset_pose")


@pytest.fixture(scope="module")
def model():
    return make_synthetic_head()     # expressions jawOpen, browUpLeft, browUpRight


def add_avatar(model, folder, name="Anna"):
    """An avatar built from a (minimal) capture of the synthetic head, as Build Avatar from Capture makes it."""
    folder.mkdir(parents=True, exist_ok=True)
    albedo = folder / "gmug.png"
    cv2.imwrite(str(albedo), np.full((32, 32, 3), (120, 150, 200), np.uint8))
    inputs = AvatarInputs(capture=folder, shape=np.zeros(4, np.float32), flame_model="", flame_uv="",
                          model_source=model.source, model_fingerprint=str(model.metadata.get("fingerprint", "")),
                          fit_sha256="", albedo=albedo, albedo_kind="gmug", data_maps={})
    return build_avatar(model, inputs, name=name)


def add_user_lighting(scene):
    """A world and a lamp of the user's own, which relighting must keep as they are."""
    world = bpy.data.worlds.new("My World")
    scene.world = world
    lamp = bpy.data.objects.new("My Lamp", bpy.data.lights.new("My Lamp Data", "POINT"))
    scene.collection.objects.link(lamp)
    return world, lamp


def ours(scene):
    return sorted(obj.name for obj in scene.objects if obj.get(LIGHTING_TAG))


def draw(panel, context):
    layout = RecordingLayout()
    getattr(bpy.types, panel).draw(DrawSelf(layout), context)
    return layout


def test_operators_have_undo_and_every_property_a_description(installed):
    for idname in OPERATORS:
        rna = operator_rna(idname)
        assert rna.description, idname
        for prop in rna.properties:
            assert prop.identifier == "rna_type" or prop.description, f"{idname}.{prop.identifier}"
    for module_name, cls in (("lighting", "STUDIO_AVATAR_OT_apply_lighting"), ("avatar", "STUDIO_AVATAR_OT_reset_pose")):
        operator = getattr(importlib.import_module(f"{MODULE}.operators.{module_name}"), cls)
        assert {"REGISTER", "UNDO"} <= operator.bl_options
    state = bpy.types.Scene.bl_rna.properties["studio_avatar"].fixed_type
    for name in ("lighting_preset", "lighting_rotation", "lighting_strength", "expression_groups_open"):
        assert state.properties[name].description, name
    groups = state.properties["expression_groups_open"].fixed_type
    flags = [p for p in groups.properties if p.identifier not in ("rna_type", "name")]
    assert [p.identifier for p in flags] == ["brows", "eyes", "cheeks", "nose", "mouth", "jaw", "tongue", "other"]
    assert all(p.description for p in flags)
    for panel in ("STUDIO_AVATAR_PT_avatar", "STUDIO_AVATAR_PT_lighting"):
        cls = getattr(bpy.types, panel)
        assert (cls.bl_space_type, cls.bl_region_type, cls.bl_category) == ("VIEW_3D", "UI", "Studio Avatar")


def test_presets_cover_every_bundled_hdri_and_the_studio_rig(installed):
    assert {PRESETS[name].hdri for name in PRESETS} - {None} == set(world_hdri_files())
    assert len(PRESETS["studio"].lamps) == 3 and PRESETS["studio"].hdri is None
    items = operator_rna("studio_avatar.apply_lighting").properties["preset"].enum_items.keys()
    assert set(items) == {"ORIGINAL", *PRESETS}


def test_ARKit_and_FLAME_expressions_are_grouped_by_region():
    groups = dict(expression_groups([*ARKIT_BLENDSHAPES, "expression_000"]))
    assert [len(groups[g]) for g in ("brows", "eyes", "cheeks", "nose", "mouth", "jaw", "tongue", "other")] == [
        5, 14, 3, 2, 23, 4, 1, 1]
    assert groups["jaw"] == ["jawForward", "jawLeft", "jawRight", "jawOpen"] and groups["other"] == ["expression_000"]


def test_switching_presets_replaces_only_our_lighting_and_original_gives_the_world_back(scene):
    user_world, user_lamp = add_user_lighting(scene)

    assert bpy.ops.studio_avatar.apply_lighting(preset="studio") == {"FINISHED"}
    studio_lamps = ours(scene)
    assert len(studio_lamps) == 3
    collection = bpy.data.collections["Studio Avatar Lighting"]
    assert collection.name in scene.collection.children and sorted(o.name for o in collection.objects) == studio_lamps
    studio_world = scene.world
    assert studio_world != user_world and studio_world[LIGHTING_TAG] == "studio"

    assert bpy.ops.studio_avatar.apply_lighting(preset="sunset") == {"FINISHED"}
    assert ours(scene) == [] and scene.world[LIGHTING_TAG] == "sunset"
    assert not [w for w in bpy.data.worlds if w.get(LIGHTING_TAG) == "studio"], "the old preset's world is gone"
    environment = next(n for n in scene.world.node_tree.nodes if n.type == "TEX_ENVIRONMENT")
    assert environment.image.filepath.endswith("sunset.exr")
    assert scene.studio_avatar.lighting_preset == "sunset"
    # the user's data: still there, same names, untouched
    assert (user_lamp.name, user_lamp.data.name, user_world.name) == ("My Lamp", "My Lamp Data", "My World")
    assert user_lamp.name in scene.objects and user_world.users >= 1
    assert sorted(o.name for o in scene.objects if o.type == "LIGHT") == ["My Lamp"]

    assert bpy.ops.studio_avatar.apply_lighting(preset="ORIGINAL") == {"FINISHED"}
    assert scene.world == user_world and "Studio Avatar Lighting" not in bpy.data.collections
    assert not [w for w in bpy.data.worlds if w.get(LIGHTING_TAG)] and [o.name for o in scene.objects] == ["My Lamp"]


def test_our_collection_gets_a_new_name_beside_a_users_collection_of_that_name(scene):
    theirs = bpy.data.collections.new("Studio Avatar Lighting")
    scene.collection.children.link(theirs)
    bpy.ops.studio_avatar.apply_lighting(preset="studio")
    bpy.ops.studio_avatar.apply_lighting(preset="ORIGINAL")
    assert theirs.name == "Studio Avatar Lighting" and [c.name for c in bpy.data.collections] == [theirs.name]
    assert scene.world is None          # the empty scene had no world; it has none again


def test_rotation_and_strength_turn_and_scale_the_hdri_and_the_lamps(scene):
    bpy.ops.studio_avatar.apply_lighting(preset="sunset", rotation=90.0, strength=2.0)
    nodes = scene.world.node_tree.nodes
    mapping = next(n for n in nodes if n.type == "MAPPING")
    assert mapping.inputs["Rotation"].default_value[2] == pytest.approx(math.radians(60.0 - 90.0))
    assert nodes["Background"].inputs["Strength"].default_value == pytest.approx(2.0)

    bpy.ops.studio_avatar.apply_lighting(preset="studio", rotation=90.0, strength=0.5)
    lamps = sorted((obj for obj in scene.objects if obj.get(LIGHTING_TAG)), key=lambda obj: obj.name)
    assert [lamp.data.energy for lamp in lamps] == pytest.approx([0.5 * lamp.power_w for lamp in PRESETS["studio"].lamps])
    x, y, z = PRESETS["studio"].lamps[0].position      # no avatar: the rig turns about the origin
    assert tuple(lamps[0].location) == pytest.approx((-y, x, z))


def test_studio_lamps_surround_the_avatars_head(scene, model, tmp_path):
    avatar = add_avatar(model, tmp_path / "capture")
    avatar["armature"].location = (2.0, 1.0, 0.5)
    bpy.context.view_layer.update()
    bpy.ops.studio_avatar.apply_lighting(preset="studio")
    centre = np.mean([avatar["mesh"].matrix_world @ Vector(c) for c in avatar["mesh"].bound_box], axis=0)
    key = min((obj for obj in scene.objects if obj.get(LIGHTING_TAG)), key=lambda obj: obj.name)
    assert np.asarray(key.location) - centre == pytest.approx(PRESETS["studio"].lamps[0].position, abs=1e-5)


def test_reset_pose_zeroes_expressions_and_puts_the_bones_at_rest(scene, model, tmp_path):
    avatar = add_avatar(model, tmp_path / "capture")
    keys = avatar["mesh"].data.shape_keys.key_blocks
    for key in keys[1:]:
        key.value = 0.7
    rig = avatar["armature"]
    assert {bone.rotation_mode for bone in rig.pose.bones} == {"XYZ"}     # Euler sliders in the panel
    for name in ("jaw", "eye_L", "eye_R", "neck"):
        rig.pose.bones[name].rotation_euler = (0.3, -0.1, 0.2)
    assert bpy.ops.studio_avatar.reset_pose() == {"FINISHED"}
    assert [key.value for key in keys[1:]] == [0.0] * (len(keys) - 1)
    assert all(tuple(bone.rotation_euler) == (0.0, 0.0, 0.0) for bone in rig.pose.bones)


def test_reset_pose_without_an_avatar_says_so(scene):
    with pytest.raises(RuntimeError, match="No avatar in the scene"):
        bpy.ops.studio_avatar.reset_pose()


def test_panels_draw_with_no_avatar_an_avatar_and_a_running_job(scene, model, tmp_path):
    context = bpy.context
    empty = draw("STUDIO_AVATAR_PT_avatar", context)
    assert empty.labels() == ["No avatar in the scene: build one from a capture or add a head"]
    lighting = draw("STUDIO_AVATAR_PT_lighting", context)
    assert "studio_avatar.apply_lighting" in lighting.operators()
    assert "The scene shows its own world" in lighting.labels()

    add_avatar(model, tmp_path / "anna_capture")
    layout = draw("STUDIO_AVATAR_PT_avatar", context)
    labels = layout.labels()
    assert labels[:2] == ["Anna", "anna_capture"]
    assert any("Anna Albedo (32 × 32)" in text for text in labels)
    props = [call for call in layout.calls if call[0] == "prop"]
    assert ("prop", "jaw", "Jaw (1)") in props and ("prop", "brows", "Brows (2)") in props
    assert not [p for p in props if p[1] == "value"], "groups start closed"
    assert [p[2] for p in props if p[1] == "rotation_euler"] == ["Jaw", "Left Eye", "Right Eye", "Neck"]
    assert "studio_avatar.reset_pose" in layout.operators()

    scene.studio_avatar.expression_groups_open.jaw = True
    props = [call for call in draw("STUDIO_AVATAR_PT_avatar", context).calls if call[0] == "prop"]
    assert [p[2] for p in props if p[1] == "value"] == ["jawOpen"]

    add_user_lighting(scene)
    bpy.ops.studio_avatar.apply_lighting(preset="sunset")
    labels = draw("STUDIO_AVATAR_PT_lighting", context).labels()
    assert "Active: Sunset" in labels and "1 lamp(s) of your own also light the scene" in labels

    job = context.window_manager.studio_avatar_job
    job.running, job.stage, job.fraction = True, "fit", 0.3
    try:
        assert "studio_avatar.reset_pose" in draw("STUDIO_AVATAR_PT_avatar", context).operators()
        assert "studio_avatar.apply_lighting" in draw("STUDIO_AVATAR_PT_lighting", context).operators()
    finally:
        job.running = False


def test_the_active_objects_avatar_is_shown(scene, model, tmp_path):
    add_avatar(model, tmp_path / "a", name="Anna")
    ben = add_avatar(model, tmp_path / "b", name="Ben")
    assert draw("STUDIO_AVATAR_PT_avatar", bpy.context).labels()[0] == "Anna"     # none active: the first
    bpy.context.view_layer.objects.active = ben["eyes"][0]
    assert draw("STUDIO_AVATAR_PT_avatar", bpy.context).labels()[0] == "Ben"
    ben["mesh"].data.shape_keys.key_blocks["jawOpen"].value = 0.5
    bpy.ops.studio_avatar.reset_pose()
    assert ben["mesh"].data.shape_keys.key_blocks["jawOpen"].value == 0.0
