"""Expand ingest inputs into candidate images: folders, `.zip` archives and CSV/JSONL manifests.

`expand_inputs` turns the paths given to `warden ingest` into a lazy stream of `Candidate`
images (a file on disk or an archive member in memory, with its manifest row if any) and
`SourceRejection`s for inputs that fail before any image byte is read: symbolic links (never
followed), non-regular files, hostile archives, bad manifest rows, labels outside the policy.
Nothing here touches the database or the blob store; `storage.ingest` prepares and commits
each candidate.

Run: warden ingest PATH...   (this module is the input side of storage.ingest)
"""

from __future__ import annotations

import io
import os
import posixpath
import stat
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from storage.archives import ArchiveRejected, is_zip, iter_zip_members
from storage.images import ImageRejected
from storage.manifests import (
    ManifestError,
    ManifestRow,
    RowError,
    check_row_path,
    clean_name,
    manifest_kind,
    read_manifest,
    read_manifest_from,
    resolve_row_path,
)
from storage.policy import Policy, PolicyError
from storage.settings import LimitSettings

MAX_FILENAME_CHARS = 512
MAX_SHOWN_PATH_CHARS = 1024


def show_path(path: str) -> str:
    """`path` cleaned for a report: control characters removed, length bounded."""
    return clean_name(path, MAX_SHOWN_PATH_CHARS)


@dataclass(frozen=True)
class SourceRejection:
    """An input rejected while expanding (before any image byte is read)."""

    shown: str  # cleaned path for the report
    reason: str


@dataclass(frozen=True)
class Candidate:
    """One item to ingest: an image or video from a file on disk (`file`) or from memory
    (`data`), or a post whose images are the candidates in `parts` (in order)."""

    shown: str  # cleaned path for the report
    filename: str  # cleaned name stored on the item
    file: Path | None = None
    data: bytes | None = None
    row: ManifestRow | None = None
    origin: dict[str, Any] = field(default_factory=dict)
    parts: tuple[Candidate, ...] = ()

    def read(self, max_bytes: int) -> bytes:
        """The candidate's bytes; raises ImageRejected when over `max_bytes` or unreadable."""
        if self.data is not None:
            if len(self.data) > max_bytes:
                raise ImageRejected(f"over the byte limit: {len(self.data)} > {max_bytes} bytes")
            return self.data
        assert self.file is not None
        try:
            return _read_limited(self.file, max_bytes)
        except OSError as exc:
            raise ImageRejected(f"cannot read: {exc.strerror or exc}") from exc


def expand_inputs(
    paths: list[Path], limits: LimitSettings, policy_loader: Callable[[], Policy]
) -> Iterator[Candidate | SourceRejection]:
    """Candidates and rejections for `paths`, lazily, in a stable order (manifests first).

    `policy_loader` is called only when a manifest row carries labels, to validate them.
    """
    return _Expander(limits, policy_loader).expand(paths)


def _walk(top: Path) -> Iterator[Path | tuple[Path, str]]:
    """Files under `top` in a stable order; symlinks as (path, reason), never followed."""
    for dirpath, dirnames, filenames in os.walk(top, followlinks=False):
        dirnames.sort()
        base = Path(dirpath)
        for name in dirnames:
            if (base / name).is_symlink():
                yield base / name, "symbolic link to a folder (not followed)"
        for name in sorted(filenames):
            p = base / name
            yield (p, "symbolic link (not followed)") if p.is_symlink() else p


def _regular_file_problem(path: Path) -> str | None:
    try:
        st = path.stat()
    except OSError as exc:
        return f"cannot read: {exc.strerror or exc}"
    if not stat.S_ISREG(st.st_mode):
        return "not a regular file"
    return None


def _read_limited(path: Path, max_bytes: int) -> bytes:
    size = path.stat().st_size
    if size > max_bytes:
        raise ImageRejected(f"over the byte limit: {size} > {max_bytes} bytes")
    with path.open("rb") as fh:
        data = fh.read(max_bytes + 1)  # the file may have grown since stat
    if len(data) > max_bytes:
        raise ImageRejected(f"over the byte limit: more than {max_bytes} bytes")
    return data


# Where a manifest row's path leads: the candidate's source (`file=` or `data=`), or
# ValueError with the reason.
Locator = Callable[[str], dict[str, Any]]


def _disk_locator(base: Path) -> Locator:
    def locate(raw: str) -> dict[str, Any]:
        try:
            target = resolve_row_path(base, raw)
        except OSError as exc:
            raise ValueError(str(exc.strerror or exc)) from exc
        problem = _regular_file_problem(target)
        if problem:
            raise ValueError(problem)
        return {"file": target}

    return locate


