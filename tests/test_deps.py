"""Python dependencies inside Blender: the pinned list agrees with the requirements files, the metadata check,
the pip argv, the install driven by a fake pip (no network), the preferences' Dependencies box and Install
operator in the installed extension, and the weights folder override."""

import json
import os
import stat
import sys
import time

import bpy
import pytest
from addon_fixtures import addon_module
from blender_layout import DrawSelf, RecordingLayout, operator_rna

from studio_avatar.core import deps, paths
from studio_avatar.core.errors import Cancelled
from studio_avatar.core.progress import CancelToken

MODULE = addon_module(__name__)

# A stand-in for Blender's Python: "-m pip --version" fails until "-m ensurepip" ran; "-m pip install" prints
# what pip prints and logs its argv; FAKE_PIP_FAIL=1 makes it fail like pip without network.
FAKE_PYTHON = """\
#!{python}
import json, os, sys, time
here = os.path.dirname(os.path.abspath(__file__))
marker = os.path.join(here, "pip-ready")
args = sys.argv[1:]
with open(os.path.join(here, "calls.jsonl"), "a") as log:
    log.write(json.dumps(args) + "\\n")
if args[:3] == ["-m", "pip", "--version"]:
    sys.exit(0 if os.path.exists(marker) else 1)
if args[:2] == ["-m", "ensurepip"]:
    open(marker, "w").close()
    sys.exit(0)
specs = [a for a in args if "==" in a]
if os.environ.get("FAKE_PIP_SLOW"):
    print("Collecting " + specs[0], flush=True)
    time.sleep(60)
if os.environ.get("FAKE_PIP_FAIL"):
    print("Looking in indexes: https://pypi.org/simple")
    print("ERROR: Could not find a version that satisfies the requirement " + specs[0] + " (from versions: none)")
    print("ERROR: No matching distribution found for " + specs[0])
    sys.exit(1)
for spec in specs:
    name = spec.split("==")[0]
    print("Collecting " + spec)
    print("  Downloading https://files.example/" + name + "-1.0-py3-none-any.whl (1.2 MB)")
print("Installing collected packages: " + ", ".join(s.split("==")[0] for s in specs))
print("Successfully installed " + " ".join(s.replace("==", "-") for s in specs))
"""


@pytest.fixture
def fake_python(tmp_path):
    path = tmp_path / "fakebin" / "python3.11"
    path.parent.mkdir()
    path.write_text(FAKE_PYTHON.format(python=sys.executable))
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def fake_calls(fake_python):
    return [json.loads(line) for line in (fake_python.parent / "calls.jsonl").read_text().splitlines()]


# -- the pinned list -----------------------------------------------------------------------------------------

def test_pinned_list_agrees_with_the_requirements_files(repo_root):
    worker = deps.parse_requirements((repo_root / "requirements-worker.txt").read_text())
    nodeps = deps.parse_requirements((repo_root / "requirements-nodeps.txt").read_text())
    assert worker == [(deps.normalize_name(r.name), r.version) for r in deps.REQUIREMENTS if not r.no_deps]
    assert nodeps == [(deps.normalize_name(r.name), r.version) for r in deps.REQUIREMENTS if r.no_deps]


def test_parse_requirements_skips_comments_and_options_and_wants_pins():
    text = "# comment\n-r other.txt\nOpenCV_Python.Headless==4.11.0.86  # pinned\n\n"
    assert deps.parse_requirements(text) == [("opencv-python-headless", "4.11.0.86")]
    with pytest.raises(ValueError, match="not pinned"):
        deps.parse_requirements("torch>=2\n")


# -- the check -----------------------------------------------------------------------------------------------

def test_check_reports_installed_missing_and_wrong_versions():
    import numpy

    wanted = (deps.Requirement("numpy", numpy.__version__), deps.Requirement("numpy", "0.0.1"),
              deps.Requirement("studio-avatar-no-such-package", "1.0"))
    ok, wrong, missing = deps.check_dependencies(sys.path, wanted)
    assert (ok.found_version, ok.ok, ok.state) == (numpy.__version__, True, "OK")
    assert (wrong.found_version, wrong.ok, wrong.state) == (numpy.__version__, False, "WRONG_VERSION")
    assert (missing.found_version, missing.ok, missing.state) == (None, False, "MISSING")
    assert deps.missing_requirements([ok, wrong, missing], wanted) == list(wanted[1:])


