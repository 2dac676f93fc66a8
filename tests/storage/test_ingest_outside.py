"""Ingest defects found by running outside corpora (Pillow's own test images) through it.

Each file is built here with Pillow or by hand, never copied from Pillow's sdist: a 1-bit PNG
with transparency and other colour modes; flat images whose perceptual hashes say nothing; a
GIF whose later frame declares extents past the pixel limit; non-image and corrupt files whose
rejection reasons must name what the file is. The CLI runs as a real subprocess.
"""

from __future__ import annotations

import io
import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import skimage.data
from PIL import Image
from sqlalchemy import select
from sqlalchemy.orm import Session

from storage.db import make_engine
from storage.images import HASH_QUALITY_MIN, ImageRejected, normalise_image
from storage.ingest import ingest_paths
from storage.models import HashBankEntry, Item
from storage.settings import Settings
from tests.storage.hostile_corpus import _photo, encode, gif_with_later_frame, png_declaring

LIMIT = 64_000_000
WARDEN = Path(sys.executable).with_name("warden")


def view_of(data: bytes) -> Image.Image:
    norm = normalise_image(data, max_pixels=LIMIT)
    im = Image.open(io.BytesIO(norm.view_png))
    assert im.mode == "RGB"
    return im


def _left_right(mode: str, left: object, right: object, size: tuple[int, int] = (64, 32)):
    im = Image.new(mode, size, right)  # type: ignore[arg-type]
    im.paste(left, (0, 0, size[0] // 2, size[1]))  # type: ignore[arg-type]
    return im


def one_bit_transparent_png() -> bytes:
    """The issue's file: mode '1' with tRNS; left half black (opaque), right half transparent."""
    return encode(_left_right("1", 0, 1), "PNG", transparency=1)


def _transparent_cases() -> dict[str, tuple[bytes, tuple[int, int, int]]]:
    """name -> (file bytes, colour of its opaque left half); the right half is transparent."""
    palette = _left_right("P", 1, 0)
    palette.putpalette([0, 0, 255, 255, 0, 0] + [0] * 762)
    la = _left_right("LA", (0, 255), (0, 0))
    i16 = Image.fromarray(np.where(np.arange(64) < 32, 0, 30000).astype(np.uint16)[None, :]
                          .repeat(32, axis=0))  # fmt: skip
    return {
        "1_trns.png": (one_bit_transparent_png(), (0, 0, 0)),
        "1_trns_all.png": (encode(Image.new("1", (64, 64), 1), "PNG", transparency=1), None),
        "p_trns.png": (encode(palette, "PNG", transparency=0), (255, 0, 0)),
        "l_trns.png": (encode(_left_right("L", 0, 200), "PNG", transparency=200), (0, 0, 0)),
        "rgb_trns.png": (
            encode(_left_right("RGB", (0, 128, 0), (9, 9, 9)), "PNG", transparency=(9, 9, 9)),
            (0, 128, 0),
        ),
        "la.png": (encode(la, "PNG"), (0, 0, 0)),
        "i16_trns.png": (encode(i16, "PNG", transparency=30000), (0, 0, 0)),
        "p_trns.gif": (encode(palette, "GIF", transparency=0), (255, 0, 0)),
        "cmyk.jpg": (encode(Image.new("CMYK", (64, 32), (0, 255, 255, 0)), "JPEG"), (255, 0, 0)),
    }  # type: ignore[return-value]


@pytest.mark.parametrize("name", list(_transparent_cases()))
def test_transparent_and_odd_mode_images_are_accepted_on_white(name: str) -> None:
    data, left = _transparent_cases()[name]
    view = view_of(data)
    if left is not None:
        px = view.getpixel((8, 8))
        assert all(abs(int(p) - w) <= 40 for p, w in zip(px, left, strict=True)), px
    if name != "cmyk.jpg":  # transparent pixels are composited on white
        assert view.getpixel((view.width - 4, view.height - 4)) == (255, 255, 255)


# --- GIF frames ------------------------------------------------------------------------------


def gif_frames(n: int) -> bytes:
    frames = [Image.new("P", (8, 8), i % 2) for i in range(n)]
    for f in frames:
        f.putpalette([0, 0, 0, 255, 255, 255] + [0] * 762)
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:], duration=50)
    return buf.getvalue()


