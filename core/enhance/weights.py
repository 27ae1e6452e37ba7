"""The enhance stage's weights ``enhance_<T>.safetensors``: the U-Net under ``unet.``, its config and training summary.

The container and its checks are core/weights.py's: a missing, corrupt or
foreign file, a missing tensor or a wrong shape is refused in one line.
"""

from __future__ import annotations

import json
import os
from functools import lru_cache
from pathlib import Path
from typing import Any

from ..weights import WeightsError, json_metadata, load_module, read_weights, write_weights
from .model import EnhanceConfig, build_unet
from .pipeline import EnhancePipeline

FORMAT = "studio-avatar-enhance"
FORMAT_VERSION = 1
WHAT = "enhance"


def save_enhance(path: str | os.PathLike, config: EnhanceConfig, unet: Any, info: dict[str, Any]) -> None:
    write_weights(path, {f"unet.{k}": v for k, v in unet.state_dict().items()},
                  {"format": FORMAT, "format_version": str(FORMAT_VERSION), "config": json.dumps(config.to_dict()),
                   "info": json.dumps(info)})


def load_enhance(path: str | os.PathLike, device: str = "cpu") -> tuple[EnhancePipeline, dict[str, Any]]:
    """(the pipeline on ``device``, the training summary) of a shipped enhance file; WeightsError if unusable."""
    path = Path(path)
    metadata, tensors = read_weights(path, WHAT, FORMAT, FORMAT_VERSION)
    try:
        config = EnhanceConfig.from_dict(json_metadata(metadata.get("config"), path, WHAT))
    except (KeyError, TypeError, AssertionError) as error:
        raise WeightsError(f"enhance weights {path} have an unusable config ({error}); reinstall the add-on") from None
    unet = build_unet(config)
    load_module(unet, tensors, "unet.", path, WHAT)
    return EnhancePipeline(unet.to(device), config), json_metadata(metadata.get("info", "{}"), path, WHAT)


@lru_cache(maxsize=2)
def load_enhance_cached(path: str, sha256: str, device: str) -> EnhancePipeline:
    """:func:`load_enhance`'s pipeline once per process for a file (``sha256`` keys its content) and device: the
    pipeline checks the weights before it runs, the stage then uses the same loaded network."""
    return load_enhance(path, device)[0]
