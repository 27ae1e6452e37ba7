"""The worker's Python dependencies inside Blender: the pinned list, what is installed, and installing it with pip.

bpy-free. ``REQUIREMENTS`` is the single pinned list (requirements-worker.txt and requirements-nodeps.txt,
which the development venv installs from, are kept equal to it; tests/test_deps.py pins that; the
requirements files are not shipped in the extension zip). :func:`run_install` is the only code of the
add-on that uses the network, and only when the user presses Install in the preferences: it runs pip
(argv lists, never a shell) and writes only into the target folder it is given (the extension's user
site-packages).
"""

from __future__ import annotations

import collections
import importlib.metadata
import os
import queue
import re
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from .errors import Cancelled, StudioAvatarError
from .progress import CancelToken

TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"
TORCH_VARIANTS = ("cpu", "cuda")
STAGE = "dependencies"


@dataclass(frozen=True)
class Requirement:
    name: str                  # distribution name as on PyPI
    version: str               # the exact pinned version
    no_deps: bool = False      # installed with --no-deps: its declared dependencies would pull numpy 2 / jax / CUDA

    @property
    def spec(self) -> str:
        return f"{self.name}=={self.version}"


# bpy 4.x pins numpy<2; opencv and diffusers must be pinned or pip pulls numpy 2. mediapipe's real needs
# are protobuf<5, attrs and matplotlib (drawing_utils imports it); jax and sounddevice are not needed.
REQUIREMENTS = (
    Requirement("numpy", "1.26.4"),
    Requirement("opencv-python-headless", "4.11.0.86"),
    Requirement("torch", "2.13.0"),
    Requirement("diffusers", "0.42.1"),
    Requirement("safetensors", "0.8.0"),
    Requirement("protobuf", "4.25.9"),
    Requirement("attrs", "26.1.0"),
    Requirement("matplotlib", "3.11.2"),
    Requirement("ray", "2.60.0"),                  # `batch` schedules its tasks with it; what it pulls in, pinned:
    Requirement("jsonschema", "4.26.0"),
    Requirement("jsonschema-specifications", "2025.9.1"),
    Requirement("msgpack", "1.2.4"),
    Requirement("referencing", "0.37.0"),
    Requirement("rpds-py", "2026.9.1"),
    Requirement("mediapipe", "0.10.21", no_deps=True),
    Requirement("anny", "0.6.2", no_deps=True),
)


class DependencyInstallError(StudioAvatarError):
    """pip could not install the dependencies."""


def normalize_name(name: str) -> str:
    """PEP 503 name normalization: ``Opencv_Python.Headless`` -> ``opencv-python-headless``."""
    return re.sub(r"[-_.]+", "-", name).lower()


def parse_requirements(text: str) -> list[tuple[str, str]]:
    """``name==version`` lines of a requirements file as (normalized name, version); comments and options skipped."""
    pins = []
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line or line.startswith("-"):
            continue
        name, sep, version = line.partition("==")
        if not sep:
            raise ValueError(f"requirement {line!r} is not pinned with ==")
        pins.append((normalize_name(name.strip()), version.strip()))
    return pins


# -- what is installed --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Status:
    name: str
    wanted_version: str
    found_version: str | None   # None: not installed in any of the searched folders
    ok: bool

    @property
    def state(self) -> str:
        """OK, MISSING or WRONG_VERSION."""
        return "OK" if self.ok else "MISSING" if self.found_version is None else "WRONG_VERSION"


def _public_version(version: str) -> str:
    return version.split("+", 1)[0]  # 2.13.0+cpu is torch 2.13.0


def check_dependencies(paths: Sequence[str | os.PathLike] | None = None,
                       requirements: Iterable[Requirement] = REQUIREMENTS) -> list[Status]:
    """Which requirements are installed in ``paths`` (searched in order; default ``sys.path``), by metadata only.

    Nothing is imported: a check of torch must not take seconds or load CUDA.
    """
    search = [str(p) for p in (sys.path if paths is None else paths)]
    statuses = []
    for req in requirements:
        found = None
        for dist in importlib.metadata.distributions(name=req.name, path=search):
            found = dist.version
            break
        ok = found is not None and _public_version(found) == req.version
        statuses.append(Status(req.name, req.version, found, ok))
    return statuses


def missing_requirements(statuses: Iterable[Status],
                         requirements: Iterable[Requirement] = REQUIREMENTS) -> list[Requirement]:
    """The requirements whose status is not ok."""
    bad = {(normalize_name(s.name), s.wanted_version) for s in statuses if not s.ok}
    return [r for r in requirements if (normalize_name(r.name), r.version) in bad]


# -- pip commands -------------------------------------------------------------------------------------------

