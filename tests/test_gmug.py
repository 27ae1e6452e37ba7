"""GMug on tiny models (in the way of diffusers' fast tests): shapes, R1, the frozen 8x8 layers, inversion, weight
files, the stage's detail transfer and the pipeline's fallback, device resolution."""

import json

import numpy as np
import pytest
import torch

from studio_avatar.core import device as device_mod
from studio_avatar.core.errors import InputError
from studio_avatar.core.gmug import losses as L
from studio_avatar.core.gmug.inputs import network_input, normalise_batch, uv_masks
from studio_avatar.core.gmug.invert import InversionParams, invert
from studio_avatar.core.gmug.networks import (Discriminator, Encoder, Generator, GMugConfig, fine_tune_parameters,
                                              frozen_prefixes)
from studio_avatar.core.gmug.stage import compose_albedo
from studio_avatar.core.gmug.train import TrainConfig, Trainer
from studio_avatar.core.gmug.weights import WeightsError, load_gmug, save_gmug
from studio_avatar.core.pipeline import texture_plan
from studio_avatar.core.progress import CallbackSink, Progress

TINY = GMugConfig(resolution=32, w_dim=16, z_dim=16, channels={4: 16, 8: 16, 16: 8, 32: 8}, encoder_hidden=32)


def test_shapes_of_every_network():
    torch.manual_seed(0)
    generator, encoder, disc = Generator(TINY), Encoder(TINY), Discriminator(TINY)
    assert TINY.num_ws == 2 + 3 * 3
    ws = generator.mapping(torch.randn(5, 16))
    assert ws.shape == (5, TINY.num_ws, 16)
    assert generator.synthesis(ws).shape == (5, 3, 32, 32)
    x = torch.randn(5, 4, 32, 32)
    assert encoder(x).shape == (5, TINY.num_ws, 16)
    assert disc(torch.randn(4, 3, 32, 32)).shape == (4, 1)
    assert [f.shape[-1] for f in disc.features(torch.randn(2, 3, 32, 32))] == [32, 16, 8, 4]
    with pytest.raises(ValueError, match="W\\+ has shape"):
        generator.synthesis(torch.randn(5, TINY.num_ws - 1, 16))
    with pytest.raises(ValueError, match="encoder input"):
        encoder(torch.randn(2, 3, 32, 32))
    # no noise: the synthesis is deterministic; with noise it is not (once noise strengths are non-zero)
    for module in generator.synthesis.modules():
        if hasattr(module, "noise_strength"):
            module.noise_strength.data.fill_(0.5)
    assert torch.equal(generator.synthesis(ws, noise="none"), generator.synthesis(ws, noise="none"))
    assert not torch.equal(generator.synthesis(ws), generator.synthesis(ws))


def test_r1_penalty_is_the_squared_input_gradient():
    class Linear(torch.nn.Module):     # D(x) = sum(a * x): its gradient is a everywhere
        def __init__(self):
            super().__init__()
            self.a = torch.nn.Parameter(torch.randn(1, 3, 8, 8))

        def forward(self, x):
            return (x * self.a).sum((1, 2, 3))

    disc = Linear()
    penalty = L.r1_penalty(disc, torch.randn(4, 3, 8, 8))
    assert penalty.item() == pytest.approx(disc.a.square().sum().item(), rel=1e-5)
    penalty.backward()                  # differentiable w.r.t. D's parameters: d/da sum(a^2) = 2a
    torch.testing.assert_close(disc.a.grad, 2 * disc.a.detach())


def test_ms_ssim_ignores_masked_texels_and_sees_structure():
    torch.manual_seed(0)
    a = torch.rand(2, 3, 32, 32) * 2 - 1
    mask = torch.ones(2, 1, 32, 32)
    mask[..., :, 16:] = 0
    b = a.clone()
    b[..., :, 16:] = torch.rand(2, 3, 32, 16)                  # differs only where the mask is 0
    assert L.masked_ms_ssim_loss(a, b, mask).item() == pytest.approx(0.0, abs=1e-3)
    assert L.masked_l1(a, b, mask).item() == pytest.approx(0.0, abs=1e-6)
    noisy = a + 0.3 * torch.randn_like(a)
    assert L.masked_ms_ssim_loss(a, noisy, mask).item() > 0.1


