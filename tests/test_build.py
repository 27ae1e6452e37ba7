"""`studio-avatar build` and "Build Avatar from Capture": a capture's avatar as a .blend and in the open scene.

The captures are synthesized here (capture.json with a finished fit, fit.npz
for the open head, albedo PNGs), so these tests do not depend on the texture
stages. Built files are checked by a fresh Blender in a subprocess
(tests/helpers/avatar_blend.py), which also renders the face with Cycles.
"""

import dataclasses
import hashlib
import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import bpy  # noqa: I001 - bpy must come first: it puts addon_utils on sys.path
import cv2
import numpy as np
import pytest
from addon_fixtures import addon_module
from blender_layout import DrawSelf, RecordingLayout, operator_rna
from fresh_import import heavy_modules_after_import

from studio_avatar.core.atomic import atomic_write_npz
from studio_avatar.core.avatar_inputs import read_avatar_inputs
from studio_avatar.core.blender.avatar import LIPS_ATTRIBUTE, TEXTURES_MARKER, build_avatar
from studio_avatar.core.blender.head import VERTEX_INDEX_ATTRIBUTE, shaped_vertices_m, to_blender
from studio_avatar.core.capture import Capture
from studio_avatar.core.errors import CaptureError
from studio_avatar.core.fit import FitParams
from studio_avatar.core.hashing import file_sha256
from studio_avatar.core.stages import SOURCE, adopt_outputs

HELPER = Path(__file__).resolve().parent / "helpers" / "avatar_blend.py"
MODULE = addon_module(__name__)
SKIN_SRGB = (200, 150, 120)
GREEN_SRGB = (60, 170, 60)         # a colour no skin has: shows up if the wrong albedo were chosen
SHAPE = np.array([1.5, -1.0, 0.8, 0.5], np.float32)


@pytest.fixture(scope="module")
def open_head():
    """The open head from the session's isolated cache (the CLI and worker processes share it)."""
    from studio_avatar.core.head.open_head import get_open_head

    return get_open_head(with_landmarks=False)


def write_albedo(path: Path, srgb: tuple[int, int, int], bits: int = 8, size: int = 128) -> Path:
    """A square sRGB PNG of one colour with mild noise (as cv2 writes it: BGR)."""
    noise = np.random.default_rng(0).normal(0.0, 4.0, (size, size, 3))
    image = np.clip(np.array(srgb[::-1], np.float64) + noise, 0, 255)
    if bits == 16:
        image = (image * 257).round().astype(np.uint16)
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), image.astype(np.uint16 if bits == 16 else np.uint8))
    return path


def make_capture(root: Path, model, textures=("gmug", "delit_classic"), fingerprint=None, fit_done=True) -> Path:
    """A capture folder as the stages leave it: capture.json with a done fit, fit.npz, textures/*.png."""
    capture = Capture.create(root, {"path": "/videos/anna.mp4", "sha256": "0" * 64, "frames": 1})
    shape = np.zeros(50, np.float32)
    shape[: len(SHAPE)] = SHAPE
    atomic_write_npz(root / "fit.npz", shape=shape, expression=np.zeros((1, model.num_expression), np.float32),
                     pose=np.zeros((1, model.num_joints, 3), np.float32), translation=np.zeros((1, 3), np.float32),
                     model_source=np.array(model.source),
                     model_fingerprint=np.array(model.metadata["fingerprint"] if fingerprint is None else fingerprint))
    if fit_done:
        adopt_outputs(capture, "fit", ["fit.npz"], inputs=[SOURCE], params=dataclasses.asdict(FitParams()))
    colours = {"albedo": SKIN_SRGB, "gmug": SKIN_SRGB, "delit_classic": GREEN_SRGB}
    (root / "textures").mkdir()
    cv2.imwrite(str(root / "textures" / "coverage.png"), np.full((64, 64), 200, np.uint8))
    adopt_outputs(capture, "unwrap", ["textures/coverage.png"], inputs=["fit.npz"] if fit_done else [])
    for name in textures:   # each recorded as the stage that writes it would (enhance writes albedo.png)
        write_albedo(root / "textures" / f"{name}.png", colours[name], bits=16 if name == "gmug" else 8)
        stage = {"albedo": "enhance", "gmug": "gmug", "delit_classic": "delight_classic"}[name]
        adopt_outputs(capture, stage, [f"textures/{name}.png"], inputs=["textures/coverage.png"])
    return root


