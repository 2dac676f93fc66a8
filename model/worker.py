"""The scoring worker: claim queued items in batches, run the cheap signals and the VLM, record
predictions.

Each batch is claimed under a lease (`storage.queue.claim_for_scoring`); a heartbeat thread
renews the leases while the batch is scored, so a slow model never loses its items, and a
killed worker (kill -9) loses nothing: its items return to the queue when the lease ends.
Predictions are written one item per transaction through `storage.queue.record_prediction`,
idempotent per (item, model version, policy version), so several workers against one
PostgreSQL never score an item twice for the same model and policy.

An item that fails (its image does not decode, the model raises on it) is charged one attempt:
an audit event `score_failed`, a counter in `items.meta["score_attempts"]`, the error in
`items.meta["score_error"]`, and its lease is released for a retry. After `max_attempts` it is
given up: status `failed`, audit event `score_given_up`. A failure of the backend itself (a
server that cannot be reached; an exception with `systemic = True`) stops the worker instead,
without charging the items, since every item would fail the same way.

When no queued item is left, `run_worker` backfills (unless `backfill=False`): it scores the
items outside the queue (imported ground truth, decided, escalated, scored by another model)
that have no prediction for its model and policy, so agreement plots and calibration have
predictions to work with. Backfill claims use the same leases (an item a reviewer holds is left
alone; a killed worker's claims expire), change no status, decision or priority, and give way
to queued items: every batch asks the queue first. One pass per run, oldest item first; an
item that fails is retried on the next run, up to `max_attempts` failures in all.

`score_items` scores chosen items (an upload's new items) the same way, under the same leases,
without waiting for their turn in the queue; `score_with_live` does so with the live model.

A worker given `live` (a function returning the backend to use now, such as
`model.loading.live_backend` bound to the database) asks it before every claim: a promotion or
rollback made by any process is picked up between batches, without a restart, and each
prediction records the version that produced it. With `follow`, the worker does not stop when
the queue is empty: it waits `poll_s` and asks again, until `stop` is set.

By default (`pipeline`, model.pipeline) the signals of the next batches are computed in a pool
of processes while the VLM scores the current one: at most `settings.worker.max_in_flight`
batches are claimed and unrecorded, all under renewed leases, with the same predictions as
one batch after the other (`pipeline=False`). Backfill batches are claimed only when nothing
is in flight, so a queued item never waits behind backfill claimed ahead of it.

With `WARDEN_MODEL__DESCRIBE` on, the backend also describes every image or frame of the batch
in one batched call (model.describe), stored in the prediction's signals with its time and
counted in the report and the throughput log line; a model that cannot see images (the demo)
describes nothing and its predictions say so.

Run: warden score [--model M] [--limit N] [--batch-size B] [--worker-id ID] [--rationale]
                  [--no-backfill] [--follow] [--poll-s S] [--live-check-s S]
                  [--pipeline/--no-pipeline] [--signal-procs N]
"""

from __future__ import annotations

import logging
import os
import socket
import sys
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from sqlalchemy.exc import IntegrityError

from model.backends import Backend, ScoringInput
from model.describe import add_descriptions
from model.evidence import add_media_evidence
from model.media import build_input, combine_signals, decode_and_signal
from model.pipeline import InFlightHook, SignalPool, default_signal_procs
from model.regions import MediumLines, add_ocr_regions
from model.signals import Signals
from storage.audit import record_audit
from storage.db import make_engine, session_factory, unit_of_work
from storage.domain import ClaimedItem, ItemStatus, Verdict
from storage.errors import Conflict, WardenError
from storage.media import Medium, media_for
from storage.policy import Policy, load_policy
from storage.settings import Settings

if TYPE_CHECKING:
    from PIL.Image import Image
    from sqlalchemy import Engine
    from sqlalchemy.orm import Session, sessionmaker

    from storage.blobs import BlobStore

log = logging.getLogger(__name__)

DEFAULT_MAX_ATTEMPTS = 3
FAILED_STATUS = ItemStatus.failed.value

# Returns the backend the next batch is scored with (the live one, as the registry says now).
LiveSource = Callable[[], Backend]
# Claims the next batch; `wait` (bool): may it block (--follow on an empty queue)?
NextBatch = Callable[[bool], list[ClaimedItem]]


