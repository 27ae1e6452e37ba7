"""Content hashes for stage inputs and outputs (sha256, streamed, never whole files in memory)."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

_CHUNK = 1 << 20


def file_sha256(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def tree_sha256(path: str | os.PathLike) -> str:
    """Hash of a folder: relative names and contents of all files, in sorted order."""
    root = Path(path)
    digest = hashlib.sha256()
    for file in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(file.relative_to(root).as_posix().encode() + b"\0" + file_sha256(file).encode() + b"\n")
    return digest.hexdigest()


def path_sha256(path: str | os.PathLike) -> str:
    return tree_sha256(path) if Path(path).is_dir() else file_sha256(path)


def json_sha256(obj: Any) -> str:
    """Hash of a JSON-able object in canonical form (sorted keys, no spaces)."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()
