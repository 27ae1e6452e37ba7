"""Vectorized triangle rasterization in torch: one core for screen space and UV space.

``rasterize`` takes per-vertex ``(x_px, y_px, depth)``: for a camera view that
is ``camera.project(vertices_m, camera)``; for a texture of ``size`` texels pass
``(u * size, (1 - v) * size, 1)`` (a constant depth; visibility then falls to
the lowest triangle index).

Conventions:
- Images: origin at the top-left corner, x to the right (columns), y down
  (rows). Pixel (row r, column c) covers [c, c+1) x [r, r+1) and is sampled at
  its centre (c + 0.5, r + 0.5). Edges are inclusive: a centre exactly on an
  edge is covered (by the lower-index triangle where two share it).
- Triangles with a vertex at depth <= 0 (behind the camera) are dropped, not
  clipped; degenerate (zero-area) triangles cover nothing.

Visibility is hard (not differentiable in the positions); ``interpolate`` is
differentiable in the attributes. This module knows nothing of head models,
textures or capture folders.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

EDGE_TOLERANCE = 1e-9       # barycentric slack (float64) so that shared edges leave no uncovered pixel centres


@dataclass
class RasterResult:
    face_index: Any    # (H, W) long: visible triangle per pixel, -1 = background
    barycentrics: Any  # (H, W, 3) weights of the triangle's corners at the pixel centre (zeros on background)
    depth: Any         # (H, W) depth at the pixel centre (inf on background)

    @property
    def mask(self) -> Any:
        """(H, W) bool: pixels covered by a triangle."""
        return self.face_index >= 0


def rasterize(verts_px_depth: Any, faces: Any, height: int, width: int, perspective_correct: bool = True,
              max_candidates: int = 1 << 22) -> RasterResult:
    """Nearest-depth triangle per pixel with its barycentrics and depth.

    verts_px_depth (V, 3): ``[x_px, y_px, depth]`` per vertex; faces (F, 3)
    vertex indices. With ``perspective_correct`` the barycentrics and depth
    are interpolated as a pinhole camera sees them (1 / depth is linear on
    screen); without, linearly on screen. Every triangle is cut into pixel
    rows, each row into its run of covered pixel centres (at most
    ``max_candidates`` pixels per batch of runs), and a scatter-min depth
    buffer keeps the nearest. Barycentrics and depth come back in float32
    precision (in the dtype of ``verts_px_depth``).
    """
    import torch

    verts = torch.as_tensor(verts_px_depth)
    assert verts.ndim == 2 and verts.shape[1] == 3, f"rasterize: verts must be (V, 3) [x_px, y_px, depth], got {tuple(verts.shape)}"
    faces = torch.as_tensor(faces, device=verts.device).long()
    assert faces.ndim == 2 and faces.shape[1] == 3, f"rasterize: faces must be (F, 3), got {tuple(faces.shape)}"
    assert height > 0 and width > 0, f"rasterize: image size must be positive, got {height}x{width}"
    device, out_dtype = verts.device, (verts.dtype if verts.is_floating_point() else torch.float32)
    edges = _edge_functions(verts, faces)
    runs = _pixel_runs(edges, height, width, perspective_correct)
    depth_buf = torch.full((height * width,), float("inf"), device=device)
    face_buf = torch.full((height * width,), -1, dtype=torch.long, device=device)
    bary_buf = torch.zeros(height * width, 3, device=device)
    _depth_test(runs, perspective_correct, max_candidates, depth_buf, face_buf, bary_buf)
    return RasterResult(
        face_index=face_buf.view(height, width),
        barycentrics=bary_buf.view(height, width, 3).to(out_dtype),
        depth=depth_buf.view(height, width).to(out_dtype),
    )


@dataclass
class _EdgeFunctions:
    """Per triangle: barycentric of corner i at (px, py) = a_i px + b_i py + c_i, relative to corner 0's origin."""
    valid: Any         # (F,) bool: in front of the camera, finite and not degenerate
    origin_x: Any      # (F,) corner 0, pixels
    origin_y: Any
    y: Any             # (F, 3) corner rows relative to origin_y
    z: Any             # (F, 3) corner depths
    a: Any             # (F, 3) coefficients
    b: Any
    c: Any


