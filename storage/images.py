"""Image decoding for ingestion: sniff the format from content, guard against decompression
bombs, and build the normalised RGB view that the model and the UI use; perceptual hashes.

The view is: EXIF orientation applied, first frame only, 8-bit RGB, alpha composited on white,
longest side capped (2048 px), re-encoded as PNG. Re-encoding also strips metadata (GPS in
EXIF, text chunks) and whatever a hostile file might aim at a browser's decoder.

    norm = normalise_image(data, max_pixels=settings.limits.max_pixels)
    image = open_view_image(store, item.view_sha256)
"""

from __future__ import annotations

import io
import zlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from PIL import ExifTags, Image, ImageOps

if TYPE_CHECKING:
    from storage.blobs import BlobStore

VIEW_MAX_SIDE = 2048

# Pillow format name -> MIME type of the formats Warden accepts.
MIME = {
    "JPEG": "image/jpeg",
    "MPO": "image/jpeg",  # multi-picture JPEG from cameras; Pillow names it MPO
    "PNG": "image/png",
    "WEBP": "image/webp",
    "GIF": "image/gif",
    "BMP": "image/bmp",
    "TIFF": "image/tiff",
}


class ImageRejected(Exception):
    """The bytes are not an acceptable image; the message is the reason shown to the user."""


@dataclass(frozen=True)
class NormalisedImage:
    format: str  # Pillow's name: JPEG, PNG, ...
    mime: str
    width: int  # of the original, as stored (before EXIF orientation)
    height: int
    animated: bool
    view_png: bytes
    view_width: int
    view_height: int
    phash: str


def sniff_format(data: bytes) -> str | None:
    """The image format named by the file's magic bytes, or None. Extensions are never used."""
    head = data[:16]
    if head.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "GIF"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WEBP"
    if head[:2] == b"BM":
        return "BMP"
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return "TIFF"
    return None


def describe_content(data: bytes) -> str:
    """A short guess at what non-image bytes are, for rejection reasons."""
    if not data:
        return "empty file"
    head = data[:512].lstrip().lower()
    probes: list[tuple[bytes, str]] = [
        (b"%pdf", "a PDF document"),
        (b"\x7felf", "an ELF executable"),
        (b"mz", "a Windows executable"),
        (b"pk\x03\x04", "a zip archive"),
        (b"\x1f\x8b", "a gzip archive"),
        (b"7z\xbc\xaf", "a 7z archive"),
        (b"rar!", "a RAR archive"),
        (b"<?xml", "an XML/SVG document"),
        (b"<svg", "an SVG document"),
        (b"<!doctype html", "an HTML document"),
        (b"<html", "an HTML document"),
        (b"#!", "a script"),
    ]
    for magic, what in probes:
        if head.startswith(magic):
            if what.startswith("an XML") and b"<svg" in data[:4096].lower():
                return "an SVG document"
            return what
    if data[:4] in (b"II+\x00", b"MM\x00+"):
        return "a BigTIFF (unsupported)"
    if data[4:12] in (b"ftypheic", b"ftypheix", b"ftypmif1", b"ftypavif"):
        return "a HEIF/AVIF image (unsupported)"
    return "an unknown format"


def normalise_image(
    data: bytes, *, max_pixels: int, max_side: int = VIEW_MAX_SIDE
) -> NormalisedImage:
    """Decode `data` once and build its view. Raises ImageRejected with a reason."""
    fmt = sniff_format(data)
    if fmt is None:
        raise ImageRejected(f"not a supported image: content is {describe_content(data)}")
    # Pillow's own bomb guard fires inside Image.open (headers only, before any pixel is
    # decoded); our explicit check below gives the clear reason at exactly max_pixels.
    Image.MAX_IMAGE_PIXELS = max_pixels
    try:
        im = Image.open(io.BytesIO(data), formats=[fmt])
    except Image.DecompressionBombError as exc:
        raise ImageRejected(
            f"decompression bomb: the header declares more than the limit of {max_pixels} pixels"
        ) from exc
    except Exception as exc:  # UnidentifiedImageError, struct errors, ...
        raise ImageRejected(f"corrupt {fmt} header: {_short(exc)}") from exc
    with im:
        width, height = im.size
        if width <= 0 or height <= 0:
            raise ImageRejected(f"invalid dimensions {width}x{height}")
        if width * height > max_pixels:
            raise ImageRejected(
                f"decompression bomb: {width}x{height} = {width * height} pixels "
                f"exceeds the limit of {max_pixels}"
            )
        actual = im.format or fmt
        try:
            animated = bool(getattr(im, "is_animated", False))
            if animated:
                im.seek(0)
            view = _decode_view(im, max_side=max_side)
            if fmt == "PNG":
                _verify_png(data)
        except ImageRejected:
            raise
        except Image.DecompressionBombError as exc:
            raise ImageRejected(f"decompression bomb: {exc}") from exc
        except Exception as exc:
            raise ImageRejected(f"corrupt or truncated {fmt}: {_short(exc)}") from exc
    buf = io.BytesIO()
    # Fast zlib settings: the view is re-derivable from the original, so speed beats size;
    # Z_RLE after PNG's row filters is ~15% faster than level 1 and no larger on photos.
    view.save(buf, "PNG", compress_level=1, compress_type=zlib.Z_RLE)
    return NormalisedImage(
        format=actual,
        mime=MIME.get(actual, MIME[fmt]),
        width=width,
        height=height,
        animated=animated,
        view_png=buf.getvalue(),
        view_width=view.width,
        view_height=view.height,
        phash=perceptual_hash(view),
    )


