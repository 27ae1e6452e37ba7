"""A UV-space training corpus for the texture networks, made without rendering a single frame.

Each sample is a triple in the head model's UV layout, like what ``unwrap``
makes of a phone video and what the avatar should become:

* ``{index:06d}_phone.png`` -- the texture as lit by the capture's light
  (16-bit sRGB), black where the camera path never saw the surface, and
  ``_coverage.png`` -- the observation weight 0..1 (16-bit), both exactly as
  ``unwrap`` writes ``phone.png`` and ``coverage.png``;
* ``_studio.png`` -- the same head under one fixed, soft, neutral studio light
  (16-bit sRGB, complete);
* ``_albedo.png`` -- the true albedo (16-bit sRGB);

plus one line per sample in ``index.jsonl`` (seed, identity, skin parameters,
light, camera path, exposure). The delighting and completion network (GMug)
learns phone -> studio and phone -> albedo from them.

How a sample is made (all vectorized over texels; the loops are over views):

1. **Identity** (cached for ``samples_per_identity`` samples): a random head
   shape (neutral expression), its normals per texel, the per-vertex
   visibility of a sphere of directions (depth maps, ``shading.visibility``),
   the self-shadowed light transfer per texel, an albedo and the studio
   shading.
2. **Camera path**: a handheld sweep in yaw to random extents on each side
   with a smooth nod, as many frames as a capture keeps; per texel and view
   the weight ``unwrap`` would give a sample (viewing angle ramp, visibility,
   eye and mouth bands, frame sharpness), summed into the coverage with
   ``unwrap``'s formula.
3. **Phone light**: one of Blender's bundled world HDRIs (its sun taken out
   as a directional light with hard-ish shadows, the rest as order-2
   spherical harmonics), randomly rotated and tinted, plus a random key lamp
   and ambient. Half the samples keep the light fixed to the head (the phone
   moves), half to the camera (the person turns): then the shading is the
   per-texel weighted mean over the views, as fusion averages it. A weak
   specular sheen is averaged the same way.
4. **Phone artifacts**: auto exposure and partial white balance (per-sample
   gains), the blur of resampling and fusing frames, and noise that falls
   with the number of views a texel got; clipped and sRGB-encoded.

Physics kept exact for tests: before artifacts, ``phone = gain * (albedo *
shading + specular)`` per texel. This module owns the corpus format and its
randomness; it does not train anything, and it writes nothing but ``OUT/``.
"""

from __future__ import annotations

import functools
import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..atomic import atomic_path, atomic_write_text
from ..color import blackbody_rgb, luminance
from ..errors import InputError
from ..head.model import HeadModel

INDEX_JSONL = "index.jsonl"
KINDS = ("phone", "coverage", "studio", "albedo")     # the files of one sample: {index:06d}_{kind}.png
SH_PROJECTION_DIRECTIONS = 1024   # directions analytic lights are projected onto spherical harmonics with
SHADOW_RESOLUTION = 256          # depth-map pixels across the head for the shadows of lights fixed to the head
GRAIN_PX = 0.6                   # sensor noise is correlated over this (Gaussian sigma, texels) by resampling frames
GRAIN_GAIN = 2 * GRAIN_PX * math.sqrt(math.pi)   # keeps the blurred noise's sigma at 1
TEXEL_CHUNK = 1 << 18             # texels shaded at a time (bounds memory at large sizes)
IRRADIANCE_BAND_FACTORS = (math.pi, 2 * math.pi / 3, math.pi / 4)   # clamped-cosine convolution per SH band


@dataclass(frozen=True)
class TextureCorpusParams:
    """The distributions a sample is drawn from (the defaults are the corpus; tests narrow them)."""

    shape_sigma: float = 0.8                                   # identity: first shape_components coefficients ~ N(0, sigma^2)
    shape_components: int = 20
    visibility_directions: int = 128                           # directions of the per-identity visibility table
    views: int = 32                                            # views the camera path is sampled at (plus its turning points)
    light_views: int = 12                                      # of them, the views the light and sheen are averaged over
    frames: tuple[int, int] = (40, 120)                        # frames the capture keeps, spread over the views
    yaw_extent_deg: tuple[float, float] = (20.0, 90.0)         # the sweep reaches this far to each side (drawn per side)
    pitch_deg: tuple[float, float] = (0.0, 20.0)               # amplitude of the smooth nod along the path
    pitch_offset_deg: float = 8.0                              # sigma of the path's mean pitch (phone held high or low)
    camera_fixed_light: float = 0.5                            # probability the light turns with the camera (the person turns)
    env_tilt_deg: float = 8.0                                  # sigma of the environment's tilt (its yaw is uniform)
    env_temperature_k: tuple[float, float] = (2500.0, 10000.0)  # tint of the environment, as a colour temperature
    colour_cast_probability: float = 0.3                       # probability of an extra coloured cast (tinted glass, walls, screens)
    colour_cast: float = 0.35                                  # its strength: largest log gain of one channel against the others
    sun_scale: tuple[float, float] = (0.2, 1.0)                # the environment's sun, scaled (clouds, window glass)
    key_probability: float = 0.7                               # probability of an extra key lamp
    key_strength: tuple[float, float] = (0.5, 3.0)             # its irradiance / the environment's mean irradiance
    key_temperature_k: tuple[float, float] = (2000.0, 8000.0)
    key_elevation_deg: tuple[float, float] = (-10.0, 60.0)     # ... above the horizon; azimuth within key_azimuth_deg of the front
    key_azimuth_deg: float = 110.0
    ambient: tuple[float, float] = (0.0, 0.3)                  # uniform extra radiance / the environment's mean radiance
    specular: tuple[float, float] = (0.0, 0.04)                # sheen strength (Blinn-Phong) on skin, of the directional lights
    shininess: tuple[float, float] = (10.0, 40.0)
    exposure_sigma_stops: float = 0.7                          # auto exposure error around "the face's median shading = 1"
    white_balance: tuple[float, float] = (0.0, 1.0)            # fraction (as an exponent) of the light's colour the phone removes
    white_balance_error: float = 0.03                          # sigma of a residual log gain per channel
    blur_px: tuple[float, float] = (0.3, 1.0)                  # Gaussian sigma of fusion blur, texels at 512 (scales with size)
    noise: tuple[float, float] = (0.004, 0.015)                # per-frame noise sigma in sRGB; fused noise falls with the views


