"""A recording stand-in for bpy.types.UILayout (which cannot be constructed headless).

Every call is checked against Blender's own RNA: the layout function and its
keyword arguments must exist, ``prop`` names must be properties of the data,
operators must be registered and their assigned properties must exist, icons
must be valid icon names. Calls are recorded so tests can assert what was drawn.
"""

import contextlib

import bpy

_LAYOUT_RNA = bpy.types.UILayout.bl_rna
ICONS = set(_LAYOUT_RNA.functions["label"].parameters["icon"].enum_items.keys())
_CONTAINERS = {"row", "column", "box", "split", "grid_flow", "column_flow"}


def _check_kwargs(function, kwargs):
    params = _LAYOUT_RNA.functions[function].parameters
    unknown = set(kwargs) - set(params.keys())
    assert not unknown, f"UILayout.{function}() has no parameter(s) {sorted(unknown)}"
    if "icon" in kwargs:
        assert kwargs["icon"] in ICONS, f"unknown icon {kwargs['icon']!r}"


def operator_rna(idname):
    module, name = idname.split(".")
    return getattr(getattr(bpy.ops, module), name).get_rna_type()


class OperatorCall:
    def __init__(self, idname):
        object.__setattr__(self, "idname", idname)
        object.__setattr__(self, "props", {})
        object.__setattr__(self, "_rna", operator_rna(idname))

    def __setattr__(self, name, value):
        assert name in self._rna.properties.keys(), f"operator {self.idname} has no property {name!r}"
        self.props[name] = value


class RecordingLayout:
    def __init__(self, calls=None):
        object.__setattr__(self, "calls", [] if calls is None else calls)

    def __setattr__(self, name, value):
        assert name in _LAYOUT_RNA.properties.keys(), f"UILayout has no attribute {name!r}"

    def __getattr__(self, name):
        if name in _CONTAINERS:
            def container(*args, **kwargs):
                _check_kwargs(name, kwargs)
                return RecordingLayout(self.calls)
            return container
        raise AssertionError(f"RecordingLayout does not support UILayout.{name}(); extend tests/blender_layout.py")

    def prop(self, data, property, **kwargs):
        _check_kwargs("prop", kwargs)
        assert property in data.bl_rna.properties.keys(), f"{data.bl_rna.identifier} has no property {property!r}"
        self.calls.append(("prop", property, kwargs.get("text")))

    def operator(self, idname, **kwargs):
        _check_kwargs("operator", kwargs)
        call = OperatorCall(idname)
        self.calls.append(("operator", idname, kwargs.get("text")))
        return call

    def label(self, **kwargs):
        _check_kwargs("label", kwargs)
        self.calls.append(("label", kwargs.get("text", ""), kwargs.get("icon", "NONE")))

    def progress(self, **kwargs):
        _check_kwargs("progress", kwargs)
        assert 0.0 <= kwargs.get("factor", 0.0) <= 1.0
        self.calls.append(("progress", kwargs.get("factor"), kwargs.get("text")))

    def template_icon(self, **kwargs):
        _check_kwargs("template_icon", kwargs)
        assert isinstance(kwargs.get("icon_value"), int)
        self.calls.append(("template_icon", kwargs["icon_value"], None))

    def separator(self, **kwargs):
        _check_kwargs("separator", kwargs)

    # helpers for assertions
    def labels(self):
        return [c[1] for c in self.calls if c[0] == "label"]

    def operators(self):
        return [c[1] for c in self.calls if c[0] == "operator"]


class DrawSelf:
    """What a Panel/AddonPreferences draw() sees as ``self``: a layout plus the real object's attributes."""

    def __init__(self, layout, real=None):
        self.layout = layout
        self._real = real

    def __getattr__(self, name):
        return getattr(self._real, name)


@contextlib.contextmanager
def installed_extension(extension_zip, repo_name, directory):
    """Install the built zip into a new, isolated user repository and enable it; undo on exit.

    Yields the add-on's module name (``bl_ext.<repo>.studio_avatar``).
    """
    import addon_utils

    module = f"bl_ext.{repo_name}.studio_avatar"
    bpy.ops.wm.read_homefile(use_empty=True, use_factory_startup=True)
    repos = bpy.context.preferences.extensions.repos
    repo = repos.new(name=repo_name, module=repo_name, custom_directory=str(directory), source="USER")
    bpy.ops.extensions.package_install_files(filepath=str(extension_zip), repo=repo_name, enable_on_install=True)
    # the operator reports FINISHED even when the install failed: check the add-on itself
    assert addon_utils.check(module)[1], "the extension did not enable"
    try:
        yield module
    finally:
        addon_utils.disable(module)
        repos.remove(repo)