def _decode_view(im: Image.Image, *, max_side: int) -> Image.Image:
    orientation = 1
    try:
        orientation = int(im.getexif().get(ExifTags.Base.Orientation, 1))
    except Exception:
        orientation = 1  # unreadable EXIF is not a reason to refuse the pixels
    if im.format in ("JPEG", "MPO") and max(im.size) > max_side:
        # Let libjpeg decode at 1/2, 1/4 or 1/8 scale: much faster, still >= max_side.
        im.draft(None, (max_side, max_side))
    im.load()
    out: Image.Image = im
    if orientation in range(2, 9):
        out = ImageOps.exif_transpose(out)
    out = _to_rgb(out)
    if max(out.size) > max_side:
        out.thumbnail((max_side, max_side), Image.Resampling.LANCZOS, reducing_gap=3.0)
    return out


def _to_rgb(im: Image.Image) -> Image.Image:
    mode = im.mode
    if mode == "RGB":
        return im
    if mode == "P":
        has_alpha = "transparency" in im.info or (
            im.palette is not None and im.palette.mode == "RGBA"
        )
        im = im.convert("RGBA" if has_alpha else "RGB")
    elif mode in ("PA", "LA", "La", "RGBa", "RGBX"):
        im = im.convert("RGBA" if mode != "RGBX" else "RGB")
    elif mode.startswith("I") or mode == "F":
        im = _high_depth_to_l(im)
    if im.mode == "RGBA":
        white = Image.new("RGB", im.size, (255, 255, 255))
        white.paste(im, mask=im.getchannel("A"))
        return white
    if im.mode == "RGB":
        return im
    try:
        return im.convert("RGB")
    except ValueError as exc:
        raise ImageRejected(f"unsupported colour mode {mode}") from exc


def _high_depth_to_l(im: Image.Image) -> Image.Image:
    # Pillow's convert("L") clips 16-bit values at 255 instead of scaling: scale by hand.
    arr = np.asarray(im)
    out: np.ndarray
    if im.mode == "F":
        values = np.nan_to_num(arr.astype(np.float64))
        scale = 255.0 if values.max(initial=0.0) <= 1.0 else 1.0
        out = np.clip(values * scale, 0, 255)
    else:
        out = np.clip(arr.astype(np.int64), 0, 65535) >> 8
    return Image.fromarray(out.astype(np.uint8), "L")


def _verify_png(data: bytes) -> None:
    # Pillow decodes PNG pixels without checking trailing chunks; verify() checks every CRC
    # and that IEND is there, without decompressing pixels again.
    with Image.open(io.BytesIO(data), formats=["PNG"]) as check:
        check.verify()


def _short(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) <= 200 else text[:200] + "..."


def perceptual_hash(image: Image.Image) -> str:
    """64-bit pHash (imagehash.phash) as 16 hex chars, on a cheaply pre-reduced copy."""
    import imagehash

    small = image
    factor = min(image.size) // 128
    if factor >= 2:
        small = image.reduce(factor)  # box filter; phash only looks at 32x32 anyway
    return str(imagehash.phash(small))


def hamming(a: str, b: str) -> int:
    return (int(a, 16) ^ int(b, 16)).bit_count()


def open_view_image(store: BlobStore, sha256: str) -> Image.Image:
    """The normalised RGB view stored under `sha256`, fully loaded (the file is closed)."""
    with Image.open(io.BytesIO(store.read_bytes(sha256))) as im:
        im.load()
        return im if im.mode == "RGB" else im.convert("RGB")


class HashIndex:
    """In-memory nearest-neighbour search over 64-bit perceptual hashes.

    One vectorised XOR + popcount over all hashes per query: ~1 ms per 100k hashes, so a run
    loads the existing hashes once and never queries the database per file.
    """

    def __init__(self) -> None:
        self._hashes: np.ndarray = np.zeros(1024, dtype=np.uint64)
        self._ids: np.ndarray = np.zeros(1024, dtype=np.int64)
        self._n = 0

    def __len__(self) -> int:
        return self._n

    def add(self, key: int, phash: str) -> None:
        if self._n == len(self._hashes):
            self._hashes = np.concatenate([self._hashes, np.zeros_like(self._hashes)])
            self._ids = np.concatenate([self._ids, np.zeros_like(self._ids)])
        self._hashes[self._n] = np.uint64(int(phash, 16))
        self._ids[self._n] = key
        self._n += 1

    def nearest(self, phash: str, max_distance: int) -> tuple[int, int] | None:
        """(key, distance) of the closest hash within max_distance; ties go to the first added."""
        if self._n == 0:
            return None
        query = np.uint64(int(phash, 16))
        dist = np.bitwise_count(self._hashes[: self._n] ^ query)
        best = int(np.argmin(dist))
        if int(dist[best]) > max_distance:
            return None
        return int(self._ids[best]), int(dist[best])
