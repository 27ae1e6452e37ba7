"""The rasterizer and pinhole camera against cases with known answers (coverage, depth order, interpolation)."""

import math

import numpy as np
import pytest
import torch

from studio_avatar.core.render.camera import PinholeCamera, project
from studio_avatar.core.render.raster import interpolate, rasterize


def screen(points_xy, depth=1.0):
    """(N, 2) pixel positions plus a depth column -> (N, 3) float tensor for rasterize."""
    xy = torch.as_tensor(points_xy, dtype=torch.float64)
    z = torch.as_tensor(depth, dtype=torch.float64).expand(len(xy))
    return torch.cat([xy, z[:, None]], 1)


def uv_sphere(radius, rings=40, segments=80):
    lat = np.linspace(0, np.pi, rings + 1)
    lon = np.linspace(0, 2 * np.pi, segments, endpoint=False)
    la, lo = np.meshgrid(lat, lon, indexing="ij")
    verts = np.stack([np.sin(la) * np.cos(lo), np.cos(la), np.sin(la) * np.sin(lo)], -1).reshape(-1, 3) * radius
    r, s = np.meshgrid(np.arange(rings), np.arange(segments), indexing="ij")
    a, b = r * segments + s, r * segments + (s + 1) % segments
    faces = np.concatenate([np.stack([a, b, b + segments], -1), np.stack([a, b + segments, a + segments], -1)]).reshape(-1, 3)
    return torch.as_tensor(verts), torch.as_tensor(faces)


def test_a_square_covers_exactly_the_pixels_whose_centres_it_contains():
    square = screen([[1, 1], [5, 1], [5, 5], [1, 5]])
    result = rasterize(square, [[0, 1, 2], [0, 2, 3]], 8, 8)
    expected = np.zeros((8, 8), bool)
    expected[1:5, 1:5] = True
    assert np.array_equal(result.mask.numpy(), expected)
    assert (result.face_index[~result.mask] == -1).all()
    assert torch.isinf(result.depth[~result.mask]).all()
    assert (result.barycentrics[~result.mask] == 0).all()


def test_a_triangle_includes_centres_on_its_edges():
    # centres (c + 0.5, r + 0.5) with x + y <= 8 are covered: c + r <= 7, the diagonal c + r == 7 lies on the edge
    result = rasterize(screen([[0, 0], [8, 0], [0, 8]]), [[0, 1, 2]], 10, 10)
    rows, cols = np.mgrid[0:10, 0:10]
    assert np.array_equal(result.mask.numpy(), rows + cols <= 7)
    assert result.mask.sum() == 36


def test_both_windings_rasterize_and_the_image_is_top_left_origin():
    clockwise = rasterize(screen([[0, 0], [0, 4], [4, 0]]), [[0, 1, 2]], 6, 6)
    counter = rasterize(screen([[0, 0], [4, 0], [0, 4]]), [[0, 1, 2]], 6, 6)
    assert torch.equal(clockwise.mask, counter.mask)
    assert clockwise.mask[0, 0] and not clockwise.mask[5, 5]            # row 0 is the top, column 0 the left


def test_the_nearer_triangle_wins_whatever_the_order():
    near = [[0, 0], [8, 0], [0, 8]]                                      # covers centres with c + r <= 7
    far = [[0, 0], [16, 0], [0, 16]]                                     # covers the whole 8x8 image
    points = torch.cat([screen(near, 1.0), screen(far, 3.0)])
    for faces in ([[0, 1, 2], [3, 4, 5]], [[3, 4, 5], [0, 1, 2]]):
        result = rasterize(points, faces, 8, 8, perspective_correct=False)
        near_index = faces.index([0, 1, 2])
        assert result.face_index[3, 3] == near_index and result.depth[3, 3] == pytest.approx(1.0)
        assert result.face_index[7, 7] == 1 - near_index and result.depth[7, 7] == pytest.approx(3.0)


def test_ties_in_depth_go_to_the_lowest_triangle_index():
    quad = screen([[0, 0], [6, 0], [6, 6], [0, 6]])
    result = rasterize(quad, [[0, 1, 2], [0, 2, 3], [0, 1, 2]], 6, 6, perspective_correct=False)
    assert set(result.face_index.unique().tolist()) == {0, 1}           # never 2, the duplicate of 0
    assert result.face_index[2, 2] == 0                                 # centre (2.5, 2.5) is on the shared diagonal


def test_interpolated_screen_positions_are_the_pixel_centres():
    corners = torch.tensor([[2.3, 1.7], [29.6, 8.2], [11.1, 28.9]], dtype=torch.float64)
    result = rasterize(screen(corners), [[0, 1, 2]], 32, 32, perspective_correct=False)
    (x0, y0), (x1, y1), (x2, y2) = corners.tolist()
    area = 0.5 * abs((x1 - x0) * (y2 - y0) - (x2 - x0) * (y1 - y0))
    assert abs(result.mask.sum().item() - area) < 0.1 * area
    xy = interpolate(corners, [[0, 1, 2]], result)
    rows, cols = torch.nonzero(result.mask, as_tuple=True)
    assert torch.allclose(xy[rows, cols], torch.stack([cols + 0.5, rows + 0.5], 1).double(), atol=1e-4)
    assert torch.allclose(result.barycentrics[result.mask].sum(1), torch.ones(len(rows), dtype=torch.float64), atol=1e-6)
    assert (result.barycentrics >= 0).all()