def test_check_searches_the_given_folders_only_and_reads_metadata(tmp_path):
    dist_info = tmp_path / "site" / "Fake_Pkg-2.0+cpu.dist-info"
    dist_info.mkdir(parents=True)
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: fake-pkg\nVersion: 2.0+cpu\n")
    wanted = (deps.Requirement("fake-pkg", "2.0"), deps.Requirement("numpy", "1.26.4"))
    found, numpy_status = deps.check_dependencies([tmp_path / "site"], wanted)
    assert found.ok and found.found_version == "2.0+cpu"  # a local version label (torch's +cpu) is the same release
    assert numpy_status.state == "MISSING"


# -- pip commands --------------------------------------------------------------------------------------------

def test_pip_commands_are_argv_lists_with_target_and_the_right_torch_index(tmp_path):
    target = tmp_path / "site packages"
    cpu, nodeps = deps.install_commands("/blender/python3.11", target, "cpu")
    assert cpu[:4] == ["/blender/python3.11", "-m", "pip", "install"]
    assert cpu[cpu.index("--target") + 1] == str(target)  # one argument even with a space
    assert {"--upgrade", "--no-input", "--disable-pip-version-check"} <= set(cpu)
    assert cpu[cpu.index("--extra-index-url") + 1] == deps.TORCH_CPU_INDEX and "--index-url" not in cpu
    assert "torch==2.13.0" in cpu and "--no-deps" not in cpu and "mediapipe==0.10.21" not in cpu
    assert "--no-deps" in nodeps and nodeps[-2:] == ["mediapipe==0.10.21", "anny==0.6.2"]
    assert "--extra-index-url" not in nodeps
    cuda, _ = deps.install_commands("/blender/python3.11", target, "cuda")
    assert "--extra-index-url" not in cuda and "torch==2.13.0" in cuda
    assert all(isinstance(arg, str) for arg in cpu + nodeps + cuda)
    # a group is installed whole, so that diffusers cannot pull an unpinned numpy 2 into the folder
    (only_opencv,) = deps.install_commands("py", target, "cpu", [deps.REQUIREMENTS[1]])
    assert {"numpy==1.26.4", "opencv-python-headless==4.11.0.86", "diffusers==0.42.1"} <= set(only_opencv)
    (only_anny,) = deps.install_commands("py", target, "cpu", [deps.REQUIREMENTS[-1]])
    assert only_anny[-3:] == ["--no-deps", "mediapipe==0.10.21", "anny==0.6.2"]
    with pytest.raises(ValueError, match="torch_variant"):
        deps.pip_command("py", target, deps.REQUIREMENTS, torch_variant="rocm")


# -- running pip ---------------------------------------------------------------------------------------------

def test_pip_output_lines_become_progress_messages():
    # lines as pip 25 prints them without a terminal (index, local wheel folder, cache)
    lines = [
        "Collecting protobuf==4.25.9",
        "  Downloading protobuf-4.25.9-cp37-abi3-manylinux2014_x86_64.whl (295 kB)",
        "Processing /opt/wheels/requests-2.34.2-py3-none-any.whl (from diffusers==0.42.1)",
        "  Using cached https://files.example/packages/filelock-4.2.11-py3-none-any.whl (222 kB)",
        "Looking in indexes: https://pypi.org/simple",
        "Installing collected packages: protobuf, requests",
        "Successfully installed protobuf-4.25.9 requests-2.34.2",
    ]
    parsed = [deps.parse_pip_line(line, collected=1) for line in lines]
    assert [p and p[1] for p in parsed] == [
        "Collecting protobuf==4.25.9",
        "Downloading protobuf-4.25.9-cp37-abi3-manylinux2014_x86_64.whl (295 kB)",
        "Processing requests-2.34.2-py3-none-any.whl (from diffusers==0.42.1)",
        "Using cached filelock-4.2.11-py3-none-any.whl (222 kB)",
        None,
        "Installing protobuf, requests",
        "Installed protobuf-4.25.9 requests-2.34.2",
    ]
    assert [p[0] for p in parsed if p][-2:] == [0.85, 1.0]


