"""Load the official FLAME 2020 / 2023 model file into a ``HeadModel``, without running pickle code.

FLAME ships as a Python 2 pickle holding numpy arrays, a chumpy ``Ch`` (the
shape and expression directions) and a scipy.sparse matrix (the joint
regressor). This module reads it with an unpickler that admits only numpy's
array reconstruction and inert stand-ins for the chumpy and scipy classes
(neither package is imported), so a tampered file fails with a HeadModelError
instead of executing code. The same arrays are also read from an ``.npz``.

It owns the FLAME -> HeadModel mapping: shape/expression split, joint order,
mirror map, approximate region masks and the optional FLAME UV template. It
does not cache or save the model (callers do, with ``HeadModel.save``).
"""

from __future__ import annotations

import hashlib

import math
import os
import pickle
from pathlib import Path

import numpy as np

from ..hashing import file_sha256
from .model import JOINT_NAMES, REGION_NAMES, HeadModel, HeadModelError

FLAME_EXPRESSIONS = 100  # trailing ``shapedirs`` components that are expressions in FLAME 2020 and 2023
EXPECTED_FILE = "expected the FLAME 2020/2023 generic_model.pkl or flame2023.pkl"
UV_SYMMETRY_TOLERANCE = 2e-3
_J = len(JOINT_NAMES)
_REQUIRED = ("v_template", "f", "shapedirs", "posedirs", "J_regressor", "weights", "kintree_table")
_MIRROR_CHUNK = 1024

# What numpy arrays unpickle through, plus inert builtins a protocol-2 pickle needs: sets (chumpy state) and
# bytes as Python 3 writes them. Everything else is refused, except the chumpy and scipy.sparse stand-ins.
_ALLOWED_GLOBALS = {("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode")} | {
    (module, name) for module in ("numpy.core.multiarray", "numpy._core.multiarray") for name in ("_reconstruct", "scalar")} | {
    (module, name) for module in ("builtins", "__builtin__") for name in ("set", "frozenset")}


class _ChumpyStandIn:
    """Inert stand-in for any pickled chumpy object: keeps the pickled state; its value is ``state['x']``."""

    state: dict = {}

    def __setstate__(self, state: object) -> None:
        self.state = state if isinstance(state, dict) else {}

    def array(self) -> np.ndarray:
        return np.asarray(self.state["x"])


class _SparseStandIn:
    """Inert stand-in for a pickled scipy.sparse CSC/CSR matrix; densified with numpy alone."""

    state: dict = {}
    format = "csc"

    def __setstate__(self, state: object) -> None:
        self.state = state if isinstance(state, dict) else {}

    def array(self) -> np.ndarray:
        state = self.state
        shape = tuple(int(n) for n in state.get("_shape", state.get("shape")))
        data, indices, indptr = (np.asarray(state[key]) for key in ("data", "indices", "indptr"))
        major = np.repeat(np.arange(len(indptr) - 1), np.diff(indptr))   # column (csc) or row (csr) of each entry
        rows, cols = (indices, major) if state.get("format", self.format) == "csc" else (major, indices)
        dense = np.zeros(shape, np.float64)
        np.add.at(dense, (rows, cols), data)
        return dense


class _CsrStandIn(_SparseStandIn):
    format = "csr"


_SPARSE_CLASSES = {"csc_matrix": _SparseStandIn, "csc_array": _SparseStandIn, "csr_matrix": _CsrStandIn, "csr_array": _CsrStandIn}


class _FlameUnpickler(pickle.Unpickler):
    """Admits numpy arrays, chumpy and scipy.sparse stand-ins, and nothing else."""

    def __init__(self, handle, path: Path) -> None:
        super().__init__(handle, encoding="latin1")   # Python 2 strings hold numpy's raw bytes
        self.path = path

    def find_class(self, module: str, name: str):
        if (module, name) in _ALLOWED_GLOBALS:
            return super().find_class(module, name)
        if module == "chumpy" or module.startswith("chumpy."):
            return _ChumpyStandIn
        if module.startswith("scipy.sparse") and name in _SPARSE_CLASSES:
            return _SPARSE_CLASSES[name]
        raise HeadModelError(f"{self.path}: refusing to load: the file asks to import {module}.{name}, "
                             "which a FLAME model never contains")


