"""The ``HeadModel`` type: a FLAME-structured, rigged, textured head, and its torch forward function.

Conventions (same as FLAME): metres; +y up, +z forward (the face looks along
+z), +x is the subject's left. Joints follow FLAME's tree
root -> neck -> (jaw, eye_left, eye_right); a pose is one axis-angle vector per
joint, relative to its parent, the root's being the global head rotation.

This module owns the data layout, validation, (de)serialization (safetensors +
json, no pickle) and the forward function. It does not build models (see
open_head.py, flame.py) and does not touch Blender (see core/blender/head.py).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..atomic import atomic_path, atomic_write_json
from ..errors import StudioAvatarError

JOINT_NAMES = ("root", "neck", "jaw", "eye_left", "eye_right")
JOINT_PARENTS = (-1, 0, 1, 1, 1)
REGION_NAMES = ("face", "scalp", "ears", "neck", "eye_left", "eye_right", "lips", "mouth_interior", "teeth", "tongue")
NUM_LANDMARKS = 478
FORMAT_VERSION = 1


class HeadModelError(StudioAvatarError):
    """A head model file is missing, damaged or of the wrong kind."""


@dataclass
class HeadModel:
    source: str                           # "open-head", "flame2020", "flame2023", "flame" (version unknown), "synthetic"
    template_m: np.ndarray                # (V, 3) float32 rest vertices, metres
    faces: np.ndarray                     # (F, 3) int32 triangles (what torch and rasterizers use)
    polygons: np.ndarray                  # (P, 4) int32 quads for Blender; triangles have -1 as 4th index
    uv: np.ndarray                        # (T, 2) float32 texture coordinates in [0, 1], v up
    face_uv: np.ndarray                   # (F, 3) int32 indices into ``uv`` per triangle corner
    polygon_uv: np.ndarray                # (P, 4) int32 indices into ``uv`` per polygon corner (-1 padded)
    shape_basis: np.ndarray               # (V, 3, S) float32 identity directions, metres per unit coefficient
    expression_basis: np.ndarray          # (V, 3, E) float32 expression directions, metres per unit coefficient
    expression_names: list[str]           # E names (ARKit names for the open head)
    joint_regressor: np.ndarray           # (J, V) float32: joints = regressor @ shaped vertices
    skin_weights: np.ndarray              # (V, J) float32 linear blend skinning weights, rows sum to 1
    vertex_mirror: np.ndarray             # (V,) int64: index of the left/right mirrored vertex (involution)
    regions: dict[str, np.ndarray]        # name -> (V,) bool vertex masks (see REGION_NAMES)
    uv_symmetric: bool = False            # True: the mirror of texel (u, v) is (1 - u, v)
    pose_basis: np.ndarray | None = None  # (V, 3, 9 * (J - 1)) FLAME pose correctives, or None
    landmark_faces: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))        # (L,) triangle per landmark
    landmark_barycentrics: np.ndarray = field(default_factory=lambda: np.zeros((0, 3), np.float32))  # (L, 3)
    metadata: dict[str, Any] = field(default_factory=dict)  # provenance, landmark consistency report, ...
    joint_names: tuple[str, ...] = JOINT_NAMES
    joint_parents: tuple[int, ...] = JOINT_PARENTS

    # -- sizes --------------------------------------------------------------------------------
    @property
    def num_vertices(self) -> int:
        return int(self.template_m.shape[0])

    @property
    def num_shape(self) -> int:
        return int(self.shape_basis.shape[2])

    @property
    def num_expression(self) -> int:
        return int(self.expression_basis.shape[2])

    @property
    def num_joints(self) -> int:
        return len(self.joint_names)

    @property
    def has_landmarks(self) -> bool:
        return self.landmark_faces.shape[0] == NUM_LANDMARKS

    def validate(self) -> "HeadModel":
        """Check shapes, index ranges and invariants; raises HeadModelError naming the first problem."""
        V, J = self.num_vertices, self.num_joints

        def need(ok: bool, what: str) -> None:
            if not ok:
                raise HeadModelError(f"{self.source} head model is inconsistent: {what}")

        need(self.template_m.shape == (V, 3), "template must be (V, 3)")
        need(self.faces.ndim == 2 and self.faces.shape[1] == 3 and self.faces.min() >= 0 and self.faces.max() < V, "faces index outside the vertices")
        need(self.polygons.ndim == 2 and self.polygons.shape[1] == 4 and self.polygons.max() < V, "polygons index outside the vertices")
        need(self.face_uv.shape == self.faces.shape and self.face_uv.max() < len(self.uv), "face_uv must match faces and index uv")
        need(self.polygon_uv.shape == self.polygons.shape, "polygon_uv must match polygons")
        need(self.shape_basis.shape[:2] == (V, 3) and self.expression_basis.shape[:2] == (V, 3), "bases must be (V, 3, K)")
        need(len(self.expression_names) == self.num_expression, "one name per expression component")
        need(self.joint_regressor.shape == (J, V), "joint regressor must be (J, V)")
        need(self.skin_weights.shape == (V, J), "skin weights must be (V, J)")
        need(np.allclose(self.skin_weights.sum(1), 1.0, atol=1e-4), "skin weights must sum to 1 per vertex")
        need(self.vertex_mirror.shape == (V,) and np.array_equal(self.vertex_mirror[self.vertex_mirror], np.arange(V)), "vertex mirror must be an involution")
        need(len(self.joint_parents) == J and self.joint_parents[0] == -1, "joint tree must start at the root")
        need(all(m.shape == (V,) and m.dtype == bool for m in self.regions.values()), "region masks must be (V,) bool")
        need(self.landmark_faces.shape[0] == self.landmark_barycentrics.shape[0], "one barycentric triple per landmark")
        if self.pose_basis is not None:
            need(self.pose_basis.shape == (V, 3, 9 * (J - 1)), "pose basis must be (V, 3, 9 (J - 1))")
        return self

    # -- torch forward ------------------------------------------------------------------------
    def torch_buffers(self, device: Any = "cpu", dtype: Any = None) -> dict[str, Any]:
        """The model's arrays as torch tensors on ``device`` (cached per device and dtype)."""
        import torch

        dtype = dtype or torch.float32
        key = (str(device), str(dtype))
        cache = self.__dict__.setdefault("_torch_cache", {})
        if key not in cache:
            def t(array: np.ndarray) -> Any:
                return torch.as_tensor(np.ascontiguousarray(array), dtype=dtype, device=device)

            cache[key] = {
                "template": t(self.template_m),
                "shape_basis": t(self.shape_basis),
                "expression_basis": t(self.expression_basis),
                "joint_regressor": t(self.joint_regressor),
                "skin_weights": t(self.skin_weights),
                "pose_basis": None if self.pose_basis is None else t(self.pose_basis),
                "parents": torch.as_tensor(self.joint_parents, dtype=torch.long, device=device),
            }
        return cache[key]

    def _subset_buffers(self, subset: np.ndarray, device: Any, dtype: Any) -> dict[str, Any]:
        """The buffers restricted to vertices ``subset``, with the joint regressor folded into the bases."""
        import torch

        ids = np.ascontiguousarray(subset, np.int64)
        key = ("subset", ids.tobytes(), str(device), str(dtype))
        cache = self.__dict__.setdefault("_torch_cache", {})
        if key not in cache:
            buf = self.torch_buffers(device, dtype)
            index = torch.as_tensor(ids, device=device)
            regressor = buf["joint_regressor"]
            cache[key] = {
                "template": buf["template"][index],
                "shape_basis": buf["shape_basis"][index],
                "expression_basis": buf["expression_basis"][index],
                "skin_weights": buf["skin_weights"][index],
                "pose_basis": None if buf["pose_basis"] is None else buf["pose_basis"][index],
                "joint_template": regressor @ buf["template"],
                "joint_shape": torch.einsum("jv,vck->jck", regressor, buf["shape_basis"]),
                "joint_expression": torch.einsum("jv,vck->jck", regressor, buf["expression_basis"]),
            }
        return cache[key]

    def vertices(self, shape: Any = None, expression: Any = None, pose: Any = None, translation: Any = None,
                 return_joints: bool = False, subset: np.ndarray | None = None) -> Any:
        """Posed vertices in metres, batched and differentiable (torch).

        shape (B or 1, S') and expression (B, E') take the first S' <= S / E' <= E
        components; pose is (B, J, 3) axis-angle per joint; translation (B, 3).
        Any may be None (zeros). Returns (B, V, 3), and (B, J, 3) joints with
        ``return_joints``. ``subset`` (K,) vertex indices computes only those
        vertices (B, K, 3) -- the same numbers, much faster for fitting.
        """
        import torch

        given = [x for x in (shape, expression, pose, translation) if x is not None]
        device = given[0].device if given else "cpu"
        dtype = given[0].dtype if given else torch.float32
        buf = self.torch_buffers(device, dtype) if subset is None else self._subset_buffers(subset, device, dtype)
        batch = max(x.shape[0] for x in given) if given else 1
        J = self.num_joints

        shaped = buf["template"][None]
        if shape is not None:   # a shape batch of 1 is shared by the whole batch (computed once)
            assert shape.ndim == 2 and shape.shape[1] <= self.num_shape, f"shape must be (B or 1, <= {self.num_shape})"
            shaped = shaped + torch.einsum("vck,bk->bvc", buf["shape_basis"][:, :, : shape.shape[1]], shape)
        shaped = shaped.expand(batch, -1, -1)
        if expression is not None:
            assert expression.ndim == 2 and expression.shape[1] <= self.num_expression, f"expression must be (B, <= {self.num_expression})"
            shaped = shaped + torch.einsum("vck,bk->bvc", buf["expression_basis"][:, :, : expression.shape[1]], expression)
        if subset is None:
            joints = torch.einsum("jv,bvc->bjc", buf["joint_regressor"], shaped)  # as FLAME: after shape and expression
        else:
            joints = buf["joint_template"][None]
            if shape is not None:
                joints = joints + torch.einsum("jck,bk->bjc", buf["joint_shape"][:, :, : shape.shape[1]], shape)
            joints = joints.expand(batch, -1, -1)
            if expression is not None:
                joints = joints + torch.einsum("jck,bk->bjc", buf["joint_expression"][:, :, : expression.shape[1]], expression)
        posed = shaped
        if pose is None:
            pose = torch.zeros(batch, J, 3, device=device, dtype=dtype)
        assert pose.shape == (batch, J, 3), f"pose must be (B, {J}, 3)"
        rotations = axis_angle_to_matrix(pose)                           # (B, J, 3, 3)
        if buf["pose_basis"] is not None:
            eye = torch.eye(3, device=device, dtype=dtype)
            pose_feature = (rotations[:, 1:] - eye).reshape(batch, -1)    # FLAME's pose-corrective input
            posed = posed + torch.einsum("vck,bk->bvc", buf["pose_basis"], pose_feature)

        # global rigid transform of every joint along the kinematic chain
        parents = self.joint_parents
        parent_joints = torch.cat([torch.zeros_like(joints[:, :1]), joints[:, list(parents[1:])]], 1)
        rel_joints = joints - parent_joints
        rel_joints = torch.cat([joints[:, :1], rel_joints[:, 1:]], 1)
        local = _rigid(rotations, rel_joints)                             # (B, J, 4, 4)
        chain = [local[:, 0]]
        for j in range(1, J):
            chain.append(chain[parents[j]] @ local[:, j])
        world = torch.stack(chain, dim=1)                                 # (B, J, 4, 4)
        world_rot = world[:, :, :3, :3]
        posed_joints = world[:, :, :3, 3]
        # skinning: each joint moves rest positions by R (x - rest joint) + posed joint, blended by the weights
        offset = posed_joints - torch.einsum("bjrc,bjc->bjr", world_rot, joints)          # (B, J, 3)
        # out = (sum_j w_j R_j) x + sum_j w_j offset_j, one column of the blended rotation at a time: slicing the
        # small (B, J, ...) transforms instead of a (B, V, ...) tensor keeps the backward pass free of big zero-fills
        weights = buf["skin_weights"]                                                       # (V, J)

        def blend(per_joint: Any) -> Any:   # (B, J, 3) -> (B, V, 3) as one (V, J) x (J, B * 3) product
            return (weights @ per_joint.permute(1, 0, 2).reshape(J, -1)).reshape(-1, batch, 3).permute(1, 0, 2)

        out = blend(offset)
        for column, coordinate in zip(world_rot.unbind(-1), posed.unbind(-1)):
            out = out + blend(column) * coordinate[..., None]
        if translation is not None:
            out = out + translation[:, None, :]
            posed_joints = posed_joints + translation[:, None, :]
        return (out, posed_joints) if return_joints else out

    def landmarks(self, vertices: Any) -> Any:
        """Landmark positions (B, L, 3) on posed ``vertices`` (B, V, 3) from the embedding."""
        import torch

        if not self.has_landmarks:
            raise HeadModelError(f"the {self.source} head model has no landmark embedding; rebuild it")
        faces = torch.as_tensor(self.faces[self.landmark_faces], dtype=torch.long, device=vertices.device)
        bary = torch.as_tensor(self.landmark_barycentrics, dtype=vertices.dtype, device=vertices.device)
        return torch.einsum("blkc,lk->blc", vertices[:, faces], bary)

    def texel_mirror_map(self, size: int) -> np.ndarray:
        """(size, size) flat indices: the texel that mirrors each texel (row 0 = top, v = 1)."""
        if not self.uv_symmetric:
            raise HeadModelError(f"the {self.source} UV layout is not left/right symmetric; no texel mirror map")
        rows, cols = np.mgrid[0:size, 0:size]
        return (rows * size + (size - 1 - cols)).astype(np.int64)

    # -- files --------------------------------------------------------------------------------
    def save(self, folder: str | os.PathLike) -> Path:
        """Write ``head.safetensors`` + ``head.json`` into ``folder`` (atomically, arrays then json)."""
        from safetensors.numpy import save_file

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        arrays = {name: np.ascontiguousarray(getattr(self, name)) for name in _ARRAY_FIELDS}
        if self.pose_basis is not None:
            arrays["pose_basis"] = np.ascontiguousarray(self.pose_basis)
        arrays["vertex_mirror"] = arrays["vertex_mirror"].astype(np.int64)
        region_names = sorted(self.regions)
        for name in region_names:
            arrays[f"region.{name}"] = self.regions[name].astype(np.uint8)
        with atomic_path(folder / "head.safetensors") as tmp:
            save_file(arrays, str(tmp))
        atomic_write_json(folder / "head.json", {
            "format": "studio-avatar-head",
            "version": FORMAT_VERSION,
            "source": self.source,
            "expression_names": list(self.expression_names),
            "joint_names": list(self.joint_names),
            "joint_parents": list(self.joint_parents),
            "regions": region_names,
            "uv_symmetric": bool(self.uv_symmetric),
            "metadata": self.metadata,
        })
        return folder

    def save_as_cache_entry(self, folder: str | os.PathLike) -> Path:
        """Save into ``folder`` so that it appears whole or not at all (written beside it, then renamed)."""
        import shutil
        import tempfile

        folder = Path(folder)
        folder.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".building-", dir=folder.parent))
        try:
            self.save(staging)
            if folder.exists():
                shutil.rmtree(folder)
            os.replace(staging, folder)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return folder

    @classmethod
    def load(cls, folder: str | os.PathLike) -> "HeadModel":
        from safetensors import SafetensorError
        from safetensors.numpy import load_file

        folder = Path(folder)
        meta_path, array_path = folder / "head.json", folder / "head.safetensors"
        try:
            meta = json.loads(meta_path.read_text())
            arrays = load_file(str(array_path))
        except (OSError, ValueError, SafetensorError) as exc:
            raise HeadModelError(f"{folder}: cannot read the head model ({exc}); delete the folder to rebuild it") from None
        if meta.get("format") != "studio-avatar-head" or meta.get("version") != FORMAT_VERSION:
            raise HeadModelError(f"{folder}: not a Studio Avatar head model of format version {FORMAT_VERSION}")
        try:
            model = cls(
                source=meta["source"],
                expression_names=list(meta["expression_names"]),
                joint_names=tuple(meta["joint_names"]),
                joint_parents=tuple(meta["joint_parents"]),
                uv_symmetric=bool(meta["uv_symmetric"]),
                metadata=meta.get("metadata", {}),
                regions={name: arrays[f"region.{name}"].astype(bool) for name in meta["regions"]},
                pose_basis=arrays.get("pose_basis"),
                **{name: arrays[name] for name in _ARRAY_FIELDS},
            )
        except KeyError as exc:
            raise HeadModelError(f"{folder}: the head model lacks {exc}; delete the folder to rebuild it") from None
        return model.validate()


