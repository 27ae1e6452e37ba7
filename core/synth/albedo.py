"""Procedural, biophysical UV skin albedos of a head model: the ground truth of the texture benchmarks.

``generate_albedo(model, size, seed)`` paints a complete (size, size, 3)
linear-reflectance UV albedo for any head model in FLAME conventions (metres,
+y up, +z forward): a seeded identity (``sample_skin``) gives melanin and
haemoglobin concentrations, which a two-layer skin model turns into colour,
and spatial maps vary them by region, with hair, pores, wrinkles and the
non-skin parts (eyes, mouth) on top.

Colour comes from physics, not from a palette: the biophysical skin model of
``core/skin.py`` (epidermal melanin over a blood-filled dermis, Kubelka-Munk,
integrated under D65 into linear sRGB), looked up per texel.

Where things are comes from the model's own geometry, so that features have
their physical size whatever the UV stretch: anchors (eye centres, nose tip,
mouth, chin) are found from the region masks and the rest surface, and
regions (cheeks, nose, brows, eyelids, beard) are soft 3D distance fields
around them. Smooth maps are computed on a 512^2 layout of the UV space and
upsampled; fine detail (pores, the microrelief's furrows, the lips' lines,
hair strands, wrinkles, freckles, irises) is drawn at the output size with
sizes in millimetres, its contrast kept area-true when a feature is smaller
than a texel (a pattern too fine for the texels fades out rather than
aliasing), so a 2048^2 albedo has detail a 512^2 one cannot hold; the skin
surface's micro-detail is zero-mean over a few millimetres, so it never
shifts the skin model's colour. The whole texture is filled, gutter
included, so bilinear sampling never meets black.

Seeded and deterministic: the same seed (and size) gives bit-identical
output. This module knows head models and arrays; it reads and writes no
files and does not touch the texture stages.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from ..color import ita_category, ita_degrees
from ..head.model import HeadModel
from ..skin import NON_SKIN_ALBEDOS, skin_lut, skin_lut_coordinates, skin_lut_lookup

VENOUS_OXY_RATIO = 0.4                 # blood under thin eyelid skin and dark circles: venous, purple
FIELD_SIZE = 512                       # resolution of the smooth maps (upsampled to the output size)
SURFACE_MEAN_MM = 2.0                  # the skin's micro-detail averages out over this: texture, not a colour change


# --- identities -----------------------------------------------------------------------------------------------------
MELANIN_RANGE = (0.002, 0.15)          # tone 0 .. 1 (log-uniform between)
# linear albedos: iris colours (dark brown, brown, hazel, green, blue, grey) and hair colours
IRIS_COLOURS = ((0.05, 0.025, 0.012), (0.12, 0.06, 0.025), (0.17, 0.12, 0.05), (0.10, 0.14, 0.07),
                (0.10, 0.16, 0.25), (0.17, 0.19, 0.21))
HAIR_COLOURS = ((0.012, 0.010, 0.008), (0.035, 0.022, 0.013), (0.085, 0.050, 0.026), (0.17, 0.105, 0.055),
                (0.38, 0.27, 0.14), (0.23, 0.075, 0.028), (0.34, 0.32, 0.30))   # black .. light brown, blond, red, grey


@dataclass(frozen=True)
class SkinParams:
    """One synthetic identity's skin; every field is a plain number, so it goes into JSON as it is."""

    melanin: float                 # epidermal melanin volume fraction (0.002 very light .. 0.15 very dark)
    pheomelanin_ratio: float       # pheomelanin share of the melanin (reddish-yellow; higher in light skin)
    haemoglobin: float             # dermal blood volume fraction at rest (cheeks and lips get more)
    oxy_ratio: float               # oxygen saturation of that blood
    freckles: float                # 0 none .. 1 many
    stubble: float                 # 0 clean-shaven .. 1 a few days' beard
    moles: int                     # number of moles on face and neck
    blotchiness: float             # strength of 1-3 cm pigment and redness variation, 0 .. 1
    pores: float                   # pore visibility, 0 .. 1
    wrinkles: float                # fine-wrinkle depth (an age proxy), 0 .. 1
    iris_rgb: tuple[float, float, float]   # linear albedo of the iris
    hair_rgb: tuple[float, float, float]   # linear albedo of brows, stubble and scalp hair
    tone: float = 0.5              # the melanin quantile this identity was drawn at (0 very light .. 1 very dark)
    hair_coverage: float = 0.9     # scalp hair density, 0 bald .. 1 full


def sample_skin(seed: int, tone: float | None = None) -> SkinParams:
    """A random identity; ``tone`` in [0, 1] forces the melanin quantile (0 very light .. 1 very dark)."""
    rng = np.random.default_rng([int(seed), 7331])
    drawn = float(rng.random())              # always drawn, so a forced tone leaves the other draws unchanged
    tone = drawn if tone is None else float(np.clip(tone, 0.0, 1.0))
    low, high = np.log(MELANIN_RANGE)
    melanin = float(np.exp(low + tone * (high - low)))
    light = (1.0 - tone) ** 2
    pheomelanin = float(np.clip(0.42 - 0.3 * tone + rng.normal(0, 0.07), 0.05, 0.7))
    haemoglobin = float(np.clip(np.exp(rng.normal(math.log(0.022), 0.3)), 0.008, 0.06))
    oxy = float(rng.uniform(0.6, 0.85))
    freckles = float(rng.uniform(0.25, 1.0)) if rng.random() < 0.5 * light else 0.0
    stubble = float(rng.uniform(0.2, 1.0)) if rng.random() < 0.35 else 0.0
    moles = int(min(rng.poisson(2.5), 10))
    blotchiness = float(rng.uniform(0.3, 1.0))
    pores = float(rng.uniform(0.4, 1.0))
    wrinkles = float(rng.random() ** 1.5)
    iris_weights = np.array([0.35 + 0.65 * tone, 0.3, 0.35 * light, 0.25 * light, 0.5 * light, 0.15 * light])
    iris = IRIS_COLOURS[int(rng.choice(len(IRIS_COLOURS), p=iris_weights / iris_weights.sum()))]
    hair_weights = np.array([0.3 + 0.7 * tone, 0.35, 0.35 * light + 0.05, 0.3 * light, 0.25 * light, 0.12 * light,
                             0.15 * wrinkles ** 3])
    hair = HAIR_COLOURS[int(rng.choice(len(HAIR_COLOURS), p=hair_weights / hair_weights.sum()))]
    iris_gain, hair_gain = rng.uniform(0.85, 1.15, 2)
    hair_coverage = 0.0 if rng.random() < 0.08 else float(rng.uniform(0.75, 1.0))
    return SkinParams(melanin=melanin, pheomelanin_ratio=pheomelanin, haemoglobin=haemoglobin, oxy_ratio=oxy,
                      freckles=freckles, stubble=stubble, moles=moles, blotchiness=blotchiness, pores=pores,
                      wrinkles=wrinkles, iris_rgb=tuple(float(c * iris_gain) for c in iris),
                      hair_rgb=tuple(float(c * hair_gain) for c in hair), tone=tone, hair_coverage=hair_coverage)