@pytest.mark.parametrize(("size", "at"), [((60_000, 60_000), (0, 0)), ((16, 16), (60_000, 60_000))])
def test_gif_later_frame_past_the_pixel_limit_is_rejected(
    size: tuple[int, int], at: tuple[int, int]
) -> None:
    data = gif_with_later_frame(*size, *at)
    with pytest.raises(ImageRejected, match="decompression bomb") as info:
        normalise_image(data, max_pixels=LIMIT)
    assert "frame 1" in str(info.value)
    # The same file with a harmless second frame is fine.
    assert normalise_image(gif_with_later_frame(8, 8, 2, 2), max_pixels=LIMIT).animated


def test_gif_frame_count_is_checked_before_decoding() -> None:
    data = gif_frames(6)
    assert normalise_image(data, max_pixels=LIMIT, max_frames=6).animated
    with pytest.raises(ImageRejected, match="more than 5 frames"):
        normalise_image(data, max_pixels=LIMIT, max_frames=5)


# --- rejection reasons -----------------------------------------------------------------------


def _odd_files() -> dict[str, tuple[bytes, str]]:
    """name -> (bytes, a fragment the rejection reason must contain)."""
    png_sig = b"\x89PNG\r\n\x1a\n"
    # Screen and frame 0 pixels wide (Pillow's zero_width.gif is such a file).
    zero_gif = (
        b"GIF89a" + struct.pack("<HHBBB", 0, 32, 0, 0, 0)
        + b"\x2c" + struct.pack("<HHHHB", 0, 0, 0, 32, 0) + b"\x02\x01\x2c\x00\x3b"
    )  # fmt: skip
    ico = encode(_photo(3, (32, 32)), "ICO")
    return {
        "doc.png": (b"%PDF-1.7\n1 0 obj<<>>endobj\n%%EOF", "PDF document"),
        "cut.png": (png_sig + b"\x00\x00\x00\rIH", "truncated PNG"),
        "noise.png": (png_sig + np.random.default_rng(1).bytes(72), "corrupt PNG"),
        "zero.gif": (zero_gif, "invalid dimensions 0x32"),
        "tags.tif": (b"II*\x00\x08\x00\x00\x00" + b"\x00" * 40, "TIFF"),
        "layers.psd": (b"8BPS\x00\x01" + b"\x00" * 40, "unsupported image type: PSD"),
        "icon.png": (ico, "unsupported image type: ICO"),
        "phone.jpg": (b"\x00\x00\x00\x18ftypheic" + b"\x00" * 40, "HEIF"),
        "notes.jpg": (b"hello, this is a plain note\n", "text"),
        "random.jpg": (np.random.default_rng(2).bytes(512), "not a supported image"),
        "empty.png": (b"", "empty"),
    }


def test_rejection_reasons_name_the_detected_type_never_an_object_repr() -> None:
    for name, (data, fragment) in _odd_files().items():
        with pytest.raises(ImageRejected) as info:
            normalise_image(data, max_pixels=LIMIT)
        reason = str(info.value)
        assert "<_io." not in reason and "object at 0x" not in reason, (name, reason)
        assert fragment.lower() in reason.lower(), (name, reason)


# --- low-quality hashes ----------------------------------------------------------------------


def _manifest(folder: Path, rows: list[dict[str, object]]) -> Path:
    path = folder / "labels.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_flat_images_are_not_near_duplicates_and_never_match_the_hash_bank(
    tmp_path: Path, settings: Settings
) -> None:
    d = tmp_path / "in"
    d.mkdir()
    (d / "red.png").write_bytes(encode(Image.new("RGB", (300, 300), (255, 0, 0)), "PNG"))
    engine = make_engine(settings.database_url)
    first = ingest_paths(
        engine, settings, [_manifest(d, [{"path": "red.png", "labels": ["scam_fraud"]}])]
    )
    red = first.results[0]
    assert red.status == "accepted" and red.labels == ["scam_fraud"]
    (tmp_path / "blue.png").write_bytes(encode(Image.new("RGB", (640, 480), (0, 0, 255)), "PNG"))
    (tmp_path / "grey.jpg").write_bytes(encode(Image.new("RGB", (200, 120), (90, 90, 90)), "JPEG"))
    second = ingest_paths(engine, settings, [tmp_path / "blue.png", tmp_path / "grey.jpg"])
    for r in second.results:
        assert (r.status, r.duplicate_of, r.hashbank_match_id) == ("accepted", None, None), r
        assert any("low-quality hash" in n for n in r.notes), r.notes
    with Session(engine) as s:
        assert list(s.scalars(select(HashBankEntry))) == []  # the flat scam image is not banked
        items = list(s.scalars(select(Item).order_by(Item.id)))
        assert [i.priority for i in items] == [0, 0, 0]
        assert all(i.phash is None and i.meta["pdq_quality"] < HASH_QUALITY_MIN for i in items)
    assert first.summary["low_quality_hashes"] == 1
    assert second.summary["low_quality_hashes"] == 2
    engine.dispose()