class TinyCorpus:
    """Stands in for the synth-textures corpus: random phone textures with holes and smooth albedos."""

    def __init__(self, resolution):
        g = torch.Generator().manual_seed(0)
        self.train_rows = np.arange(6)
        self.held_rows = np.arange(6, 8)
        self.phone = torch.rand(8, 3, resolution, resolution, generator=g) * 0.5
        self.coverage = (torch.rand(8, 1, resolution, resolution, generator=g) > 0.3).float()
        self.albedo = torch.rand(8, 3, resolution, resolution, generator=g) * 2 - 1
        self.islands = torch.as_tensor(uv_masks(resolution).islands)[None, None]

    def batch(self, rows, rng, white_balance_sigma, device):
        x, seen, _ = normalise_batch(self.phone[rows], self.coverage[rows])
        return {"input": x, "seen": seen, "albedo": self.albedo[rows], "islands": self.islands.expand(len(rows), -1, -1, -1)}


def tiny_train_config(**changes):
    return TrainConfig(resolution=32, w_dim=16, channels=dict(TINY.channels), encoder_hidden=32, batch=2,
                       face_every=1000, **changes)


def test_fine_tuning_g_studio_leaves_8x8_and_below_bitwise_unchanged(tmp_path):
    trainer = Trainer(tiny_train_config(), TinyCorpus(32), tmp_path, "cpu")
    trainer.phone_step()
    trainer.start_studio()
    before = {k: v.clone() for k, v in trainer.studio.state_dict().items()}
    encoder_before = {k: v.clone() for k, v in trainer.encoder.state_dict().items()}
    for _ in range(3):
        trainer.studio_step()
        trainer.state["phase_step"] += 1
        trainer.state["step"] += 1
    after = trainer.studio.state_dict()
    frozen = frozen_prefixes(8)
    for name in before:
        if name.startswith(frozen):
            assert torch.equal(before[name], after[name]), name
    changed = [k for k in before if not k.startswith(frozen) and not torch.equal(before[k], after[k])]
    assert any(k.startswith("synthesis.blocks.b16.") for k in changed)
    assert any(k.startswith("synthesis.blocks.b32.") for k in changed)
    assert all(torch.equal(v, trainer.encoder.state_dict()[k]) for k, v in encoder_before.items())
    # theta(16+) freezes b16 as well
    generator = Generator(TINY)
    trainable = {id(p) for p in fine_tune_parameters(generator, 16)}
    for name, param in generator.named_parameters():
        assert (id(param) in trainable) == (not name.startswith(frozen_prefixes(16)))


def test_training_resumes_exactly_where_it_stopped(tmp_path):
    def run(folder, steps):
        trainer = Trainer(tiny_train_config(), TinyCorpus(32), folder, "cpu")
        trainer.resume()
        for _ in range(steps):
            trainer.phone_step()
            trainer.state["step"] += 1
        trainer.save()
        return trainer

    straight = run(tmp_path / "a", 4)
    run(tmp_path / "b", 2)
    resumed = run(tmp_path / "b", 2)
    for name, value in straight.phone.state_dict().items():
        torch.testing.assert_close(resumed.phone.state_dict()[name], value, rtol=1e-5, atol=1e-6)


def tiny_models(tmp_path):
    torch.manual_seed(1)
    encoder, generator = Encoder(TINY), Generator(TINY)
    path = tmp_path / "gmug_32.safetensors"
    save_gmug(path, TINY, encoder, generator.synthesis, generator.synthesis, 8, {"steps": 0})
    return path