def _member_key(raw: str) -> str:
    return posixpath.normpath(raw.replace("\\", "/"))


def _archive_locator(members: dict[str, bytes | str]) -> Locator:
    """Rows name members of the archive the manifest came in (`members`: name -> bytes, or
    the reason the member was refused). Member names never become filesystem paths."""

    def locate(raw: str) -> dict[str, Any]:
        check_row_path(raw)
        got = members.get(_member_key(raw))
        if got is None:
            raise ValueError("not in the archive")
        if isinstance(got, str):
            raise ValueError(got)
        return {"data": got}

    return locate


class _Expander:
    """Turns the command's paths into candidates (lazily) and expansion-time rejections."""

    def __init__(self, limits: LimitSettings, policy_loader: Callable[[], Policy]) -> None:
        self.limits = limits
        self.policy_loader = policy_loader

    def expand(self, paths: list[Path]) -> Iterator[Candidate | SourceRejection]:
        # Manifests go first, so that an image named both by a manifest (with its text and
        # labels) and by a folder walk is stored from the manifest row; the walk then reports
        # it as a duplicate.
        entries: list[Path | tuple[Path, str]] = []
        for top in paths:
            entries.extend(_walk(top) if top.is_dir() else [top])
        manifests = [e for e in entries if isinstance(e, Path) and manifest_kind(e)]
        others = [e for e in entries if not (isinstance(e, Path) and manifest_kind(e))]
        for entry in manifests + others:
            if isinstance(entry, tuple):
                yield SourceRejection(show_path(str(entry[0])), entry[1])
            else:
                yield from self._file(entry, str(entry))

    def _file(self, path: Path, shown_raw: str) -> Iterator[Candidate | SourceRejection]:
        shown = show_path(shown_raw)
        problem = _regular_file_problem(path)
        if problem:
            yield SourceRejection(shown, problem)
        elif manifest_kind(path):
            yield from self._manifest(path, shown)
        elif is_zip(path):
            yield from self._archive(path, shown)
        else:
            yield Candidate(shown, clean_name(path.name, MAX_FILENAME_CHARS), file=path)

    def _archive(self, path: Path, shown: str) -> Iterator[Candidate | SourceRejection]:
        manifest_name = _archive_manifest_name(path)
        if manifest_name is not None:
            yield from self._archive_with_manifest(path, shown, manifest_name)
            return
        try:
            for member in iter_zip_members(path, self.limits):
                member_shown = show_path(f"{shown}!{member.name}")
                if member.rejection or member.data is None:
                    yield SourceRejection(member_shown, member.rejection or "unreadable member")
                    continue
                yield Candidate(
                    member_shown,
                    clean_name(member.name.rsplit("/", 1)[-1], MAX_FILENAME_CHARS),
                    data=member.data,
                    origin={"archive": shown, "member": member.name},
                )
        except ArchiveRejected as exc:
            yield SourceRejection(shown, f"archive rejected: {exc}")
        except OSError as exc:
            yield SourceRejection(shown, f"cannot read archive: {exc.strerror or exc}")

    def _archive_with_manifest(
        self, path: Path, shown: str, manifest_name: str
    ) -> Iterator[Candidate | SourceRejection]:
        """A zip with a `manifest.jsonl`/`.csv` at its top: the manifest's rows (posts, text,
        labels) name the archive's members; members no row names are ingested as images.
        The members are held in memory (bounded by the archive limits) until the rows are read."""
        members: dict[str, bytes | str] = {}
        order: list[str] = []
        try:
            for member in iter_zip_members(path, self.limits):
                key = _member_key(member.name)
                members[key] = (
                    member.data
                    if member.data is not None
                    else (member.rejection or "unreadable member")
                )
                order.append(key)
        except ArchiveRejected as exc:
            yield SourceRejection(shown, f"archive rejected: {exc}")
            return
        except OSError as exc:
            yield SourceRejection(shown, f"cannot read archive: {exc.strerror or exc}")
            return
        manifest = members.get(_member_key(manifest_name))
        manifest_shown = show_path(f"{shown}!{manifest_name}")
        named: set[str] = {_member_key(manifest_name)}
        if not isinstance(manifest, bytes):
            yield SourceRejection(manifest_shown, f"manifest not read: {manifest}")
        else:
            rows = self._rows(
                read_manifest_from(
                    io.BytesIO(manifest), manifest_kind(Path(manifest_name)) or "jsonl", self.limits
                ),
                _archive_locator(members),
                manifest_shown,
            )
            for out in rows:
                for part in (out.parts or (out,)) if isinstance(out, Candidate) else ():
                    if part.origin.get("member"):
                        named.add(part.origin["member"])
                yield out
        for key in order:
            if key in named:
                continue
            got = members[key]
            member_shown = show_path(f"{shown}!{key}")
            if isinstance(got, str):
                yield SourceRejection(member_shown, got)
            else:
                yield Candidate(
                    member_shown,
                    clean_name(key.rsplit("/", 1)[-1], MAX_FILENAME_CHARS),
                    data=got,
                    origin={"archive": shown, "member": key},
                )

    def _manifest(self, path: Path, shown: str) -> Iterator[Candidate | SourceRejection]:
        yield from self._rows(read_manifest(path, self.limits), _disk_locator(path.parent), shown)

    def _rows(
        self, rows_in: Iterator[ManifestRow | RowError], locate: Locator, shown: str
    ) -> Iterator[Candidate | SourceRejection]:
        rows = 0
        try:
            for row in rows_in:
                rows += 1
                if isinstance(row, RowError):
                    where = f"{shown}:{row.line}" + (f":{row.path}" if row.path else "")
                    yield SourceRejection(show_path(where), row.reason)
                    continue
                yield from self._row(locate, shown, row)
        except ManifestError as exc:
            yield SourceRejection(shown, f"manifest rejected: {exc}")
            return
        except OSError as exc:
            yield SourceRejection(shown, f"cannot read manifest: {exc.strerror or exc}")
            return
        if rows == 0:
            yield SourceRejection(shown, "manifest has no rows")

    def _row(
        self, locate: Locator, shown: str, row: ManifestRow
    ) -> Iterator[Candidate | SourceRejection]:
        row_shown = show_path(f"{shown}:{row.line}:{row.path}")
        line = f"line {row.line}"
        if row.labels is not None:
            try:
                self.policy_loader().validate_labels(row.labels)
            except PolicyError as exc:
                yield SourceRejection(row_shown, f"{line}: {exc}")
                return
        if row.images is not None:
            yield self._post(locate, shown, row)
            return
        try:
            source = locate(row.path)
        except ValueError as exc:
            yield SourceRejection(row_shown, f"{line}: {exc}")
            return
        yield Candidate(
            row_shown,
            clean_name(row.path, MAX_FILENAME_CHARS),
            row=row,
            origin={"manifest": shown, "line": row.line, **_member_of(source, row.path)},
            **source,
        )

    def _post(self, locate: Locator, shown: str, row: ManifestRow) -> Candidate | SourceRejection:
        """One candidate for a post, or one rejection naming the image that failed."""
        assert row.images is not None
        post_shown = show_path(f"{shown}:{row.line}:{row.images[0]} (post)")
        line = f"line {row.line}"
        limit = self.limits.max_images_per_post
        if len(row.images) > limit:
            return SourceRejection(
                post_shown, f"{line}: post has {len(row.images)} images; the limit is {limit}"
            )
        parts: list[Candidate] = []
        for n, raw in enumerate(row.images, start=1):
            name = clean_name(raw, MAX_FILENAME_CHARS)
            try:
                source = locate(raw)
            except ValueError as exc:
                return SourceRejection(post_shown, f"{line}: image {n} ({name}): {exc}")
            parts.append(
                Candidate(
                    show_path(f"{shown}:{row.line}:{raw}"),
                    name,
                    origin=_member_of(source, raw),
                    **source,
                )
            )
        return Candidate(
            post_shown,
            parts[0].filename,
            row=row,
            origin={"manifest": shown, "line": row.line},
            parts=tuple(parts),
        )


def _member_of(source: dict[str, Any], raw: str) -> dict[str, Any]:
    """An archive member's name for the candidate's origin ({} for a file on disk)."""
    return {"member": _member_key(raw)} if "data" in source else {}


def _archive_manifest_name(path: Path) -> str | None:
    """The name of a manifest at the top of the zip at `path` (`manifest.jsonl`, `.ndjson` or
    `.csv`), or None; a zip that cannot be listed is left to iter_zip_members to reject."""
    try:
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError):
        return None
    for name in names:
        if "/" not in name and "\\" not in name and manifest_kind(Path(name)):
            if Path(name).stem.lower() == "manifest":
                return name
    return None
