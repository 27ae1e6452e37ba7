"""The detail-enhancement pipeline on tiny models, in the way of diffusers' pipeline tests.

Shapes, seeded determinism, tiled against untiled inference (and no seams
at tile borders), the conditions, bad inputs and the weights file.
"""

import numpy as np
import pytest
import torch

from studio_avatar.core.enhance.model import CONDITION_CHANNELS, EnhanceConfig, build_unet, detail_conditions
from studio_avatar.core.enhance.pipeline import EnhancePipeline
from studio_avatar.core.enhance.weights import load_enhance, save_enhance
from studio_avatar.core.errors import InputError
from studio_avatar.core.render.tiles import blend_window, tile_starts
from studio_avatar.core.weights import WeightsError

TINY = EnhanceConfig(channels=(8, 16), tile=32, residual_scale=0.05, train_timesteps=100)


def tiny_pipeline(config=TINY, seed=0):
    torch.manual_seed(seed)
    unet = build_unet(config)
    with torch.no_grad():           # a freshly made U-Net's last layer is zero: give it an output to compare
        for parameter in unet.conv_out.parameters():
            parameter.normal_(0.0, 0.2)
    return EnhancePipeline(unet, config)


def textures(size=64, seed=0):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    base = np.stack([0.45 + 0.1 * xx, 0.3 + 0.1 * yy, 0.25 + 0.05 * xx * yy], -1).astype(np.float32)
    phone = np.clip(base * 0.6 + rng.normal(0, 0.02, base.shape), 0, 1).astype(np.float32)
    coverage = np.clip(1.1 - 2.5 * np.abs(xx - 0.5), 0, 1).astype(np.float32)       # 0 at the sides
    return base, phone, coverage


def test_output_shape_range_and_that_it_adds_detail_to_the_base():
    base, phone, coverage = textures()
    out = tiny_pipeline()(base, phone, coverage, steps=3, seed=1)
    assert out.shape == base.shape and out.dtype == np.float32 and np.isfinite(out).all()
    assert 0.0 <= out.min() and out.max() <= 1.0
    assert 1e-3 < np.abs(out - base).mean() < 0.2


def test_same_seed_same_result_other_seed_other_result():
    base, phone, coverage = textures()
    pipeline = tiny_pipeline()
    first, again = (pipeline(base, phone, coverage, steps=3, seed=7) for _ in range(2))
    other = pipeline(base, phone, coverage, steps=3, seed=8)
    assert np.array_equal(first, again)
    assert np.abs(first - other).mean() > 1e-3


def test_outside_the_layout_the_base_is_kept_exactly():
    base, phone, coverage = textures()
    layout = np.zeros(coverage.shape, bool)
    layout[8:40, 8:40] = True
    out = tiny_pipeline()(base, phone, coverage, layout=layout, steps=2)
    assert np.array_equal(out[~layout], base[~layout])
    assert np.abs(out[layout] - base[layout]).mean() > 1e-3


def test_tiles_cover_the_texture_with_the_overlap_and_blend_weights_never_vanish():
    assert tile_starts(64, 32, 16) == [0, 16, 32]
    assert tile_starts(100, 32, 8) == [0, 24, 48, 68]          # the last tile is aligned to the border
    assert tile_starts(32, 32, 8) == [0]
    window = blend_window(32, 8)
    assert window.min() > 0 and window[16, 16] == 1.0 and window[0, 0] < window[0, 16] < window[16, 16]
    assert np.array_equal(window, window.T) and np.array_equal(window, window[::-1])


class TileMean(torch.nn.Module):
    """A stand-in denoiser whose answer is one constant per tile (the mean of the tile's coverage channel):
    stitched without blending, every tile border is a step."""

    def __init__(self):
        super().__init__()
        self.anchor = torch.nn.Parameter(torch.zeros(1))        # gives the pipeline a device

    def forward(self, crops, timestep):
        level = 10 * crops[:, -1:].mean(dim=(1, 2, 3), keepdim=True).expand(-1, 3, *crops.shape[2:])
        return type("Output", (), {"sample": level.contiguous()})