def run_helper(*args, timeout=120):
    result = subprocess.run([sys.executable, str(HELPER), *map(str, args)], capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]


def inspect_blend(blend: Path, tmp_path: Path) -> dict:
    report = tmp_path / "report.json"
    run_helper("inspect", blend, report)
    return json.loads(report.read_text())


@pytest.fixture(scope="module")
def built(open_head, tmp_path_factory):
    """One capture with gmug.png and delit_classic.png, built with `studio-avatar build`."""
    from conftest import run_cli

    root = tmp_path_factory.mktemp("build")
    capture = make_capture(root / "anna", open_head)
    blend = root / "out" / "avatar.blend"
    result = run_cli("build", str(capture), "-o", str(blend))
    assert result.returncode == 0, result.stderr
    return {"capture": capture, "blend": blend, "result": json.loads(result.stdout), "stderr": result.stderr}


# -- the capture's inputs ---------------------------------------------------------------------------

@pytest.mark.parametrize("present, chosen", [
    (("albedo", "gmug", "delit_classic"), "final"),
    (("gmug", "delit_classic"), "gmug"),
    (("delit_classic",), "delit_classic"),
    (("albedo", "delit_classic"), "final"),
])
def test_the_best_albedo_present_is_chosen(open_head, tmp_path, present, chosen):
    inputs = read_avatar_inputs(make_capture(tmp_path / "c", open_head, textures=present))
    assert inputs.albedo_kind == chosen
    assert inputs.albedo.name == {"final": "albedo.png"}.get(chosen, f"{chosen}.png")
    assert inputs.data_maps == {"coverage": tmp_path / "c" / "textures" / "coverage.png"}
    np.testing.assert_array_equal(inputs.shape[:4], SHAPE)
    assert (inputs.flame_model, inputs.model_source) == ("", "open-head")


def test_a_stale_albedo_is_passed_over_with_a_reason_and_refused_by_name(open_head, tmp_path):
    capture = make_capture(tmp_path / "c", open_head, textures=("gmug", "delit_classic"))
    write_albedo(capture / "textures" / "gmug.png", GREEN_SRGB)       # changed after its stage finished
    inputs = read_avatar_inputs(capture)
    assert inputs.albedo_kind == "delit_classic"
    assert len(inputs.skipped) == 1 and "textures/gmug.png is out of date" in inputs.skipped[0]
    with pytest.raises(CaptureError, match="gmug.png is out of date"):
        read_avatar_inputs(capture, "gmug")


def test_a_capture_without_a_finished_fit_is_refused(open_head, tmp_path):
    with pytest.raises(CaptureError, match="no finished fit; run `studio-avatar reconstruct"):
        read_avatar_inputs(make_capture(tmp_path / "c", open_head, fit_done=False))


def test_avatar_inputs_need_neither_bpy_nor_torch():
    """Blender's UI process reads the capture with it before starting the worker."""
    assert heavy_modules_after_import(["studio_avatar.core.avatar_inputs"], ("bpy", "torch", "cv2")) == []


# -- studio-avatar build ----------------------------------------------------------------------------

