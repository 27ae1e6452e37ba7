"""GMug's networks: a StyleGAN2-style generator in UV space (mapping + synthesis producing W+), a residual
discriminator and an encoder that initialises W+ from a phone texture.

Compact in the way of NVlabs' stylegan2-ada-pytorch, with its conventions:
equalized learning rate (weights stored at unit variance, scaled at run time),
modulated/demodulated 3x3 convolutions, per-pixel noise, skip toRGB outputs
summed across resolutions, a residual discriminator with minibatch standard
deviation. Two CPU-minded departures: the modulation is applied "non-fused"
(scale the activations, plain conv2d, demodulate the output; the grouped
convolution is slower on CPU), and every layer -- convolution or toRGB -- has
its own style vector, so W+ is ``(N, num_ws, w_dim)`` with
``num_ws = 2 + 3 * (log2(resolution) - 2)``.

Layers are named by resolution (``b4``, ``b8``, ... ``b128``) so that the
parameters at 8x8 and below (mapping, ``b4``, ``b8``) can be frozen by name
when G_phone becomes G_studio (:func:`fine_tune_parameters`).

This module owns the architectures only: no losses, no data, no files.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

SQRT2 = math.sqrt(2.0)


def assert_shape(tensor: torch.Tensor, shape: tuple, name: str = "tensor") -> None:
    """Raise if ``tensor`` does not have ``shape`` (None entries match any size)."""
    if tensor.ndim != len(shape) or any(s is not None and s != t for s, t in zip(shape, tensor.shape)):
        raise ValueError(f"{name} has shape {tuple(tensor.shape)}, expected {shape}")


@dataclass(frozen=True)
class GMugConfig:
    """Everything that decides the shapes of GMug's networks; saved with the weights."""

    resolution: int = 128                         # output texture size (a power of two, >= 8)
    w_dim: int = 256                              # dimension of each style vector in W+
    z_dim: int = 256                              # dimension of the mapping network's input latent
    mapping_layers: int = 4                       # fully connected layers of the mapping network
    channels: dict = field(default_factory=lambda: {4: 256, 8: 256, 16: 192, 32: 128, 64: 64, 128: 32, 256: 16, 512: 16})
    image_channels: int = 3                       # RGB out of G, into D
    encoder_in_channels: int = 4                  # normalised phone RGB + coverage
    encoder_hidden: int = 512                     # width of the encoder's fully connected heads
    version: int = 1                              # bump when the architecture changes incompatibly

    @property
    def log2_res(self) -> int:
        return int(math.log2(self.resolution))

    @property
    def resolutions(self) -> list[int]:
        return [2 ** i for i in range(2, self.log2_res + 1)]

    @property
    def num_ws(self) -> int:
        return 2 + 3 * (self.log2_res - 2)

    def width(self, res: int) -> int:
        return int(self.channels[res] if res in self.channels else self.channels[str(res)])

    def to_dict(self) -> dict:
        data = asdict(self)
        data["channels"] = {str(k): int(v) for k, v in self.channels.items()}
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "GMugConfig":
        data = dict(data)
        data["channels"] = {int(k): int(v) for k, v in data.get("channels", {}).items()} or cls().channels
        return cls(**data)

    def __post_init__(self) -> None:
        if self.resolution < 8 or self.resolution & (self.resolution - 1):
            raise ValueError(f"resolution must be a power of two >= 8, not {self.resolution}")


# ----------------------------------------------------------------------------------------------------------- layers

class EqualLinear(nn.Module):
    def __init__(self, in_features: int, out_features: int,
                 bias_init: float = 0.0,          # initial bias (1 for style affines: start as plain convolutions)
                 lr_multiplier: float = 1.0,      # learning-rate scale (0.01 in the mapping network)
                 activation: bool = False):       # leaky ReLU * sqrt(2) after the layer
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_features, in_features) / lr_multiplier)
        self.bias = nn.Parameter(torch.full((out_features,), float(bias_init)))
        self.weight_gain = lr_multiplier / math.sqrt(in_features)
        self.bias_gain = lr_multiplier
        self.activation = activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.linear(x, self.weight * self.weight_gain, self.bias * self.bias_gain)
        return F.leaky_relu(x, 0.2) * SQRT2 if self.activation else x


