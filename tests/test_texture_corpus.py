"""The UV-space texture corpus (core/synth/texture_corpus.py): its physics, coverage, determinism and resume."""

import dataclasses
import json
import math

import numpy as np
import pytest

from studio_avatar.core.color import srgb_to_linear
from studio_avatar.core.errors import Cancelled
from studio_avatar.core.image_io import read_image
from studio_avatar.core.progress import CancelToken, Progress
from studio_avatar.core.synth import texture_corpus as tc

SIZE = 128
FAST = tc.TextureCorpusParams(visibility_directions=48)                 # a coarser visibility table: quicker identities
CLEAN = dataclasses.replace(FAST, noise=(0.0, 0.0), blur_px=(0.0, 0.0))  # no fusion artifacts: the physics is exact


@pytest.fixture(scope="module")
def model():
    from studio_avatar.core.head.source import load_head

    return load_head(with_landmarks=False)


@pytest.fixture(scope="module")
def identity(model):
    return tc.make_identity(model, SIZE, seed=3, params=FAST)


@pytest.fixture(scope="module")
def environments():
    folder = tc.environment_folder()
    return tc.load_environments(str(folder) if folder else None)


def texels(identity, image):
    return image.reshape((SIZE * SIZE,) + image.shape[2:])[identity.geometry.texels.numpy()]


@pytest.mark.parametrize("fixed_to_camera", [False, True])
def test_phone_is_albedo_times_shading_times_gain_where_observed(identity, environments, fixed_to_camera):
    rng = np.random.default_rng(7)
    light = dataclasses.replace(tc.sample_phone_light(rng, CLEAN, environments), camera_fixed=fixed_to_camera, specular=0.03)
    sample = tc.make_sample(identity, seed=11, params=CLEAN, environments=environments, light=light)
    phone, albedo = texels(identity, sample.phone_linear), identity.albedo_texels.numpy()
    shading, specular = texels(identity, sample.shading), texels(identity, sample.specular)
    observed = texels(identity, sample.coverage) > 0.1
    unclipped = observed & (texels(identity, sample.phone_srgb) < 0.999).all(1)
    assert unclipped.mean() > 0.5
    expected = sample.gain * (albedo * shading + specular)
    np.testing.assert_allclose(phone[unclipped], expected[unclipped], rtol=2e-3, atol=2e-5)
    assert specular[observed].max() > 0 and (specular[observed] < 0.2 * albedo[observed] * shading[observed]).mean() > 0.95
    assert (phone[~observed] == 0).all()
    # the ratio phone / albedo is the shading (times the gain) where the sheen is negligible
    plain = unclipped & (specular < 1e-4 * shading).all(1) & (albedo > 0.02).all(1)
    np.testing.assert_allclose(phone[plain] / albedo[plain], sample.gain * shading[plain], rtol=3e-3)
    # auto exposure: the face's shading after the gains is about 1 (within the exposure error)
    face = texels(identity, sample.coverage)[identity.face.numpy()] > 0.1
    metered = (shading[identity.face.numpy()][face] * sample.gain).mean(1)
    assert 0.25 < np.median(metered) < 4.0


def test_studio_light_is_smoother_than_phone_light(identity, environments):
    face = identity.face.numpy()
    studio = np.log(texels(identity, identity.studio_shading)[face]).var()
    for seed in range(4):
        sample = tc.make_sample(identity, seed=seed, params=CLEAN, environments=environments)
        seen = face & (texels(identity, sample.coverage) > 0.1)
        phone_ratio = texels(identity, sample.phone_linear)[seen] / identity.albedo_texels.numpy()[seen]
        phone = np.log(np.clip(phone_ratio, 1e-3, None)).var()
        assert studio < phone, (seed, studio, phone, sample.info["light"])
    # the studio texture is the albedo under the same fixed light for everyone: shading about 1 facing the camera
    assert 0.7 < np.median(texels(identity, identity.studio_shading)[face]) < 1.3
    np.testing.assert_allclose(identity.studio_linear, identity.albedo_linear * identity.studio_shading, rtol=1e-6)


def test_coverage_holes_shrink_as_the_sweep_widens(identity, environments):
    light = tc.sample_phone_light(np.random.default_rng(0), FAST, environments)
    observed = {}
    for extent in (20.0, 50.0, 90.0):
        path = tc.sample_camera_path(np.random.default_rng(1), FAST, yaw_extents_deg=(extent, extent))
        sample = tc.make_sample(identity, seed=5, params=FAST, environments=environments, path=path, light=light)
        coverage = texels(identity, sample.coverage)
        observed[extent] = coverage > 0.1
        assert (texels(identity, sample.phone_srgb)[~observed[extent]] == 0).all()
        assert sample.info["path"]["yaw_left_deg"] == extent
    skin = identity.sampled.numpy()
    ears = identity.geometry.regions["ears"].numpy()
    fraction = {extent: seen[skin].mean() for extent, seen in observed.items()}
    assert fraction[20.0] < fraction[50.0] < fraction[90.0], fraction
    assert observed[20.0][ears].mean() + 0.1 < observed[90.0][ears].mean()              # the ears need the side views
    assert (observed[20.0] & ~observed[90.0]).sum() <= 0.01 * skin.sum()       # a wider sweep sees what a narrow one saw
    assert not observed[90.0][~skin].any()                                      # eyes and mouth are never sampled


