"""GMug's shipped weights ``gmug_<R>.safetensors`` (the container, its checks and checkpoints: core/weights.py).

A shipped file holds three modules under prefixes -- ``encoder.``,
``phone.`` (G_phone's synthesis network, which W+ is inverted into) and
``studio.`` (G_studio's synthesis parameters above ``freeze_res``; the rest
are G_phone's, shared by construction) -- and its metadata: the format
version, the network config and the training summary. Loading checks the
format, the config and every tensor's shape, and says in one line what is
wrong.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from ..weights import WeightsError, json_metadata, load_module, read_weights, write_weights
from .networks import Encoder, GMugConfig, SynthesisNetwork, frozen_prefixes

FORMAT = "studio-avatar-gmug"
FORMAT_VERSION = 1
WHAT = "GMug"


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
    shared = tuple(p.replace("synthesis.", "", 1) for p in frozen_prefixes(freeze_res) if p.startswith("synthesis."))
    tensors = {f"encoder.{k}": v for k, v in encoder.state_dict().items()}
    tensors.update({f"phone.{k}": v for k, v in phone.state_dict().items()})
    tensors.update({f"studio.{k}": v for k, v in studio.state_dict().items() if not k.startswith(shared)})
    write_weights(path, tensors, {"format": FORMAT, "format_version": str(FORMAT_VERSION),
                                  "config": json.dumps(config.to_dict()), "freeze_res": str(freeze_res),
                                  "info": json.dumps(info)})


def load_gmug(path: str | os.PathLike, device: str = "cpu") -> GMugModels:
    """The three modules of a shipped GMug file, in eval mode on ``device``; WeightsError if unusable."""
    path = Path(path)
    metadata, tensors = read_weights(path, WHAT, FORMAT, FORMAT_VERSION)
    try:
        config = GMugConfig.from_dict(json_metadata(metadata.get("config"), path, WHAT))
        freeze_res = int(metadata["freeze_res"])
    except (KeyError, ValueError, TypeError) as error:
        raise WeightsError(f"GMug weights {path} have unreadable metadata ({error}); reinstall the add-on") from None
    info = json_metadata(metadata.get("info", "{}"), path, WHAT)
    encoder, phone, studio = Encoder(config), SynthesisNetwork(config), SynthesisNetwork(config)
    load_module(encoder, tensors, "encoder.", path, WHAT)
    load_module(phone, tensors, "phone.", path, WHAT)
    studio_state = dict(phone.state_dict())
    studio_state.update({k[len("studio."):]: v for k, v in tensors.items() if k.startswith("studio.")})
    load_module(studio, {f"studio.{k}": v for k, v in studio_state.items()}, "studio.", path, WHAT)
    return GMugModels(config, encoder, phone, studio, freeze_res, info).to(device)


@lru_cache(maxsize=2)
def load_gmug_cached(path: str, sha256: str, device: str) -> GMugModels:
    """:func:`load_gmug` once per process for a file (``sha256`` keys its content) and device: the pipeline checks
    the weights before it runs, the stage then uses the same loaded models."""
    return load_gmug(path, device)