def _edge_functions(verts: Any, faces: Any) -> _EdgeFunctions:
    import torch

    corners = verts.detach().to(torch.float64)[faces]                        # (F, 3 corners, 3)
    valid = torch.isfinite(corners).all(dim=(1, 2)) & (corners[:, :, 2] > 0).all(dim=1)
    corners = torch.where(valid[:, None, None], corners, torch.ones_like(corners))
    x, y, z = corners.unbind(-1)                                             # (F, 3) each
    origin_x, origin_y = x[:, 0].clone(), y[:, 0].clone()                    # edge functions relative to corner 0:
    x, y = x - origin_x[:, None], y - origin_y[:, None]                      # small numbers, exact shared edges
    area2 = x[:, 1] * y[:, 2] - x[:, 2] * y[:, 1]
    valid &= area2.abs() > 1e-12
    area2 = torch.where(valid, area2, torch.ones_like(area2))
    # barycentric of corner i: the edge function of the opposite edge j -> k
    j, k = [1, 2, 0], [2, 0, 1]
    return _EdgeFunctions(valid, origin_x, origin_y, y, z, a=(y[:, j] - y[:, k]) / area2[:, None],
                          b=(x[:, k] - x[:, j]) / area2[:, None], c=(x[:, j] * y[:, k] - x[:, k] * y[:, j]) / area2[:, None])


@dataclass
class _PixelRuns:
    """Per (triangle, pixel row): the run of covered pixel centres and what interpolates across it."""
    triangle: Any      # (S,) long
    run: Any           # (S,) long: covered pixels in the run (0: none)
    first_pixel: Any   # (S,) long: flat index of the run's first pixel
    table: Any         # (S, 9) float32: barycentrics at the first pixel, their step per column, corner (1 /) depths


def _pixel_runs(edges: _EdgeFunctions, height: int, width: int, perspective_correct: bool) -> _PixelRuns:
    """Rows of pixel centres each triangle spans, then per (triangle, row) the exact run of covered columns:
    every edge function a x + b y + c >= 0 bounds x from one side on that row."""
    import torch

    device, y = edges.y.device, edges.y
    row_lo = torch.ceil(y.min(1).values + edges.origin_y - 0.5).clamp(0, height)
    row_hi = torch.floor(y.max(1).values + edges.origin_y - 0.5).clamp(-1, height - 1)
    rows_per_tri = (row_hi - row_lo + 1).clamp_min(0).long() * edges.valid
    span_tri = torch.repeat_interleave(torch.arange(len(y), device=device), rows_per_tri)
    # everything per triangle that the spans need, gathered at once (index_select: a faster gather than [])
    per_triangle = torch.cat([edges.a, edges.b, edges.c, edges.z, torch.stack([row_lo, edges.origin_x, edges.origin_y], 1)], 1)
    per_span = per_triangle.index_select(0, span_tri)                         # (S, 15)
    a, b, c, z = per_span[:, 0:3], per_span[:, 3:6], per_span[:, 6:9], per_span[:, 9:12]
    span_row = per_span[:, 12] + (torch.arange(span_tri.shape[0], device=device)
                                  - torch.repeat_interleave(torch.cumsum(rows_per_tri, 0) - rows_per_tri, rows_per_tri))
    span_x0, span_y = per_span[:, 13], span_row + 0.5 - per_span[:, 14]
    rest = b * span_y[:, None] + c + EDGE_TOLERANCE                            # edge function minus a x
    bound = -rest / torch.where(a == 0, torch.ones_like(a), a)
    x_lo = torch.where(a > 0, bound, torch.full_like(bound, -float("inf"))).max(1).values + span_x0
    x_hi = torch.where(a < 0, bound, torch.full_like(bound, float("inf"))).min(1).values + span_x0
    open_row = torch.where(a == 0, rest >= 0, torch.ones_like(rest, dtype=torch.bool)).all(1)
    col_lo = torch.ceil(x_lo - 0.5).clamp(0, width)
    col_hi = torch.floor(x_hi - 0.5).clamp(-1, width - 1)
    run = (col_hi - col_lo + 1).clamp_min(0).long() * open_row
    # per run, in float64 then float32: barycentrics at its first pixel centre, their step to the next
    # column, and the triangle's corner depths (inverted for perspective interpolation)
    start = a * (col_lo + 0.5 - span_x0)[:, None] + b * span_y[:, None] + c
    table = torch.cat([start, a, 1.0 / z if perspective_correct else z], 1).float()
    return _PixelRuns(span_tri, run, (span_row * width + col_lo).long(), table)