def load_flame(model_path: str | os.PathLike, uv_template_path: str | os.PathLike | None = None,
               num_expression: int | None = None, *, shapedirs_expressions: int = FLAME_EXPRESSIONS) -> HeadModel:
    """Read a FLAME model file (``.pkl`` or ``.npz``) into a validated ``HeadModel``.

    uv_template_path: FLAME's UV template (``head_template.obj``, or an ``.npz``
    with ``vt`` and ``ft``); without it the UVs are a cylindrical placeholder and
    ``metadata["uv"]`` is ``"none"``. num_expression keeps the first components
    only. shapedirs_expressions: how many trailing ``shapedirs`` components are
    expressions (100 in FLAME 2020 and 2023; tests use small files).
    """
    path = Path(model_path)
    if not path.is_file():
        raise HeadModelError(f"{path}: FLAME model file not found; download FLAME 2020 or 2023 from "
                             "https://flame.is.tue.mpg.de (after accepting its license) and select generic_model.pkl or flame2023.pkl")
    arrays = _flame_arrays(_read_file(path), path, shapedirs_expressions)
    template = arrays["v_template"].astype(np.float32)
    faces = arrays["f"].astype(np.int32)
    joints_m = arrays["J_regressor"] @ arrays["v_template"]
    order = _joint_order(arrays["kintree_table"].astype(np.int64), joints_m, path)
    weights = arrays["weights"][:, order]
    num_shape = arrays["shapedirs"].shape[2] - shapedirs_expressions
    expressions = arrays["shapedirs"][:, :, num_shape:]
    if num_expression is not None:
        if not 0 < num_expression <= expressions.shape[2]:
            raise HeadModelError(f"{path}: asked for {num_expression} expression components; the file has {expressions.shape[2]}, "
                                 f"ask for 1 to {expressions.shape[2]}")
        expressions = expressions[:, :, :num_expression]
    # FLAME's pose feature is (R_j - I) of joints 1..4 in file order, 9 entries each: reorder the blocks with the joints
    V = len(template)
    pose_basis = arrays["posedirs"].reshape(V, 3, _J - 1, 9)[:, :, order[1:] - 1].reshape(V, 3, 9 * (_J - 1))
    mirror, mirror_error_m = _vertex_mirror(template)
    metadata = {"flame_file": str(path), "sha256": file_sha256(path), "flame_version": _flame_version(path),
                "mirror_max_error_m": mirror_error_m,
                "regions": "approximate, from geometry and skin weights; lips, mouth_interior, teeth, tongue are empty"}
    if uv_template_path is None:
        uv, face_uv, uv_symmetric = _cylinder_uv(template), faces, False
        metadata["uv"] = "none"
    else:
        uv, face_uv = _read_uv_template(Path(uv_template_path), faces)
        face_uv = face_uv.astype(np.int32)
        fraction = _uv_mirror_fraction(uv, faces, face_uv, mirror)
        uv_symmetric = fraction >= 0.99
        metadata.update(uv=str(uv_template_path), uv_mirror_fraction=fraction)
    # what decides the model: both files and the expression count (fits and textures are checked against it)
    identity = [metadata["sha256"], file_sha256(uv_template_path) if uv_template_path is not None else "-",
                str(expressions.shape[2]), str(shapedirs_expressions)]
    metadata["fingerprint"] = hashlib.sha256("\0".join(identity).encode()).hexdigest()
    version = metadata["flame_version"]
    return HeadModel(
        source=f"flame{version}" if version != "unknown" else "flame",
        template_m=template, faces=faces, polygons=_pad(faces),
        uv=uv.astype(np.float32), face_uv=face_uv, polygon_uv=_pad(face_uv),
        shape_basis=arrays["shapedirs"][:, :, :num_shape].astype(np.float32),
        expression_basis=expressions.astype(np.float32),
        expression_names=[f"exp{k:03d}" for k in range(expressions.shape[2])],
        joint_regressor=arrays["J_regressor"][order].astype(np.float32),
        skin_weights=weights.astype(np.float32),
        vertex_mirror=mirror,
        regions=_regions(template, weights, joints_m[order]),
        uv_symmetric=uv_symmetric,
        pose_basis=pose_basis.astype(np.float32),
        metadata=metadata,
    ).validate()


def _read_file(path: Path) -> object:
    with open(path, "rb") as handle:
        is_zip = handle.read(2) == b"PK"   # an .npz is a zip archive; anything else must be a pickle
        handle.seek(0)
        try:
            if is_zip:
                with np.load(handle, allow_pickle=False) as npz:
                    return {key: npz[key] for key in npz.files}
            return _FlameUnpickler(handle, path).load()
        except HeadModelError:
            raise
        except Exception as exc:  # a damaged pickle or zip can raise nearly any exception type
            raise HeadModelError(f"{path}: not a FLAME model: cannot read it as {'.npz' if is_zip else 'a pickle'} "
                                 f"({type(exc).__name__}: {exc}); {EXPECTED_FILE}") from None


