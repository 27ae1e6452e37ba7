"""Render the open head (or the synthetic one) from four sides with Cycles (CPU): OUT_DIR/view_000.png ... view_270.png.

Run as a separate process by tests/test_blender_head.py, so that a crash in
the renderer cannot take the test session down:
    python tests/helpers/render_head_turntable.py OUT_DIR [SIZE] [SAMPLES] [open|synthetic]
"""

import sys
from pathlib import Path

HELPERS = Path(__file__).resolve().parent
sys.path[:0] = [str(HELPERS.parent.parent / "tools"), str(HELPERS)]

from head_contact_sheet import aim_camera, render_still, stage_head  # noqa: E402
from synthetic_head import make_synthetic_head  # noqa: E402

AZIMUTHS = (0, 90, 180, 270)


def main(out_dir: Path, size: int = 128, samples: int = 8, head: str = "open") -> None:
    if head == "open":
        from devpath import load_package

        load_package()
        from studio_avatar.core.head.open_head import build_open_head

        model = build_open_head()
    else:
        model = make_synthetic_head()
    staged = stage_head(model, size, samples)
    for azimuth in AZIMUTHS:
        aim_camera(staged, azimuth)
        render_still(out_dir / f"view_{azimuth:03d}.png")


if __name__ == "__main__":
    main(Path(sys.argv[1]), *(int(arg) for arg in sys.argv[2:4]), *sys.argv[4:5])
