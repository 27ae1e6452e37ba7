"""FaceID: dlib's 128-d face recognition ResNet as a frozen, differentiable torch network.

This module owns the reader of dlib's binary serialization of that network
(``dlib_face_recognition_resnet_model_v1.dat`` from the PyPI package
``face-recognition-models``, found through its data folder; the package's
``__init__`` is never imported, it needs setuptools' ``pkg_resources``), the
torch port ``FaceIDNet`` of its architecture (``anet_type`` of dlib's
dnn_face_recognition_ex.cpp), and ``load_faceid``, which builds the network
once per process and device.

The file is dlib's ``serialize`` of the whole ``loss_metric`` network: every
layer writes its version, then (recursively) the layers below it, then its own
details, so all the versions come first, then the input layer, then the
layers' details from the input up, each followed by that layer's training
state (flags and three usually empty tensors). Integers are a control byte
(byte count in the low nibble, sign in the high bit) and that many little-
endian bytes; floats are a mantissa and a power-of-two exponent, both such
integers; tensors are a version, four integer dimensions and raw little-endian
float32s. Tag and skip layers write only their version.

``FaceIDNet`` takes (N, 3, 150, 150) RGB in 0..1, the 150x150 face chip of
``dlib.get_face_chip(image, landmarks, size=150, padding=0.25)`` divided by
255, and returns the (N, 128) descriptor as dlib computes it: dlib's input
layer maps a uint8 pixel p to (p - mean) / 256 with the per-channel mean stored
in the file (about 122.8, 117.0, 104.3), so the network sees
(255 x - mean) / 256; the descriptor is the last layer's output, not
normalised (its norm is about 1.4 to 1.6 on real faces). Its batch-norms were
folded into per-channel affines before saving; we fold those into the
convolutions.
"""

from __future__ import annotations

import functools
import importlib.util
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import StudioAvatarError

MODEL_FILE = "dlib_face_recognition_resnet_model_v1.dat"
INSTALL_HINT = "pip install --force-reinstall face-recognition-models==0.3.0"
CHIP_SIZE = 150                        # dlib's input_rgb_image_sized<150>
DESCRIPTOR_SIZE = 128
# per resolution level, input to output (dlib's alevel4 .. alevel0): filters, residual blocks, whether the first halves the size
LEVELS = ((32, 3, False), (64, 4, True), (128, 3, True), (256, 3, True), (256, 1, True))


class FaceIDModelError(StudioAvatarError):
    """dlib's face recognition model file is not installed or is damaged."""


class _FormatError(Exception):
    """The model file does not hold what dlib writes for this network; the text says where it breaks."""


@dataclass(frozen=True)
class DlibLayer:
    """One computational layer as dlib serialized it."""

    kind: str                               # dlib's tag for the layer: "con_4", "affine_", "relu_", "max_pool_2", ...
    arrays: dict[str, np.ndarray]           # con_: weight (out, in, kh, kw), bias; affine_: scale, shift; fc_2: weight (in, out)
    geometry: tuple[int, ...] = ()          # con_ and pools: rows, cols, stride y, stride x, padding y, padding x


@dataclass(frozen=True)
class DlibNetwork:
    """The parsed file: the input layer's per-channel mean (0..255 units) and the layers from the input up."""

    input_mean: np.ndarray
    layers: tuple[DlibLayer, ...]


