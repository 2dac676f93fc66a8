"""Ingest images, posts and videos into the queue: files, folders, `.zip` archives and CSV/JSONL
manifests.

An item has 1..N media (storage.media): a single image is one; a post (a manifest row with
`images: [...]`, at most `limits.max_images_per_post`) is one item whose images are each
checked like a single image before anything is stored, a bad one rejecting the post by name;
an MP4/MOV/WebM video (storage.video) is one item whose sampled frames, with timestamps, are
its media. The first medium is the cover (`Item.view_sha256`); near duplicates and the hash
bank match on it.

Each input file ends as exactly one `FileResult`: accepted, duplicate (same bytes as an existing
item, nothing added), near_duplicate (a new item linked to the perceptually closest one), or
rejected with a reason. Every file is untrusted: its format is sniffed from content, its pixel
count is checked from the header before any pixel is decoded, and any failure of one file
rejects that file only. A database failure is different: it aborts the run (`IngestAborted`),
since carrying on would report files as stored that are not.

Inputs are expanded into candidate images by `storage.ingest_sources`; this module prepares,
commits and reports them. Per file: the original bytes and the normalised view are written to
the blob store atomically (CPU work runs in a small thread pool), then the blob rows, item row,
audit event and any imported ground-truth decision commit in one small unit of work. A failure
in between leaves at most an orphan blob file, which the next ingest of the same bytes reuses.

Hashes of low quality (PDQ quality below `storage.images.HASH_QUALITY_MIN`: flat or near-flat
images, which all share one pHash) are kept in the item's meta only: such an item is never a
near duplicate, never matches the hash bank, and is never banked (its `phash` column stays
empty). The report counts them (`low_quality_hashes`).

Run: warden ingest PATH... [--source NAME] [--json]
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections import Counter, deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import Engine, insert, inspect, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from storage.audit import record_audit
from storage.blobs import BlobStore
from storage.db import session_factory, unit_of_work
from storage.domain import DecisionSource
from storage.errors import WardenError
from storage.images import (
    HASH_QUALITY_MIN,
    HashIndex,
    ImageRejected,
    NormalisedImage,
    normalise_image,
    without_reprs,
)
from storage.ingest_sources import Candidate, SourceRejection, expand_inputs, show_path
from storage.manifests import ManifestRow, clean_name, clean_text
from storage.media import MediumKind, NewMedium, add_media
from storage.models import Blob, HashBankEntry, Item
from storage.models import Decision as DecisionRow
from storage.policy import Policy, PolicyError, load_policy
from storage.posts import POST_MIME, post_descriptor
from storage.settings import Settings
from storage.video import VideoRejected, decode_video, video_container

log = logging.getLogger(__name__)

Status = Literal["accepted", "duplicate", "near_duplicate", "rejected"]
MAX_SOURCE_CHARS = 128
MAX_EXTERNAL_ID_CHARS = 256


class IngestAborted(WardenError):
    """The run stopped (database or disk failure); `report` holds the files done before it."""

    def __init__(self, message: str, report: IngestReport) -> None:
        super().__init__(message)
        self.report = report


@dataclass(frozen=True)
class FileResult:
    path: str
    status: Status
    reason: str | None
    item_id: int | None
    duplicate_of: int | None
    sha256: str | None
    distance: int | None = None  # Hamming distance to duplicate_of for near duplicates
    hashbank_match_id: int | None = None
    labels: list[str] | None = None  # ground truth recorded as an import decision
    notes: list[str] = field(default_factory=list)
    hash_quality: int | None = None  # PDQ quality 0-100 of a newly stored item
    low_quality_hash: bool = False  # not matched or banked (hash_quality < HASH_QUALITY_MIN)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class IngestReport:
    results: list[FileResult]
    elapsed_s: float = 0.0

    @property
    def summary(self) -> dict[str, Any]:
        counts = Counter(r.status for r in self.results)
        return {
            "files": len(self.results),
            "accepted": counts["accepted"],
            "duplicate": counts["duplicate"],
            "near_duplicate": counts["near_duplicate"],
            "rejected": counts["rejected"],
            "hashbank_matches": sum(1 for r in self.results if r.hashbank_match_id is not None),
            "labelled": sum(1 for r in self.results if r.labels is not None),
            "low_quality_hashes": sum(1 for r in self.results if r.low_quality_hash),
            "elapsed_s": round(self.elapsed_s, 3),
            "files_per_s": round(len(self.results) / self.elapsed_s, 2) if self.elapsed_s else None,
        }


# --- work items ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _PreparedMedium:
    """One decoded image of a post (or frame of a video), its bytes already in the store."""

    sha256: str
    size: int
    image: NormalisedImage
    view_sha256: str
    kind: MediumKind = "image"
    timestamp_s: float | None = None


@dataclass(frozen=True)
class _Prepared:
    cand: Candidate
    sha256: str | None = None  # the item's identity blob: image bytes, post descriptor, video
    size: int = 0
    image: NormalisedImage | None = None  # the cover (first medium)
    view_sha256: str | None = None
    rejection: str | None = None
    known: bool = False  # bytes already stored as an item when the run started
    # Several media (a post); empty for a single image, whose one medium is `image` itself.
    media: tuple[_PreparedMedium, ...] = ()
    # (mime, width, height) of the identity blob when it is not the cover image itself.
    blob_info: tuple[str, int, int] | None = None
    meta: dict[str, Any] = field(default_factory=dict)  # added to the item's meta


class _BlobWriteError(Exception):
    pass


def _rejected(shown: str, reason: str) -> FileResult:
    return FileResult(shown, "rejected", without_reprs(reason), None, None, None)


# --- per-file CPU work (runs in the thread pool) ---------------------------------------------


def _prepare(cand: Candidate, settings: Settings, store: BlobStore, known: set[str]) -> _Prepared:
    if cand.parts:
        return _prepare_post(cand, settings, store, known)
    limits = settings.limits
    try:
        data = cand.read(limits.max_file_bytes)
        if not data:
            raise ImageRejected("empty file")
        sha = hashlib.sha256(data).hexdigest()
        if sha in known:
            # Same bytes as an existing item: no need to decode again.
            return _Prepared(cand, sha, len(data), known=True)
        if video_container(data) is not None:
            return _prepare_video(cand, data, sha, settings, store)
        image = normalise_image(data, max_pixels=limits.max_pixels)
    except (ImageRejected, VideoRejected) as exc:
        return _Prepared(cand, rejection=str(exc))
    except MemoryError:
        return _Prepared(cand, rejection="image too large to decode in memory")
    except Exception as exc:  # any decoder failure on hostile bytes rejects this file only
        # The reason names the failure; the traceback is for debugging only, never on stderr.
        log.warning("unexpected failure preparing %s: %r", cand.shown, exc)
        log.debug("traceback for %s", cand.shown, exc_info=True)
        return _Prepared(cand, rejection=f"could not decode: {type(exc).__name__}: {exc}"[:300])
    try:
        store.put_bytes(data, sha)
        view_sha = store.put_bytes(image.view_png)
    except OSError as exc:
        raise _BlobWriteError(f"cannot write to the blob store: {exc}") from exc
    return _Prepared(cand, sha, len(data), image, view_sha)


def _decode_part(part: Candidate, settings: Settings) -> tuple[bytes, NormalisedImage]:
    """One image of a post read and checked like any single image; ImageRejected otherwise."""
    limits = settings.limits
    try:
        data = part.read(limits.max_file_bytes)
        if not data:
            raise ImageRejected("empty file")
        return data, normalise_image(data, max_pixels=limits.max_pixels)
    except ImageRejected:
        raise
    except MemoryError as exc:
        raise ImageRejected("image too large to decode in memory") from exc
    except Exception as exc:  # any decoder failure on hostile bytes rejects the post
        log.warning("unexpected failure preparing %s: %r", part.shown, exc)
        raise ImageRejected(f"could not decode: {type(exc).__name__}: {exc}"[:300]) from exc


def _prepare_post(
    cand: Candidate, settings: Settings, store: BlobStore, known: set[str]
) -> _Prepared:
    """Every image of a post decoded and checked before any byte is stored: one bad image
    rejects the whole post, naming it. A one-image post is exactly a single image."""
    decoded: list[tuple[bytes, NormalisedImage]] = []
    for n, part in enumerate(cand.parts, start=1):
        try:
            decoded.append(_decode_part(part, settings))
        except ImageRejected as exc:
            return _Prepared(cand, rejection=f"image {n} ({part.filename}): {exc}")
    shas = [hashlib.sha256(data).hexdigest() for data, _ in decoded]
    cover = decoded[0][1]
    if len(decoded) == 1:
        sha, blob_info, descriptor = shas[0], None, None
    else:
        descriptor = post_descriptor(shas)
        sha = hashlib.sha256(descriptor).hexdigest()
        blob_info = (POST_MIME, cover.width, cover.height)
    if sha in known:
        return _Prepared(cand, sha, known=True)
    try:
        media = tuple(
            _PreparedMedium(
                store.put_bytes(data, part_sha), len(data), image, store.put_bytes(image.view_png)
            )
            for (data, image), part_sha in zip(decoded, shas, strict=True)
        )
        if descriptor is not None:
            store.put_bytes(descriptor, sha)
    except OSError as exc:
        raise _BlobWriteError(f"cannot write to the blob store: {exc}") from exc
    size = len(descriptor) if descriptor is not None else media[0].size
    return _Prepared(cand, sha, size, cover, media[0].view_sha256, media=media, blob_info=blob_info)


def _prepare_video(
    cand: Candidate, data: bytes, sha: str, settings: Settings, store: BlobStore
) -> _Prepared:
    """A video's sampled frames as the item's media (kind 'frame', with timestamps); the video
    bytes stay the item's blob. Raises VideoRejected / ImageRejected for the caller."""
    video = decode_video(data, settings.limits)
    frames = [
        (f, normalise_image(f.png, max_pixels=settings.limits.max_pixels)) for f in video.frames
    ]
    try:
        store.put_bytes(data, sha)
        media = tuple(
            _PreparedMedium(
                view := store.put_bytes(image.view_png),
                len(image.view_png),
                image,
                view,
                "frame",
                f.timestamp_s,
            )  # fmt: skip
            for f, image in frames
        )
    except OSError as exc:
        raise _BlobWriteError(f"cannot write to the blob store: {exc}") from exc
    return _Prepared(
        cand, sha, len(data), media[0].image, media[0].view_sha256, media=media,
        blob_info=(video.mime, video.width, video.height), meta=video.meta(),
    )  # fmt: skip