def pip_command(python: str, target_dir: str | os.PathLike, requirements: Iterable[Requirement],
                torch_variant: str = "cpu", no_deps: bool = False) -> list[str]:
    """The argv of one ``pip install --target`` run (a list for subprocess, never a shell string).

    CPU torch comes from PyTorch's CPU index, added as an extra index so the other packages still come from
    PyPI (pip picks torch 2.13.0+cpu there); CUDA torch is PyPI's default wheel.
    """
    if torch_variant not in TORCH_VARIANTS:
        raise ValueError(f"torch_variant must be one of {TORCH_VARIANTS}, not {torch_variant!r}")
    specs = [r.spec for r in requirements]
    argv = [str(python), "-m", "pip", "install", "--target", str(target_dir), "--upgrade",
            "--no-input", "--disable-pip-version-check", "--progress-bar", "off"]
    if no_deps:
        argv.append("--no-deps")
    if torch_variant == "cpu" and any(normalize_name(s.split("==")[0]) == "torch" for s in specs):
        argv += ["--extra-index-url", TORCH_CPU_INDEX]
    return argv + specs


def install_commands(python: str, target_dir: str | os.PathLike, torch_variant: str = "cpu",
                     needed: Iterable[Requirement] = REQUIREMENTS) -> list[list[str]]:
    """The pip runs that install ``needed``: the ordinary group, then the --no-deps group, each only if it has a
    needed member.

    A group is always installed whole: ``pip --target`` resolves without seeing what is installed, so a
    dependency left unpinned (diffusers -> numpy) would pull numpy 2 into the folder, which the worker's
    import path puts before Blender's numpy.
    """
    needed = set(needed)
    groups = ([r for r in REQUIREMENTS if not r.no_deps], False), ([r for r in REQUIREMENTS if r.no_deps], True)
    return [pip_command(python, target_dir, group, torch_variant, no_deps)
            for group, no_deps in groups if needed.intersection(group)]


# -- running pip --------------------------------------------------------------------------------------------

ProgressCallback = Callable[[float, str], None]   # (fraction 0..1 of the whole install, message)

_COLLECTING = re.compile(r"^\s*Collecting (\S+)")
_FETCHING = re.compile(r"^\s*(Downloading|Using cached|Processing) (\S+)(.*)$")
_INSTALLING = re.compile(r"^\s*Installing collected packages: (.+)$")
_SUCCESS = re.compile(r"^\s*Successfully installed (.+)$")


def parse_pip_line(line: str, collected: int) -> tuple[float, str] | None:
    """Progress (fraction 0..1 within one pip run, message) for a line of pip's output; None for other lines.

    pip does not know how many packages it will collect, so collecting and downloading approach 80% and
    installing is 85%.
    """
    if m := _COLLECTING.match(line):
        return 0.8 * collected / (collected + 8), f"Collecting {m.group(1)}"
    if m := _FETCHING.match(line):
        name = m.group(2).rsplit("/", 1)[-1]
        return 0.8 * collected / (collected + 8), f"{m.group(1)} {name}{m.group(3).rstrip()}"
    if m := _INSTALLING.match(line):
        return 0.85, f"Installing {m.group(1)}"
    if m := _SUCCESS.match(line):
        return 1.0, f"Installed {m.group(1)}"
    return None


def failure_message(returncode: int, output_tail: Sequence[str], target_dir: str | os.PathLike) -> str:
    """One paragraph: pip's own error lines, then what to try."""
    errors = [line.strip() for line in output_tail if line.strip().startswith("ERROR:")]
    detail = " ".join(errors[-3:] or [line.strip() for line in output_tail if line.strip()][-3:]) or "no output"
    return (f"pip failed (exit code {returncode}): {detail} — check the network connection and the free disk "
            f"space in {target_dir}, then press Install Missing again; or set Worker Python in the preferences to "
            f"a Python that already has the dependencies")


def _pip_env(pip_cache_dir: str | os.PathLike | None) -> dict[str, str]:
    # PYTHONNOUSERSITE: Blender's Python must not see (or write) the user's ~/.local site-packages
    env = dict(os.environ, PYTHONUNBUFFERED="1", PYTHONIOENCODING="utf-8", PYTHONNOUSERSITE="1", PIP_NO_INPUT="1")
    if pip_cache_dir:
        env["PIP_CACHE_DIR"] = str(pip_cache_dir)
    return env


def _run_streaming(argv: list[str], on_line: Callable[[str], None], cancel: CancelToken,
                   tail: collections.deque, env: dict[str, str]) -> int:
    """Run ``argv``, passing each output line (stdout and stderr) to ``on_line``; stop it when ``cancel`` is set."""
    flags = subprocess.CREATE_NO_WINDOW if sys.platform == "win32" else 0
    try:
        process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                   text=True, encoding="utf-8", errors="replace", bufsize=1, env=env,
                                   creationflags=flags)
    except OSError as exc:
        raise DependencyInstallError(f"cannot run {argv[0]}: {exc.strerror or exc}") from None
    lines: "queue.Queue[str | None]" = queue.Queue()

    def read() -> None:
        assert process.stdout
        for line in process.stdout:
            lines.put(line.rstrip("\n"))
        lines.put(None)

    reader = threading.Thread(target=read, name="pip-output", daemon=True)
    reader.start()
    while True:
        if cancel.cancelled:
            process.terminate()
            try:
                process.wait(5.0)
            except subprocess.TimeoutExpired:
                process.kill()
            raise Cancelled("dependency install cancelled; packages already installed are kept, "
                            "press Install Missing to resume")
        try:
            line = lines.get(timeout=0.1)
        except queue.Empty:
            continue
        if line is None:
            break
        tail.append(line)
        on_line(line)
    return process.wait()


