"""``studio-avatar eval``: a reconstructed capture measured against the ground truth of its synthetic video.

Per texture method present in the capture (``phone``, the lit fused texture
with holes; ``delit_classic``; ``gmug``; ``final``), compared at that
texture's resolution (the true albedo and shading are area-resampled to it):

* albedo PSNR and SSIM (sRGB, peak 1) over the **observed** texels (coverage
  above ``unwrap.OBSERVED``) and the **completed** ones (skin never observed;
  ``None`` for ``phone``, which completes nothing), on the face
  (``TexelGeometry.face_surface``: the face region as coverage measures it)
  and, with the ``_head`` suffix, on all skin texels of the head (eyes, mouth
  interior, teeth and tongue carry fixed colours of their own materials and
  are left out). ``_matched`` variants first scale the estimate by one
  exposure gain (the median luminance ratio over the observed face): a phone
  auto-exposes, so only relative brightness can be recovered;
* ``shading_leakage``: correlation of the albedo's log-luminance error with
  the true shading over the observed skin (0 = the light is gone);
* skin tone on the observed face: ``delta_e_face`` (mean per-texel CIEDE2000),
  ``delta_e_face_mean_colour`` (CIEDE2000 of the mean colours: the skin-tone
  error), ``ita_error_deg`` (ITA° of the median colour, estimate - truth);
* ``identity_distance``: dlib face-descriptor distance between the recovered
  avatar (fitted shape, this albedo) and the true one, rendered alike
  (``core/eval/identity.py``).

Per capture: ``geometry_error_mm`` (neutral fitted vs true head, face
vertices, after the best rotation and translation) and its scale-aligned
variant; the fit as the frames saw it (``posed_geometry_errors``):
``vertex_error_mm_posed_mean`` (posed face vertices per frame in camera
space, after the one unobservable global scale), ``rotation_error_deg_mean``
and ``focal_error_rel`` (fitted / true - 1); ``coverage_face`` /
``coverage_head`` (the unwrap's report), ``gt_ita_deg``, ``timings_s`` (each
finished stage's duration).

Values are Python floats: ``inf`` for a PSNR of identical images, ``nan``
where a metric is undefined; ``json_ready`` turns them into the strings
``"inf"`` and ``null`` for JSON. This module reads the capture and the ground
truth and writes nothing.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import TOOL_NAME, color
from ..avatar_inputs import ALBEDO_CHOICES
from ..capture import Capture
from ..color import linear_to_srgb, srgb_to_linear
from ..errors import CaptureError, InputError
from ..head.model import HeadModel
from ..stages import REPORT_NAME, is_current, require_current, stage_states
from . import metrics

PHONE_METHOD = ("phone", "textures/phone.png")
# evaluated in this order: the lit phone texture, then the albedos from baseline to best
METHODS = (PHONE_METHOD,) + tuple(reversed(ALBEDO_CHOICES))
COMPLETED_NONE = {"phone"}      # textures with holes: nothing completed to measure


@dataclass
class TextureTruth:
    """The ground truth resampled to one texture size, with that size's texel masks."""

    albedo_linear: np.ndarray      # (S, S, 3)
    albedo_srgb: np.ndarray        # (S, S, 3)
    shading: np.ndarray | None     # (S, S, 3) linear irradiance
    skin: np.ndarray               # (S, S) bool: skin texels of the head
    face: np.ndarray               # (S, S) bool: face-surface skin texels
    observed: np.ndarray           # (S, S) bool: skin texels the capture observed