# --- the run ---------------------------------------------------------------------------------


def _factory(session_factory_or_engine: Engine | sessionmaker[Session]) -> sessionmaker[Session]:
    if isinstance(session_factory_or_engine, sessionmaker):
        return session_factory_or_engine
    return session_factory(session_factory_or_engine)


def _check_database(factory: sessionmaker[Session]) -> None:
    bind = factory.kw.get("bind")
    try:
        if bind is not None:
            names = set(inspect(bind).get_table_names())
            missing = {"items", "blobs", "hash_bank", "audit_events"} - names
            if missing:
                raise WardenError(
                    "the database is not initialised (missing tables: "
                    f"{', '.join(sorted(missing))}); run `warden init` or `warden db upgrade` first"
                )
    except SQLAlchemyError as exc:
        raise WardenError(f"cannot open the database: {_db_message(exc)}") from exc


def _db_message(exc: SQLAlchemyError) -> str:
    orig = getattr(exc, "orig", None)
    return str(orig or exc).strip().splitlines()[0][:300]


class _Run:
    def __init__(
        self,
        factory: sessionmaker[Session],
        settings: Settings,
        store: BlobStore,
        source: str,
        actor: str,
        policy_loader: Callable[[], Policy],
    ) -> None:
        self.factory = factory
        self.settings = settings
        self.store = store
        self.source = source
        self.actor = actor
        self.policy_loader = policy_loader
        self.items = HashIndex()
        self.bank = HashIndex()
        self.known: set[str] = set()

    def load_indexes(self) -> None:
        # One query each per run: near-duplicate search is then in memory (no N+1).
        with self.factory() as s:
            for item_id, sha, phash in s.execute(
                select(Item.id, Item.blob_sha256, Item.phash).order_by(Item.id)
            ):
                self.known.add(sha)
                if phash:
                    self.items.add(item_id, phash)
            for entry_id, phash in s.execute(
                select(HashBankEntry.id, HashBankEntry.phash).order_by(HashBankEntry.id)
            ):
                if phash:
                    self.bank.add(entry_id, phash)

    def commit(self, prep: _Prepared) -> FileResult:
        """Store one prepared file in its own unit of work; retried once on a race."""
        for attempt in (1, 2):
            try:
                with unit_of_work(self.factory) as s:
                    result, banked = self._store(s, prep)
            except IntegrityError:
                # Another ingest stored the same bytes first: the retry sees it as a duplicate.
                if attempt == 2:
                    raise
                continue
            if result.item_id is not None and result.status != "rejected":
                assert prep.image is not None and prep.sha256 is not None
                if not prep.image.hash_is_weak:
                    self.items.add(result.item_id, prep.image.phash)
            if prep.sha256:
                self.known.add(prep.sha256)
            for entry_id, phash in banked:
                self.bank.add(entry_id, phash)
            return result
        raise AssertionError("unreachable")

    def _labels(self, row: ManifestRow | None) -> tuple[list[str] | None, Policy | None]:
        if row is None or row.labels is None:
            return None, None
        policy = self.policy_loader()
        return policy.validate_labels(row.labels), policy

    def _decide(
        self, s: Session, item_id: int, sha: str, labels: list[str], policy: Policy, line: int
    ) -> bool:
        """Record imported ground truth; False when this exact import was already recorded."""
        from storage.decisions import record_decision

        ref = f"import:{sha}:{'+'.join(labels) if labels else 'safe'}"[:256]
        seen = s.scalar(
            select(DecisionRow.id).where(
                DecisionRow.source == DecisionSource.import_.value, DecisionRow.external_ref == ref
            )
        )
        if seen is not None:
            return False
        record_decision(
            s,
            item_id=item_id,
            categories=labels,
            source=DecisionSource.import_,
            reviewer=f"import:{self.source}"[:128],
            note="ground truth imported with ingest",
            policy=policy,
            external_ref=ref,
            meta={"source": self.source, "line": line},
        )
        return True

    def _store(self, s: Session, prep: _Prepared) -> tuple[FileResult, list[tuple[int, str]]]:
        cand, sha = prep.cand, prep.sha256
        assert sha is not None
        row = cand.row
        labels, policy = self._labels(row)
        existing = s.scalar(select(Item.id).where(Item.blob_sha256 == sha))
        if existing is not None:
            notes: list[str] = []
            if labels is not None and policy is not None and row is not None:
                if self._decide(s, existing, sha, labels, policy, row.line):
                    notes.append("ground truth recorded on the existing item")
            result = FileResult(
                cand.shown, "duplicate", f"same bytes as item {existing}", None, existing, sha,
                labels=labels, notes=notes,
            )  # fmt: skip
            return result, self._banked(s, existing, labels)
        if prep.image is None or prep.view_sha256 is None:
            # Known at prepare time but its item is gone (deleted): decode on the next run.
            return _rejected(cand.shown, "item vanished during ingest; run again"), []
        image = prep.image
        limits = self.settings.limits
        notes = []
        text, original_len = clean_text(row.text if row else None, limits.max_text_chars)
        if original_len is not None:
            notes.append(f"text truncated from {original_len} to {limits.max_text_chars} chars")
        external_id = None
        if row is not None and row.external_id:
            external_id = clean_name(row.external_id, MAX_EXTERNAL_ID_CHARS) or None
        mime, width, height = prep.blob_info or (image.mime, image.width, image.height)
        self._insert_blob(s, sha, prep.size, mime, width, height)
        media = prep.media or (_PreparedMedium(sha, prep.size, image, prep.view_sha256),)
        for m in media:
            if m.sha256 != sha:
                self._insert_blob(s, m.sha256, m.size, m.image.mime, m.image.width, m.image.height)
            self._insert_blob(
                s, m.view_sha256, len(m.image.view_png), "image/png", m.image.view_width,
                m.image.view_height,
            )  # fmt: skip
        weak = image.hash_is_weak
        near = bank = None
        if not weak:
            near = self.items.nearest(image.phash, limits.near_duplicate_distance)
            bank = self.bank.nearest(image.phash, limits.near_duplicate_distance)
        priority = limits.hashbank_priority_boost if bank else 0
        meta: dict[str, Any] = {
            "format": image.format, "pdq": image.pdq, "pdq_quality": image.hash_quality,
            **cand.origin, **prep.meta,
        }  # fmt: skip
        if original_len is not None:
            meta["text_truncated_from"] = original_len
        item = Item(
            blob_sha256=sha,
            view_sha256=prep.view_sha256,
            source=self.source,
            external_id=external_id,
            filename=cand.filename or None,
            text=text,
            status="queued",
            priority=priority,
            phash=None if weak else image.phash,  # an empty phash is never matched or banked
            animated=image.animated,
            near_duplicate_of_id=near[0] if near else None,
            near_duplicate_distance=near[1] if near else None,
            hashbank_match_id=bank[0] if bank else None,
            meta=meta,
        )
        s.add(item)
        s.flush()
        add_media(
            s,
            item.id,
            [
                NewMedium(
                    m.sha256,
                    m.view_sha256,
                    m.kind,
                    m.timestamp_s,
                    None if m.image.hash_is_weak else m.image.phash,
                )  # fmt: skip
                for m in media
            ],
        )
        if "video" in prep.meta:
            v = prep.meta["video"]
            notes.append(f"video: {len(media)} frames sampled from {v['duration_s']} s")
        elif len(media) > 1:
            notes.append(f"{len(media)} media")
        status: Status = "near_duplicate" if near else "accepted"
        if image.animated:
            notes.append("animated: first frame used")
        if bank:
            notes.append(f"matches hash bank entry {bank[0]} (distance {bank[1]}): priority raised")
        if weak:
            notes.append(
                f"low-quality hash (PDQ quality {image.hash_quality} < {HASH_QUALITY_MIN}: "
                "flat or near-flat image): not matched against near duplicates or the hash "
                "bank, never banked"
            )
        record_audit(
            s,
            self.actor,
            "ingest",
            item.id,
            sha256=sha,
            source=self.source,
            filename=item.filename,
            status=status,
            near_duplicate_of=item.near_duplicate_of_id,
            hashbank_match_id=item.hashbank_match_id,
        )
        if labels is not None and policy is not None and row is not None:
            self._decide(s, item.id, sha, labels, policy, row.line)
        reason = None
        if near:
            reason = f"looks like item {near[0]} (distance {near[1]})"
        result = FileResult(
            cand.shown, status, reason, item.id, near[0] if near else None, sha,
            distance=near[1] if near else None, hashbank_match_id=bank[0] if bank else None,
            labels=labels, notes=notes, hash_quality=image.hash_quality, low_quality_hash=weak,
        )  # fmt: skip
        return result, self._banked(s, item.id, labels)

    def _banked(self, s: Session, item_id: int, labels: list[str] | None) -> list[tuple[int, str]]:
        # A violating import decision adds the item to the hash bank: later files in this
        # same run must match it too.
        if not labels:
            return []
        return [
            (entry_id, phash)
            for entry_id, phash in s.execute(
                select(HashBankEntry.id, HashBankEntry.phash).where(
                    HashBankEntry.item_id == item_id
                )
            )
        ]

    def _insert_blob(
        self, s: Session, sha: str, size: int, mime: str, width: int, height: int
    ) -> None:
        values = {"sha256": sha, "size_bytes": size, "mime": mime, "width": width, "height": height}
        dialect = s.get_bind().dialect.name
        if dialect == "postgresql":
            stmt: Any = postgresql.insert(Blob).values(**values).on_conflict_do_nothing()
        elif dialect == "sqlite":
            stmt = sqlite.insert(Blob).values(**values).on_conflict_do_nothing()
        else:
            if s.get(Blob, sha) is not None:
                return
            stmt = insert(Blob).values(**values)
        s.execute(stmt)


