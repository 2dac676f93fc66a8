"""Video ingest: decode an MP4 / MOV / WebM under limits and sample frames to store as media.

Everything about a video is untrusted. It is opened only when its magic bytes say MP4/MOV
(ISO `ftyp`, not a HEIF image) or WebM/Matroska (EBML), with the demuxer named explicitly, from
memory (no file or network protocol is reachable). The declared resolution, duration and frame
count are checked before any frame is decoded; while decoding, every frame's resolution, the
number of frames and the decoded bytes are checked again, so a file that lies in its header is
stopped as soon as it goes past a limit (a "video bomb"), with the reason, like image bombs.
A corrupt or truncated file is rejected whole; nothing is half-stored.

Frames are sampled in one decoding pass (`sample_count`, default 8): half uniformly over the
duration (the frame nearest each target time), the rest at the largest scene changes (mean
absolute difference of 32x32 grey thumbnails between consecutive frames), kept apart from each
other; they come back in time order with their timestamps, as PNG, and go through the same
image checks and hashes as any image (`storage.images.normalise_image`).

    video = decode_video(data, limits)     # VideoRejected(reason) on anything hostile
    for frame in video.frames: frame.timestamp_s, frame.png
"""

from __future__ import annotations

import heapq
import io
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from storage.settings import LimitSettings

# HEIF/AVIF images also start with an ISO `ftyp` box: they are images, not videos.
_IMAGE_BRANDS = (b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1", b"avif",
                 b"avis")  # fmt: skip
_THUMB = 32


class VideoRejected(Exception):
    """The bytes are not an acceptable video; the message is the reason shown to the user."""


@dataclass(frozen=True)
class VideoFrame:
    timestamp_s: float
    png: bytes
    scene_change: float  # mean absolute grey difference to the previous frame, 0-255


@dataclass(frozen=True)
class DecodedVideo:
    mime: str
    width: int
    height: int
    duration_s: float
    frames_decoded: int
    codec: str
    frames: list[VideoFrame]

    def meta(self) -> dict[str, Any]:
        return {
            "video": {
                "mime": self.mime, "width": self.width, "height": self.height,
                "duration_s": round(self.duration_s, 3), "frames": self.frames_decoded,
                "codec": self.codec, "sampled": len(self.frames),
            }
        }  # fmt: skip


def video_container(data: bytes) -> tuple[str, str] | None:
    """(PyAV demuxer name, MIME type) when the magic bytes say MP4/MOV or WebM; else None."""
    if data[4:8] == b"ftyp" and data[8:12] not in _IMAGE_BRANDS:
        return "mp4", "video/quicktime" if data[8:12] == b"qt  " else "video/mp4"
    if data[:4] == b"\x1a\x45\xdf\xa3":
        return "matroska", "video/webm" if b"webm" in data[:64] else "video/x-matroska"
    return None


def decode_video(
    data: bytes, limits: LimitSettings, sample_count: int | None = None
) -> DecodedVideo:
    """Check, decode and sample a video; VideoRejected with the reason for anything else."""
    import av

    found = video_container(data)
    if found is None:
        raise VideoRejected("not an MP4, MOV or WebM video")
    demuxer, mime = found
    count = sample_count or limits.video_sample_frames
    try:
        container = av.open(io.BytesIO(data), mode="r", format=demuxer)
    except (av.error.FFmpegError, ValueError, OSError) as exc:
        raise VideoRejected(f"could not open video: {_short(exc)}") from exc
    try:
        return _decode(container, mime, limits, count)
    except VideoRejected:
        raise
    except MemoryError as exc:
        raise VideoRejected("video too large to decode in memory") from exc
    except (av.error.FFmpegError, ValueError, OSError, RuntimeError) as exc:
        raise VideoRejected(f"corrupt or truncated video: {_short(exc)}") from exc
    finally:
        container.close()


def _short(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:200]


def _check_header(stream: Any, container: Any, limits: LimitSettings) -> tuple[int, int, float]:
    width, height = int(stream.codec_context.width or 0), int(stream.codec_context.height or 0)
    if width <= 0 or height <= 0:
        raise VideoRejected("video stream declares no frame size")
    if width * height > limits.max_video_pixels:
        raise VideoRejected(
            f"video bomb: {width}x{height} frames exceed {limits.max_video_pixels} pixels"
        )
    duration = 0.0
    if stream.duration is not None and stream.time_base is not None:
        duration = float(stream.duration * stream.time_base)
    elif container.duration is not None:
        duration = container.duration / 1_000_000
    if duration > limits.max_video_seconds:
        raise VideoRejected(
            f"video bomb: {duration:.0f} s is longer than {limits.max_video_seconds:.0f} s"
        )
    declared = int(stream.frames or 0)
    if declared > limits.max_video_frames:
        raise VideoRejected(
            f"video bomb: {declared} frames declared, more than {limits.max_video_frames}"
        )
    return width, height, duration


