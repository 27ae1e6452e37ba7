"""W+ inversion of a phone texture into G_phone, and GMug's albedo G_studio(W+).

The encoder gives the starting W+; a few Adam steps then lower the masked
reconstruction loss of G_phone(W+) against the observed texels, with a pull
back toward the encoder's W+ so the code stays where G_studio was trained.
This module owns that optimisation; it reads and writes no files.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..progress import StageProgress
from . import losses as L
from .inputs import network_input, network_to_srgb
from .networks import assert_shape
from .weights import GMugModels


@dataclass(frozen=True)
class InversionParams:
    steps: int = 40                 # Adam steps on W+ after the encoder (0: the encoder's W+ alone)
    lr: float = 0.02
    anchor_weight: float = 0.5      # weight of the mean squared distance to the encoder's W+
    ssim_weight: float = 0.5


def invert(models: GMugModels, x: torch.Tensor, seen: torch.Tensor, params: InversionParams = InversionParams(),
           progress: StageProgress | None = None) -> tuple[torch.Tensor, dict[str, float]]:
    """W+ (N, num_ws, w_dim) of inputs ``x`` (N, 4, R, R) with observed masks ``seen`` (N, 1, R, R)."""
    c = models.config
    assert_shape(x, (None, c.encoder_in_channels, c.resolution, c.resolution), "GMug input")
    assert_shape(seen, (x.shape[0], 1, c.resolution, c.resolution), "observed mask")
    target = x[:, :3]

    def loss_of(ws: torch.Tensor, anchor: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        reconstruction = L.reconstruction_loss(models.phone(ws, noise="none"), target, seen, params.ssim_weight)
        return reconstruction, reconstruction + params.anchor_weight * (ws - anchor).square().mean()

    with torch.no_grad():
        anchor = models.encoder(x)
        initial = float(loss_of(anchor, anchor)[0])
    ws = anchor.clone().requires_grad_(True)
    optimizer = torch.optim.Adam([ws], lr=params.lr)
    for step in range(params.steps):
        with torch.enable_grad():
            _, total = loss_of(ws, anchor)
            optimizer.zero_grad(set_to_none=True)
            total.backward()
        optimizer.step()
        if progress is not None:
            progress.update((step + 1) / params.steps, f"inverting into W+ ({step + 1}/{params.steps})")
    with torch.no_grad():
        final = float(loss_of(ws, anchor)[0])
    return ws.detach(), {"inversion_loss_encoder": round(initial, 5), "inversion_loss_final": round(final, 5)}


def gmug_albedo(models: GMugModels, phone_srgb: np.ndarray, coverage: np.ndarray,
                params: InversionParams = InversionParams(), progress: StageProgress | None = None
                ) -> tuple[np.ndarray, dict[str, Any]]:
    """(R, R, 3) sRGB albedo G_studio(W+) of a phone texture (any size, sRGB 0..1) and its coverage."""
    device = next(models.studio.parameters()).device
    x, seen, gain = network_input(phone_srgb, coverage, models.config.resolution)
    ws, info = invert(models, x.to(device), seen.to(device), params, progress)
    with torch.no_grad():
        albedo = models.studio(ws, noise="none")[0].cpu().numpy()
    return network_to_srgb(albedo), {**info, "exposure_gain": round(gain, 4)}