def test_inversion_lowers_the_masked_loss(tmp_path):
    models = load_gmug(tiny_models(tmp_path))
    torch.manual_seed(2)
    x = torch.rand(1, 4, 32, 32) * 2 - 1
    seen = (torch.rand(1, 1, 32, 32) > 0.4).float()
    _, info = invert(models, x, seen, InversionParams(steps=25, lr=0.05, anchor_weight=0.0))
    assert info["inversion_loss_final"] < 0.9 * info["inversion_loss_encoder"]
    # the encoder's W+ alone when no steps are asked for
    ws, info0 = invert(models, x, seen, InversionParams(steps=0))
    torch.testing.assert_close(ws, models.encoder(x))
    assert info0["inversion_loss_final"] == info0["inversion_loss_encoder"]


def test_weights_round_trip_and_clear_errors(tmp_path):
    path = tiny_models(tmp_path)
    models = load_gmug(path)
    assert models.config == TINY and models.freeze_res == 8 and models.info == {"steps": 0}
    with pytest.raises(WeightsError, match="not found"):
        load_gmug(tmp_path / "missing.safetensors")
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(WeightsError, match="corrupt") as error:
        load_gmug(truncated)
    assert "\n" not in str(error.value)
    from safetensors.torch import load_file, save_file

    tensors = load_file(str(path))
    save_file(tensors, str(tmp_path / "nometa.safetensors"), metadata={"format": "other"})
    with pytest.raises(WeightsError, match="format version"):
        load_gmug(tmp_path / "nometa.safetensors")
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata()
    key = next(k for k in tensors if k.startswith("phone.") and tensors[k].ndim == 4)
    tensors[key] = torch.zeros(1, 1, 1, 1)
    save_file(tensors, str(tmp_path / "shape.safetensors"), metadata=metadata)
    with pytest.raises(WeightsError, match="has shape"):
        load_gmug(tmp_path / "shape.safetensors")


def test_exposure_normalisation_makes_the_input_independent_of_the_phone_level():
    masks = uv_masks(32)
    rng = np.random.default_rng(0)
    linear = rng.uniform(0.02, 0.2, (1, 3, 32, 32)).astype(np.float32)
    coverage = np.where(masks.islands > 0, 0.9, 0.0)[None, None].astype(np.float32)
    dim, dim_seen, dim_gain = normalise_batch(torch.as_tensor(linear), torch.as_tensor(coverage))
    bright, _, bright_gain = normalise_batch(torch.as_tensor(linear * 3), torch.as_tensor(coverage))
    torch.testing.assert_close(dim, bright, rtol=1e-4, atol=1e-4)
    assert float(dim_gain / bright_gain) == pytest.approx(3.0, rel=1e-4)
    assert torch.equal(dim_seen[0, 0] > 0, torch.as_tensor(masks.islands > 0))
    # a 4x larger texture averages down to the same input (coverage-weighted)
    big = np.repeat(np.repeat(linear[0].transpose(1, 2, 0), 4, 0), 4, 1)
    from studio_avatar.core.color import linear_to_srgb

    x, _, _ = network_input(linear_to_srgb(big), np.repeat(np.repeat(coverage[0, 0], 4, 0), 4, 1), 32)
    torch.testing.assert_close(x, dim, rtol=1e-3, atol=2e-3)