# ---------------------------------------------------------------------------------------------------------------- light

def _sh(directions: np.ndarray) -> np.ndarray:
    """(..., 3) -> (..., 9) float64 real SH basis (the same constants as ``shading.sh_basis``)."""
    from ..texture.shading import sh_basis

    return sh_basis(np.asarray(directions, np.float64)).numpy()


@functools.lru_cache(maxsize=1)
def _projection() -> tuple[np.ndarray, np.ndarray]:
    """Directions (S, 3) and the pseudo-inverse of their SH basis (9, S), to fit SH coefficients of a function."""
    from ..texture.shading import sphere_directions

    directions = sphere_directions(SH_PROJECTION_DIRECTIONS)
    return directions, np.linalg.pinv(_sh(directions))


def sh_rotation(rotations: np.ndarray) -> np.ndarray:
    """(n, 3, 3) rotations R -> (n, 9, 9) matrices taking the SH coefficients of f(d) to those of f(R d).

    Rotations keep each SH band in itself, so fitting on enough directions is exact.
    """
    directions, inverse = _projection()
    rotated = np.einsum("nij,sj->nsi", np.asarray(rotations, np.float64), directions)
    return np.einsum("ks,nsj->nkj", inverse, _sh(rotated))


def project_radiance(radiance: Any) -> np.ndarray:
    """(9, 3) SH coefficients of a radiance function ``radiance((S, 3) directions) -> (S, 3)``."""
    directions, _ = _projection()
    values = np.asarray(radiance(directions), np.float64)
    return _sh(directions).T @ values * (4 * math.pi / len(directions))


def irradiance(light_sh: np.ndarray, normals: np.ndarray) -> np.ndarray:
    """(N, 3) unoccluded irradiance of normals (N, 3) under SH radiance (9, 3)."""
    bands = np.repeat(IRRADIANCE_BAND_FACTORS, (1, 3, 5))
    return _sh(normals) @ (bands[:, None] * light_sh)


def kelvin_rgb(kelvin: float) -> np.ndarray:
    """(3,) linear RGB of a black body at ``kelvin``, relative to 6500 K (white) and with luminance 1."""
    rgb = blackbody_rgb(kelvin) / blackbody_rgb(6500.0)
    return rgb / luminance(rgb)


@functools.lru_cache(maxsize=1)
def studio_light() -> np.ndarray:
    """(9, 3) the studio's radiance in the head frame (x left of the face, y up, z out of the face): a large softbox
    in front and a little above, fills at both sides, a little from above and all around; neutral white, scaled so
    that an unoccluded surface facing the camera gets shading 1. The same for every sample."""
    def radiance(d: np.ndarray) -> np.ndarray:
        softbox = np.array([0.0, math.sin(math.radians(20)), math.cos(math.radians(20))])
        value = (1.0 * np.clip(d @ softbox, 0, None) ** 3
                 + 0.4 * np.clip(d @ np.array([0.87, 0.0, 0.5]), 0, None) ** 2
                 + 0.4 * np.clip(d @ np.array([-0.87, 0.0, 0.5]), 0, None) ** 2
                 + 0.2 * np.clip(d[:, 1], 0, None) + 0.25)
        return np.repeat(value[:, None], 3, 1)

    sh = project_radiance(radiance)
    front = irradiance(sh, np.array([[0.0, 0.0, 1.0]]))[0] / math.pi
    return sh / front[None]


@dataclass
class Environment:
    """A distant light in the world frame (y up, z towards the front): SH radiance plus an optional sun."""

    name: str
    sh: np.ndarray                  # (9, 3) radiance SH coefficients (linear RGB), the sun taken out
    sun_direction: np.ndarray       # (3,) unit vector towards the sun
    sun_irradiance: np.ndarray      # (3,) its irradiance at normal incidence (zeros: no sun)


def environment_folder() -> Path | None:
    """Blender's bundled world HDRIs (``datafiles/studiolights/world``) in the installed ``bpy``, found without
    importing it; None when bpy is not installed."""
    import importlib.util

    spec = importlib.util.find_spec("bpy")
    for root in (spec.submodule_search_locations or []) if spec else []:
        for folder in sorted(Path(root).glob("*/datafiles/studiolights/world")):
            if any(folder.glob("*.exr")):
                return folder
    return None


