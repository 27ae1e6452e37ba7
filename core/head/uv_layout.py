"""UV layout by islands: each island is a disk of the mesh mapped bijectively into its own box.

The map of an island is Floater's mean-value embedding (a Tutte embedding with
mean-value weights): the island's outer boundary is pinned, by arc length, to a
convex rounded rectangle filling the island's box, and every interior vertex is
the weighted mean of its neighbours. With positive weights and a convex
boundary the result has no flipped or overlapping triangles. Holes inside an
island (where other islands were cut out) are closed for the solve by a
virtual fan vertex.

Symmetric islands (the face, the neck) are mapped so that the mirror of a
vertex lands at ``(1 - u, v)``; the halves of a left/right island pair are the
exact mirror images of each other. That keeps the texel mirror a plain
horizontal flip. This module knows meshes and boxes, not heads.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SUPERELLIPSE_POWER = 3.0  # boundary shape: 2 = ellipse; larger fills the box better but flattens the sides, where triangles with three boundary corners would lose their area


@dataclass(frozen=True)
class Box:
    u0: float
    v0: float
    u1: float
    v1: float

    def mirrored(self) -> "Box":
        return Box(1.0 - self.u1, self.v0, 1.0 - self.u0, self.v1)


def triangulate(polygons: np.ndarray) -> np.ndarray:
    """Quads (P, 4) with -1 padding for triangles -> triangles (two per quad, first diagonal 0-2)."""
    quads = polygons[:, 3] >= 0
    return np.concatenate([polygons[:, [0, 1, 2]], polygons[quads][:, [0, 2, 3]]]).astype(np.int64)


def boundary_loops(triangles: np.ndarray) -> list[np.ndarray]:
    """Ordered boundary loops of a triangle set, each following the triangles' orientation."""
    edges = np.concatenate([triangles[:, [0, 1]], triangles[:, [1, 2]], triangles[:, [2, 0]]])
    key = np.sort(edges, 1)
    _, inverse, counts = np.unique(key, axis=0, return_inverse=True, return_counts=True)
    border = edges[counts[inverse.ravel()] == 1]
    following = dict(zip(border[:, 0].tolist(), border[:, 1].tolist()))
    if len(following) != len(border):
        raise ValueError("non-manifold boundary (a vertex starts two boundary edges)")
    loops, seen = [], set()
    for start in sorted(following):
        if start in seen:
            continue
        loop, vertex = [], start
        while vertex not in seen:
            seen.add(vertex)
            loop.append(vertex)
            vertex = following[vertex]
        loops.append(np.array(loop, np.int64))
    return loops


def loop_length(points: np.ndarray, loop: np.ndarray) -> float:
    return float(np.linalg.norm(points[loop] - points[np.roll(loop, -1)], axis=1).sum())