def _depth_test(runs: _PixelRuns, perspective_correct: bool, max_candidates: int,
                depth_buf: Any, face_buf: Any, bary_buf: Any) -> None:
    """Every covered pixel of every run against the depth buffer (in batches of at most ``max_candidates`` pixels):
    the nearest triangle wins, ties going to the lowest index; the buffers are updated in place."""
    import torch

    for owner, pixel, bary, depth in _candidates(runs, perspective_correct, max_candidates):
        nearest = torch.full_like(depth_buf, float("inf")).scatter_reduce(0, pixel, depth, "amin")
        wins = torch.nonzero((depth == nearest.index_select(0, pixel)) & (depth < depth_buf.index_select(0, pixel))).squeeze(1)
        if len(wins) < len(pixel):          # (in UV space, without overlaps, nearly every candidate wins)
            owner, bary, pixel, depth = (t.index_select(0, wins) for t in (owner, bary, pixel, depth))
        first = torch.full_like(face_buf, torch.iinfo(torch.long).max).scatter_reduce(0, pixel, owner, "amin")
        unique = torch.nonzero(owner == first.index_select(0, pixel)).squeeze(1)   # ties: lowest triangle index
        if len(unique) < len(pixel):
            owner, bary, pixel, depth = (t.index_select(0, unique) for t in (owner, bary, pixel, depth))
        depth_buf[pixel], face_buf[pixel], bary_buf[pixel] = depth, owner, bary


def _candidates(runs: _PixelRuns, perspective_correct: bool, max_candidates: int) -> Any:
    """Per batch of at most ``max_candidates`` covered pixels: (triangle, flat pixel, barycentrics (N, 3), depth)."""
    import torch

    device, run = runs.run.device, runs.run
    live = torch.nonzero(run).squeeze(1)
    live_run = run.index_select(0, live)
    batch_of = torch.div(torch.cumsum(live_run, 0) - live_run, max_candidates, rounding_mode="floor")
    # gathers with index_select and one nonzero per mask: plain [] indexing is several times slower on the CPU
    for batch in torch.split(live, torch.unique_consecutive(batch_of, return_counts=True)[1].tolist()):
        per_run = run.index_select(0, batch)
        span = torch.repeat_interleave(batch, per_run)                          # run of each covered pixel
        step = torch.arange(span.shape[0], device=device) - torch.repeat_interleave(torch.cumsum(per_run, 0) - per_run, per_run)
        coef = runs.table.index_select(0, span)                                 # (N, 9)
        bary = torch.addcmul(coef[:, 0:3], coef[:, 3:6], step[:, None].float()).clamp_min(0)
        bary = bary / bary.sum(1, keepdim=True)
        owner, pixel = runs.triangle.index_select(0, span), runs.first_pixel.index_select(0, span) + step
        if perspective_correct:
            over_depth = bary * coef[:, 6:9]
            depth = 1.0 / over_depth.sum(1)
            bary = over_depth * depth[:, None]
        else:
            depth = (bary * coef[:, 6:9]).sum(1)
        yield owner, pixel, bary, depth


def depth_map(verts_px_depth: Any, faces: Any, height: int, width: int, max_candidates: int = 1 << 22) -> Any:
    """(H, W) nearest depth per pixel (inf on background), perspective-correct: ``rasterize(...).depth`` without
    the triangle and barycentrics per pixel, so at a part of the cost."""
    import torch

    verts = torch.as_tensor(verts_px_depth)
    assert verts.ndim == 2 and verts.shape[1] == 3, f"depth_map: verts must be (V, 3) [x_px, y_px, depth], got {verts.shape}"
    assert height > 0 and width > 0, f"depth_map: image size must be positive, got {height}x{width}"
    runs = _pixel_runs(_edge_functions(verts, torch.as_tensor(faces, device=verts.device).long()), height, width, True)
    depth = torch.full((height * width,), float("inf"), device=verts.device)
    for _, pixel, _, candidate in _candidates(runs, True, max_candidates):
        depth.scatter_reduce_(0, pixel, candidate, "amin")
    return depth.view(height, width).to(verts.dtype if verts.is_floating_point() else torch.float32)


def interpolate(attr: Any, faces: Any, result: RasterResult) -> Any:
    """(V, C) per-vertex attributes -> (H, W, C) image through ``result``; zeros on background."""
    import torch

    attr = torch.as_tensor(attr)
    assert attr.ndim == 2, f"interpolate: attributes must be (V, C), got {tuple(attr.shape)}"
    faces = torch.as_tensor(faces, device=attr.device).long()
    assert faces.ndim == 2 and faces.shape[1] == 3, f"interpolate: faces must be (F, 3), got {tuple(faces.shape)}"
    height, width = result.face_index.shape
    mask = result.mask
    corners = faces[result.face_index[mask]]                                 # (N, 3)
    weights = result.barycentrics[mask].to(attr.dtype)
    out = torch.zeros(height, width, attr.shape[1], dtype=attr.dtype, device=attr.device)
    out[mask] = torch.einsum("nk,nkc->nc", weights, attr[corners])
    return out