def _flame_arrays(data: object, path: Path, shapedirs_expressions: int) -> dict[str, np.ndarray]:
    """The FLAME arrays as plain numpy, after checking that every one is present and of the right shape."""
    def fail(problem: str) -> HeadModelError:
        return HeadModelError(f"{path}: not a FLAME model: {problem}; {EXPECTED_FILE}")

    if not isinstance(data, dict):
        raise fail(f"the file holds a {type(data).__name__}, not a dict of arrays")
    missing = [key for key in _REQUIRED if key not in data]
    if missing:
        raise fail("missing " + ", ".join(map(repr, missing)))
    arrays = {key: _as_array(data[key], path) for key in _REQUIRED}
    V = len(arrays["v_template"]) if arrays["v_template"].ndim else 0
    expected = {"v_template": (V, 3), "f": (None, 3), "shapedirs": (V, 3, None), "posedirs": (V, 3, 9 * (_J - 1)),
                "J_regressor": (_J, V), "weights": (V, _J), "kintree_table": (2, _J)}
    for key, shape in expected.items():
        array = arrays[key]
        if array.dtype.kind not in "iuf" or array.ndim != len(shape) or any(n not in (None, m) for n, m in zip(shape, array.shape)):
            want = "(" + ", ".join("N" if n is None else str(n) for n in shape) + ")"
            raise fail(f"{key!r} is a {array.dtype} array of shape {array.shape}, expected numbers of shape {want}")
    if arrays["f"].size == 0 or arrays["f"].min() < 0 or arrays["f"].max() >= V:
        raise fail(f"'f' must index the {V} vertices")
    if arrays["shapedirs"].shape[2] <= shapedirs_expressions:
        raise fail(f"'shapedirs' has {arrays['shapedirs'].shape[2]} components, expected shape + {shapedirs_expressions} expression")
    return arrays


def _as_array(value: object, path: Path) -> np.ndarray:
    try:
        return value.array() if isinstance(value, (_ChumpyStandIn, _SparseStandIn)) else np.asarray(value)
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise HeadModelError(f"{path}: not a FLAME model: a chumpy or sparse array is damaged ({exc!r}); {EXPECTED_FILE}") from None


def _joint_order(kintree: np.ndarray, joints_m: np.ndarray, path: Path) -> np.ndarray:
    """File joint ids in JOINT_NAMES order; the eye with +x is the subject's left."""
    parent_of = np.full(_J, -2)
    if np.array_equal(np.sort(kintree[1]), np.arange(_J)):
        parent_of[kintree[1]] = np.where((kintree[0] >= 0) & (kintree[0] < _J), kintree[0], -1)
    neck = np.flatnonzero(parent_of == 0)
    heads = np.flatnonzero(parent_of == neck[0]) if len(neck) == 1 else []
    if parent_of[0] != -1 or len(heads) != 3:
        raise HeadModelError(f"{path}: not a FLAME model: its kinematic tree is not root -> neck -> (jaw, eyes); {EXPECTED_FILE}")
    eye_right, jaw, eye_left = heads[np.argsort(joints_m[heads, 0])]   # the jaw lies between the eyes in x
    return np.array([0, neck[0], jaw, eye_left, eye_right])


def _vertex_mirror(template_m: np.ndarray) -> tuple[np.ndarray, float]:
    """Nearest neighbour of every x-flipped vertex, made an involution; and the worst mirror distance in metres.

    Mutual nearest pairs are kept; the rest are matched again among themselves
    until none is left. The flipped distance is symmetric, so the closest open
    pair is always mutual and every round closes at least one pair.
    """
    import torch

    points = torch.as_tensor(template_m, dtype=torch.float64)
    flipped = points * torch.tensor([-1.0, 1.0, 1.0], dtype=torch.float64)
    mirror = np.full(len(points), -1, np.int64)
    position = np.zeros(len(points), np.int64)
    open_ids = np.arange(len(points))
    while len(open_ids):
        candidates = points[open_ids]
        nearest = open_ids[np.concatenate([
            torch.cdist(flipped[open_ids[s:s + _MIRROR_CHUNK]], candidates).argmin(1).numpy()
            for s in range(0, len(open_ids), _MIRROR_CHUNK)])]
        position[open_ids] = np.arange(len(open_ids))
        mutual = nearest[position[nearest]] == open_ids
        mirror[open_ids[mutual]] = nearest[mutual]
        open_ids = open_ids[~mutual]
    error_m = np.linalg.norm(template_m[mirror] * np.array([-1, 1, 1], np.float32) - template_m, axis=1).max()
    return mirror, float(error_m)


