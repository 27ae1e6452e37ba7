"""Write a HeadModel (or posed vertices of it) as a Wavefront OBJ with UVs, one group per part."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..atomic import atomic_path
from .model import HeadModel


def export_obj(model: HeadModel, path: str | os.PathLike, vertices_m: np.ndarray | None = None) -> Path:
    """Write ``vertices_m`` (default: the template) with the model's polygons and UVs, atomically."""
    verts = model.template_m if vertices_m is None else np.asarray(vertices_m)
    assert verts.shape == model.template_m.shape, "vertices must match the model"
    polys, poly_uv = model.polygons, model.polygon_uv
    part = np.full(len(polys), "skin", dtype=object)
    for name in ("eye_left", "eye_right", "teeth", "tongue"):
        if name in model.regions:
            part[model.regions[name][np.where(polys >= 0, polys, polys[:, :1])].all(1)] = name
    lines = [f"# Studio Avatar head ({model.source}), metres, +y up, +z forward", f"o {model.source}"]
    lines += [f"v {x:.6f} {y:.6f} {z:.6f}" for x, y, z in verts]
    lines += [f"vt {u:.6f} {v:.6f}" for u, v in model.uv]
    for name in dict.fromkeys(part):
        lines.append(f"g {name}")
        for poly, corners in zip(polys[part == name], poly_uv[part == name]):
            ids = [f"{v + 1}/{t + 1}" for v, t in zip(poly, corners) if v >= 0]
            lines.append("f " + " ".join(ids))
    dest = Path(path)
    with atomic_path(dest) as tmp:
        tmp.write_text("\n".join(lines) + "\n")
    return dest