def evaluate_capture(capture_dir: str | os.PathLike, gt_dir: str | os.PathLike, methods: list[str] | None = None,
                     identity: bool = True, progress: Any = None, force: bool = False) -> dict[str, Any]:
    """All metrics of the capture against the ground truth (see the module docstring); ``methods`` limits the
    texture methods (default: every one present), ``identity=False`` skips the face-descriptor renders.

    Refuses ground truth of another video than the capture's source, and
    stale results; ``force`` scores another video's ground truth anyway, with a warning.
    """
    from ..fit import FIT_NPZ, load_fit, load_fitted_model
    from ..image_io import read_image
    from ..synth.ground_truth import read_ground_truth
    from ..texture.unwrap import COVERAGE_PNG

    started = time.monotonic()
    update = progress.update if progress is not None else (lambda *args, **kwargs: None)
    capture = Capture.open(capture_dir)
    root = capture.root
    if (capture.stage_record("fit") or {}).get("status") != "done" or not capture.path(FIT_NPZ).is_file():
        raise CaptureError(f"{root}: the capture has no finished fit; run `{TOOL_NAME} reconstruct VIDEO -o {root}` first")
    chosen = _chosen_methods(capture, methods)
    if not capture.path(COVERAGE_PNG).is_file():
        raise CaptureError(f"{root}: no {COVERAGE_PNG}; run the unwrap stage (`{TOOL_NAME} reconstruct VIDEO -o {root}`)")
    warnings: list[str] = []
    states = stage_states(capture)
    if methods is None:     # every method present: stale ones are left out (asked for by name, they are refused)
        stale = [name for name, _ in chosen if not is_current(capture, dict(METHODS)[name], states)]
        if stale and len(stale) < len(chosen):
            warnings.append(f"left out the stale texture(s) {', '.join(stale)}; rerun reconstruct to evaluate them")
            if progress is not None:
                progress.warning(warnings[-1])
        chosen = [(name, path) for name, path in chosen if name not in stale] or chosen
    require_current(capture, [FIT_NPZ, COVERAGE_PNG] + [dict(METHODS)[name] for name, _ in chosen], "eval", states)
    update(0.0, "reading the fit and the ground truth", force=True)
    gt = read_ground_truth(gt_dir)
    _check_same_video(capture, gt, force, progress, warnings)
    fit = load_fit(str(capture.path(FIT_NPZ)))
    model = load_fitted_model(capture, fit)
    _check_same_model(fit, gt.truth, gt.root)
    fit_shape, true_shape = _shape(model, fit), _shape(model, gt.truth)
    coverage = read_image(capture.path(COVERAGE_PNG))
    if coverage.ndim != 2:
        raise CaptureError(f"{capture.path(COVERAGE_PNG)} is not a one-channel coverage map; re-run unwrap (`--force unwrap`)")

    result: dict[str, Any] = {"capture": str(root.resolve()), "ground_truth": str(gt.root.resolve()), "warnings": warnings}
    result.update({**geometry_errors_mm(model, fit_shape, true_shape), **posed_geometry_errors(model, fit, gt.truth)})
    result.update(_coverage(capture))
    truths: dict[int, TextureTruth] = {}
    rest_normals = _rest_normals(model, true_shape)
    views = reference = None
    if identity:
        from .identity import descriptor_distance, identity_descriptors, studio_views

        update(0.05, "rendering the true avatar for the identity metric", force=True)
        views = studio_views(model, true_shape)
        reference = identity_descriptors(model, views, true_shape, gt.albedo_linear)

    result["methods"] = {}
    for k, (name, path) in enumerate(chosen):
        update(0.1 + 0.85 * k / len(chosen), f"evaluating the {name} texture", force=True)
        estimate_srgb = read_image(path)
        if estimate_srgb.ndim != 3 or estimate_srgb.shape[0] != estimate_srgb.shape[1]:
            raise CaptureError(f"{path} is not a square RGB texture; re-run the stage that writes it")
        size = estimate_srgb.shape[0]
        if size not in truths:
            truths[size] = _truth_at(model, gt, coverage, rest_normals, size)
        scores = texture_metrics(estimate_srgb, truths[size], completed=name not in COMPLETED_NONE)
        if name == "final":
            scores["seam_ratio"] = _seam_ratio(capture, srgb_to_linear(estimate_srgb), truths[size].skin)
        scores["identity_distance"] = math.nan
        if identity:
            scores["identity_distance"] = descriptor_distance(
                identity_descriptors(model, views, fit_shape, srgb_to_linear(estimate_srgb)), reference)
        result["methods"][name] = scores
    first = truths[next(iter(truths))]
    result["gt_ita_deg"] = float(color.ita_degrees(np.median(first.albedo_linear[first.face], 0)))
    result["timings_s"] = {stage: record["duration_s"] for stage, record in capture.manifest["stages"].items()
                           if record.get("status") == "done" and record.get("duration_s") is not None}
    result["eval_seconds"] = round(time.monotonic() - started, 3)
    update(1.0, "done", force=True)
    return result


