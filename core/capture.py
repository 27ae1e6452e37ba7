"""The capture folder: its manifest ``capture.json``, its lock, and safe paths inside it.

A capture folder is the contract between stages (see ARCHITECTURE.md). This
module owns the manifest's format and the rule that only one process works on
a capture at a time. It does not run stages (``core.stages`` does) and never
writes outside the capture folder.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import sys
from pathlib import Path
from typing import Any, Iterator

from . import TOOL_NAME, __version__
from .atomic import atomic_write_json
from .errors import CaptureBusyError, CaptureError
from .hashing import file_sha256

MANIFEST_NAME = "capture.json"
CAPTURE_FORMAT = "studio-avatar-capture"
SCHEMA_VERSION = 1
LOCK_NAME = ".lock"
STAGING_NAME = ".staging"


def utc_now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="milliseconds")


def stat_signature(path: Path) -> str:
    """Cheap change detector (sizes and mtimes); a match lets us trust a recorded hash."""
    if path.is_dir():
        parts = [
            f"{p.relative_to(path).as_posix()}:{s.st_size}:{s.st_mtime_ns}"
            for p in sorted(path.rglob("*")) if p.is_file() for s in [p.stat()]
        ]
        return "dir:" + "|".join(parts)
    stat = path.stat()
    return f"file:{stat.st_size}:{stat.st_mtime_ns}"


def signature_files(signature: str) -> set[str]:
    """The relative file names a folder's :func:`stat_signature` lists (none for a file's)."""
    if not signature.startswith("dir:"):
        return set()
    return {part.rsplit(":", 2)[0] for part in signature[len("dir:"):].split("|") if part}


class _FileLock:
    """Exclusive, non-blocking lock on a file; released by the OS if the process dies."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._handle = None

    def acquire(self) -> bool:
        handle = open(self.path, "a+")
        try:
            if os.name == "nt":
                import msvcrt

                handle.seek(0)
                msvcrt.locking(handle.fileno(), msvcrt.LK_NBLCK, 1)
            else:
                import fcntl

                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            return False
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        self._handle = handle
        return True

    def holder(self) -> str:
        with contextlib.suppress(OSError):
            return self.path.read_text().strip() or "unknown"
        return "unknown"

    def release(self) -> None:
        if self._handle is not None:
            self._handle.close()  # closing drops flock/msvcrt locks
            self._handle = None