@dataclass
class Albedo:
    linear: np.ndarray     # (size, size, 3) float32 linear reflectance in [0, 1], row 0 = top (v = 1)
    skin: SkinParams
    ita_deg: float         # median ITA over the face region's skin texels (CIELAB of the albedo, D65)

    def to_dict(self) -> dict[str, Any]:
        return {"skin": asdict(self.skin), "ita_deg": round(float(self.ita_deg), 3),
                "ita_category": ita_category(self.ita_deg), "size": int(self.linear.shape[0])}


# --- where things are: anchors and smooth region fields on a FIELD_SIZE layout -----------------------------------------
@dataclass
class _Anchors:
    eyes: np.ndarray           # (2, 3) eyeball centres, subject's left (+x) first, metres
    eye_radius: float
    nose_tip: np.ndarray       # (3,)
    mouth: np.ndarray          # (3,) centre of the lips
    chin: np.ndarray           # (3,)
    scale: float               # inter-ocular distance / 63 mm: typical offsets below are scaled by it

    def mm(self, millimetres: float) -> float:
        """A typical facial distance in millimetres, in this head's metres."""
        return millimetres * 1e-3 * self.scale


@dataclass
class AlbedoLayout:
    """The model's UV space at FIELD_SIZE: every map filled over the gutter, ready to upsample."""

    anchors: _Anchors
    covered: np.ndarray        # (F, F) bool: texels inside UV triangles
    near_covered: np.ndarray   # (F, F) bool: those and the gutter texels next to them
    position: np.ndarray       # (F, F, 3) rest position, metres
    mm_per_texel: np.ndarray   # (F, F) surface size of a texel, millimetres
    face_mm_per_texel: float   # its median over the face
    fields: dict[str, np.ndarray]   # name -> (F, F) float32 weights in [0, 1]
    ita_texels: np.ndarray     # (K,) flat indices of the face's skin texels (where ITA is measured)


def _anchors(model: HeadModel) -> _Anchors:
    from ..errors import StudioAvatarError

    verts = np.asarray(model.template_m, np.float64)
    regions = model.regions
    missing = [name for name in ("face", "eye_left", "eye_right", "lips") if not regions.get(name, np.zeros(1, bool)).any()]
    if missing:
        raise StudioAvatarError(f"the {model.source} head model has no {', '.join(missing)} region; "
                                "procedural albedos need them to place facial features")
    eyes = np.stack([verts[regions["eye_left"]].mean(0), verts[regions["eye_right"]].mean(0)])
    if eyes[0, 0] < eyes[1, 0]:
        eyes = eyes[::-1].copy()
    eye_radius = float(np.median(np.linalg.norm(verts[regions["eye_left"]] - eyes[0], axis=1)))
    scale = float(np.linalg.norm(eyes[0] - eyes[1]) / 0.063)
    lips = verts[regions["lips"]]
    mouth = lips.mean(0)
    face = verts[regions["face"]]
    midline = face[np.abs(face[:, 0]) < 0.01 * scale]
    between = midline[(midline[:, 1] > mouth[1]) & (midline[:, 1] < eyes[:, 1].mean())]
    nose_tip = between[np.argmax(between[:, 2])]
    below = midline[midline[:, 1] < mouth[1] - 0.025 * scale]
    chin = below[np.argmax(below[:, 2])]
    return _Anchors(eyes, eye_radius, nose_tip, mouth, chin, scale)


def _front_point(verts: np.ndarray, x: float, y: float, radius: float) -> np.ndarray:
    """The front-most surface point over (x, y): the vertex of largest z within ``radius`` of it in the image plane."""
    near = np.hypot(verts[:, 0] - x, verts[:, 1] - y)
    candidates = np.nonzero(near < radius)[0]
    if len(candidates) == 0:
        return verts[np.argmin(near)]
    return verts[candidates[np.argmax(verts[candidates, 2])]]


