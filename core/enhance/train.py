"""``studio-avatar train enhance``: the detail network trained on synthetic albedo crops (see data.py), as GMug is.

v-prediction diffusion loss on the detail residual, Adam, seeded per step
(batch ``k`` draws from ``seed, k``, so a resumed run continues the same
sequence), a wall-clock budget, a checkpoint every few minutes (``--resume``
continues it; only the budget and intervals may change), ``losses.jsonl``,
a held-out sample sheet with metrics every few minutes, and the best
held-out state exported as ``enhance_<T>.safetensors``.
"""

from __future__ import annotations

import copy
import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..atomic import atomic_path
from ..color import linear_to_srgb
from ..device import resolve_device
from ..errors import InputError
from ..eval.metrics import band_energy, gradient_correlation, psnr
from ..progress import StageProgress
from ..weights import check_resume, checkpoint_state, load_checkpoint, save_checkpoint, start_run
from .data import ALBEDO_SIZE, PatchBank, degrade
from .model import EnhanceConfig, build_unet, detail_conditions
from .pipeline import EnhancePipeline, make_scheduler
from .weights import save_enhance

CHECKPOINT = "checkpoint.safetensors"
BEST = "best.safetensors"
LOSSES = "losses.jsonl"
RESUMABLE_CHANGES = ("minutes", "checkpoint_every_s", "sample_every_s")
HELD_OUT_CROPS = 24


@dataclass(frozen=True)
class EnhanceTrainConfig:
    minutes: float = 60.0                       # wall-clock budget of the whole run
    batch: int = 16                             # crops per step
    tile: int = 64                              # crop side = the inference tile, texels
    channels: tuple[int, ...] = (16, 32, 64)    # U-Net widths (see EnhanceConfig)
    residual_scale: float = 0.03                # about the detail residual's standard deviation in linear albedo
    identities: int = 48                        # synthetic albedos (the first held_out_identities are held out)
    albedo_size: int = ALBEDO_SIZE              # their size: the texel density the network learns (tests use less)
    held_out_identities: int = 4
    crops_per_identity: int = 192
    learning_rate: float = 2e-4
    sample_steps: int = 4                       # DDIM steps of the held-out evaluation (and the stage's default)
    seed: int = 0
    checkpoint_every_s: float = 300.0
    sample_every_s: float = 300.0

    def network_config(self) -> EnhanceConfig:
        return EnhanceConfig(channels=self.channels, tile=self.tile, residual_scale=self.residual_scale)


