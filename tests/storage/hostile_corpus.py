"""A generator of hostile and broken ingest inputs, with the outcome each one must get.

    cases = build_hostile_corpus(tmp_path / "corpus", max_file_bytes=256 * 1024, max_members=20)
    report = ingest_paths(engine, settings, [tmp_path / "corpus"])

Each `Expect` names a report path relative to the corpus root (a file, `archive.zip!member`,
or `manifest.jsonl:LINE`) with the status and a fragment of the reason it must get. Run it as a
script to write a corpus for manual poking: python -m tests.storage.hostile_corpus /tmp/corpus
"""

from __future__ import annotations

import io
import json
import os
import stat
import struct
import sys
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from storage.settings import Settings


@dataclass(frozen=True)
class Expect:
    key: str  # report path relative to the corpus root
    status: str
    reason: str | None = None  # fragment of the reason, case-insensitive


def _photo(seed: int, size: tuple[int, int] = (160, 120)) -> Image.Image:
    rng = np.random.default_rng(seed)
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack(
        [
            (xx * rng.uniform(0.5, 2.0) + yy * rng.uniform(-1, 1)) % 256,
            (yy * rng.uniform(0.5, 2.0)) % 256,
            ((xx + yy) * rng.uniform(0.2, 1.0)) % 256,
        ],
        axis=-1,
    )
    noise = rng.normal(0, 12, base.shape)
    return Image.fromarray(np.clip(base + noise, 0, 255).astype(np.uint8), "RGB")


def encode(image: Image.Image, fmt: str, **kwargs: object) -> bytes:
    buf = io.BytesIO()
    image.save(buf, fmt, **kwargs)
    return buf.getvalue()


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_declaring(width: int, height: int) -> bytes:
    """A tiny, well-formed PNG whose header declares width x height pixels."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", idat)
        + _png_chunk(b"IEND", b"")
    )


def gif_declaring(width: int, height: int) -> bytes:
    good = encode(_photo(3, (16, 16)).convert("P"), "GIF")
    return good[:6] + struct.pack("<HH", width, height) + good[10:]


def gif_with_later_frame(width: int, height: int, x: int = 0, y: int = 0) -> bytes:
    """A valid 16x16 GIF whose second frame's image descriptor declares width x height at (x, y).

    Written by hand after Pillow's first frame: Pillow will not write such a frame.
    """
    first = encode(Image.new("P", (16, 16), 1), "GIF")
    assert first.endswith(b"\x3b")
    # LZW minimum code size 2, one sub-block holding the codes CLEAR (4) and END (5).
    frame = b"\x2c" + struct.pack("<HHHH", x, y, width, height) + b"\x00" + b"\x02\x01\x2c\x00"
    return first[:-1] + frame + b"\x3b"


def jpeg_declaring(width: int, height: int) -> bytes:
    data = bytearray(encode(_photo(4, (32, 32)), "JPEG"))
    i = data.find(b"\xff\xc0")
    if i < 0:
        i = data.find(b"\xff\xc2")
    struct.pack_into(">HH", data, i + 5, height, width)
    return bytes(data)


def _zip(path: Path, members: list[tuple[zipfile.ZipInfo | str, bytes]]) -> None:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for info, data in members:
            zf.writestr(info, data)


def lying_zip(path: Path, real_bytes: int, declared: int) -> None:
    """A zip whose headers (local and central) understate the member's uncompressed size."""
    _zip(path, [("zeros.bmp", b"\x00" * real_bytes)])
    data = bytearray(path.read_bytes())
    # Local header: uncompressed size at offset 22; central directory entry: offset 24.
    lh = data.find(b"PK\x03\x04")
    struct.pack_into("<I", data, lh + 22, declared)
    cd = data.find(b"PK\x01\x02")
    struct.pack_into("<I", data, cd + 24, declared)
    path.write_bytes(bytes(data))