def column_steps(image):
    """The largest change between neighbouring columns of the image's column profile (rows averaged: noise
    cancels), as a share of the profile's range: 1 for a single step, about 2 / ramp width for a smooth ramp."""
    profile = image.mean(axis=(0, 2))
    return np.abs(np.diff(profile)).max() / np.ptp(profile)


def test_tiled_inference_matches_untiled_and_leaves_no_seams():
    base, phone, coverage = textures(size=64)
    untiled = tiny_pipeline(EnhanceConfig(channels=(8, 16), tile=64, train_timesteps=100))
    tiled = tiny_pipeline(EnhanceConfig(channels=(8, 16), tile=32, train_timesteps=100))
    whole = untiled(base, phone, coverage, steps=3, seed=3)
    pieces = tiled(base, phone, coverage, steps=3, seed=3, overlap=16)
    other_seed = untiled(base, phone, coverage, steps=3, seed=4)
    # the same network and noise; tiles see less context (zero padding, group norm and attention over the tile),
    # so the results differ a little -- far less than another seed's (measured: 0.15 of it)
    assert np.abs(pieces - whole).mean() < 0.35 * np.abs(other_seed - whole).mean()

    # a denoiser with a different answer per tile: blended across the overlap, the tiles' answers meet smoothly
    config = EnhanceConfig(channels=(8, 16), tile=32, residual_scale=0.01, train_timesteps=100)
    grey = np.full_like(base, 0.5)                                  # nothing clips
    stitched, blended = (EnhancePipeline(TileMean(), config)(grey, phone, coverage, steps=1, overlap=overlap)
                         for overlap in (0, 16))
    assert column_steps(stitched) > 0.9                             # the stand-in makes seams: one step per border
    assert column_steps(blended) < 2.5 / 16                         # blended: ramps across the 16-texel overlaps


def test_seam_ratio_sees_steps_at_tile_borders_only():
    from studio_avatar.core.eval.metrics import seam_ratio

    rng = np.random.default_rng(0)
    smooth = rng.normal(0.5, 0.02, (64, 64, 3)).astype(np.float32)
    borders = [16, 32, 48]
    assert seam_ratio(smooth, borders, np.ones((64, 64), bool)) == pytest.approx(1.0, abs=0.1)
    tiled = smooth + np.repeat(np.repeat(rng.normal(0, 0.05, (4, 4, 1)), 16, 0), 16, 1).astype(np.float32)
    assert seam_ratio(tiled, borders, np.ones((64, 64), bool)) > 2.0
    assert seam_ratio(tiled, [8, 24, 40], np.ones((64, 64), bool)) == pytest.approx(1.0, abs=0.25)    # not its borders


def test_conditions_follow_the_phone_gradient_only_where_it_was_seen():
    base, phone, coverage = textures()
    phone[:, 31:] *= 0.5                                              # a vertical edge in the phone texture
    conditions = detail_conditions(base, phone, coverage)
    assert conditions.shape == (CONDITION_CHANNELS, 64, 64) and conditions.dtype == np.float32
    assert conditions.min() >= -1.0 and conditions.max() <= 1.0
    gradient = (conditions[3] + 1) / 2
    assert gradient[20:44, 30:33].mean() > 5 * gradient[20:44, 10:20].mean()       # the edge stands out
    unseen = coverage == 0
    assert unseen.any() and np.all(gradient[unseen] == 0)
    brighter = detail_conditions(base, np.clip(phone * 1.5, 0, 1), coverage)[3]      # exposure does not matter much
    assert np.abs(brighter - conditions[3])[20:44, 30:33].mean() < 0.15


@pytest.mark.parametrize("change, message", [
    (lambda b, p, c: (b[:, :-8], p, c), "square"),
    (lambda b, p, c: (b, p[:32, :32], c), "must match"),
    (lambda b, p, c: (b * 2, p, c), "0..1"),
    (lambda b, p, c: (b[:-1, :-1], p[:-1, :-1], c[:-1, :-1]), "multiple of"),
])
def test_bad_inputs_are_refused_before_any_work(change, message):
    base, phone, coverage = change(*textures())
    with pytest.raises(InputError, match=message):
        tiny_pipeline()(base, phone, coverage, steps=2)


