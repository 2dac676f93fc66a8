"""Reading `.zip` archives for ingest without trusting them.

The whole archive is refused, before any member is read, when its central directory shows
path traversal, an absolute path, a symlink member, a nested archive, too many members, or
declared sizes over the total / compression-ratio limits (zip bomb). Headers can lie, so the
same limits are enforced again while streaming: every member is decompressed in bounded chunks
and counted, and a member that inflates past its declared size, the per-file byte limit, or
the archive's remaining budget is cut off and rejected (with every member after it). Member
names are only ever shown to people: they never become filesystem paths.

    for member in iter_zip_members(Path("batch.zip"), settings.limits): ...
"""

from __future__ import annotations

import re
import stat
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from storage.manifests import clean_name
from storage.settings import LimitSettings

NESTED_SUFFIXES = (
    ".zip", ".jar", ".apk", ".tar", ".tgz", ".gz", ".bz2", ".xz", ".zst", ".7z", ".rar", ".cab",
    ".iso",
)  # fmt: skip
NESTED_MAGIC = (
    b"PK\x03\x04",
    b"PK\x05\x06",
    b"\x1f\x8b",
    b"7z\xbc\xaf",
    b"Rar!",
    b"BZh",
    b"\xfd7zXZ",
)
CHUNK = 1 << 20
# Below this many bytes a member cannot hurt anyone, whatever its compression ratio.
RATIO_FLOOR_BYTES = 1 << 20


class ArchiveRejected(Exception):
    """The archive as a whole is refused; the message is the reason."""


@dataclass(frozen=True)
class ArchiveMember:
    name: str  # cleaned, for display only
    data: bytes | None
    rejection: str | None = None


def is_zip(path: Path) -> bool:
    # By name: a zip disguised under another extension is rejected as "not an image".
    return path.suffix.lower() == ".zip"


def _unsafe_name(name: str) -> str | None:
    if "\x00" in name:
        return "member name contains a NUL byte"
    if name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name):
        return "absolute path member"
    if ".." in re.split(r"[\\/]", name):
        return "path traversal ('..') member"
    return None


def _is_symlink(info: zipfile.ZipInfo) -> bool:
    return stat.S_ISLNK(info.external_attr >> 16)


def _budget(archive_bytes: int, limits: LimitSettings) -> int:
    by_ratio = int(max(archive_bytes, 1) * limits.max_archive_ratio)
    return min(limits.max_archive_total_bytes, max(by_ratio, RATIO_FLOOR_BYTES))


def check_zip(
    zf: zipfile.ZipFile, archive_bytes: int, limits: LimitSettings
) -> list[zipfile.ZipInfo]:
    """The file members to read; raises ArchiveRejected when the directory itself is hostile."""
    infos = zf.infolist()
    if len(infos) > limits.max_archive_members:
        raise ArchiveRejected(
            f"too many members: {len(infos)} > limit of {limits.max_archive_members}"
        )
    declared = 0
    members: list[zipfile.ZipInfo] = []
    for info in infos:
        shown = clean_name(info.filename, 200)
        problem = _unsafe_name(info.filename)
        if problem:
            raise ArchiveRejected(f"{problem}: {shown!r}")
        if _is_symlink(info):
            raise ArchiveRejected(f"symlink member: {shown!r}")
        if info.is_dir():
            continue
        if info.filename.lower().endswith(NESTED_SUFFIXES):
            raise ArchiveRejected(f"nested archive member: {shown!r}")
        ratio = info.file_size / max(info.compress_size, 1)
        if info.file_size > RATIO_FLOOR_BYTES and ratio > limits.max_archive_ratio:
            raise ArchiveRejected(
                f"zip bomb: member {shown!r} declares a compression ratio of {ratio:.0f}:1 "
                f"(limit {limits.max_archive_ratio:.0f}:1)"
            )
        declared += info.file_size
        members.append(info)
    budget = _budget(archive_bytes, limits)
    if declared > budget:
        raise ArchiveRejected(
            f"zip bomb: members declare {declared} bytes uncompressed, over the limit of "
            f"{budget} bytes for a {archive_bytes}-byte archive"
        )
    return members


def iter_zip_members(path: Path, limits: LimitSettings) -> Iterator[ArchiveMember]:
    """Members in archive order; raises ArchiveRejected (before yielding) for a hostile zip."""
    archive_bytes = path.stat().st_size
    if archive_bytes > limits.max_archive_total_bytes:
        raise ArchiveRejected(
            f"archive is {archive_bytes} bytes, over the limit of {limits.max_archive_total_bytes}"
        )
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError) as exc:
        raise ArchiveRejected(f"corrupt zip: {exc}") from exc
    with zf:
        try:
            members = check_zip(zf, archive_bytes, limits)
        except ArchiveRejected:
            raise
        except Exception as exc:  # malformed directory fields
            raise ArchiveRejected(f"corrupt zip: {exc}") from exc
        budget = _budget(archive_bytes, limits)
        used = 0
        exhausted: str | None = None
        for info in members:
            name = clean_name(info.filename, 400)
            if exhausted:
                yield ArchiveMember(name, None, f"not read: {exhausted}")
                continue
            if info.flag_bits & 0x1:
                yield ArchiveMember(name, None, "encrypted member")
                continue
            if info.file_size > limits.max_file_bytes:
                yield ArchiveMember(
                    name,
                    None,
                    f"over the byte limit: {info.file_size} > {limits.max_file_bytes} bytes",
                )
                continue
            try:
                data = _read_member(zf, info, limits, budget - used)
            except _MemberProblem as exc:
                if exc.archive_wide:
                    exhausted = str(exc)
                yield ArchiveMember(name, None, str(exc))
                continue
            used += len(data)
            if data.startswith(NESTED_MAGIC):
                yield ArchiveMember(name, None, "nested archive member (not expanded)")
                continue
            yield ArchiveMember(name, data)


class _MemberProblem(Exception):
    def __init__(self, reason: str, *, archive_wide: bool = False) -> None:
        super().__init__(reason)
        self.archive_wide = archive_wide


def _read_member(
    zf: zipfile.ZipFile, info: zipfile.ZipInfo, limits: LimitSettings, remaining: int
) -> bytes:
    """The member's bytes, never inflating more than the limits; raises _MemberProblem."""
    cap = min(info.file_size, limits.max_file_bytes)
    chunks: list[bytes] = []
    got = 0
    try:
        with zf.open(info) as fh:
            while chunk := fh.read(CHUNK):
                got += len(chunk)
                if got > remaining:
                    raise _MemberProblem(
                        "zip bomb: the archive inflates past its decompressed-size budget",
                        archive_wide=True,
                    )
                if got > cap:
                    raise _MemberProblem(
                        f"member inflates past its declared size of {info.file_size} bytes "
                        "(lying header)"
                    )
                chunks.append(chunk)
    except NotImplementedError as exc:
        raise _MemberProblem(f"unsupported compression: {exc}") from exc
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError, RuntimeError) as exc:
        raise _MemberProblem(f"corrupt member: {exc}") from exc
    if got != info.file_size:
        raise _MemberProblem(f"member is {got} bytes, its header says {info.file_size}")
    return b"".join(chunks)