def test_install_runs_ensurepip_then_both_pip_groups_with_ordered_progress(fake_python, tmp_path):
    events = []
    target = tmp_path / "site-packages"
    deps.run_install(str(fake_python), target, "cpu", lambda f, m: events.append((f, m)),
                     pip_cache_dir=tmp_path / "pip-cache")
    calls = fake_calls(fake_python)
    assert calls[0] == ["-m", "pip", "--version"] and calls[1] == ["-m", "ensurepip", "--upgrade"]
    assert [c[:2] for c in calls[2:]] == [["-m", "pip"], ["-m", "pip"]] and "--no-deps" in calls[3]
    assert target.is_dir()
    fractions = [f for f, _ in events]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0 and all(0 <= f <= 1 for f in fractions)
    messages = [m for _, m in events]
    assert messages[0] == "Installing pip into Blender's Python (ensurepip)"
    assert "Collecting numpy==1.26.4" in messages
    assert "Downloading torch-1.0-py3-none-any.whl (1.2 MB)" in messages
    installing = [i for i, m in enumerate(messages) if m.startswith("Installing ")]
    assert messages.index("Collecting numpy==1.26.4") < installing[1] < messages.index("Collecting mediapipe==0.10.21")
    # pip runs a second time without ensurepip
    deps.run_install(str(fake_python), target, "cpu", needed=[deps.REQUIREMENTS[0]])
    assert [c[:3] for c in fake_calls(fake_python)[4:]] == [["-m", "pip", "--version"], ["-m", "pip", "install"]]


