"""The procedural skin albedo: deterministic, complete, physically coloured, with its regions where they belong.

Regions are checked against definitions of their own (3D boxes around the
eyes, mouth and forehead of the open head's rest surface), not against the
generator's internal fields, so a misplaced field fails here. The fine-detail
metrics it is measured with (band energy, gradient correlation) are checked
here too, on images whose answer is known.
"""

import dataclasses
import json
import math

import cv2
import numpy as np
import pytest
import torch

from studio_avatar.core.eval.metrics import band_energy, gradient_correlation
from studio_avatar.core.head.source import load_head
from studio_avatar.core.color import ita_degrees, linear_srgb_to_lab
from studio_avatar.core.skin import skin_reflectance_rgb
from studio_avatar.core.synth.albedo import generate_albedo, sample_skin
from studio_avatar.core.texture.uv import texel_geometry

SIZE = 512
DARK_BROWN_HAIR = (0.035, 0.022, 0.013)


@pytest.fixture(scope="module")
def head():
    return load_head(with_landmarks=False)


@pytest.fixture(scope="module")
def zones(head):
    """(SIZE * SIZE,) bool masks of the face's zones, from the rest positions of the texels."""
    geometry = texel_geometry(head, SIZE)
    points = geometry.interpolate(torch.as_tensor(head.template_m)).numpy()
    eye = head.template_m[head.regions["eye_left"]].mean(0)
    x, y, z = points.T
    face = geometry.regions["face"].numpy() & geometry.skin.numpy()
    out = {
        "lips": geometry.regions["lips"].numpy(),
        "forehead": face & (np.abs(x) < 0.03) & (y > eye[1] + 0.035) & (y < eye[1] + 0.06) & (z > eye[2]),
        "brow": face & (np.abs(np.abs(x) - eye[0]) < 0.008) & (np.abs(y - eye[1] - 0.02) < 0.002) & (z > eye[2]),
        "cheek": face & (np.abs(np.abs(x) - eye[0]) < 0.01) & (np.abs(y - eye[1] + 0.035) < 0.008) & (z > eye[2]),
        "nose": face & (np.abs(x) < 0.012) & (y < eye[1] - 0.02) & (y > eye[1] - 0.04) & (z > eye[2] + 0.03),
    }
    flat = {}
    for name, mask in out.items():
        image = np.zeros(SIZE * SIZE, bool)
        image[geometry.texels.numpy()[mask]] = True
        assert image.sum() > 20, f"the test's {name} zone is empty"
        flat[name] = image
    return flat


def region_mean(albedo, mask):
    return albedo.linear.reshape(-1, 3)[mask].mean(0)


def test_same_seed_same_albedo_and_seeds_differ(head):
    first = generate_albedo(head, 256, seed=3)
    again = generate_albedo(head, 256, seed=3)
    other = generate_albedo(head, 256, seed=4)
    assert first.linear.dtype == np.float32 and first.linear.shape == (256, 256, 3)
    assert np.array_equal(first.linear, again.linear) and first.skin == again.skin
    assert np.abs(first.linear - other.linear).mean() > 0.01


def test_values_complete_and_no_black_gutter(head):
    albedo = generate_albedo(head, SIZE, seed=5)
    assert np.isfinite(albedo.linear).all()
    assert albedo.linear.min() >= 0.0 and albedo.linear.max() <= 1.0
    covered = texel_geometry(head, SIZE).mask().numpy()
    ring = (cv2.dilate(covered.astype(np.uint8), np.ones((7, 7), np.uint8)) > 0) & ~covered
    assert albedo.linear[ring].max(1).min() > 0.005, "the gutter next to the islands is black"
    assert albedo.linear.max(2).min() > 0.004, "a texel is black"
    record = json.loads(json.dumps(albedo.to_dict()))
    assert record["skin"]["melanin"] == albedo.skin.melanin and record["ita_deg"] == pytest.approx(albedo.ita_deg, abs=1e-3)


def test_tone_spans_very_light_to_very_dark(head):
    light = generate_albedo(head, 256, seed=0, skin=sample_skin(0, tone=0.0))
    dark = generate_albedo(head, 256, seed=0, skin=sample_skin(0, tone=1.0))
    assert light.ita_deg > 50.0 and dark.ita_deg < -30.0, (light.ita_deg, dark.ita_deg)
    assert sample_skin(0, tone=0.0).melanin < sample_skin(0, tone=0.5).melanin < sample_skin(0, tone=1.0).melanin