def ensure_pip(python: str, cancel: CancelToken, progress: ProgressCallback, env: dict[str, str]) -> None:
    """Make ``python -m pip`` work: Blender's bundled Python may ship without pip (then run ensurepip)."""
    tail: collections.deque[str] = collections.deque(maxlen=20)
    if _run_streaming([python, "-m", "pip", "--version"], lambda line: None, cancel, tail, env) == 0:
        return
    progress(0.0, "Installing pip into Blender's Python (ensurepip)")
    code = _run_streaming([python, "-m", "ensurepip", "--upgrade"], lambda line: None, cancel, tail, env)
    if code != 0:
        raise DependencyInstallError(
            f"{python} has no pip and ensurepip failed (exit code {code}): "
            f"{' '.join(list(tail)[-2:]) or 'no output'} — "
            "set Worker Python in the preferences to a Python that has the dependencies instead")


def run_install(python: str, target_dir: str | os.PathLike, torch_variant: str = "cpu",
                progress: ProgressCallback = lambda fraction, message: None, cancel: CancelToken | None = None,
                needed: Iterable[Requirement] = REQUIREMENTS,
                pip_cache_dir: str | os.PathLike | None = None) -> None:
    """Install ``needed`` (with their pinned groups) into ``target_dir`` with ``python -m pip``.

    User-triggered only: this uses the network.

    Progress comes from pip's output line by line; pip's download cache goes to ``pip_cache_dir`` when given.
    Raises DependencyInstallError with pip's error lines and what to try, or Cancelled.
    """
    cancel = cancel or CancelToken()
    env = _pip_env(pip_cache_dir)
    commands = install_commands(python, target_dir, torch_variant, needed)
    ensure_pip(python, cancel, progress, env)
    Path(target_dir).mkdir(parents=True, exist_ok=True)
    for step, argv in enumerate(commands):
        collected = 0
        tail: collections.deque[str] = collections.deque(maxlen=40)

        def on_line(line: str) -> None:
            nonlocal collected
            parsed = parse_pip_line(line, collected)
            if parsed is None:
                return
            collected += line.lstrip().startswith("Collecting ")
            progress((step + parsed[0]) / len(commands), parsed[1])

        code = _run_streaming(argv, on_line, cancel, tail, env)
        if code != 0:
            raise DependencyInstallError(failure_message(code, tail, target_dir))
    progress(1.0, "Dependencies installed")


class DependencyInstall:
    """:func:`run_install` on a background thread, with the event interface of core.worker.WorkerProcess.

    The add-on's job machinery (a timer polling ``poll_events``, Esc or Cancel calling ``request_cancel``)
    drives it exactly like a worker.
    """

    def __init__(self, python: str, target_dir: str | os.PathLike, torch_variant: str = "cpu",
                 needed: Iterable[Requirement] = REQUIREMENTS,
                 pip_cache_dir: str | os.PathLike | None = None) -> None:
        self.python, self.target_dir, self.torch_variant = python, target_dir, torch_variant
        self.needed, self.pip_cache_dir = list(needed), pip_cache_dir
        self.events: "queue.Queue[dict[str, Any]]" = queue.Queue()
        self.token = CancelToken()
        self.error: str | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> "DependencyInstall":
        self._thread = threading.Thread(target=self._run, name="studio-avatar-pip", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        def progress(fraction: float, message: str) -> None:
            self.events.put({"type": "progress", "stage": STAGE, "fraction": fraction, "message": message})

        try:
            run_install(self.python, self.target_dir, self.torch_variant, progress, self.token, self.needed,
                        self.pip_cache_dir)
        except StudioAvatarError as exc:
            self.error = str(exc)
        except Exception as exc:  # noqa: BLE001 - a thread must report, not die silently
            self.error = f"dependency install failed: {type(exc).__name__}: {exc}"

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def poll_events(self) -> list[dict[str, Any]]:
        out = []
        while True:
            try:
                out.append(self.events.get_nowait())
            except queue.Empty:
                return out

    def request_cancel(self) -> None:
        self.token.cancel()

    @property
    def cancel_requested(self) -> bool:
        return self.token.cancelled

    def cancel(self, timeout_s: float = 10.0) -> None:
        self.request_cancel()
        self.wait(timeout_s)

    def wait(self, timeout_s: float | None = None, on_event: Callable[[dict[str, Any]], None] | None = None) -> None:
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while self.running and (deadline is None or time.monotonic() < deadline):
            for event in self.poll_events():
                if on_event:
                    on_event(event)
            time.sleep(0.02)
        for event in self.poll_events():
            if on_event:
                on_event(event)

    @property
    def succeeded(self) -> bool:
        return self._thread is not None and not self.running and self.error is None

    def error_message(self) -> str:
        return self.error or "the dependency install did not finish"
