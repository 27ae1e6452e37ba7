"""A capture's avatar in Blender: the rigged head with the fitted identity, dressed in its materials.

``build_avatar`` adds it to the open scene (the add-on's "Build Avatar from
Capture" does this): core/blender/head.py builds the head with the capture's
shape coefficients, then the head mesh gets the skin material from the best
albedo (material slot 0) plus plain teeth, tongue and mouth-interior materials
on the polygons of those regions, and the eyes get the procedural eye
material. Only new datablocks are made; user objects are never touched.

``write_avatar_blend`` is the command-line ``build``: the same avatar alone in
a fresh file, its images copied beside the .blend (relative paths) or packed,
saved atomically. It replaces the session's data, so it is for a Blender
process of its own (the CLI), never for the add-on.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import os
import shutil
import uuid
from pathlib import Path
from typing import Any

import bpy
import numpy as np

from ..atomic import atomic_path, atomic_write_json
from ..avatar_inputs import AvatarInputs, check_head_model
from ..errors import InputError
from ..hashing import file_sha256
from ..head.model import HeadModel
from ..paths import check_output_path
from .head import UV_LAYER, VERTEX_INDEX_ATTRIBUTE, build_head
from .material import NON_COLOR, SRGB, PlainLook, eye_material, load_image, plain_material, skin_material

DEFAULT_NAME = "Studio Avatar"
LIPS_ATTRIBUTE = "studio_avatar_lips"        # float point attribute on the head mesh: 1 on the lips
# head-mesh regions with their own material, in priority order (a polygon takes the first whose region holds all its corners)
MOUTH_PARTS = (
    ("teeth", "Teeth", PlainLook((0.78, 0.74, 0.62), roughness=0.3, subsurface_weight=0.1)),
    ("tongue", "Tongue", PlainLook((0.42, 0.10, 0.09), roughness=0.45, subsurface_weight=0.2)),
    ("mouth_interior", "Mouth", PlainLook((0.20, 0.035, 0.03), roughness=0.5, subsurface_weight=0.15)),
)
# custom properties on the avatar's collection: where it came from
CAPTURE_PROPERTY = "studio_avatar_capture"
ALBEDO_PROPERTY = "studio_avatar_albedo"
FIT_PROPERTY = "studio_avatar_fit_sha256"
# in NAME_textures/: the files build wrote there and their hashes; build replaces nothing else
TEXTURES_MARKER = ".studio_avatar_textures.json"


def build_avatar(model: HeadModel, inputs: AvatarInputs, name: str = DEFAULT_NAME, collection: Any = None,
                 pack: bool = False) -> dict[str, Any]:
    """Build the avatar of ``inputs`` on ``model`` (the fit's head model) in a new collection under ``collection``.

    pack: pack the images into the .blend instead of referencing the files.
    Returns build_head's dict plus "materials" (name -> material) and
    "images" (label -> image).
    """
    check_head_model(inputs, model)
    images = {"albedo": load_image(inputs.albedo, f"{name} Albedo", SRGB)}
    for label, path in inputs.data_maps.items():
        images[label] = load_image(path, f"{name} {label.capitalize()}", NON_COLOR)
    if pack:
        for image in images.values():
            image.pack()
    try:
        built = build_head(model, shape=inputs.shape, name=name, collection=collection)
    except BaseException:
        for image in images.values():
            bpy.data.images.remove(image)
        raise

    mesh = built["mesh"]
    model_index = np.empty(len(mesh.data.vertices), np.int32)
    mesh.data.attributes[VERTEX_INDEX_ATTRIBUTE].data.foreach_get("value", model_index)
    lips = model.regions.get("lips", np.zeros(model.num_vertices, bool))[model_index]
    mesh.data.attributes.new(LIPS_ATTRIBUTE, "FLOAT", "POINT").data.foreach_set("value", lips.astype(np.float32))

    data_maps = {label: image for label, image in images.items() if label != "albedo"}
    materials = {"Skin": skin_material(f"{name} Skin", images["albedo"], data_maps, UV_LAYER, LIPS_ATTRIBUTE)}
    mesh.data.materials.append(materials["Skin"])
    material_index = np.zeros(len(mesh.data.polygons), np.int32)
    unassigned = np.ones(len(mesh.data.polygons), bool)
    for region, label, look in MOUTH_PARTS:
        inside = _polygons_inside(mesh.data, model.regions.get(region), model_index) & unassigned
        if inside.any():
            materials[label] = plain_material(f"{name} {label}", look)
            mesh.data.materials.append(materials[label])
            material_index[inside] = len(mesh.data.materials) - 1
            unassigned &= ~inside
    mesh.data.polygons.foreach_set("material_index", material_index)

    materials["Eye"] = eye_material(f"{name} Eye")
    for eye in built["eyes"]:
        eye.data.materials.append(materials["Eye"])
    built["collection"][CAPTURE_PROPERTY] = str(inputs.capture)
    built["collection"][ALBEDO_PROPERTY] = inputs.albedo_kind
    built["collection"][FIT_PROPERTY] = inputs.fit_sha256
    return {**built, "materials": materials, "images": images}


def _polygons_inside(mesh: Any, region: np.ndarray | None, model_index: np.ndarray) -> np.ndarray:
    """(P,) True for the polygons of ``mesh`` whose corners all lie in the model-vertex mask ``region``."""
    if region is None:
        return np.zeros(len(mesh.polygons), bool)
    corners = np.empty(len(mesh.loops), np.int32)
    mesh.loops.foreach_get("vertex_index", corners)
    starts = np.empty(len(mesh.polygons), np.int32)
    mesh.polygons.foreach_get("loop_start", starts)
    return np.logical_and.reduceat(region[model_index[corners]], starts)


def check_blend_output(path: str | os.PathLike, overwrite: bool) -> Path:
    """The absolute .blend path to write; refuses other extensions and existing files unless ``overwrite``."""
    path = check_output_path(path)
    if path.suffix.lower() != ".blend":
        raise InputError(f"{path}: the output must be a .blend file")
    if path.is_dir():
        raise InputError(f"{path}: is a folder; give a .blend file name")
    if path.exists() and not overwrite:
        raise InputError(f"{path} already exists; choose another name, or pass --overwrite to replace it")
    return path


def texture_folder(blend: Path) -> Path:
    """Where the avatar's images go beside ``blend``: ``<name>_textures/``."""
    return blend.with_name(f"{blend.stem}_textures")


def check_texture_folder(blend: Path, overwrite: bool, names: tuple[str, ...] = ()) -> dict[str, str]:
    """The files an earlier build wrote into ``blend``'s texture folder (name -> sha256), or {} if there is none yet.

    Refuses a folder build did not write (no marker, not empty), an earlier
    build's folder without ``overwrite``, and any of ``names`` that build did
    not write there or that was edited since: only build's own files are ever
    replaced.
    """
    folder = texture_folder(blend)
    if not folder.exists():
        return {}
    if not folder.is_dir():
        raise InputError(f"{folder} exists and is not a folder; choose another .blend name or move it away")
    try:
        written = json.loads((folder / TEXTURES_MARKER).read_text(encoding="utf-8"))["files"]
    except (OSError, ValueError, KeyError, TypeError):
        if any(folder.iterdir()):
            raise InputError(f"{folder} already exists and was not written by build; choose another .blend name "
                             "or move that folder away (build never replaces files it did not write)") from None
        return {}
    if not overwrite:
        raise InputError(f"{folder} holds the images of an earlier build; pass --overwrite to replace them, "
                         "or choose another .blend name")
    for name in names:
        path = folder / name
        if path.exists() and (name not in written or file_sha256(path) != written[name]):
            raise InputError(f"{path} was not written by build, or was edited since; move it away "
                             "(--overwrite replaces only the files build wrote)")
    return dict(written)


def write_avatar_blend(model: HeadModel, inputs: AvatarInputs, path: str | os.PathLike, pack: bool = False,
                       overwrite: bool = False, name: str = DEFAULT_NAME) -> dict[str, Any]:
    """Write a .blend holding only the avatar of ``inputs``; returns what was written (JSON-ready).

    Images are copied into ``<name>_textures/`` beside the .blend and referenced
    relatively, or packed into it with ``pack``; packed images still carry
    that relative path, so that unpacking writes beside the .blend and never
    into the capture. The .blend is saved under a temporary name in the same
    folder and renamed over ``path``: a reader sees the old file or the new
    one, never a part, and Blender makes no .blend1 backup.
    """
    blend = check_blend_output(path, overwrite)
    check_head_model(inputs, model)
    folder = texture_folder(blend)
    sources = {"albedo": inputs.albedo, **inputs.data_maps}
    relative = {label: f"//{folder.name}/{source.name}" for label, source in sources.items()}
    blend.parent.mkdir(parents=True, exist_ok=True)
    if not pack:
        written = check_texture_folder(blend, overwrite, tuple(source.name for source in sources.values()))
        copies = {label: folder / source.name for label, source in sources.items()}
        for label, source in sources.items():
            with atomic_path(copies[label]) as tmp:
                shutil.copyfile(source, tmp)
            written[source.name] = file_sha256(copies[label])
        atomic_write_json(folder / TEXTURES_MARKER, {"files": written})
        inputs = dataclasses.replace(inputs, albedo=copies["albedo"],
                                     data_maps={label: copies[label] for label in inputs.data_maps})

    # Blender's operators print their reports ("Info: Saved copy as ...") on stdout, which holds our JSON result
    with contextlib.redirect_stdout(io.StringIO()):
        bpy.ops.wm.read_homefile(use_empty=True, use_factory_startup=True)
        built = build_avatar(model, inputs, name=name, pack=pack)
        for label, image in built["images"].items():
            image.filepath_raw = relative[label]  # no reload: the pixels stay as loaded (or packed)
        _save_blend_atomically(blend)
    return {
        "blend": str(blend),
        "collection": built["collection"].name,
        "objects": sorted(obj.name for obj in built["collection"].objects),
        "model": model.source,
        "albedo": inputs.albedo_kind,
        "images": [{"name": image.name, "role": label, "filepath": image.filepath_raw,
                    "file": None if pack else str(folder / sources[label].name),
                    "colour_space": image.colorspace_settings.name, "packed": image.packed_file is not None}
                   for label, image in built["images"].items()],
        "materials": sorted(material.name for material in built["materials"].values()),
    }


def _save_blend_atomically(blend: Path) -> None:
    tmp = blend.with_name(f".{blend.stem}.{uuid.uuid4().hex[:12]}.tmp.blend")  # a new name: Blender backs up only existing files
    try:
        try:
            bpy.ops.wm.save_as_mainfile(filepath=str(tmp), check_existing=False, compress=False, relative_remap=False, copy=True)
        except RuntimeError as exc:
            raise InputError(f"{blend}: Blender could not save the file ({' '.join(str(exc).split())}); "
                             "check that the folder is writable and has free space") from None
        os.replace(tmp, blend)
    finally:
        tmp.unlink(missing_ok=True)