def _regions(template_m: np.ndarray, weights: np.ndarray, joints_m: np.ndarray) -> dict[str, np.ndarray]:
    """Approximate region masks from skin weights and head proportions (joints in JOINT_NAMES order).

    eyes: vertices skinned mostly to an eye joint. neck: skinned mostly to the
    root, or below the chin and not to the jaw. face: in front of the jaw hinge
    (the ears sit just behind it) and below a hairline estimated from facial
    thirds. ears: the laterally outermost remaining vertices at ear height.
    scalp: the rest. FLAME has no teeth or tongue; lips and mouth interior are
    left empty.
    """
    dominant = weights.argmax(1)
    x, y, z = template_m.T
    regions = {name: np.zeros(len(template_m), bool) for name in REGION_NAMES}
    regions["eye_left"], regions["eye_right"] = dominant == 3, dominant == 4
    eyes = regions["eye_left"] | regions["eye_right"]
    eye_y, (_, jaw_y, jaw_z) = joints_m[3:, 1].mean(), joints_m[2]
    chin_y = y[dominant == 2].min() if (dominant == 2).any() else jaw_y
    eye_to_chin = eye_y - chin_y
    regions["neck"] = ~eyes & ((dominant == 0) | ((y < chin_y) & (dominant != 2)))
    rest = ~eyes & ~regions["neck"]
    regions["face"] = rest & (z > jaw_z) & (y < eye_y + 0.6 * eye_to_chin)
    rest &= ~regions["face"]
    lateral = np.abs(x) > 0.85 * np.abs(x[~eyes]).max()
    regions["ears"] = rest & lateral & (y > chin_y + 0.35 * eye_to_chin) & (y < eye_y + 0.15 * eye_to_chin)
    regions["scalp"] = rest & ~regions["ears"]
    return regions


def _read_uv_template(path: Path, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(uv, face_uv) from FLAME's head_template.obj or an .npz with ``vt``/``ft``; its triangles must be the model's."""
    def fail(problem: str) -> HeadModelError:
        return HeadModelError(f"{path}: not a FLAME UV template: {problem}; use head_template.obj from the same FLAME release")

    try:
        if path.suffix.lower() == ".npz":
            with np.load(path, allow_pickle=False) as npz:
                uv, face_uv = npz["vt"][:, :2].astype(np.float64), npz["ft"].astype(np.int64)
                face_vertices = npz["f"].astype(np.int64) if "f" in npz.files else faces
        else:
            uv_rows, corner_rows = [], []
            for line in path.read_text(errors="replace").splitlines():
                kind, _, rest = line.strip().partition(" ")
                if kind == "vt":
                    uv_rows.append(rest.split()[:2])
                elif kind == "f":
                    corner_rows.append([corner.split("/")[:2] for corner in rest.split()])
            uv = np.array(uv_rows, np.float64).reshape(-1, 2)
            corners = np.array(corner_rows, np.int64) - 1   # obj indices are 1-based
            if corners.ndim != 3 or corners.shape[1:] != (3, 2):
                raise fail("its faces must be triangles with texture coordinates (f v/vt v/vt v/vt)")
            face_vertices, face_uv = corners[:, :, 0], corners[:, :, 1]
    except (OSError, KeyError, ValueError, IndexError) as exc:
        raise fail(f"cannot read triangles with texture coordinates ({type(exc).__name__}: {exc})") from None
    if face_uv.shape != faces.shape or not np.array_equal(face_vertices, faces):
        raise fail(f"its triangles ({len(face_vertices)}) are not the model's ({len(faces)}) in the same order")
    if len(uv) == 0 or face_uv.min() < 0 or face_uv.max() >= len(uv):
        raise fail("its triangles index texture coordinates it does not have")
    return uv, face_uv


def _uv_mirror_fraction(uv: np.ndarray, faces: np.ndarray, face_uv: np.ndarray, mirror: np.ndarray) -> float:
    """Fraction of used vertices whose mirror vertex has UV (1 - u, v); seam vertices keep one of their UVs."""
    vertex_uv = np.full((len(mirror), 2), np.nan)
    vertex_uv[faces.ravel()] = uv[face_uv.ravel()]
    used = ~np.isnan(vertex_uv[:, 0]) & ~np.isnan(vertex_uv[mirror, 0])
    expected = np.stack([1 - vertex_uv[:, 0], vertex_uv[:, 1]], 1)
    close = (np.abs(vertex_uv[mirror] - expected) < UV_SYMMETRY_TOLERANCE).all(1)
    return float(close[used].mean()) if used.any() else 0.0


def _cylinder_uv(template_m: np.ndarray) -> np.ndarray:
    """Placeholder per-vertex UV: angle around +y (face at u = 0.5, seam at the back) and normalised height."""
    x, y, z = template_m.T.astype(np.float64)
    return np.stack([0.5 + np.arctan2(x, z) / (2 * math.pi), (y - y.min()) / max(np.ptp(y), 1e-9)], 1)


def _pad(triangles: np.ndarray) -> np.ndarray:
    return np.concatenate([triangles, np.full((len(triangles), 1), -1, triangles.dtype)], 1)


def _flame_version(path: Path) -> str:
    names = f"{path.parent.name}/{path.name}".lower()
    return "2023" if "2023" in names else "2020" if "2020" in names else "unknown"
