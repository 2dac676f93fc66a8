"""CSV / JSONL ingest manifests, and the cleaning of every hostile string ingest stores.

A manifest lists images with optional text and ground truth, one row per item:

    path,text,external_id,labels            (CSV; labels separated by ';' or '|')
    {"path": "a.jpg", "text": "...", "labels": ["scam_fraud"]}     (JSONL)

A post of several images is one row with `images` instead of `path` (a JSON list, or in CSV
an `images` column separated by ';' or '|'): one item, one decision over all of them.

    {"images": ["p1/a.jpg", "p1/b.jpg"], "text": "caption", "labels": []}

`path` is relative to the manifest's folder; absolute paths and `..` escapes are refused.
'safe' as a label means "no category". Everything in a manifest is untrusted: a malformed row
(bad JSON, bad UTF-8, over-long line, missing path) becomes a `RowError` with its line number,
never an exception; only an unreadable file or a CSV with no `path` column fails as a whole.

    for row in read_manifest(Path("batch/manifest.csv"), settings.limits): ...
"""

from __future__ import annotations

import csv
import json
import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any, BinaryIO

from storage.settings import LimitSettings

MANIFEST_SUFFIXES = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}
COLUMNS = ("path", "images", "text", "external_id", "labels")
BOM = "\ufeff"
_TOO_LONG = object()
# Bidirectional overrides and isolates: used to spoof file names ("gpj.exe" shown as "exe.jpg").
_BIDI = dict.fromkeys(map(ord, "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"))
_LABEL_SPLIT = re.compile(r"[;|]")


class ManifestError(Exception):
    """The manifest as a whole cannot be used; the message says why."""


@dataclass(frozen=True)
class ManifestRow:
    line: int
    path: str
    text: str | None = None
    external_id: str | None = None
    labels: list[str] | None = None  # None: no ground truth; []: 'safe'
    # A post: the paths of its images in order (`path` is then the first of them).
    images: list[str] | None = None


@dataclass(frozen=True)
class RowError:
    line: int
    reason: str
    path: str | None = None


def manifest_kind(path: Path) -> str | None:
    return MANIFEST_SUFFIXES.get(path.suffix.lower())


def _strip_controls(value: str, *, keep_newlines: bool) -> str:
    # Lone surrogates (undecodable file names) cannot be stored in PostgreSQL: replace them.
    value = value.encode("utf-8", "replace").decode("utf-8")
    value = value.translate(_BIDI)
    if keep_newlines:
        value = value.replace("\r\n", "\n").replace("\r", "\n")
    keep = {"\n", "\t"} if keep_newlines else set()
    return "".join(ch for ch in value if ch in keep or unicodedata.category(ch) not in ("Cc", "Cs"))


def clean_name(value: str, max_chars: int) -> str:
    """A file name or identifier as a plain one-line string: controls stripped, length-capped."""
    return _strip_controls(value, keep_newlines=False).strip()[:max_chars]


def clean_text(value: str | None, max_chars: int) -> tuple[str | None, int | None]:
    """(cleaned text or None if empty, original length when it had to be truncated)."""
    if value is None:
        return None, None
    text = _strip_controls(value, keep_newlines=True).strip()
    if not text:
        return None, None
    if len(text) > max_chars:
        return text[:max_chars], len(text)
    return text, None


def parse_labels(value: Any) -> list[str] | None:
    """Labels from a JSON value or a CSV cell; None when there is no ground truth."""
    if value is None:
        return None
    if isinstance(value, str):
        parts = [p.strip() for p in _LABEL_SPLIT.split(value)]
        parts = [p for p in parts if p]
        return parts or None
    if isinstance(value, list):
        if not all(isinstance(v, str) for v in value):
            raise ValueError("labels must be a list of strings")
        return [v.strip() for v in value if v.strip()]
    raise ValueError(f"labels must be a list or a string, not {type(value).__name__}")