def test_corpus_is_deterministic_resumable_and_holes_are_black(tmp_path, model):
    a, b = tmp_path / "a", tmp_path / "b"
    summary = tc.write_texture_corpus(a, count=3, size=SIZE, seed=5, samples_per_identity=2, params=FAST, model=model)
    assert summary["written"] == 3 and summary["skipped"] == 0          # speed: bench/texture_corpus.py
    tc.write_texture_corpus(b, count=3, size=SIZE, seed=5, samples_per_identity=2, params=FAST, model=model)
    names = sorted(p.name for p in a.iterdir())
    assert names == sorted(p.name for p in b.iterdir())
    assert len(names) == 3 * 4 + 1 and not any(name.startswith(".") for name in names)
    for name in names:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name

    records = [json.loads(line) for line in (a / tc.INDEX_JSONL).read_text().splitlines()]
    assert [r["index"] for r in records] == [0, 1, 2]
    assert [r["identity"]["index"] for r in records] == [0, 0, 1]
    assert records[0]["identity"]["seed"] == records[1]["identity"]["seed"] != records[2]["identity"]["seed"]
    assert records[0]["seed"] != records[1]["seed"] and "generator" in records[0]["albedo"]
    assert {"light", "path", "exposure_stops", "gain", "coverage_face"} <= set(records[0])

    for index in range(3):
        files = tc.sample_files(a, index)
        phone, coverage = read_image(files["phone"]), read_image(files["coverage"])
        assert phone.shape == (SIZE, SIZE, 3) and coverage.shape == (SIZE, SIZE)
        assert (phone[coverage <= 0.1] == 0).all() and (coverage > 0.1).mean() > 0.2
        assert srgb_to_linear(read_image(files["albedo"])).mean() > 0.05

    # resume: complete samples are kept; a missing file or a torn index line makes only that sample again
    (a / "000001_phone.png").unlink()
    with open(a / tc.INDEX_JSONL, "a") as index:
        index.write('{"index": 2, "se')
    summary = tc.write_texture_corpus(a, count=4, size=SIZE, seed=5, samples_per_identity=2, params=FAST, model=model)
    assert summary["written"] == 2 and summary["skipped"] == 2
    assert (a / "000001_phone.png").read_bytes() == (b / "000001_phone.png").read_bytes()
    assert [json.loads(line)["index"] for line in (a / tc.INDEX_JSONL).read_text().splitlines()] == [0, 2, 1, 3]


def test_cancel_stops_before_the_next_sample(tmp_path, model):
    token = CancelToken()
    token.cancel()
    with pytest.raises(Cancelled):
        tc.write_texture_corpus(tmp_path, count=2, size=SIZE, params=FAST, model=model,
                                progress=Progress(cancel=token).stage("synth-textures"))
    assert not list(tmp_path.glob("*.png"))


def test_sh_rotation_matches_rotating_the_light():
    lobe = lambda axis: (lambda d: np.repeat(np.exp(6 * (d @ axis - 1))[:, None], 3, 1))  # noqa: E731
    axis = np.array([0.3, 0.8, 0.5]) / np.linalg.norm([0.3, 0.8, 0.5])
    rotation = tc._rotation(35.0, -20.0, 10.0)[0]
    # f(R d) is the lobe around R^T axis
    np.testing.assert_allclose(tc.sh_rotation(rotation[None])[0] @ tc.project_radiance(lobe(axis)),
                               tc.project_radiance(lobe(rotation.T @ axis)), rtol=5e-3, atol=1e-4)


def test_sun_is_taken_out_of_an_hdri_as_a_directional_light():
    height, width = 128, 256
    directions, solid_angle = tc._equirect_directions(height, width)
    sky = np.full((height, width, 3), 0.5, np.float32)
    sun = np.array([0.6, 0.6, -0.53]) / np.linalg.norm([0.6, 0.6, -0.53])
    spot = directions @ sun > math.cos(math.radians(3))
    sky[spot] = (2000.0, 1800.0, 1500.0)
    env = tc.environment_from_equirect("test", sky)
    assert np.degrees(np.arccos(np.clip(env.sun_direction @ sun, -1, 1))) < 3
    expected = (np.array([2000.0, 1800.0, 1500.0]) * solid_angle[spot].sum())
    np.testing.assert_allclose(env.sun_irradiance, expected, rtol=0.2)
    # what is left is about the uniform sky: its mean radiance is the DC term / sqrt(4 pi)
    np.testing.assert_allclose(env.sh[0] / math.sqrt(4 * math.pi), 0.5, rtol=0.2)
    assert np.abs(env.sh[1:]).max() < 0.2 * env.sh[0].min()
