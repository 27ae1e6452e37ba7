"""Validate and build the Blender extension zip with Blender's own tool (shipped in the bpy wheel).

Usage: .venv/bin/python tools/build_extension.py [OUTPUT_DIR]    (default: dist/)
"""

import importlib.util
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def blender_ext_tool() -> Path:
    """Path of blender_ext.py inside the installed bpy wheel (found without importing bpy)."""
    spec = importlib.util.find_spec("bpy")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("bpy is not installed in this Python; run `make test` or `make demo` to set up .venv")
    base = Path(list(spec.submodule_search_locations)[0])
    matches = sorted(base.glob("*/scripts/addons_core/bl_pkg/cli/blender_ext.py"))
    if not matches:
        raise SystemExit(f"blender_ext.py not found under {base}")
    return matches[-1]


def run_tool(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(blender_ext_tool()), *args], capture_output=True, text=True)


def validate(source_dir: Path = REPO_ROOT) -> subprocess.CompletedProcess:
    return run_tool("validate", str(source_dir))


def build(output_dir: Path, source_dir: Path = REPO_ROOT) -> Path:
    """Build the zip into ``output_dir`` and return its path; raises RuntimeError with the tool's output."""
    output_dir.mkdir(parents=True, exist_ok=True)
    before = set(output_dir.glob("*.zip"))
    result = run_tool("build", "--source-dir", str(source_dir), "--output-dir", str(output_dir))
    zips = sorted(set(output_dir.glob("*.zip")) - before) or sorted(output_dir.glob("studio_avatar-*.zip"))
    if result.returncode != 0 or not zips:
        raise RuntimeError(f"extension build failed:\n{result.stdout}\n{result.stderr}")
    return zips[-1]


if __name__ == "__main__":
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else REPO_ROOT / "dist"
    checked = validate()
    if checked.returncode != 0:
        sys.exit(f"manifest validation failed:\n{checked.stdout}{checked.stderr}")
    print(f"built {build(out)}")
