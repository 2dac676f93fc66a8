"""Real small videos encoded with PyAV in the test (no downloads), and hostile variants."""

from __future__ import annotations

import io

import av
import numpy as np


def frame_pixels(i: int, size: tuple[int, int], cut: int | None) -> np.ndarray:
    """[H, W, 3] uint8: a bar sliding slowly; after `cut` a different scene (colour and layout)."""
    w, h = size
    img = np.zeros((h, w, 3), dtype=np.uint8)
    if cut is not None and i >= cut:
        img[:] = (30, 160, 60)
        img[h // 4 : h // 2, :, :] = 250
        return img
    img[:] = (40, 40, 120)
    x = (i * 2) % max(1, w - 8)
    img[:, x : x + 8, :] = 220
    return img


def encode_video(
    n_frames: int,
    *,
    size: tuple[int, int] = (64, 48),
    fps: int = 12,
    container: str = "mp4",
    codec: str = "libx264",
    cut: int | None = None,
) -> bytes:
    """An n-frame video (`container`: mp4, mov or webm) with an optional hard cut."""
    buf = io.BytesIO()
    with av.open(buf, mode="w", format=container) as out:
        stream = out.add_stream(codec, rate=fps)
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        for i in range(n_frames):
            frame = av.VideoFrame.from_ndarray(frame_pixels(i, size, cut), format="rgb24")
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return buf.getvalue()


def with_declared_size(mp4: bytes, width: int, height: int) -> bytes:
    """An H.264 MP4 whose sample entry (avc1) claims `width` x `height` (a header bomb)."""
    pos = mp4.index(b"avc1")
    at = pos + 4 + 6 + 2 + 2 + 2 + 12  # VisualSampleEntry: ... width(2) height(2)
    return mp4[:at] + width.to_bytes(2, "big") + height.to_bytes(2, "big") + mp4[at + 4 :]
