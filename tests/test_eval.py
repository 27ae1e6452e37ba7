"""``studio-avatar eval``: the metrics themselves, and the evaluation of captures whose answer is known.

One small textured capture (the open head under a warm key light fixed to the
camera, 6 frames of 320x240, textures of 128 texels, ``unwrap`` and
``delight_classic`` run) and its ground-truth folder are made once. The true
albedo evaluated against itself must score perfectly (infinite PSNR, zero
ΔE, zero geometry error, identity distance 0); a known colour shift, a known
misalignment and a known shape change must move the metrics as predicted.
CIEDE2000 is checked against the published test pairs of Sharma, Wu and
Dalal (2005), Table 1.
"""

import json
import math
import shutil

import numpy as np
import pytest
import torch

from studio_avatar.core import cli, color
from studio_avatar.core.capture import Capture
from studio_avatar.core.color import linear_to_srgb, srgb_to_linear
from studio_avatar.core.eval import metrics
from studio_avatar.core.eval.evaluate import evaluate_capture, geometry_errors_mm, json_ready, posed_geometry_errors
from studio_avatar.core.head.open_head import get_open_head
from studio_avatar.core.image_io import read_image, write_exr, write_png16
from studio_avatar.core.progress import Progress
from studio_avatar.core.render.normals import vertex_normals
from studio_avatar.core.stages import adopt_outputs, run_stage
from studio_avatar.core.synth import ground_truth as gtf
from studio_avatar.core.synth.head_clip import HeadClipSpec
from studio_avatar.core.synth.textured_capture import Light, smooth_albedo, write_textured_capture
from studio_avatar.core.texture.delight import DELIGHT_CLASSIC_STAGE, DelightParams
from studio_avatar.core.texture.unwrap import UNWRAP_STAGE, UnwrapParams
from studio_avatar.core.texture.uv import texel_geometry

SIZE = 128
WARM_KEY = Light(ambient=(0.35, 0.30, 0.25), key=(0.90, 0.75, 0.55), direction=(0.6, 0.5, 0.6))
SPEC = HeadClipSpec(frames=6, width=320, height=240, seed=5, yaw_deg=60.0, expression_strength=0.0, noise_sigma=1.0,
                    supersampling=1)
PER_METHOD_KEYS = ("albedo_psnr_observed", "albedo_psnr_completed", "albedo_ssim_observed", "shading_leakage",
                   "delta_e_face", "ita_error_deg", "identity_distance", "albedo_hf_energy_ratio_face",
                   "albedo_gradient_correlation_observed")
PER_CAPTURE_KEYS = ("geometry_error_mm", "coverage_face", "timings_s")

# Sharma, Wu & Dalal (2005), Table 1: (L1, a1, b1), (L2, a2, b2), ΔE00 -- chosen to exercise the hue-angle
# wrap-arounds (pairs 9-16), zero chroma (7), large differences (17-20), and low lightness (33, 34)
SHARMA_PAIRS = [
    ((50.0000, 2.6772, -79.7751), (50.0000, 0.0000, -82.7485), 2.0425),
    ((50.0000, 0.0000, 0.0000), (50.0000, -1.0000, 2.0000), 2.3669),
    ((50.0000, 2.4900, -0.0010), (50.0000, -2.4900, 0.0009), 7.1792),
    ((50.0000, 2.4900, -0.0010), (50.0000, -2.4900, 0.0011), 7.2195),
    ((50.0000, -0.0010, 2.4900), (50.0000, 0.0009, -2.4900), 4.8045),
    ((50.0000, -0.0010, 2.4900), (50.0000, 0.0011, -2.4900), 4.7461),
    ((50.0000, 2.5000, 0.0000), (50.0000, 0.0000, -2.5000), 4.3065),
    ((50.0000, 2.5000, 0.0000), (73.0000, 25.0000, -18.0000), 27.1492),
    ((50.0000, 2.5000, 0.0000), (61.0000, -5.0000, 29.0000), 22.8977),
    ((50.0000, 2.5000, 0.0000), (56.0000, -27.0000, -3.0000), 31.9030),
    ((50.0000, 2.5000, 0.0000), (58.0000, 24.0000, 15.0000), 19.4535),
    ((50.0000, 2.5000, 0.0000), (50.0000, 3.1736, 0.5854), 1.0000),
    ((60.2574, -34.0099, 36.2677), (60.4626, -34.1751, 39.4387), 1.2644),
    ((63.0109, -31.0961, -5.8663), (62.8187, -29.7946, -4.0864), 1.2630),
    ((22.7233, 20.0904, -46.6940), (23.0331, 14.9730, -42.5619), 2.0373),
    ((90.8027, -2.0831, 1.4410), (91.1528, -1.6435, 0.0447), 1.4441),
    ((6.7747, -0.2908, -2.4247), (5.8714, -0.0985, -2.2286), 0.6377),
    ((2.0776, 0.0795, -1.1350), (0.9033, -0.0636, -0.5514), 0.9082),
]