def _network_batch(parts: dict[str, np.ndarray], device: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(conditions (N, 5, T, T), detail sample (N, 3, T, T)) for the network from :func:`degrade`'s arrays."""
    conditions = np.stack([detail_conditions(b, p, c) for b, p, c in zip(parts["base"], parts["phone"], parts["coverage"])])
    return (torch.as_tensor(conditions, device=device),
            torch.as_tensor(parts["detail"].transpose(0, 3, 1, 2).copy(), device=device))


class EnhanceTrainer:
    def __init__(self, config: EnhanceTrainConfig, bank: PatchBank, work: Path, device: str) -> None:
        torch.manual_seed(config.seed)
        self.config, self.bank, self.work, self.device = config, bank, work, device
        self.network = config.network_config()
        self.unet = build_unet(self.network).to(device)
        self.optimizer = torch.optim.Adam(self.unet.parameters(), lr=config.learning_rate)
        self.scheduler = make_scheduler(self.network)
        self.train_rows = bank.rows(range(config.held_out_identities, config.identities))
        held = bank.rows(range(config.held_out_identities))
        self.held_rows = held[np.random.default_rng(config.seed).choice(len(held), min(HELD_OUT_CROPS, len(held)), replace=False)]
        self.state: dict[str, Any] = {"step": 0, "elapsed_s": 0.0, "config": json.loads(json.dumps(asdict(config)))}

    def save(self) -> None:
        save_checkpoint(self.work / CHECKPOINT, {"unet": self.unet}, {"adam": self.optimizer}, self.state)

    def resume(self) -> bool:
        if not (self.work / CHECKPOINT).is_file():
            return False
        self.state = load_checkpoint(self.work / CHECKPOINT, {"unet": self.unet}, {"adam": self.optimizer})
        return True

    def step(self) -> float:
        config = self.config
        rng = np.random.default_rng([config.seed, self.state["step"]])
        rows = rng.choice(self.train_rows, config.batch)
        conditions, detail = _network_batch(degrade(self.bank.crops[rows], rng, config.tile), self.device)
        generator = torch.Generator().manual_seed(int(rng.integers(2 ** 31)))
        sample = detail / config.residual_scale
        noise = torch.randn(sample.shape, generator=generator).to(self.device)
        timesteps = torch.randint(0, self.network.train_timesteps, (len(rows),), generator=generator).to(self.device)
        noisy = self.scheduler.add_noise(sample, noise, timesteps)
        target = self.scheduler.get_velocity(sample, noise, timesteps)
        self.unet.train()
        loss = torch.nn.functional.mse_loss(self.unet(torch.cat([noisy, conditions], 1), timesteps).sample, target)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return float(loss.detach())

    def held_out(self) -> dict[str, np.ndarray]:
        """The held-out crops' inputs, the same at every evaluation."""
        return degrade(self.bank.crops[self.held_rows], np.random.default_rng([self.config.seed, 2 ** 20]), self.config.tile)

    def validate(self, unet: torch.nn.Module | None = None) -> tuple[dict[str, float], list[np.ndarray]]:
        """Held-out metrics of the enhanced crops against the truth, and the sheet rows base | enhanced | truth."""
        pipeline = EnhancePipeline(copy.deepcopy(unet or self.unet), self.network)
        parts = self.held_out()
        truths = np.clip(parts["base"] + parts["detail"], 0, 1)
        whole = np.ones(parts["coverage"].shape[1:], bool)
        scores: dict[str, list[float]] = {"psnr_base": [], "psnr": [], "hf_energy_ratio": [], "gradient_correlation": [],
                                          "gradient_correlation_base": []}
        rows = []
        for k, (base, phone, coverage, truth) in enumerate(zip(parts["base"], parts["phone"], parts["coverage"], truths)):
            enhanced = pipeline(base, phone, coverage, steps=self.config.sample_steps, seed=k)
            scores["psnr_base"].append(psnr(linear_to_srgb(base), linear_to_srgb(truth), whole))
            scores["psnr"].append(psnr(linear_to_srgb(enhanced), linear_to_srgb(truth), whole))
            scores["hf_energy_ratio"].append(band_energy(enhanced, whole) / max(band_energy(truth, whole), 1e-12))
            scores["gradient_correlation"].append(gradient_correlation(enhanced, truth, whole))
            scores["gradient_correlation_base"].append(gradient_correlation(base, truth, whole))
            rows.append(np.concatenate([linear_to_srgb(image) for image in (base, enhanced, truth)], 1))
        metrics = {f"held_{name}": round(float(np.nanmean(values)), 4) for name, values in scores.items()}
        metrics["held_score"] = round(metrics["held_gradient_correlation"]
                                      - 0.5 * abs(math.log(max(metrics["held_hf_energy_ratio"], 1e-6))), 4)
        return metrics, rows

    def evaluate_and_sheet(self) -> dict[str, float]:
        """Validate, write samples/latest.png and samples/stepN.png, keep the best state; returns the metrics."""
        import cv2

        metrics, rows = self.validate()
        sheet = np.concatenate(rows[:8], 0)
        sheet = cv2.resize(sheet, None, fx=3, fy=3, interpolation=cv2.INTER_NEAREST)        # texels visible
        folder = self.work / "samples"
        folder.mkdir(exist_ok=True)
        for name in (f"step{self.state['step']:07d}.png", "latest.png"):
            with atomic_path(folder / name) as tmp:
                cv2.imwrite(str(tmp), (np.clip(sheet, 0, 1) * 255).astype(np.uint8)[..., ::-1])
        if metrics["held_score"] > self.state.get("best", {}).get("held_score", -math.inf):
            save_checkpoint(self.work / BEST, {"unet": self.unet}, {}, {})
            self.state["best"] = {"step": self.state["step"], **metrics}
        return metrics

    def export(self, out: Path) -> dict[str, Any]:
        """``out/enhance_<T>.safetensors`` from the best held-out state, and ``summary.json`` in the run folder."""
        self.evaluate_and_sheet()
        self.save()
        best = copy.deepcopy(self.unet)
        if (self.work / BEST).is_file():
            load_checkpoint(self.work / BEST, {"unet": best}, {})
        metrics, _ = self.validate(best)
        summary = {"steps": self.state["step"], "minutes": round(self.state["elapsed_s"] / 60, 1), "device": self.device,
                   "torch_threads": torch.get_num_threads(), "train_crops": int(len(self.train_rows)),
                   "held_out_crops": int(len(self.held_rows)), "config": self.state["config"],
                   "best_step": self.state.get("best", {}).get("step", self.state["step"]), **metrics}
        weights = out / f"enhance_{self.config.tile}.safetensors"
        save_enhance(weights, self.network, best, summary)
        summary["weights"] = str(weights)
        with atomic_path(self.work / "summary.json") as tmp:
            tmp.write_text(json.dumps(summary, indent=2) + "\n")
        return summary


def _trainer(config: EnhanceTrainConfig, work: Path, device: str, progress: StageProgress | None) -> EnhanceTrainer:
    bank = PatchBank(work / "albedo_crops", config.identities, config.crops_per_identity, config.tile, config.seed,
                     config.albedo_size, progress=progress)
    return EnhanceTrainer(config, bank, work, device)


def train_enhance(out_dir: str | Path, work_dir: str | Path, config: EnhanceTrainConfig = EnhanceTrainConfig(),
                  device: str = "auto", resume: bool = False, progress: StageProgress | None = None) -> dict[str, Any]:
    """Train (or, with ``resume``, continue) the detail network within ``config.minutes``; returns the run's summary."""
    work, out = Path(work_dir), Path(out_dir)
    start_run(work, out, CHECKPOINT, resume)
    # making the albedo crops takes the first few percent of the bar (once per run folder), training the rest
    trainer = _trainer(config, work, resolve_device(device), progress.sub(0.0, 0.05) if progress is not None else None)
    progress = progress.sub(0.05, 1.0) if progress is not None else None
    if resume and trainer.resume():
        check_resume(trainer.state["config"], asdict(config), RESUMABLE_CHANGES)
        trainer.state["config"] = json.loads(json.dumps(asdict(config)))
    budget_s = config.minutes * 60
    base_elapsed = trainer.state["elapsed_s"]
    started, last_checkpoint, last_sample = time.monotonic(), time.monotonic(), -math.inf
    with open(work / LOSSES, "a", encoding="utf-8") as log:
        while True:
            elapsed = base_elapsed + time.monotonic() - started
            trainer.state["elapsed_s"] = elapsed
            if elapsed >= budget_s:
                break
            loss = trainer.step()
            trainer.state["step"] += 1
            record = {"step": trainer.state["step"], "elapsed_s": round(elapsed, 1), "loss": round(loss, 5)}
            now = time.monotonic()
            if now - last_sample >= config.sample_every_s:
                record.update(trainer.evaluate_and_sheet())
                last_sample = now
            log.write(json.dumps(record) + "\n")
            log.flush()
            if now - last_checkpoint >= config.checkpoint_every_s:
                trainer.save()
                last_checkpoint = now
            if progress is not None:
                # this session's share of what was left, so the ETA holds after a resume
                progress.update((elapsed - base_elapsed) / max(budget_s - base_elapsed, 1e-6),
                                f"step {trainer.state['step']} ({elapsed / budget_s:.0%} of the run) loss {loss:.4f}")
    return trainer.export(out)


def export_enhance(out_dir: str | Path, work_dir: str | Path, device: str = "auto") -> dict[str, Any]:
    """Write the shipped weights from a run's latest checkpoint without training (e.g. after an interrupted run)."""
    work = Path(work_dir)
    if not (work / CHECKPOINT).is_file():
        raise InputError(f"{work} holds no training checkpoint ({CHECKPOINT}) to export")
    saved = checkpoint_state(work / CHECKPOINT)["config"]
    config = EnhanceTrainConfig(**{**saved, "channels": tuple(saved["channels"])})
    trainer = _trainer(config, work, resolve_device(device), None)
    trainer.resume()
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    return trainer.export(Path(out_dir))
