"""Videos through `warden ingest` (real MP4/MOV/WebM encoded with PyAV in the test): sampled
frames become the item's media with timestamps (uniform plus the scene cut); corrupt,
truncated and hostile videos are rejected with a reason and store nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from storage.blobs import BlobStore
from storage.db import make_engine
from storage.images import open_view_image
from storage.ingest import ingest_paths
from storage.media import media_of
from storage.models import Blob, Item, ItemMedium
from storage.settings import LimitSettings, Settings
from storage.video import VideoRejected, decode_video
from tests.storage._videos import encode_video
from tests.storage.hostile_corpus import assert_store_consistent


def _with_limits(settings: Settings, **limits: object) -> Settings:
    return settings.model_copy(update={"limits": settings.limits.model_copy(update=limits)})


def _counts(engine: object) -> tuple[int, int]:
    with Session(engine) as s:  # type: ignore[arg-type]
        items = int(s.scalar(select(func.count()).select_from(Item)) or 0)
        media = int(s.scalar(select(func.count()).select_from(ItemMedium)) or 0)
    return items, media


def test_mp4_becomes_an_item_of_sampled_frames(tmp_path: Path, settings: Settings) -> None:
    root = tmp_path / "in"
    root.mkdir()
    # 4 s at 12 fps; a hard cut to another scene at frame 30 (2.5 s).
    data = encode_video(48, fps=12, cut=30)
    (root / "clip.mp4").write_bytes(data)
    engine = make_engine(settings.database_url)
    report = ingest_paths(engine, _with_limits(settings, video_sample_frames=4), [root])
    [result] = report.results
    assert result.status == "accepted", result
    assert any(n.startswith("video: 4 frames sampled") for n in result.notes)
    store = BlobStore(settings.blobs_path)
    with Session(engine) as s:
        item = s.get(Item, result.item_id)
        assert item is not None
        blob = s.get(Blob, item.blob_sha256)
        assert blob is not None and (blob.mime, blob.width, blob.height) == ("video/mp4", 64, 48)
        assert store.read_bytes(item.blob_sha256) == data  # the video itself is the evidence
        assert item.meta["video"]["duration_s"] == pytest.approx(4.0, abs=0.1)
        media = media_of(s, item.id)
    assert [m.kind for m in media] == ["frame"] * 4
    stamps = [m.timestamp_s or 0.0 for m in media]
    assert stamps == sorted(stamps) and 0.0 <= stamps[0] and stamps[-1] < 4.0
    assert any(abs(t - 2.5) < 0.01 for t in stamps), stamps  # the cut is kept
    assert item.view_sha256 == media[0].view_sha256
    # After the cut the frame is the other scene (green), before it blue.
    for m in media:
        r, g, b = open_view_image(store, m.view_sha256 or "").getpixel((2, 40))
        assert (g > b) == ((m.timestamp_s or 0) >= 2.5), (m.timestamp_s, (r, g, b))
    assert assert_store_consistent(engine, settings)["items"] == 1
    engine.dispose()


@pytest.mark.parametrize(
    ("container", "codec", "mime"),
    [("webm", "libvpx", "video/webm"), ("mov", "libx264", "video/quicktime")],
)
def test_webm_and_mov(container: str, codec: str, mime: str) -> None:
    video = decode_video(
        encode_video(24, container=container, codec=codec), LimitSettings(), sample_count=3
    )
    assert video.mime == mime and len(video.frames) == 3
    assert video.frames[0].png.startswith(b"\x89PNG")


def test_bad_and_hostile_videos_are_rejected_with_a_reason(
    tmp_path: Path, settings: Settings
) -> None:
    root = tmp_path / "in"
    root.mkdir()
    good = encode_video(24)
    files = {
        "truncated.mp4": (good[: len(good) // 2], "could not open video"),
        "corrupt.mp4": (good[:40] + bytes(range(256)) * 8, "video"),
        # 700 tiny frames at 1 fps: an 11-minute video, over the 10-minute limit.
        "long.mp4": (encode_video(700, size=(16, 16), fps=1), "video bomb: 700 s is longer"),
        # A small file whose frames are 4096 x 4096 (16.7 Mpx, over the 3840x2160 limit).
        "huge.mp4": (encode_video(1, size=(4096, 4096), fps=1), "video bomb: 4096x4096"),
        "noframes.webm": (b"\x1a\x45\xdf\xa3" + b"\x00" * 64, "video"),
    }
    for name, (data, _) in files.items():
        (root / name).write_bytes(data)
    engine = make_engine(settings.database_url)
    report = ingest_paths(engine, settings, [root])
    by_name = {Path(r.path).name: r for r in report.results}
    for name, (_, reason) in files.items():
        r = by_name[name]
        assert r.status == "rejected", (name, r)
        assert reason in (r.reason or ""), (name, r.reason)
    assert _counts(engine) == (0, 0)
    assert assert_store_consistent(engine, settings) == {"items": 0, "blobs": 0}
    engine.dispose()


def test_decode_time_limits_stop_a_video_that_goes_past_them() -> None:
    data = encode_video(48)
    small = LimitSettings(max_video_decoded_bytes=64 * 48 * 3 * 10)
    with pytest.raises(VideoRejected, match="video bomb: more than .* bytes decoded"):
        decode_video(data, small)
    with pytest.raises(VideoRejected, match="video bomb: 48 frames declared, more than 20"):
        decode_video(data, LimitSettings(max_video_frames=20))
