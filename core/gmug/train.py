"""``studio-avatar train gmug``: GMug's training loop, seeded, resumable, within a wall-clock budget.

The recipe, sized for a CPU (the paper's, with a warm start that a CPU can afford):

1. **G_phone warm start** (``phone_share`` of the budget): an encoder E and
   G_phone's synthesis network are trained together as an autoencoder of
   exposure-normalised phone textures: ``G_phone(E(x)) ~ x`` on the observed
   texels (masked L1 + MS-SSIM). This gives a W+ space of phone textures and
   an encoder that initialises inversion, without from-scratch adversarial
   training.
2. **G_studio** starts as a copy of G_phone with everything at 8x8 and below
   frozen (``freeze_res``); only theta(8+) is fine-tuned, on W+ = E(x) (E and
   G_phone frozen), toward the studio targets (the corpus' true albedo):
   paired reconstruction (L1 + MS-SSIM over the whole layout, on
   ``paired_fraction`` of the samples), non-saturating adversarial loss
   against a residual discriminator with lazy R1, the FaceID distance (dlib's
   ResNet ported to torch) between faces rendered from G_studio's output and
   from the truth, and a perceptual distance on the FaceID network's and the
   discriminator's features.

Data: the ``synth-textures`` corpus, held-out identities excluded; each
batch is flipped across the UV mirror axis at random and gets a random
white-balance error on top of the corpus' own (per-channel log gains).
Every step draws its randomness from (seed, step), so a resumed run
continues exactly. The run folder holds ``checkpoint.safetensors``,
``losses.jsonl`` and ``samples/`` (sheets: phone input | G_phone | G_studio |
truth for held-out samples); the shipped weights go to ``OUT/gmug_<R>.safetensors``.
"""

from __future__ import annotations

import copy
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..atomic import atomic_path
from ..device import resolve_device
from ..errors import InputError
from ..progress import StageProgress
from ..weights import check_resume, checkpoint_state, load_checkpoint, save_checkpoint, start_run
from . import losses as L
from .inputs import downsample_observed, normalise_batch, uv_masks
from .networks import Discriminator, Encoder, GMugConfig, Generator, fine_tune_parameters
from .weights import save_gmug

CHECKPOINT = "checkpoint.safetensors"
PHONE_CHECKPOINT = "checkpoint_phone.safetensors"   # the run at the end of the G_phone warm start (ablations start here)
BEST_STUDIO = "best_studio.safetensors"             # G_studio at its best held-out step so far
RESUMABLE_CHANGES = ("minutes", "checkpoint_every_s", "sample_every_s")   # settings a resumed run may change
LOSSES = "losses.jsonl"
CPU_CHANNELS = {4: 128, 8: 128, 16: 128, 32: 64, 64: 32, 128: 16, 256: 16, 512: 16}


@dataclass(frozen=True)
class TrainConfig:
    """Everything a GMug training run depends on (saved in the checkpoint and the weights' metadata)."""

    resolution: int = 128               # texture size the networks work at
    w_dim: int = 128                    # style vector size
    encoder_hidden: int = 256           # width of the encoder's fully connected heads
    channels: dict = field(default_factory=lambda: dict(CPU_CHANNELS))   # feature maps per resolution
    minutes: float = 100.0              # wall-clock budget of the whole run (both phases)
    phone_share: float = 0.45           # share of the budget for the G_phone warm start
    batch: int = 8
    seed: int = 0
    lr: float = 0.002
    freeze_res: int = 8                 # G_studio keeps G_phone's parameters at this resolution and below
    paired_fraction: float = 1.0        # share of samples whose albedo is used as a paired target
    ssim_weight: float = 0.5
    adversarial_weight: float = 0.05
    faceid_weight: float = 0.2
    perceptual_weight: float = 0.1
    face_every: int = 2                 # FaceID/perceptual terms every this many steps (on face_batch samples)
    face_batch: int = 4
    r1_gamma: float = 1.0
    r1_interval: int = 16               # lazy R1: every this many steps, scaled by it
    white_balance_sigma: float = 0.12   # extra per-channel log-gain augmentation of the phone texture
    held_out_identities: int = 10       # the last identities of the corpus, never trained on
    checkpoint_every_s: float = 120.0
    sample_every_s: float = 300.0

    def network_config(self) -> GMugConfig:
        return GMugConfig(resolution=self.resolution, w_dim=self.w_dim, z_dim=self.w_dim, channels=dict(self.channels),
                          encoder_hidden=self.encoder_hidden)


