"""A transactional outbox: work for an outside system (Label Studio), retried until done.

Messages are enqueued in the same unit of work as the change that causes them, idempotently on
a key, so an unreachable server delays work and loses none. A sender claims due messages
(`FOR UPDATE SKIP LOCKED` on PostgreSQL, one `UPDATE ... RETURNING` on SQLite), which hides
them from other senders for `lease_s`; it then marks each done, or failed, which schedules the
next attempt after an exponential delay (base * 2^(attempts-1), capped) until `max_attempts`
failures make it dead. A sender that crashes mid-batch leaves its messages due again once the
lease passes. Functions take a `Session` and never commit.

    with unit_of_work(engine) as s:
        enqueue(s, "ls.push", f"push:{item_id}", {"item_id": item_id})
    with unit_of_work(engine) as s:
        batch = claim_due(s, "ls.push", limit=20)
    ... send, then in another unit of work: mark_done(s, m.id) / mark_failed(s, m.id, str(exc))

Dead messages are listed by `list_messages` and requeued by `retry_dead` (`warden labelstudio
outbox list|retry`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, func, select, update
from sqlalchemy.engine import CursorResult
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from storage.errors import NotFound, WardenError
from storage.models import OutboxMessage, utcnow

OUTBOX = cast(Table, OutboxMessage.__table__)
STATUSES = ("pending", "done", "dead")
MAX_ERROR_CHARS = 4000


@dataclass(frozen=True)
class OutboxItem:
    id: int
    topic: str
    key: str
    payload: dict
    attempts: int


def enqueue(session: Session, topic: str, key: str, payload: dict) -> int:
    """Add a message; a second enqueue with the same key returns the first one's id."""
    existing = session.scalar(select(OutboxMessage.id).where(OutboxMessage.key == key))
    if existing is not None:
        return existing
    msg = OutboxMessage(topic=topic, key=key, payload=dict(payload), next_attempt_at=utcnow())
    try:
        with session.begin_nested():
            session.add(msg)
            session.flush()
    except IntegrityError:
        # A concurrent enqueue of the same key won (PostgreSQL).
        existing = session.scalar(select(OutboxMessage.id).where(OutboxMessage.key == key))
        if existing is None:
            raise
        return existing
    return msg.id


def claim_due(
    session: Session,
    topic: str,
    *,
    limit: int = 50,
    now: datetime | None = None,
    lease_s: float = 60.0,
) -> list[OutboxItem]:
    """Pending messages of `topic` whose next attempt is due, oldest first, hidden from other
    senders for `lease_s` seconds."""
    if limit <= 0:
        return []
    now = now or utcnow()
    pick = (
        select(OutboxMessage.id)
        .where(
            OutboxMessage.status == "pending",
            OutboxMessage.topic == topic,
            OutboxMessage.next_attempt_at <= now,
        )
        .order_by(OutboxMessage.next_attempt_at, OutboxMessage.id)
        .limit(limit)
    )
    if session.get_bind().dialect.name == "postgresql":
        pick = pick.with_for_update(skip_locked=True)
    rows = session.execute(
        update(OUTBOX)
        .where(OUTBOX.c.id.in_(pick.scalar_subquery()))
        .values(next_attempt_at=now + timedelta(seconds=lease_s))
        .returning(OUTBOX.c.id, OUTBOX.c.topic, OUTBOX.c.key, OUTBOX.c.payload, OUTBOX.c.attempts)
    ).all()
    items = [
        OutboxItem(
            id=r.id, topic=r.topic, key=r.key, payload=dict(r.payload or {}), attempts=r.attempts
        )
        for r in rows
    ]
    return sorted(items, key=lambda m: m.id)


def _get(session: Session, message_id: int) -> OutboxMessage:
    msg = session.get(OutboxMessage, message_id, populate_existing=True)
    if msg is None:
        raise NotFound(f"outbox message {message_id} does not exist")
    return msg


