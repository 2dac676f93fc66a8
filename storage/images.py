"""Image decoding for ingestion: sniff the format from content, guard against decompression
bombs, and build the normalised RGB view that the model and the UI use; perceptual hashes.

The view is: EXIF orientation applied, first frame only, 8-bit RGB, alpha (and tRNS
transparency in any mode) composited on white, longest side capped (2048 px), re-encoded as PNG.
Re-encoding also strips metadata (GPS in EXIF, text chunks) and whatever a hostile file might
aim at a browser's decoder. A GIF's every frame header is checked against the pixel and frame
limits before any frame is decoded.

Two hashes are computed on the view: a 64-bit pHash (near-duplicate distance; it fits the
schema's 16-char column) and PDQ with its quality score (0-100, the share of the image with
gradients). Flat and near-flat images all get the same pHash, so a hash whose PDQ quality is
below HASH_QUALITY_MIN says nothing about the image and must never be matched or banked.

    norm = normalise_image(data, max_pixels=settings.limits.max_pixels)
    image = open_view_image(store, item.view_sha256)
"""

from __future__ import annotations

import io
import re
import struct
import zlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

if TYPE_CHECKING:
    from storage.blobs import BlobStore

VIEW_MAX_SIDE = 2048
# Most frames an animated GIF may declare; the header walk stops and rejects past it.
MAX_FRAMES = 10_000
# PDQ quality below which a hash is not used for matching. 50 is the cut-off Meta's PDQ
# documentation and HMA use; measured here: flat colours, noise up to sigma 8 and gentle
# gradients score 0-12, a full black-to-white ramp 44, every scikit-image photo 83-100, and
# 95% of SynthMod renders 96-100 (the rest are its low-contrast posters).
HASH_QUALITY_MIN = 50
# PDQ looks at 64x64 after its own filter; like its reference tools, hash a <= 512 px copy.
_PDQ_SIDE = 512

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
    pdq: str  # 256-bit PDQ hash, 64 hex chars
    hash_quality: int  # PDQ quality, 0 (flat) to 100

    @property
    def hash_is_weak(self) -> bool:
        """True when the hashes carry too little of the image to match on."""
        return self.hash_quality < HASH_QUALITY_MIN


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


# Image formats Warden does not accept, by magic bytes: (offset, magic, name for the reason).
_OTHER_IMAGE_MAGIC: list[tuple[int, bytes, str]] = [
    (0, b"8BPS", "PSD (Photoshop document)"),
    (0, b"DDS ", "DDS (DirectDraw texture)"),
    (0, b"\x00\x00\x00\x0cjP  \r\n\x87\n", "JPEG 2000"),
    (0, b"\xffO\xffQ", "JPEG 2000 codestream"),
    (0, b"\xff\x0a", "JPEG XL"),
    (0, b"\x00\x00\x00\x0cJXL \r\n\x87\n", "JPEG XL"),
    (0, b"\x00\x00\x01\x00", "ICO (Windows icon)"),
    (0, b"\x00\x00\x02\x00", "CUR (Windows cursor)"),
    (0, b"icns", "ICNS (macOS icon)"),
    (0, b"qoif", "QOI"),
    (0, b"\x01\xda", "SGI"),
    (0, b"BLP", "BLP (Blizzard texture)"),
    (0, b"FTEX", "FTEX (texture)"),
    (0, b"SIMPLE  =", "FITS"),
    (0, b"\x59\xa6\x6a\x95", "Sun raster"),
    (0, b"/* XPM */", "XPM"),
    (0, b"\xc5\xd0\xd3\xc6", "EPS (PostScript)"),
    (0, b"%!PS", "PostScript/EPS"),
    (0, b"\xd7\xcd\xc6\x9a", "WMF (Windows metafile)"),
    (40, b" EMF", "EMF (Windows metafile)"),
    (4, b"\x11\xaf", "FLI animation"),
    (4, b"\x12\xaf", "FLC animation"),
    (0, b"DanM", "MSP"),
    (0, b"LinS", "MSP"),
    (0, b"gimp xcf", "XCF (GIMP document)"),
    (0, b"GIMP Palette", "GIMP palette"),
    (0, b"II+\x00", "BigTIFF"),
    (0, b"MM\x00+", "BigTIFF"),
    (0, b"\x76\x2f\x31\x01", "OpenEXR"),
    (0, b"#?RADIANCE", "Radiance HDR"),
]
_HEIF_BRANDS = (b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1", b"avif",
                b"avis")  # fmt: skip

