"""GMug ablation, in the way of the paper's tables, on held-out corpus samples.

Usage: .venv/bin/python bench/gmug_ablation.py --corpus CORPUS --phone-checkpoint RUN/checkpoint_phone.safetensors
           [--minutes 5] [--unet-minutes 5] [--shipped weights/gmug_128.safetensors]

Every GMug variant starts from the same end of the G_phone warm start (the
training run's ``checkpoint_phone.safetensors``) and fine-tunes G_studio for
the same wall-clock budget on this machine:

* ``theta(8+)``: the paper's choice, everything at 8x8 and below frozen;
* ``full``: every synthesis parameter trainable;
* ``theta(16+)``: 16x16 frozen as well;
* ``theta(8+) no FaceID``: the FaceID loss off.

A plain supervised baseline -- a small U-Net from phone texture + coverage
to albedo, L1 + MS-SSIM on the same batches -- gets ``--unet-minutes`` from
scratch. The shipped weights (``--shipped``) are scored alongside. Scores on
the held-out identities: PSNR of the albedo on observed and on completed face
texels, the FaceID distance (1 - cosine of dlib's descriptor, our torch port)
between faces rendered from the output and from the truth, and the KID
(unbiased polynomial-kernel MMD^2) between the descriptors of all outputs and
all truths. Writes ``bench/results/gmug_ablation.md`` and a line in
``bench/results.jsonl``.
"""

import argparse
import json
import platform
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))
from devpath import load_package  # noqa: E402

load_package()
from studio_avatar.core.gmug import losses as L  # noqa: E402
from studio_avatar.core.gmug.face_render import face_renderer  # noqa: E402
from studio_avatar.core.gmug.faceid import load_faceid  # noqa: E402
from studio_avatar.core.gmug.inputs import uv_masks  # noqa: E402
from studio_avatar.core.gmug.train import Corpus, Trainer, TrainConfig  # noqa: E402
from studio_avatar.core.gmug.weights import load_gmug  # noqa: E402
from studio_avatar.core.weights import load_checkpoint  # noqa: E402
from track_fit import source_version  # noqa: E402

BENCH = Path(__file__).resolve().parent
RESULTS = BENCH / "results"
WORK = BENCH / "work" / "gmug_ablation"
VARIANTS = {"theta(8+)": {"freeze_res": 8}, "full": {"freeze_res": 0}, "theta(16+)": {"freeze_res": 16},
            "theta(8+) no FaceID": {"freeze_res": 8, "faceid_weight": 0.0}}


class UNet(torch.nn.Module):
    """The supervised baseline: 4 levels, GroupNorm, skip connections, phone + coverage -> albedo (-1..1)."""

    def __init__(self, widths=(32, 64, 128, 256)):
        super().__init__()

        def block(a, b):
            return torch.nn.Sequential(torch.nn.Conv2d(a, b, 3, padding=1), torch.nn.GroupNorm(8, b), torch.nn.SiLU(),
                                       torch.nn.Conv2d(b, b, 3, padding=1), torch.nn.GroupNorm(8, b), torch.nn.SiLU())
        self.down = torch.nn.ModuleList([block(4 if i == 0 else widths[i - 1], w) for i, w in enumerate(widths)])
        self.up = torch.nn.ModuleList([block(widths[i] + widths[i - 1], widths[i - 1]) for i in range(len(widths) - 1, 0, -1)])
        self.out = torch.nn.Conv2d(widths[0], 3, 1)

    def forward(self, x):
        skips = []
        for i, block in enumerate(self.down):
            x = block(x if i == 0 else torch.nn.functional.avg_pool2d(x, 2))
            skips.append(x)
        for block, skip in zip(self.up, reversed(skips[:-1])):
            x = block(torch.cat([torch.nn.functional.interpolate(x, scale_factor=2, mode="bilinear"), skip], 1))
        return self.out(x)


def kid(a: np.ndarray, b: np.ndarray) -> float:
    """Unbiased MMD^2 with the kernel (x.y / d + 1)^3 (the KID of Binkowski et al.)."""
    d = a.shape[1]
    k = lambda x, y: (x @ y.T / d + 1) ** 3  # noqa: E731
    kaa, kbb, kab = k(a, a), k(b, b), k(a, b)
    m, n = len(a), len(b)
    return float((kaa.sum() - np.trace(kaa)) / (m * (m - 1)) + (kbb.sum() - np.trace(kbb)) / (n * (n - 1)) - 2 * kab.mean())