def _gauss(distance: np.ndarray, sigma: float) -> np.ndarray:
    return np.exp(-0.5 * (distance / sigma) ** 2)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def _polyline_distance(points: np.ndarray, line: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distance of (M, 3) points to a polyline (K, 3), and where along it (0..1) the closest point lies."""
    best = np.full(len(points), np.inf)
    where = np.zeros(len(points))
    lengths = np.linalg.norm(np.diff(line, axis=0), axis=1)
    start = np.concatenate([[0.0], np.cumsum(lengths)]) / lengths.sum()
    for k in range(len(line) - 1):          # a handful of segments, each vectorized over the points
        a, b = line[k], line[k + 1]
        t = np.clip((points - a) @ (b - a) / max(float((b - a) @ (b - a)), 1e-12), 0.0, 1.0)
        distance = np.linalg.norm(points - (a + t[:, None] * (b - a)), axis=1)
        closer = distance < best
        best = np.where(closer, distance, best)
        where = np.where(closer, start[k] + t * (start[k + 1] - start[k]), where)
    return best, where


def _smooth_vertex_values(values: np.ndarray, faces: np.ndarray, iterations: int) -> np.ndarray:
    """Per-vertex values averaged with their mesh neighbours ``iterations`` times (a soft boundary on the surface)."""
    edges = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    edges = np.concatenate([edges, edges[:, ::-1]])
    count = np.bincount(edges[:, 0], minlength=len(values)) + 1.0
    for _ in range(iterations):
        values = (np.bincount(edges[:, 0], values[edges[:, 1]], minlength=len(values)) + values) / count
    return values


def _feature_fields(model: HeadModel, anchors: _Anchors, points: np.ndarray, region: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """(M,) weights in [0, 1] of the facial zones at the texels at rest positions ``points`` (M, 3)."""
    a = anchors
    verts = np.asarray(model.template_m, np.float64)
    face_verts = verts[model.regions["face"]]
    skin = region["skin"]
    fields: dict[str, np.ndarray] = {}

    def front(x: float, y: float) -> np.ndarray:
        return _front_point(face_verts, x, y, a.mm(6))

    eye_y = float(a.eyes[:, 1].mean())
    side = np.where(points[:, 0] >= 0, 0, 1)            # the eye on the texel's side
    eye = a.eyes[side]
    to_eye = points - eye
    eye_gap = np.maximum(np.linalg.norm(to_eye, axis=1) - a.eye_radius, 0.0)   # distance from the eyeball surface
    in_front = _sigmoid((to_eye[:, 2] + 0.3 * a.eye_radius) / a.mm(1.5))
    upper = _sigmoid(to_eye[:, 1] / a.mm(1.0))
    fields["upper_lid"] = skin * in_front * upper * _gauss(eye_gap, a.mm(5.0))
    fields["under_eye"] = skin * in_front * (1 - upper) * _gauss(eye_gap, a.mm(9.0))
    fields["eye_zone"] = skin * _gauss(eye_gap, a.mm(16.0))

    cheeks = [front(sign * 1.05 * abs(a.eyes[0, 0]), eye_y - a.mm(33)) for sign in (1, -1)]
    fields["cheek"] = skin * np.maximum(*(_gauss(np.linalg.norm(points - c, axis=1), a.mm(15)) for c in cheeks))
    bridge = front(0.0, eye_y - a.mm(6))
    ridge, _ = _polyline_distance(points, np.stack([bridge, a.nose_tip]))
    alae = [front(sign * a.mm(15), a.nose_tip[1] - a.mm(9)) for sign in (1, -1)]
    nose = np.maximum.reduce([_gauss(ridge, a.mm(7)), _gauss(np.linalg.norm(points - a.nose_tip, axis=1), a.mm(10))]
                             + [_gauss(np.linalg.norm(points - c, axis=1), a.mm(7)) for c in alae])
    fields["nose"] = skin * nose
    fields["chin"] = skin * _gauss(np.linalg.norm(points - a.chin, axis=1), a.mm(14))
    forehead_y = eye_y + a.mm(30)
    fields["forehead"] = skin * _sigmoid((points[:, 1] - forehead_y) / a.mm(3)) * _gauss(points[:, 0], a.mm(45)) \
        * _sigmoid((points[:, 2] - a.eyes[0, 2]) / a.mm(4)) * (1 - region["hair"])

    brows = np.zeros(len(points))
    for k, outward in ((0, 1.0), (1, -1.0)):
        ex, ey = a.eyes[k, 0], a.eyes[k, 1]
        line = np.stack([front(ex + outward * a.mm(dx), ey + a.mm(dy))
                         for dx, dy in ((-19, 17), (-8, 19.5), (4, 21), (15, 19.5), (24, 14))])
        distance, along = _polyline_distance(points, line)
        half_height = a.mm(5.5) - along * a.mm(3.5)       # thick at the nose end, thin at the temple
        brows = np.maximum(brows, _sigmoid((half_height - distance) / a.mm(0.8)))
    fields["brow"] = skin * brows * (1 - region["lips"])

    # beard: below a line from the nose base over the cheeks to the sideburns, in front of the ears, down the throat
    mouth_y = a.mouth[1]
    knots_x = np.array([0.0, 15.0, 26.0, 45.0, 60.0, 80.0]) * 1e-3 * a.scale
    knots_y = np.array([mouth_y + a.mm(16), mouth_y + a.mm(15), mouth_y + a.mm(4), mouth_y + a.mm(12),
                        eye_y - a.mm(12), eye_y + a.mm(8)])
    top = np.interp(np.abs(points[:, 0]), knots_x, knots_y)
    ears = model.regions.get("ears")
    ear_z = float(verts[ears, 2].mean()) if ears is not None and ears.any() else float(a.eyes[0, 2]) - a.mm(70)
    fields["beard"] = (skin * _sigmoid((top - points[:, 1]) / a.mm(2.5)) * _sigmoid((points[:, 2] - ear_z - a.mm(12)) / a.mm(4))
                       * _sigmoid((points[:, 1] - a.chin[1] + a.mm(45)) / a.mm(6))
                       * (1 - region["lips"]) * (1 - region["ears"]))
    return fields


_LAYOUTS: dict[tuple[Any, ...], AlbedoLayout] = {}


def albedo_layout(model: HeadModel) -> AlbedoLayout:
    """The smooth maps of ``model`` (cached per model for the process)."""
    key = (id(model), model.metadata.get("fingerprint"), len(model.faces))
    if key not in _LAYOUTS:
        if len(_LAYOUTS) > 4:
            _LAYOUTS.clear()
        _LAYOUTS[key] = _build_layout(model)
    return _LAYOUTS[key]


def _build_layout(model: HeadModel) -> AlbedoLayout:
    import cv2
    import torch

    from ..image_io import push_pull_fill
    from ..texture.uv import texel_geometry

    size = FIELD_SIZE
    geometry = texel_geometry(model, size)
    anchors = _anchors(model)
    verts = np.asarray(model.template_m, np.float64)
    faces = np.asarray(model.faces, np.int64)
    points = geometry.interpolate(torch.as_tensor(verts)).numpy()

    def vertex_field(values: np.ndarray) -> np.ndarray:
        return geometry.interpolate(torch.as_tensor(values[:, None])).numpy()[:, 0]

    region = {name: mask.numpy().astype(np.float64) for name, mask in geometry.regions.items()}
    for name in ("face", "scalp", "ears", "neck", "lips", "eye_left", "eye_right", "mouth_interior", "teeth", "tongue"):
        region.setdefault(name, np.zeros(geometry.count))
    region["skin"] = geometry.skin.numpy().astype(np.float64)
    # the mouth's parts keep their colours on their own islands; the inner lips in the face island are lips,
    # whose edge follows the surface (vertex mask interpolated), not the texels' triangles
    for name, island in (("mouth_interior", "mouth_cavity"), ("teeth", "teeth"), ("tongue", "tongue")):
        own = geometry.in_islands(model, island).numpy() if model.metadata.get("uv_islands") else np.ones(geometry.count, bool)
        region["lips_inner"] = np.maximum(region.get("lips_inner", 0.0), region[name] * ~own)
        region[name] = region[name] * own
    lips = vertex_field(model.regions.get("lips", np.zeros(len(verts), bool)).astype(np.float64))
    region["lips"] = np.maximum(np.clip((lips - 0.5) * 2.5 + 0.5, 0.0, 1.0), region["lips_inner"])
    scalp = model.regions.get("scalp", np.zeros(len(verts), bool)).astype(np.float64)
    # hair: the scalp down to the nape, and a little over its edge above the ears
    ears = model.regions.get("ears", np.zeros(len(verts), bool))
    ear_y = float(verts[ears, 1].mean()) if ears.any() else float(anchors.eyes[0, 1]) - anchors.mm(15)
    spill = np.clip(vertex_field(_smooth_vertex_values(scalp, faces, 3)) * 2.5, 0.0, 1.0)
    spill *= _sigmoid((points[:, 1] - ear_y - anchors.mm(10)) / anchors.mm(4))
    nape = _sigmoid((points[:, 1] - ear_y + anchors.mm(20)) / anchors.mm(4))
    region["hair"] = np.maximum(region["scalp"], spill) * nape * region["skin"]
    fields = {name: region[name] for name in ("skin", "hair", "lips", "ears", "neck", "face", "mouth_interior", "teeth", "tongue")}
    fields["eye"] = region["eye_left"] + region["eye_right"]
    fields.update(_feature_fields(model, anchors, points, region))

    # surface size of a texel: sqrt(3D area / UV area) of its triangle
    corners = verts[faces]
    area_3d = 0.5 * np.linalg.norm(np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0]), axis=1)
    uv = np.asarray(model.uv, np.float64)[np.asarray(model.face_uv, np.int64)] * size
    area_uv = 0.5 * np.abs(np.cross(uv[:, 1] - uv[:, 0], uv[:, 2] - uv[:, 0]))
    mm_per_texel = (np.sqrt(area_3d / np.maximum(area_uv, 1e-9)) * 1e3)[geometry.triangle.numpy()]

    names = list(fields)
    stack = np.stack([fields[n] for n in names] + [mm_per_texel] + [points[:, k] for k in range(3)], 1).astype(np.float32)
    covered = geometry.mask().numpy()
    image = np.zeros((size * size, stack.shape[1]), np.float32)
    image[geometry.texels.numpy()] = stack
    filled = np.concatenate([push_pull_fill(image.reshape(size, size, -1)[..., k:k + 4], covered)
                             for k in range(0, stack.shape[1], 4)], axis=2)   # OpenCV resizes up to 4 channels at once
    face_skin = (region["face"] > 0) & (region["skin"] > 0)
    near_covered = cv2.dilate(covered.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
    return AlbedoLayout(anchors=anchors, covered=covered, near_covered=near_covered, position=np.ascontiguousarray(filled[..., -3:]),
                   mm_per_texel=np.ascontiguousarray(filled[..., len(names)]),
                   face_mm_per_texel=float(np.median(mm_per_texel[face_skin])),
                   fields={n: np.ascontiguousarray(filled[..., k]) for k, n in enumerate(names)},
                   ita_texels=geometry.texels.numpy()[face_skin])


# --- drawing at the output size -------------------------------------------------------------------------------------
Window = tuple[slice, slice]


def _resize(field: np.ndarray, size: int) -> np.ndarray:
    import cv2

    if field.shape[0] == size:
        return field
    interpolation = cv2.INTER_LINEAR if size > field.shape[0] else cv2.INTER_AREA
    return cv2.resize(field, (size, size), interpolation=interpolation)


class _Canvas:
    """The output-size views of a layout's maps (each upsampled once) and the boxes where a map matters."""

    def __init__(self, layout: AlbedoLayout, size: int) -> None:
        self.layout, self.size = layout, size
        self.texel_mm = layout.face_mm_per_texel * FIELD_SIZE / size     # a face texel at the output size
        self._cache: dict[str, np.ndarray] = {}

    def field(self, name: str, window: Window | None = None) -> np.ndarray:
        if name not in self._cache:
            source = self.layout.position if name == "position" else self.layout.fields[name]
            self._cache[name] = _resize(source, self.size)
        return self._cache[name] if window is None else self._cache[name][window]

    def windows(self, weight: np.ndarray, margin_mm: float = 3.0, threshold: float = 0.01) -> list[Window]:
        """Disjoint boxes (at the output size) around the connected parts of the UV islands where a (F, F) map
        exceeds ``threshold`` (the gutter beyond a texel or two of an island does not count)."""
        import cv2

        inside = (weight > threshold) & self.layout.near_covered
        count, _, stats, _ = cv2.connectedComponentsWithStats(inside.astype(np.uint8), connectivity=8)
        margin = int(math.ceil(margin_mm / self.layout.face_mm_per_texel)) + 1
        boxes = [[max(y - margin, 0), max(x - margin, 0), min(y + h + margin, FIELD_SIZE), min(x + w + margin, FIELD_SIZE)]
                 for x, y, w, h in stats[1:count, :4].tolist()]
        merged = True
        while merged:                      # union overlapping boxes, so that no texel is drawn twice
            merged = False
            for i in range(len(boxes)):
                for j in range(i + 1, len(boxes)):
                    a, b = boxes[i], boxes[j]
                    if a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]:
                        boxes[i] = [min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3])]
                        del boxes[j]
                        merged = True
                        break
                if merged:
                    break
        scale = self.size / FIELD_SIZE
        return [(slice(int(r0 * scale), int(math.ceil(r1 * scale))), slice(int(c0 * scale), int(math.ceil(c1 * scale))))
                for r0, c0, r1, c1 in sorted(boxes)]