def _equirect_directions(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """(H, W, 3) world directions of an equirectangular map's pixels (Blender's layout: row 0 at the zenith) and
    (H, W) their solid angles."""
    elevation = (0.5 - (np.arange(height) + 0.5) / height) * math.pi
    azimuth = (0.5 - (np.arange(width) + 0.5) / width) * 2 * math.pi
    el, az = np.meshgrid(elevation, azimuth, indexing="ij")
    blender = np.stack([np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)], -1)   # z up, -y to the front
    directions = np.stack([blender[..., 0], blender[..., 2], -blender[..., 1]], -1)
    solid_angle = np.cos(el) * (math.pi / height) * (2 * math.pi / width)
    return directions, solid_angle


def environment_from_equirect(name: str, image_linear: np.ndarray, sun_threshold: float = 12.0,
                              sun_radius_deg: float = 15.0) -> Environment:
    """An equirectangular HDRI as SH, with its sun (the radiance above ``sun_threshold`` x the mean radiance,
    within ``sun_radius_deg`` of the brightest pixel) taken out as a directional light (order-2 SH would smear a
    sun into a faint lobe and lose its shadows)."""
    import cv2

    image = cv2.resize(np.asarray(image_linear, np.float32), (256, 128), interpolation=cv2.INTER_AREA).astype(np.float64)
    directions, solid_angle = _equirect_directions(*image.shape[:2])
    lum = luminance(image)
    mean = float((lum * solid_angle).sum() / (4 * math.pi))
    peak = np.unravel_index(np.argmax(lum), lum.shape)
    near_peak = directions @ directions[peak] > math.cos(math.radians(sun_radius_deg))
    excess = np.where(near_peak & (lum > sun_threshold * mean), 1.0 - sun_threshold * mean / np.maximum(lum, 1e-12), 0.0)
    sun_radiance = image * excess[..., None]
    sun_irradiance = (sun_radiance * solid_angle[..., None]).sum((0, 1))
    sun_direction = ((luminance(sun_radiance) * solid_angle)[..., None] * directions).sum((0, 1))
    sun_direction = sun_direction / max(np.linalg.norm(sun_direction), 1e-12) if sun_irradiance.sum() > 0 else np.array([0.0, 1.0, 0.0])
    rest = (image - sun_radiance) * solid_angle[..., None]
    sh = np.einsum("hwk,hwc->kc", _sh(directions), rest)
    return Environment(name, sh, sun_direction, sun_irradiance)


@functools.lru_cache(maxsize=4)
def load_environments(folder: str | None) -> tuple[Environment, ...]:
    """Every ``*.exr`` of ``folder`` as an :class:`Environment` (read and projected once per process)."""
    from ..image_io import read_exr

    if folder is None:
        return ()
    return tuple(environment_from_equirect(path.stem, read_exr(path)) for path in sorted(Path(folder).glob("*.exr")))


def random_environment(rng: np.random.Generator) -> Environment:
    """An analytic environment for when no HDRI is at hand: a sky brighter above than the ground, and a few broad
    coloured lobes (windows, walls); no sun (the key lamp plays it)."""
    sky = rng.uniform(0.6, 1.2, 3)
    ground = rng.uniform(0.1, 0.4, 3)
    lobes = [(rng.normal(size=3), rng.uniform(2, 12), rng.uniform(0.2, 2.0, 3)) for _ in range(int(rng.integers(1, 4)))]

    def radiance(d: np.ndarray) -> np.ndarray:
        up = np.clip(d[:, 1:2], -1, 1)
        value = np.where(up > 0, sky * (0.5 + 0.5 * up), ground * (1 + 0.5 * up))
        for axis, sharpness, colour in lobes:
            value = value + colour * np.exp(sharpness * (d @ (axis / np.linalg.norm(axis)) - 1))[:, None]
        return value

    return Environment("analytic", project_radiance(radiance), np.array([0.0, 1.0, 0.0]), np.zeros(3))


def _rotation(yaw_deg: Any, pitch_deg: Any, roll_deg: Any = 0.0) -> np.ndarray:
    """(n, 3, 3) R = Ry(yaw) @ Rx(-pitch) @ Rz(roll): the head turned by yaw (towards its left), chin lifted by pitch."""
    yaw, pitch, roll = (np.radians(np.atleast_1d(np.asarray(a, np.float64))) for a in (yaw_deg, pitch_deg, roll_deg))
    yaw, pitch, roll = np.broadcast_arrays(yaw, pitch, roll)
    c, s = np.cos, np.sin
    zero, one = np.zeros_like(yaw), np.ones_like(yaw)
    ry = np.stack([c(yaw), zero, s(yaw), zero, one, zero, -s(yaw), zero, c(yaw)], -1).reshape(-1, 3, 3)
    rx = np.stack([one, zero, zero, zero, c(pitch), s(pitch), zero, -s(pitch), c(pitch)], -1).reshape(-1, 3, 3)
    rz = np.stack([c(roll), -s(roll), zero, s(roll), c(roll), zero, zero, zero, one], -1).reshape(-1, 3, 3)
    return ry @ rx @ rz


def _direction(azimuth_deg: float, elevation_deg: float) -> np.ndarray:
    az, el = math.radians(azimuth_deg), math.radians(elevation_deg)
    return np.array([math.cos(el) * math.sin(az), math.sin(el), math.cos(el) * math.cos(az)])