@torch.no_grad()
def score(predict, corpus: Corpus, resolution: int) -> dict:
    """PSNR observed/completed on the face, FaceID distance and KID over the held-out samples."""
    renderer, faceid = face_renderer(), load_faceid()
    face = torch.as_tensor(uv_masks(resolution).face)[None, None]
    errors_obs, errors_comp, out_desc, true_desc, distances = [], [], [], [], []
    rows = corpus.held_rows
    for start in range(0, len(rows), 8):
        batch = corpus.batch(rows[start:start + 8], None, 0.0, "cpu")
        estimate, truth = predict(batch).clamp(-1, 1), batch["albedo"]
        error = (estimate - truth).square().mean(1, keepdim=True) / 4
        seen = batch["seen"] > 0
        errors_obs.append(error[seen & face])
        errors_comp.append(error[~seen & face])
        a, b = faceid(renderer.render(estimate)), faceid(renderer.render(truth))
        distances.append(1 - torch.nn.functional.cosine_similarity(a, b, dim=1))
        out_desc.append(a.numpy())
        true_desc.append(b.numpy())
    psnr = lambda errors: float(-10 * torch.log10(torch.cat(errors).mean()))  # noqa: E731
    return {"psnr_observed": psnr(errors_obs), "psnr_completed": psnr(errors_comp),
            "faceid_distance": float(torch.cat(distances).mean()),
            "kid_faceid": kid(np.concatenate(out_desc).astype(np.float64), np.concatenate(true_desc).astype(np.float64))}


def fine_tune(name, changes, phone_checkpoint, corpus, minutes, base: TrainConfig):
    config = replace(base, **changes)
    trainer = Trainer(config, corpus, WORK / name.replace(" ", "_"), "cpu")
    load_checkpoint(phone_checkpoint, {"encoder": trainer.encoder, "phone": trainer.phone}, {})
    trainer.start_studio()
    started = time.monotonic()
    while time.monotonic() - started < minutes * 60:
        trainer.studio_step()
        trainer.state["step"] += 1
        trainer.state["phase_step"] += 1
    trainer.encoder.eval()

    def predict(batch):
        return trainer.studio.synthesis(trainer.encoder(batch["input"]), noise="none")
    return predict, trainer.state["phase_step"]


def train_unet(corpus, minutes, base: TrainConfig):
    torch.manual_seed(base.seed)
    unet = UNet()
    optimizer = torch.optim.Adam(unet.parameters(), lr=1e-3)
    started, step = time.monotonic(), 0
    while time.monotonic() - started < minutes * 60:
        rng = np.random.default_rng([base.seed, step])
        batch = corpus.batch(rng.choice(corpus.train_rows, base.batch), rng, base.white_balance_sigma, "cpu")
        loss = L.reconstruction_loss(unet(batch["input"]), batch["albedo"], batch["islands"], base.ssim_weight)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        step += 1
    unet.eval()
    return (lambda batch: unet(batch["input"])), step


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", required=True)
    parser.add_argument("--phone-checkpoint", required=True)
    parser.add_argument("--minutes", type=float, default=5.0, help="G_studio fine-tuning budget per variant")
    parser.add_argument("--unet-minutes", type=float, default=5.0)
    parser.add_argument("--shipped", default=str(BENCH.parent / "weights" / "gmug_128.safetensors"))
    parser.add_argument("--only", nargs="*", default=None)
    args = parser.parse_args()

    base = TrainConfig()
    corpus = Corpus(args.corpus, base.resolution, base.held_out_identities)
    rows = []
    if Path(args.shipped).is_file():
        models = load_gmug(args.shipped)
        rows.append(("shipped GMug", models.info.get("steps"), score(
            lambda b: models.studio(models.encoder(b["input"]), noise="none"), corpus, base.resolution)))
    for name, changes in VARIANTS.items():
        if args.only and name not in args.only:
            continue
        print(f"== {name}: {args.minutes} min", flush=True)
        predict, steps = fine_tune(name, changes, args.phone_checkpoint, corpus, args.minutes, base)
        rows.append((name, steps, score(predict, corpus, base.resolution)))
        print(f"   {rows[-1][2]}", flush=True)
    if not args.only or "U-Net" in args.only:
        print(f"== U-Net baseline: {args.unet_minutes} min", flush=True)
        predict, steps = train_unet(corpus, args.unet_minutes, base)
        rows.append(("U-Net baseline", steps, score(predict, corpus, base.resolution)))
        print(f"   {rows[-1][2]}", flush=True)

    md = ["# GMug ablation", "",
          f"`bench/gmug_ablation.py` at {source_version()}, {time.strftime('%Y-%m-%d')}, {platform.machine()} CPU: "
          f"{len(corpus.held_rows)} held-out corpus samples ({base.held_out_identities} identities never trained on). "
          f"Variants fine-tune G_studio for {args.minutes} min each from the same G_phone warm start; the U-Net gets "
          f"{args.unet_minutes} min from scratch; 'shipped' is the full training run. PSNR on sRGB albedo over face texels.",
          "", "| model | steps | PSNR obs | PSNR compl | FaceID dist | KID (FaceID) |", "|---|---|---|---|---|---|"]
    for name, steps, values in rows:
        md.append(f"| {name} | {steps} | {values['psnr_observed']:.2f} | {values['psnr_completed']:.2f} | "
                  f"{values['faceid_distance']:.4f} | {values['kid_faceid']:.4f} |")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "gmug_ablation.md").write_text("\n".join(md) + "\n")
    with open(BENCH / "results.jsonl", "a") as handle:
        handle.write(json.dumps({"bench": "gmug_ablation", "date": time.strftime("%Y-%m-%d"), "source": source_version(),
                                 "minutes": args.minutes, "unet_minutes": args.unet_minutes,
                                 "rows": [{"model": n, "steps": s, **v} for n, s, v in rows]}) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