@pytest.fixture(scope="module")
def head():
    return get_open_head()


@pytest.fixture(scope="module")
def world(tmp_path_factory, head):
    """(capture root, ground-truth folder): a textured capture and the truth the synth stage would write for it."""
    root = tmp_path_factory.mktemp("eval")
    albedo = smooth_albedo(head, SIZE, seed=2)
    capture, truth = write_textured_capture(root / "capture", head, albedo, WARM_KEY, SPEC)
    run_stage(capture, UNWRAP_STAGE, UnwrapParams(texture_size=SIZE, reference_size=SIZE), Progress())
    run_stage(capture, DELIGHT_CLASSIC_STAGE, DelightParams(), Progress())
    gt = write_ground_truth(root / "synth" / gtf.GT_DIR, head, truth, albedo, WARM_KEY, capture.source["sha256"])
    return capture.root, gt


def write_ground_truth(folder, head, truth, albedo, light, video_sha256):
    """The files of ``core/synth/ground_truth.py``; the shading is the light on the neutral, frontal head."""
    folder.mkdir(parents=True)
    np.savez(folder / gtf.TRUTH_NPZ, **truth)
    write_png16(folder / gtf.ALBEDO_PNG, linear_to_srgb(albedo))
    geometry = texel_geometry(head, SIZE)
    with torch.no_grad():
        normals = torch.nn.functional.normalize(geometry.interpolate(vertex_normals(head.vertices()[0], head.faces)), dim=1)
        write_exr(folder / gtf.SHADING_EXR, geometry.image(light.shading(normals)).numpy())
    write_png16(folder / gtf.STUDIO_PNG, np.zeros((8, 8, 3)))
    (folder / gtf.SCENE_JSON).write_text(json.dumps({"seed": SPEC.seed, "light": {"ambient": light.ambient, "key": light.key},
                                                     "video_sha256": video_sha256}))
    return folder


def capture_with_delit(tmp_path, world, albedo_srgb):
    """A copy of the test capture whose delit texture is ``albedo_srgb``."""
    root = tmp_path / "capture"
    shutil.copytree(world[0], root)
    write_png16(root / "textures" / "delit_classic.png", albedo_srgb)
    # recorded as the delight stage's own output, so that eval takes it as current
    adopt_outputs(Capture.open(root), "delight_classic", ["textures/delit_classic.png"], inputs=["textures/coverage.png"])
    return root


# -- the metrics alone --------------------------------------------------------------------------

def test_ciede2000_matches_the_published_test_pairs():
    first = np.array([pair[0] for pair in SHARMA_PAIRS])
    second = np.array([pair[1] for pair in SHARMA_PAIRS])
    expected = np.array([pair[2] for pair in SHARMA_PAIRS])
    assert np.abs(color.delta_e2000(first, second) - expected).max() < 5e-5
    assert np.abs(color.delta_e2000(second, first) - expected).max() < 5e-5    # symmetric
    assert color.delta_e2000(first[0], first[0]) == 0.0