@dataclass
class PhoneLight:
    """The capture's light in the world frame (the head frame when the head does not turn)."""

    sh: np.ndarray                  # (9, 3) radiance SH
    directions: np.ndarray          # (L, 3) unit vectors towards the directional lights (sun, key)
    irradiances: np.ndarray         # (L, 3) their irradiance at normal incidence
    camera_fixed: bool              # True: the light stays with the camera while the head turns on the path
    specular: float                 # Blinn-Phong sheen strength of the directional lights (skin only)
    shininess: float
    info: dict[str, Any]            # what to record in index.jsonl


def sample_phone_light(rng: np.random.Generator, params: TextureCorpusParams,
                       environments: tuple[Environment, ...]) -> PhoneLight:
    """A random capture light: a rotated, tinted environment (an HDRI, else analytic), a key lamp, ambient."""
    env = environments[int(rng.integers(len(environments)))] if environments else random_environment(rng)
    env_yaw, tilt_x, tilt_z = rng.uniform(-180, 180), rng.normal(0, params.env_tilt_deg), rng.normal(0, params.env_tilt_deg)
    rotation = _rotation(env_yaw, tilt_x, tilt_z)[0]
    env_kelvin = rng.uniform(*params.env_temperature_k)
    tint = kelvin_rgb(env_kelvin)
    cast = rng.uniform() < params.colour_cast_probability
    if cast:                                                                  # a random hue, not on the black-body locus
        tint = tint * np.exp(params.colour_cast * rng.uniform(-1.0, 1.0, 3))
    sh = sh_rotation(rotation.T[None])[0] @ env.sh * tint                  # f_world(d) = f_env(R^T d)
    mean_radiance = float(luminance(sh[0]) * 0.282095)                       # the DC term's mean over the sphere
    directions, irradiances = [], []
    sun_scale = rng.uniform(*params.sun_scale)
    if env.sun_irradiance.sum() > 0:
        directions.append(rotation @ env.sun_direction)
        irradiances.append(env.sun_irradiance * tint * sun_scale)
    key = None
    if rng.uniform() < params.key_probability:
        key = {"azimuth_deg": rng.uniform(-params.key_azimuth_deg, params.key_azimuth_deg),
               "elevation_deg": rng.uniform(*params.key_elevation_deg),
               "strength": rng.uniform(*params.key_strength), "temperature_k": rng.uniform(*params.key_temperature_k)}
        directions.append(_direction(key["azimuth_deg"], key["elevation_deg"]))
        irradiances.append(key["strength"] * math.pi * mean_radiance * kelvin_rgb(key["temperature_k"]))
    ambient = rng.uniform(*params.ambient)
    sh = sh.copy()
    sh[0] += ambient * mean_radiance * math.sqrt(4 * math.pi)               # uniform radiance a has c00 = a sqrt(4 pi)
    camera_fixed = bool(rng.uniform() < params.camera_fixed_light)
    specular, shininess = rng.uniform(*params.specular), rng.uniform(*params.shininess)
    info = {"environment": env.name, "env_yaw_deg": env_yaw, "env_tilt_deg": [tilt_x, tilt_z], "env_temperature_k": env_kelvin, "colour_cast": bool(cast),
            "sun_scale": sun_scale if env.sun_irradiance.sum() > 0 else 0.0, "key": key, "ambient": ambient,
            "fixed_to": "camera" if camera_fixed else "head", "specular": specular, "shininess": shininess}
    return PhoneLight(sh, np.reshape(directions, (-1, 3)), np.reshape(irradiances, (-1, 3)), camera_fixed,
                      specular, shininess, _rounded(info))


# ------------------------------------------------------------------------------------------------------------- identity

@dataclass
class Identity:
    """One random head, everything about it that does not depend on light or camera path (M texels)."""

    seed: int
    shape: np.ndarray               # (S,) shape coefficients
    geometry: Any                   # TexelGeometry at the corpus size
    vertices: Any                   # (V, 3) the neutral head, metres, head frame (x: its left, y: up, z: out of the face)
    faces: Any                      # (F, 3)
    vertex_normals: Any             # (V, 3)
    texel_normals: Any              # (M, 3)
    directions: Any                 # (D, 3) directions of the visibility table
    visible: Any                    # (V, D) 1 where the vertex sees the direction
    transfer: Any                   # (M, 9) self-shadowed SH transfer (irradiance = transfer @ light_sh)
    band: Any                       # (M,) unwrap's weight near the eye and mouth openings
    sampled: Any                    # (M,) bool: texels unwrap samples (skin)
    face: Any                       # (M,) bool: the face surface (exposure is metered on it)
    albedo_linear: np.ndarray       # (size, size, 3)
    albedo_texels: Any              # (M, 3)
    albedo_info: dict[str, Any]
    studio_shading: np.ndarray      # (size, size, 3) shading under the studio light, filled into the UV gutter
    studio_linear: np.ndarray       # (size, size, 3) albedo x studio shading: the studio-lit texture

    @property
    def albedo_srgb(self) -> np.ndarray:
        from ..color import linear_to_srgb

        return linear_to_srgb(self.albedo_linear)

    @property
    def studio_srgb(self) -> np.ndarray:
        from ..color import linear_to_srgb

        return linear_to_srgb(self.studio_linear)