def check_row_path(raw: str) -> None:
    """ValueError (the reason) for a row path that is empty, absolute or climbs with '..'."""
    if not raw or not raw.strip():
        raise ValueError("empty path")
    if "\x00" in raw:
        raise ValueError("path contains a NUL byte")
    if (
        PurePosixPath(raw).is_absolute()
        or PureWindowsPath(raw).is_absolute()
        or (PureWindowsPath(raw).drive or raw.startswith(("\\", "/")))
    ):
        raise ValueError("absolute paths are not allowed")
    if ".." in re.split(r"[\\/]", raw):
        raise ValueError("'..' is not allowed in manifest paths")


def resolve_row_path(base: Path, raw: str) -> Path:
    """The file a row names, inside `base`; ValueError (the reason) for anything else."""
    check_row_path(raw)
    root = base.resolve()
    target = (root / raw).resolve()
    # Also catches symlinks inside the folder that point outside it.
    if not target.is_relative_to(root):
        raise ValueError("path escapes the manifest's folder")
    return target


def max_line_bytes(limits: LimitSettings) -> int:
    # Room for max_text_chars of JSON-escaped text (up to 6 bytes a char) plus the other fields.
    return max(1 << 20, limits.max_text_chars * 8 + (64 << 10))


def _physical_lines(fh: BinaryIO, limit: int) -> Iterator[bytes | object]:
    """Lines as bytes, or _TOO_LONG for a line over `limit` bytes (skipped, never buffered)."""
    while True:
        line = fh.readline(limit + 1)
        if not line:
            return
        if len(line) > limit and not line.endswith(b"\n"):
            while True:  # drain the rest of the over-long line in bounded chunks
                more = fh.readline(limit)
                if not more or more.endswith(b"\n"):
                    break
            yield _TOO_LONG
            continue
        yield line


def read_manifest(path: Path, limits: LimitSettings) -> Iterator[ManifestRow | RowError]:
    try:
        fh = path.open("rb")
    except OSError as exc:
        raise ManifestError(f"cannot read manifest: {exc.strerror or exc}") from exc
    with fh:
        yield from read_manifest_from(fh, manifest_kind(path) or "jsonl", limits)


def read_manifest_from(
    fh: BinaryIO, kind: str, limits: LimitSettings
) -> Iterator[ManifestRow | RowError]:
    """Rows of a manifest of `kind` ("csv" or "jsonl") read from an open binary stream (a file,
    or an archive member's bytes)."""
    if kind == "csv":
        yield from _read_csv(fh, limits)
    else:
        yield from _read_jsonl(fh, limits)


def _too_many(line: int, limits: LimitSettings) -> RowError:
    return RowError(
        line, f"manifest has more than {limits.max_manifest_rows} rows; the rest was not read"
    )


def _read_jsonl(fh: BinaryIO, limits: LimitSettings) -> Iterator[ManifestRow | RowError]:
    rows = 0
    for line_no, raw in enumerate(_physical_lines(fh, max_line_bytes(limits)), start=1):
        if raw is _TOO_LONG:
            yield RowError(line_no, f"line {line_no}: line too long (over the size limit)")
            continue
        assert isinstance(raw, bytes)
        if line_no == 1 and raw.startswith(BOM.encode()):
            raw = raw[3:]
        if not raw.strip():
            continue
        rows += 1
        if rows > limits.max_manifest_rows:
            yield _too_many(line_no, limits)
            return
        try:
            obj = json.loads(raw.decode("utf-8"))
        except UnicodeDecodeError:
            yield RowError(line_no, f"line {line_no}: not valid UTF-8")
            continue
        except (json.JSONDecodeError, RecursionError) as exc:
            msg = exc.msg if isinstance(exc, json.JSONDecodeError) else "nested too deeply"
            yield RowError(line_no, f"line {line_no}: invalid JSON: {msg}")
            continue
        yield _row_from_mapping(line_no, obj)


