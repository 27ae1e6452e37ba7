"""Test harness: isolate every user folder Blender and our tools could touch, then load the package.

The isolation happens at import time, before any test imports bpy, because
Blender reads HOME / BLENDER_USER_RESOURCES once at startup. The add-on tests'
fixtures (the installed extension, empty scenes) come from addon_fixtures.py.
"""

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

_ISOLATED = Path(tempfile.mkdtemp(prefix="studio-avatar-tests-"))
for _var, _sub in (
    ("HOME", "home"),
    ("XDG_CACHE_HOME", "xdg-cache"),
    ("XDG_CONFIG_HOME", "xdg-config"),
    ("BLENDER_USER_RESOURCES", "blender-user"),
    ("STUDIO_AVATAR_CACHE", "studio-avatar-cache"),
):
    (_ISOLATED / _sub).mkdir()
    os.environ[_var] = str(_ISOLATED / _sub)

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT / "tools"))
sys.path.insert(0, str(Path(__file__).resolve().parent / "helpers"))
from devpath import load_package  # noqa: E402

load_package()

from addon_fixtures import empty_scene, extension_zip, installed, scene, scene_state  # noqa: E402,F401 - fixtures
from studio_avatar.core.launcher import worker_argv  # noqa: E402
from studio_avatar.core.synth.clip import write_turning_head_clip  # noqa: E402


_EXIT_STATUS = [0]


def pytest_sessionfinish(session, exitstatus):
    shutil.rmtree(_ISOLATED, ignore_errors=True)
    _EXIT_STATUS[0] = int(exitstatus)


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config):
    """Leave without C++ static destructors once bpy is loaded: bpy 4.5's global state can deadlock at exit
    (it waits on its own delayed-close thread), which would hang CI after every test has passed."""
    if "bpy" in sys.modules:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(_EXIT_STATUS[0])


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


def run_cli(*args: str, stdin: str | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run ``studio-avatar ARGS`` in a fresh process, exactly as the console script does."""
    argv = worker_argv(list(args), extension_root=REPO_ROOT)
    return subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def cli():
    return run_cli


@pytest.fixture(scope="session")
def clip_30(tmp_path_factory) -> Path:
    """30 frames, 320x240, 30 fps, mpeg4 in mp4."""
    return write_turning_head_clip(tmp_path_factory.mktemp("clips") / "turn.mp4", frames=30, width=320, height=240, fps=30.0)
