"""Open a built avatar .blend in a fresh Blender and report on it, or render its face with Cycles (CPU).

Run as a separate process by tests/test_build.py, so that the file is read
by a Blender that built nothing itself (and a renderer crash cannot take the
test session down):
    python tests/helpers/avatar_blend.py inspect AVATAR.blend REPORT.json
    python tests/helpers/avatar_blend.py render AVATAR.blend OUT.png [SIZE] [SAMPLES]
"""

import json
import math
import sys
from pathlib import Path

import bpy
import numpy as np
from mathutils import Vector

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools"))
from devpath import load_package  # noqa: E402

load_package()
from studio_avatar.core.blender.preview import preview_stage  # noqa: E402

WORLD_RGB = (0.02, 0.06, 0.12)     # a dark blue world, so no skin tone can come from it


def write_report(blend: Path, report_path: Path) -> None:
    bpy.ops.wm.open_mainfile(filepath=str(blend), load_ui=False)
    images = {}
    for image in bpy.data.images:
        if image.type != "IMAGE":
            continue
        path = Path(bpy.path.abspath(image.filepath_raw))
        images[image.name] = {
            "filepath": image.filepath_raw, "abspath": str(path), "exists": path.is_file(),
            "colour_space": image.colorspace_settings.name, "packed": image.packed_file is not None,
            "size": list(image.size),  # reading the size loads the pixels: proves the path or the packed data works
        }
    materials = {}
    for material in bpy.data.materials:
        nodes = material.node_tree.nodes if material.use_nodes else []
        bsdf = next((n for n in nodes if n.type == "BSDF_PRINCIPLED"), None)
        base = bsdf.inputs["Base Color"] if bsdf else None
        materials[material.name] = {
            "images": [{"image": n.image.name if n.image else None, "label": n.label,
                        "linked_to": [link.to_socket.name for link in n.outputs["Color"].links]}
                       for n in nodes if n.type == "TEX_IMAGE"],
            "base_color_linked": bool(base and base.is_linked),
            "inputs": {name: _value(bsdf.inputs[name].default_value) for name in (
                "Subsurface Weight", "Subsurface Radius", "Subsurface Scale", "Roughness", "Specular IOR Level",
                "Coat Weight")} if bsdf else {},
        }
    objects = {}
    for obj in bpy.data.objects:
        entry = {"type": obj.type, "collections": [c.name for c in obj.users_collection],
                 "parent": obj.parent.name if obj.parent else None,
                 "materials": [slot.material.name if slot.material else None for slot in obj.material_slots]}
        if obj.type == "MESH":
            index = np.empty(len(obj.data.polygons), np.int32)
            obj.data.polygons.foreach_get("material_index", index)
            entry["polygons_per_slot"] = np.bincount(index, minlength=len(obj.material_slots)).tolist()
            entry["attributes"] = sorted(a.name for a in obj.data.attributes)
            entry["shape_keys"] = len(obj.data.shape_keys.key_blocks) if obj.data.shape_keys else 0
        objects[obj.name] = entry
    collections = {c.name: {"objects": sorted(o.name for o in c.objects), "properties": {k: c[k] for k in c.keys()},
                            "in_scene": c.name in bpy.context.scene.collection.children}
                   for c in bpy.data.collections}
    report = {"images": images, "materials": materials, "objects": objects, "collections": collections}
    report_path.write_text(json.dumps(report, indent=1))


def render_face(blend: Path, out: Path, size: int = 160, samples: int = 16) -> None:
    """Front view of the face: camera on the -Y side of the head at eye height, a key light, a dark blue world."""
    bpy.ops.wm.open_mainfile(filepath=str(blend), load_ui=False)
    scene = bpy.context.scene
    head = next(obj for obj in scene.objects if obj.type == "MESH" and obj.data.shape_keys)
    corners = np.array([head.matrix_world @ Vector(corner) for corner in head.bound_box])
    low, high = corners.min(0), corners.max(0)
    face_centre = Vector(((low[0] + high[0]) / 2, low[1], low[2] + 0.6 * (high[2] - low[2])))

    camera = preview_stage(scene, "Test", WORLD_RGB, (70, 0, -20), size, samples)   # key light from the front, above
    distance = 0.6 * (high[0] - low[0]) / math.tan(camera.data.angle / 2)   # the face fills most of the frame
    camera.location = face_centre + Vector((0.0, -distance, 0.0))
    camera.rotation_euler = (math.radians(90), 0.0, 0.0)                    # looking along +Y
    scene.render.image_settings.color_mode = "RGB"
    scene.view_settings.view_transform = "Standard"
    scene.render.filepath = str(out)
    bpy.ops.render.render(write_still=True)


def _value(value):
    return list(value) if hasattr(value, "__len__") else value


if __name__ == "__main__":
    command, blend, out = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
    if command == "inspect":
        write_report(blend, out)
    else:
        render_face(blend, out, *(int(arg) for arg in sys.argv[4:6]))
