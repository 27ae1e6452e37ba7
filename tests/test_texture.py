"""UV texture extraction and the classic delight/complete path, against captures with a known albedo, light and fit.

The captures are rendered here (``core/synth/textured_capture.py``): the open
head with a smooth skin albedo, turning +-60 degrees, under a flat white
light or a warm directional light fixed to the camera; the true fit is the
capture's ``fit.npz``, so the fit's own error stays out of these measurements.

PSNR is measured on sRGB values over the observed skin texels of the face.
For the delighting comparison each texture first gets its best single
exposure gain: a phone auto-exposes, so the absolute brightness of the albedo
cannot be known from a video (colour errors still count in full).
"""

import shutil

import numpy as np
import pytest
from stage_fixtures import accept_edited_outputs

from studio_avatar.core.color import delta_e2000, ita_degrees, linear_srgb_to_lab, linear_to_srgb, luminance, srgb_to_linear
from studio_avatar.core.errors import CaptureError
from studio_avatar.core.head.open_head import get_open_head
from studio_avatar.core.image_io import read_image, write_png8, write_png16
from studio_avatar.core.progress import Progress
from studio_avatar.core.render.normals import vertex_normals
from studio_avatar.core.skin import skin_reflectance_rgb
from studio_avatar.core.stages import run_stage
from studio_avatar.core.synth.head_clip import HeadClipSpec
from studio_avatar.core.synth.textured_capture import FLAT_WHITE, Light, smooth_albedo, write_textured_capture
from studio_avatar.core.texture.delight import (DELIGHT_CLASSIC_STAGE, LUMINANCE, SKIN_BOUNCE, TEETH_LUMINANCE_MAX,
                                                DelightParams, appearance_to_albedo, calibrate_gains, cue_readings,
                                                skin_locus_gain, skin_tone_texels)
from studio_avatar.core.texture.unwrap import UNWRAP_STAGE, UnwrapParams
from studio_avatar.core.texture.uv import texel_geometry

SIZE = 512
WARM_KEY = Light(ambient=(0.35, 0.30, 0.25), key=(0.90, 0.75, 0.55), direction=(0.6, 0.5, 0.6))
SPEC = HeadClipSpec(frames=30, width=640, height=480, seed=3, yaw_deg=60.0, expression_strength=0.3, noise_sigma=1.0)


@pytest.fixture(scope="module")
def head():
    return get_open_head()


@pytest.fixture(scope="module")
def albedo(head):
    return smooth_albedo(head, SIZE, seed=1)


def textured(tmp_path_factory, head, albedo, light, name):
    root = tmp_path_factory.mktemp(name) / "capture"
    capture, _ = write_textured_capture(root, head, albedo, light, SPEC)
    run_stage(capture, UNWRAP_STAGE, UnwrapParams(texture_size=SIZE, reference_size=SIZE), Progress())
    run_stage(capture, DELIGHT_CLASSIC_STAGE, DelightParams(), Progress())
    return capture


@pytest.fixture(scope="module")
def flat_capture(tmp_path_factory, head, albedo):
    return textured(tmp_path_factory, head, albedo, FLAT_WHITE, "flat")


@pytest.fixture(scope="module")
def warm_capture(tmp_path_factory, head, albedo):
    return textured(tmp_path_factory, head, albedo, WARM_KEY, "warm")


def texels(image, geometry):
    return image.reshape((geometry.size * geometry.size,) + image.shape[2:])[geometry.texels.numpy()]


def observed_face(capture, head, size=SIZE):
    """(M,) bool: face-surface skin texels the unwrap saw, and the geometry."""
    geometry = texel_geometry(head, size)
    coverage = texels(read_image(capture.path("textures/coverage.png")), geometry)
    rest = head.vertices()[0]
    face = geometry.face_surface(head, vertex_normals(rest, head.faces)).numpy()
    return (coverage > 0.1) & face & geometry.skin.numpy(), geometry


def psnr(truth, estimate):
    return float(10 * np.log10(1.0 / np.mean((truth - estimate) ** 2)))


def exposure_gain(estimate, truth):
    """The one gain that brings ``estimate`` closest to ``truth`` (least squares, linear light)."""
    return float((estimate * truth).sum() / (estimate * estimate).sum())


