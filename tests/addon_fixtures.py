"""The add-on tests' shared fixtures: the built extension, its install into an isolated user repository, empty scenes.

tests/conftest.py registers these fixtures for every test file; the files that drive the installed extension name
its module with ``addon_module(__name__)``. Each test file installs its own copy into a repository named after the
file (``test_addon_avatar`` -> ``bl_ext.addon_avatar_repo.studio_avatar``) and removes it when the file is done, so
no two copies are ever registered at once and no file sees another's preferences. bpy is imported inside the
fixtures: test files that never use them never load Blender.
"""

import pytest


def addon_module(test_module: str) -> str:
    """The installed add-on's module for a test file (its ``__name__``)."""
    return f"bl_ext.{test_module.removeprefix('test_')}_repo.studio_avatar"


def reset_scene():
    """Blender's factory startup with an empty scene; returns that scene."""
    import bpy

    bpy.ops.wm.read_homefile(use_empty=True, use_factory_startup=True)
    return bpy.context.scene


def reset_addon_scene(module: str):
    """``reset_scene`` with the installed add-on ``module`` still enabled afterwards."""
    scene = reset_scene()
    import addon_utils   # after bpy: importing bpy puts addon_utils on sys.path

    assert addon_utils.check(module)[1], "resetting the scene unloaded the extension"
    return scene


@pytest.fixture(scope="session")
def extension_zip(repo_root, tmp_path_factory):
    """The extension built once by Blender's own tool."""
    from build_extension import build

    return build(tmp_path_factory.mktemp("dist"), repo_root)


@pytest.fixture(scope="module")
def installed(request, extension_zip, tmp_path_factory):
    """The extension installed and enabled for this test file; yields its module name."""
    from blender_layout import installed_extension

    repo = addon_module(request.module.__name__).split(".")[1]
    with installed_extension(extension_zip, repo, tmp_path_factory.mktemp("extensions")) as module:
        yield module


@pytest.fixture
def empty_scene():
    """An empty scene, no add-on needed."""
    return reset_scene()


@pytest.fixture
def scene(installed):
    """An empty scene, the add-on installed."""
    return reset_addon_scene(installed)


@pytest.fixture
def scene_state(scene):
    """The empty scene's Studio Avatar state (``scene.studio_avatar``)."""
    return scene.studio_avatar