def _fbm(rng: np.random.Generator, size: int, cells: float, octaves: int, persistence: float = 0.5) -> np.ndarray:
    """(size, size) smooth value noise, zero mean and unit deviation: ``octaves`` of cubic-upsampled random grids."""
    import cv2

    out = np.zeros((size, size), np.float32)
    for octave in range(octaves):
        count = max(2, int(round(cells * 2 ** octave)))
        grid = rng.standard_normal((count, count)).astype(np.float32)
        out += persistence ** octave * cv2.resize(grid, (size, size), interpolation=cv2.INTER_CUBIC)
    return (out - out.mean()) / max(float(out.std()), 1e-6)


@dataclass
class _Points:
    """Points on the surface in UV space, as output-texel coordinates, with the field texel each lies in."""

    row: np.ndarray
    col: np.ndarray
    field_index: np.ndarray

    def subset(self, chosen: np.ndarray) -> "_Points":
        return _Points(self.row[chosen], self.col[chosen], self.field_index[chosen])

    def inside(self, window: Window) -> np.ndarray:
        rows, cols = window
        return (self.row >= rows.start) & (self.row < rows.stop) & (self.col >= cols.start) & (self.col < cols.stop)


def _scatter(rng: np.random.Generator, per_mm2: np.ndarray, layout: AlbedoLayout, size: int) -> _Points:
    """A Poisson process of ``per_mm2`` (F, F) points per square millimetre of surface, on covered texels.

    The points depend on the seed and the map only, not on ``size``: every output size draws the same ones.
    """
    expected = np.where(layout.covered, per_mm2 * layout.mm_per_texel ** 2, 0.0)
    counts = rng.poisson(np.maximum(expected, 0.0).ravel())
    index = np.repeat(np.arange(FIELD_SIZE * FIELD_SIZE), counts)
    jitter = rng.random((len(index), 2))
    scale = size / FIELD_SIZE
    return _Points(((index // FIELD_SIZE) + jitter[:, 0]) * scale, ((index % FIELD_SIZE) + jitter[:, 1]) * scale, index)


def _splat(points: _Points, weights: np.ndarray, shape: tuple[int, int], origin: tuple[int, int] = (0, 0)) -> np.ndarray:
    """An image of ``shape`` whose top-left texel is ``origin``: each point's weight added to the texel it falls in."""
    rows = np.clip(points.row.astype(np.int64) - origin[0], 0, shape[0] - 1)
    cols = np.clip(points.col.astype(np.int64) - origin[1], 0, shape[1] - 1)
    flat = np.bincount(rows * shape[1] + cols, weights, minlength=shape[0] * shape[1])   # deterministic
    return flat.reshape(shape).astype(np.float32)


def _blobs(points: _Points, radius_mm: np.ndarray, strength: np.ndarray, layout: AlbedoLayout, size: int,
           sharp: bool = False) -> np.ndarray:
    """(size, size) coverage of round spots of the given radii: area-true when a spot is smaller than a texel."""
    import cv2

    out = np.zeros((size, size), np.float32)
    if len(radius_mm) == 0:
        return out
    texel_mm = layout.mm_per_texel.ravel()[points.field_index] * (FIELD_SIZE / size)
    radius_px = radius_mm / texel_mm
    middle = float(np.median(radius_px))
    for chosen in (radius_px < middle, radius_px >= middle):   # two size classes, each one blur of its impulses
        if not chosen.any():
            continue
        sigma = max(float(np.median(radius_px[chosen])) * 0.6, 0.4)
        area = 2.0 * np.pi * sigma ** 2 if sharp else np.pi * radius_px[chosen] ** 2
        out += cv2.GaussianBlur(_splat(points.subset(chosen), strength[chosen] * area, (size, size)), (0, 0), sigma)
    if sharp:                            # a spot with an edge (a mole), not a soft dot
        out = np.clip((out - 0.25) * 2.0, 0.0, 1.0)
    return np.minimum(out, 1.0)


def _strand_kernel(length_px: float, angle_rad: float) -> np.ndarray:
    """An antialiased line through the kernel's centre, weights summing to about its length (one texel of width)."""
    half = int(math.ceil(length_px / 2 + 1))
    ys, xs = np.mgrid[-half:half + 1, -half:half + 1].astype(np.float32)
    along = xs * math.cos(angle_rad) - ys * math.sin(angle_rad)      # rows grow downwards: positive angle points up
    across = xs * math.sin(angle_rad) + ys * math.cos(angle_rad)
    return (np.clip(1.0 - np.abs(across), 0, 1) * np.clip(length_px / 2 - np.abs(along) + 0.5, 0, 1)).astype(np.float32)


def _hair(rgb: np.ndarray, canvas: _Canvas, rng: np.random.Generator, per_mm2: np.ndarray, colour: Any,
          length_mm: float, width_mm: float, angles_deg: tuple[float, float]) -> None:
    """Draw hair strands over ``rgb`` in place: roots a Poisson process of ``per_mm2`` (F, F), each strand a line.

    Two layers, darker and lighter than ``colour`` (hair is never one flat colour), with strands at the two
    ``angles_deg``, measured from the lateral direction, upwards positive; the subject's right half of the UV
    space (u < 0.5) is mirrored.
    Coverage is area-true: a hair thinner than a texel covers that fraction of it.
    """
    import cv2

    size = canvas.size
    windows = canvas.windows(per_mm2, margin_mm=length_mm + 1.0)
    for shade, angle in zip((0.65, 1.35), angles_deg):
        points = _scatter(rng, 0.5 * per_mm2, canvas.layout, size)
        right_half = points.col >= size / 2                  # +x (the subject's left) maps to u > 0.5
        tint = np.clip(np.asarray(colour, np.float32) * shade, 0.0, 1.0)
        for window in windows:
            shape = (window[0].stop - window[0].start, window[1].stop - window[1].start)
            cover = np.zeros(shape, np.float32)
            inside = points.inside(window)
            for half, direction in ((right_half, angle), (~right_half, 180.0 - angle)):
                chosen = inside & half
                if not chosen.any():
                    continue
                impulses = _splat(points.subset(chosen), np.full(int(chosen.sum()), min(width_mm / canvas.texel_mm, 1.0)),
                                  shape, (window[0].start, window[1].start))
                kernel = _strand_kernel(length_mm / canvas.texel_mm, math.radians(direction))
                cover += cv2.filter2D(impulses, -1, kernel, borderType=cv2.BORDER_CONSTANT)
            _blend(rgb, window, tint, np.minimum(cover, 1.0))


def _blend(rgb: np.ndarray, window: Window, colour: Any, weight: np.ndarray) -> None:
    """rgb[window] moves towards ``colour`` (3,) or (h, w, 3) by ``weight`` (h, w), in place."""
    patch = rgb[window]
    patch += weight[..., None] * (np.asarray(colour, np.float32) - patch)


def _line_profile(distance_mm: np.ndarray, width_mm: float, texel_mm: float) -> np.ndarray:
    """A thin line's coverage at a distance from its centre: never thinner than a texel, its area kept."""
    width = max(width_mm, texel_mm)
    return (width_mm / width) * np.exp(-0.5 * (distance_mm / (0.5 * width)) ** 2)


def _wrinkles(canvas: _Canvas, rng: np.random.Generator, skin: SkinParams) -> np.ndarray:
    """(size, size) darkening of fine lines: forehead furrows, crow's feet, lines under the eyes."""
    a = canvas.layout.anchors
    fields = canvas.layout.fields
    out = np.zeros((canvas.size, canvas.size), np.float32)
    depth = 0.25 + 0.75 * skin.wrinkles
    waviness = _resize(_fbm(rng, FIELD_SIZE, 20, 2), canvas.size)
    presence = np.clip(0.6 + 0.5 * _resize(_fbm(rng, FIELD_SIZE, 12, 2), canvas.size), 0.0, 1.0)

    for window in canvas.windows(fields["forehead"]):
        position = canvas.field("position", window)
        spacing = a.mm(8.0)
        phase = (position[..., 1] - a.eyes[0, 1]) / spacing + 0.25 * waviness[window]
        distance_mm = np.abs(phase - np.round(phase)) * spacing * 1e3
        lines = _line_profile(distance_mm, 0.35 + 0.25 * skin.wrinkles, canvas.texel_mm)
        out[window] += depth * canvas.field("forehead", window) * presence[window] * lines

    for window in canvas.windows(fields["eye_zone"] * fields["face"], threshold=0.15):
        position = canvas.field("position", window).astype(np.float64)
        side = np.where(position[..., 0] >= 0, 0, 1)
        eye = a.eyes[side]
        outward = np.where(side == 0, 1.0, -1.0)
        corner = eye + np.stack([outward * a.eye_radius * 0.95, np.full_like(outward, -a.mm(1.5)),
                                 np.full_like(outward, -a.eye_radius * 0.2)], -1)
        offset = position - corner
        lateral = np.hypot(offset[..., 0], offset[..., 2])
        radius = np.hypot(lateral, offset[..., 1])
        angle = np.arctan2(offset[..., 1], lateral) + 0.08 * waviness[window]
        spread = math.radians(13.0)
        arc_mm = np.abs(angle / spread - np.round(angle / spread)) * spread * radius * 1e3
        fan = (_sigmoid((outward * offset[..., 0] + a.mm(2)) / a.mm(1.5)) * _sigmoid((radius - a.mm(3)) / a.mm(1))
               * _gauss(radius, a.mm(13)) * (np.abs(angle) < math.radians(50)))
        lines = fan * _line_profile(arc_mm, 0.3 + 0.2 * skin.wrinkles, canvas.texel_mm)
        gap = np.linalg.norm(position - eye, axis=-1) - a.eye_radius
        ring = a.mm(3.0)
        ring_mm = np.abs((gap - a.mm(2.5)) / ring - np.round((gap - a.mm(2.5)) / ring)) * ring * 1e3
        lines += 0.8 * canvas.field("under_eye", window) * (gap > a.mm(2)) * _line_profile(ring_mm, 0.3, canvas.texel_mm)
        out[window] += depth * canvas.field("eye_zone", window) * presence[window] * lines
    return np.minimum(out, 1.0)


def _resolved(period_mm: float, texel_mm: float) -> float:
    """Contrast kept by a repeating pattern of this period: 1 from three texels up, fading to 0 at one texel
    (a finer pattern averages out within each texel; drawn as it is it would alias into false texel noise)."""
    return float(np.clip((period_mm / texel_mm - 1.0) / 2.0, 0.0, 1.0))


def _microrelief(canvas: _Canvas, rng: np.random.Generator, cells_per_mm2: float, weight: np.ndarray,
                 width_mm: float) -> np.ndarray:
    """(size, size) coverage of the skin's microrelief, times ``weight`` (F, F): the fine furrows that divide its
    surface into polygonal plateaus, the edges of a Voronoi network of ``cells_per_mm2`` cells.

    Every furrow between two cells has its own depth (primary and secondary lines). OpenCV's labelled
    distance transform gives each texel its nearest seed; the two nearest among the labels of its 3 x 3
    neighbourhood, at their sub-texel positions, give its distance to the edge between them (the bisector),
    so the lines are smooth at any angle and their profile is area-true (``_line_profile``). Zero where the
    cells are too small for the texels to resolve (``_resolved``).
    """
    import cv2

    size = canvas.size
    contrast = _resolved(cells_per_mm2 ** -0.5, canvas.texel_mm)
    if contrast == 0.0:
        return np.zeros((size, size), np.float32)
    points = _scatter(rng, np.where(weight > 0.05, cells_per_mm2, 0.0), canvas.layout, size)
    rows, cols = np.clip(points.row.astype(np.int64), 0, size - 1), np.clip(points.col.astype(np.int64), 0, size - 1)
    seeds = np.ones((size, size), np.uint8)
    seeds[rows, cols] = 0
    _, labels = cv2.distanceTransformWithLabels(seeds, cv2.DIST_L2, cv2.DIST_MASK_5, labelType=cv2.DIST_LABEL_PIXEL)
    seed_row = np.zeros(int(labels.max()) + 1, np.float32)
    seed_col = np.zeros_like(seed_row)
    seed_row[labels[rows, cols]], seed_col[labels[rows, cols]] = points.row, points.col
    depth = rng.uniform(0.3, 1.0, len(seed_row)).astype(np.float32)

    centres = np.arange(size, dtype=np.float32) + 0.5
    texel_row, texel_col = centres[:, None], centres[None, :]

    def squared_distance(label: np.ndarray) -> np.ndarray:
        return (texel_row - seed_row[label]) ** 2 + (texel_col - seed_col[label]) ** 2

    padded = np.pad(labels, 1, mode="edge")
    nearest, nearest_label = squared_distance(labels), labels.copy()
    second, second_label = np.full((size, size), np.inf, np.float32), labels.copy()
    for dr, dc in ((0, 0), (0, 1), (0, 2), (1, 0), (1, 2), (2, 0), (2, 1), (2, 2)):   # the 8 neighbours' labels
        label = padded[dr:dr + size, dc:dc + size]
        distance = squared_distance(label)
        closer = distance < nearest
        runner_up = (distance > nearest) & (distance < second)
        for target, value, where in ((second, nearest, closer), (second_label, nearest_label, closer),
                                     (second, distance, runner_up), (second_label, label, runner_up),
                                     (nearest, distance, closer), (nearest_label, label, closer)):
            np.copyto(target, value, where=where)
    apart = np.hypot(seed_row[second_label] - seed_row[nearest_label], seed_col[second_label] - seed_col[nearest_label])
    to_edge_mm = (second - nearest) / np.maximum(2.0 * apart, 1e-3) * canvas.texel_mm     # to the bisector
    furrows = 0.5 * (depth[nearest_label] + depth[second_label]) * _line_profile(to_edge_mm, width_mm, canvas.texel_mm)
    # the weight also ends the cells, which reach wherever their seed is the nearest, at the skin's edge
    return (contrast * furrows * _resize(weight.astype(np.float32), size)).astype(np.float32)


def _lip_lines(canvas: _Canvas, rng: np.random.Generator, skin: SkinParams) -> np.ndarray:
    """(size, size) darkening of the vertical furrows of the lips (sulci labiorum): about 1 mm apart, wavy and
    broken into segments, deeper with age."""
    a = canvas.layout.anchors
    out = np.zeros((canvas.size, canvas.size), np.float32)
    spacing = a.mm(1.0)
    contrast = _resolved(spacing * 1e3, canvas.texel_mm)
    if contrast == 0.0:
        return out
    texture_mm = FIELD_SIZE * canvas.layout.face_mm_per_texel
    waviness = _resize(_fbm(rng, FIELD_SIZE, texture_mm / 4.0, 2), canvas.size)
    presence = np.clip(0.4 + 0.8 * _resize(_fbm(rng, FIELD_SIZE, texture_mm / 1.5, 2), canvas.size), 0.0, 1.0)
    for window in canvas.windows(canvas.layout.fields["lips"], threshold=0.1):
        phase = (canvas.field("position", window)[..., 0] - a.mouth[0]) / spacing + 0.35 * waviness[window]
        distance_mm = np.abs(phase - np.round(phase)) * spacing * 1e3
        lines = _line_profile(distance_mm, 0.15 + 0.1 * skin.wrinkles, canvas.texel_mm)
        out[window] = contrast * (0.5 + 0.5 * skin.wrinkles) * canvas.field("lips", window) * presence[window] * lines
    return out


def _eye_colours(canvas: _Canvas, rng: np.random.Generator, skin: SkinParams, window: Window) -> np.ndarray:
    """(h, w, 3) eyeball albedo in a window: sclera, a fibrous iris of the identity's colour, limbal ring, pupil."""
    a = canvas.layout.anchors
    position = canvas.field("position", window).astype(np.float64)
    direction = position - a.eyes[np.where(position[..., 0] >= 0, 0, 1)]
    direction /= np.maximum(np.linalg.norm(direction, axis=-1, keepdims=True), 1e-9)
    angle = np.degrees(np.arccos(np.clip(direction[..., 2], -1.0, 1.0)))   # from the gaze axis (+z)
    around = np.arctan2(direction[..., 1], direction[..., 0])
    iris_deg, pupil_deg = 31.0, float(rng.uniform(9.0, 13.0))
    fibres = np.zeros_like(around)
    for k in rng.integers(20, 90, 6):                    # radial fibres: a few random angular frequencies
        fibres += np.cos(k * around + rng.uniform(0, 2 * np.pi)) / 6
    radius = angle / iris_deg
    iris = np.asarray(skin.iris_rgb) * (1.0 + 0.45 * fibres[..., None] + 0.35 * _gauss(radius - 0.55, 0.08)[..., None])
    iris *= (1.0 - 0.6 * _sigmoid((radius - 0.9) / 0.03))[..., None]                 # dark limbal ring
    sclera = np.array([0.70, 0.66, 0.62]) * (1.0 + 0.12 * _sigmoid((angle - 70.0) / 8.0)[..., None] * np.array([0.1, -0.35, -0.4]))
    colour = np.where((angle < iris_deg)[..., None], iris, sclera)
    return np.where((angle < pupil_deg)[..., None], np.array([0.012, 0.010, 0.010]), colour).astype(np.float32)


def _lash_line(canvas: _Canvas, window: Window) -> np.ndarray:
    """(h, w) coverage of the lash line: the upper lid's margin along the eyeball, in front."""
    a = canvas.layout.anchors
    position = canvas.field("position", window).astype(np.float64)
    offset = position - a.eyes[np.where(position[..., 0] >= 0, 0, 1)]
    gap = np.linalg.norm(offset, axis=-1) - a.eye_radius
    front = _sigmoid((offset[..., 2] - 0.2 * a.eye_radius) / a.mm(1.0))
    upper = _sigmoid((offset[..., 1] + a.mm(1.0)) / a.mm(0.7))
    return (0.85 * front * upper * _sigmoid((a.mm(1.3) - gap) / a.mm(0.3))).astype(np.float32)


def generate_albedo(model: HeadModel, size: int = 2048, seed: int = 0, skin: SkinParams | None = None) -> Albedo:
    """A (size, size) linear UV albedo of ``model`` for identity ``skin`` (default: ``sample_skin(seed)``)."""
    if size < 64:
        raise ValueError(f"albedo size must be at least 64 texels, not {size}")
    skin = skin or sample_skin(seed)
    layout = albedo_layout(model)
    canvas = _Canvas(layout, size)
    rng = [np.random.default_rng([int(seed), k]) for k in range(12)]   # one stream per layer: layers stay independent
    texture_mm = FIELD_SIZE * layout.face_mm_per_texel                # the texture's width in face millimetres

    def noise(stream: int, scale_mm: float, octaves: int) -> np.ndarray:
        return _fbm(rng[stream], FIELD_SIZE, texture_mm / scale_mm, octaves, 0.55)

    rgb = _skin_colour(canvas, skin, rng, noise)
    _skin_surface(rgb, canvas, skin, rng)
    _hair_layers(rgb, canvas, skin, rng)
    _non_skin(rgb, canvas, skin, rng, noise)
    linear = np.clip(rgb, 0.0, 1.0).astype(np.float32)
    face = _resize(linear, FIELD_SIZE).reshape(-1, 3)[layout.ita_texels]
    return Albedo(linear=linear, skin=skin, ita_deg=float(np.median(ita_degrees(face))))


def _skin_colour(canvas: _Canvas, skin: SkinParams, rng: list, noise: Any) -> np.ndarray:
    """(size, size, 3) the skin's colour from its melanin and blood maps: regional blotches, freckles and moles."""
    layout, size, f = canvas.layout, canvas.size, canvas.layout.fields
    # pigment and blood: smooth regional maps with 1-3 cm blotches
    blotch = 0.4 + 0.6 * skin.blotchiness
    melanin = skin.melanin * np.exp(0.15 * blotch * noise(0, 30.0, 4)) * (
        1.0 + 0.25 * f["upper_lid"] + 0.2 * f["under_eye"] + 0.06 * f["forehead"] + 0.05 * f["nose"] - 0.4 * f["lips"])
    blood = skin.haemoglobin * np.exp(0.25 * blotch * noise(1, 25.0, 4)) * (
        1.0 + 1.0 * f["cheek"] + 0.8 * f["nose"] + 3.0 * f["lips"] + 0.6 * f["ears"] + 0.3 * f["chin"]
        + 0.2 * f["upper_lid"] - 0.2 * f["neck"])
    venous = np.clip(0.5 * f["upper_lid"] + 0.45 * f["under_eye"], 0.0, 1.0)
    melanin, blood, venous = (_resize(m.astype(np.float32), size) for m in (melanin, blood, venous))

    # freckles and moles: melanin spots, sized in millimetres
    plain_skin = f["skin"] * (1 - f["lips"]) * (1 - f["hair"]) * (1 - f["brow"])
    clusters = np.clip(0.6 + 0.6 * noise(2, 15.0, 2), 0.0, None)
    freckle_density = 0.25 * skin.freckles * plain_skin * f["face"] * clusters * (0.1 + f["cheek"] + f["nose"] + 0.3 * f["forehead"])
    points = _scatter(rng[2], freckle_density, layout, size)
    count = len(points.row)
    melanin *= 1.0 + 1.5 * _blobs(points, rng[2].uniform(0.5, 1.5, count), rng[2].uniform(0.3, 1.0, count), layout, size)
    if skin.moles:
        where = (plain_skin * (f["face"] + f["neck"]) * (1 - f["eye_zone"]) * layout.mm_per_texel ** 2 * layout.covered).ravel()
        index = rng[3].choice(len(where), size=skin.moles, p=where / where.sum())
        jitter = rng[3].random((skin.moles, 2))
        scale = size / FIELD_SIZE
        moles = _Points((index // FIELD_SIZE + jitter[:, 0]) * scale, (index % FIELD_SIZE + jitter[:, 1]) * scale, index)
        spots = _blobs(moles, rng[3].uniform(0.7, 2.0, skin.moles), np.ones(skin.moles), layout, size, sharp=True)
        melanin += spots * (np.maximum(melanin * 6.0, 0.12) - melanin)

    # colour: the biophysical lookup, arterial and venous blood mixed
    lut_rows, lut_cols = skin_lut_coordinates(melanin, blood)
    rgb = skin_lut_lookup(skin_lut(skin.pheomelanin_ratio, skin.oxy_ratio), lut_rows, lut_cols)
    for window in canvas.windows(np.clip(0.5 * f["upper_lid"] + 0.45 * f["under_eye"], 0, 1)):
        venous_rgb = skin_lut_lookup(skin_lut(skin.pheomelanin_ratio, VENOUS_OXY_RATIO), lut_rows[window], lut_cols[window])
        _blend(rgb, window, venous_rgb, venous[window])
    return rgb


def _skin_surface(rgb: np.ndarray, canvas: _Canvas, skin: SkinParams, rng: list) -> None:
    """Darkens ``rgb`` in place by the skin surface's texture and its fine wrinkles."""
    import cv2

    layout, size, f = canvas.layout, canvas.size, canvas.layout.fields
    plain_skin = f["skin"] * (1 - f["lips"]) * (1 - f["hair"]) * (1 - f["brow"])
    # texture of the skin surface, drawn at the output size: pores (50-180 per cm^2 on the face, 0.05-0.2 mm,
    # larger and denser on nose and cheeks, each a dark orifice in a shallow funnel), the microrelief's furrows,
    # the lips' vertical lines, all of it zero-mean beyond SURFACE_MEAN_MM so the skin keeps its colour; then
    # fine wrinkles
    pore_density = (0.6 + 0.4 * skin.pores) * plain_skin * (1 - 0.8 * f["upper_lid"]) * (
        0.4 + 1.4 * f["nose"] + 0.6 * f["cheek"] + 0.3 * f["forehead"] + 0.4 * f["chin"])   # per mm^2
    points = _scatter(rng[4], pore_density, layout, size)
    count = len(points.row)
    bigness = np.clip(f["nose"] + 0.6 * f["cheek"], 0.0, 1.0).ravel()[points.field_index]
    radius_mm = (0.06 + 0.1 * bigness) * rng[4].uniform(0.8, 1.25, count)
    strength = rng[4].uniform(0.5, 1.0, count)
    pores = _blobs(points, radius_mm, strength, layout, size) + 0.4 * _blobs(points, 2.5 * radius_mm, strength, layout, size)
    relief = _microrelief(canvas, rng[10], 2.0, plain_skin * (1 - 0.5 * f["upper_lid"]), 0.12)   # cells ~0.7 mm
    surface = ((0.2 + 0.25 * skin.pores) * pores + (0.12 + 0.12 * skin.wrinkles) * relief
               + 0.35 * _lip_lines(canvas, rng[11], skin))
    surface -= cv2.GaussianBlur(surface, (0, 0), SURFACE_MEAN_MM / canvas.texel_mm)
    darkening = surface + 0.16 * _wrinkles(canvas, rng[5], skin)
    rgb *= 1.0 - darkening[..., None] * np.array([0.85, 1.0, 1.05], np.float32)   # creases look a little red


def _hair_layers(rgb: np.ndarray, canvas: _Canvas, skin: SkinParams, rng: list) -> None:
    """Brows, stubble (and the beard's shadow under the skin) and scalp hair, drawn into ``rgb`` in place."""
    f = canvas.layout.fields
    # hair: brows, stubble, scalp
    _hair(rgb, canvas, rng[6], 2.2 * f["brow"], skin.hair_rgb, 7.0, 0.07, (12.0, 30.0))
    if skin.stubble > 0:
        dark_hair = float(np.clip(1.0 - np.mean(skin.hair_rgb) / 0.3, 0.0, 1.0))   # fair hair casts no shadow
        for window in canvas.windows(f["beard"]):                  # hair under the skin: the beard's shadow
            rgb[window] *= 1.0 - (0.3 * skin.stubble * dark_hair * canvas.field("beard", window))[..., None]
        _hair(rgb, canvas, rng[7], 0.8 * skin.stubble * f["beard"], skin.hair_rgb, 0.3 + 1.2 * skin.stubble, 0.1, (-70.0, -95.0))
    if skin.hair_coverage > 0:
        _hair(rgb, canvas, rng[8], 3.0 * skin.hair_coverage * f["hair"], skin.hair_rgb, 6.0, 0.07, (80.0, 100.0))


def _non_skin(rgb: np.ndarray, canvas: _Canvas, skin: SkinParams, rng: list, noise: Any) -> None:
    """Lashes, eyes, mouth interior, teeth and tongue, blended into ``rgb`` in place."""
    size, f = canvas.size, canvas.layout.fields
    # the parts that are not skin
    lashes = np.clip(np.asarray(skin.hair_rgb) * 0.5, 0.0, 1.0)
    for window in canvas.windows(f["upper_lid"] * f["face"]):
        _blend(rgb, window, lashes, _lash_line(canvas, window) * canvas.field("skin", window))
    for window in canvas.windows(f["eye"], threshold=0.3):
        _blend(rgb, window, _eye_colours(canvas, rng[9], skin, window), canvas.field("eye", window))
    variation = _resize(noise(9, 8.0, 2), size)
    for name in ("mouth_interior", "teeth", "tongue"):
        for window in canvas.windows(f[name], threshold=0.3):
            colour = np.asarray(NON_SKIN_ALBEDOS[name], np.float32) * (1.0 + 0.06 * variation[window])[..., None]
            _blend(rgb, window, colour, canvas.field(name, window))
