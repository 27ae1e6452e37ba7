"""Render the synthetic head from four sides with Cycles (CPU): OUT_DIR/view_000.png ... view_270.png.

Run as a separate process by tests/test_blender_head.py, so that a crash in
the renderer cannot take the test session down:
    python tests/helpers/render_head_turntable.py OUT_DIR [SIZE] [SAMPLES]
"""

import sys
from pathlib import Path

HELPERS = Path(__file__).resolve().parent
sys.path[:0] = [str(HELPERS.parent.parent / "tools"), str(HELPERS)]

from head_contact_sheet import aim_camera, render_still, stage_head  # noqa: E402
from synthetic_head import make_synthetic_head  # noqa: E402

AZIMUTHS = (0, 90, 180, 270)


def main(out_dir: Path, size: int = 128, samples: int = 8) -> None:
    staged = stage_head(make_synthetic_head(), size, samples)
    for azimuth in AZIMUTHS:
        aim_camera(staged, azimuth)
        render_still(out_dir / f"view_{azimuth:03d}.png")


if __name__ == "__main__":
    main(Path(sys.argv[1]), *(int(arg) for arg in sys.argv[2:4]))
