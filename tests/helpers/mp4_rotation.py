"""Give an MP4 a rotation like a phone portrait clip: rewrite the video track's display matrix (tkhd)."""

import struct
from pathlib import Path

_MATRICES = {  # QuickTime 16.16 fixed point a, b, u, c, d, v, x, y, w
    0: (65536, 0, 0, 0, 65536, 0, 0, 0, 1 << 30),
    90: (0, 65536, 0, -65536, 0, 0, 0, 0, 1 << 30),
    180: (-65536, 0, 0, 0, -65536, 0, 0, 0, 1 << 30),
    270: (0, -65536, 0, 65536, 0, 0, 0, 0, 1 << 30),
}


def set_mp4_rotation(source: Path, dest: Path, degrees: int) -> Path:
    data = bytearray(source.read_bytes())
    box = data.find(b"tkhd")
    assert box > 0, "no track header in this MP4"
    version = data[box + 4]
    matrix = box + 8 + (20 if version == 0 else 32) + 16  # after times/ids/duration, reserved, layer..volume
    data[matrix:matrix + 36] = struct.pack(">9i", *_MATRICES[degrees])
    dest.write_bytes(bytes(data))
    return dest