def _row_from_mapping(line_no: int, obj: Any) -> ManifestRow | RowError:
    if not isinstance(obj, dict):
        return RowError(line_no, f"line {line_no}: expected a JSON object")
    obj = {str(k).strip().lower(): v for k, v in obj.items()}
    path = obj.get("path")
    try:
        images = parse_images(obj.get("images"))
    except ValueError as exc:
        return RowError(line_no, f"line {line_no}: {exc}")
    if images is not None:
        if isinstance(path, str) and path.strip():
            return RowError(line_no, f"line {line_no}: give 'path' or 'images', not both")
        path = images[0]
    if not isinstance(path, str) or not path.strip():
        return RowError(line_no, f"line {line_no}: missing 'path'")
    text = obj.get("text")
    if text is not None and not isinstance(text, str):
        text = json.dumps(text) if isinstance(text, list | dict) else str(text)
    ext = obj.get("external_id")
    if ext is not None and not isinstance(ext, str):
        ext = str(ext)
    try:
        labels = parse_labels(obj.get("labels"))
    except ValueError as exc:
        return RowError(line_no, f"line {line_no}: {exc}", path)
    return ManifestRow(line_no, path, text or None, ext or None, labels, images)


def parse_images(value: Any) -> list[str] | None:
    """A post's image paths from a JSON list or a CSV cell; None when the row has none."""
    if value is None:
        return None
    if isinstance(value, str):
        value = _LABEL_SPLIT.split(value)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError("images must be a list of paths")
    paths = [v.strip() for v in value if v.strip()]
    if not paths:
        raise ValueError("images is empty")
    return paths


def _read_csv(fh: BinaryIO, limits: LimitSettings) -> Iterator[ManifestRow | RowError]:
    limit = max_line_bytes(limits)
    csv.field_size_limit(limit)
    physical = 0

    def lines() -> Iterator[str]:
        nonlocal physical
        for raw in _physical_lines(fh, limit):
            physical += 1
            if raw is _TOO_LONG:
                # A marker row, rejected below with its line number.
                yield "\x00too-long\n"
                continue
            assert isinstance(raw, bytes)
            text = raw.decode("utf-8", "surrogateescape")
            if physical == 1:
                text = text.lstrip(BOM)
            yield text.replace("\x00", "\ufffd") if "\x00" in text else text

    reader = csv.reader(lines())
    header: list[str] | None = None
    rows = 0
    last_error_line = -1
    while True:
        start = reader.line_num + 1
        try:
            record = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            if reader.line_num == last_error_line:
                break  # the reader cannot move past this point
            last_error_line = reader.line_num
            yield RowError(start, f"line {start}: malformed CSV: {exc}")
            continue
        if record == ["\x00too-long"]:
            yield RowError(start, f"line {start}: line too long (over the size limit)")
            continue
        if header is None:
            header = [_strip_controls(h, keep_newlines=False).strip().lower() for h in record]
            if "path" not in header and "images" not in header:
                shown = ", ".join(repr(h[:40]) for h in header[:10])
                raise ManifestError(f"line {start}: no 'path' column (columns: {shown})")
            continue
        if not any(cell.strip() for cell in record):
            continue
        rows += 1
        if rows > limits.max_manifest_rows:
            yield _too_many(start, limits)
            return
        if any(_has_surrogate(cell) for cell in record):
            yield RowError(start, f"line {start}: not valid UTF-8")
            continue
        if len(record) > len(header):
            yield RowError(start, f"line {start}: {len(record)} fields, header has {len(header)}")
            continue
        values = dict(zip(header, record, strict=False))
        values = {k: v for k, v in values.items() if k in COLUMNS and v != ""}
        yield _row_from_mapping(start, values)
    if header is None:
        raise ManifestError("manifest is empty")


def _has_surrogate(value: str) -> bool:
    return any("\udc80" <= ch <= "\udcff" for ch in value)
