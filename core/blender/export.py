"""A built avatar (.blend from ``studio-avatar build``) as files for other tools: glTF binary, FBX, FLAME parameters.

``export_avatar`` opens the .blend in this Blender session, finds the avatar
(``core/blender/rig.py``'s ``require_avatar``) and writes:

- ``.glb``: the armature, head and eyes with skin weights, one morph target
  per shape key (names kept in the mesh's ``targetNames``), materials and
  embedded images; modifiers are not applied, so the shape keys survive.
- ``.fbx``: the same for Unreal, Unity and Live Link Face pipelines: Blender's
  default FBX axes (-Z forward, Y up), which both engines convert on import;
  no leaf bones, no baked animation. The open head's shape keys already carry
  the 52 ARKit names; a FLAME avatar's (expression_000, ...) are PCA
  coefficients with no ARKit equivalent, so they are written as they are and
  the result says ``"arkit": false``.
- ``.npz``: the FLAME-style parameters of the capture the avatar was built
  from (identity shape, per-frame expression, pose, translation, camera; the
  conventions of fit.npz, in the head model's frame) with the avatar's
  expression and bone names, written with numpy and no pickle.

Every file is written under a temporary name beside the target and renamed
over it. Opening the .blend replaces the session's data, so this is for a
Blender process of its own (the CLI), never for the add-on. It never writes
to the .blend or to the capture.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import bpy
import numpy as np

from ..atomic import atomic_path, atomic_write_npz
from ..avatar_inputs import check_built_capture
from ..errors import InputError
from ..fit import FIT_NPZ, load_fit
from ..native_stderr import native_stdout_captured
from ..paths import check_output_path
from .head import BASIS_KEY
from .rig import Avatar, require_avatar

FORMATS = {".glb": "glb", ".fbx": "fbx", ".npz": "npz"}
# Apple ARKit's 52 face blendshapes (ARFaceAnchor.BlendShapeLocation), the names Live Link Face streams
ARKIT_BLENDSHAPES = (
    "eyeBlinkLeft", "eyeLookDownLeft", "eyeLookInLeft", "eyeLookOutLeft", "eyeLookUpLeft", "eyeSquintLeft",
    "eyeWideLeft", "eyeBlinkRight", "eyeLookDownRight", "eyeLookInRight", "eyeLookOutRight", "eyeLookUpRight",
    "eyeSquintRight", "eyeWideRight", "jawForward", "jawLeft", "jawRight", "jawOpen", "mouthClose", "mouthFunnel",
    "mouthPucker", "mouthLeft", "mouthRight", "mouthSmileLeft", "mouthSmileRight", "mouthFrownLeft",
    "mouthFrownRight", "mouthDimpleLeft", "mouthDimpleRight", "mouthStretchLeft", "mouthStretchRight",
    "mouthRollLower", "mouthRollUpper", "mouthShrugLower", "mouthShrugUpper", "mouthPressLeft", "mouthPressRight",
    "mouthLowerDownLeft", "mouthLowerDownRight", "mouthUpperUpLeft", "mouthUpperUpRight", "browDownLeft",
    "browDownRight", "browInnerUp", "browOuterUpLeft", "browOuterUpRight", "cheekPuff", "cheekSquintLeft",
    "cheekSquintRight", "noseSneerLeft", "noseSneerRight", "tongueOut",
)
# fit.npz arrays that are parameters (the rest are diagnostics: landmarks, residuals, weights)
FIT_PARAMETERS = ("shape", "expression", "pose", "translation", "focal_px", "principal_px", "camera_rotation",
                  "camera_translation", "image_size", "frame", "video_index", "time_s", "joint_names",
                  "model_source", "model_fingerprint")


def check_export_output(path: str | os.PathLike, overwrite: bool) -> tuple[Path, str]:
    """The absolute output path and its format; refuses unknown extensions and existing files unless ``overwrite``."""
    path = check_output_path(path)
    kind = FORMATS.get(path.suffix.lower())
    if kind is None:
        raise InputError(f"{path}: the output must end in {', '.join(FORMATS)} (glTF binary, FBX, FLAME parameters)")
    if path.is_dir():
        raise InputError(f"{path}: is a folder; give a file name")
    if path.exists() and not overwrite:
        raise InputError(f"{path} already exists; choose another name, or pass --overwrite to replace it")
    return path, kind


def export_avatar(blend_path: str | os.PathLike, output_path: str | os.PathLike, overwrite: bool = False) -> dict[str, Any]:
    """Write the avatar in ``blend_path`` as ``output_path`` (.glb, .fbx or .npz); returns what was written (JSON-ready)."""
    output, kind = check_export_output(output_path, overwrite)
    blend = Path(blend_path).expanduser().absolute()
    if not blend.is_file():
        raise InputError(f"{blend}: no such .blend file; write one with `studio-avatar build CAPTURE -o {blend.name}`")
    with native_stdout_captured():  # Blender prints "Read blend: ..." and exporter reports on stdout, where our JSON goes
        try:
            bpy.ops.wm.open_mainfile(filepath=str(blend), load_ui=False)
        except RuntimeError as exc:
            raise InputError(f"{blend}: Blender could not open it ({' '.join(str(exc).split())})") from None
        avatar = require_avatar(bpy.context.scene, str(blend))
        names = [key.name for key in avatar.head.data.shape_keys.key_blocks if key.name != BASIS_KEY]
        result = {
            "path": str(output), "format": kind, "avatar": avatar.name,
            "vertices": len(avatar.head.data.vertices), "shape_keys": names,
            "bones": [bone.name for bone in avatar.armature.data.bones],
            "arkit": sorted(names) == sorted(ARKIT_BLENDSHAPES),
        }
        output.parent.mkdir(parents=True, exist_ok=True)
        if kind == "npz":
            result.update(_write_parameters(output, avatar, names, result["bones"]))
        else:
            objects = [avatar.armature, *avatar.meshes]
            _select_only(objects, active=avatar.armature)
            with atomic_path(output) as tmp:
                (_write_gltf if kind == "glb" else _write_fbx)(tmp)
            result["objects"] = sorted(obj.name for obj in objects)
    return result


def _select_only(objects: list[Any], active: Any) -> None:
    view_layer = bpy.context.view_layer
    for obj in view_layer.objects:
        obj.select_set(False)
    for obj in objects:
        if obj.name not in view_layer.objects:
            raise InputError(f"the avatar's object {obj.name!r} is not in the scene's view layer; "
                             "link its collection into the scene (and enable it) before exporting")
        obj.hide_set(False)
        obj.select_set(True)
    view_layer.objects.active = active


def _write_gltf(path: Path) -> None:
    bpy.ops.export_scene.gltf(
        filepath=str(path), check_existing=False, export_format="GLB", use_selection=True,
        export_apply=False,                    # applying modifiers would drop the shape keys
        export_skins=True, export_morph=True, export_morph_normal=False, export_morph_tangent=False,
        export_animations=False, export_materials="EXPORT", export_extras=False, export_cameras=False,
        export_lights=False,
    )


def _write_fbx(path: Path) -> None:
    bpy.ops.export_scene.fbx(
        filepath=str(path), check_existing=False, use_selection=True, object_types={"ARMATURE", "MESH"},
        axis_forward="-Z", axis_up="Y",       # Blender's FBX default; Unreal and Unity convert it on import
        use_mesh_modifiers=False,              # applying modifiers would drop the shape keys
        mesh_smooth_type="FACE", add_leaf_bones=False, armature_nodetype="NULL", bake_anim=False,
        path_mode="COPY", embed_textures=True,
    )


def _write_parameters(output: Path, avatar: Avatar, names: list[str], bones: list[str]) -> dict[str, Any]:
    """The capture's fitted parameters plus the avatar's names as .npz; the capture must still hold its fit.npz."""
    capture = avatar.capture
    fit_path = Path(capture) / FIT_NPZ if capture else None
    if fit_path is None or not fit_path.is_file():
        where = f"its capture {capture} has no {FIT_NPZ}" if capture else "the .blend records no capture"
        raise InputError(f"the avatar's FLAME parameters come from the fit it was built from, but {where}; "
                         "put the capture back, or rebuild the avatar with `studio-avatar build CAPTURE`")
    newer = check_built_capture(capture, avatar.fit_sha256, "export")
    if newer:       # the parameters must be those of the fit the avatar's mesh was built from
        raise InputError(f"{newer}; then export its parameters")
    fit = load_fit(str(fit_path))
    arrays = {key: fit[key] for key in FIT_PARAMETERS if key in fit}
    arrays["expression_names"] = np.array(names)
    arrays["bone_names"] = np.array(bones)
    atomic_write_npz(output, **arrays)
    return {"capture": capture, "frames": int(np.asarray(fit["expression"]).shape[0]) if "expression" in fit else 0,
            "arrays": sorted(arrays)}
