"""Frames are decoded in the Y'CbCr matrix the stream declares (OpenCV alone decodes everything as BT.601).

The truth is the standards' own coefficients, written out here: a stream's Y'CbCr is what OpenCV's writer
encodes (BT.601), so a stream that declares BT.709 must decode to inv(M709) @ M601 @ the colour written.
"""

import json
import struct

import numpy as np
import pytest

from studio_avatar.core.video import iter_frames_at, probe_video, write_video
from studio_avatar.core.video_signal import read_colour_signal, sps_colour

COLOUR_RGB = np.array([194.0, 150.0, 130.0])          # a light skin tone (the ColorChecker's light skin patch)


def _rgb_to_ycbcr(kr, kb):
    kg = 1 - kr - kb
    return np.array([[kr, kg, kb], [-kr / (2 - 2 * kb), -kg / (2 - 2 * kb), 0.5], [0.5, -kg / (2 - 2 * kr), -kb / (2 - 2 * kr)]])


def _flat_clip(path, frames=6):
    image = np.empty((64, 96, 3), np.uint8)
    image[:] = COLOUR_RGB[::-1].astype(np.uint8)
    return write_video(path, (image for _ in range(frames)), 10.0, (96, 64))


def _declare_colour(path, transfer, matrix, kind=b"nclx"):
    """Rewrite an OpenCV MP4 (moov after mdat) with a ``colr`` box in its video sample entry."""
    data = bytearray(path.read_bytes())
    body = kind + struct.pack(">HHH", 1, transfer, matrix) + (b"\x00" if kind == b"nclx" else b"")
    colr = struct.pack(">I", 8 + len(body)) + b"colr" + body
    chain, start, end = [], 0, len(data)
    for wanted in (b"moov", b"trak", b"mdia", b"minf", b"stbl", b"stsd", None):
        offset = start
        while offset < end:
            size, kind_ = struct.unpack(">I4s", data[offset:offset + 8])
            if wanted is None or kind_ == wanted:
                break
            offset += size
        assert offset < end, f"no {wanted} box"
        chain.append(offset)
        start, end = offset + (16 if kind_ == b"stsd" else 8), offset + size
    assert data.find(b"mdat") < chain[0], "chunk offsets would move"
    entry_end = chain[-1] + struct.unpack(">I", data[chain[-1]:chain[-1] + 4])[0]
    data[entry_end:entry_end] = colr
    for offset in chain:
        size = struct.unpack(">I", data[offset:offset + 4])[0]
        data[offset:offset + 4] = struct.pack(">I", size + len(colr))
    path.write_bytes(bytes(data))


def _decoded_rgb(path):
    (_, _, image), = iter_frames_at(path, [2])
    return image[8:-8, 8:-8].reshape(-1, 3).mean(0)[::-1]


def test_an_undeclared_stream_decodes_as_written(tmp_path):
    clip = _flat_clip(tmp_path / "plain.mp4")
    signal = read_colour_signal(clip)
    assert (signal.matrix, signal.source, signal.hdr) == ("bt601", "undeclared", None)
    assert np.abs(_decoded_rgb(clip) - COLOUR_RGB).max() <= 4.0          # the codec's and the video range's rounding


@pytest.mark.parametrize("kind", [b"nclx", b"nclc"])
def test_a_stream_declaring_bt709_decodes_with_bt709(tmp_path, kind):
    clip = _flat_clip(tmp_path / "hd.mp4")
    plain = _decoded_rgb(clip)
    _declare_colour(clip, transfer=1, matrix=1, kind=kind)
    facts = probe_video(clip)
    assert (facts.colour_matrix, facts.colour_source, facts.hdr) == ("bt709", "colr box", None)
    expected = np.linalg.inv(_rgb_to_ycbcr(0.2126, 0.0722)) @ _rgb_to_ycbcr(0.299, 0.114) @ plain
    decoded = _decoded_rgb(clip)
    assert np.abs(decoded - expected).max() < 1.0
    # BT.601 had made this skin tone darker, and bluer against its green
    assert decoded[0] - plain[0] > 2.0 and decoded[1] - plain[1] > 1.5
    assert decoded[2] / decoded[1] < 0.98 * plain[2] / plain[1]


