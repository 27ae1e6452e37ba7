"""Write core/track/landmark_mirror.json: the left/right partner of each of mediapipe's 478 landmarks.

Derived from the open head's landmark embedding (placed by mediapipe on a
symmetric head): landmark i's partner is the landmark nearest to i's mirror
image (x -> -x), kept only where the pairing is mutual and closer than 3 mm.
Run once after a change to the landmark embedding:
``.venv/bin/python tools/make_landmark_mirror.py``.
"""

import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from devpath import load_package  # noqa: E402

load_package()
import torch  # noqa: E402

from studio_avatar.core.head.open_head import get_open_head  # noqa: E402

MAX_DISTANCE_M = 0.003


def main() -> None:
    model = get_open_head()
    points = model.landmarks(torch.as_tensor(model.template_m[None], dtype=torch.float64))[0].numpy()
    mirrored = points * np.array([-1.0, 1.0, 1.0])
    distance = np.linalg.norm(mirrored[:, None] - points[None], axis=2)
    partner = distance.argmin(1)
    mutual = (partner[partner] == np.arange(len(points))) & (distance.min(1) < MAX_DISTANCE_M)
    table = np.where(mutual, partner, -1)
    out = Path(__file__).resolve().parent.parent / "core" / "track" / "landmark_mirror.json"
    out.write_text(json.dumps({"source": "open head landmark embedding, mutual nearest mirror images within 3 mm",
                               "partner": table.tolist()}) + "\n")
    print(f"{out}: {int(mutual.sum())} of {len(table)} landmarks paired, {int((table == np.arange(len(table))).sum())} on the midline")


if __name__ == "__main__":
    main()