@pytest.mark.parametrize("tone", [0.2, 0.8])
def test_regions_have_their_colours(head, zones, tone):
    skin = dataclasses.replace(sample_skin(11, tone=tone), hair_rgb=DARK_BROWN_HAIR, freckles=0.0, moles=0)
    albedo = generate_albedo(head, SIZE, seed=11, skin=skin)
    means = {name: region_mean(albedo, mask) for name, mask in zones.items()}
    redness = {name: float(linear_srgb_to_lab(rgb)[1]) for name, rgb in means.items()}   # a*: the erythema measure
    assert redness["lips"] > redness["forehead"] + (3.0 if tone < 0.5 else 1.0), redness   # melanin mutes it
    assert redness["cheek"] > redness["forehead"], redness
    if tone < 0.5:      # on light skin blood shows in R/G too (on dark skin melanin masks it)
        ratio = {name: float(rgb[0] / rgb[1]) for name, rgb in means.items()}
        assert ratio["lips"] > ratio["forehead"] * 1.05 and ratio["cheek"] > ratio["forehead"], ratio
    brightness = {name: float(rgb.mean()) for name, rgb in means.items()}
    assert brightness["brow"] < brightness["forehead"] * 0.85, brightness


def test_pores_give_the_nose_fine_detail(head, zones):
    geometry_scale = 2   # zones are at SIZE; the albedo at 2 * SIZE is compared after an area downsample of detail
    smooth = dataclasses.replace(sample_skin(2, tone=0.3), freckles=0.0, moles=0, pores=0.0)
    energies = {}
    for pores in (0.0, 1.0):
        albedo = generate_albedo(head, SIZE * geometry_scale, seed=2, skin=dataclasses.replace(smooth, pores=pores))
        grey = albedo.linear.mean(2)
        detail = np.abs(grey - cv2.GaussianBlur(grey, (0, 0), 2.0)) / np.maximum(cv2.GaussianBlur(grey, (0, 0), 2.0), 1e-3)
        energies[pores] = float(cv2.resize(detail, (SIZE, SIZE), interpolation=cv2.INTER_AREA).reshape(-1)[zones["nose"]].mean())
    assert energies[1.0] > 0.012, energies           # pores: a few percent of local contrast at 0.2 mm per texel
    assert energies[1.0] > 2.0 * energies[0.0], energies


def test_2048_albedo_has_skin_detail_that_512_cannot_hold(head, zones):
    skin = dataclasses.replace(sample_skin(7, tone=0.3), freckles=0.0, moles=0, stubble=0.0, pores=0.5, wrinkles=0.3)
    large = generate_albedo(head, 4 * SIZE, seed=7, skin=skin)
    small = generate_albedo(head, SIZE, seed=7, skin=skin)
    upsampled = cv2.resize(small.linear, (4 * SIZE, 4 * SIZE), interpolation=cv2.INTER_CUBIC)
    averaged = cv2.resize(large.linear, (SIZE, SIZE), interpolation=cv2.INTER_AREA).reshape(-1, 3)
    for name in ("cheek", "nose", "forehead", "lips"):
        mask = np.repeat(np.repeat(zones[name].reshape(SIZE, SIZE), 4, 0), 4, 1)
        ratio = band_energy(large.linear, mask) / band_energy(upsampled, mask)
        assert ratio > 2.0, (name, ratio)      # pores, the microrelief, the lips' lines: not a smoothly upsampled 512^2
        # the detail is zero-mean: both sizes have the skin model's colour
        assert np.allclose(averaged[zones[name]].mean(0), region_mean(small, zones[name]), rtol=0.01), name
    assert large.ita_deg == pytest.approx(small.ita_deg, abs=0.3)


def test_skin_model_responds_to_melanin_and_blood():
    melanin = np.array([0.003, 0.03, 0.3])
    rgb = skin_reflectance_rgb(melanin, 0.02)
    assert rgb.shape == (3, 3) and np.all(np.diff(rgb.mean(1)) < 0), rgb
    ita = ita_degrees(rgb)
    assert ita[0] > 55 and ita[2] < -30, ita
    blood = skin_reflectance_rgb(0.01, np.array([0.005, 0.05, 0.2]))
    assert np.all(np.diff(blood[:, 1] / blood[:, 0]) < 0), blood       # more blood: less green relative to red
    assert np.all(rgb[:, 0] > rgb[:, 1]) and np.all(rgb[:, 1] > rgb[:, 2])   # skin is red > green > blue


def test_lab_conversion_matches_reference_values():
    lab = linear_srgb_to_lab(np.array([[1.0, 1.0, 1.0], [0.2140, 0.2140, 0.2140], [1.0, 0.0, 0.0]]))
    assert lab[0] == pytest.approx([100.0, 0.0, 0.0], abs=0.05)
    assert lab[1] == pytest.approx([53.39, 0.0, 0.0], abs=0.05)          # sRGB 128 grey
    assert lab[2] == pytest.approx([53.24, 80.09, 67.20], abs=0.05)      # sRGB red