def texture_metrics(estimate_srgb: np.ndarray, truth: TextureTruth, completed: bool = True) -> dict[str, Any]:
    """The per-method metrics of one recovered texture against the truth at its size (no identity)."""
    estimate_linear = srgb_to_linear(estimate_srgb)
    seen, unseen = truth.observed, truth.skin & ~truth.observed
    masks = {"observed": truth.face & seen, "completed": truth.face & unseen,
             "observed_head": seen, "completed_head": unseen}
    gain = metrics.exposure_gain(estimate_linear, truth.albedo_linear, masks["observed"])
    matched_srgb = linear_to_srgb(np.clip(estimate_linear * gain, 0.0, 1.0))
    out: dict[str, Any] = {"texture_size": int(estimate_srgb.shape[0]), "exposure_gain": gain}
    for label, mask in masks.items():
        is_completed = label.startswith("completed")
        if is_completed and not completed:
            values = dict.fromkeys(("psnr", "ssim", "psnr_matched"))
        else:
            values = {"psnr": metrics.psnr(estimate_srgb, truth.albedo_srgb, mask),
                      "ssim": metrics.ssim(estimate_srgb, truth.albedo_srgb, mask),
                      "psnr_matched": metrics.psnr(matched_srgb, truth.albedo_srgb, mask)}
        for metric, value in values.items():
            base, _, matched = metric.partition("_")
            out[f"albedo_{base}_{label}" + (f"_{matched}" if matched else "")] = value
    out["albedo_ssim_observed_matched"] = metrics.ssim(matched_srgb, truth.albedo_srgb, masks["observed"])
    out["shading_leakage"] = (metrics.shading_leakage(estimate_linear, truth.albedo_linear, truth.shading, seen)
                              if truth.shading is not None else math.nan)
    face = masks["observed"]
    lab_estimate = color.linear_srgb_to_lab(estimate_linear[face])
    lab_truth = color.linear_srgb_to_lab(truth.albedo_linear[face])
    out["delta_e_face"] = float(color.delta_e2000(lab_estimate, lab_truth).mean()) if face.any() else math.nan
    mean_colours = [color.linear_srgb_to_lab(image[face].mean(0)) for image in (estimate_linear, truth.albedo_linear)]
    out["delta_e_face_mean_colour"] = float(color.delta_e2000(*mean_colours)) if face.any() else math.nan
    ita = [float(color.ita_degrees(np.median(image[face], 0))) if face.any() else math.nan
           for image in (estimate_linear, truth.albedo_linear)]
    out["ita_deg"] = ita[0]
    out["ita_error_deg"] = ita[0] - ita[1]
    truth_energy = metrics.band_energy(truth.albedo_linear, truth.face) if truth.face.any() else math.nan
    out["albedo_hf_energy_ratio_face"] = (metrics.band_energy(estimate_linear, truth.face) / truth_energy
                                          if truth_energy > 0 else math.nan)
    out["albedo_gradient_correlation_observed"] = metrics.gradient_correlation(estimate_linear, truth.albedo_linear, face)
    return out


def geometry_errors_mm(model: HeadModel, shape: np.ndarray, true_shape: np.ndarray) -> dict[str, float]:
    """Face-vertex error (mm) of the neutral head ``shape`` against the true one, after the best rigid
    alignment (``geometry_error_mm``) and after the best similarity (``geometry_error_mm_scale_aligned``: a
    single camera cannot tell a larger head further away from a smaller one nearer)."""
    import torch

    with torch.no_grad():
        heads = model.vertices(torch.as_tensor(np.stack([shape, true_shape]), dtype=torch.float64)).numpy()
    face = np.asarray(model.regions["face"], bool)
    fitted, true = heads[0, face], heads[1, face]
    return {"geometry_error_mm": 1000 * metrics.rigid_alignment_error_m(fitted, true),
            "geometry_error_mm_scale_aligned": 1000 * metrics.rigid_alignment_error_m(fitted, true, with_scale=True)}


def posed_geometry_errors(model: HeadModel, fit: dict[str, np.ndarray], truth: dict[str, np.ndarray]) -> dict[str, float]:
    """The fit as the frames saw it, against the truth: per-frame posed face vertices in camera space after the one
    unobservable global scale (``vertex_error_mm_posed_mean``), head rotation and focal length errors."""
    from ..fit.evaluate import compare_with_truth

    errors = compare_with_truth(model, fit, truth)
    return {"vertex_error_mm_posed_mean": errors["vertex_error_mm_mean"],
            "rotation_error_deg_mean": errors["rotation_error_deg_mean"], "focal_error_rel": errors["focal_error_rel"]}