def make_albedo(model: HeadModel, size: int, seed: int) -> tuple[np.ndarray, dict[str, Any]]:
    """(size, size, 3) linear albedo and its parameters for index.jsonl."""
    try:
        from .albedo import generate_albedo
    except ImportError:               # the generator is not in this checkout (yet): a smooth stand-in
        from .textured_capture import smooth_albedo

        return smooth_albedo(model, size, seed), {"generator": "smooth_albedo", "seed": seed}
    albedo = generate_albedo(model, size=size, seed=seed)
    return np.asarray(albedo.linear, np.float32), {"generator": "generate_albedo", **albedo.to_dict()}


_BAND_CACHE: dict[tuple[int, Any], Any] = {}


def _neutral_opening_band(model: HeadModel) -> Any:
    """(V,) unwrap's weight from the distance to the eye and mouth openings, for a neutral face (cached per model)."""
    from ..texture.unwrap import UnwrapParams, opening_band

    key = (id(model), model.metadata.get("fingerprint"))
    if key not in _BAND_CACHE:
        _BAND_CACHE.clear()
        neutral = {"pose": np.zeros((1, model.num_joints, 3), np.float32),
                   "expression": np.zeros((1, model.num_expression), np.float32)}
        _BAND_CACHE[key] = opening_band(model, neutral, UnwrapParams().opening_band_mm)[0]
    return _BAND_CACHE[key]


def make_identity(model: HeadModel, size: int, seed: int, params: TextureCorpusParams = TextureCorpusParams()) -> Identity:
    """A random head shape (from ``seed``) with its visibility, light transfer, albedo and studio shading."""
    import torch

    from ..image_io import push_pull_fill
    from ..render.normals import vertex_normals
    from ..texture.shading import occluded_cosine, sphere_directions, transfer, visibility
    from ..texture.uv import texel_geometry

    rng = np.random.default_rng(seed)
    shape = np.zeros(model.num_shape, np.float32)
    used = min(params.shape_components, model.num_shape)
    shape[:used] = rng.normal(0.0, params.shape_sigma, used)
    albedo_seed = int(rng.integers(2 ** 31))
    geometry = texel_geometry(model, size)
    with torch.no_grad():
        vertices = model.vertices(torch.as_tensor(shape[None]))[0]
    normals = vertex_normals(vertices, model.faces).float()
    directions = sphere_directions(params.visibility_directions)
    visible = visibility(vertices, normals, model.faces, directions)
    transfer_texels = geometry.interpolate(transfer(occluded_cosine(normals, visible, directions), directions))
    texel_normals = torch.nn.functional.normalize(geometry.interpolate(normals), dim=1)
    albedo, albedo_info = make_albedo(model, size, albedo_seed)
    studio = (transfer_texels @ torch.as_tensor(studio_light(), dtype=torch.float32)) / math.pi
    studio_image = push_pull_fill(geometry.image(studio).numpy(), geometry.mask().numpy())
    return Identity(
        seed=seed, shape=shape, geometry=geometry, vertices=vertices, faces=model.faces, vertex_normals=normals, texel_normals=texel_normals,
        directions=torch.as_tensor(directions, dtype=torch.float32), visible=visible, transfer=transfer_texels,
        band=geometry.interpolate(_neutral_opening_band(model)[:, None].float())[:, 0], sampled=geometry.skin,
        face=geometry.face_surface(model, normals) & geometry.skin, albedo_linear=albedo,
        albedo_texels=geometry.gather(albedo), albedo_info=albedo_info, studio_shading=studio_image,
        studio_linear=(albedo * studio_image).astype(np.float32))


def visibility_towards(identity: Identity, directions: Any) -> Any:
    """(V, n) visibility of each vertex towards arbitrary unit ``directions`` (n, 3), interpolated smoothly
    between the table's nearest directions (a Gaussian kernel about as wide as their spacing)."""
    import torch

    sharpness = identity.directions.shape[0] / math.pi          # 1 / sigma^2 with sigma ~ half the table's spacing
    kernel = torch.softmax(sharpness * (identity.directions @ torch.as_tensor(directions, dtype=torch.float32).T), dim=0)
    return identity.visible @ kernel


# ---------------------------------------------------------------------------------------------------------- camera path

@dataclass
class CameraPath:
    """Views of a handheld capture around the head, in the head's frame (the camera on +z when frontal)."""

    yaw_deg: np.ndarray             # (n,) the head's yaw relative to the camera at each view
    pitch_deg: np.ndarray           # (n,)
    weight: np.ndarray              # (n,) frames the view stands for x their sharpness weight (0.25..1, as unwrap)
    info: dict[str, Any]

    @property
    def rotations(self) -> np.ndarray:
        """(n, 3, 3) head -> camera-world rotation per view."""
        return _rotation(self.yaw_deg, self.pitch_deg)

    @property
    def view_directions(self) -> np.ndarray:
        """(n, 3) unit vectors from the head towards the camera, head frame."""
        return np.einsum("nji,j->ni", self.rotations, np.array([0.0, 0.0, 1.0]))


