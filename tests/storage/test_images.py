"""Decoding and normalising images: formats, EXIF, colour modes, hashes, fuzzed bytes."""

from __future__ import annotations

import io
import random
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from storage.blobs import BlobStore
from storage.images import (
    HashIndex,
    ImageRejected,
    hamming,
    normalise_image,
    open_view_image,
    perceptual_hash,
    sniff_format,
)
from tests.storage.hostile_corpus import _photo, encode

LIMIT = 64_000_000


def view_of(data: bytes) -> Image.Image:
    norm = normalise_image(data, max_pixels=LIMIT)
    im = Image.open(io.BytesIO(norm.view_png))
    assert im.format == "PNG" and im.mode == "RGB"
    return im


def halves(colour_a: tuple[int, int, int], colour_b: tuple[int, int, int]) -> Image.Image:
    """60x40: left half colour_a, right half colour_b."""
    im = Image.new("RGB", (60, 40), colour_b)
    im.paste(colour_a, (0, 0, 30, 40))
    return im


def close(pixel: tuple[int, ...], want: tuple[int, int, int], tol: int = 40) -> bool:
    return all(abs(int(p) - w) <= tol for p, w in zip(pixel, want, strict=False))


def test_jpeg_exif_rotation_is_applied() -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    data = encode(halves((255, 0, 0), (0, 0, 255)), "JPEG", exif=exif, quality=95)
    norm = normalise_image(data, max_pixels=LIMIT)
    assert (norm.width, norm.height) == (60, 40)  # the original as stored
    view = view_of(data)
    assert view.size == (40, 60)
    # The left (red) half ends on top after a clockwise quarter turn.
    assert close(view.getpixel((20, 5)), (255, 0, 0))
    assert close(view.getpixel((20, 55)), (0, 0, 255))


def test_cmyk_jpeg_becomes_rgb_with_the_right_colour() -> None:
    data = encode(Image.new("CMYK", (32, 32), (0, 255, 255, 0)), "JPEG", quality=95)
    assert Image.open(io.BytesIO(data)).mode == "CMYK"
    assert close(view_of(data).getpixel((16, 16)), (255, 0, 0))


def test_16_bit_png_is_scaled_not_clipped() -> None:
    ramp = np.tile(np.linspace(0, 65535, 256).astype(np.uint16), (16, 1))
    data = encode(Image.fromarray(ramp), "PNG")
    assert Image.open(io.BytesIO(data)).mode.startswith("I")
    arr = np.asarray(view_of(data))
    assert arr[0, 0, 0] <= 2 and arr[0, -1, 0] >= 253
    assert 100 < arr[..., 0].mean() < 155  # clipping at 255 would give a mean near 254


def test_palette_png_transparency_composited_on_white() -> None:
    im = Image.new("P", (20, 20), 0)
    im.putpalette([0, 0, 0, 0, 255, 0] + [0] * 762)
    im.paste(1, (10, 0, 20, 20))
    data = encode(im, "PNG", transparency=0)
    view = view_of(data)
    assert view.getpixel((2, 2)) == (255, 255, 255)  # transparent black -> white
    assert view.getpixel((15, 2)) == (0, 255, 0)


def test_rgba_alpha_composited_on_white() -> None:
    im = Image.new("RGBA", (20, 20), (0, 0, 0, 0))
    im.paste((200, 10, 10, 255), (0, 0, 10, 20))
    view = view_of(encode(im, "PNG"))
    assert view.getpixel((15, 5)) == (255, 255, 255)
    assert view.getpixel((5, 5)) == (200, 10, 10)


def test_animated_gif_first_frame_and_flag() -> None:
    frames = [Image.new("RGB", (32, 32), c) for c in ((255, 0, 0), (0, 0, 255))]
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    norm = normalise_image(buf.getvalue(), max_pixels=LIMIT)
    assert norm.animated and norm.format == "GIF" and norm.mime == "image/gif"
    assert close(view_of(buf.getvalue()).getpixel((5, 5)), (255, 0, 0))