def test_hdr_video_is_reported_and_warned_about(tmp_path, cli):
    clip = _flat_clip(tmp_path / "hlg.mp4")
    _declare_colour(clip, transfer=18, matrix=9)
    facts = json.loads(cli("probe", str(clip)).stdout)
    assert (facts["colour_matrix"], facts["hdr"]) == ("bt2020", "HLG")


class _BitWriter:
    def __init__(self):
        self.bits = []

    def u(self, count, value):
        self.bits += [(value >> (count - 1 - k)) & 1 for k in range(count)]

    def ue(self, value):
        code = value + 1
        self.u(2 * code.bit_length() - 1, code)

    def nal(self):
        bits = self.bits + [1] + [0] * (-(len(self.bits) + 1) % 8)       # rbsp trailing bits
        raw = bytes(int("".join(map(str, bits[k:k + 8])), 2) for k in range(0, len(bits), 8))
        out, zeros = bytearray(), 0
        for byte in raw:                                               # emulation prevention
            if zeros >= 2 and byte <= 3:
                out.append(3)
                zeros = 0
            out.append(byte)
            zeros = zeros + 1 if byte == 0 else 0
        return b"\x67" + bytes(out)


def _sps(profile, vui):
    bits = _BitWriter()
    bits.u(8, profile), bits.u(16, 30), bits.ue(0)
    if profile == 100:
        bits.ue(1), bits.ue(0), bits.ue(0), bits.u(1, 0), bits.u(1, 0)   # 4:2:0, 8 bit, no scaling matrices
    bits.ue(0), bits.ue(2), bits.ue(1), bits.u(1, 0), bits.ue(0), bits.ue(0)   # frame num, POC 2, 1 ref, 16x16
    bits.u(1, 1), bits.u(1, 1), bits.u(1, 0)                           # frame_mbs_only, direct 8x8, no cropping
    bits.u(1, vui is not None)
    if vui is not None:
        bits.u(1, 0), bits.u(1, 0), bits.u(1, 1), bits.u(3, 5), bits.u(1, 0), bits.u(1, 1)
        bits.u(8, 1), bits.u(8, vui[0]), bits.u(8, vui[1])
    return bits.nal()


@pytest.mark.parametrize("profile", [66, 100])
def test_the_h264_vui_colour_description_is_read(profile):
    assert sps_colour(_sps(profile, (1, 1))) == (1, 1)
    assert sps_colour(_sps(profile, (18, 9))) == (18, 9)
    assert sps_colour(_sps(profile, None)) is None


def test_unreadable_files_count_as_undeclared(tmp_path):
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"\x00\x00\x00\x10ftypisom" + bytes(range(256)) * 4)
    assert read_colour_signal(junk).matrix == "bt601"
    assert read_colour_signal(tmp_path / "missing.mp4").matrix == "bt601"


def test_the_frames_stage_writes_its_frames_in_the_declared_matrix(tmp_path, cli):
    """The tracker reads OpenCV's own decode; what ``frames`` writes is the BT.709 decode of a BT.709 stream."""
    from studio_avatar.core.head.open_head import get_open_head
    from studio_avatar.core.synth.head_clip import HeadClipSpec, render_frames, sample_head_clip

    head = get_open_head()
    spec = HeadClipSpec(frames=16, width=320, height=240, seed=3, yaw_deg=20.0)
    video = write_video(tmp_path / "head.mp4", render_frames(head, sample_head_clip(head, spec), spec), 30.0, (320, 240))
    _declare_colour(video, transfer=1, matrix=1)
    capture = tmp_path / "cap"
    out = cli("reconstruct", str(video), "-o", str(capture), "--until", "frames")
    assert out.returncode == 0, out.stderr
    listing = json.loads((capture / "frames" / "frames.json").read_text())
    assert (listing["colour_matrix"], listing["colour_declared_in"]) == ("bt709", "colr box")
    import cv2

    entry = listing["frames"][0]
    written = cv2.imread(str(capture / "frames" / entry["file"]))
    (_, _, declared), = iter_frames_at(video, [entry["index"]])
    assert written.shape == declared.shape and np.abs(written.astype(int) - declared).max() <= 1
    raw = cv2.VideoCapture(str(video))
    for _ in range(entry["index"] + 1):
        ok, opencv = raw.read()
    raw.release()
    assert ok and np.abs(written.astype(int) - opencv).mean() > 0.5          # not OpenCV's BT.601 decode
