"""Image files and texel operations: 16-bit PNG, fast 8-bit PNG, half-float EXR, point sampling, push-pull hole filling.

Arrays in memory are float32 RGB (channel order R, G, B), row 0 at the top;
"linear" means linear-light values (0..1 for reflectances), "srgb" the
sRGB-encoded ones. Files go through OpenCV (BGR on disk order is handled
here). Writers write to the path they are given; callers (stages) give them
a staging path, so a file appears whole or not at all.
"""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

import numpy as np


def write_png16(path: str | os.PathLike, image: np.ndarray) -> None:
    """(H, W, 3) RGB or (H, W) values in 0..1 -> 16-bit PNG (the values as they are: encode sRGB first for colour)."""
    import cv2

    image = np.asarray(image)
    data = np.empty(image.shape, np.uint16)
    for top in range(0, image.shape[0], 256):    # in row bands: a 4096^2 float64 copy alone would be 400 MB
        band = image[top:top + 256].astype(np.float64) * 65535.0
        data[top:top + 256] = np.clip(np.rint(band, out=band), 0, 65535, out=band)
    if data.ndim == 3:
        data = np.ascontiguousarray(data[..., ::-1])
    if not cv2.imwrite(str(path), data, [cv2.IMWRITE_PNG_COMPRESSION, 1]):
        raise OSError(f"could not write {path}")


def write_png8(path: str | os.PathLike, image_bgr: np.ndarray) -> None:
    """(H, W, 3) uint8 BGR -> 8-bit RGB PNG, about twice as fast as OpenCV's encoder at the same size.

    Every row uses PNG's "Up" filter (a vectorised difference with the row
    above) and zlib's fastest level; OpenCV tries libpng's filters per row,
    which costs more than the compression. numpy and zlib release the GIL, so
    this runs well on a writer thread.
    """
    height, width = image_bgr.shape[:2]
    assert image_bgr.shape == (height, width, 3) and image_bgr.dtype == np.uint8
    rows = np.ascontiguousarray(image_bgr[:, :, ::-1]).reshape(height, width * 3)
    raw = np.empty((height, width * 3 + 1), np.uint8)
    raw[:, 0] = 2                                           # filter type "Up"
    raw[0, 1:] = rows[0]                                    # the row above the first is zero
    np.subtract(rows[1:], rows[:-1], out=raw[1:, 1:])       # modulo 256, as PNG defines it

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)   # 8 bits, truecolour, deflate, no interlace
    with open(path, "wb") as handle:
        handle.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 1))
                     + chunk(b"IEND", b""))


def read_image(path: str | os.PathLike) -> np.ndarray:
    """An 8- or 16-bit PNG (or any OpenCV format) -> float32 RGB or grey in 0..1, as stored (no decoding)."""
    import cv2

    data = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if data is None:
        raise OSError(f"could not read the image {path}")
    scale = 65535.0 if data.dtype == np.uint16 else 255.0 if data.dtype == np.uint8 else 1.0
    image = data.astype(np.float32) / scale
    if image.ndim == 3:
        image = image[..., 2::-1] if image.shape[2] >= 3 else image[..., 0]
    return np.ascontiguousarray(image)


def write_exr(path: str | os.PathLike, image: np.ndarray) -> None:
    """(H, W, 3) RGB float -> half-float OpenEXR (OpenCV's EXR codec is opt-in: enabled here, before first use)."""
    import cv2

    os.environ.setdefault("OPENCV_IO_ENABLE_OPENEXR", "1")
    data = np.ascontiguousarray(np.asarray(image, np.float32)[..., ::-1])
    if not cv2.imwrite(str(Path(path)), data, [cv2.IMWRITE_EXR_TYPE, cv2.IMWRITE_EXR_TYPE_HALF]):
        raise OSError(f"could not write {path}")


def read_exr(path: str | os.PathLike, alpha: bool = False) -> np.ndarray:
    """An OpenEXR image -> float32 RGB (RGBA with ``alpha``; an image without alpha then raises OSError)."""
    import cv2

    os.environ.setdefault("OPENCV_IO_ENABLE_OPENEXR", "1")
    data = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    channels = 4 if alpha else 3
    if data is None or data.ndim != 3 or data.shape[2] < channels:
        raise OSError(f"could not read {'an RGBA' if alpha else 'an RGB'} image from {path}")
    order = [2, 1, 0, 3][:channels]                     # OpenCV's BGR(A) -> RGB(A)
    return np.ascontiguousarray(data[..., order].astype(np.float32))


def sample_points(image: np.ndarray, x: np.ndarray, y: np.ndarray, nearest: bool = False) -> np.ndarray:
    """``image`` (H, W[, C]) float32 sampled at (n,) pixel coordinates (0 = the first pixel's centre) -> (n[, C]).

    Bilinear (or nearest) with edge replication, through OpenCV's remap; the
    points are laid out in rows of 4096 (remap limits images to 32767 rows).
    """
    return sample_at(image, point_maps(x, y), nearest)


def point_maps(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """(n,) pixel coordinates laid out as ``sample_at`` takes them: (map_x, map_y, n); build once, sample many images."""
    count = len(x)
    columns = 4096
    rows = max(1, -(-count // columns))
    map_x = np.zeros(rows * columns, np.float32)
    map_y = np.zeros(rows * columns, np.float32)
    map_x[:count], map_y[:count] = x, y
    return map_x.reshape(rows, columns), map_y.reshape(rows, columns), count


def sample_at(image: np.ndarray, maps: tuple[np.ndarray, np.ndarray, int], nearest: bool = False) -> np.ndarray:
    """``sample_points`` at the points of ``point_maps``."""
    import cv2

    map_x, map_y, count = maps
    out = cv2.remap(np.ascontiguousarray(image), map_x, map_y, cv2.INTER_NEAREST if nearest else cv2.INTER_LINEAR,
                    borderMode=cv2.BORDER_REPLICATE)
    return out.reshape((map_x.size,) + image.shape[2:])[:count]


def push_pull_fill(image: np.ndarray, known: np.ndarray) -> np.ndarray:
    """(H, W, C) image with the pixels where ``known`` (H, W) is False filled smoothly from the known ones (push-pull)."""
    import cv2

    levels = [(image * known[..., None], known.astype(np.float32))]
    while min(levels[-1][1].shape) > 4:
        colour, weight = levels[-1]
        levels.append((cv2.resize(colour, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA),
                       cv2.resize(weight, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA)))
    colour, weight = levels[-1]
    filled = colour / np.maximum(weight, 1e-6)[..., None]
    for colour, weight in reversed(levels[:-1]):
        up = cv2.resize(filled, (colour.shape[1], colour.shape[0]), interpolation=cv2.INTER_LINEAR)
        w = np.clip(weight, 0, 1)[..., None]
        filled = np.where(weight[..., None] > 1e-6, colour / np.maximum(weight, 1e-6)[..., None], up) * w + up * (1 - w)
    return filled.astype(np.float32)