def sample_camera_path(rng: np.random.Generator, params: TextureCorpusParams,
                       yaw_extents_deg: tuple[float, float] | None = None) -> CameraPath:
    """A sweep 0 -> +right -> -left -> 0 in yaw (extents drawn per side unless given) with a smooth nod."""
    right, left = yaw_extents_deg if yaw_extents_deg is not None else rng.uniform(*params.yaw_extent_deg, 2)
    knots = np.array([0.0, right, -left, 0.0])
    length = np.concatenate([[0.0], np.cumsum(np.abs(np.diff(knots)))])
    t_knots = length / max(length[-1], 1e-9)
    t = np.union1d(np.linspace(0.0, 1.0, params.views), t_knots)       # the turning points are always views
    yaw = np.interp(t, t_knots, knots)
    amplitude, phase, cycles = rng.uniform(*params.pitch_deg), rng.uniform(0, 2 * math.pi), rng.uniform(0.5, 2.0)
    offset = rng.normal(0.0, params.pitch_offset_deg)
    pitch = offset + amplitude * np.sin(2 * math.pi * cycles * t + phase)
    frames = int(rng.integers(params.frames[0], params.frames[1] + 1))
    weight = frames / len(t) * rng.uniform(0.25, 1.0, len(t))
    info = {"yaw_right_deg": right, "yaw_left_deg": left, "pitch_offset_deg": offset, "pitch_amplitude_deg": amplitude,
            "frames": frames, "views": len(t)}
    return CameraPath(yaw, pitch, weight, _rounded(info))


# ------------------------------------------------------------------------------------------------------------- sampling

@dataclass
class Sample:
    """One corpus sample as arrays (size x size images); ``phone_srgb`` and ``coverage`` are what is written."""

    phone_srgb: np.ndarray          # (S, S, 3) fused phone texture, sRGB 0..1, 0 where not observed
    coverage: np.ndarray            # (S, S) 1 - exp(-summed weight / COVERAGE_SCALE), as unwrap
    shading: np.ndarray             # (S, S, 3) the phone light's (view-averaged) shading, 0 outside the UV islands
    specular: np.ndarray            # (S, S, 3) the view-averaged sheen (added to albedo * shading)
    gain: np.ndarray                # (3,) exposure x white balance: phone = gain * (albedo * shading + specular)
    info: dict[str, Any]            # what index.jsonl records of the sample

    @property
    def phone_linear(self) -> np.ndarray:
        from ..color import srgb_to_linear

        return srgb_to_linear(self.phone_srgb)


def _shade(identity: Identity, path: CameraPath, light: PhoneLight, light_views: int) -> tuple[Any, Any, Any]:
    """Per texel: summed view weight (M,), phone shading (M, 3) and specular (M, 3).

    The weight of a texel in a view is the one ``unwrap`` gives its sample: the viewing-angle ramp, visibility,
    the band around the eye and mouth openings, the frame's sharpness (and the frames the view stands for).
    Shading and specular are the means over ``light_views`` of the path's views (evenly spread) with these
    weights: as each view saw the light when it is fixed to the camera; the specular sheen always depends on
    the view.
    """
    import torch

    from ..texture.shading import visibility
    from ..texture.unwrap import UnwrapParams

    p = UnwrapParams()
    m, n = identity.geometry.count, len(path.yaw_deg)
    subset = np.unique(np.linspace(0, n - 1, min(n, light_views)).round().astype(int))
    views = torch.as_tensor(path.view_directions, dtype=torch.float32)                            # (n, 3)
    frame_weight = torch.as_tensor(path.weight, dtype=torch.float32)
    view_visible = visibility_towards(identity, views)                                           # (V, n)
    lights = len(light.directions)
    if light.camera_fixed:     # the head turns under a fixed light: each view sees the light rotated into the head
        rotations = path.rotations[subset]
        light_sh = torch.as_tensor(sh_rotation(rotations) @ light.sh, dtype=torch.float32)          # (k, 9, 3)
        light_dirs = torch.as_tensor(np.einsum("nji,lj->nli", rotations, light.directions), dtype=torch.float32)
        # shadows averaged over the views: the table's directions are close enough
        light_visible = visibility_towards(identity, light_dirs.reshape(-1, 3))                     # (V, k*L)
    else:
        light_sh = torch.as_tensor(light.sh[None], dtype=torch.float32)                             # (1, 9, 3)
        light_dirs = torch.as_tensor(light.directions[None], dtype=torch.float32)                   # (1, L, 3)
        # shadows that stay put: their own depth maps, for hard-ish shadow edges
        light_visible = (visibility(identity.vertices, identity.vertex_normals, identity.faces, light.directions,
                                    resolution=SHADOW_RESOLUTION) if lights else torch.zeros(len(identity.vertices), 0))
    irradiances = torch.as_tensor(light.irradiances, dtype=torch.float32) / math.pi                  # (L, 3)
    half = torch.nn.functional.normalize(light_dirs + views[subset, None], dim=-1)                   # (k, L, 3)
    summed, shading, specular = torch.zeros(m), torch.zeros(m, 3), torch.zeros(m, 3)
    for start in range(0, m, TEXEL_CHUNK):
        rows = torch.arange(start, min(start + TEXEL_CHUNK, m))
        normals = identity.texel_normals[rows]
        facing = (((normals @ views.T) - p.min_cosine) / (p.full_cosine - p.min_cosine)).clamp(0, 1) ** 2
        keep = (identity.band[rows] * identity.sampled[rows])[:, None]
        weights = facing * identity.geometry.interpolate(view_visible, rows) * keep * frame_weight     # (c, n)
        summed[rows] = weights.sum(1)
        part = weights[:, subset]
        total = part.sum(1, keepdim=True)
        # texels no view of the subset saw: the plain mean (their phone value is 0; the shading stays defined)
        mean = torch.where(total > 0, part / total.clamp_min(1e-12), 1.0 / len(subset))              # (c, k)
        light_mean = mean if light.camera_fixed else torch.ones(len(rows), 1)                       # (c, k or 1)
        effective_sh = (light_mean @ light_sh.reshape(light_sh.shape[0], 27)).reshape(-1, 9, 3)
        # order-2 SH rings a little below zero where almost no light arrives: clamp (light is never negative)
        shading[rows] = ((identity.transfer[rows, :, None] * effective_sh).sum(1) / math.pi).clamp_min(0)
        if lights:
            visible = identity.geometry.interpolate(light_visible, rows).reshape(len(rows), -1, lights)   # (c, k|1, L)
            cosine = torch.einsum("cj,nlj->cnl", normals, light_dirs).clamp_min(0) * visible
            shading[rows] += torch.einsum("cn,cnl,lk->ck", light_mean, cosine, irradiances)
            lobe = torch.einsum("cj,nlj->cnl", normals, half).clamp_min(0) ** light.shininess * cosine
            specular[rows] = light.specular * torch.einsum("cn,cnl,lk->ck", mean, lobe, irradiances)
    return summed, shading, specular * identity.sampled[:, None]