@dataclass(frozen=True)
class WorkerReport:
    """What one `run_worker` or `score_items` call did."""

    worker_id: str
    model_version: str  # the last one used
    policy_version: str
    scored: int = 0
    backfilled: int = 0  # of `scored`, items scored by the backfill (not from the queue)
    failed: int = 0  # attempts that failed and were left for retry
    given_up: int = 0  # items marked `failed` after max_attempts
    batches: int = 0
    elapsed_s: float = 0.0
    errors: dict[int, str] = field(default_factory=dict)
    # The model versions this run used, in order (more than one: the live model changed
    # while it ran; a rollback shows the earlier one again).
    model_versions: tuple[str, ...] = ()
    # Descriptions (model.describe, WARDEN_MODEL__DESCRIBE): media described, seconds spent.
    described: int = 0
    describe_s: float = 0.0

    @property
    def items_per_s(self) -> float:
        return self.scored / self.elapsed_s if self.elapsed_s > 0 else 0.0


def check_database(engine: Engine) -> None:
    """WardenError unless the database is reachable and migrated (tables the worker needs)."""
    from sqlalchemy import inspect
    from sqlalchemy.exc import SQLAlchemyError

    try:
        names = set(inspect(engine).get_table_names())
    except SQLAlchemyError as exc:
        raise WardenError(
            f"cannot open the database: {exc.__class__.__name__}: {exc.orig or exc}"
        ) from exc
    missing = {"items", "blobs", "predictions", "claims", "audit_events", "model_versions"} - names
    if missing:
        raise WardenError(
            f"the database is not initialised (missing tables: {', '.join(sorted(missing))}); "
            "run `warden db upgrade` first"
        )


def default_worker_id() -> str:
    return f"score:{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class _LeaseKeeper:
    """Renews the leases of the batch in flight every `lease_s / 3` seconds (own session)."""

    def __init__(self, factory: sessionmaker[Session], holder: str, lease_s: int) -> None:
        self._factory = factory
        self._holder = holder
        self._lease_s = lease_s
        self._items: set[int] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="lease-keeper", daemon=True)

    def __enter__(self) -> _LeaseKeeper:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def hold(self, item_ids: Sequence[int]) -> None:
        with self._lock:
            self._items = set(item_ids)

    def add(self, item_ids: Sequence[int]) -> None:
        """Keep these leases alive too (the pipeline holds several batches at once)."""
        with self._lock:
            self._items.update(item_ids)

    def drop(self, item_id: int) -> None:
        with self._lock:
            self._items.discard(item_id)

    def _run(self) -> None:
        from storage.queue import renew_lease

        interval = max(0.5, self._lease_s / 3)
        while not self._stop.wait(interval):
            with self._lock:
                items = sorted(self._items)
            for item_id in items:
                try:
                    with unit_of_work(self._factory) as s:
                        renew_lease(s, item_id, self._holder, lease_s=self._lease_s)
                except Conflict:
                    # Recorded meanwhile, or the lease was lost; record_prediction stays
                    # idempotent either way.
                    self.drop(item_id)
                except Exception:  # noqa: BLE001 - keep renewing the others
                    log.warning("could not renew lease on item %s", item_id, exc_info=True)


def _view_sha(claimed: ClaimedItem) -> str:
    # The model sees the normalised view (EXIF applied, first frame, RGB) made at ingest;
    # the original bytes stay untouched as evidence.
    return claimed.view_sha256 or claimed.blob_sha256


def _load_image(store: BlobStore, sha256: str) -> Image:
    from storage.images import open_view_image

    return open_view_image(store, sha256)


