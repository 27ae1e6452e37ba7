"""What a video stream declares about its colours, and the correction OpenCV's decode needs for it.

OpenCV's FFmpeg backend turns every stream's Y'CbCr into RGB with BT.601's matrix, whatever the stream declares
(opencv/opencv#20513). Phone video is BT.709 (HD and up; BT.2020 for HDR). Decoded as BT.601, skin comes out
bluer and greener than it was filmed (log B/G up by about 0.09, which the skin-tone calibration reads as a
paler skin). This module reads the declared matrix -- from the MP4/QuickTime sample entry's ``colr`` box
(``nclx``/``nclc``) or, failing that, from the H.264 sequence parameter set's VUI -- and gives the 3x3 matrix
that turns OpenCV's BT.601 decode into the declared matrix's. It acts on gamma-encoded R'G'B': both decodes
apply the same range scaling, so its offsets cancel.

A stream that declares nothing keeps BT.601: that is FFmpeg's own default, what OpenCV's writer encodes with
(the synthetic captures), and what players assume for SD video. HEVC parameter sets and Matroska's colour
elements are not read (such streams count as undeclared unless a ``colr`` box says otherwise).
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# ITU-T H.273 matrix_coefficients -> name and luma weights (Kr, Kb)
_MATRICES = {1: "bt709", 4: "fcc", 5: "bt601", 6: "bt601", 7: "smpte240m", 9: "bt2020", 10: "bt2020"}
LUMA_WEIGHTS = {"bt601": (0.299, 0.114), "bt709": (0.2126, 0.0722), "bt2020": (0.2627, 0.0593),
                "smpte240m": (0.212, 0.087), "fcc": (0.30, 0.11)}
HDR_TRANSFERS = {16: "PQ", 18: "HLG"}          # H.273 transfer_characteristics of HDR video
_CONTAINER_BOXES = {b"moov", b"trak", b"mdia", b"minf", b"stbl"}
_VISUAL_SAMPLE_ENTRY_BYTES = 78                # what precedes a visual sample entry's child boxes (ISO 14496-12)
_HIGH_PROFILES = {100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135}   # SPS carries chroma format


@dataclass(frozen=True)
class ColourSignal:
    """A stream's declared colour coding: the Y'CbCr matrix (``bt601`` when undeclared) and where it was read."""

    matrix: str = "bt601"
    source: str = "undeclared"      # "colr box", "H.264 VUI" or "undeclared"
    transfer: int = 2               # H.273 transfer_characteristics (2: unspecified)

    @property
    def hdr(self) -> str | None:
        """"PQ" or "HLG" for HDR video (whose tone this project does not map), else None."""
        return HDR_TRANSFERS.get(self.transfer)


def _ycbcr_from_rgb(matrix: str) -> np.ndarray:
    kr, kb = LUMA_WEIGHTS[matrix]
    kg = 1.0 - kr - kb
    return np.array([[kr, kg, kb],
                     [-kr / (2 * (1 - kb)), -kg / (2 * (1 - kb)), 0.5],
                     [0.5, -kg / (2 * (1 - kr)), -kb / (2 * (1 - kr))]])


def decode_correction(signal: ColourSignal) -> np.ndarray | None:
    """(3, 3) matrix on BGR that turns OpenCV's BT.601 decode into the declared matrix's decode; None for BT.601."""
    if signal.matrix == "bt601":
        return None
    rgb = np.linalg.inv(_ycbcr_from_rgb(signal.matrix)) @ _ycbcr_from_rgb("bt601")
    return rgb[::-1, ::-1].astype(np.float32)                           # RGB -> BGR on both sides


def apply_correction(image_bgr: np.ndarray, correction: np.ndarray | None) -> np.ndarray:
    """(H, W, 3) uint8 BGR decoded by OpenCV, in the declared matrix (``decode_correction``'s; None: as it is)."""
    if correction is None:
        return image_bgr
    import cv2

    return cv2.transform(image_bgr, correction)


def read_colour_signal(path: str | os.PathLike) -> ColourSignal:
    """The stream's declared colour coding; ``ColourSignal()`` (BT.601, undeclared) for anything not readable."""
    try:
        with open(Path(path), "rb") as handle:
            entry = _video_sample_entry(handle)
    except (OSError, struct.error, ValueError, IndexError):
        return ColourSignal()
    if entry is None:
        return ColourSignal()
    children = dict(_child_boxes(entry))
    colr = _colr(children.get(b"colr", b""))
    if colr is not None and colr[1] in _MATRICES:
        return ColourSignal(_MATRICES[colr[1]], "colr box", colr[0])
    vui = _avc_vui(children.get(b"avcC", b""))
    if vui is not None and vui[1] in _MATRICES:
        return ColourSignal(_MATRICES[vui[1]], "H.264 VUI", vui[0])
    transfer = colr[0] if colr is not None else vui[0] if vui is not None else 2
    return ColourSignal(transfer=transfer)


# -- MP4 / QuickTime boxes ---------------------------------------------------------------------------------------

def _boxes(handle, start: int, end: int):
    """(type, payload offset, payload end) of the boxes between ``start`` and ``end`` of the file."""
    offset = start
    while offset + 8 <= end:
        handle.seek(offset)
        size, kind = struct.unpack(">I4s", handle.read(8))
        header = 8
        if size == 1:
            size, header = struct.unpack(">Q", handle.read(8))[0], 16
        elif size == 0:
            size = end - offset
        if size < header:
            return
        yield kind, offset + header, min(offset + size, end)
        offset += size


def _video_sample_entry(handle) -> bytes | None:
    """The first video track's first sample entry (its payload), or None."""
    end = handle.seek(0, os.SEEK_END)
    return _find_video_entry(handle, 0, end, None)


def _find_video_entry(handle, start: int, end: int, handler: bytes | None) -> bytes | None:
    for kind, payload, stop in _boxes(handle, start, end):
        if kind == b"hdlr":
            handle.seek(payload + 8)                                    # version/flags, pre_defined
            handler = handle.read(4)
        elif kind == b"stsd" and handler == b"vide":
            handle.seek(payload + 8)                                    # version/flags, entry count
            size, = struct.unpack(">I", handle.read(4))
            handle.seek(payload + 8)
            return handle.read(min(size, stop - payload - 8))
        elif kind in _CONTAINER_BOXES:
            found = _find_video_entry(handle, payload, stop, None if kind == b"trak" else handler)
            if found is not None:
                return found
    return None


def _child_boxes(entry: bytes):
    """(type, payload) of a visual sample entry's child boxes (avcC, colr, ...)."""
    offset = 8 + _VISUAL_SAMPLE_ENTRY_BYTES
    while offset + 8 <= len(entry):
        size, kind = struct.unpack(">I4s", entry[offset:offset + 8])
        if size < 8:
            return
        yield kind, entry[offset + 8: offset + size]
        offset += size


def _colr(payload: bytes) -> tuple[int, int] | None:
    """(transfer, matrix) of an ``nclx``/``nclc`` colour box, or None."""
    if len(payload) < 10 or payload[:4] not in (b"nclx", b"nclc"):
        return None
    _primaries, transfer, matrix = struct.unpack(">HHH", payload[4:10])
    return transfer, matrix


# -- H.264 sequence parameter set -------------------------------------------------------------------------------

class _Bits:
    """An RBSP bit reader with Exp-Golomb codes (H.264 7.2, 9.1)."""

    def __init__(self, nal: bytes):
        rbsp, zeros = bytearray(), 0
        for byte in nal:                                                # drop emulation-prevention bytes
            if zeros >= 2 and byte == 3:
                zeros = 0
                continue
            rbsp.append(byte)
            zeros = zeros + 1 if byte == 0 else 0
        self.data, self.position = bytes(rbsp), 0

    def u(self, count: int) -> int:
        value = 0
        for _ in range(count):
            value = (value << 1) | ((self.data[self.position >> 3] >> (7 - (self.position & 7))) & 1)
            self.position += 1
        return value

    def ue(self) -> int:
        zeros = 0
        while self.u(1) == 0:
            zeros += 1
            if zeros > 31:
                raise ValueError("bad Exp-Golomb code")
        return (1 << zeros) - 1 + self.u(zeros)

    def se(self) -> int:
        code = self.ue()
        return (code + 1) // 2 if code & 1 else -(code // 2)


def _avc_vui(avcc: bytes) -> tuple[int, int] | None:
    """(transfer, matrix) from the VUI of the first SPS in an ``avcC`` record, or None where it declares none."""
    if len(avcc) < 8 or avcc[5] & 0x1F == 0:
        return None
    length, = struct.unpack(">H", avcc[6:8])
    return sps_colour(avcc[8:8 + length])


def sps_colour(sps: bytes) -> tuple[int, int] | None:
    """(transfer_characteristics, matrix_coefficients) of an H.264 SPS NAL unit's VUI, or None if absent."""
    bits = _Bits(sps[1:])
    profile = bits.u(8)
    bits.u(16)                                                          # constraint flags, level
    bits.ue()                                                           # seq_parameter_set_id
    if profile in _HIGH_PROFILES:
        chroma_format = bits.ue()
        if chroma_format == 3:
            bits.u(1)
        bits.ue(), bits.ue(), bits.u(1)                                 # bit depths, transform bypass
        if bits.u(1):                                                   # scaling matrices present
            for index in range(12 if chroma_format == 3 else 8):
                if bits.u(1):
                    _skip_scaling_list(bits, 16 if index < 6 else 64)
    bits.ue()                                                           # log2_max_frame_num
    order = bits.ue()
    if order == 0:
        bits.ue()
    elif order == 1:
        bits.u(1), bits.se(), bits.se()
        for _ in range(bits.ue()):
            bits.se()
    bits.ue(), bits.u(1), bits.ue(), bits.ue()                         # ref frames, gaps, width, height
    if not bits.u(1):                                                   # frame_mbs_only
        bits.u(1)
    bits.u(1)                                                           # direct_8x8_inference
    if bits.u(1):                                                       # cropping
        for _ in range(4):
            bits.ue()
    if not bits.u(1):                                                   # vui_parameters_present
        return None
    if bits.u(1) and bits.u(8) == 255:                                  # aspect ratio (extended SAR)
        bits.u(32)
    if bits.u(1):                                                       # overscan
        bits.u(1)
    if not bits.u(1):                                                   # video_signal_type_present
        return None
    bits.u(4)                                                           # video_format, full range
    if not bits.u(1):                                                   # colour_description_present
        return None
    bits.u(8)                                                           # colour_primaries
    return bits.u(8), bits.u(8)


def _skip_scaling_list(bits: _Bits, size: int) -> None:
    last = following = 8
    for _ in range(size):
        if following:
            following = (last + bits.se() + 256) % 256
        last = following or last