def test_lab_and_ita_of_known_colours():
    assert np.allclose(color.linear_srgb_to_lab(np.ones(3)), [100.0, 0.0, 0.0], atol=1e-3)
    assert np.allclose(color.linear_srgb_to_lab(np.array([1.0, 0.0, 0.0])), [53.2408, 80.0925, 67.2032], atol=1e-3)
    assert np.allclose(color.linear_srgb_to_lab(np.zeros(3)), 0.0, atol=1e-9)
    assert color.ita_degrees(np.array([1.0, 0.0, 0.0])) == pytest.approx(np.degrees(np.arctan2(3.2408, 67.2032)), abs=1e-3)
    assert color.ita_degrees(np.ones(3)) == pytest.approx(90.0, abs=0.1)         # white: L* = 100, b* = 0


def test_psnr_ssim_and_shading_leakage_on_images():
    rng = np.random.default_rng(0)
    image = rng.random((64, 64, 3)).astype(np.float32)
    mask = np.zeros((64, 64), bool)
    mask[8:56, 8:40] = True
    assert metrics.psnr(image, image, mask) == math.inf
    assert metrics.ssim(image, image, mask) == pytest.approx(1.0)
    shifted = image + 0.1
    assert metrics.psnr(shifted, image, mask) == pytest.approx(20.0, abs=1e-4)    # MSE 0.01
    holes = image.copy()
    holes[~mask] = 0.0                                                            # outside the mask never counts
    assert metrics.ssim(holes, image, mask) == pytest.approx(1.0)
    assert metrics.ssim(image * 0.5, image, mask) < 0.95

    albedo = 0.2 + 0.5 * rng.random((64, 64, 3))
    shading = np.repeat(np.linspace(0.2, 1.0, 64)[None, :, None], 64, 0) * np.ones(3)
    assert metrics.shading_leakage(albedo * shading * 3.0, albedo, shading, mask) == pytest.approx(1.0)   # all baked in
    assert abs(metrics.shading_leakage(albedo * (1 + 0.05 * rng.standard_normal((64, 64, 1))), albedo, shading, mask)) < 0.15
    assert metrics.exposure_gain(albedo * 0.5, albedo, mask) == pytest.approx(2.0)


def test_rigid_alignment_removes_exactly_a_rigid_motion():
    rng = np.random.default_rng(1)
    points = rng.standard_normal((200, 3))
    angle = 0.4
    rotation = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]])
    moved = points @ rotation.T + [0.1, -0.2, 0.3]
    assert metrics.rigid_alignment_error_m(moved, points) < 1e-12
    assert metrics.rigid_alignment_error_m(1.05 * moved, points) > 0.01
    assert metrics.rigid_alignment_error_m(1.05 * moved, points, with_scale=True) < 1e-12


def test_shape_change_gives_the_expected_geometry_error(head):
    truth = np.zeros(head.num_shape)
    assert geometry_errors_mm(head, truth, truth)["geometry_error_mm"] < 1e-9
    face = np.asarray(head.regions["face"], bool)
    single = geometry_errors_mm(head, truth + 0.5 * np.eye(head.num_shape)[3], truth)["geometry_error_mm"]
    double = geometry_errors_mm(head, truth + 1.0 * np.eye(head.num_shape)[3], truth)["geometry_error_mm"]
    unaligned_mm = 1000 * np.linalg.norm(0.5 * head.shape_basis[face, :, 3], axis=1).mean()
    assert 0.05 < single <= unaligned_mm + 1e-9                   # alignment can only remove a part of the change
    assert double == pytest.approx(2 * single, rel=0.02)          # and what it leaves grows with the change