def exposure_matched(estimate, truth):
    """``estimate`` times the one gain that brings it closest to ``truth``."""
    return estimate * exposure_gain(estimate, truth)


def test_the_fast_8_bit_png_is_lossless_for_opencv_and_pillow(tmp_path):
    import cv2
    from PIL import Image

    rng = np.random.default_rng(3)
    for height, width in ((1, 1), (7, 5), (240, 321)):
        image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
        image[height // 2:] = image[height // 2:] // 8 * 8              # runs of equal rows and values, as in frames
        write_png8(tmp_path / "frame.png", image)
        assert np.array_equal(cv2.imread(str(tmp_path / "frame.png"), cv2.IMREAD_UNCHANGED), image)
        assert np.array_equal(np.asarray(Image.open(tmp_path / "frame.png"))[..., ::-1], image)


def test_texel_geometry_mirror_and_interpolation(head):
    geometry = texel_geometry(head, SIZE)
    assert geometry.count > 0.7 * SIZE * SIZE and geometry.skin.float().mean() > 0.6
    x = geometry.interpolate(head.template_m[:, :1]).numpy()[:, 0]
    has = geometry.mirror.numpy() >= 0
    face = geometry.regions["face"].numpy() & has
    # the layout is symmetric: a texel's mirror texel lies at the mirrored surface point (x -> -x)
    assert np.median(np.abs(x[face] + x[geometry.mirror.numpy()[face]])) < 0.001
    assert np.abs(x[face]).max() > 0.05                                   # and x really varies (the check can fail)
    assert (geometry.mirror.numpy()[geometry.mirror.numpy()[face]] == np.flatnonzero(face)).mean() > 0.99


def test_phone_texture_matches_the_albedo_under_flat_light(flat_capture, head, albedo):
    metrics = flat_capture.stage_record("unwrap")["metrics"]
    assert metrics["coverage_face"] >= 0.95, metrics                      # a +-60 degree sweep sees the face
    assert 0.5 < metrics["coverage_head"] < metrics["coverage_face"]      # the back of the head is never seen
    seen, geometry = observed_face(flat_capture, head)
    phone = texels(read_image(flat_capture.path("textures/phone.png")), geometry)
    truth = texels(linear_to_srgb(albedo), geometry)
    assert seen.mean() > 0.3
    assert psnr(truth[seen], phone[seen]) >= 35.0
    assert (phone[~texels(read_image(flat_capture.path("textures/coverage.png")), geometry).astype(bool)] == 0).all()


def test_normal_map_holds_unit_model_space_normals(flat_capture, head):
    from studio_avatar.core.image_io import read_exr

    normals = read_exr(flat_capture.path("textures/normal.exr"))
    geometry = texel_geometry(head, SIZE)
    inside = texels(normals, geometry)
    assert np.allclose(np.linalg.norm(inside, axis=1), 1.0, atol=0.02)
    forehead = geometry.regions["face"].numpy() & (texels(np.mgrid[0:SIZE, 0:SIZE][0], geometry) < SIZE * 0.15)
    assert np.median(inside[forehead][:, 2]) > 0.5                        # the forehead faces forward (+z)


def test_delighting_removes_a_warm_key_light(warm_capture, head, albedo):
    metrics = warm_capture.stage_record("delight_classic")["metrics"]
    assert metrics["light_model"] == "camera"                             # the render's light turns with the camera
    seen, geometry = observed_face(warm_capture, head)
    truth = texels(albedo, geometry)[seen]
    phone = texels(srgb_to_linear(read_image(warm_capture.path("textures/phone.png"))), geometry)[seen]
    delit = texels(srgb_to_linear(read_image(warm_capture.path("textures/delit_classic.png"))), geometry)[seen]
    encode = linear_to_srgb
    before = psnr(encode(truth), encode(exposure_matched(phone, truth)))
    after = psnr(encode(truth), encode(exposure_matched(delit, truth)))
    assert after - before >= 4.0, (before, after)
    # the light's gradient across the face is gone: the estimate/truth ratio no longer follows the shading
    def spread(ratio):
        low, mid, high = np.percentile(ratio.mean(1), [5, 50, 95])
        return (high - low) / mid

    assert spread(delit / truth) < 0.4 * spread(phone / truth)


def channel_ratios(capture, head, albedo, name):
    """(3,) mean R, G, B of texture ``name`` over the observed face / the truth's, after one exposure gain for all."""
    seen, geometry = observed_face(capture, head)
    truth = texels(albedo, geometry)[seen]
    estimate = texels(srgb_to_linear(read_image(capture.path(f"textures/{name}.png"))), geometry)[seen]
    return exposure_matched(estimate, truth).mean(0) / truth.mean(0)


WARM_CHANNEL_BOUNDS = (0.08, 0.12, 0.32)   # |delit / truth - 1| per channel under the warm key light (see below)


def within_warm_bounds(ratios):
    """The delit face's R, G and B / the truth's under the warm key light, each within its bound of 1."""
    return bool((np.abs(np.asarray(ratios) - 1.0) < WARM_CHANNEL_BOUNDS).all())


def test_delighting_takes_the_warm_light_colour_off_each_channel(warm_capture, head, albedo):
    """R, G and B of the delit face, each against the truth's: a colour cast that a mean over channels never sees.

    The key light is warm (blue 0.6 of red), and its colour is not in the light's shape across the face: the
    calibration (skin manifold, white-balance prior) must take it off, and its prior that the phone's white balance
    was about right keeps part of it. Measured (512^2 and 2048^2 alike), mean colour / truth's after one exposure
    gain: delit R 1.02, G 0.93, B 0.75; the phone texture R 0.99, G 0.83, B 0.65. The bounds on |ratio - 1| are
    the measured errors plus 0.05-0.07 (R 0.08, G 0.12, B 0.32): a channel swap, a lost channel gain or a
    white-balance slip of 10-15% fails, a better calibration does not. (The blue a quarter low is today's code.)
    """
    delit = channel_ratios(warm_capture, head, albedo, "delit_classic")
    phone = channel_ratios(warm_capture, head, albedo, "phone")
    assert within_warm_bounds(delit), (delit, phone)
    # less cast than the light left in the phone texture (|log B/R| measured 0.30 against 0.43; G/R 0.10 against 0.17)
    cast = lambda ratios: np.abs(np.log(ratios[1:] / ratios[0]))       # noqa: E731  (G/R, B/R)
    assert (cast(delit) < cast(phone) - 0.04).all(), (delit, phone)


def test_completed_texture_has_no_holes_and_continues_the_true_texture(warm_capture, head, albedo):
    """What was never seen is filled from what was around it, and that filling follows the truth there.

    A flat fill of the right skin colour has the right mean but none of the truth's variation: near the seen texels
    (within 16 texels, where completion interpolates their colour before fading into the skin-tone prior) the
    completed texels must correlate with the true albedo per channel and come closer to it than the best flat
    colour (the truth's own mean over the observed face). The back of the head carries a darker scalp in the truth,
    so following the neighbours matters. Measured: correlation 0.64-0.69 (a flat fill: none), 24.6 dB against 21.2
    for the flat colour; skin-tone dE2000 of the whole fill's mean colour 3.6.
    """
    import cv2

    delit = read_image(warm_capture.path("textures/delit_classic.png"))
    assert delit.shape == (SIZE, SIZE, 3) and np.isfinite(delit).all()
    assert (delit.max(2) > 0.02).all()                                   # every texel, gutter included, has a colour
    geometry = texel_geometry(head, SIZE)
    coverage = texels(read_image(warm_capture.path("textures/coverage.png")), geometry)
    skin = geometry.skin.numpy()
    unseen = skin & (coverage < 0.1)
    assert unseen.sum() > 1000
    well_seen = np.zeros(SIZE * SIZE, bool)
    well_seen[geometry.texels.numpy()[skin & (coverage >= 0.5)]] = True
    distance = cv2.distanceTransform((~well_seen).reshape(SIZE, SIZE).astype(np.uint8), cv2.DIST_L2, 5)
    distance = texels(distance, geometry)                                 # texels to the nearest well-seen one
    near = unseen & (distance < 16)
    assert near.sum() > 0.3 * unseen.sum()

    seen, _ = observed_face(warm_capture, head)
    truth = texels(albedo, geometry)
    estimate = texels(srgb_to_linear(delit), geometry)
    estimate = estimate * exposure_gain(estimate[seen], truth[seen])     # the observed face's gain: nothing fitted here
    correlation = [float(np.corrcoef(truth[near][:, c], estimate[near][:, c])[0, 1]) for c in range(3)]
    assert min(correlation) > 0.45, correlation
    flat = np.broadcast_to(truth[seen].mean(0), truth[near].shape)
    completed = psnr(linear_to_srgb(truth[near]), linear_to_srgb(estimate[near]))
    flat_psnr = psnr(linear_to_srgb(truth[near]), linear_to_srgb(flat))
    assert completed > flat_psnr + 1.5 and completed > 22.5, (completed, flat_psnr)
    # the whole fill, far from the seen texels too (there the skin-tone prior): the right colour on average
    assert delta_e(estimate[unseen].mean(0), truth[unseen].mean(0)) < 6.0


def test_textures_at_2048_match_the_truth(tmp_path, head):
    """unwrap and delight_classic at 2048^2 (the default texture size; the tests above run at 512^2), against the truth.

    Kept cheap: 8 frames of the warm-light sweep at 640x480 (the albedo is smooth, coarser than a frame pixel, so
    few and small frames do not limit it); ~20 s on a quiet 2-core machine. Measured: face coverage 0.99; on the
    observed face the delit texture 27.0 dB after one exposure gain (the phone texture 19.8), mean per-texel
    dE2000 3.8; the channels as at 512^2.
    """
    from dataclasses import replace

    from studio_avatar.core.image_io import read_exr

    big = 2048
    albedo = smooth_albedo(head, big, seed=1)
    capture, _ = write_textured_capture(tmp_path / "capture", head, albedo, WARM_KEY, replace(SPEC, frames=8))
    run_stage(capture, UNWRAP_STAGE, UnwrapParams(texture_size=big), Progress())      # the default 512^2 reference
    run_stage(capture, DELIGHT_CLASSIC_STAGE, DelightParams(), Progress())
    metrics = capture.stage_record("unwrap")["metrics"]
    assert metrics["texture_size"] == big and metrics["coverage_face"] >= 0.95, metrics
    for name, channels in (("phone.png", (3,)), ("coverage.png", ()), ("delit_classic.png", (3,))):
        assert read_image(capture.path(f"textures/{name}")).shape == (big, big) + channels, name
    assert read_exr(capture.path("textures/normal.exr")).shape == (big, big, 3)

    seen, geometry = observed_face(capture, head, big)
    assert seen.sum() > 0.3 * geometry.count
    truth = texels(albedo, geometry)[seen]
    phone, delit = (texels(srgb_to_linear(read_image(capture.path(f"textures/{name}.png"))), geometry)[seen]
                    for name in ("phone", "delit_classic"))
    matched = exposure_matched(delit, truth)
    before = psnr(linear_to_srgb(truth), linear_to_srgb(exposure_matched(phone, truth)))
    after = psnr(linear_to_srgb(truth), linear_to_srgb(matched))
    assert after >= 25.0 and after - before >= 4.0, (before, after)
    error = delta_e2000(linear_srgb_to_lab(matched.astype(np.float64)), linear_srgb_to_lab(truth.astype(np.float64)))
    assert float(error.mean()) < 5.0, float(error.mean())
    ratios = matched.mean(0) / truth.mean(0)
    assert within_warm_bounds(ratios), ratios


def test_mirror_fills_the_side_that_was_not_seen(tmp_path, flat_capture, head, albedo):
    """Hide the subject's right half of the face; the left half, mirrored, must bring it back."""
    root = tmp_path / "capture"
    shutil.copytree(flat_capture.root, root)
    from studio_avatar.core.capture import Capture

    capture = Capture.open(root)
    geometry = texel_geometry(head, SIZE)
    x = geometry.interpolate(head.template_m[:, :1]).numpy()[:, 0]
    hidden = geometry.regions["face"].numpy() & (x < -0.01) & (geometry.mirror.numpy() >= 0)
    coverage = read_image(root / "textures/coverage.png").reshape(-1)
    coverage[geometry.texels.numpy()[hidden]] = 0.0
    write_png16(root / "textures/coverage.png", coverage.reshape(SIZE, SIZE))
    phone = read_image(root / "textures/phone.png").reshape(-1, 3)
    phone[geometry.texels.numpy()[hidden]] = 0.0
    write_png16(root / "textures/phone.png", phone.reshape(SIZE, SIZE, 3))
    accept_edited_outputs(capture, "unwrap")
    # the colour calibration moves every texel's level alike (its own tests measure it): left out here
    run_stage(capture, DELIGHT_CLASSIC_STAGE, DelightParams(calibrate=False), Progress(), force=True)
    assert capture.stage_record("delight_classic")["metrics"]["mirrored_fraction"] > 0.1
    delit = texels(read_image(root / "textures/delit_classic.png"), geometry)
    mirror_truth = texels(linear_to_srgb(albedo), geometry)[geometry.mirror.numpy()[hidden]]
    seen_mirror = texels(read_image(flat_capture.path("textures/coverage.png")), geometry)[geometry.mirror.numpy()[hidden]] > 0.5
    # the filled texels carry their mirror texel's colour (the albedo is not symmetric, so compare with the mirror's)
    assert psnr(mirror_truth[seen_mirror], delit[hidden][seen_mirror]) > 28.0


def test_skin_locus_moves_only_colours_outside_human_skin():
    assert np.allclose(skin_locus_gain(srgb_to_linear(np.array([196, 148, 122]) / 255)), 1.0)     # light skin
    assert np.allclose(skin_locus_gain(srgb_to_linear(np.array([115, 82, 68]) / 255)), 1.0)       # dark skin
    blue = np.array([0.2, 0.25, 0.35])
    gain = skin_locus_gain(blue)
    corrected = blue * gain
    assert corrected[0] > corrected[1] > corrected[2]                                              # now skin-like
    assert np.isclose(luminance(corrected), luminance(blue))                                        # brightness kept


def test_unwrap_says_which_frame_is_missing(tmp_path, flat_capture):
    root = tmp_path / "capture"
    shutil.copytree(flat_capture.root, root)
    from studio_avatar.core.capture import Capture

    (root / "frames" / "0003.png").write_bytes(b"not a png")
    accept_edited_outputs(Capture.open(root), "frames")
    with pytest.raises(CaptureError, match=r"0003\.png: the frame image is missing or unreadable; re-run the frames stage"):
        run_stage(Capture.open(root), UNWRAP_STAGE, UnwrapParams(texture_size=128, reference_size=128), Progress(), force=True)


# -- exposure and white balance ------------------------------------------------------------------------------

def test_skin_tone_is_read_on_bare_skin_of_both_cheeks_and_the_forehead(head):
    geometry = texel_geometry(head, 256)
    tone = skin_tone_texels(head, geometry).numpy()
    position = geometry.interpolate(head.template_m).numpy()[tone]
    assert tone.sum() > 100
    assert not (tone & geometry.regions["lips"].numpy()).any() and not (tone & geometry.regions["scalp"].numpy()).any()
    assert tone[geometry.regions["face"].numpy()].sum() == tone.sum()
    eyes = head.template_m[head.regions["eye_left"] | head.regions["eye_right"]]
    above, below = position[:, 1] > eyes[:, 1].max(), position[:, 1] < eyes[:, 1].min()
    assert above.sum() > 0.2 * len(position) and below.sum() > 0.3 * len(position)             # forehead, cheeks
    centre = head.template_m[:, 0].mean()
    assert 0.4 < (position[:, 0] > centre).mean() < 0.6                                          # both sides alike
    mirrored = geometry.mirror.numpy()[tone]
    assert (tone[mirrored[mirrored >= 0]]).mean() > 0.8



def delta_e(a, b):
    return float(delta_e2000(linear_srgb_to_lab(np.asarray(a, np.float64)), linear_srgb_to_lab(np.asarray(b, np.float64))))


def seen_as(albedo, exposure, light, sheen=0.0, bounce=SKIN_BOUNCE):
    """A skin albedo as a diffuse-only delighting leaves it: bounced light and sheen in, times exposure and light."""
    albedo = np.asarray(albedo, np.float64)
    return exposure * np.asarray(light) * (albedo * (1 + bounce * albedo) + sheen)


@pytest.mark.parametrize("melanin, blood, exposure, light", [
    (0.004, 0.03, 0.4, (1.0, 1.0, 1.0)),        # very light skin, under-exposed
    (0.02, 0.03, 0.4, (0.95, 1.0, 1.10)),       # intermediate skin, under-exposed, a little cool
    (0.01, 0.02, 2.5, (1.0, 1.0, 1.0)),         # light skin, over-exposed
])
def test_calibration_recovers_the_exposure_of_skin_from_its_colour(melanin, blood, exposure, light):
    """Skin's luminance follows its chromaticity: a skin colour no skin has at the phone's level is mostly put back.

    The posterior under-corrects a large under-exposure (it gives back 0.5-0.85 of it), hence the margins. An
    intermediate skin 1.3 stops under-exposed in neutral light looks like a darker skin at the phone's level, and
    is kept (the phone-right hypothesis; see the next test for why). Measured ITA errors with the posterior's
    median: 17.2, 40.6 and 5.5° (its mean, used before: 26.8, 39.4 and 12.5°).
    """
    truth = skin_reflectance_rgb(melanin, blood, 0.3, 0.75).astype(np.float64)
    face = seen_as(truth, exposure, light, sheen=0.01)
    calibration = calibrate_gains(face)
    recovered = appearance_to_albedo(face * calibration["gain"], calibration["sheen"])
    uncalibrated = appearance_to_albedo(face, 0.0)
    assert delta_e(recovered, truth) < 11.0, (recovered, truth)
    assert delta_e(recovered, truth) < 0.6 * delta_e(uncalibrated, truth)
    assert 0.6 < calibration["exposure"] * exposure < 1.3                    # the exposure is mostly undone
    ita_error = abs(float(ita_degrees(recovered) - ita_degrees(truth)))
    assert ita_error < 0.6 * abs(float(ita_degrees(uncalibrated) - ita_degrees(truth))) and ita_error < 42.0
    assert calibration["cues"]["skin"]["used"] and not [k for k in calibration["cues"] if k != "skin"]


@pytest.mark.parametrize("melanin, light", [
    (0.02, (1.0, 1.0, 1.0)),                    # intermediate skin
    (0.01, (1.04, 1.0, 0.92)),                  # light skin, what a phone leaves of a warm light
    (0.12, (1.0, 1.0, 1.0)),                    # dark skin
])
def test_calibration_keeps_the_tone_of_skin_the_phone_exposed_right(melanin, light):
    """A skin colour that is plausible at the phone's level keeps that level and tone.

    A single broad exposure prior let the manifold move such faces by 0.77-1.49x (ITA errors of 14-25°): on real
    clips, well-exposed faces came out up to twice too dark or too light.
    """
    truth = skin_reflectance_rgb(melanin, 0.03, 0.3, 0.75).astype(np.float64)
    face = seen_as(truth, 1.0, light, sheen=0.01)
    calibration = calibrate_gains(face)
    recovered = appearance_to_albedo(face * calibration["gain"], calibration["sheen"])
    assert 0.85 < calibration["exposure"] < 1.2, calibration["exposure"]                 # measured 0.91-1.17
    assert abs(float(ita_degrees(recovered) - ita_degrees(truth))) < 14.0                # measured 5.3-13.1°
    assert delta_e(recovered, truth) < 3.5                                               # measured 1.8-3.1


def test_a_sclera_seen_keeps_dark_skin_under_a_cool_light_dark():
    """Dark skin with its sheen under a cool light looks like light skin seen dark; the sclera's brightness vetoes it.

    Measured: alone 94.4° off, helped 15.3° (the exposure held at ``CUE_MAX_VETO`` below the skin's own 2.49x;
    with the posterior's mean, used before, 78.9° and 1.7°).
    """
    truth = skin_reflectance_rgb(0.12, 0.03, 0.2, 0.75).astype(np.float64)
    exposure, light = 1.4, np.array([0.85, 1.0, 1.25])                          # a face-metering phone brightens it
    face = seen_as(truth, exposure, light, sheen=0.03)
    sclera = exposure * light * np.array([0.65, 0.62, 0.58])                    # a lit sclera, seen well
    alone = calibrate_gains(face)
    helped = calibrate_gains(face, {"sclera": {"rgb": sclera, "seen": 0.8}})
    results = {name: appearance_to_albedo(face * c["gain"], c["sheen"]) for name, c in (("alone", alone), ("helped", helped))}
    errors = {name: abs(float(ita_degrees(value) - ita_degrees(truth))) for name, value in results.items()}
    assert helped["cues"]["sclera"]["used"] and helped["cues"]["sclera"]["max_exposure"] < 1.2
    assert helped["exposure"] < 0.75 * alone["exposure"]                        # the ceiling held the brightening back
    assert errors["helped"] < errors["alone"] - 10.0, errors
    assert errors["helped"] < 16.0, errors
    # a sclera not seen (or seen on too few texels) changes nothing
    assert np.allclose(calibrate_gains(face, {"sclera": {"rgb": sclera, "seen": 0.01}})["gain"], alone["gain"])


def test_a_dark_sclera_lifts_an_under_exposed_intermediate_skin_and_a_bright_one_changes_nothing():
    """An intermediate skin 1.3 stops under-exposed looks like darker skin at the phone's level (the skin alone
    keeps it: 40.6° off); its sclera, read at 70% of its albedo in the socket's shade and tinted by the skin's
    bounce, stays far under ``SCLERA_LUMINANCE_MIN`` at that level, and the floor lifts the exposure.
    Measured: alone 40.6° off at 1.70x (between the phone-right and -wrong modes), helped 7.5° at 2.75x (the
    truth: 2.5x; the floor takes the phone-right mode away)."""
    truth = skin_reflectance_rgb(0.02, 0.03, 0.3, 0.75).astype(np.float64)
    exposure, light = 0.4, np.array([0.95, 1.0, 1.10])
    face = seen_as(truth, exposure, light, sheen=0.01)
    sclera = 0.7 * exposure * light * np.array([0.62, 0.55, 0.48])
    alone = calibrate_gains(face)
    helped = calibrate_gains(face, {"sclera": {"rgb": sclera, "seen": 0.2}})
    errors = {name: abs(float(ita_degrees(appearance_to_albedo(face * c["gain"], c["sheen"])) - ita_degrees(truth)))
              for name, c in (("alone", alone), ("helped", helped))}
    assert helped["cues"]["sclera"]["floor_used"] and helped["exposure"] > 1.5 * alone["exposure"]
    assert 0.8 < helped["exposure"] * exposure < 1.2                            # about the truth
    assert errors["helped"] < errors["alone"] - 20.0 and errors["helped"] < 12.0, errors
    # the same face exposed right, its sclera as bright as its albedo: the floor does not act
    right = seen_as(truth, 1.0, light, sheen=0.01)
    kept = calibrate_gains(right, {"sclera": {"rgb": light * np.array([0.62, 0.55, 0.48]), "seen": 0.2}})
    assert abs(kept["exposure"] / calibrate_gains(right)["exposure"] - 1.0) < 0.05


def test_a_glossy_eye_does_not_darken_a_light_skin_the_phone_exposed_right():
    """A wet eyeball reflecting a bright lamp: an eighth of its samples read 1.6-2.4x the sclera, a fifth are lids
    and shadow. The high band (the floor's) is inflated; the ceiling reads the middle band, which stays at the sclera,
    so the ceiling does not act. (A held-out scene's light skin read ITA -40° from such an eye's high band.)"""
    rng = np.random.default_rng(0)
    sclera = np.array([0.62, 0.58, 0.55])
    scale = np.concatenate([rng.uniform(0.2, 0.7, 200), rng.normal(1.0, 0.05, 680), rng.uniform(1.6, 2.4, 120)])
    readings = cue_readings({"sclera": {"samples": scale[:, None] * sclera, "weight": np.ones(len(scale)),
                                        "texels": 300, "seen": 0.9}})["sclera"]
    assert float(LUMINANCE @ readings["rgb"]) > 1.5 * float(LUMINANCE @ sclera)
    assert abs(float(LUMINANCE @ readings["rgb_ceiling"]) / float(LUMINANCE @ sclera) - 1.0) < 0.1
    truth = skin_reflectance_rgb(0.004, 0.03, 0.3, 0.75).astype(np.float64)
    face = seen_as(truth, 1.0, np.ones(3), sheen=0.01)
    alone = calibrate_gains(face)
    glossy = calibrate_gains(face, {"sclera": {"rgb": readings["rgb"], "seen": 0.9}})
    middle = calibrate_gains(face, {"sclera": readings})
    assert glossy["exposure"] < 0.9 * alone["exposure"]          # the high band would darken it (measured 0.87x)
    assert abs(middle["exposure"] / alone["exposure"] - 1.0) < 0.05


def test_an_implausibly_bright_cue_is_left_out_and_a_bright_one_still_holds_the_exposure_back():
    """A real clip's teeth read 4.3 (linear) where the skin's exposure put them: 5x any enamel. Such a reading is
    a glint or a light model that does not hold inside the mouth; it used to darken the face by the full veto."""
    truth = skin_reflectance_rgb(0.01, 0.03, 0.3, 0.75).astype(np.float64)
    face = seen_as(truth, 1.0, np.ones(3), sheen=0.01)
    alone = calibrate_gains(face)
    skin_gain = np.asarray(alone["cues"]["skin"]["gain"])
    absurd = 5.0 * TEETH_LUMINANCE_MAX / float(LUMINANCE @ skin_gain) * np.ones(3)
    rejected = calibrate_gains(face, {"teeth": {"rgb": absurd, "seen": 0.5}})
    assert rejected["cues"]["teeth"]["rejected"].startswith("implausibly bright")
    assert np.allclose(rejected["gain"], alone["gain"])
    bright = 3.0 * TEETH_LUMINANCE_MAX / float(LUMINANCE @ skin_gain) * np.ones(3)      # plausible: it still acts
    held = calibrate_gains(face, {"teeth": {"rgb": bright, "seen": 0.5}})
    assert held["cues"]["teeth"]["used"] and 0.45 * alone["exposure"] < held["exposure"] < 0.75 * alone["exposure"]


def rescaled_capture(root, source, scale):
    """A copy of ``source`` as if every colour it saw had been ``scale`` (3,) times as bright (linear light).

    Under the flat white light of the flat capture that is the same as rendering the albedo times ``scale``:
    a different skin tone, an exposure and a coloured light all in one. Phone texture, reference colours and
    (through unwrap's frame gains) the frames are all scaled, so the stage sees one consistent capture.
    """
    from studio_avatar.core.atomic import atomic_write_npz
    from studio_avatar.core.capture import Capture
    from studio_avatar.core.texture.unwrap import load_shading

    shutil.copytree(source.root, root)
    scale = np.asarray(scale, np.float32)
    phone = srgb_to_linear(read_image(root / "textures/phone.png"))
    write_png16(root / "textures/phone.png", linear_to_srgb(np.clip(phone * scale, 0, 1)))
    shading = dict(load_shading(str(root / "textures/shading.npz")))
    shading["reference_linear"] = (shading["reference_linear"].astype(np.float32) * scale).astype(np.float16)
    shading["frame_gains"] = (shading["frame_gains"] / scale).astype(np.float32)
    atomic_write_npz(root / "textures/shading.npz", **shading)
    capture = Capture.open(root)
    accept_edited_outputs(capture, "unwrap")
    return capture


def test_delighting_calibrates_a_very_light_skin_exposed_at_04(tmp_path, flat_capture, head, albedo):
    """A biophysical very light skin, exposed 0.4x: the calibrated face comes back nearer.

    The flat capture, rescaled per channel: its skin tone becomes that of the skin model's very light skin
    (melanin 0.004, blood 0.03), times 0.4 exposure -- a colour no skin has at that level.
    """
    skin = skin_reflectance_rgb(0.004, 0.03, 0.3, 0.75).astype(np.float64)
    tone = skin / srgb_to_linear(np.array([196, 148, 122]) / 255)              # smooth_albedo's default skin tone
    capture = rescaled_capture(tmp_path / "capture", flat_capture, 0.4 * tone)
    seen, geometry = observed_face(capture, head)
    truth = (texels(albedo, geometry)[seen] * tone).mean(0)
    means = {}
    for calibrate in (False, True):
        run_stage(capture, DELIGHT_CLASSIC_STAGE, DelightParams(calibrate=calibrate), Progress(), force=True)
        means[calibrate] = texels(srgb_to_linear(read_image(capture.path("textures/delit_classic.png"))), geometry)[seen].mean(0)
    metrics = capture.stage_record("delight_classic")["metrics"]["calibration"]
    assert set(metrics) >= {"gain", "exposure", "white_balance", "exposure_sd", "sheen", "cues_used", "cues"}
    before, after = delta_e(means[False], truth), delta_e(means[True], truth)
    assert after < 12.0 and after < before - 8.0, (before, after, means, truth, metrics)    # measured: 19.7 -> 7.3
    ratio = means[True] / truth
    assert 0.45 < ratio[1] < 1.2, ratio                                                 # the green channel's level