_ARRAY_FIELDS = (
    "template_m", "faces", "polygons", "uv", "face_uv", "polygon_uv", "shape_basis", "expression_basis",
    "joint_regressor", "skin_weights", "vertex_mirror", "landmark_faces", "landmark_barycentrics",
)


def axis_angle_to_matrix(axis_angle: Any) -> Any:
    """Rodrigues' formula, batched over leading dims; smooth at zero angle (Taylor terms)."""
    import torch

    theta2 = (axis_angle * axis_angle).sum(-1, keepdim=True)[..., None]   # (..., 1, 1)
    theta = torch.sqrt(theta2 + 1e-12)
    small = theta2 < 1e-8
    sin_term = torch.where(small, 1 - theta2 / 6, torch.sin(theta) / theta)
    cos_term = torch.where(small, 0.5 - theta2 / 24, (1 - torch.cos(theta)) / theta2.clamp_min(1e-12))
    x, y, z = axis_angle.unbind(-1)
    zero = torch.zeros_like(x)
    K = torch.stack([zero, -z, y, z, zero, -x, -y, x, zero], -1).reshape(*axis_angle.shape[:-1], 3, 3)
    eye = torch.eye(3, dtype=axis_angle.dtype, device=axis_angle.device)
    return eye + sin_term * K + cos_term * (K @ K)


def _rigid(rotations: Any, translations: Any) -> Any:
    import torch

    top = torch.cat([rotations, translations[..., None]], dim=-1)
    bottom = torch.zeros(*rotations.shape[:-2], 1, 4, dtype=rotations.dtype, device=rotations.device)
    bottom[..., 0, 3] = 1.0
    return torch.cat([top, bottom], dim=-2)