class _Stream:
    """A cursor over dlib's serialization (dlib/serialize.h, dlib/dnn/tensor.h)."""

    def __init__(self, data: bytes):
        self.data, self.pos = data, 0

    def take(self, count: int) -> bytes:
        if self.pos + count > len(self.data):
            raise _FormatError(f"truncated at byte {len(self.data)}")
        self.pos += count
        return self.data[self.pos - count:self.pos]

    def int(self) -> int:
        control = self.take(1)[0]
        value = int.from_bytes(self.take(control & 0x0F), "little")
        return -value if control & 0x80 else value

    def float(self) -> float:
        mantissa, exponent = self.int(), self.int()
        if exponent >= 32000:              # dlib's codes for inf / -inf / nan
            raise _FormatError(f"non-finite number before byte {self.pos}")
        return math.ldexp(mantissa, exponent)

    def string(self) -> str:
        return self.take(self.int()).decode("latin-1")

    def expect(self, value: object, what: str) -> None:
        found = self.string() if isinstance(value, str) else self.int()
        if found != value:
            raise _FormatError(f"{what} is {found!r}, expected {value!r} (before byte {self.pos})")

    def tensor(self) -> np.ndarray:
        self.expect(2, "a tensor's version")
        shape = tuple(self.int() for _ in range(4))
        return np.frombuffer(self.take(4 * math.prod(shape)), "<f4").reshape(shape)

    def alias(self) -> tuple[int, ...]:
        self.expect(1, "an alias tensor's version")
        return tuple(self.int() for _ in range(4))

    def layer_state(self) -> None:
        """Skip what add_layer writes after a layer's details: three bool flags and three tensors."""
        if not set(self.take(3)) <= set(b"01"):
            raise _FormatError(f"bad layer flags before byte {self.pos}")
        for _ in range(3):
            self.tensor()


def _read_layer(stream: _Stream, kind: str) -> DlibLayer:
    if kind == "con_4":
        params = stream.tensor().ravel()
        filters, *geometry = (stream.int() for _ in range(7))
        weight_shape, _ = stream.alias(), stream.alias()          # filters, biases
        for _ in range(4):                 # learning-rate and weight-decay multipliers
            stream.float()
        n = math.prod(weight_shape)
        if weight_shape[0] != filters or weight_shape[2:] != tuple(geometry[:2]) or params.size != n + filters:
            raise _FormatError(f"inconsistent convolution {weight_shape} with {params.size} parameters")
        return DlibLayer(kind, {"weight": params[:n].reshape(weight_shape), "bias": params[n:]}, tuple(geometry))
    if kind == "affine_":
        params = stream.tensor().ravel()
        gamma_shape, _ = stream.alias(), stream.alias()
        mode, n = stream.int(), math.prod(gamma_shape)
        if mode != 0 or params.size != 2 * n:  # 0: CONV_MODE, one scale and shift per channel
            raise _FormatError(f"affine layer of mode {mode} with {params.size} parameters")
        return DlibLayer(kind, {"scale": params[:n], "shift": params[n:]})
    if kind in ("max_pool_2", "avg_pool_2"):
        return DlibLayer(kind, {}, tuple(stream.int() for _ in range(6)))
    if kind == "fc_2":
        outputs, inputs = stream.int(), stream.int()
        params = stream.tensor().ravel()
        stream.alias(), stream.alias()                             # weights, biases
        stream.expect(1, "the fc layer's bias mode (1: no bias)")
        for _ in range(4):
            stream.float()
        if params.size != inputs * outputs:
            raise _FormatError(f"fc layer {inputs}x{outputs} with {params.size} parameters")
        return DlibLayer(kind, {"weight": params.reshape(inputs, outputs)})
    if kind in ("relu_", "add_prev_"):
        return DlibLayer(kind, {})
    raise _FormatError(f"unexpected layer {kind!r} before byte {stream.pos}")


