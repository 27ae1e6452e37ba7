"""FLAME loading on a small synthetic file of the real file's structure (the real model is never used here).

The synthetic pickle references the same globals as FLAME's generic_model.pkl
(``chumpy.ch.Ch`` for shapedirs, ``scipy.sparse._csc.csc_matrix`` for the
joint regressor): fake modules exist only while it is written, so loading it
proves that neither chumpy nor scipy is needed.
"""

import io
import os
import pickle
import struct
import subprocess
import sys
import types

import numpy as np
import pytest
import torch

from studio_avatar.core.head.flame import load_flame
from studio_avatar.core.head.model import REGION_NAMES, HeadModelError

NUM_SHAPE, NUM_EXPR = 8, 4
HALF, CENTRE = 27, 6                     # 27 left vertices, their mirrors, 6 on the x = 0 plane: V = 60
JAW, EYE_A, EYE_B = 2, 3, 4              # file joint ids; which eye is the subject's left is decided by geometry


def load(path, **options):
    return load_flame(path, shapedirs_expressions=NUM_EXPR, **options)


def synthetic_flame(left_eye_id: int = EYE_A) -> dict:
    """FLAME-structured arrays (dense) and the expected vertex mirror; vertex order shuffled."""
    rng = np.random.default_rng(7)
    left = rng.uniform([0.01, -0.10, -0.08], [0.08, 0.08, 0.10], (HALF, 3))
    left[:2] = [[0.030, 0.030, 0.080], [0.036, 0.034, 0.072]]   # two eyeball vertices
    centre = rng.uniform([0, -0.10, -0.08], [0, 0.08, 0.10], (CENTRE, 3))
    points = np.concatenate([left, left * [-1, 1, 1], centre])
    mirror = np.concatenate([np.arange(HALF) + HALF, np.arange(HALF), 2 * HALF + np.arange(CENTRE)])
    V = len(points)

    right_eye_id = EYE_A + EYE_B - left_eye_id
    owner = np.where(points[:, 1] < -0.07, 0, 1)                  # root below, neck elsewhere
    owner[(points[:, 1] < -0.03) & (points[:, 1] >= -0.07) & (points[:, 2] > 0)] = JAW
    owner[[0, 1]], owner[[HALF, HALF + 1]] = left_eye_id, right_eye_id
    weights = np.eye(5)[owner]
    weights[owner == JAW] = [0, 0.25, 0.75, 0, 0]                # blended jaw/neck vertices

    regressor = np.zeros((5, V))                                  # root, neck, jaw from centre vertices; eyes from eyeballs
    centre_ids = 2 * HALF + np.arange(CENTRE)
    for joint, ids in enumerate([centre_ids[:2], centre_ids[2:4], centre_ids[4:], [0, 1], [HALF, HALF + 1]]):
        regressor[joint, ids] = 1 / len(ids)
    regressor[[3, 4]] = regressor[[left_eye_id, right_eye_id]]   # file order of the eyes

    shuffle = rng.permutation(V)                                   # new index of each constructed vertex
    inverse = np.argsort(shuffle)
    faces = rng.permutation(V)[: (V // 3) * 3].reshape(-1, 3)
    return {
        "v_template": points[inverse],
        "f": shuffle[faces].astype(np.uint32),
        "shapedirs": rng.normal(0, 1e-3, (V, 3, NUM_SHAPE + NUM_EXPR)),
        "posedirs": rng.normal(0, 1e-3, (V, 3, 36)),
        "J_regressor": regressor[:, inverse],
        "weights": weights[inverse],
        "kintree_table": np.array([[4294967295, 0, 1, 1, 1], [0, 1, 2, 3, 4]], np.int64),
        "J": regressor[:, inverse] @ points[inverse],
        "bs_style": "lbs",
        "bs_type": "lrotmin",
        "mirror": shuffle[mirror[inverse]],
    }


def _foreign_class(module: str, name: str) -> type:
    cls = type(name, (), {})
    cls.__module__, cls.__qualname__ = module, name
    return cls


class _Python2Pickler(pickle._Pickler):
    """Writes bytes as Python 2 ``str`` opcodes, the way FLAME's own file holds numpy's raw data."""

    dispatch = dict(pickle._Pickler.dispatch)

    def save_bytes(self, data: bytes) -> None:
        self.write(pickle.BINSTRING + struct.pack("<i", len(data)) + data)
        self.memoize(data)

    dispatch[bytes] = save_bytes


def _dumps(content, protocol) -> bytes:
    if protocol != "py2":
        return pickle.dumps(content, protocol=protocol)
    buffer = io.BytesIO()
    _Python2Pickler(buffer, 2).dump(content)
    return buffer.getvalue()


def write_flame_pickle(path, arrays: dict, protocol: int | str = "py2") -> None:
    """Pickle ``arrays`` as FLAME does: shapedirs in a chumpy Ch, J_regressor as a csc_matrix."""
    ch_module, csc_module = types.ModuleType("chumpy.ch"), types.ModuleType("scipy.sparse._csc")
    ch_module.Ch = _foreign_class("chumpy.ch", "Ch")
    csc_module.csc_matrix = _foreign_class("scipy.sparse._csc", "csc_matrix")
    shapedirs = ch_module.Ch()
    shapedirs.__dict__.update(x=arrays["shapedirs"], _dirty_vars=set(), dterms=("x",))
    dense = arrays["J_regressor"]
    cols, rows = np.nonzero(dense.T)                               # column-major entries, as CSC stores them
    regressor = csc_module.csc_matrix()
    regressor.__dict__.update(data=dense[rows, cols], indices=rows.astype(np.int32), maxprint=50, _shape=dense.shape,
                              indptr=np.concatenate([[0], np.cumsum(np.bincount(cols, minlength=dense.shape[1]))]).astype(np.int32))
    content = {key: value for key, value in arrays.items() if key != "mirror"}
    content.update(shapedirs=shapedirs, J_regressor=regressor)
    with pytest.MonkeyPatch.context() as patch:                    # the fake modules exist only while dumping
        for name in ("chumpy", "scipy", "scipy.sparse"):
            patch.setitem(sys.modules, name, types.ModuleType(name))
        patch.setitem(sys.modules, "chumpy.ch", ch_module)
        patch.setitem(sys.modules, "scipy.sparse._csc", csc_module)
        path.write_bytes(_dumps(content, protocol))
    assert "chumpy" not in sys.modules and "scipy.sparse._csc" not in sys.modules


@pytest.fixture
def flame_file(tmp_path):
    arrays = synthetic_flame()
    path = tmp_path / "FLAME2020" / "generic_model.pkl"
    path.parent.mkdir()
    write_flame_pickle(path, arrays)
    return path, arrays


@pytest.mark.parametrize("left_eye_id", [EYE_A, EYE_B])
@pytest.mark.parametrize("protocol", ["py2", 2, 4])
def test_pickle_maps_into_head_model(tmp_path, left_eye_id, protocol):
    arrays = synthetic_flame(left_eye_id)
    path = tmp_path / "flame2023.pkl"
    write_flame_pickle(path, arrays, protocol)
    model = load(path)
    order = [0, 1, JAW, left_eye_id, EYE_A + EYE_B - left_eye_id]

    assert model.source == "flame2023" and model.metadata["flame_version"] == "2023"
    assert model.metadata["uv"] == "none" and not model.uv_symmetric and len(model.metadata["sha256"]) == 64
    np.testing.assert_array_equal(model.template_m, arrays["v_template"].astype(np.float32))
    np.testing.assert_array_equal(model.faces, arrays["f"].astype(np.int32))
    assert (model.polygons[:, 3] == -1).all()
    np.testing.assert_array_equal(model.shape_basis, arrays["shapedirs"][:, :, :NUM_SHAPE].astype(np.float32))
    np.testing.assert_array_equal(model.expression_basis, arrays["shapedirs"][:, :, NUM_SHAPE:].astype(np.float32))
    assert model.expression_names == ["exp000", "exp001", "exp002", "exp003"]
    np.testing.assert_array_equal(model.joint_regressor, arrays["J_regressor"][order].astype(np.float32))
    np.testing.assert_array_equal(model.skin_weights, arrays["weights"][:, order].astype(np.float32))
    np.testing.assert_array_equal(model.vertex_mirror, arrays["mirror"])
    joints = model.joint_regressor @ model.template_m
    assert joints[3, 0] > 0 > joints[4, 0]                         # eye_left is on the subject's left (+x)
    assert "chumpy" not in sys.modules and "scipy" not in sys.modules


def test_npz_gives_the_same_model(tmp_path, flame_file):
    path, arrays = flame_file
    npz = tmp_path / "generic_model.npz"
    np.savez(npz, **{key: value for key, value in arrays.items() if key not in ("mirror", "bs_style", "bs_type")})
    from_pickle, from_npz = load(path), load(npz)
    for name in ("template_m", "faces", "shape_basis", "expression_basis", "joint_regressor", "skin_weights",
                 "pose_basis", "vertex_mirror", "uv", "face_uv"):
        np.testing.assert_array_equal(getattr(from_npz, name), getattr(from_pickle, name), err_msg=name)
    assert from_pickle.source == "flame2020" and from_npz.metadata["flame_version"] == "unknown"


def test_expression_limit_and_regions(flame_file):
    path, arrays = flame_file
    model = load(path, num_expression=2)
    assert model.num_shape == NUM_SHAPE and model.num_expression == 2 and len(model.expression_names) == 2
    with pytest.raises(HeadModelError, match="asked for 9 expression components; the file has 4"):
        load(path, num_expression=9)

    assert set(model.regions) == set(REGION_NAMES)
    dominant = arrays["weights"].argmax(1)
    np.testing.assert_array_equal(model.regions["eye_left"], dominant == EYE_A)
    np.testing.assert_array_equal(model.regions["eye_right"], dominant == EYE_B)
    stacked = np.stack(list(model.regions.values()))
    assert (stacked.sum(0) == 1).all()                             # every vertex in exactly one region
    assert model.regions["neck"][dominant == 0].all() and model.regions["face"].any()
    assert not model.regions["lips"].any() and not model.regions["teeth"].any()


def test_forward_matches_flame(flame_file):
    path, arrays = flame_file
    model = load(path)
    np.testing.assert_allclose(model.vertices()[0].numpy(), arrays["v_template"], atol=1e-6)

    # rotate the jaw: vertices skinned only to the neck move by the pose corrective alone, computed here in
    # FLAME's own (file) joint order; fully jaw-free vertices are checked, jaw vertices must move
    angle = 0.3
    pose = torch.zeros(1, 5, 3, dtype=torch.float64)
    pose[0, 2, 0] = angle
    posed = model.vertices(pose=pose)[0].numpy()
    rotation = np.array([[1, 0, 0], [0, np.cos(angle), -np.sin(angle)], [0, np.sin(angle), np.cos(angle)]])
    feature = np.zeros((4, 3, 3))
    feature[JAW - 1] = rotation - np.eye(3)
    corrective = np.einsum("vck,k->vc", arrays["posedirs"], feature.reshape(-1))
    untouched = arrays["weights"][:, JAW] == 0
    np.testing.assert_allclose(posed[untouched], (arrays["v_template"] + corrective)[untouched], atol=1e-6)
    jaw = arrays["weights"][:, JAW] > 0
    jaw_joint = arrays["J_regressor"][JAW] @ arrays["v_template"]
    rigid = (arrays["v_template"] + corrective - jaw_joint) @ rotation.T + jaw_joint
    blend = arrays["weights"][:, [JAW]]
    expected = blend * rigid + (1 - blend) * (arrays["v_template"] + corrective)
    np.testing.assert_allclose(posed[jaw], expected[jaw], atol=1e-6)
    assert np.abs(posed[jaw] - arrays["v_template"][jaw]).max() > 1e-3


class _Shell:
    """Pickles as a call of ``call(*args)``, the way a tampered model file would run code."""

    def __init__(self, call, *args):
        self.call, self.args = call, args

    def __reduce__(self):
        return self.call, self.args


@pytest.mark.parametrize("named, payload, protocol", [
    ("system", lambda marker: _Shell(os.system, f"echo pwned > {marker}"), 2),
    ("eval", lambda marker: _Shell(eval, f"open({str(marker)!r}, 'w')"), 2),
    ("subprocess.Popen", lambda marker: _Shell(subprocess.Popen, ["touch", str(marker)]), 4),  # 2 would say commands.Popen
])
def test_code_execution_is_refused(tmp_path, flame_file, named, payload, protocol):
    _, arrays = flame_file
    marker = tmp_path / "pwned"
    path = tmp_path / "flame.pkl"
    path.write_bytes(pickle.dumps({**arrays, "v_template": payload(marker)}, protocol=protocol))
    with pytest.raises(HeadModelError, match=rf"flame\.pkl: refusing to load: the file asks to import \S*{named}, "
                                             "which a FLAME model never contains"):
        load(path)
    assert not marker.exists()


@pytest.mark.parametrize("change, message", [
    (lambda a: {"v_template": a["v_template"]}, "missing 'f', 'shapedirs', 'posedirs', 'J_regressor', 'weights', 'kintree_table'"),
    (lambda a: [1, 2, 3], "the file holds a list, not a dict of arrays"),
    (lambda a: {**a, "weights": a["weights"][:, :4]}, r"'weights' is a float64 array of shape \(60, 4\), expected numbers of shape \(60, 5\)"),
    (lambda a: {**a, "f": a["f"] + 60}, "'f' must index the 60 vertices"),
    (lambda a: {**a, "kintree_table": np.array([[-1, 0, 1, 2, 3], [0, 1, 2, 3, 4]])}, r"its kinematic tree is not root -> neck -> \(jaw, eyes\)"),
])
def test_wrong_structure_is_explained(tmp_path, flame_file, change, message):
    _, arrays = flame_file
    path = tmp_path / "generic_model.pkl"
    path.write_bytes(pickle.dumps(change({k: v for k, v in arrays.items() if k != "mirror"}), protocol=2))
    with pytest.raises(HeadModelError, match=rf"generic_model\.pkl: not a FLAME model: {message}; expected the FLAME 2020/2023 generic_model\.pkl"):
        load(path)


def test_default_split_needs_flame_width(flame_file):
    path, _ = flame_file
    with pytest.raises(HeadModelError, match=r"'shapedirs' has 12 components, expected shape \+ 100 expression"):
        load_flame(path)


def test_unreadable_files_are_explained(tmp_path, flame_file):
    path, _ = flame_file
    text = tmp_path / "notes.pkl"
    text.write_text("hello, this is not a model\n")
    truncated = tmp_path / "truncated.pkl"
    truncated.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    broken_zip = tmp_path / "broken.npz"
    broken_zip.write_bytes(b"PK\x03\x04 not really a zip")
    for bad in (text, truncated, broken_zip):
        with pytest.raises(HeadModelError, match=rf"{bad.name}: not a FLAME model: cannot read it as .*; expected the FLAME"):
            load(bad)
    with pytest.raises(HeadModelError, match="FLAME model file not found; download FLAME"):
        load(tmp_path / "absent.pkl")


def _write_obj(path, vertices, faces, uv):
    lines = [f"v {x} {y} {z}" for x, y, z in vertices] + [f"vt {u} {v}" for u, v in uv]
    lines += ["f " + " ".join(f"{i + 1}/{i + 1}" for i in face) for face in faces]
    path.write_text("\n".join(lines) + "\n")


def test_uv_template_and_symmetry(tmp_path, flame_file):
    path, arrays = flame_file
    vertices, faces = arrays["v_template"], arrays["f"].astype(np.int64)
    mirrored_uv = np.stack([0.5 + 4 * vertices[:, 0], 0.5 + 4 * vertices[:, 1]], 1)   # mirror vertex: (1 - u, v)
    obj = tmp_path / "head_template.obj"
    _write_obj(obj, vertices, faces, mirrored_uv)
    model = load(path, uv_template_path=obj)
    assert model.uv_symmetric and model.metadata["uv_mirror_fraction"] == 1.0 and model.metadata["uv"] == str(obj)
    np.testing.assert_allclose(model.uv[model.face_uv], mirrored_uv[faces], atol=1e-6)
    assert model.texel_mirror_map(4).shape == (4, 4)

    lopsided = tmp_path / "lopsided.npz"
    np.savez(lopsided, vt=mirrored_uv + [0.01, 0], ft=faces)
    assert not load(path, uv_template_path=lopsided).uv_symmetric

    other = tmp_path / "other.obj"
    _write_obj(other, vertices, faces[::-1], mirrored_uv)
    with pytest.raises(HeadModelError, match=r"other.obj: not a FLAME UV template: its triangles \(20\) are not the model's \(20\) in the same order"):
        load(path, uv_template_path=other)
    quads = tmp_path / "quads.obj"
    quads.write_text("vt 0 0\nf 1/1 2/1 3/1 4/1\n")
    with pytest.raises(HeadModelError, match="quads.obj: not a FLAME UV template: .*triangles with texture coordinates"):
        load(path, uv_template_path=quads)



def test_fingerprint_follows_the_files_and_the_expression_count(tmp_path, flame_file):
    """Fits, textures and avatars are checked against it: another FLAME file must not pass for this one."""
    path, arrays = flame_file
    first = load(path).metadata["fingerprint"]
    assert load(path).metadata["fingerprint"] == first
    assert load(path, num_expression=1).metadata["fingerprint"] != first
    changed = dict(arrays, v_template=arrays["v_template"] * 1.01)
    other = tmp_path / "other" / "generic_model.pkl"
    other.parent.mkdir()
    write_flame_pickle(other, changed)
    assert load(other).metadata["fingerprint"] != first