def test_posed_geometry_sees_fit_errors_that_the_rest_shape_hides(world, head):
    """A turned head and a wrong focal length leave the neutral shape (and geometry_error_mm) as it was."""
    from studio_avatar.core.fit import load_fit

    truth = load_fit(str(world[0] / "fit.npz"))
    turned = {**truth, "pose": truth["pose"].copy(), "focal_px": truth["focal_px"] * 1.1}
    turned["pose"][:, 0, 1] += np.radians(3.0)                              # every frame's head 3 deg further round
    errors = posed_geometry_errors(head, turned, truth)
    assert errors["rotation_error_deg_mean"] == pytest.approx(3.0, abs=0.05)
    assert errors["focal_error_rel"] == pytest.approx(0.1, abs=1e-6)
    assert errors["vertex_error_mm_posed_mean"] > 2.0                      # ~5 mm at the face's 0.1 m radius
    assert posed_geometry_errors(head, truth, truth)["vertex_error_mm_posed_mean"] < 1e-6
    # frames resized by the frames stage: the truth's camera is scaled to the fit's frame images
    half = {**truth, "focal_px": truth["focal_px"] / 2, "principal_px": truth["principal_px"] / 2,
            "image_size": truth["image_size"] // 2}
    assert posed_geometry_errors(head, half, truth)["focal_error_rel"] == pytest.approx(0.0, abs=1e-6)


# -- captures -----------------------------------------------------------------------------------

def test_ground_truth_against_itself_scores_perfectly(tmp_path, world):
    gt = world[1]
    capture = capture_with_delit(tmp_path, world, read_image(gt / gtf.ALBEDO_PNG))
    result = evaluate_capture(capture, gt, methods=["delit_classic"])
    scores = result["methods"]["delit_classic"]
    for key in ("albedo_psnr_observed", "albedo_psnr_completed", "albedo_psnr_observed_head", "albedo_psnr_completed_head"):
        assert scores[key] == math.inf, key
    assert scores["albedo_ssim_observed"] == pytest.approx(1.0) and scores["albedo_ssim_completed"] == pytest.approx(1.0)
    assert scores["delta_e_face"] == 0.0 and scores["delta_e_face_mean_colour"] == 0.0 and scores["ita_error_deg"] == 0.0
    assert scores["exposure_gain"] == pytest.approx(1.0)
    assert scores["albedo_hf_energy_ratio_face"] == pytest.approx(1.0)
    assert scores["albedo_gradient_correlation_observed"] == pytest.approx(1.0)
    assert scores["identity_distance"] < 1e-6
    assert math.isnan(scores["shading_leakage"])                 # no error left to correlate with anything
    assert result["geometry_error_mm"] < 1e-9
    assert result["vertex_error_mm_posed_mean"] < 1e-6 and result["rotation_error_deg_mean"] < 1e-4
    assert result["focal_error_rel"] == pytest.approx(0.0, abs=1e-9)
    assert json_ready(result)["methods"]["delit_classic"]["albedo_psnr_observed"] == "inf"


def test_colour_shift_and_misalignment_move_the_metrics_as_predicted(tmp_path, world, head):
    gt = world[1]
    truth_srgb = read_image(gt / gtf.ALBEDO_PNG)
    shifted = truth_srgb.copy()
    shifted[..., 0] = np.clip(shifted[..., 0] * 1.1, 0, 1)
    capture = capture_with_delit(tmp_path / "colour", world, shifted)
    scores = evaluate_capture(capture, gt, methods=["delit_classic"], identity=False)["methods"]["delit_classic"]
    # the same texels (observed face skin), their ΔE2000 one pair at a time
    shifted = read_image(capture / "textures" / "delit_classic.png")                # as stored: 16-bit
    geometry = texel_geometry(head, SIZE)
    coverage = read_image(world[0] / "textures" / "coverage.png")
    true_shape = torch.as_tensor(np.load(gt / gtf.TRUTH_NPZ)["shape"][None])
    rest_normals = vertex_normals(head.vertices(true_shape)[0], head.faces)
    face = geometry.image(geometry.face_surface(head, rest_normals) & geometry.skin).numpy()
    mask = face & (coverage > 0.1)
    expected = color.delta_e2000(color.linear_srgb_to_lab(srgb_to_linear(shifted[mask])),
                                   color.linear_srgb_to_lab(srgb_to_linear(truth_srgb[mask])))
    assert scores["delta_e_face"] == pytest.approx(float(expected.mean()), rel=1e-6)
    assert 2.0 < scores["delta_e_face"] < 10.0                    # a 10% red cast is clearly visible
    assert scores["ita_error_deg"] < 0                           # a red cast raises b* more than L*: a lower ITA
    assert scores["albedo_psnr_observed"] < 40.0

    psnr = {}
    for texels in (1, 2):
        moved = np.roll(truth_srgb, texels, axis=1)
        result = evaluate_capture(capture_with_delit(tmp_path / f"roll{texels}", world, moved), gt,
                                  methods=["delit_classic"], identity=False)
        psnr[texels] = result["methods"]["delit_classic"]["albedo_psnr_observed"]
    assert math.inf > psnr[1] > psnr[2] > 20.0


def test_reconstructed_textures_are_measured_and_the_cli_prints_json(world, capsys):
    capture, gt = world
    assert cli.main(["--progress", "none", "eval", str(capture), "--gt", str(gt.parent), "--json", "--no-identity"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert set(result["methods"]) == {"phone", "delit_classic"}
    for method, scores in result["methods"].items():
        assert all(key in scores for key in PER_METHOD_KEYS), (method, sorted(scores))
    assert all(key in result for key in PER_CAPTURE_KEYS)
    phone, delit = result["methods"]["phone"], result["methods"]["delit_classic"]
    assert phone["albedo_psnr_completed"] is None and isinstance(delit["albedo_psnr_completed"], float)
    assert phone["identity_distance"] is None                    # --no-identity
    assert phone["shading_leakage"] > 0.5                        # the phone texture still carries the key light
    assert delit["shading_leakage"] < phone["shading_leakage"]   # the delighting removed some of it
    assert result["geometry_error_mm"] < 1e-6                    # the capture's fit is the truth
    assert result["coverage_face"] > 0.8 and set(result["timings_s"]) >= {"unwrap", "delight_classic"}

    assert cli.main(["--progress", "none", "eval", str(capture), "--gt", str(gt), "--methods", "gmug"]) != 0
    assert "gmug" in capsys.readouterr().err


def test_ground_truth_of_another_video_is_scored_with_force_and_a_warning(world, tmp_path, capsys):
    """(The refusal without --force, for real synth videos, is in test_bad_inputs.py.)"""
    capture, gt = world
    other = tmp_path / "other" / gtf.GT_DIR
    shutil.copytree(gt, other)
    scene = json.loads((other / gtf.SCENE_JSON).read_text())
    (other / gtf.SCENE_JSON).write_text(json.dumps({**scene, "video_sha256": "f" * 64}))
    args = ["--progress", "none", "eval", str(capture), "--gt", str(other), "--json", "--no-identity", "--methods", "phone"]
    assert cli.main(args) == 2 and "belongs to another video" in capsys.readouterr().err
    assert cli.main(args + ["--force"]) == 0
    forced = json.loads(capsys.readouterr().out)
    assert "phone" in forced["methods"] and "another video" in forced["warnings"][0]


def test_stale_textures_are_left_out_or_refused(world, tmp_path, capsys):
    capture = tmp_path / "capture"
    shutil.copytree(world[0], capture)
    write_png16(capture / "textures" / "delit_classic.png", np.full((8, 8, 3), 0.5))     # edited after its stage ran
    result = evaluate_capture(capture, world[1], identity=False)
    assert set(result["methods"]) == {"phone"} and "delit_classic" in result["warnings"][0]
    assert cli.main(["--progress", "none", "eval", str(capture), "--gt", str(world[1]), "--methods", "delit_classic"]) == 2
    assert "delit_classic.png is out of date" in capsys.readouterr().err
