"""Which heavy libraries a fresh Python pulls in when it imports some of our modules (import-cost tests)."""

import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def heavy_modules_after_import(modules, watch):
    """Import ``modules`` (dotted names) in a new interpreter; return the names in ``watch`` it has loaded, sorted."""
    code = f"""
import importlib, sys
sys.path.insert(0, {str(REPO_ROOT / 'tools')!r})
from devpath import load_package
load_package()
for name in {list(modules)!r}:
    importlib.import_module(name)
print(",".join(sorted(m for m in {list(watch)!r} if m in sys.modules)))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    return [name for name in out.stdout.strip().split(",") if name]