# --- the fine-detail metrics (core/eval/metrics.py) -------------------------------------------------------------------
def white_noise(seed, size=512):
    return np.random.default_rng(seed).standard_normal((size, size)).astype(np.float32)


def grating(cycles_per_texel, size=256):
    return np.repeat(np.cos(2 * math.pi * cycles_per_texel * np.arange(size) + 0.3)[None, :], size, 0).astype(np.float32)


def test_band_energy_of_white_noise_is_the_bands_share_of_the_spectrum():
    noise = white_noise(0)
    everywhere = np.ones(noise.shape, bool)
    ideal_share = math.pi * ((1 / 2) ** 2 - (1 / 8) ** 2) / 4          # the annulus' area in the frequency square
    assert band_energy(noise, everywhere) == pytest.approx(ideal_share, rel=0.06)
    assert band_energy(3.0 * noise, everywhere) == pytest.approx(9.0 * band_energy(noise, everywhere), rel=1e-5)
    rgb = np.repeat(noise[..., None], 3, 2)                              # grey RGB: its luminance is the noise
    assert band_energy(rgb, everywhere) == pytest.approx(band_energy(noise, everywhere), rel=1e-4)


def test_band_energy_passes_the_band_and_rejects_the_rest():
    everywhere = np.ones((256, 256), bool)
    nyquist = 0.5                                                        # cycles per texel

    def kept(fraction_of_nyquist):
        image = grating(fraction_of_nyquist * nyquist)
        return band_energy(image, everywhere) / float(np.mean(image ** 2))

    assert kept(1 / 4) > 0.5                      # the middle of the 1/8-1/2 band (in octaves)
    assert kept(1 / 32) < 0.005                   # shading and blotches: far below it
    assert kept(1.0) < 0.1                        # texel-to-texel noise: above it


def test_band_energy_ignores_what_lies_outside_the_mask():
    noise = 0.05 * white_noise(1, 256) + 0.5
    rows, cols = np.mgrid[:256, :256]
    mask = np.hypot(rows - 128, cols - 100) < 70
    bright_outside = np.where(mask, noise, 5.0)
    noisy_outside = np.where(mask, noise, 10.0 * white_noise(2, 256))
    assert band_energy(bright_outside, mask) == pytest.approx(band_energy(noisy_outside, mask), rel=1e-4)
    flat = np.where(mask, 0.4, 0.0).astype(np.float32)                   # a flat island in a black gutter
    assert band_energy(flat, mask) < 1e-12
    assert math.isnan(band_energy(noise, np.zeros_like(mask)))


def test_blurred_detail_has_a_low_energy_ratio_and_itself_a_ratio_of_one():
    texture = 0.3 + 0.05 * white_noise(3)
    everywhere = np.ones(texture.shape, bool)
    blurred = cv2.GaussianBlur(texture, (0, 0), 2.0)
    assert band_energy(texture, everywhere) / band_energy(texture, everywhere) == 1.0
    assert band_energy(blurred, everywhere) / band_energy(texture, everywhere) < 0.1


def test_gradient_correlation_is_one_for_the_same_detail_and_zero_for_unrelated_detail():
    truth = 0.3 + 0.05 * white_noise(4, 256)
    everywhere = np.ones(truth.shape, bool)
    assert gradient_correlation(truth, truth, everywhere) == pytest.approx(1.0, abs=1e-9)
    assert gradient_correlation(2.0 * truth, truth, everywhere) == pytest.approx(1.0, abs=1e-6)     # a gain does not count
    assert abs(gradient_correlation(0.3 + 0.05 * white_noise(5, 256), truth, everywhere)) < 0.03
    assert abs(gradient_correlation(np.roll(truth, 3, axis=1), truth, everywhere)) < 0.03          # misplaced detail
    blurred = gradient_correlation(cv2.GaussianBlur(truth, (0, 0), 1.0), truth, everywhere)
    assert 0.3 < blurred < 0.9, blurred


def test_gradient_correlation_ignores_the_holes_around_the_observed_texels():
    truth = 0.3 + 0.05 * white_noise(6, 256)
    observed = np.zeros(truth.shape, bool)
    observed[40:200, 30:220] = True
    holes_black = np.where(observed, truth, 0.0)                         # an unobserved texel next to an observed one
    holes_filled = np.where(observed, truth, 0.3 + 0.05 * white_noise(7, 256))
    assert gradient_correlation(holes_black, truth, observed) == pytest.approx(1.0, abs=1e-9)
    assert gradient_correlation(holes_filled, truth, observed) == pytest.approx(1.0, abs=1e-9)
    assert math.isnan(gradient_correlation(truth, truth, np.eye(256, dtype=bool)))      # no 3 x 3 fully observed
