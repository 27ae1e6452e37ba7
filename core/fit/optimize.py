"""Multi-frame fitting of a head model to 2D landmarks, in torch.

Unknowns: one identity shape for the whole clip; per frame the head's rigid
pose (root rotation and translation in the camera's frame), jaw pose, eye
gaze (pitch and yaw of each eye) and expression coefficients (kept in 0..1);
and one focal length for the clip (fixed when known, else estimated).

Conventions (the same as ``fit.npz`` and the synthetic ground truth): the
world frame is the camera's frame with OpenGL axes (x right, y up, the camera
at the origin looking along -z); per frame the head's vertices are
``model.vertices(shape, expression, pose, translation)``; a world point
projects to ``u = cx + f X / -Z``, ``v = cy - f Y / -Z`` (pixels, origin at the
image's top-left corner). ``pose`` is (N, 5, 3) axis-angle for the joints
root, neck, jaw, eye_left, eye_right; the neck stays at rest (landmarks on the
face cannot tell a turn of the neck from a turn of the whole head, so the
whole head turns at the root).

The objective, minimized with Adam in two rounds (rigid pose + coarse shape +
focal, then everything):

* data: a robust (Cauchy) reprojection error of every landmark, in units of
  the frame's face size, weighted by the tracker's confidence, by how
  reliably the landmark sits on one surface point (the embedding's spread
  across views: face-contour landmarks slide along the silhouette, so they
  count little) and by the landmark's visibility under the current fit
  (surface facing away from the camera -> no weight);
* silhouette (when the frames' person masks are given): head vertices that
  project outside the person's silhouette cost like landmarks that far off
  (one-sided: the mask also holds hair and body). Landmarks collapse towards
  a frontal face beyond ~60 degrees of yaw; the outline does not. Its weight
  (``silhouette_weight``) was measured on the quality bench's six captures
  (48 frames, yaw up to 75 degrees): 0.3 took the mean rotation error from
  7.60 to 5.95 degrees (every capture better; beyond 60 degrees the mean yaw
  error towards the turn from -3..-21 to -15..+3 degrees), the posed vertex
  error 15.7 -> 15.2 mm; 1.0 turned heads no better and pushed them away (a
  smaller head is always inside). Points within one pixel of the mask's own
  resolution do not count, and only frames whose head reaches out of the
  silhouette pay (refreshed with the visibility), so near-frontal clips cost
  no more (a real 120-frame clip: 19.8 -> 20.6 s) while far-turning ones do
  (the bench's captures: up to 2x);
* priors: shape and expression coefficients (expressions sparse, L1),
  jaw and gaze angles, the focal length around its initial estimate;
* temporal smoothness of expressions and gaze between frames close in time.

Initialization: a focal length is chosen by trying a range with OpenCV's PnP
on a few frames, then every frame's rigid pose comes from PnP with the mean
head's landmarks.
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import CaptureError
from ..head.model import HeadModel

OUTER_EYE_CORNERS = (33, 263)           # mediapipe indices; their 3D distance is the inter-ocular distance
IRIS = np.arange(468, 478)
OUTLINE_ACTIVE_PX = 0.5                 # a frame pays the silhouette term while its head reaches this far out of it
CAMERA_ROTATION = np.diag([1.0, -1.0, -1.0])   # world (OpenGL camera axes) -> OpenCV camera axes
FOCAL_CANDIDATES = np.geomspace(0.45, 3.0, 15)  # x the image's longer side
PHONE_FOCAL = 0.80                      # a phone camera's focal length in video mode, x the image's longer side
PHONE_FOCAL_SIGMA = 0.15                # its spread across phones (log)
ESTIMATE_FOCAL_SIGMA = 0.35             # the spread of the PnP estimate from mediapipe landmarks (log), measured on synthetic clips


@dataclass(frozen=True)
class FitOptions:
    shape_components: int = 50          # identity components fitted (the rest stay 0)
    focal_px: float = 0.0               # known focal length in pixels (0: estimate it)
    identity_frames: int = 40           # frames used to fit the identity (spread over the clip)
    iterations_rigid: int = 100         # identity phase: rigid pose + shape
    iterations_full: int = 250          # identity phase: everything
    iterations_rigid_frames: int = 15   # per-frame phase (all frames, identity fixed): rigid pose only
    iterations_frames: int = 100        # per-frame phase: everything but the identity
    robust_scale: float = 0.02          # Cauchy scale of the residual, in face sizes
    shape_prior: float = 2e-4           # weight of |shape|^2
    expression_prior: float = 2e-4      # weight of the L1 norm of the expression coefficients
    jaw_prior: float = 2e-2             # weight of |jaw angle|^2 (radians)
    gaze_prior: float = 1e-3            # weight of |eye angles|^2 (radians)
    focal_prior: float = 2e-3           # weight of ((log f - log f0) / 0.5)^2 when estimating the focal length
    smoothness: float = 2e-3            # weight of expression / gaze changes between frames close in time
    smoothness_time_s: float = 0.5      # frames further apart than about this are barely tied
    contour_spread_mm: float = 2.0      # a landmark whose embedding spread is this many mm counts half
    grazing_cosine: float = 0.05        # surface facing the camera at this cosine or less: landmark ignored
    facing_cosine: float = 0.30         # ... at this cosine or more: full weight
    silhouette_weight: float = 0.3      # weight of a head point projecting outside the person's silhouette, vs a landmark
    silhouette_points: int = 800        # head vertices (evenly thinned) that must project inside the silhouette


@dataclass
class FitResult:
    shape: np.ndarray                   # (S,) full-length identity coefficients
    expression: np.ndarray              # (N, E)
    pose: np.ndarray                    # (N, J, 3) axis-angle per joint
    translation: np.ndarray             # (N, 3) metres
    focal_px: float
    principal_px: np.ndarray            # (2,) cx, cy
    image_size: tuple[int, int]         # width, height
    projected_px: np.ndarray            # (N, L, 2) fitted landmark positions
    weights: np.ndarray                 # (N, L) final data weights (confidence x reliability x visibility)
    reproj_iod_per_frame: np.ndarray    # (N,) weighted mean landmark error / inter-ocular distance in pixels
    iod_px: np.ndarray                  # (N,) inter-ocular distance of the fitted head, pixels
    info: dict[str, Any] = field(default_factory=dict)


def landmark_reliability(model: HeadModel, spread_mm: float) -> np.ndarray:
    """(L,) 0..1: how well each landmark is pinned to one surface point (the embedding's spread across views)."""
    spread = model.metadata.get("landmarks", {}).get("landmark_spread_mm")
    if not spread or len(spread) != len(model.landmark_faces):
        return np.ones(len(model.landmark_faces))
    return 1.0 / (1.0 + (np.asarray(spread, np.float64) / spread_mm) ** 2)


def project_points(points: Any, focal: Any, principal: Any) -> Any:
    """(..., 3) world points (camera at the origin looking along -z, y up) -> (..., 2) pixels."""
    import torch

    depth = (-points[..., 2]).clamp_min(1e-4)
    return torch.stack([principal[0] + focal * points[..., 0] / depth, principal[1] - focal * points[..., 1] / depth], -1)


class _LandmarkHead:
    """Landmarks and their surface normals for a batch of parameters, computed on the needed vertices only.

    With a view-dependent embedding, each frame's landmarks interpolate between
    the two yaw bins around the frame's yaw (set by ``set_yaw``; the frontal
    embedding until then). Every embedding (and the corners of the frontal
    embedding's triangles, for the normals) is one sparse matrix applied to the
    needed vertices: gathers over a (frames, vertices) tensor cost far more in
    the backward pass.
    """

    def __init__(self, model: HeadModel, dtype: Any, view: Any = None) -> None:
        import torch

        base = model.faces[model.landmark_faces]                         # (L, 3) vertex ids
        binned = model.faces[view.faces] if view is not None else np.zeros((0,) + base.shape, np.int64)   # (K, L, 3)
        self.ids, local = np.unique(np.concatenate([base.ravel(), binned.ravel()]), return_inverse=True)
        L, K, n = len(base), len(binned), len(self.ids)
        local_base, local_bins = local[: base.size].reshape(base.shape), local[base.size:].reshape(binned.shape)
        # rows: frontal landmarks (L), the frontal triangles' corners (3 L), every bin's landmarks (K L)
        rows = [np.repeat(np.arange(L), 3), L + np.arange(3 * L)]
        cols = [local_base.ravel(), local_base.ravel()]
        values = [np.asarray(model.landmark_barycentrics, np.float64).ravel(), np.ones(3 * L)]
        if K:
            rows.append(4 * L + np.repeat(np.arange(K * L), 3))
            cols.append(local_bins.ravel())
            values.append(np.asarray(view.barycentrics, np.float64).ravel())
        index = torch.as_tensor(np.stack([np.concatenate(rows), np.concatenate(cols)]))
        self.matrix = torch.sparse_coo_tensor(index, torch.as_tensor(np.concatenate(values), dtype=dtype),
                                              ((4 + K) * L, n), check_invariants=False).coalesce()
        self.L, self.K = L, K
        self.view = view
        self.model = model
        self.dtype = dtype
        self._bins = None

    def set_yaw(self, yaw_deg: np.ndarray | None) -> None:
        """Per-frame yaw (degrees, as seen from the camera) choosing the embedding bins; None: frontal embedding."""
        import torch

        self._bins = None if self.view is None or yaw_deg is None else \
            torch.as_tensor(self.view.weights(yaw_deg), dtype=self.dtype)    # (n, K), two non-zeros per row

    def __call__(self, shape: Any, expression: Any, pose: Any, translation: Any) -> tuple[Any, Any]:
        import torch

        verts = self.model.vertices(shape, expression, pose, translation, subset=self.ids)   # (B, n, 3)
        B, L = verts.shape[0], self.L
        binned = self._bins is not None
        matrix = self.matrix if binned else self._frontal_matrix()
        mixed = torch.sparse.mm(matrix, verts.permute(1, 0, 2).reshape(verts.shape[1], B * 3))      # (rows, B * 3)
        parts = torch.split(mixed, [L, 3 * L, self.K * L] if binned else [L, 3 * L])               # split: no zero-fill in backward
        corners = parts[1].reshape(3, L, B, 3)
        normals = torch.nn.functional.normalize(torch.cross(corners[1] - corners[0], corners[2] - corners[0], dim=-1), dim=-1)
        if binned:
            points = torch.einsum("bk,klbc->blc", self._bins, parts[2].reshape(self.K, L, B, 3))
        else:
            points = parts[0].reshape(L, B, 3).transpose(0, 1)
        return points, normals.transpose(0, 1)

    def _frontal_matrix(self) -> Any:
        import torch

        if not hasattr(self, "_frontal"):
            rows = self.matrix.indices()[0] < 4 * self.L
            self._frontal = torch.sparse_coo_tensor(self.matrix.indices()[:, rows], self.matrix.values()[rows],
                                                    (4 * self.L, self.matrix.shape[1]), check_invariants=False).coalesce()
        return self._frontal


class _Outline:
    """The silhouette term: head points projecting outside the person's mask cost like landmarks that far off."""

    def __init__(self, model: HeadModel, silhouette: Any, options: FitOptions) -> None:
        import torch

        inside = np.ones(model.num_vertices, bool)
        for name in ("neck", "mouth_interior", "teeth", "tongue", "eye_left", "eye_right"):   # not on the outline
            if name in model.regions:
                inside &= ~np.asarray(model.regions[name], bool)
        ids = np.flatnonzero(inside)
        self.ids = ids[:: max(1, len(ids) // max(options.silhouette_points, 1))]
        self.maps = torch.as_tensor(silhouette.outside, dtype=torch.float32)[:, None]      # (N, 1, h, w)
        self.scale = float(silhouette.scale)
        self.weight, self.robust_scale = options.silhouette_weight, options.robust_scale

    def outside_px(self, state: dict[str, Any], problem: "_Problem", frames: np.ndarray, rows: np.ndarray) -> Any:
        """(len(rows), P) frame pixels each head point of those batch rows lies outside the silhouette, beyond the
        mask's own resolution (one map pixel; 0 inside)."""
        import torch

        pick = torch.as_tensor(rows)
        verts = problem.model.vertices(state["shape"][None, : problem.S], state["expression"][pick],
                                       problem.pose_tensor(state)[pick], state["trans"][pick], subset=self.ids)
        at = project_points(verts, state["log_focal"].exp(), torch.as_tensor(problem.principal, dtype=torch.float32)) * self.scale
        height, width = self.maps.shape[-2:]
        grid = torch.stack([2 * at[..., 0] / width - 1, 2 * at[..., 1] / height - 1], -1)[:, None]
        outside = torch.nn.functional.grid_sample(self.maps[torch.as_tensor(frames[rows])], grid, align_corners=False)[:, 0, 0]
        return (outside - 1.0 / self.scale).clamp_min(0.0)      # within a map pixel: below what the mask resolves

    def reaching_out(self, state: dict[str, Any], problem: "_Problem", frames: np.ndarray) -> np.ndarray:
        """Batch rows whose head reaches out of the silhouette by more than ``OUTLINE_ACTIVE_PX``: only those pay."""
        outside = self.outside_px(state, problem, frames, np.arange(len(frames)))
        return np.flatnonzero(outside.max(1).values.numpy() > OUTLINE_ACTIVE_PX)

    def cost(self, state: dict[str, Any], problem: "_Problem", frames: np.ndarray, face_size: Any, rows: Any = None) -> Any:
        """(len(rows),) robust cost per batch row (default: all) of its head points outside the silhouette, in units of
        the frame's face size."""
        import torch

        rows = np.arange(len(frames)) if rows is None else np.asarray(rows)
        sq = (self.outside_px(state, problem, frames, rows) / face_size[torch.as_tensor(rows)]) ** 2
        return self.weight * (self.robust_scale ** 2 * torch.log1p(sq / self.robust_scale ** 2)).sum(1)


def view_yaw_deg(points: Any, rotation_aa: Any) -> np.ndarray:
    """(n,) yaw in degrees at which the camera sees each head (> 0: from the subject's left), as the embedding's bins."""
    from ..head.model import axis_angle_to_matrix

    R = axis_angle_to_matrix(rotation_aa.detach().double()).numpy()
    to_camera = -points.detach().double().mean(1).numpy()                 # head centre -> camera (at the origin)
    local = np.einsum("nji,nj->ni", R, to_camera)                          # in the head's own axes
    return np.degrees(np.arctan2(local[:, 0], local[:, 2]))


def _rest_landmarks(model: HeadModel, shape: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Landmarks (L, 3) and root joint (3,) of the head with identity ``shape`` (None: the mean head) at rest."""
    import torch

    shape_t = None if shape is None else torch.as_tensor(np.asarray(shape)[None], dtype=torch.float64)
    verts, joints = model.vertices(shape_t, pose=torch.zeros(1, model.num_joints, 3, dtype=torch.float64), return_joints=True)
    return model.landmarks(verts)[0].numpy(), joints[0, 0].numpy()


def _camera_matrix(focal: float, principal: np.ndarray) -> np.ndarray:
    """OpenCV's 3x3 intrinsic matrix of a pinhole camera with square pixels."""
    return np.array([[focal, 0, principal[0]], [0, focal, principal[1]], [0, 0, 1]], np.float64)


def _pnp(points3d: np.ndarray, points2d: np.ndarray, focal: float, principal: np.ndarray) -> tuple[np.ndarray, np.ndarray, float] | None:
    """OpenCV PnP: (rotation vector, translation) in OpenCV camera axes and the median error in pixels."""
    import cv2

    camera = _camera_matrix(focal, principal)
    ok, rvec, tvec = cv2.solvePnP(points3d, points2d, camera, None, flags=cv2.SOLVEPNP_SQPNP)
    if not ok:
        return None
    rvec, tvec = cv2.solvePnPRefineLM(points3d, points2d, camera, None, rvec, tvec)
    projected, _ = cv2.projectPoints(points3d, rvec, tvec, camera, None)
    error = float(np.median(np.linalg.norm(projected[:, 0] - points2d, axis=1)))
    if tvec[2, 0] <= 0:
        return None
    return rvec[:, 0], tvec[:, 0], error


def _pnp_from(points3d: np.ndarray, points2d: np.ndarray, focal: float, principal: np.ndarray,
              rvec: np.ndarray, tvec: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Refine a pose (OpenCV axes) from a starting guess: stays in the guess's basin (no mirrored solution)."""
    import cv2

    camera = _camera_matrix(focal, principal)
    rvec, tvec = cv2.solvePnPRefineLM(points3d, points2d, camera, None, rvec.reshape(3, 1).copy(), tvec.reshape(3, 1).copy())
    return rvec[:, 0], tvec[:, 0]


def _rotation_angle_deg(rvec_a: np.ndarray, rvec_b: np.ndarray) -> float:
    import cv2

    relative = cv2.Rodrigues(rvec_a)[0].T @ cv2.Rodrigues(rvec_b)[0]
    return float(np.degrees(np.arccos(np.clip((np.trace(relative) - 1) / 2, -1.0, 1.0))))


POSE_JUMP_DEG = 25.0            # a frame's rotation may differ from what its neighbours' motion predicts by this much
POSE_SPEED_MARGIN = 1.5         # ... plus this times the neighbours' angular speed over the time to the neighbour


def _repair_pose_jumps(rvecs: np.ndarray, tvecs: np.ndarray, times: np.ndarray, refine: Any) -> list[int]:
    """Frames whose rotation jumps away from both neighbours in time: restart them from the nearer neighbour.

    At high yaw, sliding landmarks can make PnP prefer the mirrored pose. A
    frame counts as a jump when it is further from each of its two neighbours
    (the next two at either end of the clip) than the neighbours' own motion
    allows. It is then refined from the nearer neighbour's pose, which keeps
    it in that pose's basin; if the data still pulls it back, the data wins.
    Edits ``rvecs``/``tvecs`` (OpenCV axes) in place; ``refine(k, rvec,
    tvec)`` refines frame k from a guess. Returns the repaired frames.
    """
    n, repaired = len(rvecs), []
    if n < 3:
        return repaired
    order = np.argsort(times, kind="stable")
    for position, k in enumerate(order):
        pair = (order[1], order[2]) if position == 0 else (order[n - 2], order[n - 3]) if position == n - 1 else \
            (order[position - 1], order[position + 1])
        a, b = pair
        speed = _rotation_angle_deg(rvecs[a], rvecs[b]) / max(abs(times[a] - times[b]), 1e-3)   # degrees per second

        def limit(m: int) -> float:
            return POSE_JUMP_DEG + POSE_SPEED_MARGIN * speed * abs(times[k] - times[m])

        if all(_rotation_angle_deg(rvecs[k], rvecs[m]) > limit(m) for m in pair):
            guide = min(pair, key=lambda m: abs(times[m] - times[k]))
            rvec, tvec = refine(k, rvecs[guide], tvecs[guide])
            rvecs[k], tvecs[k] = rvec, tvec
            if _rotation_angle_deg(rvec, rvecs[guide]) <= limit(guide):
                repaired.append(int(k))
    return repaired


def estimate_focal(rest: np.ndarray, observed: np.ndarray, usable: np.ndarray, image_size: tuple[int, int]) -> float:
    """The candidate focal length (pixels) under which PnP explains a few frames best."""
    principal = np.array(image_size, np.float64) / 2
    frames = np.linspace(0, len(observed) - 1, min(len(observed), 12)).round().astype(int)
    long_side = max(image_size)
    scores = []
    for factor in FOCAL_CANDIDATES:
        errors = []
        for i in frames:
            found = _pnp(rest[usable[i]], observed[i, usable[i]], factor * long_side, principal)
            size = np.sqrt(np.prod(np.ptp(observed[i, usable[i]], axis=0)))
            errors.append(found[2] / size if found else 1.0)
        scores.append(np.median(errors))
    scores = np.array(scores)
    best = int(np.argmin(scores))
    if 0 < best < len(scores) - 1:   # parabola through the best and its neighbours, in log focal
        y0, y1, y2 = scores[best - 1], scores[best], scores[best + 1]
        step = np.log(FOCAL_CANDIDATES[1] / FOCAL_CANDIDATES[0])
        denom = y0 - 2 * y1 + y2
        offset = 0.5 * (y0 - y2) / denom if denom > 0 else 0.0
        return float(FOCAL_CANDIDATES[best] * np.exp(np.clip(offset, -0.5, 0.5) * step) * long_side)
    return float(FOCAL_CANDIDATES[best] * long_side)


def combine_focal(estimate_px: float, long_side: int) -> float:
    """Shrink PnP's focal estimate towards a phone camera's (landmarks alone pin it down to about +-10%)."""
    log_prior, log_estimate = math.log(PHONE_FOCAL * long_side), math.log(estimate_px)
    w_prior, w_estimate = 1 / PHONE_FOCAL_SIGMA ** 2, 1 / ESTIMATE_FOCAL_SIGMA ** 2
    return math.exp((w_prior * log_prior + w_estimate * log_estimate) / (w_prior + w_estimate))


def fit_landmarks(model: HeadModel, landmarks_px: np.ndarray, confidence: np.ndarray, image_size: tuple[int, int],
                  times_s: np.ndarray | None = None, options: FitOptions = FitOptions(), progress: Any = None,
                  cancel: Any = None, view: Any = None, silhouette: Any = None) -> FitResult:
    """Fit ``model`` to (N, L, 2) pixel landmarks with (N, L) confidences; see the module doc.

    Two phases: the identity (and focal length) from up to ``identity_frames``
    frames spread over the clip, jointly with their per-frame parameters; then
    every frame's pose, expression, jaw and gaze with the identity fixed.
    ``view``: a view-dependent landmark embedding (``core.head.view_landmarks``)
    for landmarks from mediapipe; None for landmarks that are fixed surface points.
    ``silhouette``: the frames' ``core.track.silhouette.SilhouetteMaps`` (None: landmarks only).
    """
    started = time.monotonic()
    if not model.has_landmarks:
        raise CaptureError(f"the {model.source} head model has no landmark embedding; rebuild it")
    observed = np.asarray(landmarks_px, np.float64)[..., :2]
    N, L = observed.shape[:2]
    if L != len(model.landmark_faces):
        raise CaptureError(f"the tracker gave {L} landmarks per frame but the head model embeds {len(model.landmark_faces)}")
    confidence = np.nan_to_num(np.asarray(confidence, np.float64), nan=0.0).clip(0, 1)
    confidence = np.where(np.isfinite(observed).all(-1), confidence, 0.0)
    observed = np.nan_to_num(observed)
    times = np.arange(N, dtype=np.float64) / 30.0 if times_s is None else np.asarray(times_s, np.float64)
    width, height = image_size
    say = progress.update if progress is not None else (lambda *a, **k: None)

    with _torch_threads(1):   # many small tensor ops: threads cost more than they give (and results stay reproducible)
        return _fit(model, observed, confidence, times, (width, height), options, say, cancel, started, view, silhouette)


@contextlib.contextmanager
def _torch_threads(count: int) -> Any:
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _fit(model: HeadModel, observed: np.ndarray, confidence: np.ndarray, times: np.ndarray, image_size: tuple[int, int],
         options: FitOptions, say: Any, cancel: Any, started: float, view: Any, silhouette: Any) -> FitResult:
    width, height = image_size
    N = len(observed)
    problem = _Problem(model, observed, confidence, times, (width, height), options, cancel, view, silhouette)
    usable = problem.usable
    if (usable.sum(1) < 6).any():
        raise CaptureError(f"{int((usable.sum(1) < 6).sum())} frames have fewer than 6 reliable landmarks; the tracking is unusable")
    known_focal = options.focal_px > 0
    if known_focal:
        focal0 = float(options.focal_px)
        estimate = None
    else:
        rest, _ = _rest_landmarks(model)
        estimate = estimate_focal(rest, observed, usable, image_size)
        focal0 = combine_focal(estimate, max(width, height))
    say(0.05, f"focal length {'given' if known_focal else 'estimated'}: {focal0:.0f} px")

    # phase 1: identity (+ focal) on frames spread over the clip
    K = min(N, options.identity_frames)
    subset = np.unique(np.linspace(0, N - 1, K).round().astype(int))
    state = problem.initial_state(subset, np.zeros(problem.S), focal0)
    state = problem.optimize(state, subset, fit_identity=True, fit_focal=not known_focal, focal_center=focal0,
                             rounds=(options.iterations_rigid, options.iterations_full), say=say, span=(0.08, 0.55))
    shape, focal = state["shape"].detach().clone(), float(state["log_focal"].detach().exp())
    repairs = list(subset[problem.pose_repairs])
    # phase 2: every frame with the identity and focal length fixed, starting from phase 1's frames
    if len(subset) < N:
        state = problem.initial_state(np.arange(N), shape.numpy(), focal, known={**state, "frames": subset})
        repairs = sorted(set(repairs) | set(problem.pose_repairs))
        state = problem.optimize(state, np.arange(N), fit_identity=False, fit_focal=False, focal_center=focal,
                                 rounds=(options.iterations_rigid_frames, options.iterations_frames), say=say, span=(0.55, 1.0))
    return problem.result(state, np.arange(N) if len(subset) < N else subset, info={
        "focal_initial_px": round(focal0, 2), "focal_pnp_estimate_px": None if estimate is None else round(estimate, 2),
        "focal_known": known_focal, "identity_frames": int(len(subset)), "pose_repairs": [int(i) for i in repairs], "seconds": round(time.monotonic() - started, 3),
    })


class _Problem:
    """The objective over a set of frames, its initialization and its optimizer."""

    def __init__(self, model: HeadModel, observed: np.ndarray, confidence: np.ndarray, times: np.ndarray,
                 image_size: tuple[int, int], options: FitOptions, cancel: Any, view: Any = None, silhouette: Any = None) -> None:
        import torch

        self.model, self.options, self.cancel = model, options, cancel
        self.dtype = torch.float32
        self.observed, self.confidence, self.times = observed, confidence, times
        self.image_size = image_size
        self.principal = np.array(image_size, np.float64) / 2
        self.reliability = landmark_reliability(model, options.contour_spread_mm)
        self.S = min(options.shape_components, model.num_shape)
        self.E, self.J = model.num_expression, model.num_joints
        self.usable = (confidence > 0.3) & (self.reliability > 0.5)[None]
        self.usable[:, IRIS] = False
        self.head = _LandmarkHead(model, self.dtype, view)
        self.face_size = _face_sizes(observed, confidence)
        self.outline = None if silhouette is None or options.silhouette_weight <= 0 else _Outline(model, silhouette, options)

    def _t(self, array: Any) -> Any:
        import torch

        return torch.as_tensor(np.asarray(array), dtype=self.dtype)

    def initial_state(self, frames: np.ndarray, shape: np.ndarray, focal: float,
                      known: dict[str, Any] | None = None) -> dict[str, Any]:
        """Per-frame rigid poses from PnP with the landmarks of the head ``shape`` at rest.

        A frame whose PnP pose disagrees with its neighbours in time (at high
        yaw, sliding landmarks can make the mirrored pose fit better) restarts
        from its neighbour's pose. ``known``: a fitted state for ``known["frames"]``
        (a subset of ``frames``, sorted): those frames keep their values, the
        others get PnP poses and expressions, jaw and gaze interpolated in time.
        """
        import cv2
        import torch

        rest, root_joint = _rest_landmarks(self.model, shape)
        camera_rvecs, camera_tvecs = np.zeros((len(frames), 3)), np.zeros((len(frames), 3))
        for k, i in enumerate(frames):
            found = _pnp(rest[self.usable[i]], self.observed[i, self.usable[i]], focal, self.principal)
            if found is None:
                raise CaptureError(f"frame {i}: the landmarks cannot be explained by a head pose; the tracking is unusable")
            camera_rvecs[k], camera_tvecs[k] = found[0], found[1]
        self.pose_repairs = _repair_pose_jumps(camera_rvecs, camera_tvecs, self.times[frames], lambda k, rvec, tvec: _pnp_from(
            rest[self.usable[frames[k]]], self.observed[frames[k], self.usable[frames[k]]], focal, self.principal, rvec, tvec))
        rotations, translations = np.zeros((len(frames), 3)), np.zeros((len(frames), 3))
        for k in range(len(frames)):
            R = CAMERA_ROTATION @ cv2.Rodrigues(camera_rvecs[k])[0]
            rotations[k] = cv2.Rodrigues(R)[0][:, 0]
            translations[k] = CAMERA_ROTATION @ camera_tvecs[k] + R @ root_joint - root_joint
        n = len(frames)
        values = {"rot": rotations, "trans": translations, "expression": np.zeros((n, self.E)),
                  "jaw": np.zeros((n, 3)), "gaze": np.zeros((n, 2, 2))}
        if known is not None:
            at = np.searchsorted(frames, known["frames"])
            for name in values:
                fitted = known[name].detach().numpy().astype(np.float64)
                if name in ("expression", "jaw", "gaze"):   # smooth quantities: interpolate between the fitted frames
                    flat = fitted.reshape(len(at), -1)
                    values[name] = np.stack([np.interp(self.times[frames], self.times[known["frames"]], column)
                                             for column in flat.T], -1).reshape((n,) + fitted.shape[1:])
                values[name][at] = fitted
        state = {name: torch.nn.Parameter(self._t(value)) for name, value in values.items()}
        state["shape"] = torch.nn.Parameter(self._t(shape))
        state["log_focal"] = torch.nn.Parameter(self._t([math.log(focal)]))
        return state

    def pose_tensor(self, state: dict[str, Any]) -> Any:
        import torch

        n = state["rot"].shape[0]
        zeros = torch.zeros(n, 3, dtype=self.dtype)
        eye_aa = torch.cat([state["gaze"], torch.zeros(n, 2, 1, dtype=self.dtype)], -1)   # (pitch, yaw, 0) axis-angle
        return torch.stack([state["rot"], zeros, state["jaw"], eye_aa[:, 0], eye_aa[:, 1]], 1)

    def forward(self, state: dict[str, Any]) -> tuple[Any, Any, Any]:
        points, normals = self.head(state["shape"][None, : self.S], state["expression"], self.pose_tensor(state), state["trans"])
        return points, normals, project_points(points, state["log_focal"].exp(), self._t(self.principal))

    def visibility(self, points: Any, normals: Any) -> Any:
        """(n, L) 0..1: landmarks on surface turned away or seen edge-on (where trackers slide) count less."""
        import torch

        cosine = (normals * torch.nn.functional.normalize(-points, dim=-1)).sum(-1)
        low, high = self.options.grazing_cosine, self.options.facing_cosine
        return ((cosine - low) / (high - low)).clamp(0, 1)

    def optimize(self, state: dict[str, Any], frames: np.ndarray, fit_identity: bool, fit_focal: bool, focal_center: float,
                 rounds: tuple[int, int], say: Any, span: tuple[float, float]) -> dict[str, Any]:
        import torch

        o = self.options
        n = len(frames)
        obs = self._t(self.observed[frames])
        base_weight = self._t(self.confidence[frames] * self.reliability[None])
        face_size = self._t(self.face_size[frames])[:, None, None]
        tie = self._t(np.exp(-np.abs(np.diff(self.times[frames])) / o.smoothness_time_s))[:, None]
        self.head.set_yaw(None)   # the batch changes: frontal embedding until the first refresh
        for name, value in state.items():
            value.requires_grad_(name not in ("shape", "log_focal") or (fit_identity if name == "shape" else fit_focal))

        def objective(vis: Any, full: bool, outlined: Any = None) -> tuple[Any, dict[str, float]]:
            points, normals, proj = self.forward(state)
            sq = (((proj - obs) / face_size) ** 2).sum(-1)
            robust = o.robust_scale ** 2 * torch.log1p(sq / o.robust_scale ** 2)
            terms = {"data": (base_weight * vis * robust).sum() / n, "shape": o.shape_prior * (state["shape"] ** 2).sum()}
            if outlined is not None and len(outlined):
                terms["silhouette"] = self.outline.cost(state, self, frames, face_size[:, :, 0], outlined).sum() / n
            if fit_focal:
                terms["focal"] = o.focal_prior * ((state["log_focal"][0] - math.log(focal_center)) / 0.5) ** 2
            if full:
                expression, gaze = state["expression"], state["gaze"]
                terms["expression"] = o.expression_prior * expression.abs().sum() / n
                terms["jaw"] = o.jaw_prior * (state["jaw"] ** 2).sum() / n
                terms["gaze"] = o.gaze_prior * (gaze ** 2).sum() / n
                if n > 1:
                    change = ((expression[1:] - expression[:-1]) ** 2).sum(-1, keepdim=True) + ((gaze[1:] - gaze[:-1]) ** 2).sum((-1, -2))[:, None]
                    terms["smooth"] = o.smoothness * (tie * change).sum() / n
            return sum(terms.values()), {k: float(v.detach()) for k, v in terms.items()}

        lrs = {"rot": 0.01, "trans": 0.002, "shape": 0.05, "log_focal": 0.01}
        full_lrs = {"rot": 0.004, "trans": 0.001, "shape": 0.03, "log_focal": 0.005, "expression": 0.01, "jaw": 0.004, "gaze": 0.01}
        total_steps, done = sum(rounds), 0
        outlined = None
        for phase, (steps, table) in enumerate(zip(rounds, (lrs, full_lrs))):
            full = phase == 1
            groups = [{"params": [state[k]], "lr": lr} for k, lr in table.items() if state[k].requires_grad]
            if steps <= 0 or not groups:
                continue
            optimizer = torch.optim.Adam(groups)
            schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps, eta_min=0.0)
            for step in range(steps):
                if step % 25 == 0:
                    if self.cancel is not None:
                        self.cancel.check()
                    with torch.no_grad():
                        points, normals, _ = self.forward(state)
                        vis = self.visibility(points, normals)
                        if self.outline is not None:   # only frames where the head reaches out of the silhouette
                            outlined = self.outline.reaching_out(state, self, frames)
                        self.head.set_yaw(view_yaw_deg(points, state["rot"]))
                optimizer.zero_grad(set_to_none=True)
                loss, terms = objective(vis, full, outlined)
                loss.backward()
                optimizer.step()
                schedule.step()
                with torch.no_grad():
                    state["expression"].clamp_(0.0, 1.0)
                    state["gaze"].clamp_(-0.6, 0.6)
                done += 1
                if step % 20 == 0:
                    say(span[0] + (span[1] - span[0]) * done / total_steps,
                        f"fitting {'the identity' if fit_identity else 'every frame'}: step {done}/{total_steps}")
        state["terms"] = terms
        return state

    def result(self, state: dict[str, Any], frames: np.ndarray, info: dict[str, Any]) -> FitResult:
        import torch

        o = self.options
        with torch.no_grad():
            points, normals, proj = self.forward(state)
            vis = self.visibility(points, normals).numpy().astype(np.float64)
            proj_np = proj.numpy().astype(np.float64)
            focal = float(state["log_focal"].exp())
            eyes = points[:, list(OUTER_EYE_CORNERS)].numpy().astype(np.float64)
        observed = self.observed[frames]
        weights = self.confidence[frames] * self.reliability[None] * vis
        iod_px = focal * np.linalg.norm(eyes[:, 0] - eyes[:, 1], axis=1) / np.maximum(-eyes[..., 2].mean(1), 1e-6)
        error_px = np.linalg.norm(proj_np - observed, axis=-1)
        # landmarks the robust loss treats as outliers (tracker failures) do not count in the mean error
        inlier = 1.0 / (1.0 + (error_px / self.face_size[frames][:, None] / o.robust_scale) ** 2 / 4)
        counted = weights * inlier
        per_frame = (counted * error_px).sum(1) / np.maximum(counted.sum(1), 1e-9) / iod_px
        full_shape = np.zeros(self.model.num_shape, np.float32)
        full_shape[: self.S] = state["shape"].detach().numpy()[: self.S]
        info = {**info, "final_terms": {k: float(f"{v:.6g}") for k, v in state.get("terms", {}).items()}, "shape_components": self.S,
                "reproj_px_median": round(float(np.median(error_px[weights > 0.5])), 4) if (weights > 0.5).any() else None}
        return FitResult(
            shape=full_shape,
            expression=state["expression"].detach().numpy().astype(np.float32),
            pose=self.pose_tensor(state).detach().numpy().astype(np.float32),
            translation=state["trans"].detach().numpy().astype(np.float32),
            focal_px=focal,
            principal_px=self.principal.copy(),
            image_size=(int(self.image_size[0]), int(self.image_size[1])),
            projected_px=proj_np.astype(np.float32),
            weights=weights.astype(np.float32),
            reproj_iod_per_frame=per_frame,
            iod_px=iod_px,
            info=info,
        )


def _face_sizes(observed: np.ndarray, confidence: np.ndarray) -> np.ndarray:
    """(N,) sqrt of the area of each frame's landmark box (pixels), the unit of the residuals."""
    sizes = []
    for points, conf in zip(observed, confidence):
        keep = points[conf > 0.3] if (conf > 0.3).sum() >= 6 else points
        extent = np.ptp(keep, axis=0)
        sizes.append(max(np.sqrt(extent[0] * extent[1]), 1.0))
    return np.array(sizes)