# Other kinds of file, by magic bytes at the start (after leading whitespace, lower-cased).
_OTHER_MAGIC: list[tuple[bytes, str]] = [
    (b"%pdf", "a PDF document"),
    (b"\x7felf", "an ELF executable"),
    (b"mz", "a Windows executable"),
    (b"pk\x03\x04", "a zip archive"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"7z\xbc\xaf", "a 7z archive"),
    (b"rar!", "a RAR archive"),
    (b"\xd0\xcf\x11\xe0", "an OLE compound document (old Office file, FlashPix)"),
    (b"\x89hdf", "an HDF5 file"),
    (b"grib", "a GRIB weather file"),
    (b"bufr", "a BUFR weather file"),
    (b"\x1aE\xdf\xa3".lower(), "a Matroska/WebM video"),
    (b"id3", "an MP3 audio file"),
    (b"oggs", "an Ogg media file"),
    (b"fws", "a Flash file"),
    (b"cws", "a Flash file"),
    (b"<?xml", "an XML/SVG document"),
    (b"<svg", "an SVG document"),
    (b"<!doctype html", "an HTML document"),
    (b"<html", "an HTML document"),
    (b"#!", "a script"),
]


def describe_content(data: bytes) -> str:
    """A short guess at what bytes that are not a supported image are, for rejection reasons."""
    if not data:
        return "empty file"
    image = _other_image_type(data)
    if image is not None:
        return f"an unsupported image type ({image})"
    head = data[:512].lstrip().lower()
    for magic, what in _OTHER_MAGIC:
        if head.startswith(magic):
            if what.startswith("an XML") and b"<svg" in data[:4096].lower():
                return "an SVG document"
            return what
    if data[4:8] == b"ftyp":
        return "an ISO media file (MP4/MOV)"
    if data[:4] == b"RIFF":
        return f"a RIFF {data[8:12].decode('latin-1').strip() or 'file'} file (not WebP)"
    if len(data) >= 262 and data[257:262] == b"ustar":
        return "a tar archive"
    if head[:1] in (b"{", b"[") and _is_text(data):
        return "a JSON or text file"
    if _is_text(data):
        return "a text file"
    return "an unknown format"


def _other_image_type(data: bytes) -> str | None:
    """The name of an image format Warden does not accept, from its magic bytes, or None."""
    for offset, magic, name in _OTHER_IMAGE_MAGIC:
        if data[offset : offset + len(magic)] == magic:
            return name
    if data[4:8] == b"ftyp" and data[8:12] in _HEIF_BRANDS:
        return "HEIF/AVIF"
    if len(data) >= 3 and data[0:1] == b"P" and data[1:2] in b"1234567fF" and data[2:3].isspace():
        return "Netpbm (PBM/PGM/PPM/PFM)"
    if data[:1] == b"\x0a" and data[1:2] in b"\x00\x02\x03\x04\x05" and data[2:3] == b"\x01":
        return "PCX"
    if data.startswith(b"#define") and b"_width" in data[:256]:
        return "XBM"
    return None


def _is_text(data: bytes) -> bool:
    sample = data[:2048]
    try:
        text = sample.decode("utf-8")
    except UnicodeDecodeError:
        text = sample[:-3].decode("utf-8", errors="replace")  # a multibyte char cut at the end
        if "\ufffd" in text:
            return False
    return sum(c.isprintable() or c in "\r\n\t" for c in text) >= 0.95 * max(len(text), 1)