def record_scoring_failure(
    session: Session,
    item_id: int,
    holder: str,
    error: str,
    *,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    backfill: bool = False,
) -> bool:
    """Charge one failed scoring attempt to an item; returns True when it was given up.

    Releases the worker's lease (`storage.queue.release`) so the item can be retried by any
    worker at once; after `max_attempts` failures a queued item's status becomes `failed`,
    which no claim selects, and an audit event says so. A `backfill` item keeps its status
    (decided, escalated, ...): the audit event says it was given up, and the backfill's own
    attempt limit stops selecting it.
    """
    from storage.models import Item
    from storage.queue import BACKFILL_STATUSES, release

    try:
        release(session, item_id, holder, reason="score_failed")
    except Conflict:
        pass  # the lease ran out meanwhile; the attempt still counts
    item = session.get(Item, item_id)
    if item is None:
        return False
    meta = dict(item.meta or {})
    attempts = int(meta.get("score_attempts", 0)) + 1
    meta["score_attempts"] = attempts
    meta["score_error"] = error[:500]
    item.meta = meta  # reassign: JSON columns do not track in-place mutation
    record_audit(session, holder, "score_failed", item_id, attempt=attempts, error=error[:500])
    if attempts < max_attempts:
        return False
    if item.status == ItemStatus.queued.value:
        item.status = FAILED_STATUS
        record_audit(
            session, holder, "score_given_up", item_id, attempts=attempts, error=error[:500]
        )
        return True
    if backfill and item.status in BACKFILL_STATUSES:
        # A backfilled item (decided, escalated, ...) keeps its status; the backfill no
        # longer selects it (storage.queue.claim_for_backfill's max_attempts).
        record_audit(
            session,
            holder,
            "score_given_up",
            item_id,
            attempts=attempts,
            error=error[:500],
            backfill=True,
        )
        return True
    return False