def _duration_from_packets(container: Any, stream: Any, limits: LimitSettings) -> float:
    """The last packet time (demuxing only, nothing decoded), under the same limits."""
    last, packets = 0.0, 0
    for packet in container.demux(stream):
        if packet.pts is None or packet.time_base is None:
            continue
        packets += 1
        if packets > limits.max_video_frames:
            raise VideoRejected(f"video bomb: more than {limits.max_video_frames} frames")
        last = max(last, float(packet.pts * packet.time_base))
        if last > limits.max_video_seconds:
            raise VideoRejected(f"video bomb: longer than {limits.max_video_seconds:.0f} s")
    return last


def _decode(container: Any, mime: str, limits: LimitSettings, count: int) -> DecodedVideo:
    streams = container.streams.video
    if not streams:
        raise VideoRejected("no video stream")
    stream = streams[0]
    width, height, duration = _check_header(stream, container, limits)
    if not duration:  # e.g. WebM from a live muxer: read the packets' times, then rewind
        duration = _duration_from_packets(container, stream, limits)
        container.seek(0, stream=stream)
    n_uniform = max(1, (count + 1) // 2)
    n_scene = count - n_uniform
    # Target times for the uniform half; refined once the real duration is known (a header
    # without duration gets its frames from the scene-change half and the first frame).
    targets = [duration * (i + 0.5) / n_uniform for i in range(n_uniform)] if duration else [0.0]
    # Decoded frames are kept (not converted) until the pass ends: at most 4 * count of them.
    nearest: dict[int, tuple[float, float, Any]] = {}  # target -> (distance, ts, frame)
    scenes: list[tuple[float, float, int, Any]] = []  # min-heap of (change, ts, n, frame)
    previous: np.ndarray | None = None
    decoded_bytes = 0
    frames = 0
    last_ts = 0.0
    for frame in container.decode(stream):
        frames += 1
        if frames > limits.max_video_frames:
            raise VideoRejected(f"video bomb: more than {limits.max_video_frames} frames")
        if frame.width * frame.height > limits.max_video_pixels:
            raise VideoRejected(
                f"video bomb: frame {frames} is {frame.width}x{frame.height}, over "
                f"{limits.max_video_pixels} pixels"
            )
        decoded_bytes += frame.width * frame.height * 3
        if decoded_bytes > limits.max_video_decoded_bytes:
            raise VideoRejected(
                f"video bomb: more than {limits.max_video_decoded_bytes} bytes decoded "
                f"({frames} frames)"
            )
        ts = float(frame.time) if frame.time is not None else last_ts
        if ts > limits.max_video_seconds:
            raise VideoRejected(f"video bomb: frames past {limits.max_video_seconds:.0f} s")
        last_ts = ts
        thumb = frame.reformat(width=_THUMB, height=_THUMB, format="gray").to_ndarray()
        thumb = thumb.astype(np.float32)
        change = 255.0 if previous is None else float(np.abs(thumb - previous).mean())
        previous = thumb
        for i, target in enumerate(targets):
            dist = abs(ts - target)
            if i not in nearest or dist < nearest[i][0]:
                nearest[i] = (dist, ts, frame)  # converted once, at the end
        if n_scene and frames > 1 and (len(scenes) < n_scene * 4 or change > scenes[0][0]):
            item = (change, ts, frames, frame)
            if len(scenes) < n_scene * 4:
                heapq.heappush(scenes, item)
            else:
                heapq.heapreplace(scenes, item)
    if frames == 0:
        raise VideoRejected("corrupt or truncated video: no frame could be decoded")
    duration = max(duration, last_ts)
    picked: dict[float, tuple[Any, float]] = {}
    for _dist, ts, kept in nearest.values():
        picked.setdefault(ts, (kept, 0.0))
    # Scene changes, largest first, at least a segment's length from every frame kept.
    gap = duration / (2 * count) if duration else 0.0
    for change, ts, _n, kept in sorted(scenes, key=lambda s: -s[0]):
        if len(picked) >= count:
            break
        if all(abs(ts - t) >= gap for t in picked) and ts not in picked:
            picked[ts] = (kept, change)
    for change, ts, _n, kept in sorted(scenes, key=lambda s: -s[0]):
        if len(picked) >= count:  # a short video: fill up with the closer ones too
            break
        picked.setdefault(ts, (kept, change))
    sampled = [
        VideoFrame(round(ts, 3), _png(frame.to_image()), round(change, 2))
        for ts, (frame, change) in sorted(picked.items())
    ]
    return DecodedVideo(
        mime, width, height, duration, frames, stream.codec_context.name or "?", sampled
    )


def _png(image: Any) -> bytes:
    buf = io.BytesIO()
    image.convert("RGB").save(buf, format="PNG")
    return buf.getvalue()