# ------------------------------------------------------------------------------------------------------------ data

class Corpus:
    """The ``synth-textures`` corpus in memory at the training resolution, split by identity."""

    def __init__(self, folder: str | Path, resolution: int, held_out_identities: int):
        from ..color import srgb_to_linear
        from ..image_io import read_image
        from ..synth.texture_corpus import INDEX_JSONL, sample_files

        folder = Path(folder)
        index = folder / INDEX_JSONL
        if not index.is_file():
            raise InputError(f"{folder} is not a texture corpus (no {INDEX_JSONL}); make one with "
                             "`studio-avatar synth-textures DIR --count N --size 128`")
        records = [json.loads(line) for line in index.read_text().splitlines() if line.strip()]
        if not records:
            raise InputError(f"the texture corpus {folder} is empty")
        identities = sorted({r["identity"]["index"] for r in records})
        held = set(identities[-held_out_identities:]) if len(identities) > held_out_identities else set()
        phone, coverage, albedo, train = [], [], [], []
        for record in records:
            files = sample_files(folder, record["index"])
            linear, cover = downsample_observed(srgb_to_linear(read_image(files["phone"])), read_image(files["coverage"]),
                                                resolution)
            truth = read_image(files["albedo"])
            if truth.shape[0] != resolution:
                import cv2

                truth = cv2.resize(truth, (resolution, resolution), interpolation=cv2.INTER_AREA)
            phone.append(linear.transpose(2, 0, 1))
            coverage.append(cover[None])
            albedo.append(np.clip(truth, 0, 1).transpose(2, 0, 1) * 2 - 1)
            train.append(record["identity"]["index"] not in held)
        self.phone = torch.as_tensor(np.stack(phone), dtype=torch.float16)
        self.coverage = torch.as_tensor(np.stack(coverage), dtype=torch.float16)
        self.albedo = torch.as_tensor(np.stack(albedo), dtype=torch.float16)
        self.train_rows = np.flatnonzero(train)
        self.held_rows = np.flatnonzero(~np.asarray(train))
        self.islands = torch.as_tensor(uv_masks(resolution).islands)[None, None]

    def batch(self, rows: np.ndarray, rng: np.random.Generator | None, white_balance_sigma: float,
              device: str) -> dict[str, torch.Tensor]:
        """Inputs, masks and targets of ``rows``; with ``rng``, flipped and white-balance-augmented at random."""
        phone = self.phone[rows].float()
        coverage = self.coverage[rows].float()
        albedo = self.albedo[rows].float()
        if rng is not None:
            flip = torch.as_tensor(rng.uniform(size=len(rows)) < 0.5)
            phone = torch.where(flip[:, None, None, None], phone.flip(-1), phone)
            coverage = torch.where(flip[:, None, None, None], coverage.flip(-1), coverage)
            albedo = torch.where(flip[:, None, None, None], albedo.flip(-1), albedo)
            gains = torch.as_tensor(np.exp(rng.normal(0, white_balance_sigma, (len(rows), 3, 1, 1))), dtype=torch.float32)
            phone = phone * gains
        x, seen, _ = normalise_batch(phone, coverage)
        islands = self.islands.expand(len(rows), -1, -1, -1)
        return {"input": x.to(device), "seen": seen.to(device), "albedo": albedo.to(device), "islands": islands.to(device)}


# ---------------------------------------------------------------------------------------------------------- training

