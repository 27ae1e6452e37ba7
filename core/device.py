"""Which torch device the learned stages run on: "auto" (CUDA when present), "cpu" or "cuda"."""

from __future__ import annotations

from .errors import InputError

DEVICE_CHOICES = ("auto", "cpu", "cuda")


def resolve_device(preference: str = "auto") -> str:
    """Turn a preference into a torch device name, with a clear error if CUDA was asked for but is absent."""
    if preference not in DEVICE_CHOICES:
        raise InputError(f"unknown device {preference!r}; choose one of {', '.join(DEVICE_CHOICES)}")
    if preference == "cpu":
        return "cpu"
    import torch

    if torch.cuda.is_available():
        return "cuda"
    if preference == "cuda":
        raise InputError("device 'cuda' was requested but this Python's torch sees no CUDA GPU; choose 'auto' or 'cpu'")
    return "cpu"
