"""GMug's weight files: the shipped ``gmug_<R>.safetensors`` and the training checkpoints, both safetensors.

A shipped file holds three modules under prefixes -- ``encoder.``,
``phone.`` (G_phone's synthesis network, which W+ is inverted into) and
``studio.`` (G_studio's synthesis parameters above ``freeze_res``; the rest
are G_phone's, shared by construction) -- and its metadata: the format
version, the network config and the training summary. Loading checks the
format, the config and every tensor's shape, and says in one line what is
wrong. No pickle is involved anywhere.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch

from ..atomic import atomic_path
from ..errors import StudioAvatarError
from .networks import Encoder, GMugConfig, SynthesisNetwork, frozen_prefixes

FORMAT = "studio-avatar-gmug"
FORMAT_VERSION = 1


class WeightsError(StudioAvatarError):
    """A weights file is missing, corrupt or of another version."""


@dataclass
class GMugModels:
    config: GMugConfig
    encoder: Encoder
    phone: SynthesisNetwork          # G_phone's synthesis network
    studio: SynthesisNetwork         # G_studio's: G_phone at <= freeze_res, fine-tuned above
    freeze_res: int
    info: dict[str, Any]             # training summary from the file's metadata

    def to(self, device: str) -> "GMugModels":
        for module in (self.encoder, self.phone, self.studio):
            module.to(device).eval().requires_grad_(False)
        return self


def save_gmug(path: str | os.PathLike, config: GMugConfig, encoder: Encoder, phone: SynthesisNetwork,
              studio: SynthesisNetwork, freeze_res: int, info: dict[str, Any]) -> None:
    from safetensors.torch import save_file

    shared = tuple(p.replace("synthesis.", "", 1) for p in frozen_prefixes(freeze_res) if p.startswith("synthesis."))
    tensors = {f"encoder.{k}": v for k, v in encoder.state_dict().items()}
    tensors.update({f"phone.{k}": v for k, v in phone.state_dict().items()})
    tensors.update({f"studio.{k}": v for k, v in studio.state_dict().items() if not k.startswith(shared)})
    metadata = {"format": FORMAT, "format_version": str(FORMAT_VERSION), "config": json.dumps(config.to_dict()),
                "freeze_res": str(freeze_res), "info": json.dumps(info)}
    with atomic_path(path) as tmp:
        save_file({k: v.detach().cpu().clone().contiguous() for k, v in tensors.items()}, str(tmp), metadata=metadata)


def load_gmug(path: str | os.PathLike, device: str = "cpu") -> GMugModels:
    """The three modules of a shipped GMug file, in eval mode on ``device``; WeightsError if unusable."""
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    require_weights_file(path)
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
            tensors = {key: handle.get_tensor(key) for key in handle.keys()}
    except (SafetensorError, OSError, ValueError) as error:
        raise WeightsError(f"GMug weights {path} are corrupt ({error}); reinstall the add-on") from None
    if metadata.get("format") != FORMAT or metadata.get("format_version") != str(FORMAT_VERSION):
        raise WeightsError(f"{path} is not a GMug weights file of format version {FORMAT_VERSION} "
                           f"(found {metadata.get('format')!r} version {metadata.get('format_version')!r})")
    try:
        config = GMugConfig.from_dict(json.loads(metadata["config"]))
        freeze_res = int(metadata["freeze_res"])
        info = json.loads(metadata.get("info", "{}"))
    except (KeyError, ValueError, TypeError) as error:
        raise WeightsError(f"GMug weights {path} have unreadable metadata ({error}); reinstall the add-on") from None
    encoder, phone, studio = Encoder(config), SynthesisNetwork(config), SynthesisNetwork(config)
    _load_part(encoder, tensors, "encoder.", path)
    _load_part(phone, tensors, "phone.", path)
    studio_state = dict(phone.state_dict())
    studio_state.update({k[len("studio."):]: v for k, v in tensors.items() if k.startswith("studio.")})
    _load_part(studio, {f"studio.{k}": v for k, v in studio_state.items()}, "studio.", path)
    return GMugModels(config, encoder, phone, studio, freeze_res, info).to(device)


def require_weights_file(path: Path) -> None:
    if not path.is_file():
        raise WeightsError(f"GMug weights not found at {path}; reinstall the add-on or point --weights-dir at a folder "
                           f"with {path.name}")


@lru_cache(maxsize=2)
def load_gmug_cached(path: str, sha256: str, device: str) -> GMugModels:
    """:func:`load_gmug` once per process for a file (``sha256`` keys its content) and device: the pipeline checks
    the weights before it runs, the stage then uses the same loaded models."""
    return load_gmug(path, device)


def _load_part(module: torch.nn.Module, tensors: dict[str, torch.Tensor], prefix: str, path: Path) -> None:
    expected = module.state_dict()
    found = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
    missing = sorted(set(expected) - set(found))
    if missing:
        raise WeightsError(f"GMug weights {path} lack {len(missing)} tensors of {prefix.rstrip('.')} "
                           f"(e.g. {missing[0]}); they belong to another version")
    wrong = [k for k, v in expected.items() if tuple(found[k].shape) != tuple(v.shape)]
    if wrong:
        raise WeightsError(f"GMug weights {path}: {prefix}{wrong[0]} has shape {tuple(found[wrong[0]].shape)}, "
                           f"expected {tuple(expected[wrong[0]].shape)}")
    module.load_state_dict({k: found[k] for k in expected})


# ------------------------------------------------------------------------------------------------ training checkpoints

def save_checkpoint(path: str | os.PathLike, modules: dict[str, torch.nn.Module],
                    optimizers: dict[str, torch.optim.Optimizer], state: dict[str, Any]) -> None:
    """Modules' and Adam optimizers' states plus a JSON-able ``state`` in one safetensors file (atomic)."""
    from safetensors.torch import save_file

    tensors: dict[str, torch.Tensor] = {}
    for name, module in modules.items():
        tensors.update({f"module.{name}.{k}": v for k, v in module.state_dict().items()})
    for name, optimizer in optimizers.items():
        for index, slots in optimizer.state_dict()["state"].items():
            for slot, value in slots.items():
                tensors[f"optim.{name}.{index}.{slot}"] = torch.as_tensor(value)
    with atomic_path(path) as tmp:
        save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, str(tmp),
                  metadata={"state": json.dumps(state)})


def checkpoint_state(path: str | os.PathLike) -> dict[str, Any]:
    """The JSON ``state`` a checkpoint was saved with, without loading its tensors."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        return json.loads((handle.metadata() or {}).get("state", "{}"))


def load_checkpoint(path: str | os.PathLike, modules: dict[str, torch.nn.Module],
                    optimizers: dict[str, torch.optim.Optimizer]) -> dict[str, Any]:
    """Restore what :func:`save_checkpoint` wrote into ``modules`` / ``optimizers``; returns the saved ``state``."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        tensors = {key: handle.get_tensor(key) for key in handle.keys()}
        state = json.loads((handle.metadata() or {}).get("state", "{}"))
    for name, module in modules.items():
        prefix = f"module.{name}."
        module.load_state_dict({k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)})
    for name, optimizer in optimizers.items():
        saved = optimizer.state_dict()
        prefix = f"optim.{name}."
        slots: dict[int, dict[str, torch.Tensor]] = {}
        for key, value in tensors.items():
            if key.startswith(prefix):
                index, slot = key[len(prefix):].split(".", 1)
                slots.setdefault(int(index), {})[slot] = value
        saved["state"] = slots
        optimizer.load_state_dict(saved)
    return state