def parse_dlib_network(data: bytes) -> DlibNetwork:
    """The layers of a serialized dlib ``loss_metric`` network of the layer types ``FaceIDNet`` uses."""
    stream = _Stream(data)
    stream.expect(1, "the loss layer's version")
    stream.expect("loss_metric_2", "the loss layer")
    stream.float(), stream.float()         # margin and distance threshold, training only
    versions = []                          # add_layer writes 2 (3 right above the input), tag and skip layers 1
    while not versions or versions[-1] != 3:
        versions.append(stream.int())
        if versions[-1] not in (1, 2, 3):
            raise _FormatError(f"layer version {versions[-1]} before byte {stream.pos}")
    stream.expect("input_rgb_image_sized", "the input layer")
    input_mean = np.array([stream.float() for _ in range(3)], np.float64)
    stream.expect(CHIP_SIZE, "the input rows"), stream.expect(CHIP_SIZE, "the input columns")
    layers = []
    while stream.pos < len(data):
        layers.append(_read_layer(stream, stream.string()))
        stream.layer_state()
        if len(layers) == 1:               # the layer on the input also writes its sample expansion factor
            stream.int()
    if len(layers) != versions.count(2) + 1:
        raise _FormatError(f"{len(layers)} layers but {versions.count(2) + 1} layer headers")
    return DlibNetwork(input_mean, tuple(layers))


def model_path() -> str:
    """Where face-recognition-models installed dlib's face recognition network."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise FaceIDModelError(f"the FaceID loss needs dlib's face recognition model: {INSTALL_HINT}")
    return os.path.join(spec.submodule_search_locations[0], "models", MODEL_FILE)


@functools.lru_cache(maxsize=None)
def read_dlib_network(path: str) -> DlibNetwork:
    """``parse_dlib_network`` of the file at ``path``, parsed once per process."""
    try:
        with open(path, "rb") as file:
            data = file.read()
    except OSError as error:
        raise FaceIDModelError(f"cannot read dlib's face recognition model {path} ({error.strerror}): {INSTALL_HINT}") from None
    try:
        return parse_dlib_network(data)
    except _FormatError as error:
        raise FaceIDModelError(f"dlib's face recognition model {path} is damaged ({error}): {INSTALL_HINT}") from None


def _add_zero_padded(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """a + b over the larger of their (C, H, W), the smaller zero-padded at the end, as dlib's add_prev_ does."""
    size = [max(p, q) for p, q in zip(a.shape[1:], b.shape[1:])]

    def pad(t: torch.Tensor) -> torch.Tensor:
        return F.pad(t, (0, size[2] - t.shape[3], 0, size[1] - t.shape[2], 0, size[0] - t.shape[1]))

    return pad(a) + pad(b)