def test_build_writes_a_blend_with_the_avatar_and_its_images_beside_it(built, tmp_path):
    blend, result = built["blend"], built["result"]
    assert result["blend"] == str(blend) and result["albedo"] == "gmug" and result["model"] == "open-head"
    assert "[build]" in built["stderr"]
    textures = blend.parent / "avatar_textures"
    assert sorted(p.name for p in blend.parent.iterdir()) == ["avatar.blend", "avatar_textures"]  # no temp file, no .blend1
    assert sorted(p.name for p in textures.iterdir()) == [TEXTURES_MARKER, "coverage.png", "gmug.png"]
    assert (textures / "gmug.png").read_bytes() == (built["capture"] / "textures" / "gmug.png").read_bytes()
    written = json.loads((textures / TEXTURES_MARKER).read_text())["files"]     # what a later build may replace
    assert written == {name: hashlib.sha256((textures / name).read_bytes()).hexdigest() for name in ("coverage.png", "gmug.png")}

    report = inspect_blend(blend, tmp_path)
    collection = report["collections"]["Studio Avatar"]
    assert collection["in_scene"] and collection["objects"] == ["Eye_L", "Eye_R", "Studio Avatar", "Studio Avatar Rig"]
    assert collection["properties"] == {"studio_avatar_capture": str(built["capture"]), "studio_avatar_albedo": "gmug",
                                        "studio_avatar_fit_sha256": file_sha256(built["capture"] / "fit.npz")}

    images = report["images"]
    assert images["Studio Avatar Albedo"] == {
        "filepath": "//avatar_textures/gmug.png", "abspath": str(textures / "gmug.png"), "exists": True,
        "colour_space": "sRGB", "packed": False, "size": [128, 128]}
    assert images["Studio Avatar Coverage"]["filepath"] == "//avatar_textures/coverage.png"
    assert images["Studio Avatar Coverage"]["exists"] and images["Studio Avatar Coverage"]["colour_space"] == "Non-Color"

    skin = report["materials"]["Studio Avatar Skin"]
    assert {"image": "Studio Avatar Albedo", "label": "Albedo", "linked_to": ["Base Color"]} in skin["images"]
    inputs = skin["inputs"]
    assert 0.1 <= inputs["Subsurface Weight"] <= 0.2 and 0.003 <= inputs["Subsurface Scale"] <= 0.01
    assert inputs["Subsurface Radius"] == pytest.approx([1.0, 0.2, 0.1])
    assert inputs["Specular IOR Level"] == pytest.approx(0.5) and inputs["Coat Weight"] == 0.0

    head = report["objects"]["Studio Avatar"]
    assert head["materials"] == ["Studio Avatar Skin", "Studio Avatar Teeth", "Studio Avatar Tongue", "Studio Avatar Mouth"]
    assert head["polygons_per_slot"][0] > 3000 and min(head["polygons_per_slot"]) > 50
    assert LIPS_ATTRIBUTE in head["attributes"] and head["shape_keys"] == 53
    for eye in ("Eye_L", "Eye_R"):
        assert report["objects"][eye]["materials"] == ["Studio Avatar Eye"]
    eye_inputs = report["materials"]["Studio Avatar Eye"]["inputs"]
    assert report["materials"]["Studio Avatar Eye"]["base_color_linked"] and eye_inputs["Coat Weight"] > 0.5


def test_build_packs_the_images_with_pack(open_head, tmp_path, cli):
    capture = make_capture(tmp_path / "anna", open_head, textures=("delit_classic",))
    blend = tmp_path / "out" / "packed.blend"
    result = cli("build", str(capture), "-o", str(blend), "--pack")
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in blend.parent.iterdir()) == ["packed.blend"]
    images = inspect_blend(blend, tmp_path)["images"]
    albedo = images["Studio Avatar Albedo"]
    assert albedo["packed"] and albedo["size"] == [128, 128] and albedo["colour_space"] == "sRGB"
    assert albedo["filepath"] == "//packed_textures/delit_classic.png"   # unpacking writes beside the .blend
    assert images["Studio Avatar Coverage"]["packed"] and images["Studio Avatar Coverage"]["colour_space"] == "Non-Color"


def test_build_never_overwrites_a_blend_without_overwrite(built, cli, tmp_path):
    blend = tmp_path / "avatar.blend"
    blend.write_bytes(b"precious work")
    refused = cli("build", str(built["capture"]), "-o", str(blend))
    assert refused.returncode == 2 and refused.stdout == ""
    assert "already exists" in refused.stderr and "--overwrite" in refused.stderr and "Traceback" not in refused.stderr
    assert blend.read_bytes() == b"precious work" and sorted(p.name for p in tmp_path.iterdir()) == ["avatar.blend"]

    replaced = cli("build", str(built["capture"]), "-o", str(blend), "--overwrite")
    assert replaced.returncode == 0, replaced.stderr
    assert blend.read_bytes()[:7] == b"BLENDER"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["avatar.blend", "avatar_textures"]