class EqualConv2d(nn.Module):
    def __init__(self, in_channels: int, out_channels: int,
                 kernel_size: int = 3,            # odd; 'same' padding
                 bias: bool = True,
                 activation: bool = True,         # leaky ReLU * sqrt(2)
                 down: bool = False):             # halve the resolution (average pool after the conv)
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        self.weight_gain = 1.0 / math.sqrt(in_channels * kernel_size ** 2)
        self.activation, self.down, self.padding = activation, down, kernel_size // 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.conv2d(x, self.weight * self.weight_gain, self.bias, padding=self.padding)
        if self.down:
            x = F.avg_pool2d(x, 2)
        return F.leaky_relu(x, 0.2) * SQRT2 if self.activation else x


class ModulatedConv2d(nn.Module):
    """A convolution whose input channels are scaled by a style and whose output is demodulated (StyleGAN2)."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int,
                 kernel_size: int = 3,
                 demodulate: bool = True,         # False for toRGB
                 up: bool = False):               # double the resolution (bilinear) before the conv
        super().__init__()
        self.affine = EqualLinear(w_dim, in_channels, bias_init=1.0)
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.weight_gain = 1.0 / math.sqrt(in_channels * kernel_size ** 2)
        self.demodulate, self.up, self.padding = demodulate, up, kernel_size // 2

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        styles = self.affine(w)                                              # (N, in)
        weight = self.weight * self.weight_gain
        if self.up:
            x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
        x = F.conv2d(x * styles[:, :, None, None], weight, padding=self.padding)
        if self.demodulate:   # 1 / |w * s| per output channel: (out, in) squared weights times squared styles
            dcoefs = torch.rsqrt(styles.square() @ weight.square().sum((2, 3)).t() + 1e-8)
            x = x * dcoefs[:, :, None, None]
        return x


class SynthesisLayer(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, w_dim: int, resolution: int, up: bool = False):
        super().__init__()
        self.conv = ModulatedConv2d(in_channels, out_channels, w_dim, up=up)
        self.noise_strength = nn.Parameter(torch.zeros(()))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.resolution = resolution

    def forward(self, x: torch.Tensor, w: torch.Tensor, noise: str = "random") -> torch.Tensor:
        x = self.conv(x, w)
        if noise == "random":
            x = x + torch.randn(x.shape[0], 1, self.resolution, self.resolution, device=x.device) * self.noise_strength
        return F.leaky_relu(x + self.bias[None, :, None, None], 0.2) * SQRT2


class ToRGB(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, w_dim: int):
        super().__init__()
        self.conv = ModulatedConv2d(in_channels, out_channels, w_dim, kernel_size=1, demodulate=False)
        self.bias = nn.Parameter(torch.zeros(out_channels))

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        return self.conv(x, w) + self.bias[None, :, None, None]


# -------------------------------------------------------------------------------------------------------- generator

class MappingNetwork(nn.Module):
    """z -> w, broadcast to W+ (used when sampling G; inversion and the encoder work in W+ directly)."""

    def __init__(self, config: GMugConfig):
        super().__init__()
        dims = [config.z_dim] + [config.w_dim] * config.mapping_layers
        self.layers = nn.Sequential(*[EqualLinear(a, b, lr_multiplier=0.01, activation=True) for a, b in zip(dims, dims[1:])])
        self.num_ws = config.num_ws
        self.register_buffer("w_avg", torch.zeros(config.w_dim))

    def forward(self, z: torch.Tensor, truncation: float = 1.0) -> torch.Tensor:
        z = z * torch.rsqrt(z.square().mean(1, keepdim=True) + 1e-8)
        w = self.layers(z)
        if truncation != 1.0:
            w = self.w_avg + (w - self.w_avg) * truncation
        return w[:, None].expand(-1, self.num_ws, -1)


class SynthesisBlock(nn.Module):
    """One resolution: (upsampling conv,) conv, toRGB; each with its own style vector."""

    def __init__(self, config: GMugConfig, resolution: int):
        super().__init__()
        out_channels = config.width(resolution)
        self.resolution = resolution
        if resolution == 4:
            self.const = nn.Parameter(torch.randn(out_channels, 4, 4))
            self.convs = nn.ModuleList([SynthesisLayer(out_channels, out_channels, config.w_dim, 4)])
        else:
            in_channels = config.width(resolution // 2)
            self.convs = nn.ModuleList([SynthesisLayer(in_channels, out_channels, config.w_dim, resolution, up=True),
                                        SynthesisLayer(out_channels, out_channels, config.w_dim, resolution)])
        self.torgb = ToRGB(out_channels, config.image_channels, config.w_dim)
        self.num_ws = len(self.convs) + 1

    def forward(self, x: torch.Tensor | None, image: torch.Tensor | None, ws: torch.Tensor, noise: str):
        if x is None:
            x = self.const[None].expand(ws.shape[0], -1, -1, -1)
        for i, layer in enumerate(self.convs):
            x = layer(x, ws[:, i], noise)
        rgb = self.torgb(x, ws[:, -1])
        image = rgb if image is None else F.interpolate(image, scale_factor=2, mode="bilinear", align_corners=False) + rgb
        return x, image


class SynthesisNetwork(nn.Module):
    def __init__(self, config: GMugConfig):
        super().__init__()
        self.config = config
        self.blocks = nn.ModuleDict({f"b{res}": SynthesisBlock(config, res) for res in config.resolutions})

    def forward(self, ws: torch.Tensor, noise: str = "random") -> torch.Tensor:
        """W+ (N, num_ws, w_dim) -> image (N, 3, R, R), about -1..1. ``noise``: "random" or "none"."""
        assert_shape(ws, (None, self.config.num_ws, self.config.w_dim), "W+")
        x = image = None
        start = 0
        for block in self.blocks.values():
            x, image = block(x, image, ws[:, start:start + block.num_ws], noise)
            start += block.num_ws
        return image


class Generator(nn.Module):
    def __init__(self, config: GMugConfig = GMugConfig()):
        super().__init__()
        self.config = config
        self.mapping = MappingNetwork(config)
        self.synthesis = SynthesisNetwork(config)

    def forward(self, z: torch.Tensor, truncation: float = 1.0, noise: str = "random") -> torch.Tensor:
        return self.synthesis(self.mapping(z, truncation), noise)


def frozen_prefixes(freeze_res: int) -> tuple[str, ...]:
    """Parameter-name prefixes of a Generator at resolutions <= ``freeze_res`` (and the mapping network)."""
    res, prefixes = 4, ["mapping."]
    while res <= freeze_res:
        prefixes.append(f"synthesis.blocks.b{res}.")
        res *= 2
    return tuple(prefixes)


def fine_tune_parameters(generator: Generator, freeze_res: int = 8) -> list[nn.Parameter]:
    """Freeze everything at ``freeze_res`` x ``freeze_res`` and below; return the rest, theta(freeze_res+)."""
    prefixes = frozen_prefixes(freeze_res) if freeze_res >= 4 else ()
    trainable = []
    for name, param in generator.named_parameters():
        frozen = name.startswith(prefixes)
        param.requires_grad_(not frozen)
        if not frozen:
            trainable.append(param)
    return trainable


# -------------------------------------------------------------------------------------------- encoder, discriminator

class ResidualDown(nn.Module):
    """conv, conv + halve; a 1x1 skip, summed and scaled by 1/sqrt(2) (StyleGAN2's residual D block)."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv0 = EqualConv2d(in_channels, in_channels)
        self.conv1 = EqualConv2d(in_channels, out_channels, down=True)
        self.skip = EqualConv2d(in_channels, out_channels, kernel_size=1, bias=False, activation=False, down=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self.skip(x) + self.conv1(self.conv0(x))) / SQRT2


def downsampling_trunk(config: GMugConfig, in_channels: int) -> tuple[EqualConv2d, nn.ModuleDict]:
    """fromRGB at full resolution and residual blocks ``b<res>`` halving it down to 4x4 (shared by E and D)."""
    res = config.resolution
    fromrgb = EqualConv2d(in_channels, config.width(res), kernel_size=1)
    blocks = nn.ModuleDict()
    while res > 4:
        blocks[f"b{res}"] = ResidualDown(config.width(res), config.width(res // 2))
        res //= 2
    return fromrgb, blocks


class Encoder(nn.Module):
    """Normalised phone texture + coverage -> W+, coarse styles from the 4x4 features, finer ones from 8x8 and 16x16.

    The output is an offset added to a learned average W, so that an untrained encoder starts at the mean face.
    """

    def __init__(self, config: GMugConfig):
        super().__init__()
        self.config = config
        hidden = config.encoder_hidden
        self.fromrgb, self.blocks = downsampling_trunk(config, config.encoder_in_channels)
        # which feature map each synthesis block's styles come from: 4x4 for b4/b8, 8x8 for b16/b32, 16x16 above
        self.sources = {r: 4 if r <= 8 else 8 if r <= 32 else 16 for r in config.resolutions}
        self.heads = nn.ModuleDict()
        for source in sorted(set(self.sources.values())):
            count = sum(2 if r == 4 else 3 for r in config.resolutions if self.sources[r] == source)
            features = config.width(source) * 16          # pooled to 4x4 and flattened: keeps the UV layout
            self.heads[str(source)] = nn.Sequential(EqualLinear(features, hidden, activation=True),
                                                    EqualLinear(hidden, count * config.w_dim))
        self.w_avg = nn.Parameter(torch.zeros(config.num_ws, config.w_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = self.config
        assert_shape(x, (None, c.encoder_in_channels, c.resolution, c.resolution), "encoder input")
        features = {}
        x = self.fromrgb(x)
        for name, block in self.blocks.items():
            x = block(x)
            features[int(name[1:]) // 2] = x
        parts = []
        for source, head in self.heads.items():
            pooled = F.adaptive_avg_pool2d(features[int(source)], 4).flatten(1)
            parts.append(head(pooled).view(x.shape[0], -1, c.w_dim))
        return self.w_avg[None] + torch.cat(parts, 1)


class Discriminator(nn.Module):
    """Residual discriminator (StyleGAN2 'resnet'): image -> realness logit; ``features`` for a perceptual loss."""

    def __init__(self, config: GMugConfig, mbstd_group: int = 4):
        super().__init__()
        self.config = config
        self.fromrgb, self.blocks = downsampling_trunk(config, config.image_channels)
        width = config.width(4)
        self.mbstd_group = mbstd_group
        self.conv = EqualConv2d(width + 1, width)
        self.fc = EqualLinear(width * 16, width, activation=True)
        self.out = EqualLinear(width, 1)

    def features(self, image: torch.Tensor) -> list[torch.Tensor]:
        """Activations after fromRGB and each residual block (coarsest last)."""
        c = self.config
        assert_shape(image, (None, c.image_channels, c.resolution, c.resolution), "discriminator input")
        x = self.fromrgb(image)
        out = [x]
        for block in self.blocks.values():
            x = block(x)
            out.append(x)
        return out

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.logits(self.features(image)[-1])

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """The realness logit from the last (4x4) features."""
        n = x.shape[0]
        group = min(self.mbstd_group, n) if n % min(self.mbstd_group, n) == 0 else 1
        y = x.reshape(group, -1, *x.shape[1:])                       # minibatch standard deviation
        y = (y - y.mean(0)).square().mean(0).add(1e-8).sqrt().mean((1, 2, 3))
        y = y.reshape(-1, 1, 1, 1).repeat(group, 1, 4, 4)
        x = self.conv(torch.cat([x, y], 1))
        return self.out(self.fc(x.flatten(1)))