def build_hostile_corpus(
    root: Path, *, max_file_bytes: int, max_members: int, max_text_chars: int = 1000
) -> list[Expect]:
    """Write the corpus under `root`; returns what ingest must report for each input."""
    root.mkdir(parents=True, exist_ok=True)
    ex: list[Expect] = []

    def write(name: str, data: bytes, status: str = "rejected", reason: str | None = None) -> None:
        (root / name).write_bytes(data)
        ex.append(Expect(name, status, reason))

    jpeg = encode(_photo(1), "JPEG", quality=90)
    png = encode(_photo(2), "PNG")
    # Good files that manifests point at (each has distinct content).
    (root / "good").mkdir()
    for i in range(4):
        (root / "good" / f"g{i}.png").write_bytes(encode(_photo(10 + i * 7, (96, 80)), "PNG"))

    write("truncated.jpg", jpeg[: len(jpeg) // 2], reason="truncated")
    write("truncated.png", png[: len(png) * 2 // 3], reason="truncated")
    write("random.jpg", np.random.default_rng(5).bytes(4096), reason="not a supported image")
    write("page.png", b"<!DOCTYPE html><html><script>alert(1)</script></html>", reason="HTML")
    write(
        "vector.png",
        b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"/>',
        reason="SVG",
    )
    write("doc.png", b"%PDF-1.7\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF", reason="PDF")
    write("prog.png", b"\x7fELF\x02\x01\x01" + b"\x00" * 120, reason="ELF")
    write("empty.jpg", b"", reason="empty")
    write("bomb.png", png_declaring(100_000, 100_000), reason="decompression bomb")
    write("bomb.gif", gif_declaring(60_000, 60_000), reason="decompression bomb")
    write("bomb.jpg", jpeg_declaring(65_000, 65_000), reason="decompression bomb")
    write("frame_bomb.gif", gif_with_later_frame(60_000, 60_000), reason="GIF frame 1")
    one_bit = Image.new("1", (64, 64), 1)
    one_bit.paste(0, (0, 0, 32, 64))
    write("1bit_trns.png", encode(one_bit, "PNG", transparency=1), status="accepted")
    write("pdf.jpg", b"%PDF-1.4\n", reason="looks like a PDF document")
    write("crc.png", png[:60] + bytes([png[60] ^ 0xFF]) + png[61:], reason="corrupt")
    padded = jpeg + b"\x00" * (max_file_bytes + 1024 - len(jpeg))
    write("huge.jpg", padded, reason="byte limit")
    write("zip_as.png", _zip_bytes(), reason="zip archive")

    # Hostile names: markup and terminal escapes are stored as plain text; valid images.
    html_name = "<img src=x onerror=alert(1)>.png"
    write(html_name, encode(_photo(30), "PNG"), status="accepted")
    ansi_name = "\x1b[31mred\x07.png"
    (root / ansi_name).write_bytes(encode(_photo(31), "PNG"))
    ex.append(Expect("\x1b[31mred\x07.png".replace("\x1b", "").replace("\x07", ""), "accepted"))
    bad_utf8 = os.fsencode(str(root)) + b"/bad\xffname.png"
    with open(bad_utf8, "wb") as fh:
        fh.write(encode(_photo(32), "PNG"))
    ex.append(Expect("bad?name.png", "accepted"))

    # Things in a folder that are not regular files.
    os.symlink("/etc/passwd", root / "link.jpg")
    ex.append(Expect("link.jpg", "rejected", "symbolic link"))
    os.mkfifo(root / "pipe.jpg")
    ex.append(Expect("pipe.jpg", "rejected", "not a regular file"))

    # Archives.
    good_member = encode(_photo(40), "JPEG")
    _zip(root / "traversal.zip", [("ok.jpg", good_member), ("../../evil.jpg", jpeg)])
    ex.append(Expect("traversal.zip", "rejected", "traversal"))
    _zip(root / "absolute.zip", [("/tmp/evil.jpg", jpeg)])
    ex.append(Expect("absolute.zip", "rejected", "absolute"))
    link = zipfile.ZipInfo("link.jpg")
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    _zip(root / "symlink.zip", [(link, b"/etc/passwd")])
    ex.append(Expect("symlink.zip", "rejected", "symlink"))
    inner = io.BytesIO()
    with zipfile.ZipFile(inner, "w") as zf:
        zf.writestr("x.jpg", jpeg)
    _zip(root / "nested.zip", [("inner.zip", inner.getvalue()), ("ok2.jpg", good_member)])
    ex.append(Expect("nested.zip", "rejected", "nested"))
    _zip(root / "many.zip", [(f"m{i}.jpg", b"x") for i in range(max_members + 1)])
    ex.append(Expect("many.zip", "rejected", "too many members"))
    _zip(root / "bomb.zip", [("zeros.bmp", b"\x00" * (24 << 20))])
    ex.append(Expect("bomb.zip", "rejected", "zip bomb"))
    lying_zip(root / "lying.zip", real_bytes=8 << 20, declared=1000)
    ex.append(Expect("lying.zip!zeros.bmp", "rejected", "corrupt member"))
    write("corrupt.zip", np.random.default_rng(6).bytes(2048), reason="corrupt zip")
    ok_zip = io.BytesIO()
    with zipfile.ZipFile(ok_zip, "w") as zf:
        zf.writestr("a.jpg", encode(_photo(41), "JPEG"))
        zf.writestr("b.png", encode(_photo(42), "PNG"))
    write("cut.zip", ok_zip.getvalue()[: len(ok_zip.getvalue()) - 30], reason="corrupt zip")
    _zip(root / "mixed.zip", [("fine.jpg", encode(_photo(43), "JPEG")), ("notes.txt", b"hi")])
    ex.append(Expect("mixed.zip!fine.jpg", "accepted"))
    ex.append(Expect("mixed.zip!notes.txt", "rejected", "not a supported image"))

    # Manifests.
    long_text = "<script>alert('x')</script>" + "y" * (max_text_chars + 50)
    jsonl_lines: list[bytes] = [
        json.dumps(
            {
                "path": "good/g0.png",
                "text": "<b onmouseover=alert(1)>hi</b>\x00\x1b[2J",
                "labels": ["scam_fraud"],
            }
        ).encode(),  # fmt: skip
        json.dumps({"path": "../outside.jpg"}).encode(),
        json.dumps({"path": "/etc/passwd"}).encode(),
        b"{not json at all",
        json.dumps({"path": "good/g1.png", "labels": ["no_such_category"]}).encode(),
        json.dumps(["a", "list"]).encode(),
        json.dumps({"text": "no path here"}).encode(),
        b'{"path": "good/g2.png", "text": "' + b"z" * (2 << 20) + b'"}',
        b'{"path": "good/g2.png", "text": "caf\xe9"}',
        json.dumps({"path": "good/g3.png", "text": long_text, "labels": "safe"}).encode(),
        json.dumps({"path": "good/missing.png"}).encode(),
        json.dumps({"path": "good"}).encode(),
        json.dumps({"path": "C:\\Windows\\win.ini"}).encode(),
        json.dumps({"path": "good/g1.png", "labels": 5}).encode(),
    ]
    (root / "rows.jsonl").write_bytes(b"\xef\xbb\xbf" + b"\n".join(jsonl_lines) + b"\n")
    ex += [
        Expect("rows.jsonl:1", "accepted"),
        Expect("rows.jsonl:2", "rejected", "'..'"),
        Expect("rows.jsonl:3", "rejected", "absolute"),
        Expect("rows.jsonl:4", "rejected", "invalid JSON"),
        Expect("rows.jsonl:5", "rejected", "unknown category"),
        Expect("rows.jsonl:6", "rejected", "JSON object"),
        Expect("rows.jsonl:7", "rejected", "missing 'path'"),
        Expect("rows.jsonl:8", "rejected", "too long"),
        Expect("rows.jsonl:9", "rejected", "UTF-8"),
        Expect("rows.jsonl:10", "accepted"),
        Expect("rows.jsonl:11", "rejected", "cannot read"),
        Expect("rows.jsonl:12", "rejected", "not a regular file"),
        Expect("rows.jsonl:13", "rejected", "absolute"),
        Expect("rows.jsonl:14", "rejected", "labels must be"),
    ]
    os.symlink("/etc", root / "etc_link")
    ex.append(Expect("etc_link", "rejected", "symbolic link"))
    csv_text = (
        "\ufeffPath,Text,Labels\n"
        'good/g1.png,"multi\nline <i>text</i>",weapons;drugs\n'
        "etc_link/passwd,,\n"
        "../../x.png,,\n"
        "good/g2.png,,weapons|bogus\n"
    )
    (root / "rows.csv").write_bytes(csv_text.encode() + b"good/g2.png,\xff\xfe bad bytes,\n")
    ex += [
        Expect("rows.csv:2", "accepted"),
        Expect("rows.csv:4", "rejected", "escapes"),
        Expect("rows.csv:5", "rejected", "'..'"),
        Expect("rows.csv:6", "rejected", "unknown category"),
        Expect("rows.csv:7", "rejected", "UTF-8"),
    ]
    (root / "nopath.csv").write_text("file,text\na.jpg,hello\n")
    ex.append(Expect("nopath.csv", "rejected", "no 'path' column"))
    (root / "empty.jsonl").write_bytes(b"")
    ex.append(Expect("empty.jsonl", "rejected", "no rows"))
    return ex


def _zip_bytes() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("a.jpg", encode(_photo(50), "JPEG"))
    return buf.getvalue()


if __name__ == "__main__":
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "hostile-corpus")
    for e in build_hostile_corpus(out, max_file_bytes=256 * 1024, max_members=20):
        print(f"{e.status:<10} {e.key!r}  {e.reason or ''}")


def assert_store_consistent(engine: Engine, settings: Settings) -> dict[str, int]:
    """Nothing partial anywhere: no temp files; every blob row has an intact file; every item
    points at blob rows. Returns row counts."""
    from storage.blobs import BlobStore
    from storage.models import Blob, Item, ItemMedium

    store = BlobStore(settings.blobs_path)
    assert store.temp_files() == [], "temporary files left in the blob store"
    with Session(engine) as s:
        blobs = {b.sha256: b for b in s.scalars(select(Blob))}
        items = list(s.scalars(select(Item)))
        media = list(s.scalars(select(ItemMedium)))
    for sha in blobs:
        assert store.verify(sha), f"blob row {sha} has no intact file"
    for item in items:
        assert item.blob_sha256 in blobs and item.view_sha256 in blobs
        assert blobs[item.view_sha256].mime == "image/png"
    item_ids = {i.id for i in items}
    for m in media:  # every medium belongs to an item and points at blob rows
        assert m.item_id in item_ids and m.blob_sha256 in blobs, "orphan media row"
        assert m.view_sha256 in blobs and blobs[m.view_sha256].mime == "image/png"
    referenced = {i.blob_sha256 for i in items} | {i.view_sha256 for i in items}
    referenced |= {m.blob_sha256 for m in media} | {m.view_sha256 for m in media}
    assert set(blobs) == referenced, "blob rows that no item uses"
    return {"items": len(items), "blobs": len(blobs)}