@pytest.mark.parametrize(
    ("fmt", "mime"),
    [
        ("WEBP", "image/webp"),
        ("BMP", "image/bmp"),
        ("TIFF", "image/tiff"),
        ("PNG", "image/png"),
        ("JPEG", "image/jpeg"),
    ],
)
def test_formats_detected_by_content(fmt: str, mime: str) -> None:
    data = encode(_photo(7, (90, 70)), fmt)
    norm = normalise_image(data, max_pixels=LIMIT)
    assert (norm.format, norm.mime, norm.width, norm.height) == (fmt, mime, 90, 70)
    assert not norm.animated and len(norm.phash) == 16


def test_view_longest_side_is_capped() -> None:
    data = encode(_photo(8, (3000, 1000)), "JPEG")
    norm = normalise_image(data, max_pixels=LIMIT)
    assert (norm.width, norm.height) == (3000, 1000)
    assert (norm.view_width, norm.view_height) == (2048, 683)


def test_pixel_limit_is_checked_before_decoding() -> None:
    data = encode(Image.new("L", (2000, 2000)), "PNG")
    with pytest.raises(ImageRejected, match="decompression bomb"):
        normalise_image(data, max_pixels=1_000_000)
    assert normalise_image(data, max_pixels=4_000_000).width == 2000


def test_sniff_ignores_names_and_rejects_lookalikes() -> None:
    assert sniff_format(encode(_photo(9), "PNG")) == "PNG"
    assert sniff_format(b"<svg xmlns='http://www.w3.org/2000/svg'/>") is None
    with pytest.raises(ImageRejected, match="SVG"):
        normalise_image(b"<svg xmlns='http://www.w3.org/2000/svg'/>", max_pixels=LIMIT)


def test_open_view_image_roundtrip(tmp_path: Path) -> None:
    store = BlobStore(tmp_path)
    norm = normalise_image(encode(_photo(11), "JPEG"), max_pixels=LIMIT)
    sha = store.put_bytes(norm.view_png)
    im = open_view_image(store, sha)
    assert im.mode == "RGB" and im.size == (norm.view_width, norm.view_height)


def test_phash_finds_resized_copies_not_other_images() -> None:
    a = _photo(12, (400, 300))
    b = _photo(13, (400, 300))
    ha = perceptual_hash(a)
    resized = Image.open(io.BytesIO(encode(a.resize((200, 150)), "JPEG", quality=70)))
    assert hamming(ha, perceptual_hash(resized)) <= 6
    assert hamming(ha, perceptual_hash(b)) > 12
    index = HashIndex()
    index.add(1, perceptual_hash(b))
    index.add(2, ha)
    for i in range(3, 3000):  # grows past its initial capacity
        index.add(i, f"{random.Random(i).getrandbits(64):016x}")
    hit = index.nearest(perceptual_hash(resized), 6)
    assert hit is not None and hit[0] == 2
    assert index.nearest(ha, 0) == (2, 0) and len(index) == 2999


def test_fuzzed_images_never_raise_anything_but_rejection() -> None:
    rng = random.Random(0)
    seeds = [encode(_photo(14, (64, 48)), fmt) for fmt in ("JPEG", "PNG", "GIF", "WEBP", "BMP")]
    seeds.append(encode(_photo(15, (64, 48)), "TIFF", compression="tiff_lzw"))
    outcomes = {"ok": 0, "rejected": 0}
    for i in range(300):
        data = bytearray(seeds[i % len(seeds)])
        for _ in range(rng.randint(1, 8)):
            pos = rng.randrange(len(data))
            data[pos] = rng.randrange(256)
        if rng.random() < 0.3:
            data = data[: rng.randrange(1, len(data))]
        try:
            normalise_image(bytes(data), max_pixels=4_000_000)
            outcomes["ok"] += 1
        except ImageRejected as exc:
            assert str(exc)
            outcomes["rejected"] += 1
    assert outcomes["rejected"] > 50  # the mutations do break files