def test_weights_round_trip_and_bad_files_are_refused_in_one_line(tmp_path):
    base, phone, coverage = textures()
    pipeline = tiny_pipeline()
    path = tmp_path / "enhance_32.safetensors"
    save_enhance(path, TINY, pipeline.unet, {"steps": 0})
    loaded, info = load_enhance(path)
    assert info == {"steps": 0} and loaded.config == TINY
    assert np.array_equal(loaded(base, phone, coverage, steps=2), pipeline(base, phone, coverage, steps=2))

    with pytest.raises(WeightsError, match="not found"):
        load_enhance(tmp_path / "missing.safetensors")
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(WeightsError, match="corrupt") as error:
        load_enhance(truncated)
    assert "\n" not in str(error.value)
    other = tmp_path / "other.safetensors"
    save_enhance(other, EnhanceConfig(channels=(8, 16), tile=32), build_unet(EnhanceConfig(channels=(8, 24), tile=32)), {})
    with pytest.raises(WeightsError, match="has shape"):
        load_enhance(other)


# -- the stage and the pipeline's plan ---------------------------------------------------------------------------

def tiny_weights(folder):
    path = folder / "enhance_64.safetensors"
    save_enhance(path, TINY, tiny_pipeline().unet, {"steps": 0})
    return path


def test_stage_adds_detail_on_the_skin_and_keeps_the_rest(tmp_path):
    from stage_fixtures import new_capture

    from studio_avatar.core.color import linear_to_srgb
    from studio_avatar.core.enhance.stage import ENHANCE_STAGE, FINAL_PNG, EnhanceParams, skin_layout
    from studio_avatar.core.hashing import path_sha256
    from studio_avatar.core.image_io import read_image, write_png16
    from studio_avatar.core.progress import Progress
    from studio_avatar.core.stages import adopt_outputs, run_stage

    base, phone, coverage = textures(size=128)
    capture = new_capture(tmp_path / "cap")
    (capture.root / "textures").mkdir()
    write_png16(capture.root / "textures" / "gmug.png", linear_to_srgb(base))
    write_png16(capture.root / "textures" / "phone.png", linear_to_srgb(phone))
    write_png16(capture.root / "textures" / "coverage.png", coverage)
    adopt_outputs(capture, "unwrap", ["textures/phone.png", "textures/coverage.png"])
    adopt_outputs(capture, "gmug", ["textures/gmug.png"], inputs=["textures/phone.png"])
    weights = tiny_weights(tmp_path)
    params = EnhanceParams(weights=str(weights), weights_sha256=path_sha256(weights), device="cpu", steps=2)
    outcome = run_stage(capture, ENHANCE_STAGE, params, Progress())
    assert outcome.status == "done"
    final, gmug = read_image(capture.path(FINAL_PNG)), read_image(capture.path("textures/gmug.png"))
    skin = skin_layout(128)
    assert final.shape == gmug.shape and 0.2 < skin.mean() < 0.95
    assert np.abs(final - gmug)[~skin].max() < 2e-4                          # eyes, mouth, gutter: GMug's texels
    assert np.abs(final - gmug)[skin].mean() > 1e-3                          # skin: detail added
    metrics = capture.stage_record("enhance")["metrics"]
    assert metrics["steps"] == 2 and metrics["tile"] == TINY.tile and metrics["device"] == "cpu"


def test_the_plan_runs_enhance_only_when_asked_and_its_weights_load(tmp_path):
    from test_gmug import tiny_models

    from studio_avatar.core.pipeline import texture_plan
    from studio_avatar.core.progress import CallbackSink, Progress

    events = []
    progress = Progress(CallbackSink(events.append))
    weights = tmp_path / "weights"
    weights.mkdir()
    (weights / "gmug_128.safetensors").write_bytes(tiny_models(tmp_path).read_bytes())
    params = {}
    assert texture_plan("auto", None, params, progress, weights, device="cpu", detail="enhance") == "gmug"
    assert "enhance" not in params
    assert [e["stage"] for e in events if e["type"] == "warning"] == ["enhance"]
    tiny_weights(weights)
    assert texture_plan("auto", None, params, progress, weights, device="cpu", detail="enhance") is None
    assert params["enhance"].weights.endswith("enhance_64.safetensors") and params["enhance"].device == "cpu"
    assert texture_plan("auto", None, {}, progress, weights, device="cpu") == "gmug"           # detail off by default
    assert texture_plan("classic", None, {}, progress, weights, detail="enhance") == "delight_classic"
    with pytest.raises(InputError, match="detail method"):
        texture_plan("auto", None, {}, progress, weights, detail="sharpen")