def json_ready(value: Any, digits: int = 6) -> Any:
    """``value`` with floats rounded, ``inf`` as the string "inf" (JSON has no infinity) and NaN as None."""
    if isinstance(value, dict):
        return {key: json_ready(item, digits) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(item, digits) for item in value]
    if isinstance(value, (float, np.floating)):
        value = float(value)
        if math.isnan(value):
            return None
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return round(value, digits)
    return value


TABLE_ROWS = (
    ("albedo_psnr_observed", "PSNR observed face (dB)"),
    ("albedo_psnr_completed", "PSNR completed face (dB)"),
    ("albedo_psnr_observed_head", "PSNR observed head (dB)"),
    ("albedo_psnr_completed_head", "PSNR completed head (dB)"),
    ("albedo_psnr_observed_matched", "PSNR observed face, exposure-matched"),
    ("albedo_ssim_observed", "SSIM observed face"),
    ("albedo_ssim_completed", "SSIM completed face"),
    ("shading_leakage", "shading leakage (correlation)"),
    ("delta_e_face", "mean dE2000 observed face"),
    ("delta_e_face_mean_colour", "skin-tone dE2000 (mean colours)"),
    ("ita_error_deg", "ITA error (deg)"),
    ("identity_distance", "identity distance (dlib, <0.6 same)"),
    ("albedo_hf_energy_ratio_face", "fine-detail energy / truth's, face"),
    ("albedo_gradient_correlation_observed", "gradient correlation, observed face"),
    ("seam_ratio", "tile seam ratio (enhance; 1 = none)"),
)


def format_table(result: dict[str, Any]) -> str:
    """The result as a plain-text table: one column per method, then the per-capture figures."""
    names = list(result["methods"])
    label_width = max(len(label) for _, label in TABLE_ROWS)
    lines = [f"{'':{label_width}}" + "".join(f"{name:>15}" for name in names)]
    for key, label in TABLE_ROWS:
        cells = [_cell(result["methods"][name].get(key)) for name in names]
        lines.append(f"{label:{label_width}}" + "".join(f"{cell:>15}" for cell in cells))
    lines.append("")
    for key in ("geometry_error_mm", "geometry_error_mm_scale_aligned", "vertex_error_mm_posed_mean",
                "rotation_error_deg_mean", "focal_error_rel", "coverage_face", "coverage_head", "gt_ita_deg"):
        lines.append(f"{key:{label_width}}{_cell(result.get(key)):>15}")
    timings = ", ".join(f"{stage} {seconds:.1f}s" for stage, seconds in result["timings_s"].items())
    lines.append(f"{'stage timings':{label_width}}  {timings}")
    return "\n".join(lines)


def _cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, float) and math.isinf(value):
        return "inf"
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def _chosen_methods(capture: Capture, methods: list[str] | None) -> list[tuple[str, Any]]:
    known = dict(METHODS)
    unknown = [name for name in methods or [] if name not in known]
    if unknown:
        raise InputError(f"unknown texture method(s) {', '.join(unknown)}; choose from {', '.join(known)}")
    present = [(name, capture.path(rel)) for name, rel in METHODS if capture.path(rel).is_file()]
    if methods:
        missing = [name for name in methods if not capture.path(known[name]).is_file()]
        if missing:
            raise CaptureError(f"{capture.root}: no {', '.join(known[name] for name in missing)} to evaluate; "
                               f"run the stage that makes it, or leave the method out")
        present = [(name, path) for name, path in present if name in methods]
    if not present:
        raise CaptureError(f"{capture.root}: no texture to evaluate yet (looked for {', '.join(known.values())}); "
                           f"run `{TOOL_NAME} reconstruct VIDEO -o {capture.root}`")
    return present


def _seam_ratio(capture: Capture, estimate_linear: np.ndarray, skin: np.ndarray) -> float:
    """The enhance stage's tile seams: mean |gradient| across its tile borders over the mean elsewhere, on skin."""
    from ..render.tiles import tile_starts

    record = (capture.stage_record("enhance") or {}).get("metrics", {})
    if "tile" not in record or "overlap" not in record:
        return math.nan
    size, tile, overlap = estimate_linear.shape[0], int(record["tile"]), int(record["overlap"])
    starts = tile_starts(size, min(tile, size), overlap)
    borders = sorted({start + tile for start in starts[:-1]} | set(starts[1:]))
    return metrics.seam_ratio(estimate_linear, borders, skin)


