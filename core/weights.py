"""Weight files of the learned stages (GMug, enhance), all safetensors: reading with format checks, and checkpoints.

A shipped file carries ``format`` and ``format_version`` in its metadata;
:func:`read_weights` refuses a missing, corrupt or foreign file and
:func:`load_module` every missing tensor or wrong shape, each in one line
that names the stage. Training checkpoints (modules, Adam states and a JSON
state) use the same container. No pickle is involved anywhere.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

from .atomic import atomic_path
from .errors import StudioAvatarError


class WeightsError(StudioAvatarError):
    """A weights file is missing, corrupt or of another version."""


def require_weights_file(path: Path, what: str = "GMug") -> None:
    if not path.is_file():
        raise WeightsError(f"{what} weights not found at {path}; reinstall the add-on or point --weights-dir at a folder "
                           f"with {path.name}")


def write_weights(path: str | os.PathLike, tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> None:
    """``tensors`` (CPU copies) and string ``metadata`` as one safetensors file, written atomically."""
    from safetensors.torch import save_file

    with atomic_path(path) as tmp:
        save_file({k: v.detach().cpu().clone().contiguous() for k, v in tensors.items()}, str(tmp), metadata=metadata)


def read_weights(path: str | os.PathLike, what: str, fmt: str, version: int) -> tuple[dict[str, str], dict[str, torch.Tensor]]:
    """(metadata, tensors) of a ``what`` weights file of format ``fmt`` ``version``; WeightsError if unusable."""
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    require_weights_file(path, what)
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
            tensors = {key: handle.get_tensor(key) for key in handle.keys()}
    except (SafetensorError, OSError, ValueError) as error:
        raise WeightsError(f"{what} weights {path} are corrupt ({error}); reinstall the add-on") from None
    if metadata.get("format") != fmt or metadata.get("format_version") != str(version):
        raise WeightsError(f"{path} is not a {what} weights file of format version {version} "
                           f"(found {metadata.get('format')!r} version {metadata.get('format_version')!r})")
    return metadata, tensors


def load_module(module: torch.nn.Module, tensors: dict[str, torch.Tensor], prefix: str, path: Path, what: str) -> None:
    """Load the tensors under ``prefix`` into ``module``, refusing missing tensors and wrong shapes."""
    expected = module.state_dict()
    found = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
    missing = sorted(set(expected) - set(found))
    if missing:
        raise WeightsError(f"{what} weights {path} lack {len(missing)} tensors of {prefix.rstrip('.') or 'the network'} "
                           f"(e.g. {missing[0]}); they belong to another version")
    wrong = [k for k, v in expected.items() if tuple(found[k].shape) != tuple(v.shape)]
    if wrong:
        raise WeightsError(f"{what} weights {path}: {prefix}{wrong[0]} has shape {tuple(found[wrong[0]].shape)}, "
                           f"expected {tuple(expected[wrong[0]].shape)}")
    module.load_state_dict({k: found[k] for k in expected})


def json_metadata(text: str | None, path: Path, what: str) -> Any:
    """A JSON value from a weights file's metadata; WeightsError if it is unreadable."""
    try:
        return json.loads(text if text is not None else "")
    except (ValueError, TypeError) as error:
        raise WeightsError(f"{what} weights {path} have unreadable metadata ({error}); reinstall the add-on") from None


# ------------------------------------------------------------------------------------------------ training checkpoints

def save_checkpoint(path: str | os.PathLike, modules: dict[str, torch.nn.Module],
                    optimizers: dict[str, torch.optim.Optimizer], state: dict[str, Any]) -> None:
    """Modules' and Adam optimizers' states plus a JSON-able ``state`` in one safetensors file (atomic)."""
    tensors: dict[str, torch.Tensor] = {}
    for name, module in modules.items():
        tensors.update({f"module.{name}.{k}": v for k, v in module.state_dict().items()})
    for name, optimizer in optimizers.items():
        for index, slots in optimizer.state_dict()["state"].items():
            for slot, value in slots.items():
                tensors[f"optim.{name}.{index}.{slot}"] = torch.as_tensor(value)
    write_weights(path, tensors, {"state": json.dumps(state)})


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


# ------------------------------------------------------------------------------------------------ training runs

def start_run(work: Path, out: Path, checkpoint: str, resume: bool) -> None:
    """Make the run and output folders; refuse to start a second run over an earlier one without ``resume``."""
    from .errors import InputError

    if (work / checkpoint).is_file() and not resume:
        raise InputError(f"{work} already holds a training run; pass --resume to continue it, or choose another --work")
    work.mkdir(parents=True, exist_ok=True)
    out.mkdir(parents=True, exist_ok=True)


def check_resume(saved: dict[str, Any], wanted: dict[str, Any], resumable: tuple[str, ...]) -> None:
    """Refuse to resume a run with other settings than it was started with, except those in ``resumable``."""
    from .errors import InputError

    saved = {k: v for k, v in saved.items() if k not in resumable}
    wanted = json.loads(json.dumps({k: v for k, v in wanted.items() if k not in resumable}))
    if saved != wanted:
        changed = sorted(k for k in wanted if saved.get(k) != wanted[k])
        raise InputError(f"--resume with other training settings than the run's ({', '.join(changed)}); "
                         "only --minutes may change")