# -- training -------------------------------------------------------------------------------------------------------

TINY_TRAIN = dict(batch=2, tile=32, channels=(8, 16), identities=3, held_out_identities=1, crops_per_identity=4,
                  albedo_size=256, sample_steps=2)


@pytest.fixture(scope="module")
def crops_folder(tmp_path_factory):
    """Albedo crops made once for the module's training runs (each run folder links to them)."""
    from studio_avatar.core.enhance.data import PatchBank

    folder = tmp_path_factory.mktemp("bank") / "albedo_crops"
    PatchBank(folder, TINY_TRAIN["identities"], TINY_TRAIN["crops_per_identity"], TINY_TRAIN["tile"], 0, 256)
    return folder


def trainer_in(work, crops_folder):
    from studio_avatar.core.enhance.train import EnhanceTrainConfig, _trainer

    work.mkdir(parents=True, exist_ok=True)
    if not (work / "albedo_crops").exists():
        (work / "albedo_crops").symlink_to(crops_folder)
    return _trainer(EnhanceTrainConfig(**TINY_TRAIN), work, "cpu", None)


def test_degraded_crops_are_what_a_capture_gives_and_base_plus_detail_is_the_truth(crops_folder):
    from studio_avatar.core.enhance.data import MARGIN, PatchBank, degrade

    bank = PatchBank(crops_folder, 3, 4, 32, 0, 256)
    assert bank.crops.shape == (12, 32 + 2 * MARGIN, 32 + 2 * MARGIN, 3) and bank.crops.dtype == np.uint16
    parts = degrade(bank.crops, np.random.default_rng(0), 32)
    assert {k: v.shape for k, v in parts.items()} == {"base": (12, 32, 32, 3), "phone": (12, 32, 32, 3),
                                                      "coverage": (12, 32, 32), "detail": (12, 32, 32, 3)}
    truth = bank.crops[:, MARGIN:-MARGIN, MARGIN:-MARGIN].astype(np.float32) / 65535
    rebuilt = parts["base"] + parts["detail"]
    colour = (rebuilt.reshape(12, -1, 3).mean(1) / truth.reshape(12, -1, 3).mean(1))
    assert np.abs(np.log(colour)).max() < 0.15                         # the truth, under a small colour error
    assert np.abs(np.diff(parts["base"], axis=2)).mean() < 0.7 * np.abs(np.diff(truth, axis=2)).mean()   # blurred
    assert abs(parts["detail"].mean()) < 0.01 and parts["detail"].std() > 1e-3
    assert np.array_equal(degrade(bank.crops, np.random.default_rng(0), 32)["phone"], parts["phone"])    # seeded


def test_training_resumes_exactly_where_it_stopped(tmp_path, crops_folder):
    def run(folder, steps):
        trainer = trainer_in(folder, crops_folder)
        trainer.resume()
        losses = []
        for _ in range(steps):
            losses.append(trainer.step())
            trainer.state["step"] += 1
        trainer.save()
        return trainer, losses

    straight, losses = run(tmp_path / "a", 4)
    run(tmp_path / "b", 2)
    resumed, _ = run(tmp_path / "b", 2)
    for name, value in straight.unet.state_dict().items():
        torch.testing.assert_close(resumed.unet.state_dict()[name], value, rtol=1e-5, atol=1e-6)
    assert all(np.isfinite(losses))


def test_export_writes_loadable_weights_with_held_out_metrics(tmp_path, crops_folder):
    import json

    trainer = trainer_in(tmp_path / "run", crops_folder)
    trainer.step()
    trainer.state["step"] = 1
    summary = trainer.export(tmp_path / "out")
    pipeline, info = load_enhance(summary["weights"])
    assert pipeline.config == trainer.network and info["steps"] == 1
    for key in ("held_psnr", "held_psnr_base", "held_hf_energy_ratio", "held_gradient_correlation"):
        assert np.isfinite(info[key]), key
    assert (tmp_path / "run" / "samples" / "latest.png").is_file()
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["best_step"] == 1
