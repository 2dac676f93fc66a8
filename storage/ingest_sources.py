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

import os
import stat
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
    clean_name,
    manifest_kind,
    read_manifest,
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
    """One image to ingest: from a file on disk (`file`) or from memory (`data`)."""

    shown: str  # cleaned path for the report
    filename: str  # cleaned name stored on the item
    file: Path | None = None
    data: bytes | None = None
    row: ManifestRow | None = None
    origin: dict[str, Any] = field(default_factory=dict)

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

    def _manifest(self, path: Path, shown: str) -> Iterator[Candidate | SourceRejection]:
        base = path.parent
        rows = 0
        try:
            for row in read_manifest(path, self.limits):
                rows += 1
                if isinstance(row, RowError):
                    where = f"{shown}:{row.line}" + (f":{row.path}" if row.path else "")
                    yield SourceRejection(show_path(where), row.reason)
                    continue
                yield from self._row(base, shown, row)
        except ManifestError as exc:
            yield SourceRejection(shown, f"manifest rejected: {exc}")
            return
        except OSError as exc:
            yield SourceRejection(shown, f"cannot read manifest: {exc.strerror or exc}")
            return
        if rows == 0:
            yield SourceRejection(shown, "manifest has no rows")

    def _row(
        self, base: Path, shown: str, row: ManifestRow
    ) -> Iterator[Candidate | SourceRejection]:
        row_shown = show_path(f"{shown}:{row.line}:{row.path}")
        line = f"line {row.line}"
        try:
            target = resolve_row_path(base, row.path)
        except (ValueError, OSError) as exc:
            yield SourceRejection(row_shown, f"{line}: {exc}")
            return
        if row.labels is not None:
            try:
                self.policy_loader().validate_labels(row.labels)
            except PolicyError as exc:
                yield SourceRejection(row_shown, f"{line}: {exc}")
                return
        problem = _regular_file_problem(target)
        if problem:
            yield SourceRejection(row_shown, f"{line}: {problem}")
            return
        yield Candidate(
            row_shown,
            clean_name(row.path, MAX_FILENAME_CHARS),
            file=target,
            row=row,
            origin={"manifest": shown, "line": row.line},
        )