class _Run:
    """State of one `run_worker` or `score_items` call."""

    def __init__(
        self,
        settings: Settings,
        backend: Backend | None,
        policy: Policy | None,
        worker_id: str | None,
        *,
        rationale: bool,
        max_attempts: int,
        live: LiveSource | None = None,
    ) -> None:
        from storage.blobs import BlobStore

        if backend is None and live is None:
            raise WardenError("a scoring run needs a backend or a live source")
        self.settings = settings
        self.live = live
        self.backend: Backend = backend if backend is not None else live()  # type: ignore[misc]
        self.model_versions = [self.backend.model_version]
        self.policy = policy or load_policy(settings.policy_path)
        self.worker_id = worker_id or default_worker_id()
        self.rationale = rationale
        self.max_attempts = max_attempts
        self.engine = make_engine(settings.database_url, settings.db)
        try:
            check_database(self.engine)
        except WardenError:
            self.engine.dispose()
            raise
        self.factory = session_factory(self.engine)
        self.store = BlobStore(settings.blobs_path)
        self.lease_s = settings.queue.score_lease_s
        self.ocr_hint = settings.model.ocr_hint
        self.scored = self.failed = self.given_up = self.backfilled = 0
        self.errors: dict[int, str] = {}
        self.done: set[int] = set()  # recorded or charged a failure in this run
        self.backfill_after = 0  # the backfill's cursor: highest item id it has claimed
        self.backfill_ids: set[int] = set()  # claimed by the backfill in this run
        # Each claimed item's media (storage.media), read with its claim; per-medium signals
        # wait here from scoring until the item is recorded.
        self.media: dict[int, list[Medium]] = {}
        self.medium_signals: dict[int, list[Signals]] = {}
        self.media_evidence = settings.worker.media_evidence
        self.region_evidence = settings.worker.region_evidence
        self.describe = settings.model.describe
        self.describe_max_new_tokens = settings.model.describe_max_new_tokens
        self.described = 0
        self.describe_s = 0.0

    def refresh(self) -> None:
        """Between batches: take the backend the live source gives now. A new version gets
        its own backfill pass (it has scored nothing yet)."""
        if self.live is None:
            return
        new = self.live()
        if new is self.backend:
            return
        log.info(
            "worker %s: live model %s -> %s",
            self.worker_id,
            self.backend.model_version,
            new.model_version,
        )
        self.backend = new
        self.model_versions.append(new.model_version)
        self.backfill_after = 0

    def claim(self, n: int, item_ids: Sequence[int] | None = None) -> list[ClaimedItem]:
        from storage.queue import claim_for_scoring

        with unit_of_work(self.factory) as s:
            claimed = claim_for_scoring(
                s, self.worker_id, limit=n, lease_s=self.lease_s, item_ids=item_ids
            )
            self.media.update(media_for(s, [c.item_id for c in claimed]))
        return claimed

    def claim_backfill(self, n: int) -> list[ClaimedItem]:
        """Up to `n` items outside the queue with no prediction for this model and policy,
        past the items this run's backfill has already claimed."""
        from storage.queue import claim_for_backfill

        with unit_of_work(self.factory) as s:
            claimed = claim_for_backfill(
                s,
                self.worker_id,
                model_version=self.backend.model_version,
                policy_version=self.policy.version,
                limit=n,
                lease_s=self.lease_s,
                after_id=self.backfill_after,
                max_attempts=self.max_attempts,
            )
            self.media.update(media_for(s, [c.item_id for c in claimed]))
        if claimed:
            self.backfill_after = max(self.backfill_after, *(c.item_id for c in claimed))
            self.backfill_ids.update(c.item_id for c in claimed)
        return claimed

    def fail(self, item_id: int, error: str) -> None:
        log.warning("item %s failed to score: %s", item_id, error)
        self.errors[item_id] = error
        self.media.pop(item_id, None)
        self.medium_signals.pop(item_id, None)
        with unit_of_work(self.factory) as s:
            gave_up = record_scoring_failure(
                s,
                item_id,
                self.worker_id,
                error,
                max_attempts=self.max_attempts,
                backfill=item_id in self.backfill_ids,
            )
        self.failed += 1
        self.given_up += int(gave_up)
        self.done.add(item_id)

    def release_unscored(self, claimed: list[ClaimedItem]) -> None:
        from storage.queue import release

        for c in claimed:
            if c.item_id in self.done:
                continue
            try:
                with unit_of_work(self.factory) as s:
                    release(s, c.item_id, self.worker_id, reason="worker_error")
            except Exception:  # noqa: BLE001 - best effort; the lease expires anyway
                log.debug("could not release item %s", c.item_id, exc_info=True)

    def record(self, item_id: int, verdict: Verdict) -> None:
        from storage.queue import record_prediction

        try:
            with unit_of_work(self.factory) as s:
                record_prediction(s, item_id, verdict, holder=self.worker_id)
                self._record_media_signals(s, item_id)
        except IntegrityError:
            # Another worker inserted the same (item, model, policy) prediction between our
            # check and our insert: the unique constraint kept one, which is the point.
            log.info("item %s was scored concurrently by another worker", item_id)
        self.scored += 1
        self.backfilled += int(item_id in self.backfill_ids)
        self.done.add(item_id)

    def _record_media_signals(self, s: Session, item_id: int) -> None:
        """Each medium's OCR text (with its lines' boxes) and NSFW score onto its row (the card
        blurs each alone and draws evidence regions over it)."""
        from storage.media import record_medium_signals

        for m, sig in zip(
            self.media.pop(item_id, []), self.medium_signals.pop(item_id, []), strict=False
        ):
            record_medium_signals(
                s,
                item_id,
                m.position,
                ocr_text=sig.ocr_text,
                nsfw_score=sig.nsfw,
                ocr_boxes=sig.ocr_boxes() if sig.ocr_text is not None else None,
                image_size=sig.image_size,
            )

    def media_shas(self, claimed: ClaimedItem) -> tuple[str, ...]:
        """The views to decode for an item, in order (its own view for N = 1 or old rows)."""
        media = self.media.get(claimed.item_id)
        return tuple(m.image_sha256 for m in media) if media else (_view_sha(claimed),)

    def _labels(self, claimed: ClaimedItem, n: int) -> list[str]:
        media = self.media.get(claimed.item_id) or []
        return [m.label for m in media] if len(media) == n else [f"Image {k + 1}" for k in range(n)]

    def prepare(self, claimed: ClaimedItem) -> tuple[ScoringInput, Signals] | None:
        try:
            images, per_medium = decode_and_signal(
                self.store,
                self.media_shas(claimed),
                ocr=self.settings.model.ocr,
                nsfw=self.settings.model.nsfw,
                engine=self.settings.model.ocr_engine,
            )
        except Exception as exc:  # noqa: BLE001 - a bad file must not stop the batch
            self.fail(claimed.item_id, f"image: {type(exc).__name__}: {exc}")
            return None
        return self.scoring_input(claimed, images, per_medium)

    def scoring_input(
        self, claimed: ClaimedItem, images: Sequence[Image], per_medium: Sequence[Signals]
    ) -> tuple[ScoringInput, Signals]:
        """What the backend sees, and the item's combined signals. Without `ocr_hint` the
        prompt carries no OCR line; the OCR text is still stored with the prediction
        (`_with_signals`)."""
        labels = self._labels(claimed, len(images))
        self.medium_signals[claimed.item_id] = list(per_medium)
        inp = build_input(
            claimed.item_id, claimed.text, images, per_medium, labels, ocr_hint=self.ocr_hint
        )
        return inp, combine_signals(per_medium, labels)

    def score(self, inputs: list[ScoringInput]) -> list[Verdict | BaseException]:
        """Score the batch at once; if that raises, one by one to find the bad item(s)."""
        try:
            verdicts = self.backend.score(inputs, self.policy, rationale=self.rationale)
            if len(verdicts) != len(inputs):
                raise WardenError(f"backend returned {len(verdicts)} verdicts for {len(inputs)}")
            return self.with_evidence(inputs, list(verdicts))
        except Exception as exc:  # noqa: BLE001
            if getattr(exc, "systemic", False) or len(inputs) == 1:
                if getattr(exc, "systemic", False):
                    raise
                return [exc]
            log.warning("batch failed (%s); scoring its items one by one", exc)
        out: list[Verdict | BaseException] = []
        for item in inputs:
            try:
                out.extend(self.backend.score([item], self.policy, rationale=self.rationale))
            except Exception as exc:  # noqa: BLE001
                if getattr(exc, "systemic", False):
                    raise
                out.append(exc)
        return self.with_evidence(inputs, out)

    def with_evidence(
        self, inputs: list[ScoringInput], results: list[Verdict | BaseException]
    ) -> list[Verdict | BaseException]:
        """Per-medium evidence for items of several media (model.evidence), then evidence
        regions (`with_regions`); a failure of either leaves the verdicts as they are."""
        if self.media_evidence and any(len(i.media) > 1 for i in inputs):
            try:
                results = add_media_evidence(self.backend, inputs, results, self.policy)
            except Exception as exc:  # noqa: BLE001
                if getattr(exc, "systemic", False):
                    raise
                log.warning("per-medium evidence pass failed: %s", exc)
        return self.with_regions(inputs, results)

    def with_regions(
        self, inputs: list[ScoringInput], results: list[Verdict | BaseException]
    ) -> list[Verdict | BaseException]:
        """The OCR lines that drove each verdict, with their boxes (model.regions); a failure
        of that step leaves the verdicts as they are."""
        lines: dict[int, list[MediumLines]] = {}
        for inp in inputs:
            signals = self.medium_signals.get(inp.item_id or -1) or []
            media = self.media.get(inp.item_id or -1) or []
            # Items without media rows are their own image, position 0.
            positions = [m.position for m in media] if len(media) == len(signals) else None
            lines[inp.item_id or -1] = [
                MediumLines(positions[k] if positions else k, sig.ocr_lines, sig.image_size)
                for k, sig in enumerate(signals)
            ]
        try:
            return add_ocr_regions(
                self.backend,
                inputs,
                results,
                self.policy,
                lines,
                attribute=self.region_evidence,
            )
        except Exception as exc:  # noqa: BLE001
            if getattr(exc, "systemic", False):
                raise
            log.warning("evidence regions failed: %s", exc)
            return results

    def with_descriptions(
        self, inputs: list[ScoringInput], results: list[Verdict | BaseException]
    ) -> list[Verdict | BaseException]:
        """Each medium's description on the verdicts, one batched call (model.describe);
        a model that cannot see images records that it wrote none."""
        out, stats = add_descriptions(
            self.backend,
            inputs,
            results,
            self.media,
            enabled=self.describe,
            max_new_tokens=self.describe_max_new_tokens,
        )
        self.described += stats.media
        self.describe_s += stats.seconds
        return out

    def run_batch(self, claimed: list[ClaimedItem], keeper: _LeaseKeeper) -> None:
        self.done = set()
        keeper.hold([c.item_id for c in claimed])
        prepared: list[tuple[ClaimedItem, ScoringInput, Signals]] = []
        for c in claimed:
            got = self.prepare(c)
            if got is None:
                keeper.drop(c.item_id)
            else:
                prepared.append((c, *got))
        self.score_prepared(prepared, keeper)

    def score_prepared(
        self, prepared: list[tuple[ClaimedItem, ScoringInput, Signals]], keeper: _LeaseKeeper
    ) -> None:
        """Score a batch whose signals are computed, record each verdict or failure."""
        if not prepared:
            return
        inputs = [p[1] for p in prepared]
        results = self.with_descriptions(inputs, self.score(inputs))
        for (c, _inp, sig), result in zip(prepared, results, strict=True):
            if isinstance(result, BaseException):
                self.fail(c.item_id, f"model: {type(result).__name__}: {result}")
            else:
                self.record(c.item_id, _with_signals(result, sig))
            keeper.drop(c.item_id)

    def run_pipeline(
        self,
        pool: SignalPool,
        keeper: _LeaseKeeper,
        next_batch: NextBatch,
        after_batch: Callable[[int], None],
        *,
        max_in_flight: int,
        on_in_flight: InFlightHook | None = None,
    ) -> int:
        """The pipelined loop (model.pipeline): keep up to `max_in_flight` batches claimed,
        their signals computing in `pool`, while the oldest is scored here; returns the
        number of batches. `next_batch(wait)` may block only when nothing is in flight."""
        in_flight: deque[list[tuple[ClaimedItem, Any]]] = deque()
        batches = 0
        done_claiming = False
        try:
            while True:
                while not done_claiming and len(in_flight) < max_in_flight:
                    claimed = next_batch(not in_flight)
                    if not claimed:
                        # Nothing now; with nothing in flight either, nothing at all.
                        done_claiming = not in_flight
                        break
                    ids = [c.item_id for c in claimed]
                    self.done.difference_update(ids)  # a retried item is in play again
                    keeper.add(ids)
                    in_flight.append(
                        [(c, pool.submit(c.item_id, self.media_shas(c))) for c in claimed]
                    )
                    batches += 1
                    if on_in_flight is not None:
                        on_in_flight(len(in_flight))
                if not in_flight:
                    if done_claiming:
                        return batches
                    continue
                before = self.scored + self.failed
                prepared: list[tuple[ClaimedItem, ScoringInput, Signals]] = []
                for c, job in in_flight[0]:
                    got = pool.result(job)
                    if got.error is not None or not got.images or not got.media_signals:
                        self.fail(c.item_id, got.error or "signals: no result")
                        keeper.drop(c.item_id)
                    else:
                        inp, sig = self.scoring_input(c, got.images, got.media_signals)
                        prepared.append((c, inp, sig))
                self.score_prepared(prepared, keeper)
                in_flight.popleft()
                after_batch(self.scored + self.failed - before)
        except BaseException:
            # The backend failed, Ctrl-C: hand every claimed, unrecorded item back now.
            for batch in in_flight:
                self.release_unscored([c for c, _ in batch])
            raise

    def drive(
        self,
        next_batch: NextBatch,
        after_batch: Callable[[int], None],
        *,
        pool: SignalPool | None = None,
        max_in_flight: int = 2,
        on_in_flight: InFlightHook | None = None,
    ) -> WorkerReport:
        """Score batches from `next_batch(wait)` until it returns none; `after_batch(handled)`
        follows each batch. With `pool`, pipelined (`run_pipeline`); without, one batch at a
        time. Disposes of the engine at the end."""
        batches = 0
        t0 = time.perf_counter()
        try:
            with _LeaseKeeper(self.factory, self.worker_id, self.lease_s) as keeper:
                if pool is not None:
                    batches = self.run_pipeline(
                        pool,
                        keeper,
                        next_batch,
                        after_batch,
                        max_in_flight=max_in_flight,
                        on_in_flight=on_in_flight,
                    )
                while pool is None and (claimed := next_batch(True)):
                    batches += 1
                    before = self.scored + self.failed
                    try:
                        self.run_batch(claimed, keeper)
                    except BaseException:
                        # The backend itself failed (or Ctrl-C): hand the unscored items back
                        # now rather than at lease expiry, without charging them an attempt.
                        self.release_unscored(claimed)
                        raise
                    after_batch(self.scored + self.failed - before)
        finally:
            self.engine.dispose()
        elapsed = time.perf_counter() - t0
        report = WorkerReport(
            worker_id=self.worker_id,
            model_version=self.backend.model_version,
            policy_version=self.policy.version,
            scored=self.scored,
            backfilled=self.backfilled,
            failed=self.failed,
            given_up=self.given_up,
            batches=batches,
            elapsed_s=elapsed,
            errors=dict(self.errors),
            model_versions=tuple(self.model_versions),
            described=self.described,
            describe_s=self.describe_s,
        )
        described = ""
        if report.described:
            described = (
                f"; descriptions of {report.described} media in {report.describe_s:.1f}s "
                f"({report.describe_s / report.described:.2f} s/medium)"
            )
        log.info(
            "worker %s: %d scored, %d failed in %.1fs (%.2f items/s)%s",
            report.worker_id,
            report.scored,
            report.failed,
            elapsed,
            report.items_per_s,
            described,
        )
        return report