def unsupported_reason(data: bytes) -> str:
    """The rejection reason for bytes whose magic names no accepted format."""
    image = _other_image_type(data)
    if image is not None:
        return (
            f"not a supported image: unsupported image type: {image} "
            "(accepted: JPEG, PNG, WebP, GIF, BMP, TIFF)"
        )
    what = describe_content(data)
    if what == "an unknown format":
        return f"not a supported image: unrecognised content (starts {data[:8].hex(' ')})"
    return f"not a supported image: looks like {what}"


def normalise_image(
    data: bytes, *, max_pixels: int, max_side: int = VIEW_MAX_SIDE, max_frames: int = MAX_FRAMES
) -> NormalisedImage:
    """Decode `data` once and build its view. Raises ImageRejected with a reason."""
    if not data:
        raise ImageRejected("empty file")
    fmt = sniff_format(data)
    if fmt is None:
        raise ImageRejected(unsupported_reason(data))
    if fmt == "GIF":
        check_gif_frames(data, max_pixels=max_pixels, max_frames=max_frames)
    # Pillow's own bomb guard fires inside Image.open (headers only, before any pixel is
    # decoded); our explicit check below gives the clear reason at exactly max_pixels.
    Image.MAX_IMAGE_PIXELS = max_pixels
    try:
        im = Image.open(io.BytesIO(data), formats=[fmt])
    except Image.DecompressionBombError as exc:
        raise ImageRejected(
            f"decompression bomb: the header declares more than the limit of {max_pixels} pixels"
        ) from exc
    except UnidentifiedImageError as exc:  # its message is only the BytesIO's repr
        raise ImageRejected(header_problem(fmt, data)) from exc
    except Exception as exc:  # struct errors, unsupported modes, ...
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
            raise ImageRejected(f"decompression bomb: {_short(exc)}") from exc
        except Exception as exc:
            raise ImageRejected(f"corrupt or truncated {fmt}: {_short(exc)}") from exc
    # The view carries no metadata: a tRNS value or ICC profile copied from the original would
    # be wrong for 8-bit RGB (a 1-bit file's integer transparency made PNG's encoder raise).
    view.info = {}
    buf = io.BytesIO()
    # Fast zlib settings: the view is re-derivable from the original, so speed beats size;
    # Z_RLE after PNG's row filters is ~15% faster than level 1 and no larger on photos.
    view.save(buf, "PNG", compress_level=1, compress_type=zlib.Z_RLE)
    pdq, quality = pdq_hash(view)
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
        pdq=pdq,
        hash_quality=quality,
    )


def header_problem(fmt: str, data: bytes) -> str:
    """Why Pillow could not identify bytes that start with `fmt`'s magic, said from the bytes."""
    if fmt == "PNG":
        if len(data) < 33:
            return "truncated PNG: the file ends inside its header"
        if data[12:16] != b"IHDR":
            return "corrupt PNG header: no IHDR chunk after the signature"
        width, height, depth, colour, method = struct.unpack(">IIBBB", data[16:27])
        if width == 0 or height == 0:
            return f"invalid dimensions {width}x{height} in the PNG header"
        return (
            f"unsupported or corrupt PNG header ({width}x{height}, bit depth {depth}, "
            f"colour type {colour}, compression method {method})"
        )
    if fmt == "GIF":
        if len(data) < 13:
            return "truncated GIF: the file ends inside its header"
        width, height = struct.unpack("<HH", data[6:10])
        if width == 0 or height == 0:
            return f"invalid dimensions {width}x{height} in the GIF header"
    if len(data) < 32:
        return f"truncated {fmt}: the file ends inside its header ({len(data)} bytes)"
    return f"corrupt or unsupported {fmt} header: no decoder can read it"


