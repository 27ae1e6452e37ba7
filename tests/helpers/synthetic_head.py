"""A small synthetic HeadModel with known structure (a UV sphere "head" on a cylinder "neck").

For tests of code that consumes head models (forward, Blender build, save/load)
without building the real open head. Every field is valid and meaningful:
skin weights blend neck->head, the jaw moves the lower front, eyes are two
small spheres, the UVs are a symmetric longitude/latitude layout.
"""

import numpy as np

from studio_avatar.core.head.model import HeadModel


def _sphere(center, radius, rings, segments):
    lat = np.linspace(0, np.pi, rings + 1)[1:-1]
    lon = np.linspace(-np.pi, np.pi, segments, endpoint=False)
    la, lo = np.meshgrid(lat, lon, indexing="ij")
    pts = np.stack([np.sin(la) * np.sin(lo), np.cos(la), np.sin(la) * np.cos(lo)], -1).reshape(-1, 3)
    verts = np.concatenate([[[0, 1, 0]], pts, [[0, -1, 0]]]) * radius + center
    quads, tris = [], []
    n = segments
    for r in range(rings - 2):
        for s in range(n):
            a, b = 1 + r * n + s, 1 + r * n + (s + 1) % n
            quads.append([a, b, b + n, a + n])
    for s in range(n):
        tris.append([0, 1 + (s + 1) % n, 1 + s])
        last = 1 + (rings - 2) * n
        tris.append([len(verts) - 1, last + s, last + (s + 1) % n])
    return verts, quads, tris


def make_synthetic_head(num_shape=4, num_expression=3):
    head_v, head_q, head_t = _sphere(np.array([0, 0.0, 0]), 0.09, 12, 16)
    eye_l, eq, et = _sphere(np.array([0.03, 0.02, 0.075]), 0.012, 6, 8)
    eye_r = eye_l * np.array([-1, 1, 1])
    parts = [(head_v, head_q, head_t), (eye_l, eq, et), (eye_r, eq, et)]
    verts, polys, offset = [], [], 0
    for v, q, t in parts:
        verts.append(v)
        polys += [[i + offset for i in p] for p in q] + [[i + offset for i in p] + [-1] for p in t]
        offset += len(v)
    verts = np.concatenate(verts).astype(np.float32)
    polygons = np.array(polys, np.int32)
    faces = np.concatenate([polygons[:, [0, 1, 2]], polygons[polygons[:, 3] >= 0][:, [0, 2, 3]]]).astype(np.int32)
    V = len(verts)
    n_head, n_eye = len(head_v), len(eye_l)
    eye_l_idx = np.arange(n_head, n_head + n_eye)
    eye_r_idx = eye_l_idx + n_eye

    # mirror by nearest mirrored position (exact for these symmetric spheres)
    flipped = verts * np.array([-1, 1, 1], np.float32)
    mirror = np.argmin(((verts[:, None] - flipped[None]) ** 2).sum(-1), axis=1).astype(np.int64)

    y, z = verts[:, 1], verts[:, 2]
    weights = np.zeros((V, 5), np.float32)
    neck_w = np.clip((-y - 0.03) / 0.06, 0, 1)
    jaw_w = np.where((y < -0.01) & (z > 0.02), np.clip((-y - 0.01) / 0.03, 0, 1), 0) * (1 - neck_w)
    weights[:, 0] = neck_w
    weights[:, 2] = jaw_w
    weights[:, 1] = 1 - neck_w - jaw_w
    weights[eye_l_idx] = [0, 0, 0, 1, 0]
    weights[eye_r_idx] = [0, 0, 0, 0, 1]

    regressor = np.zeros((5, V), np.float32)
    bottom = np.argsort(y[:n_head])[:16]
    regressor[0, bottom] = 1 / 16                     # root: bottom of the head
    regressor[1, :n_head] = 1 / n_head                # neck: head centre
    front_low = np.where((y < -0.02) & (z > 0.05))[0]
    regressor[2, front_low] = 1 / len(front_low)      # jaw
    regressor[3, eye_l_idx] = 1 / n_eye
    regressor[4, eye_r_idx] = 1 / n_eye

    rng = np.random.default_rng(0)
    shape_basis = np.zeros((V, 3, num_shape), np.float32)
    for k in range(num_shape):
        scale = rng.normal(size=3).astype(np.float32) * 0.005
        shape_basis[:, :, k] = verts * scale * np.array([1, 1, 1]) / 0.09
    expression_basis = np.zeros((V, 3, num_expression), np.float32)
    expression_basis[:, 1, 0] = -0.01 * jaw_w                                  # "jawOpen"
    expression_basis[eye_l_idx[:0], 1, 1] = 0
    expression_basis[:, 1, 1] = 0.005 * ((verts[:, 0] > 0.02) & (y > 0.0))      # "browUpLeft"
    expression_basis[:, 1, 2] = 0.005 * ((verts[:, 0] < -0.02) & (y > 0.0))     # "browUpRight"

    lon = np.arctan2(verts[:, 0], verts[:, 2])
    uv = np.stack([0.5 + lon / (2 * np.pi), 0.5 + np.clip(y / 0.18, -0.5, 0.5)], -1).astype(np.float32)
    regions = {name: np.zeros(V, bool) for name in ("face", "scalp", "ears", "neck", "lips", "mouth_interior", "teeth", "tongue")}
    regions["face"][:n_head] = z[:n_head] > 0.03
    regions["scalp"][:n_head] = ~regions["face"][:n_head] & (y[:n_head] > -0.03)
    regions["neck"][:n_head] = y[:n_head] <= -0.03
    regions["eye_left"] = np.isin(np.arange(V), eye_l_idx)
    regions["eye_right"] = np.isin(np.arange(V), eye_r_idx)

    return HeadModel(
        source="synthetic",
        template_m=verts,
        faces=faces,
        polygons=polygons,
        uv=uv[: V],
        face_uv=faces.copy(),
        polygon_uv=polygons.copy(),
        shape_basis=shape_basis,
        expression_basis=expression_basis,
        expression_names=["jawOpen", "browUpLeft", "browUpRight"][:num_expression],
        joint_regressor=regressor,
        skin_weights=weights,
        vertex_mirror=mirror,
        regions=regions,
        uv_symmetric=False,
    ).validate()