def _with_signals(verdict: Verdict, sig: Signals) -> Verdict:
    """The verdict with the cheap signals stored beside the backend's own."""
    signals: dict[str, Any] = {**sig.as_verdict_signals(), **verdict.signals}
    return replace(
        verdict,
        signals=signals,
        ocr_text=verdict.ocr_text if verdict.ocr_text is not None else sig.ocr_text,
    )


def run_worker(
    settings: Settings,
    backend: Backend | None,
    *,
    limit: int | None,
    batch_size: int,
    worker_id: str | None = None,
    progress: bool = True,
    rationale: bool = False,
    policy: Policy | None = None,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    backfill: bool = True,
    live: LiveSource | None = None,
    follow: bool = False,
    poll_s: float = 2.0,
    stop: threading.Event | None = None,
    pipeline: bool | None = None,
    signal_procs: int | None = None,
    on_in_flight: InFlightHook | None = None,
    signal_pool: SignalPool | None = None,
) -> WorkerReport:
    """Score queued items until the queue is empty or `limit` items were handled.

    With `backfill` (the default), once no queued item is left, go on with the items outside
    the queue that have no prediction for this model and policy (see the module docstring);
    queued items that arrive meanwhile still come first. `limit` counts items taken (scored
    or failed), backfill included. Returns the counts and the elapsed time;
    `WorkerReport.items_per_s` is the throughput.

    `live` (instead of `backend`) is asked for the backend before every claim, so the worker
    follows the registry's live model. `follow` keeps waiting for new items (every `poll_s`
    seconds) instead of stopping when none is left; it ends when `stop` is set or `limit`
    is reached, after scoring the batches in flight.

    `pipeline` (default `settings.worker.pipeline`) computes the signals in a pool of
    `signal_procs` processes (default `settings.worker.signal_procs`, 0 = one per core but
    one) while the VLM scores, with at most `settings.worker.max_in_flight` batches claimed
    and not recorded; `on_in_flight(n)` is told that count after every claim. A caller may
    pass its own `signal_pool` (started early, so it loads beside the model; the caller closes
    it). Without the pipeline,
    each batch's signals and scores run one after the other (the same predictions).
    """
    if batch_size < 1:
        raise WardenError("--batch-size must be at least 1")
    if limit is not None and limit < 0:
        raise WardenError("--limit must be zero or more")
    if poll_s <= 0:
        raise WardenError("--poll-s must be more than zero")
    if signal_procs is not None and signal_procs < 1:
        raise WardenError("--signal-procs must be at least 1")
    use_pipeline = settings.worker.pipeline if pipeline is None else pipeline
    procs = signal_procs or settings.worker.signal_procs or default_signal_procs()
    stop = stop or threading.Event()
    run = _Run(
        settings,
        backend,
        policy,
        worker_id,
        rationale=rationale,
        max_attempts=max_attempts,
        live=live,
    )
    total = _expected_total(run, limit, backfill=backfill) if progress and not follow else None
    bar = _progress_bar(total, enabled=progress)
    taken = 0

    def next_batch(wait: bool = True) -> list[ClaimedItem]:
        nonlocal taken
        while not stop.is_set():
            if limit is not None and taken >= limit:
                return []
            n = batch_size if limit is None else min(batch_size, limit - taken)
            run.refresh()  # the live model, as the registry says now
            # The queue first, every batch: moderators wait for those; the backfill does not.
            claimed = run.claim(n)
            if not claimed and backfill and wait:
                # Only with no batch in flight (`wait`): a pipeline that claimed backfill
                # ahead would make a queued item arriving meanwhile wait behind it.
                claimed = run.claim_backfill(n)
            taken += len(claimed)
            if claimed or not follow or not wait:
                return claimed
            stop.wait(poll_s)
        return []

    def after_batch(handled: int) -> None:
        if bar is not None:
            bar.update(handled)
            bar.set_postfix(scored=run.scored, failed=run.failed, refresh=False)

    pool = signal_pool if use_pipeline else None
    own_pool = pool is None
    try:
        if use_pipeline:
            try:
                pool = pool or SignalPool(
                    run.store.root,
                    procs=procs,
                    ocr=settings.model.ocr,
                    nsfw=settings.model.nsfw,
                    ocr_device=settings.worker.ocr_device,
                    ocr_engine=settings.model.ocr_engine,
                )
                pool.start()  # detectors loaded before the first claim
            except BaseException:
                if pool is not None and own_pool:
                    pool.close()
                run.engine.dispose()  # drive() would have
                raise
        return run.drive(
            next_batch,
            after_batch,
            pool=pool,
            max_in_flight=settings.worker.max_in_flight,
            on_in_flight=on_in_flight,
        )
    finally:
        if pool is not None and own_pool:
            pool.close()
        if bar is not None:
            bar.close()