def make_sample(identity: Identity, seed: int, params: TextureCorpusParams = TextureCorpusParams(),
                environments: tuple[Environment, ...] | None = None, path: CameraPath | None = None,
                light: PhoneLight | None = None) -> Sample:
    """One sample of ``identity`` from ``seed`` (light, path and artifacts); ``path`` / ``light`` override theirs.

    ``environments``: None = Blender's HDRIs where bpy is installed (analytic environments otherwise); () = analytic.
    The studio texture and the albedo are the identity's (``identity.studio_srgb``, ``identity.albedo_linear``).
    """
    import cv2
    import torch

    from ..color import linear_to_srgb
    from ..texture.unwrap import COVERAGE_SCALE, OBSERVED

    rng = np.random.default_rng(seed)
    if environments is None:
        folder = environment_folder()
        environments = load_environments(str(folder) if folder else None)
    sampled_light, sampled_path = sample_phone_light(rng, params, environments), sample_camera_path(rng, params)
    light, path = light or sampled_light, path or sampled_path
    geometry, size = identity.geometry, identity.geometry.size

    summed, shading, specular = _shade(identity, path, light, params.light_views)
    coverage = 1.0 - torch.exp(-summed / COVERAGE_SCALE)
    observed = coverage > OBSERVED
    face = observed & identity.face

    # the phone: white balance removes part of the light's colour, auto exposure puts the face's shading near 1
    metered = shading[face if bool(face.any()) else observed if bool(observed.any()) else identity.sampled]
    light_colour = metered.mean(0).double().numpy()
    balance = rng.uniform(*params.white_balance)
    white_balance = (light_colour / luminance(light_colour)) ** -balance * np.exp(rng.normal(0, params.white_balance_error, 3))
    white_balance = white_balance / white_balance[1]
    exposure_stops = rng.normal(0.0, params.exposure_sigma_stops)
    median_shading = float(torch.median(luminance(metered * torch.as_tensor(white_balance, dtype=torch.float32))))
    gain = white_balance * 2.0 ** exposure_stops / max(median_shading, 1e-6)
    radiance = (identity.albedo_texels * shading + specular) * torch.as_tensor(gain, dtype=torch.float32)
    phone = geometry.image(radiance).numpy()
    seen = geometry.image(observed).numpy()

    # fusion artifacts: blur within the observed texels, noise falling with the views a texel got
    blur = rng.uniform(*params.blur_px) * size / 512
    if blur > 0:
        mask = seen.astype(np.float32)
        phone = cv2.GaussianBlur(phone * mask[..., None], (0, 0), blur) / np.maximum(cv2.GaussianBlur(mask, (0, 0), blur), 1e-6)[..., None]
    phone_srgb = linear_to_srgb(np.clip(phone, 0.0, 1.0))
    noise = rng.uniform(*params.noise)
    if noise > 0:
        grain = cv2.GaussianBlur(rng.standard_normal((size, size, 3), dtype=np.float32), (0, 0), GRAIN_PX) * GRAIN_GAIN
        sigma = noise * (0.25 + 0.75 / np.sqrt(1.0 + geometry.image(summed).numpy()))
        phone_srgb = phone_srgb + grain * sigma[..., None]
    phone_srgb = np.where(seen[..., None], np.clip(phone_srgb, 0.0, 1.0), 0.0).astype(np.float32)

    info = {"seed": seed, "light": light.info, "path": path.info,
            "exposure_stops": exposure_stops, "white_balance_strength": balance,
            "white_balance": white_balance, "gain": gain, "blur_px": blur, "noise_srgb": noise,
            "coverage_face": float(face.sum()) / max(int(identity.face.sum()), 1),
            "coverage_head": float(observed[identity.sampled].float().mean())}
    return Sample(phone_srgb=phone_srgb, coverage=geometry.image(coverage).numpy(), shading=geometry.image(shading).numpy(),
                  specular=geometry.image(specular).numpy(), gain=gain.astype(np.float32), info=_rounded(info))


