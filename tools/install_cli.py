"""Write the ``studio-avatar`` command for this checkout into a virtual environment.

Usage: .venv/bin/python tools/install_cli.py .venv/bin/studio-avatar
"""

import sys

from devpath import REPO_ROOT, load_package

load_package()
from studio_avatar.core.launcher import write_console_script  # noqa: E402

if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    print(f"wrote {write_console_script(sys.argv[1], python=sys.executable, extension_root=REPO_ROOT)}")