def test_perspective_correct_barycentrics_give_the_surface_point_under_each_pixel():
    camera = PinholeCamera.look_at([0.1, 0.05, 1.0], [0, 0, 0], fov_y_deg=40, width=64, height=48)
    world = torch.tensor([[-0.3, -0.2, 0.1], [0.35, -0.25, -0.3], [0.0, 0.3, 0.2]], dtype=torch.float64)
    projected = project(world, camera)
    result = rasterize(projected, [[0, 1, 2]], 48, 64)
    points = interpolate(world, [[0, 1, 2]], result)[result.mask]
    again = project(points, camera)
    rows, cols = torch.nonzero(result.mask, as_tuple=True)
    assert torch.allclose(again[:, :2], torch.stack([cols + 0.5, rows + 0.5], 1).double(), atol=1e-3)
    assert torch.allclose(again[:, 2], result.depth[result.mask], rtol=1e-5)
    flat = rasterize(projected, [[0, 1, 2]], 48, 64, perspective_correct=False)
    assert torch.equal(flat.mask, result.mask)
    assert not torch.allclose(flat.barycentrics, result.barycentrics, atol=1e-3)   # depth varies: they must differ


def test_background_everywhere_when_nothing_is_in_view():
    points = screen([[100, 100], [140, 100], [100, 140]])
    behind = torch.tensor([[1.0, 1.0, -1.0], [5.0, 1.0, 2.0], [1.0, 5.0, 2.0]])
    for verts, faces in ((points, [[0, 1, 2]]), (behind, [[0, 1, 2]]), (points, torch.zeros(0, 3, dtype=torch.long))):
        result = rasterize(verts, faces, 16, 16)
        assert (result.face_index == -1).all()
    degenerate = rasterize(screen([[0, 0], [8, 8], [16, 16]]), [[0, 1, 2]], 16, 16)
    assert (degenerate.face_index == -1).all()


@pytest.mark.parametrize("cells, lo, hi, size", [(8, -2.0, 42.0, 40), (60, 1990.0, 2030.0, 2048)])
def test_a_closed_grid_leaves_no_pixel_uncovered(cells, lo, hi, size):
    rng = np.random.default_rng(1)
    n = cells + 1
    grid = np.stack(np.meshgrid(np.linspace(lo, hi, n), np.linspace(lo, hi, n), indexing="xy"), -1).reshape(-1, 2)
    inner = ((grid > lo) & (grid < hi)).all(1)
    grid[inner] += rng.uniform(-0.3, 0.3, (inner.sum(), 2)) * (hi - lo) / cells
    r, c = np.meshgrid(np.arange(cells), np.arange(cells), indexing="ij")
    a = r * n + c
    faces = np.concatenate([np.stack([a, a + 1, a + n + 1], -1), np.stack([a, a + n + 1, a + n], -1)]).reshape(-1, 3)
    result = rasterize(screen(grid), torch.as_tensor(faces), size, size)
    first, last = max(int(np.ceil(lo - 0.5)), 0), min(int(np.floor(hi - 0.5)), size - 1)
    assert result.mask[first:last + 1, first:last + 1].all()
    assert result.mask.sum() == (last - first + 1) ** 2


def test_batches_of_candidates_give_the_same_image():
    verts, faces = uv_sphere(0.2, rings=12, segments=20)
    camera = PinholeCamera.look_at([0.3, 0.2, 0.9], [0, 0, 0], width=48, height=40)
    projected = project(verts, camera)
    whole = rasterize(projected, faces, 40, 48)
    batched = rasterize(projected, faces, 40, 48, max_candidates=7)
    assert torch.equal(whole.face_index, batched.face_index)
    assert torch.allclose(whole.barycentrics, batched.barycentrics)


def test_a_sphere_silhouette_has_the_analytic_area():
    radius, distance = 0.1, 0.5
    verts, faces = uv_sphere(radius, rings=90, segments=180)
    camera = PinholeCamera.look_at([0, 0, distance], [0, 0, 0], fov_y_deg=30, width=256, height=256)
    result = rasterize(project(verts, camera), faces, 256, 256)
    # the silhouette of a sphere seen from distance d is a circle of angular radius asin(r / d)
    radius_px = camera.fy * math.tan(math.asin(radius / distance))
    assert result.mask.sum().item() == pytest.approx(math.pi * radius_px ** 2, rel=0.01)
    centre = result.depth[128, 128].item()
    assert centre == pytest.approx(distance - radius, rel=1e-3)


def test_camera_convention_opencv():
    camera = PinholeCamera.look_at([0, 0, 2.0], [0, 0, 0], width=100, height=80)
    pixels = project(torch.tensor([[0.0, 0, 0], [0.1, 0, 0], [0, 0.1, 0]], dtype=torch.float64), camera)
    assert pixels[0].tolist() == pytest.approx([50, 40, 2.0])
    assert pixels[1, 0] > 50                                  # world +x (the subject's left, facing us) is image right
    assert pixels[2, 1] < 40                                  # world +y (up) is toward row 0
    assert camera.fx == pytest.approx(40 / math.tan(math.radians(15)))
    with pytest.raises(ValueError, match="parallel"):
        PinholeCamera.look_at([0, 2.0, 0], [0, 0, 0])