class _Residual(torch.nn.Module):
    """dlib's ``ares`` / ``ares_down``: relu(two 3x3 convolutions + the input, 2x2-average-pooled when downsampling)."""

    def __init__(self, channels_in: int, channels: int, down: bool):
        super().__init__()
        stride, padding = (2, 0) if down else (1, 1)   # dlib pads 3x3 convolutions only at stride 1
        self.down = down
        self.conv1 = torch.nn.Conv2d(channels_in, channels, 3, stride, padding)
        self.conv2 = torch.nn.Conv2d(channels, channels, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = F.avg_pool2d(x, 2) if self.down else x
        # at odd sizes the strided convolution comes out one smaller than the pooled input: dlib zero-pads it
        return F.relu(_add_zero_padded(self.conv2(F.relu(self.conv1(x))), shortcut))


class FaceIDNet(torch.nn.Module):
    """dlib's face recognition ResNet: (N, 3, 150, 150) RGB face chips in 0..1 -> (N, 128) descriptors.

    Frozen (no parameter requires grad) and in eval mode, differentiable with
    respect to its input. See the module docstring for the input convention.
    """

    def __init__(self, network: DlibNetwork):
        super().__init__()
        self.register_buffer("input_offset", torch.tensor(network.input_mean / 256.0, dtype=torch.float32).view(1, 3, 1, 1))
        self.stem = torch.nn.Conv2d(3, 32, 7, 2, 0)
        levels, channels = [], 32
        for filters, blocks, down in LEVELS:
            levels.append(torch.nn.Sequential(*(_Residual(channels if i == 0 else filters, filters, down and i == 0)
                                                for i in range(blocks))))
            channels = filters
        self.levels = torch.nn.ModuleList(levels)
        self.fc = torch.nn.Linear(channels, DESCRIPTOR_SIZE, bias=False)
        try:
            self._load(iter(network.layers))
        except _FormatError as error:
            raise FaceIDModelError(f"dlib's face recognition model does not match its architecture ({error}): {INSTALL_HINT}") from None
        self.requires_grad_(False)
        self.eval()

    def _load(self, layers: Iterator[DlibLayer]) -> None:
        """Copy the layers, in dlib's order from the input up, into the modules; each affine folds into its convolution."""
        def take(kind: str, geometry: tuple[int, ...] | None = None) -> DlibLayer:
            layer = next(layers, None)
            if layer is None or layer.kind != kind or geometry not in (None, layer.geometry):
                raise _FormatError(f"found {layer and (layer.kind, layer.geometry)}, expected {kind} {geometry or ''}")
            return layer

        def conv_affine(conv: torch.nn.Conv2d) -> None:
            con = take("con_4", (*conv.kernel_size, *conv.stride, *conv.padding))
            affine = take("affine_")
            scale, shift = (affine.arrays[key].astype(np.float64) for key in ("scale", "shift"))
            if con.arrays["weight"].shape != tuple(conv.weight.shape) or scale.shape != (conv.out_channels,):
                raise _FormatError(f"convolution {con.arrays['weight'].shape} where {tuple(conv.weight.shape)} belongs")
            weight = con.arrays["weight"] * scale[:, None, None, None]
            bias = con.arrays["bias"] * scale + shift
            conv.weight.data.copy_(torch.from_numpy(weight))
            conv.bias.data.copy_(torch.from_numpy(bias))

        conv_affine(self.stem)
        take("relu_"), take("max_pool_2", (3, 3, 2, 2, 0, 0))
        for block in (block for level in self.levels for block in level):
            conv_affine(block.conv1), take("relu_"), conv_affine(block.conv2)
            if block.down:
                take("avg_pool_2", (2, 2, 2, 2, 0, 0))
            take("add_prev_"), take("relu_")
        take("avg_pool_2", (0, 0, 1, 1, 0, 0))                     # avg_pool_everything
        fc = take("fc_2").arrays["weight"]
        if fc.shape != tuple(self.fc.weight.shape[::-1]):
            raise _FormatError(f"fc layer {fc.shape}")
        self.fc.weight.data.copy_(torch.from_numpy(fc.T.copy()))
        if next(layers, None) is not None:
            raise _FormatError("layers left over after the fc layer")

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The activations after each resolution level: (N, 32, 35, 35), (N, 64, 17, 17), (N, 128, 8, 8), (N, 256, 4, 4), (N, 256, 2, 2)."""
        assert x.ndim == 4 and tuple(x.shape[1:]) == (3, CHIP_SIZE, CHIP_SIZE) and x.is_floating_point(), \
            f"FaceIDNet takes (N, 3, {CHIP_SIZE}, {CHIP_SIZE}) float RGB face chips in 0..1, not {x.dtype} {tuple(x.shape)}"
        x = F.max_pool2d(F.relu(self.stem(x * (255.0 / 256.0) - self.input_offset)), 3, 2)
        out = []
        for level in self.levels:
            x = level(x)
            out.append(x)
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 128) dlib face descriptors of (N, 3, 150, 150) RGB face chips in 0..1."""
        return self.descriptor(self.features(x))

    def descriptor(self, features: list[torch.Tensor]) -> torch.Tensor:
        """(N, 128) descriptors from the output of :meth:`features` (to get both in one pass)."""
        return self.fc(features[-1].mean((2, 3)))


@functools.lru_cache(maxsize=None)
def _load_cached(path: str, device: str) -> FaceIDNet:
    return FaceIDNet(read_dlib_network(path)).to(device)


def load_faceid(device: str | torch.device = "cpu", path: str | None = None) -> FaceIDNet:
    """The frozen FaceID network on ``device`` (from face-recognition-models unless ``path``), built once per process.

    The instance is shared: use it, do not modify it.
    """
    return _load_cached(os.path.abspath(path or model_path()), str(torch.device(device)))