def test_install_failure_says_what_pip_said_and_what_to_try(fake_python, tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_PIP_FAIL", "1")
    with pytest.raises(deps.DependencyInstallError) as failed:
        deps.run_install(str(fake_python), tmp_path / "site-packages", "cuda")
    message = str(failed.value)
    assert message.startswith("pip failed (exit code 1): ERROR: Could not find a version that satisfies")
    assert "No matching distribution found for numpy==1.26.4" in message
    assert "network" in message and "disk space" in message and "Worker Python" in message
    assert "Traceback" not in message


def test_install_with_a_missing_interpreter_fails_clearly(tmp_path):
    with pytest.raises(deps.DependencyInstallError, match="cannot run .*no-python"):
        deps.run_install(str(tmp_path / "no-python"), tmp_path / "site-packages")


def test_background_install_can_be_cancelled(fake_python, tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_PIP_SLOW", "1")
    (fake_python.parent / "pip-ready").touch()
    job = deps.DependencyInstall(str(fake_python), tmp_path / "site-packages").start()
    seen, deadline = [], time.monotonic() + 20
    while not seen and time.monotonic() < deadline:
        seen += job.poll_events()
        time.sleep(0.02)
    assert seen[0]["stage"] == deps.STAGE and seen[0]["message"] == "Collecting numpy==1.26.4"
    job.cancel(timeout_s=10.0)
    assert not job.running and not job.succeeded and job.cancel_requested
    assert "cancelled" in job.error_message()


def test_run_install_raises_cancelled_when_cancelled_before_pip(fake_python, tmp_path):
    token = CancelToken()
    token.cancel()
    with pytest.raises(Cancelled):
        deps.run_install(str(fake_python), tmp_path / "site-packages", cancel=token)


# -- the weights folder override ------------------------------------------------------------------------------

def test_weights_folder_defaults_to_the_shipped_one_and_honours_the_override(repo_root, tmp_path, monkeypatch):
    from studio_avatar.core import cli

    monkeypatch.delenv("STUDIO_AVATAR_WEIGHTS", raising=False)
    assert paths.weights_dir() == repo_root / "weights"
    monkeypatch.setenv("STUDIO_AVATAR_WEIGHTS", str(tmp_path / "my weights"))
    assert paths.weights_dir() == tmp_path / "my weights"
    # the CLI's --weights-dir (what the add-on passes to the worker) sets the same override
    assert cli.main(["--progress", "none", "--weights-dir", str(tmp_path / "cli weights"), "probe",
                     str(tmp_path / "missing.mp4")]) != 0
    assert paths.weights_dir() == tmp_path / "cli weights"


# -- inside the installed extension ---------------------------------------------------------------------------

@pytest.fixture
def addon(installed):
    import importlib

    prefs_module = importlib.import_module(f"{MODULE}.preferences")
    prefs_module.DEPENDENCY_REPORT.statuses, prefs_module.DEPENDENCY_REPORT.error = None, ""
    return {
        "prefs": bpy.context.preferences.addons[MODULE].preferences,
        "preferences": prefs_module,
        "operators": importlib.import_module(f"{MODULE}.operators.deps"),
        "jobs": importlib.import_module(f"{MODULE}.operators.jobs"),
        "deps": importlib.import_module(f"{MODULE}.core.deps"),
    }


def draw_preferences(prefs):
    layout = RecordingLayout()
    type(prefs).draw(DrawSelf(layout, prefs), bpy.context)
    return layout


def test_operators_have_descriptions_and_props_have_tooltips(installed):
    prefs = bpy.context.preferences.addons[MODULE].preferences
    for name in ("weights_dir", "torch_variant", "flame_model_path", "cache_dir"):
        assert prefs.bl_rna.properties[name].description
    for idname in ("studio_avatar.install_dependencies", "studio_avatar.check_dependencies"):
        rna = operator_rna(idname)
        assert rna.description
        assert all(p.description for p in rna.properties if p.identifier != "rna_type")


def test_preferences_list_every_dependency_with_its_state(addon):
    layout = draw_preferences(addon["prefs"])
    props = [c[1] for c in layout.calls if c[0] == "prop"]
    assert props[-3:] == ["flame_uv_path", "weights_dir", "torch_variant"]
    labels = {c[1]: c[2] for c in layout.calls if c[0] == "label"}
    for req in deps.REQUIREMENTS:  # all present in the test venv
        assert labels[f"{req.name} {req.version}: installed"] == "CHECKMARK"
    assert "All dependencies are installed" in labels
    assert layout.operators()[-2:] == ["studio_avatar.install_dependencies", "studio_avatar.check_dependencies"]
    assert any(text.startswith("Weights in use: ") and text.endswith("weights") for text in labels)


def test_missing_dependencies_show_as_missing_and_install_runs_the_fake_pip(addon, fake_python, monkeypatch):
    monkeypatch.setattr(addon["preferences"], "dependency_search_path", lambda: [])
    monkeypatch.setattr(addon["operators"], "installer_python", lambda: str(fake_python))
    assert bpy.ops.studio_avatar.check_dependencies() == {"FINISHED"}
    labels = draw_preferences(addon["prefs"]).labels()
    assert "torch 2.13.0: missing" in labels and "All dependencies are installed" not in labels

    assert bpy.ops.studio_avatar.install_dependencies(torch_variant="cuda", wait=True) == {"FINISHED"}
    installs = [c for c in fake_calls(fake_python) if c[2:3] == ["install"]]
    assert len(installs) == 2 and "--extra-index-url" not in installs[0]
    target = installs[0][installs[0].index("--target") + 1]
    assert target == addon["preferences"].dependency_folder()
    assert target.startswith(os.environ["BLENDER_USER_RESOURCES"])  # only inside the add-on's user folder
    job = bpy.context.window_manager.studio_avatar_job
    assert not job.running and job.fraction == pytest.approx(1.0) and job.message == "Dependencies installed"


def test_a_failed_install_is_reported_and_shown_in_the_preferences(addon, fake_python, monkeypatch):
    monkeypatch.setattr(addon["preferences"], "dependency_search_path", lambda: [])
    monkeypatch.setattr(addon["operators"], "installer_python", lambda: str(fake_python))
    monkeypatch.setenv("FAKE_PIP_FAIL", "1")
    with pytest.raises(RuntimeError, match="No matching distribution found"):
        bpy.ops.studio_avatar.install_dependencies(wait=True)
    labels = draw_preferences(addon["prefs"]).labels()
    assert "Last install failed:" in labels
    assert "pip failed (exit code 1)" in " ".join(labels)


def test_install_with_everything_present_does_nothing(addon, fake_python, monkeypatch):
    monkeypatch.setattr(addon["operators"], "installer_python", lambda: str(fake_python))
    assert bpy.ops.studio_avatar.install_dependencies(wait=True) == {"FINISHED"}
    assert not (fake_python.parent / "calls.jsonl").exists()


def test_progress_and_cancel_are_drawn_while_installing(addon):
    job = bpy.context.window_manager.studio_avatar_job
    job.running, job.stage, job.fraction, job.message = True, deps.STAGE, 0.3, "Downloading torch"
    try:
        layout = draw_preferences(addon["prefs"])
        assert ("progress", pytest.approx(0.3), "30%  Downloading torch") in layout.calls
        assert "studio_avatar.cancel_job" in layout.operators()
        assert "studio_avatar.install_dependencies" not in layout.operators()
    finally:
        job.running, job.stage = False, ""


def test_the_weights_override_reaches_the_worker(addon, tmp_path):
    prefs = addon["prefs"]
    try:
        prefs.weights_dir = str(tmp_path / "weights")
        _, options, _ = addon["jobs"].worker_settings(bpy.context)
        assert options[options.index("--weights-dir") + 1] == str(tmp_path / "weights")
        assert f"Weights in use: {tmp_path / 'weights'}" in draw_preferences(prefs).labels()
    finally:
        prefs.weights_dir = ""
    _, options, _ = addon["jobs"].worker_settings(bpy.context)
    assert "--weights-dir" not in options