# --------------------------------------------------------------------------------------------------------------- corpus

def sample_files(out_dir: str | os.PathLike, index: int) -> dict[str, Path]:
    return {kind: Path(out_dir) / f"{index:06d}_{kind}.png" for kind in KINDS}


def _read_index(out_dir: Path) -> dict[int, str]:
    """index -> its line in index.jsonl, for lines that parse (a crash can leave a torn last line)."""
    lines: dict[int, str] = {}
    path = out_dir / INDEX_JSONL
    if path.is_file():
        for line in path.read_text().splitlines():
            try:
                lines[int(json.loads(line)["index"])] = line
            except (ValueError, KeyError, TypeError):
                continue
    return lines


def _seed(*entropy: int) -> int:
    return int(np.random.SeedSequence(list(entropy)).generate_state(1)[0])


def write_texture_corpus(out_dir: str | os.PathLike, count: int, size: int = 512, seed: int = 0,
                         samples_per_identity: int = 8, progress: Any = None,
                         params: TextureCorpusParams = TextureCorpusParams(), model: HeadModel | None = None) -> dict[str, Any]:
    """Write samples 0..count-1 into ``out_dir`` (resuming: complete samples are kept); returns a summary.

    Sample i belongs to identity i // samples_per_identity; both are seeded from (``seed``, i), so a sample is the
    same bit for bit whether it is written in one run or after a resume. ``progress``: anything with
    ``update(fraction, message)`` (a ``StageProgress``; it raises ``Cancelled`` when the run is cancelled).
    ``model``: the head model (default: the open head).
    """
    if count < 0 or size < 16 or samples_per_identity < 1 or seed < 0:
        raise InputError(f"synth-textures needs --count >= 0, --size >= 16, --seed >= 0 and samples per identity >= 1 "
                         f"(got {count}, {size}, {seed}, {samples_per_identity})")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    lines = _read_index(out)
    done = {i for i in lines if all(path.is_file() for path in sample_files(out, i).values())}
    atomic_write_text(out / INDEX_JSONL, "".join(lines[i] + "\n" for i in sorted(done)))   # drop torn or orphan lines
    if model is None:
        from ..head.source import load_head

        model = load_head(with_landmarks=False)
    folder = environment_folder()
    environments = load_environments(str(folder) if folder else None)
    todo = [i for i in range(count) if i not in done]
    update = progress.update if progress is not None else (lambda fraction, message="", force=False: None)
    start = time.perf_counter()
    person, identity, shared = -1, None, {}
    with open(out / INDEX_JSONL, "a") as index_file:
        for position, index in enumerate(todo):
            update(position / max(len(todo), 1), f"sample {index + 1}/{count} (identity {index // samples_per_identity})")
            if index // samples_per_identity != person:
                person = index // samples_per_identity
                identity, shared = make_identity(model, size, _seed(seed, 0, person), params), {}
            sample = make_sample(identity, _seed(seed, 1, index), params, environments)
            _write_sample_files(sample_files(out, index), sample, identity, shared)
            record = {"index": index, "base_seed": seed, "size": size,
                      "identity": {"index": person, "seed": identity.seed, "shape": identity.shape[:params.shape_components]},
                      "albedo": identity.albedo_info, **sample.info}
            index_file.write(json.dumps(_rounded(record), default=_json) + "\n")
            index_file.flush()
            os.fsync(index_file.fileno())
    seconds = time.perf_counter() - start
    update(1.0, f"{len(todo)} samples written, {count - len(todo)} already there", force=True)
    return {"out_dir": str(out), "count": count, "written": len(todo), "skipped": count - len(todo), "size": size,
            "seed": seed, "samples_per_identity": samples_per_identity, "seconds": round(seconds, 2),
            "samples_per_hour": round(len(todo) / seconds * 3600, 1) if todo and seconds > 0 else None}


def _write_sample_files(files: dict[str, Path], sample: Sample, identity: Identity, shared: dict[str, Path]) -> None:
    """The sample's four PNGs, each atomically. The identity's studio and albedo files are encoded once and hard-linked
    (copied where the file system has no hard links) for its further samples: ``shared`` maps kind -> that file."""
    import shutil

    from ..image_io import write_png16

    for kind in KINDS:
        with atomic_path(files[kind]) as tmp:
            if kind in shared:
                tmp.unlink()
                try:
                    os.link(shared[kind], tmp)
                except OSError:
                    shutil.copyfile(shared[kind], tmp)
                continue
            write_png16(tmp, sample.phone_srgb if kind == "phone" else sample.coverage if kind == "coverage"
                        else identity.studio_srgb if kind == "studio" else identity.albedo_srgb)
        if kind in ("studio", "albedo"):
            shared[kind] = files[kind]


def _json(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"cannot write {type(value).__name__} to JSON")


def _rounded(value: Any) -> Any:
    """Floats (also inside lists, dicts and arrays) rounded to 5 significant places for index.jsonl."""
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_rounded(v) for v in value]
    if isinstance(value, np.ndarray):
        return _rounded(value.tolist())
    if isinstance(value, (float, np.floating)):
        return float(f"{float(value):.5g}")
    if isinstance(value, np.integer):
        return int(value)
    return value