def check_gif_frames(data: bytes, *, max_pixels: int, max_frames: int) -> None:
    """Walk a GIF's blocks without decoding any pixel; reject a frame past the limits.

    Each image descriptor declares its own extents; Pillow grows the canvas to fit them when it
    seeks to that frame, so a later frame can be a bomb that the logical screen hides. A walk
    that runs off the end stops quietly: truncation is the decoder's to report.
    """
    if len(data) < 13:
        return
    screen_w, screen_h, packed = struct.unpack("<HHB", data[6:11])
    pos = 13 + (3 << ((packed & 7) + 1) if packed & 0x80 else 0)
    canvas_w, canvas_h = screen_w, screen_h
    frame = 0
    n = len(data)
    while pos < n:
        block = data[pos]
        if block == 0x3B:  # trailer
            return
        if block == 0x21:  # extension: label, then data sub-blocks
            pos = _skip_sub_blocks(data, pos + 2)
        elif block == 0x2C:  # image descriptor
            if pos + 10 > n:
                return
            x, y, w, h, flags = struct.unpack("<HHHHB", data[pos + 1 : pos + 10])
            # The canvas only grows, frame after frame, as Pillow's does.
            canvas_w, canvas_h = max(canvas_w, x + w), max(canvas_h, y + h)
            if canvas_w * canvas_h > max_pixels:
                raise ImageRejected(
                    f"decompression bomb: GIF frame {frame} declares {w}x{h} at ({x}, {y}), a "
                    f"{canvas_w}x{canvas_h} canvas = {canvas_w * canvas_h} pixels over the "
                    f"limit of {max_pixels}"
                )
            frame += 1
            if frame > max_frames:
                raise ImageRejected(f"GIF declares more than {max_frames} frames")
            pos += 10 + (3 << ((flags & 7) + 1) if flags & 0x80 else 0)
            pos = _skip_sub_blocks(data, pos + 1)  # after the LZW minimum code size byte
        else:
            return  # garbage after the frames: Pillow stops here too


def _skip_sub_blocks(data: bytes, pos: int) -> int:
    n = len(data)
    while pos < n:
        size = data[pos]
        pos += 1 + size
        if size == 0:
            break
    return pos


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
    if "transparency" in im.info and mode != "P":
        im = _trns_to_rgba(im)  # tRNS on 1, L, I;16 or RGB: one colour is transparent
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


def _trns_to_rgba(im: Image.Image) -> Image.Image:
    trns = im.info["transparency"]
    if im.mode.startswith("I") and isinstance(trns, int):
        # convert("RGBA") would clip 16-bit grey at 255: scale first, mask from the raw values.
        opaque = np.asarray(im) != trns
        rgba = _high_depth_to_l(im).convert("RGBA")
        rgba.putalpha(Image.fromarray(opaque.astype(np.uint8) * 255, "L"))
        return rgba
    try:
        return im.convert("RGBA")
    except (ValueError, TypeError):
        return im  # a transparency value that makes no sense for the mode is ignored


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


_OBJECT_REPR = re.compile(r"<[^<>]*? object at 0x[0-9a-fA-F]+>")


def without_reprs(text: str) -> str:
    """`text` with object reprs ("<_io.BytesIO object at 0x7f...>", as Pillow names a file)
    replaced by "the file": a reason shown to a user names what, not where in memory."""
    return _OBJECT_REPR.sub("the file", text)


def _short(exc: BaseException) -> str:
    text = without_reprs(str(exc)) or type(exc).__name__
    return text if len(text) <= 200 else text[:200] + "..."


def perceptual_hash(image: Image.Image) -> str:
    """64-bit pHash (imagehash.phash) as 16 hex chars, on a cheaply pre-reduced copy."""
    import imagehash

    small = image
    factor = min(image.size) // 128
    if factor >= 2:
        small = image.reduce(factor)  # box filter; phash only looks at 32x32 anyway
    return str(imagehash.phash(small))


def pdq_hash(image: Image.Image) -> tuple[str, int]:
    """PDQ (as Meta's HMA uses) as 64 hex chars, and its quality 0-100, on a <= 512 px copy."""
    import pdqhash

    small = image
    factor = -(-max(image.size) // _PDQ_SIDE)  # ceiling: the copy's longest side <= 512
    if factor >= 2:
        small = image.reduce(factor)  # box filter; PDQ's own filter then takes it to 64x64
    bits, quality = pdqhash.compute(np.ascontiguousarray(np.asarray(small.convert("RGB"))))
    # bits: [256] of 0/1; pack into bytes big-endian so the hex reads bit 0 first.
    packed = np.packbits(np.asarray(bits, dtype=np.uint8)).tobytes()
    return packed.hex(), int(quality)


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