def score_items(
    settings: Settings,
    backend: Backend,
    item_ids: Sequence[int],
    *,
    policy: Policy | None = None,
    rationale: bool = False,
    progress: Callable[[int, int], None] | None = None,
    batch_size: int | None = None,
    worker_id: str | None = None,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
) -> WorkerReport:
    """Score exactly `item_ids` now (say, just uploaded), whatever their place in the queue.

    Each item is claimed under a scoring lease like `run_worker`'s and goes through the same
    signals, backend and recording. Items no longer queued, or leased by someone else (a
    worker scoring them already), are skipped and counted nowhere. `progress(done, total)`
    is called before the first batch and after each one.
    """
    size = batch_size or settings.model.batch_size
    if size < 1:
        raise WardenError("batch size must be at least 1")
    run = _Run(settings, backend, policy, worker_id, rationale=rationale, max_attempts=max_attempts)
    remaining = list(dict.fromkeys(item_ids))  # unique, in the caller's order
    total = len(remaining)

    def next_batch(wait: bool = True) -> list[ClaimedItem]:
        claimed = run.claim(size, item_ids=remaining)
        taken = {c.item_id for c in claimed}
        remaining[:] = [i for i in remaining if i not in taken]
        return claimed

    def after_batch(handled: int) -> None:
        if progress is not None:
            progress(run.scored + run.failed, total)

    if progress is not None:
        progress(0, total)
    return run.drive(next_batch, after_batch)


