"""GMug's losses: masked reconstruction (L1 + MS-SSIM), the non-saturating GAN loss with lazy R1, and the
FaceID and perceptual terms on faces rendered from the UV textures.

All images are (N, C, H, W) tensors in GMug's value range (about -1..1);
masks are (N, 1, H, W) weights in 0..1. This module owns loss arithmetic only:
the networks come from ``networks.py`` and ``faceid.py``, the face renders
from ``face_render.py``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .networks import assert_shape


def masked_l1(estimate: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean absolute error over the mask's weight (per sample, then averaged)."""
    assert_shape(mask, (estimate.shape[0], 1, *estimate.shape[2:]), "mask")
    weight = mask.sum((1, 2, 3)).clamp_min(1e-6) * estimate.shape[1]
    return ((estimate - target).abs() * mask).sum((1, 2, 3)).div(weight).mean()


def _blur(x: torch.Tensor, window: int) -> torch.Tensor:
    """Local mean over a ``window`` x ``window`` box (avg_pool: convolutions with one channel are slow on CPU)."""
    return F.avg_pool2d(x, window, stride=1, padding=window // 2, count_include_pad=False)


def masked_ssim_terms(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor, window: int = 7,
                      value_range: float = 2.0) -> tuple[torch.Tensor, torch.Tensor]:
    """(luminance * contrast-structure, contrast-structure) SSIM maps averaged over the mask, per sample.

    Local statistics are normalised by the mask's own blur, so unseen texels (zero weight) neither count
    nor darken their neighbours' means.
    """
    c1, c2 = (0.01 * value_range) ** 2, (0.03 * value_range) ** 2
    weight = _blur(mask, window).clamp_min(1e-4)
    mu_a, mu_b = _blur(a * mask, window) / weight, _blur(b * mask, window) / weight
    var_a = (_blur(a * a * mask, window) / weight - mu_a.square()).clamp_min(0)
    var_b = (_blur(b * b * mask, window) / weight - mu_b.square()).clamp_min(0)
    cov = _blur(a * b * mask, window) / weight - mu_a * mu_b
    cs = (2 * cov + c2) / (var_a + var_b + c2)
    lum = (2 * mu_a * mu_b + c1) / (mu_a.square() + mu_b.square() + c1)
    inside = (mask > 0.5).float()
    count = inside.sum((1, 2, 3)).clamp_min(1) * a.shape[1]
    return (lum * cs * inside).sum((1, 2, 3)) / count, (cs * inside).sum((1, 2, 3)) / count


def masked_ms_ssim_loss(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor, scales: int = 3) -> torch.Tensor:
    """1 - MS-SSIM over ``scales`` octaves (equal weights; contrast-structure at the finer scales, full SSIM at the
    coarsest), averaged over the batch. Masked pixels (weight < 0.5) do not count."""
    values = []
    for scale in range(scales):
        ssim, cs = masked_ssim_terms(a, b, mask)
        values.append((ssim if scale == scales - 1 else cs).clamp_min(1e-4))
        if scale < scales - 1:
            a, b = F.avg_pool2d(a, 2), F.avg_pool2d(b, 2)
            mask = F.avg_pool2d(mask, 2)
    return 1 - torch.stack(values, 0).prod(0).pow(1.0 / scales).mean()


def reconstruction_loss(estimate: torch.Tensor, target: torch.Tensor, mask: torch.Tensor,
                        ssim_weight: float = 0.5) -> torch.Tensor:
    """Masked L1 plus ``ssim_weight`` times masked 1 - MS-SSIM."""
    return masked_l1(estimate, target, mask) + ssim_weight * masked_ms_ssim_loss(estimate, target, mask)


# ---------------------------------------------------------------------------------------------------------- GAN terms

def generator_adversarial_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """Non-saturating: -log sigmoid(D(G))."""
    return F.softplus(-fake_logits).mean()


def discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    return F.softplus(fake_logits).mean() + F.softplus(-real_logits).mean()


def r1_penalty(discriminator: torch.nn.Module, real: torch.Tensor) -> torch.Tensor:
    """sum |grad_x D(x)|^2 on real images, per sample, averaged (multiply by gamma / 2 and the lazy interval)."""
    real = real.detach().requires_grad_(True)
    logits = discriminator(real)
    (grad,) = torch.autograd.grad(logits.sum(), real, create_graph=True)
    return grad.square().sum((1, 2, 3)).mean()


# ----------------------------------------------------------------------------------------------------- face terms

def faceid_distance(descriptors: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """1 - cosine similarity of face descriptors, averaged."""
    return (1 - F.cosine_similarity(descriptors, reference.detach(), dim=1)).mean()


def feature_distance(features: list[torch.Tensor], reference: list[torch.Tensor]) -> torch.Tensor:
    """Mean over layers of the L1 distance between channel-normalised activations (a perceptual distance)."""
    total = features[0].new_zeros(())
    for f, r in zip(features, reference):
        f = f / (f.square().mean(1, keepdim=True).sqrt() + 1e-6)
        r = r.detach() / (r.detach().square().mean(1, keepdim=True).sqrt() + 1e-6)
        total = total + (f - r).abs().mean()
    return total / len(features)