def test_build_without_an_albedo_says_to_run_reconstruct(open_head, tmp_path, cli):
    capture = make_capture(tmp_path / "anna", open_head, textures=())
    result = cli("build", str(capture), "-o", str(tmp_path / "avatar.blend"))
    assert result.returncode == 2 and result.stdout == ""
    assert "no albedo texture yet" in result.stderr and "run reconstruct first" in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "avatar.blend").exists()


def test_build_refuses_a_fit_made_with_another_head_model(open_head, tmp_path, cli):
    capture = make_capture(tmp_path / "anna", open_head, fingerprint="0123456789abcdef")
    result = cli("build", str(capture), "-o", str(tmp_path / "avatar.blend"))
    assert result.returncode == 2
    assert "another head model" in result.stderr and "re-run the fit" in result.stderr
    assert not (tmp_path / "avatar.blend").exists()


def test_cycles_render_shows_skin_on_the_face(built, tmp_path):
    env = {**os.environ, "HOME": str(tmp_path / "home"), "XDG_CACHE_HOME": str(tmp_path / "cache")}
    out = tmp_path / "face.png"
    result = subprocess.run([sys.executable, str(HELPER), "render", str(built["blend"]), str(out), "160", "16"],
                            env=env, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    rgb = cv2.imread(str(out))[:, :, ::-1].astype(np.float32)
    assert rgb.shape == (160, 160, 3)
    cheeks = rgb[96:120, 56:104].reshape(-1, 3)        # below the eyes, around the nose
    r, g, b = np.median(cheeks, axis=0)
    assert r > g + 10 and g > b + 5 and r > 90, (r, g, b)
    skin_like = (cheeks[:, 0] > cheeks[:, 1]) & (cheeks[:, 1] > cheeks[:, 2])
    assert skin_like.mean() > 0.9
    world = rgb[:8, :8].reshape(-1, 3).mean(0)           # the corner shows the dark blue world
    assert world[2] > world[0] and np.abs(np.array([r, g, b]) - world).max() > 60


# -- build_avatar in this process ---------------------------------------------------------------

def test_build_avatar_applies_the_identity_and_puts_materials_on_their_regions(open_head, empty_scene, tmp_path):
    inputs = read_avatar_inputs(make_capture(tmp_path / "anna", open_head))
    avatar = build_avatar(open_head, inputs, name="Anna")
    mesh = avatar["mesh"].data
    index = np.empty(len(mesh.vertices), np.int32)
    mesh.attributes[VERTEX_INDEX_ATTRIBUTE].data.foreach_get("value", index)
    co = np.empty(len(mesh.vertices) * 3, np.float32)
    mesh.vertices.foreach_get("co", co)
    expected = to_blender(shaped_vertices_m(open_head, inputs.shape))[index]
    np.testing.assert_allclose(co.reshape(-1, 3), expected, atol=1e-6)
    assert np.abs(expected - to_blender(open_head.template_m)[index]).max() > 0.001   # the identity is not the template

    slots = [material.name for material in mesh.materials]
    material_index = np.empty(len(mesh.polygons), np.int32)
    mesh.polygons.foreach_get("material_index", material_index)
    corners = np.empty(len(mesh.loops), np.int32)
    mesh.loops.foreach_get("vertex_index", corners)
    starts = np.empty(len(mesh.polygons), np.int32)
    mesh.polygons.foreach_get("loop_start", starts)
    for region, material in (("teeth", "Anna Teeth"), ("tongue", "Anna Tongue")):
        inside = np.logical_and.reduceat(open_head.regions[region][index[corners]], starts)
        assert inside.sum() > 50 and np.all(material_index[inside] == slots.index(material))
    skin = material_index == slots.index("Anna Skin")
    assert not np.any(np.logical_and.reduceat(open_head.regions["teeth"][index[corners]], starts) & skin)
    lips = np.empty(len(mesh.vertices), np.float32)
    mesh.attributes[LIPS_ATTRIBUTE].data.foreach_get("value", lips)
    np.testing.assert_array_equal(lips, open_head.regions["lips"][index])

    assert avatar["images"]["albedo"].colorspace_settings.name == "sRGB"           # a 16-bit PNG: Blender's default is linear
    assert avatar["images"]["coverage"].colorspace_settings.name == "Non-Color"
    assert avatar["images"]["albedo"].filepath == str(inputs.albedo)


# -- the operator in the installed extension ---------------------------------------------------------

@pytest.fixture(scope="module")
def worker_cache(installed):
    """The installed extension's worker finds the open head the tests built (the session cache)."""
    prefs = bpy.context.preferences.addons[installed].preferences
    prefs.cache_dir = os.environ["STUDIO_AVATAR_CACHE"]
    try:
        yield installed
    finally:
        prefs.cache_dir = ""


def test_build_operator_is_registered_with_tooltips_and_in_the_panel(worker_cache, empty_scene):
    rna = operator_rna("studio_avatar.build_avatar")
    assert rna.identifier == "STUDIO_AVATAR_OT_build_avatar" and rna.description
    for name in ("directory", "pack_images"):
        assert rna.properties[name].description
    layout = RecordingLayout()
    bpy.types.STUDIO_AVATAR_PT_capture.draw(DrawSelf(layout), bpy.context)
    assert ("operator", "studio_avatar.build_avatar", "Build Avatar from Capture") in layout.calls


def test_build_operator_adds_the_avatar_next_to_user_objects(worker_cache, empty_scene, open_head, tmp_path):
    capture = make_capture(tmp_path / "anna", open_head)
    bpy.ops.mesh.primitive_cube_add(size=0.5, location=(1.0, 2.0, 3.0))
    cube = bpy.context.object
    cube.name = "Studio Avatar"
    cube_vertices = [tuple(v.co) for v in cube.data.vertices]
    bpy.context.scene.cursor.location = (0.0, 0.5, 0.0)

    assert bpy.ops.studio_avatar.build_avatar(directory=str(capture) + os.sep, wait=True) == {"FINISHED"}

    assert (cube.name, tuple(cube.location), len(cube.material_slots)) == ("Studio Avatar", (1.0, 2.0, 3.0), 0)
    assert [tuple(v.co) for v in cube.data.vertices] == cube_vertices and cube.parent is None
    collection = bpy.data.collections["Studio Avatar"]
    head = bpy.context.view_layer.objects.active
    assert head.name == "Studio Avatar.001" and head.users_collection == (collection,)
    assert {obj.name for obj in bpy.context.selected_objects} == {"Studio Avatar.001", "Studio Avatar Rig", "Eye_L", "Eye_R"}
    assert tuple(head.parent.location) == (0.0, 0.5, 0.0)
    skin = head.material_slots[0].material
    albedo = next(node.image for node in skin.node_tree.nodes if node.type == "TEX_IMAGE" and node.label == "Albedo")
    assert albedo.filepath == str(capture / "textures" / "gmug.png") and albedo.colorspace_settings.name == "sRGB"
    assert collection["studio_avatar_albedo"] == "gmug"
    jobs = importlib.import_module(f"{MODULE}.operators.jobs")
    assert jobs.active_job() is None


def test_build_operator_reports_a_capture_that_is_not_ready(worker_cache, empty_scene, open_head, tmp_path):
    capture = make_capture(tmp_path / "anna", open_head, textures=())
    with pytest.raises(RuntimeError, match="no albedo texture yet"):
        bpy.ops.studio_avatar.build_avatar(directory=str(capture), wait=True)
    with pytest.raises(RuntimeError, match="Choose a capture folder first"):
        bpy.ops.studio_avatar.build_avatar(directory="", wait=True)
    assert len(bpy.data.objects) == 0