class Trainer:
    def __init__(self, config: TrainConfig, corpus: Corpus, work: Path, device: str):
        self.config, self.corpus, self.work, self.device = config, corpus, work, device
        net = config.network_config()
        torch.manual_seed(config.seed)
        self.encoder = Encoder(net).to(device)
        self.phone = Generator(net).to(device)
        self.studio = Generator(net).to(device)
        self.discriminator = Discriminator(net).to(device)
        self.opt_phone = torch.optim.Adam(list(self.encoder.parameters()) + list(self.phone.synthesis.parameters()),
                                          lr=config.lr, betas=(0.9, 0.99))
        self.opt_studio: torch.optim.Optimizer | None = None
        self.opt_disc = torch.optim.Adam(self.discriminator.parameters(), lr=config.lr, betas=(0.0, 0.99))
        self.state: dict[str, Any] = {"phase": "phone", "step": 0, "phase_step": 0, "elapsed_s": 0.0, "images": 0,
                                      "config": asdict(config)}
        self._faces = None

    # -- checkpoints
    def modules(self) -> dict[str, torch.nn.Module]:
        return {"encoder": self.encoder, "phone": self.phone, "studio": self.studio, "discriminator": self.discriminator}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        chosen = {"phone": self.opt_phone, "disc": self.opt_disc}
        if self.opt_studio is not None:
            chosen["studio"] = self.opt_studio
        return chosen

    def save(self) -> None:
        save_checkpoint(self.work / CHECKPOINT, self.modules(), self.optimizers(), self.state)

    def resume(self) -> bool:
        path = self.work / CHECKPOINT
        if not path.is_file():
            return False
        if checkpoint_state(path).get("phase") == "studio":
            self.start_studio(copy_weights=False)
        self.state = load_checkpoint(path, self.modules(), self.optimizers())
        return True

    def start_studio(self, copy_weights: bool = True) -> None:
        if copy_weights:
            self.studio.load_state_dict(self.phone.state_dict())
        self.encoder.requires_grad_(False)
        self.phone.requires_grad_(False)
        self.opt_studio = torch.optim.Adam(fine_tune_parameters(self.studio, self.config.freeze_res),
                                           lr=self.config.lr, betas=(0.0, 0.99))
        self.state["phase"], self.state["phase_step"] = "studio", 0

    # -- steps
    def _rng(self) -> np.random.Generator:
        torch.manual_seed(self.config.seed * 1_000_003 + self.state["step"])
        return np.random.default_rng([self.config.seed, self.state["step"]])

    def _train_batch(self, rng: np.random.Generator) -> dict[str, torch.Tensor]:
        rows = rng.choice(self.corpus.train_rows, self.config.batch, replace=len(self.corpus.train_rows) < self.config.batch)
        return self.corpus.batch(rows, rng, self.config.white_balance_sigma, self.device)

    def phone_step(self) -> dict[str, float]:
        c = self.config
        batch = self._train_batch(self._rng())
        reconstruction = self.phone.synthesis(self.encoder(batch["input"]))
        loss = L.reconstruction_loss(reconstruction, batch["input"][:, :3], batch["seen"], c.ssim_weight)
        self.opt_phone.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_phone.step()
        return {"phone_rec": loss.item()}

    def studio_step(self) -> dict[str, float]:
        c = self.config
        rng = self._rng()
        batch = self._train_batch(rng)
        real, step = batch["albedo"], self.state["phase_step"]
        with torch.no_grad():
            ws = self.encoder(batch["input"])
        fake = self.studio.synthesis(ws)
        logs: dict[str, float] = {}

        # discriminator: non-saturating logistic loss, lazy R1 on the real albedos
        disc_loss = L.discriminator_loss(self.discriminator(real), self.discriminator(fake.detach()))
        if step % c.r1_interval == 0:
            r1 = L.r1_penalty(self.discriminator, real)
            disc_loss = disc_loss + c.r1_gamma / 2 * r1 * c.r1_interval
            logs["r1"] = r1.item()
        self.opt_disc.zero_grad(set_to_none=True)
        disc_loss.backward()
        self.opt_disc.step()
        logs["disc"] = disc_loss.item()

        # G_studio's theta(8+)
        fake_features = self.discriminator.features(fake)
        adversarial = L.generator_adversarial_loss(self.discriminator.logits(fake_features[-1]))
        paired = torch.as_tensor(rng.uniform(size=len(real)) < c.paired_fraction, dtype=torch.float32, device=self.device)
        mask = batch["islands"] * paired[:, None, None, None]
        reconstruction = L.reconstruction_loss(fake, real, mask, c.ssim_weight) if paired.any() else fake.new_zeros(())
        loss = c.adversarial_weight * adversarial + reconstruction
        logs.update(adversarial=adversarial.item(), studio_rec=reconstruction.item())
        if step % c.face_every == 0:
            faceid, perceptual = self.face_terms(fake[: c.face_batch], real[: c.face_batch], fake_features)
            loss = loss + c.faceid_weight * faceid + c.perceptual_weight * perceptual
            logs.update(faceid=faceid.item(), perceptual=perceptual.item())
        self.opt_studio.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_studio.step()
        return logs

    def face_terms(self, fake: torch.Tensor, real: torch.Tensor, fake_d_features: list[torch.Tensor]):
        """(FaceID distance, perceptual distance on FaceID and D features) between G_studio's faces and the truth's."""
        if self._faces is None:
            from .face_render import face_renderer
            from .faceid import load_faceid

            self._faces = (face_renderer().to(self.device), load_faceid(self.device))
        renderer, faceid = self._faces
        fake_chips, real_chips = renderer.render(fake), renderer.render(real)
        fake_id = faceid.features(fake_chips)
        with torch.no_grad():
            real_id = faceid.features(real_chips)
        distance = L.faceid_distance(faceid.descriptor(fake_id), faceid.descriptor(real_id))
        with torch.no_grad():
            real_d = self.discriminator.features(real[: len(fake)])
        perceptual = L.feature_distance(fake_id, real_id) + L.feature_distance(
            [f[: len(fake)] for f in fake_d_features[1:]], real_d[1:])
        return distance, perceptual

    # -- evaluation, the best held-out state, sheets
    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        """PSNR of G_studio's albedo on the observed and on the completed face texels of every held-out sample."""
        face = torch.as_tensor(uv_masks(self.config.resolution).face, device=self.device)[None, None]
        sums = {"observed": [0.0, 0], "completed": [0.0, 0]}
        rows = self.corpus.held_rows
        for start in range(0, len(rows), 16):
            batch = self.corpus.batch(rows[start:start + 16], None, 0.0, self.device)
            studio = self.studio.synthesis(self.encoder(batch["input"]), noise="none")
            error = (studio - batch["albedo"]).square().mean(1, keepdim=True) / 4      # -1..1 -> 0..1 units
            seen = batch["seen"] > 0
            for name, mask in (("observed", seen & face), ("completed", ~seen & face)):
                sums[name][0] += float(error[mask].sum())
                sums[name][1] += int(mask.sum())
        return {f"val_psnr_{name}": round(-10 * float(np.log10(total / max(count, 1))), 3) if count else None
                for name, (total, count) in sums.items()}

    def keep_if_best(self, metrics: dict[str, float]) -> None:
        """Remember G_studio when its held-out PSNR (observed + completed) is the best so far (GAN training wanders)."""
        if self.state["phase"] != "studio" or metrics.get("val_psnr_observed") is None:
            return
        score = metrics["val_psnr_observed"] + (metrics.get("val_psnr_completed") or 0.0)
        if score > self.state.get("best", {}).get("score", -float("inf")):
            save_checkpoint(self.work / BEST_STUDIO, {"studio": self.studio}, {}, {})
            self.state["best"] = {"score": score, "step": self.state["step"], **metrics}

    def best_studio(self) -> Generator:
        """G_studio at its best held-out step (the current one if none was recorded)."""
        if not (self.work / BEST_STUDIO).is_file():
            return self.studio
        best = copy.deepcopy(self.studio)
        load_checkpoint(self.work / BEST_STUDIO, {"studio": best}, {})
        return best

    @torch.no_grad()
    def sheet_rows(self, rows: np.ndarray) -> list[np.ndarray]:
        """Per held-out sample: phone input | G_phone(W+) | G_studio(W+) | truth, sRGB 0..1."""
        batch = self.corpus.batch(rows, None, 0.0, self.device)
        ws = self.encoder(batch["input"])
        tiles = [batch["input"][:, :3], self.phone.synthesis(ws, noise="none"), self.studio.synthesis(ws, noise="none"),
                 batch["albedo"]]
        return [np.concatenate([(t[i].cpu().numpy().transpose(1, 2, 0) + 1) / 2 for t in tiles], 1) for i in range(len(rows))]

    def export(self, out: Path) -> dict[str, Any]:
        """Save the checkpoint, a last sample sheet, ``out/gmug_<R>.safetensors`` (G_studio at its best held-out step)
        and ``summary.json``."""
        config = self.config
        self.keep_if_best(self.write_sample_sheet())
        self.save()
        studio = self.best_studio()
        self.studio, final = studio, self.studio
        best_metrics = self.validate()
        self.studio = final
        summary = {"steps": self.state["step"], "images": self.state["images"], "minutes": round(self.state["elapsed_s"] / 60, 1),
                   "device": self.device, "torch_threads": torch.get_num_threads(), "train_samples": int(len(self.corpus.train_rows)),
                   "held_out_samples": int(len(self.corpus.held_rows)), "config": asdict(config),
                   "best_step": self.state.get("best", {}).get("step", self.state["step"]), **best_metrics}
        weights = out / f"gmug_{config.resolution}.safetensors"
        save_gmug(weights, config.network_config(), self.encoder, self.phone.synthesis, studio.synthesis,
                  config.freeze_res, summary)
        summary["weights"] = str(weights)
        with atomic_path(self.work / "summary.json") as tmp:
            tmp.write_text(json.dumps(summary, indent=2) + "\n")
        return summary

    def write_sample_sheet(self) -> dict[str, float]:
        import cv2

        rows = self.corpus.held_rows[:: max(1, len(self.corpus.held_rows) // 6)][:6]
        if len(rows) == 0:
            return {}
        metrics, images = self.validate(), self.sheet_rows(rows)
        sheet = (np.clip(np.concatenate(images, 0), 0, 1) * 255).astype(np.uint8)[..., ::-1]
        folder = self.work / "samples"
        folder.mkdir(exist_ok=True)
        for name in (f"step{self.state['step']:07d}.png", "latest.png"):
            with atomic_path(folder / name) as tmp:
                cv2.imwrite(str(tmp), sheet)
        return metrics


def train_gmug(corpus_dir: str | Path, out_dir: str | Path, work_dir: str | Path, config: TrainConfig = TrainConfig(),
               device: str = "auto", resume: bool = False, progress: StageProgress | None = None) -> dict[str, Any]:
    """Train (or, with ``resume``, continue) GMug within ``config.minutes``; returns the run's summary."""
    work, out = Path(work_dir), Path(out_dir)
    start_run(work, out, CHECKPOINT, resume)
    device = resolve_device(device)
    corpus = Corpus(corpus_dir, config.resolution, config.held_out_identities)
    trainer = Trainer(config, corpus, work, device)
    if resume and trainer.resume():
        check_resume(trainer.state["config"], asdict(config), RESUMABLE_CHANGES)
        trainer.state["config"] = asdict(config)
    budget_s = config.minutes * 60
    phone_budget_s = budget_s * config.phone_share
    started, last_checkpoint, last_sample = time.monotonic(), time.monotonic(), -float("inf")
    base_elapsed = trainer.state["elapsed_s"]
    log_path = work / LOSSES
    with open(log_path, "a", encoding="utf-8") as log:
        while True:
            elapsed = base_elapsed + time.monotonic() - started
            trainer.state["elapsed_s"] = elapsed
            if elapsed >= budget_s:
                break
            if trainer.state["phase"] == "phone" and elapsed >= phone_budget_s:
                save_checkpoint(work / PHONE_CHECKPOINT, trainer.modules(), trainer.optimizers(), trainer.state)
                trainer.start_studio()
            step_logs = trainer.phone_step() if trainer.state["phase"] == "phone" else trainer.studio_step()
            trainer.state["step"] += 1
            trainer.state["phase_step"] += 1
            trainer.state["images"] += config.batch
            now = time.monotonic()
            record = {"step": trainer.state["step"], "phase": trainer.state["phase"], "elapsed_s": round(elapsed, 1),
                      **{k: round(v, 5) for k, v in step_logs.items()}}
            if now - last_sample >= config.sample_every_s:
                metrics = trainer.write_sample_sheet()
                trainer.keep_if_best(metrics)
                record.update(metrics)
                last_sample = now
            log.write(json.dumps(record) + "\n")
            log.flush()
            if now - last_checkpoint >= config.checkpoint_every_s:
                trainer.save()
                last_checkpoint = now
            if progress is not None:
                loss = step_logs.get("phone_rec", step_logs.get("studio_rec", 0.0))
                # this session's share of what was left, so the ETA holds after a resume; the run's share in the text
                progress.update((elapsed - base_elapsed) / max(budget_s - base_elapsed, 1e-6),
                                f"{trainer.state['phase']} step {trainer.state['step']} ({elapsed / budget_s:.0%} of the run) "
                                f"loss {loss:.4f}")
    if trainer.state["phase"] == "phone":
        trainer.start_studio()
    return trainer.export(out)


def export_gmug(corpus_dir: str | Path, out_dir: str | Path, work_dir: str | Path, device: str = "auto") -> dict[str, Any]:
    """Write the shipped weights from a run's latest checkpoint without training (e.g. after an interrupted run)."""
    work = Path(work_dir)
    if not (work / CHECKPOINT).is_file():
        raise InputError(f"{work} holds no training checkpoint ({CHECKPOINT}) to export")
    saved = checkpoint_state(work / CHECKPOINT)["config"]
    config = TrainConfig(**{**saved, "channels": {int(k): v for k, v in saved["channels"].items()}})
    trainer = Trainer(config, Corpus(corpus_dir, config.resolution, config.held_out_identities), work, resolve_device(device))
    trainer.resume()
    if trainer.state["phase"] == "phone":
        trainer.start_studio()
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    return trainer.export(Path(out_dir))