def mark_done(session: Session, message_id: int, result: dict | None = None) -> None:
    msg = _get(session, message_id)
    msg.status = "done"
    msg.done_at = utcnow()
    msg.result = dict(result or {})
    msg.last_error = None


def retry_delay_s(attempts: int, *, base_delay_s: float = 2.0, max_delay_s: float = 300.0) -> float:
    """Delay before the next attempt after `attempts` failures: base * 2^(attempts-1), capped."""
    return min(max_delay_s, base_delay_s * (2 ** max(0, attempts - 1)))


def mark_failed(
    session: Session,
    message_id: int,
    error: str,
    *,
    now: datetime | None = None,
    base_delay_s: float = 2.0,
    max_delay_s: float = 300.0,
    max_attempts: int = 50,
) -> None:
    """Record a failed attempt: retry after an exponential delay, or dead after max_attempts."""
    now = now or utcnow()
    msg = _get(session, message_id)
    msg.attempts = (msg.attempts or 0) + 1
    msg.last_error = (error or "")[:MAX_ERROR_CHARS]
    if msg.attempts >= max_attempts:
        msg.status = "dead"
    else:
        delay = retry_delay_s(msg.attempts, base_delay_s=base_delay_s, max_delay_s=max_delay_s)
        msg.next_attempt_at = now + timedelta(seconds=delay)


def retry_dead(
    session: Session,
    topic: str | None = None,
    *,
    ids: Sequence[int] | None = None,
    now: datetime | None = None,
) -> int:
    """Give dead messages another round of attempts (after the outside problem is fixed): all
    of them, those of `topic`, or only `ids`. Returns how many were requeued; the next
    delivery sends them."""
    stmt = update(OUTBOX).where(OUTBOX.c.status == "dead")
    if topic is not None:
        stmt = stmt.where(OUTBOX.c.topic == topic)
    if ids is not None:
        stmt = stmt.where(OUTBOX.c.id.in_([int(i) for i in ids]))
    result = session.execute(
        stmt.values(status="pending", attempts=0, next_attempt_at=now or utcnow())
    )
    return cast(CursorResult[Any], result).rowcount or 0


@dataclass(frozen=True)
class OutboxRecord:
    """A message as an operator sees it (`warden labelstudio outbox list`)."""

    id: int
    topic: str
    key: str
    status: str
    attempts: int
    last_error: str | None
    created_at: datetime
    next_attempt_at: datetime


def list_messages(
    session: Session,
    *,
    status: str = "dead",
    topics: Sequence[str] | None = None,
    ids: Sequence[int] | None = None,
    limit: int = 200,
) -> list[OutboxRecord]:
    """Messages in `status` (pending, done or dead), oldest first; optionally only `topics`
    or `ids`."""
    if status not in STATUSES:
        raise WardenError(f"outbox status must be one of {', '.join(STATUSES)}, not {status!r}")
    stmt = select(OutboxMessage).where(OutboxMessage.status == status)
    if topics is not None:
        stmt = stmt.where(OutboxMessage.topic.in_(list(topics)))
    if ids is not None:
        stmt = stmt.where(OutboxMessage.id.in_([int(i) for i in ids]))
    return [
        OutboxRecord(
            id=m.id,
            topic=m.topic,
            key=m.key,
            status=m.status,
            attempts=m.attempts,
            last_error=m.last_error,
            created_at=m.created_at,
            next_attempt_at=m.next_attempt_at,
        )
        for m in session.scalars(stmt.order_by(OutboxMessage.id).limit(max(0, limit)))
    ]


def backlog(session: Session, topic: str | None = None) -> dict[str, int]:
    """Message counts by status (pending, done, dead), zeros included."""
    stmt = select(OutboxMessage.status, func.count()).group_by(OutboxMessage.status)
    if topic is not None:
        stmt = stmt.where(OutboxMessage.topic == topic)
    counts: dict[str, Any] = {s: 0 for s in STATUSES}
    for status, n in session.execute(stmt):
        counts[status] = int(n)
    return counts