def _rounded_rectangle(box: Box, samples: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """Counter-clockwise superellipse inscribed in ``box``, starting at the top centre; and its arc length (0..1)."""
    t = np.linspace(0.0, 2 * np.pi, samples, endpoint=False) + np.pi / 2
    exponent = 2.0 / SUPERELLIPSE_POWER
    x = np.sign(np.cos(t)) * np.abs(np.cos(t)) ** exponent
    y = np.sign(np.sin(t)) * np.abs(np.sin(t)) ** exponent
    curve = np.stack([(box.u0 + box.u1) / 2 + x * (box.u1 - box.u0) / 2,
                      (box.v0 + box.v1) / 2 + y * (box.v1 - box.v0) / 2], -1)
    steps = np.linalg.norm(np.diff(np.vstack([curve, curve[:1]]), axis=0), axis=1)
    arc = np.concatenate([[0.0], np.cumsum(steps)[:-1]]) / steps.sum()
    return curve, arc


def _curve_at(box: Box, fractions: np.ndarray) -> np.ndarray:
    """Points at arc-length ``fractions`` (0..1, counter-clockwise from the top centre) of the box's curve."""
    curve, arc = _rounded_rectangle(box)
    closed_arc = np.append(arc, 1.0)
    closed = np.vstack([curve, curve[:1]])
    f = np.mod(fractions, 1.0)
    return np.stack([np.interp(f, closed_arc, closed[:, 0]), np.interp(f, closed_arc, closed[:, 1])], -1)


def _mean_value_weights(points: np.ndarray, triangles: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Floater's mean-value weights w_ij = (tan(a/2) + tan(b/2)) / |p_i - p_j| as (rows, cols, values)."""
    rows, cols, vals = [], [], []
    for k in range(3):
        i, j, l = triangles[:, k], triangles[:, (k + 1) % 3], triangles[:, (k + 2) % 3]
        e_ij, e_il = points[j] - points[i], points[l] - points[i]
        len_ij, len_il = np.linalg.norm(e_ij, axis=1), np.linalg.norm(e_il, axis=1)
        cos_angle = np.clip((e_ij * e_il).sum(1) / np.maximum(len_ij * len_il, 1e-30), -1.0, 1.0)
        half_tan = np.tan(np.arccos(cos_angle) / 2)  # angle at i in this triangle, shared by edges ij and il
        rows += [i, i]
        cols += [j, l]
        vals += [half_tan / np.maximum(len_ij, 1e-30), half_tan / np.maximum(len_il, 1e-30)]
    return np.concatenate(rows), np.concatenate(cols), np.concatenate(vals)


def _vertex_stretch(points: np.ndarray, uv: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """Per-vertex L2 texture stretch (Sander et al. 2001), averaged over incident triangles by 3D area."""
    q, t = points[triangles], uv[triangles]
    area_uv = signed_areas(uv, triangles)
    area_3d = 0.5 * np.linalg.norm(np.cross(q[:, 1] - q[:, 0], q[:, 2] - q[:, 0]), axis=1)
    s, v = t[..., 0], t[..., 1]
    denom = 2.0 * np.maximum(area_uv, 1e-18)[:, None]
    d_ds = (q[:, 0] * (v[:, 1] - v[:, 2])[:, None] + q[:, 1] * (v[:, 2] - v[:, 0])[:, None] + q[:, 2] * (v[:, 0] - v[:, 1])[:, None]) / denom
    d_dt = (q[:, 0] * (s[:, 2] - s[:, 1])[:, None] + q[:, 1] * (s[:, 0] - s[:, 2])[:, None] + q[:, 2] * (s[:, 1] - s[:, 0])[:, None]) / denom
    stretch_sq = 0.5 * ((d_ds ** 2).sum(1) + (d_dt ** 2).sum(1))
    num = np.zeros(len(points))
    den = np.zeros(len(points))
    for k in range(3):
        np.add.at(num, triangles[:, k], area_3d * stretch_sq)
        np.add.at(den, triangles[:, k], area_3d)
    return np.sqrt(num / np.maximum(den, 1e-30))


def embed_disk(points: np.ndarray, triangles: np.ndarray, boundary: np.ndarray, boundary_uv: np.ndarray,
               stretch_iterations: int = 4) -> np.ndarray:
    """Mean-value embedding of a disk (triangles over local vertex ids 0..n-1) with a pinned boundary.

    Then a few rounds of stretch reweighting (Yoshizawa et al. 2004): each
    neighbour's weight is divided by its stretch, which gives squeezed parts
    (ears, nostrils) more room while every weight stays positive, so the map
    stays free of flips. Interior holes must already be closed by the caller
    (see :func:`close_holes`).
    """
    n = len(points)
    rows, cols, vals = _mean_value_weights(points, triangles)
    pinned = np.zeros(n, bool)
    pinned[boundary] = True
    free = np.flatnonzero(~pinned)
    uv = np.zeros((n, 2))
    uv[boundary] = boundary_uv
    if not len(free):
        return uv
    for _ in range(stretch_iterations + 1):
        weights = np.zeros((n, n))
        np.add.at(weights, (rows, cols), vals)
        laplacian = np.diag(weights.sum(1)) - weights
        rhs = -laplacian[np.ix_(free, boundary)] @ boundary_uv
        uv[free] = np.linalg.solve(laplacian[np.ix_(free, free)], rhs)
        stretch = _vertex_stretch(points, uv, triangles)
        vals = vals / np.clip(stretch / np.median(stretch), 0.1, 10.0)[cols]
    return uv


def close_holes(points: np.ndarray, triangles: np.ndarray, outer: np.ndarray, loops: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Add one centre vertex per inner loop and fan it in, so the island is a disk for the solve."""
    extra_points, extra_tris = [points], [triangles]
    next_id = len(points)
    for loop in loops:
        if np.array_equal(loop, outer):
            continue
        extra_points.append(points[loop].mean(0, keepdims=True))
        # loops follow the triangles' orientation along the hole's rim; the fan runs the other way
        extra_tris.append(np.stack([np.roll(loop, -1), loop, np.full(len(loop), next_id)], 1))
        next_id += 1
    return np.concatenate(extra_points), np.concatenate(extra_tris)


def signed_areas(uv: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    a, b, c = uv[triangles[:, 0]], uv[triangles[:, 1]], uv[triangles[:, 2]]
    return 0.5 * ((b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0]))


def _localize(triangles: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    used, local = np.unique(triangles, return_inverse=True)
    return used, local.reshape(triangles.shape)


def _outer_loop(points: np.ndarray, loops: list[np.ndarray]) -> np.ndarray:
    return max(loops, key=lambda loop: loop_length(points, loop))


def _orient(uv: np.ndarray, triangles: np.ndarray, box: Box) -> np.ndarray:
    """Reflect about the box's vertical centre line if the map came out mirrored (all triangles clockwise)."""
    if signed_areas(uv, triangles).sum() < 0:
        uv = uv.copy()
        uv[:, 0] = (box.u0 + box.u1) - uv[:, 0]
    return uv


def map_island(points: np.ndarray, triangles: np.ndarray, box: Box) -> tuple[np.ndarray, np.ndarray]:
    """Map an island (global triangles) into ``box``; returns (vertex ids, their uv)."""
    used, local = _localize(triangles)
    local_points = points[used]
    loops = boundary_loops(local)
    outer = _outer_loop(local_points, loops)
    steps = np.linalg.norm(local_points[outer] - local_points[np.roll(outer, -1)], axis=1)
    fractions = np.concatenate([[0.0], np.cumsum(steps)[:-1]]) / steps.sum()
    solve_points, solve_tris = close_holes(local_points, local, outer, loops)
    uv = embed_disk(solve_points, solve_tris, outer, _curve_at(box, fractions))[: len(used)]
    return used, _orient(uv, local, box)


def map_symmetric_island(points: np.ndarray, triangles: np.ndarray, mirror: np.ndarray, box: Box) -> tuple[np.ndarray, np.ndarray]:
    """Map a left/right symmetric island so that mirror(v) lands at (u0 + u1 - u, v); box centred on the mirror axis.

    The boundary's two midline crossings go to the top and bottom centre of the
    box (the higher one on top); each half of the boundary is pinned by arc
    length and the other half mirrored, then the solution is symmetrized.
    """
    used, local = _localize(triangles)
    local_points = points[used]
    to_local = {int(g): k for k, g in enumerate(used)}
    local_mirror = np.array([to_local[int(mirror[g])] for g in used])
    loops = boundary_loops(local)
    outer = _outer_loop(local_points, loops)
    on_axis = np.flatnonzero(local_mirror[outer] == outer)
    if len(on_axis) != 2:
        raise ValueError(f"a symmetric island's outer boundary must cross the mirror plane twice, not {len(on_axis)} times")
    top, bottom = sorted(on_axis, key=lambda k: -local_points[outer[k], 1])
    ordered = np.roll(outer, -top)                 # starts at the top crossing
    half_end = (bottom - top) % len(outer)
    steps = np.linalg.norm(local_points[ordered] - local_points[np.roll(ordered, -1)], axis=1)
    first = np.concatenate([[0.0], np.cumsum(steps[:half_end])]) / steps[:half_end].sum() * 0.5
    fractions = np.zeros(len(ordered))
    fractions[: half_end + 1] = first
    # the other half: each vertex takes its mirror's position on the first half, reflected
    position = {int(v): f for v, f in zip(ordered[: half_end + 1], first)}
    for k in range(half_end + 1, len(ordered)):
        fractions[k] = 1.0 - position[int(local_mirror[ordered[k]])]
    solve_points, solve_tris = close_holes(local_points, local, outer, loops)
    uv = embed_disk(solve_points, solve_tris, ordered, _curve_at(box, fractions))[: len(used)]
    axis = box.u0 + box.u1
    uv = 0.5 * (uv + np.stack([axis - uv[local_mirror, 0], uv[local_mirror, 1]], -1))
    return used, _orient(uv, local, box)