def _check_same_video(capture: Capture, gt: Any, force: bool, progress: Any, warnings: list[str]) -> None:
    """Scores of one person's capture against another video's truth are meaningless: refuse, or warn with ``force``."""
    from ..synth.ground_truth import ground_truth_video_sha256

    truth_video = ground_truth_video_sha256(gt)
    source = str(capture.source.get("sha256", ""))
    if truth_video == source:
        return
    what = (f"the ground truth in {gt.root} belongs to another video ({truth_video[:12]}) than the capture's source "
            f"({source[:12]}, {capture.source.get('path')})" if truth_video else
            f"the ground truth in {gt.root} records no video hash and has no video.mp4 beside it, so it cannot be "
            "matched with the capture's source")
    if not force:
        raise InputError(f"{what}; evaluate a capture against its own synthetic video's truth, or pass --force")
    warnings.append(f"{what}; scored anyway (--force)")
    if progress is not None:
        progress.warning(warnings[-1])


def _check_same_model(fit: dict[str, np.ndarray], truth: dict[str, np.ndarray], gt_root: Any) -> None:
    fitted, true = str(fit.get("model_fingerprint", "")), str(truth.get("model_fingerprint", ""))
    if fitted and true and fitted != true:
        raise InputError(f"the ground truth in {gt_root} was made with another head model ({true[:12]}) than the "
                         f"capture's fit ({fitted[:12]}); evaluate a capture against its own synthetic video's truth")


def _shape(model: HeadModel, params: dict[str, np.ndarray]) -> np.ndarray:
    shape = np.zeros(model.num_shape, np.float64)
    given = np.asarray(params["shape"], np.float64).reshape(-1)[: model.num_shape]
    shape[: len(given)] = given
    return shape


def _rest_normals(model: HeadModel, shape: np.ndarray) -> Any:
    import torch

    from ..render.normals import vertex_normals

    with torch.no_grad():
        rest = model.vertices(torch.as_tensor(shape[None], dtype=torch.float32))[0]
    return vertex_normals(rest, model.faces)


def _coverage(capture: Capture) -> dict[str, Any]:
    """``coverage_face`` and ``coverage_head`` from the unwrap's report (None where the capture has none)."""
    report_path = capture.path(REPORT_NAME)
    texture = {}
    if report_path.is_file():
        texture = json.loads(report_path.read_text()).get("texture", {})
    if not texture:
        texture = (capture.stage_record("unwrap") or {}).get("metrics", {})
    return {key: texture.get(key) for key in ("coverage_face", "coverage_head")}


def _truth_at(model: HeadModel, gt: Any, coverage: np.ndarray, rest_normals: Any, size: int) -> TextureTruth:
    from ..texture.unwrap import OBSERVED
    from ..texture.uv import texel_geometry

    geometry = texel_geometry(model, size)
    skin = geometry.image(geometry.skin).numpy()
    face = geometry.image(geometry.face_surface(model, rest_normals) & geometry.skin).numpy()
    if gt.albedo_linear.shape[0] == size:       # the file's own sRGB values: the truth against itself is exact
        from ..image_io import read_image
        from ..synth.ground_truth import ALBEDO_PNG

        albedo, albedo_srgb = gt.albedo_linear, read_image(gt.root / ALBEDO_PNG)
    else:                                        # resampled in linear light
        albedo = _resized(gt.albedo_linear, size)
        albedo_srgb = linear_to_srgb(np.clip(albedo, 0.0, 1.0))
    observed = skin & (_resized(coverage, size, nearest=True) > OBSERVED)
    shading = _resized(gt.shading, size) if gt.shading is not None else None
    return TextureTruth(albedo, albedo_srgb, shading, skin, face, observed)


def _resized(image: np.ndarray, size: int, nearest: bool = False) -> np.ndarray:
    import cv2

    if image.shape[0] == size and image.shape[1] == size:
        return image
    interpolation = cv2.INTER_NEAREST if nearest else cv2.INTER_AREA if image.shape[0] > size else cv2.INTER_LINEAR
    return cv2.resize(image, (size, size), interpolation=interpolation)