def test_real_photo_near_duplicates_still_match_and_are_banked(
    tmp_path: Path, settings: Settings
) -> None:
    d = tmp_path / "in"
    d.mkdir()
    astronaut = Image.fromarray(skimage.data.astronaut())
    (d / "astronaut.png").write_bytes(encode(astronaut, "PNG"))
    engine = make_engine(settings.database_url)
    first = ingest_paths(
        engine, settings, [_manifest(d, [{"path": "astronaut.png", "labels": ["scam_fraud"]}])]
    )
    banked_id = first.results[0].item_id
    assert first.summary["low_quality_hashes"] == 0
    with Session(engine) as s:
        entry = s.scalars(select(HashBankEntry)).one()
        assert entry.item_id == banked_id
        item = s.get(Item, banked_id)
        assert item is not None and item.meta["pdq_quality"] >= HASH_QUALITY_MIN
    (tmp_path / "repost.jpg").write_bytes(encode(astronaut.resize((380, 380)), "JPEG", quality=80))
    (tmp_path / "coffee.jpg").write_bytes(encode(Image.fromarray(skimage.data.coffee()), "JPEG"))
    second = ingest_paths(engine, settings, [tmp_path / "repost.jpg", tmp_path / "coffee.jpg"])
    repost, coffee = second.results
    assert (repost.status, repost.duplicate_of, repost.hashbank_match_id) == (
        "near_duplicate", banked_id, entry.id,
    )  # fmt: skip
    assert (coffee.status, coffee.duplicate_of, coffee.hashbank_match_id) == (
        "accepted", None, None,
    )  # fmt: skip
    assert second.summary["low_quality_hashes"] == 0
    engine.dispose()


# --- the CLI never prints a traceback ---------------------------------------------------------


def test_cli_ingest_of_odd_files_prints_reasons_and_no_traceback(
    tmp_path: Path, settings: Settings
) -> None:
    d = tmp_path / "odd"
    d.mkdir()
    for name, (data, _) in _odd_files().items():
        (d / name).write_bytes(data)
    for name, (data, _) in _transparent_cases().items():
        (d / f"ok_{name}").write_bytes(data)
    (d / "frame_bomb.gif").write_bytes(gif_with_later_frame(60_000, 60_000))
    (d / "bomb.png").write_bytes(png_declaring(100_000, 100_000))
    env = {k: v for k, v in os.environ.items() if not k.startswith("WARDEN_")}
    env["WARDEN_DATA_DIR"] = str(settings.data_dir)
    env["WARDEN_DATABASE_URL"] = settings.database_url
    proc = subprocess.run(
        [str(WARDEN), "ingest", "--json", str(d)],
        env=env, capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout, proc.stderr
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    results = {Path(x["path"]).name: x for x in lines[:-1]}
    summary = lines[-1]["summary"]
    assert summary["files"] == len(results) == len(_odd_files()) + len(_transparent_cases()) + 2
    for name, r in results.items():
        if name.startswith("ok_"):
            assert r["status"] in ("accepted", "near_duplicate"), r
        else:
            assert r["status"] == "rejected" and r["reason"], r
            assert "<_io." not in r["reason"] and "object at 0x" not in r["reason"], r
    assert "frame 1" in results["frame_bomb.gif"]["reason"]
    # Most of the transparent cases are flat colour halves: their hashes are reported as weak.
    assert summary["low_quality_hashes"] == sum(
        1 for r in results.values() if any("low-quality hash" in n for n in r["notes"])
    )
    assert summary["low_quality_hashes"] > 0

    human = subprocess.run(
        [str(WARDEN), "ingest", str(d)], env=env, capture_output=True, text=True, timeout=180
    )
    assert human.returncode == 0 and "Traceback" not in human.stderr + human.stdout
    assert "low-quality hash" in human.stdout.splitlines()[-1]