def ingest_paths(
    session_factory_or_engine: Engine | sessionmaker[Session],
    settings: Settings,
    paths: list[Path],
    *,
    source: str = "cli",
    policy: Policy | None = None,
    progress: Callable[[int, int], None] | None = None,
    actor: str = "ingest",
    workers: int | None = None,
    on_result: Callable[[FileResult], None] | None = None,
) -> IngestReport:
    """Ingest `paths` (files, folders, .zip, .csv/.jsonl manifests); see the module docstring.

    Raises WardenError when the run cannot start (missing path, database not initialised) and
    IngestAborted when the database or the blob store fails halfway.
    `progress(done, total)` is called after each file; total grows as archives and manifests
    are opened. `on_result` sees each FileResult as soon as it is final (for streaming output).
    """
    paths = [Path(p) for p in paths]
    missing = [str(p) for p in paths if not p.exists() and not p.is_symlink()]
    if missing:
        raise WardenError(f"no such file or folder: {', '.join(show_path(m) for m in missing)}")
    if not paths:
        raise WardenError("nothing to ingest: give at least one file or folder")
    factory = _factory(session_factory_or_engine)
    _check_database(factory)
    source = clean_name(source, MAX_SOURCE_CHARS) or "cli"
    loaded: list[Policy] = [policy] if policy is not None else []

    def policy_loader() -> Policy:
        if not loaded:
            try:
                loaded.append(load_policy(settings.policy_path))
            except PolicyError as exc:
                raise WardenError(f"cannot load the policy for imported labels: {exc}") from exc
        return loaded[0]

    store = BlobStore(settings.blobs_path)
    run = _Run(factory, settings, store, source, actor, policy_loader)
    started = time.perf_counter()
    results: list[FileResult] = []

    def report() -> IngestReport:
        return IngestReport(list(results), time.perf_counter() - started)

    try:
        run.load_indexes()
    except SQLAlchemyError as exc:
        raise WardenError(f"cannot read the database: {_db_message(exc)}") from exc

    n_workers = workers or min(4, os.cpu_count() or 1)
    window = n_workers * 2
    pending: deque[Future[_Prepared] | FileResult] = deque()
    total = 0

    def finish(entry: Future[_Prepared] | FileResult) -> None:
        if isinstance(entry, FileResult):
            results.append(entry)
        else:
            try:
                prep = entry.result()
            except _BlobWriteError as exc:
                raise IngestAborted(f"ingest aborted: {exc}", report()) from exc
            if prep.rejection is not None or prep.sha256 is None:
                results.append(_rejected(prep.cand.shown, prep.rejection or "unreadable"))
            else:
                try:
                    results.append(run.commit(prep))
                except SQLAlchemyError as exc:
                    raise IngestAborted(
                        f"ingest aborted: database error while storing {prep.cand.shown}: "
                        f"{_db_message(exc)}",
                        report(),
                    ) from exc
                except (WardenError, PolicyError) as exc:
                    results.append(_rejected(prep.cand.shown, str(exc)))
                except Exception as exc:  # a bug must not lose the rest of the run
                    log.error("unexpected failure storing %s: %r", prep.cand.shown, exc)
                    log.debug("traceback for %s", prep.cand.shown, exc_info=True)
                    results.append(
                        _rejected(prep.cand.shown, f"internal error: {type(exc).__name__}: {exc}")
                    )
        if on_result is not None:
            on_result(results[-1])
        if progress is not None:
            progress(len(results), total)

    with ThreadPoolExecutor(max_workers=n_workers, thread_name_prefix="ingest") as pool:
        try:
            for entry in expand_inputs(paths, settings.limits, policy_loader):
                total += 1
                if isinstance(entry, SourceRejection):
                    pending.append(_rejected(entry.shown, entry.reason))
                else:
                    pending.append(pool.submit(_prepare, entry, settings, store, run.known))
                while len(pending) > window:
                    finish(pending.popleft())
            while pending:
                finish(pending.popleft())
        except BaseException:
            for waiting in pending:
                if isinstance(waiting, Future):
                    waiting.cancel()
            raise
    return report()