def score_with_live(
    settings: Settings,
    item_ids: Sequence[int],
    *,
    policy: Policy | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> WorkerReport:
    """Score `item_ids` now with the model the registry says is live (checked on this call,
    at most every `model.loading.LIVE_CHECK_S` seconds): the upload tab's "score now"."""
    from model.loading import live_backend

    backend = live_backend(settings.model, database_url=settings.database_url)
    return score_items(settings, backend, item_ids, policy=policy, progress=progress)


def _expected_total(run: _Run, limit: int | None, *, backfill: bool = False) -> int:
    """Queued items now, plus with `backfill` the items it would score (other workers may take
    some: the bar is a guide, not a promise)."""
    from sqlalchemy import exists, func, select

    from storage.models import Item, Prediction
    from storage.queue import BACKFILL_STATUSES

    with unit_of_work(run.factory) as s:
        total = s.scalar(select(func.count(Item.id)).where(Item.status == "queued")) or 0
        if backfill:
            has_prediction = exists().where(
                Prediction.item_id == Item.id,
                Prediction.model_version == run.backend.model_version,
                Prediction.policy_version == run.policy.version,
            )
            total += (
                s.scalar(
                    select(func.count(Item.id)).where(
                        Item.status.in_(BACKFILL_STATUSES), ~has_prediction
                    )
                )
                or 0
            )
    return total if limit is None else min(limit, total)


def _progress_bar(total: int | None, *, enabled: bool) -> Any:
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc="scoring", unit="item", file=sys.stderr, dynamic_ncols=True)