class Capture:
    """An opened capture folder. Mutate ``manifest`` through the methods, then ``save()``."""

    def __init__(self, root: Path, manifest: dict[str, Any]) -> None:
        self.root = root
        self.manifest = manifest
        self._lock: _FileLock | None = None

    # -- opening and creating ---------------------------------------------------------------
    @classmethod
    def open(cls, root: str | os.PathLike) -> "Capture":
        root = Path(root).expanduser()
        manifest_path = root / MANIFEST_NAME
        if not root.is_dir():
            raise CaptureError(f"{root}: no such capture folder")
        if not manifest_path.is_file():
            raise CaptureError(f"{root}: not a capture folder (no {MANIFEST_NAME}); run `{TOOL_NAME} reconstruct VIDEO -o {root}` first")
        try:
            manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise CaptureError(f"{manifest_path}: unreadable capture manifest ({exc}); move the folder aside and reconstruct again") from None
        if not isinstance(manifest, dict) or manifest.get("format") != CAPTURE_FORMAT:
            raise CaptureError(f"{manifest_path}: not a Studio Avatar capture manifest")
        if int(manifest.get("schema", 0)) > SCHEMA_VERSION:
            raise CaptureError(
                f"{manifest_path}: written by a newer Studio Avatar (schema {manifest.get('schema')}); update the add-on to open it"
            )
        manifest.setdefault("stages", {})
        return cls(root, manifest)

    @classmethod
    def create(cls, root: str | os.PathLike, source: dict[str, Any]) -> "Capture":
        """Make a new capture in ``root`` (new or empty folder) for the video described by ``source``."""
        root = Path(root).expanduser()
        if root.exists() and not root.is_dir():
            raise CaptureError(f"{root}: exists and is not a folder; choose a folder for the capture")
        if root.is_dir() and any(root.iterdir()):
            raise CaptureError(f"{root}: the folder is not empty and is not a capture; choose an empty or new folder")
        root.mkdir(parents=True, exist_ok=True)
        now = utc_now()
        manifest = {
            "format": CAPTURE_FORMAT,
            "schema": SCHEMA_VERSION,
            "tool": {"name": TOOL_NAME, "version": __version__},
            "created": now,
            "updated": now,
            "source": source,
            "stages": {},
            "warnings": [],
        }
        capture = cls(root, manifest)
        capture.save()
        return capture

    # -- manifest -------------------------------------------------------------------------------
    @property
    def manifest_path(self) -> Path:
        return self.root / MANIFEST_NAME

    @property
    def source(self) -> dict[str, Any]:
        return self.manifest["source"]

    def stage_record(self, name: str) -> dict[str, Any] | None:
        return self.manifest["stages"].get(name)

    def set_stage_record(self, name: str, record: dict[str, Any]) -> None:
        self.manifest["stages"][name] = record
        self.save()

    def save(self) -> None:
        self.manifest["updated"] = utc_now()
        self.manifest["tool"] = {"name": TOOL_NAME, "version": __version__}
        # capture-level warnings are derived from the stages, never stored twice by hand
        self.manifest["warnings"] = [
            f"{name}: {message}" for name, record in self.manifest["stages"].items() for message in record.get("warnings", [])
        ]
        atomic_write_json(self.manifest_path, self.manifest)

    # -- paths ----------------------------------------------------------------------------------
    def path(self, relative: str) -> Path:
        """Absolute path of a capture-relative name; refuses names that leave the folder."""
        rel = Path(relative)
        if rel.is_absolute() or ".." in rel.parts or not rel.parts:
            raise CaptureError(f"{relative!r} is not a path inside the capture folder")
        return self.root / rel

    @property
    def staging_root(self) -> Path:
        return self.root / STAGING_NAME

    # -- locking --------------------------------------------------------------------------------
    def is_locked(self) -> bool:
        """True while some process, this one included, holds this capture's lock."""
        if self._lock is not None:
            return True
        lock = _FileLock(self.root / LOCK_NAME)
        if lock.acquire():
            lock.release()
            return False
        return True

    @contextlib.contextmanager
    def locked(self) -> Iterator["Capture"]:
        """Hold the capture's lock (re-entrant); a second process gets a clear CaptureBusyError."""
        if self._lock is not None:
            yield self
            return
        lock = _FileLock(self.root / LOCK_NAME)
        if not lock.acquire():
            raise CaptureBusyError(
                f"{self.root}: another Studio Avatar process (pid {lock.holder()}) is working on this capture; "
                "wait for it to finish or cancel it"
            )
        self._lock = lock
        try:
            yield self
        finally:
            self._lock = None
            lock.release()


def describe_source(video: str | os.PathLike, facts: dict[str, Any], known: dict[str, Any] | None = None) -> dict[str, Any]:
    """The manifest's ``source`` entry: where the video is, its hash and its facts.

    Hashing a long 4K clip takes seconds, so a hash recorded earlier is reused
    when the file's path, size and modification time are unchanged.
    """
    path = Path(video).expanduser().resolve()
    stat = path.stat()
    sha = None
    if known and known.get("path") == str(path) and known.get("size_bytes") == stat.st_size and known.get("mtime_ns") == stat.st_mtime_ns:
        sha = known.get("sha256")
    return {
        "path": str(path),
        "sha256": sha or file_sha256(path),
        "size_bytes": stat.st_size,
        "mtime_ns": stat.st_mtime_ns,
        "frames": facts["frames"],
        "fps": facts["fps"],
        "duration_s": facts["duration_s"],
        "width": facts["width"],
        "height": facts["height"],
        "rotation_deg": facts["rotation_deg"],
        "codec": facts["codec"],
    }


def library_versions() -> dict[str, str]:
    """Versions of the libraries loaded in this process, recorded with each stage for provenance."""
    versions = {"studio_avatar": __version__, "python": sys.version.split()[0]}
    for module in ("numpy", "cv2", "torch", "diffusers", "mediapipe"):
        loaded = sys.modules.get(module)
        if loaded is not None and hasattr(loaded, "__version__"):
            versions[module] = str(loaded.__version__)
    return versions
