"""`studio-avatar export`: a built avatar as .glb, .fbx and .npz, re-imported by Blender's own importers.

One avatar .blend is built once (from a synthesized capture, as tests/test_build.py
does) and exported in this process; each re-import starts from an empty file.
"""

import json
from pathlib import Path

import bpy
import numpy as np
import pytest
from test_build import SHAPE, make_capture

from studio_avatar.core.avatar_inputs import read_avatar_inputs
from studio_avatar.core.blender.avatar import DEFAULT_NAME, write_avatar_blend
from studio_avatar.core.blender.export import ARKIT_BLENDSHAPES, export_avatar
from studio_avatar.core.errors import InputError

BONES = {"root", "neck", "jaw", "eye_L", "eye_R"}


@pytest.fixture(scope="module")
def avatar(tmp_path_factory):
    """A built avatar .blend and the facts of its head mesh (world-space rest positions, shape keys)."""
    from studio_avatar.core.head.open_head import get_open_head

    model = get_open_head(with_landmarks=False)
    root = tmp_path_factory.mktemp("export")
    capture = make_capture(root / "anna", model, textures=("delit_classic",))
    blend = root / "avatar.blend"
    write_avatar_blend(model, read_avatar_inputs(capture), blend)
    bpy.ops.wm.open_mainfile(filepath=str(blend), load_ui=False)
    head = bpy.data.objects[DEFAULT_NAME]
    return {"capture": capture, "blend": blend, "root": root, **mesh_facts(head)}


def mesh_facts(obj) -> dict:
    """World-space vertex positions of the basis and of the jawOpen key, and the shape key names."""
    keys = obj.data.shape_keys.key_blocks
    world = np.array(obj.matrix_world)

    def positions(key):
        co = np.empty(len(key.data) * 3, np.float32)
        key.data.foreach_get("co", co)
        return co.reshape(-1, 3) @ world[:3, :3].T + world[:3, 3]

    return {"vertices": len(obj.data.vertices), "keys": {key.name for key in keys},
            "basis": positions(keys[0]), "jaw_open": positions(keys["jawOpen"])}


def reimport(path: Path) -> tuple:
    """Import ``path`` into an empty file; returns (the shape-keyed mesh with most vertices, the armature)."""
    bpy.ops.wm.read_homefile(use_empty=True, use_factory_startup=True)
    if path.suffix == ".glb":
        bpy.ops.import_scene.gltf(filepath=str(path), merge_vertices=True)
    else:
        bpy.ops.import_scene.fbx(filepath=str(path))
    meshes = [obj for obj in bpy.data.objects if obj.type == "MESH" and obj.data.shape_keys]
    armatures = [obj for obj in bpy.data.objects if obj.type == "ARMATURE"]
    assert len(armatures) == 1
    return max(meshes, key=lambda obj: len(obj.data.vertices)), armatures[0]


def hausdorff_m(a: np.ndarray, b: np.ndarray) -> float:
    """Symmetric Hausdorff distance between two point sets (brute force in chunks; a few thousand points)."""
    def one_way(p, q):
        return max(float(np.sqrt(((chunk[:, None] - q[None]) ** 2).sum(-1)).min(1).max()) for chunk in np.array_split(p, 16))
    return max(one_way(a, b), one_way(b, a))


def jaw_open_length(facts: dict) -> float:
    return float(np.linalg.norm(facts["jaw_open"] - facts["basis"], axis=1).max())


@pytest.mark.parametrize("suffix", [".glb", ".fbx"])
def test_exported_avatar_reimports_with_its_vertices_shape_keys_and_bones(avatar, suffix):
    out = avatar["root"] / f"anna{suffix}"
    result = export_avatar(avatar["blend"], out)
    assert result["path"] == str(out) and result["format"] == suffix[1:] and out.is_file()
    assert result["vertices"] == avatar["vertices"] and set(result["bones"]) == BONES
    assert result["arkit"] and sorted(result["shape_keys"]) == sorted(ARKIT_BLENDSHAPES)
    assert result["objects"] == ["Eye_L", "Eye_R", DEFAULT_NAME, f"{DEFAULT_NAME} Rig"]
    assert sorted(p.name for p in out.parent.iterdir() if p.name.startswith(".")) == []   # no temp file left

    head, armature = reimport(out)
    facts = mesh_facts(head)
    assert facts["keys"] == avatar["keys"] == {"Basis", *ARKIT_BLENDSHAPES}
    assert {bone.name for bone in armature.data.bones} == BONES
    assert {group.name for group in head.vertex_groups} <= BONES and head.find_armature() == armature
    # glTF stores a vertex per distinct (position, normal, UV) and per material: the honest comparison is the set of
    # distinct rest positions (the importer's merge_vertices joins them back), the same for FBX which keeps vertices
    assert facts["vertices"] == avatar["vertices"]
    assert len(np.unique(facts["basis"], axis=0)) == facts["vertices"]
    assert hausdorff_m(facts["basis"], avatar["basis"]) < 1e-5
    assert jaw_open_length(facts) == pytest.approx(jaw_open_length(avatar), rel=1e-3)
    assert jaw_open_length(facts) > 0.005


def test_parameters_npz_holds_the_fit_and_the_avatar_names(avatar):
    out = avatar["root"] / "params.npz"
    result = export_avatar(avatar["blend"], out)
    assert result["format"] == "npz" and result["capture"] == str(avatar["capture"]) and result["frames"] == 1
    with np.load(out, allow_pickle=False) as data:
        np.testing.assert_array_equal(data["shape"][: len(SHAPE)], SHAPE)
        assert data["expression"].shape == (1, 52) and data["pose"].shape[0] == 1
        assert sorted(data["expression_names"].tolist()) == sorted(ARKIT_BLENDSHAPES)
        assert set(data["bone_names"].tolist()) == BONES and str(data["model_source"]) == "open-head"
        assert "landmarks_px" not in data.files


def test_existing_output_is_refused_without_overwrite(avatar, tmp_path):
    out = tmp_path / "anna.glb"
    out.write_bytes(b"precious")
    with pytest.raises(InputError, match="already exists.*--overwrite"):
        export_avatar(avatar["blend"], out)
    assert out.read_bytes() == b"precious"
    with pytest.raises(InputError, match=r"must end in \.glb, \.fbx, \.npz"):
        export_avatar(avatar["blend"], tmp_path / "anna.obj")


def test_a_blend_without_an_avatar_is_refused(tmp_path):
    bpy.ops.wm.read_homefile(use_empty=True, use_factory_startup=True)
    bpy.ops.mesh.primitive_cube_add()
    blend = tmp_path / "cube.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(blend))
    with pytest.raises(InputError, match="holds no Studio Avatar"):
        export_avatar(blend, tmp_path / "cube.glb")
    assert not (tmp_path / "cube.glb").exists()
    with pytest.raises(InputError, match="no such .blend file"):
        export_avatar(tmp_path / "missing.blend", tmp_path / "x.fbx")


def test_cli_export_prints_the_result_and_refuses_to_overwrite(avatar, cli):
    out = avatar["root"] / "cli" / "anna.fbx"
    done = cli("export", str(avatar["blend"]), "-o", str(out))
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)    # Blender's chatter stays off stdout
    assert result["path"] == str(out) and result["vertices"] == avatar["vertices"] and out.is_file()
    refused = cli("export", str(avatar["blend"]), "-o", str(out))
    assert refused.returncode == 2 and refused.stdout == "" and "--overwrite" in refused.stderr
    assert "Traceback" not in refused.stderr