def test_composition_keeps_well_seen_classic_texels_and_anchors_the_completion_to_their_level():
    import cv2

    from studio_avatar.core.color import linear_to_srgb

    rng = np.random.default_rng(3)
    size, low = 256, 32
    smooth = cv2.resize(rng.uniform(0.2, 0.6, (8, 8, 3)).astype(np.float32), (size, size), interpolation=cv2.INTER_CUBIC)
    detail = 1 + 0.25 * cv2.GaussianBlur(rng.standard_normal((size, size)).astype(np.float32), (0, 0), 1.0)[..., None]
    truth = np.clip(smooth * detail, 0.01, 1)
    islands = cv2.resize(uv_masks(low).islands, (size, size), interpolation=cv2.INTER_NEAREST) > 0
    coverage = np.zeros((size, size), np.float32)
    coverage[:, : size // 2] = 1.0                                             # the left half was seen
    classic = np.where(coverage[..., None] > 0, truth, 0.3)                    # exact where seen, flat where not
    network = linear_to_srgb(cv2.resize(truth, (low, low), interpolation=cv2.INTER_AREA) * np.float32([0.5, 0.6, 0.7]))

    albedo, info = compose_albedo(network, linear_to_srgb(classic), coverage)
    seen = islands & (np.arange(size)[None, :] < size // 2 - 16)
    unseen = islands & (np.arange(size)[None, :] > size // 2 + 16)
    np.testing.assert_allclose(albedo[seen], truth[seen], atol=2e-3)           # the classic texels, untouched
    np.testing.assert_allclose(info["anchor_gain"], [2.0, 1 / 0.6, 1 / 0.7], rtol=0.05)   # the network's level undone

    def psnr(estimate, where):
        return -10 * np.log10(np.mean((estimate[where] - truth[where]) ** 2))

    assert psnr(albedo, unseen) > psnr(classic, unseen) + 6                    # completion from the network, not flat
    assert np.isfinite(albedo).all() and albedo.shape == (size, size, 3)


def test_texture_plan_uses_gmug_when_weights_load_and_falls_back_with_one_warning(tmp_path):
    events = []
    progress = Progress(CallbackSink(events.append))
    weights = tmp_path / "weights"
    weights.mkdir()
    params = {}
    assert texture_plan("auto", None, params, progress, weights) == "delight_classic"
    warnings = [e for e in events if e["type"] == "warning"]
    assert len(warnings) == 1 and "not found" in warnings[0]["message"] and "classic" in warnings[0]["message"]
    assert "gmug" not in params
    (weights / "gmug_128.safetensors").write_bytes(tiny_models(tmp_path).read_bytes())
    params = {}
    assert texture_plan("gmug", None, params, progress, weights, device="cpu") == "gmug"     # no detail asked for
    assert params["gmug"].weights.endswith("gmug_128.safetensors") and len(params["gmug"].weights_sha256) == 64
    assert params["gmug"].device == "cpu"
    assert texture_plan("classic", None, {}, progress, weights) == "delight_classic"
    assert texture_plan("auto", "fit", {}, progress, weights) == "fit"
    with pytest.raises(InputError, match="texture method"):
        texture_plan("magic", None, {}, progress, weights)


def test_device_resolution(monkeypatch):
    assert device_mod.resolve_device("cpu") == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert device_mod.resolve_device("auto") == "cpu"
    with pytest.raises(InputError, match="no CUDA"):
        device_mod.resolve_device("cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert device_mod.resolve_device("auto") == "cuda"
    assert device_mod.resolve_device("cuda") == "cuda"
    with pytest.raises(InputError, match="unknown device"):
        device_mod.resolve_device("tpu")


def test_train_config_round_trips_through_json():
    config = tiny_train_config()
    assert json.loads(json.dumps(config.network_config().to_dict()))["channels"]["32"] == 8
    assert GMugConfig.from_dict(config.network_config().to_dict()) == config.network_config()


def test_export_ships_g_studio_at_its_best_held_out_step(tmp_path):
    trainer = Trainer(tiny_train_config(), TinyCorpus(32), tmp_path, "cpu")
    trainer.start_studio()
    trainer.keep_if_best(trainer.validate())
    best = {k: v.clone() for k, v in trainer.studio.state_dict().items()}
    for parameter in trainer.studio.synthesis.blocks["b32"].torgb.parameters():
        parameter.data.add_(5.0)                                     # a much worse G_studio afterwards
    trainer.keep_if_best(trainer.validate())
    assert trainer.state["best"]["step"] == 0
    summary = trainer.export(tmp_path / "out")
    shipped = load_gmug(summary["weights"])
    for name, value in shipped.studio.state_dict().items():
        assert torch.equal(value, best[f"synthesis.{name}"]), name
