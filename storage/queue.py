"""The review and scoring queue: leases, claims, releases, escalation, predictions.

Items move queued -> scored -> in_review (claimed under a lease that expires) -> decided |
escalated. A claim is one atomic statement: SQLite runs `UPDATE items ... WHERE id = (SELECT
... LIMIT 1) RETURNING ...` inside its BEGIN IMMEDIATE transaction; PostgreSQL runs the same
UPDATE with `FOR UPDATE SKIP LOCKED` in the sub-select, so concurrent reviewers never block
on, nor receive, the same row. The current lease lives on the item (holder, expiry, token);
the `claims` table keeps the history of every lease, closed with an outcome (decided,
escalated, released, skipped, expired, scored). Every state change writes an audit event in
the caller's unit of work. Functions take a `Session` and never commit.

    with unit_of_work(engine) as s:
        claimed = claim_next(s, "alice", QueueFilters(categories=("weapons",)))
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import typing
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Float,
    String,
    Table,
    and_,
    bindparam,
    cast,
    exists,
    func,
    insert,
    inspect,
    literal,
    not_,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import JSONB, array
from sqlalchemy.engine import CursorResult
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, aliased

from storage.audit import record_audit
from storage.domain import ClaimedItem, ItemStatus, Verdict
from storage.errors import Conflict, NotFound
from storage.models import (
    OPEN_ITEMS_SQL,
    OPEN_ITEMS_SQLITE,
    Claim,
    Decision,
    Item,
    Prediction,
    utcnow,
)

log = logging.getLogger(__name__)

ITEMS = typing.cast(Table, Item.__table__)
CLAIMS = typing.cast(Table, Claim.__table__)

# A reviewer who skips an item does not get it straight back (the next claim would otherwise
# return the same highest-priority item); other reviewers still can.
SKIP_COOLDOWN_S = 900
# `release` reasons of a reviewer (the rest are scoring workers'): these need a live review lease.
REVIEW_RELEASES = ("skip", "release")

_PRIORITY_FLOOR = -(2**31)

# Aliases are built once: building them per call costs more than running the claim itself,
# and stable aliases keep SQLAlchemy's compiled-statement cache warm.
_P_LATEST = aliased(Prediction, name="p_latest")
_D_LATEST = aliased(Decision, name="d_latest")
_LP = aliased(Prediction, name="lp")
_CD = aliased(Decision, name="cd")
_TOP = aliased(Item, name="top")
_Q = aliased(Item, name="q")
_RECENT_SKIP = aliased(Claim, name="recent_skip")

# Statuses whose items are still open work; the queue's partial index covers exactly these.
OPEN_STATUSES = (ItemStatus.queued.value, ItemStatus.scored.value, ItemStatus.in_review.value)


@dataclass(frozen=True)
class QueueFilters:
    """What a reviewer wants to see next; all conditions apply together."""

    categories: tuple[str, ...] = ()  # latest prediction flags any of these
    source: str | None = None
    min_score: float | None = None  # max category score of the latest prediction
    max_score: float | None = None
    disagreement_only: bool = False  # latest prediction's flags != current decision's
    include_unscored: bool = True  # status queued items are reviewable too


# --------------------------------------------------------------------------- SQL building blocks


def _dialect(session: Session) -> str:
    return session.get_bind().dialect.name


def _now(now: datetime | None) -> datetime:
    return now if now is not None else utcnow()


def latest_prediction_id(item_id_col: Any = Item.id) -> Any:
    """Correlated scalar subquery: id of the newest prediction of the item."""
    p = _P_LATEST
    return (
        select(func.max(p.id)).where(p.item_id == item_id_col).correlate_except(p).scalar_subquery()
    )


def latest_decision_id(item_id_col: Any = Item.id) -> Any:
    """Correlated scalar subquery: id of the newest decision row of the item (the current one,
    unless it is a retraction)."""
    d = _D_LATEST
    return (
        select(func.max(d.id)).where(d.item_id == item_id_col).correlate_except(d).scalar_subquery()
    )


def _json_list_has_any(dialect: str, col: Any, values: Sequence[str]) -> ColumnElement[bool]:
    if dialect == "postgresql":
        return cast(col, JSONB).op("?|")(array(list(values)))
    je = func.json_each(col).table_valued("value")
    return exists(select(literal(1)).select_from(je).where(je.c.value.in_(list(values))))


def _json_max_value(dialect: str, col: Any) -> Any:
    if dialect == "postgresql":
        je = func.json_each_text(col).table_valued("key", "value")
        return select(func.max(cast(je.c.value, Float))).select_from(je).scalar_subquery()
    je = func.json_each(col).table_valued("value")
    return select(func.max(je.c.value)).select_from(je).scalar_subquery()


def _json_sets_differ(dialect: str, a: Any, b: Any) -> ColumnElement[bool]:
    if dialect == "postgresql":
        ja, jb = cast(a, JSONB), cast(b, JSONB)
        return not_(and_(ja.op("@>")(jb), jb.op("@>")(ja)))
    ea = func.json_each(a).table_valued("value")
    eb = func.json_each(b).table_valued("value")
    a_minus_b = select(ea.c.value).select_from(ea).except_(select(eb.c.value).select_from(eb))
    ea2 = func.json_each(a).table_valued("value")
    eb2 = func.json_each(b).table_valued("value")
    b_minus_a = select(eb2.c.value).select_from(eb2).except_(select(ea2.c.value).select_from(ea2))
    return or_(exists(a_minus_b.subquery().select()), exists(b_minus_a.subquery().select()))


def prediction_filter_clauses(
    dialect: str,
    *,
    categories: Sequence[str] = (),
    min_score: float | None = None,
    max_score: float | None = None,
    disagreement_only: bool = False,
    item: Any = Item,
) -> list[ColumnElement[bool]]:
    """WHERE clauses on `item` (Item or an alias) about its latest prediction and current
    decision."""
    clauses: list[ColumnElement[bool]] = []
    if not categories and min_score is None and max_score is None and not disagreement_only:
        return clauses
    p = _LP
    conds: list[ColumnElement[bool]] = [
        p.item_id == item.id,
        p.id == latest_prediction_id(p.item_id),
    ]
    if categories:
        conds.append(_json_list_has_any(dialect, p.flagged, categories))
    if min_score is not None:
        conds.append(_json_max_value(dialect, p.scores) >= min_score)
    if max_score is not None:
        conds.append(_json_max_value(dialect, p.scores) <= max_score)
    if disagreement_only:
        d = _CD
        conds.append(
            exists(
                select(literal(1)).where(
                    d.item_id == p.item_id,
                    d.id == latest_decision_id(d.item_id),
                    d.action == "label",
                    _json_sets_differ(dialect, p.flagged, d.categories),
                )
            )
        )
    clauses.append(exists(select(literal(1)).select_from(p).where(*conds)))
    return clauses


def current_decision_has_any(
    dialect: str, categories: Sequence[str], item: Any = Item
) -> ColumnElement[bool]:
    """WHERE clause on `item`: its current decision labels it with any of `categories`."""
    d = _CD
    return exists(
        select(literal(1)).where(
            d.item_id == item.id,
            d.id == latest_decision_id(d.item_id),
            d.action == "label",
            _json_list_has_any(dialect, d.categories, list(categories)),
        )
    )


def requeue_status(session: Session, item_id: int) -> str:
    """Where an item returns to when its review ends without a decision."""
    has_prediction = session.scalar(
        select(literal(1)).where(Prediction.item_id == item_id).limit(1)
    )
    return ItemStatus.scored.value if has_prediction else ItemStatus.queued.value


def close_open_claims(session: Session, item_id: int, outcome: str, now: datetime) -> int:
    """End every open lease of the item in the claims history."""
    result = session.execute(
        update(CLAIMS)
        .where(CLAIMS.c.item_id == item_id, CLAIMS.c.ended_at.is_(None))
        .values(ended_at=now, outcome=outcome)
    )
    return typing.cast(CursorResult[Any], result).rowcount or 0


def clear_lease(session: Session, item_id: int, status: str | None = None) -> None:
    values: dict[str, Any] = {"lease_holder": None, "lease_expires_at": None, "lease_token": None}
    if status is not None:
        values["status"] = status
    session.execute(update(ITEMS).where(ITEMS.c.id == item_id).values(**values))


def _claimed(row: Any, holder: str) -> ClaimedItem:
    return ClaimedItem(
        item_id=row.id,
        blob_sha256=row.blob_sha256,
        status=ItemStatus(row.status),
        holder=holder,
        lease_expires_at=row.lease_expires_at,
        priority=row.priority,
        text=row.text,
        source=row.source,
        filename=row.filename,
        view_sha256=row.view_sha256,
    )


_RETURNING = (
    ITEMS.c.id,
    ITEMS.c.blob_sha256,
    ITEMS.c.status,
    ITEMS.c.lease_expires_at,
    ITEMS.c.priority,
    ITEMS.c.text,
    ITEMS.c.source,
    ITEMS.c.filename,
    ITEMS.c.view_sha256,
)


# --------------------------------------------------------------------------- review claims


def claim_next(
    session: Session,
    reviewer: str,
    filters: QueueFilters | None = None,
    *,
    lease_s: int = 600,
    now: datetime | None = None,
    skip_cooldown_s: int = SKIP_COOLDOWN_S,
) -> ClaimedItem | None:
    """Hand `reviewer` the highest-priority, oldest reviewable item under a lease.

    Reviewable: status scored (or queued, with `include_unscored`) and no live lease, or
    in_review with an expired lease (a crashed reviewer's item). None when nothing matches.
    A reviewer may hold several items (the UI prefetches the next one).
    """
    filters = filters or QueueFilters()
    if not isinstance(filters.categories, tuple):  # a list would not be hashable (cache key)
        filters = dataclasses.replace(filters, categories=tuple(filters.categories))
    now = _now(now)
    stmt = _claim_statement(_dialect(session), filters, skip_cooldown_s > 0)
    row = session.execute(
        stmt,
        {
            "c_reviewer": reviewer,
            "c_now": now,
            "c_expires": now + timedelta(seconds=lease_s),
            "c_token": str(uuid.uuid4()),
            "c_skip_since": now - timedelta(seconds=max(skip_cooldown_s, 0)),
        },
    ).first()
    if row is None:
        return None
    # A previous lease on this item (expired review or scoring claim) ends here.
    expired = close_open_claims(session, row.id, "expired", now)
    session.execute(
        insert(CLAIMS).values(
            item_id=row.id,
            holder=reviewer,
            kind="review",
            token=row.lease_token,
            claimed_at=now,
            expires_at=row.lease_expires_at,
        )
    )
    record_audit(
        session, reviewer, "item.claimed", row.id, lease_s=lease_s, took_over_expired=bool(expired)
    )
    return _claimed(row, reviewer)


def _queue_order(it: Any) -> tuple[Any, ...]:
    return (it.priority.desc(), it.created_at.asc(), it.id.asc())


def _open_items(dialect: str, alias: str) -> Any:
    """The partial index's own predicate, verbatim, so SQLite will use ix_items_open_queue."""
    sql = OPEN_ITEMS_SQLITE if dialect == "sqlite" else OPEN_ITEMS_SQL
    return text(sql.replace("status", f"{alias}.status", 1))


def _reviewable_clauses(
    dialect: str, it: Any, filters: QueueFilters, with_cooldown: bool
) -> list[ColumnElement[bool]]:
    """WHERE clauses for items `c_reviewer` may claim at `c_now` (bind parameters)."""
    now = bindparam("c_now", type_=Item.lease_expires_at.type)
    # Open items with no live lease. An in_review item always has a holder, so "no live
    # lease" is exactly "its reviewer's lease expired". No other status term: one would
    # tempt SQLite into the status index and a sort of the whole backlog.
    where: list[ColumnElement[bool]] = [
        _open_items(dialect, inspect(it).name),
        or_(it.lease_holder.is_(None), it.lease_expires_at < now),
    ]
    if not filters.include_unscored:
        where.append(it.status != ItemStatus.queued.value)
    if filters.source:
        where.append(it.source == filters.source)
    where += prediction_filter_clauses(
        dialect,
        categories=filters.categories,
        min_score=filters.min_score,
        max_score=filters.max_score,
        disagreement_only=filters.disagreement_only,
        item=it,
    )
    if with_cooldown:
        c = _RECENT_SKIP
        where.append(
            ~exists(
                select(literal(1)).where(
                    c.item_id == it.id,
                    c.holder == bindparam("c_reviewer", type_=String()),
                    c.outcome == "skipped",
                    c.ended_at > bindparam("c_skip_since", type_=Claim.ended_at.type),
                )
            )
        )
    return where


@functools.lru_cache(maxsize=512)
def _claim_statement(dialect: str, filters: QueueFilters, with_cooldown: bool) -> Any:
    """The atomic claim: one UPDATE of the row the sub-select picks, returning it.

    Built once per (dialect, filters) with bind parameters c_reviewer, c_now, c_expires,
    c_token, c_skip_since: building it costs more than the database spends running it.
    """
    q = _Q
    if dialect == "postgresql":
        # ix_items_open_queue is in queue order here: the first unlocked matching row wins.
        pick = (
            select(q.id)
            .where(*_reviewable_clauses(dialect, q, filters, with_cooldown))
            .order_by(*_queue_order(q))
            .limit(1)
            .with_for_update(skip_locked=True)
        )
    else:
        # SQLite's copy of the index is all ascending, so two walks instead of one sort of
        # the backlog: the top priority among reviewable items (the index backwards), then the
        # oldest reviewable item at that priority (forwards). Each stops at its first match.
        # BEGIN IMMEDIATE makes the statement atomic with respect to other claimers.
        top = _TOP
        top_priority = (
            select(top.priority)
            # An always-true range on priority makes the walk down ix_items_open_queue the
            # cheap plan (otherwise SQLite picks ix_items_claimable and sorts every open item).
            .where(
                *_reviewable_clauses(dialect, top, filters, with_cooldown),
                top.priority > _PRIORITY_FLOOR,
            )
            .order_by(top.priority.desc(), top.created_at.desc(), top.id.desc())
            .limit(1)
            .scalar_subquery()
        )
        pick = (
            select(q.id)
            .where(
                *_reviewable_clauses(dialect, q, filters, with_cooldown),
                q.priority == top_priority,
            )
            .order_by(q.priority, q.created_at, q.id)
            .limit(1)
        )
    return (
        update(ITEMS)
        .where(ITEMS.c.id == pick.scalar_subquery())
        .values(
            status=ItemStatus.in_review.value,
            lease_holder=bindparam("c_reviewer", type_=String()),
            lease_expires_at=bindparam("c_expires", type_=Item.lease_expires_at.type),
            lease_token=bindparam("c_token", type_=String()),
            updated_at=bindparam("c_now", type_=Item.lease_expires_at.type),
        )
        .returning(*_RETURNING, ITEMS.c.lease_token)
    )


def claim_item(
    session: Session,
    item_id: int,
    holder: str,
    *,
    lease_s: int = 600,
    now: datetime | None = None,
) -> ClaimedItem:
    """Claim one chosen item (a queue row a reviewer opens) for `holder` under a lease.

    Open items only: Conflict, with a one-line reason, when another reviewer holds it under a
    live lease, a scoring worker is on it, or it is already decided or escalated (those change
    by overrule). An item `holder` already holds keeps its lease, renewed. NotFound for an item
    that does not exist.
    """
    now = _now(now)
    item = require_item(session, item_id, for_update=True)
    if item.status in (ItemStatus.decided.value, ItemStatus.escalated.value):
        raise Conflict(
            f"item {item_id} is already {item.status}; only an admin or engineer can overrule it"
        )
    live = item.lease_holder is not None and (
        item.lease_expires_at is not None and item.lease_expires_at > now
    )
    if live and item.lease_holder == holder and item.status == ItemStatus.in_review.value:
        renew_lease(session, item_id, holder, lease_s=lease_s)
        return _held_one(session, item_id, holder)
    if live and item.status == ItemStatus.in_review.value:
        raise Conflict(f"item {item_id} is being reviewed by {item.lease_holder}; pick another")
    if live:
        raise Conflict(f"item {item_id} is being scored right now; open it again in a minute")
    expires = now + timedelta(seconds=lease_s)
    token = str(uuid.uuid4())
    # Conditional on the lease still being free: SQLite has no row lock, and another claimer
    # may have taken the item since it was read.
    row = session.execute(
        update(ITEMS)
        .where(
            ITEMS.c.id == item_id,
            ITEMS.c.status.in_(OPEN_STATUSES),
            or_(ITEMS.c.lease_holder.is_(None), ITEMS.c.lease_expires_at <= now),
        )
        .values(
            status=ItemStatus.in_review.value,
            lease_holder=holder,
            lease_expires_at=expires,
            lease_token=token,
            updated_at=now,
        )
        .returning(*_RETURNING, ITEMS.c.lease_token)
    ).first()
    if row is None:
        raise Conflict(f"item {item_id} was just taken by another reviewer; pick another")
    expired = close_open_claims(session, item_id, "expired", now)
    session.execute(
        insert(CLAIMS).values(
            item_id=item_id,
            holder=holder,
            kind="review",
            token=token,
            claimed_at=now,
            expires_at=expires,
        )
    )
    record_audit(
        session,
        holder,
        "item.claimed",
        item_id,
        lease_s=lease_s,
        took_over_expired=bool(expired),
        via="queue",
    )
    return _claimed(row, holder)


def _held_one(session: Session, item_id: int, holder: str) -> ClaimedItem:
    row = session.execute(select(*_RETURNING).where(ITEMS.c.id == item_id)).one()
    return _claimed(row, holder)


def held_items(session: Session, holder: str, now: datetime | None = None) -> list[ClaimedItem]:
    """Items `holder` holds under a live lease, oldest claim first."""
    now = _now(now)
    rows = session.execute(
        select(*_RETURNING)
        .where(ITEMS.c.lease_holder == holder, ITEMS.c.lease_expires_at > now)
        .order_by(ITEMS.c.lease_expires_at.asc(), ITEMS.c.id.asc())
    ).all()
    return [_claimed(r, holder) for r in rows]


def claim_for_scoring(
    session: Session,
    worker: str,
    *,
    limit: int,
    lease_s: int = 900,
    now: datetime | None = None,
    item_ids: Sequence[int] | None = None,
) -> list[ClaimedItem]:
    """Lease up to `limit` queued items to a scoring worker; workers never share an item.

    With `item_ids`, only those items are considered (in queue order); any of them that is no
    longer queued, or that another holder leases, is left alone.
    """
    if limit <= 0 or (item_ids is not None and not item_ids):
        return []
    now = _now(now)
    dialect = _dialect(session)
    if item_ids is None:
        pick = _scoring_pick(dialect, limit, now)
    else:
        pick = _scoring_pick_ids(dialect, item_ids, limit, now)
    return _lease_for_scoring(session, worker, pick, lease_s=lease_s, now=now)


def claim_for_backfill(
    session: Session,
    worker: str,
    *,
    model_version: str,
    policy_version: str,
    limit: int,
    lease_s: int = 900,
    now: datetime | None = None,
    after_id: int = 0,
    max_attempts: int | None = None,
) -> list[ClaimedItem]:
    """Lease up to `limit` items outside the scoring queue that have no prediction for
    (`model_version`, `policy_version`): imported ground truth, decided or escalated items,
    items scored by another model. Oldest id first, only ids above `after_id` (a worker's
    cursor, so one pass over the ledger does not re-walk what it has already passed).

    Under the same leases and claim tokens as `claim_for_scoring`: an item with a live lease
    (a reviewer's, another worker's) is left alone, and a killed worker's claims come free
    when they expire. Status, decision and priority are not touched, here or by
    `record_prediction`. Items in review, queued (`claim_for_scoring` takes those), failed,
    or charged `max_attempts` failed scoring attempts already are not backfilled.
    """
    if limit <= 0:
        return []
    now = _now(now)
    pick = _backfill_pick(
        _dialect(session), model_version, policy_version, after_id, max_attempts, limit, now
    )
    return _lease_for_scoring(session, worker, pick, lease_s=lease_s, now=now, backfill=True)


def _lease_for_scoring(
    session: Session,
    worker: str,
    pick: Any,
    *,
    lease_s: int,
    now: datetime,
    backfill: bool = False,
) -> list[ClaimedItem]:
    """Lease the items `pick` selects to `worker`: the lease on the item, a `score` claim in
    the history (ending any expired one), an audit event each."""
    # One token per batch plus the item id keeps each claim's token unique within 36 chars.
    batch = uuid.uuid4().hex[:20]
    expires = now + timedelta(seconds=lease_s)
    rows = session.execute(
        update(ITEMS)
        .where(ITEMS.c.id.in_(pick.scalar_subquery()))
        .values(
            lease_holder=worker,
            lease_expires_at=expires,
            lease_token=literal(f"s{batch}-") + cast(ITEMS.c.id, ITEMS.c.lease_token.type),
            updated_at=now,
        )
        .returning(*_RETURNING)
    ).all()
    if not rows:
        return []
    ids = [r.id for r in rows]
    session.execute(
        update(CLAIMS)
        .where(CLAIMS.c.item_id.in_(ids), CLAIMS.c.ended_at.is_(None))
        .values(ended_at=now, outcome="expired")
    )
    session.execute(
        insert(CLAIMS),
        [
            {
                "item_id": i,
                "holder": worker,
                "kind": "score",
                "token": f"s{batch}-{i}",
                "claimed_at": now,
                "expires_at": expires,
            }
            for i in ids
        ],
    )
    extra = {"backfill": True} if backfill else {}
    for i in ids:
        record_audit(session, worker, "item.claimed_for_scoring", i, lease_s=lease_s, **extra)
    rows = sorted(rows, key=lambda r: (-r.priority, r.id))
    return [_claimed(r, worker) for r in rows]


def _scoring_pick(dialect: str, limit: int, now: datetime) -> Any:
    """Ids of up to `limit` queued items without a live lease, in queue order, by walking
    ix_items_open_queue (as claim_next does) rather than sorting every queued item."""
    q, top = _Q, _TOP

    def free_queued(it: Any) -> list[Any]:
        alias = inspect(it).name
        # Wrapped so that neither planner is tempted by ix_items_claimable (status first),
        # which would mean sorting every queued item: unary plus on SQLite, concat on PG.
        if dialect == "sqlite":
            queued = f"+{alias}.status = 'queued'"
        else:
            queued = f"({alias}.status || '') = 'queued'"
        return [
            _open_items(dialect, alias),
            text(queued),
            or_(it.lease_holder.is_(None), it.lease_expires_at < now),
        ]

    if dialect == "postgresql":
        return (
            select(q.id)
            .where(*free_queued(q))
            .order_by(*_queue_order(q))
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
    top_priority = (
        select(top.priority)
        .where(*free_queued(top), top.priority > _PRIORITY_FLOOR)
        .order_by(top.priority.desc(), top.created_at.desc(), top.id.desc())
        .limit(1)
        .scalar_subquery()
    )
    # Only the top priority's items in one batch; the worker's next batch takes the rest.
    return (
        select(q.id)
        .where(*free_queued(q), q.priority == top_priority)
        .order_by(q.priority, q.created_at, q.id)
        .limit(limit)
    )


def _scoring_pick_ids(dialect: str, item_ids: Sequence[int], limit: int, now: datetime) -> Any:
    """Ids among `item_ids` that are queued and without a live lease, in queue order."""
    q = _Q
    pick = (
        select(q.id)
        .where(
            q.id.in_(list(item_ids)),
            q.status == ItemStatus.queued.value,
            or_(q.lease_holder.is_(None), q.lease_expires_at < now),
        )
        .order_by(*_queue_order(q))
        .limit(limit)
    )
    # As in _scoring_pick: concurrent claimers on PostgreSQL skip rows another one is taking.
    return pick.with_for_update(skip_locked=True) if dialect == "postgresql" else pick


# Statuses a backfill scores: items out of the scoring queue. Not queued (the normal claim
# takes those first), not in_review (a reviewer holds it, or the expiry sweep is about to
# requeue it), not failed (scoring gave up on it).
BACKFILL_STATUSES = (ItemStatus.scored.value, ItemStatus.decided.value, ItemStatus.escalated.value)

_BF_PRED = aliased(Prediction, name="bf_pred")


def _backfill_pick(
    dialect: str,
    model_version: str,
    policy_version: str,
    after_id: int,
    max_attempts: int | None,
    limit: int,
    now: datetime,
) -> Any:
    """Ids above `after_id`, in id order, of items in BACKFILL_STATUSES without a live lease
    and without a prediction for the model and policy.

    A walk up the primary key from `after_id`, each row probed with NOT EXISTS against
    uq_prediction (item_id, model_version, policy_version): a worker's pass over the ledger
    costs one index probe per item, however many items are already scored.
    """
    q, p = _Q, _BF_PRED
    statuses = ", ".join(f"'{v}'" for v in BACKFILL_STATUSES)
    # Wrapped, as in _scoring_pick, so that neither planner reaches for ix_items_claimable
    # (status first) and then sorts every decided item by id.
    if dialect == "sqlite":
        in_backfill = f"+q.status IN ({statuses})"
    else:
        in_backfill = f"(q.status || '') IN ({statuses})"
    where: list[Any] = [
        q.id > after_id,
        text(in_backfill),
        or_(q.lease_holder.is_(None), q.lease_expires_at < now),
        ~exists(
            select(literal(1)).where(
                p.item_id == q.id,
                p.model_version == model_version,
                p.policy_version == policy_version,
            )
        ),
    ]
    if max_attempts is not None:
        attempts = func.coalesce(q.meta["score_attempts"].as_integer(), 0)
        where.append(attempts < max_attempts)
    pick = select(q.id).where(*where).order_by(q.id).limit(limit)
    # Concurrent backfilling workers on PostgreSQL skip rows another one is taking.
    return pick.with_for_update(skip_locked=True) if dialect == "postgresql" else pick


def renew_lease(session: Session, item_id: int, holder: str, *, lease_s: int = 600) -> datetime:
    """Extend `holder`'s lease; Conflict if someone else holds the item or nobody does."""
    now = utcnow()
    expires = now + timedelta(seconds=lease_s)
    row = session.execute(
        update(ITEMS)
        .where(ITEMS.c.id == item_id, ITEMS.c.lease_holder == holder)
        .values(lease_expires_at=expires)
        .returning(ITEMS.c.lease_token)
    ).first()
    if row is None:
        require_item(session, item_id)
        raise Conflict(f"item {item_id} is not held by {holder}; claim it again")
    session.execute(
        update(CLAIMS)
        .where(CLAIMS.c.token == row.lease_token, CLAIMS.c.ended_at.is_(None))
        .values(expires_at=expires)
    )
    return expires


def release(
    session: Session,
    item_id: int,
    holder: str,
    *,
    reason: str = "skip",
    now: datetime | None = None,
) -> None:
    """Give the item back to the queue. `reason="skip"` keeps it away from `holder` for a while.

    A reviewer's skip or release gives back only their own live review lease; a scoring
    worker (other reasons) only its own lease. Conflict otherwise."""
    now = _now(now)
    item = require_item(session, item_id, for_update=True)
    if reason in REVIEW_RELEASES or item.status == ItemStatus.in_review.value:
        check_live_lease(item, holder, action=reason, now=now)
    elif item.lease_holder != holder:
        raise Conflict(f"item {item_id} is not held by {holder}")
    status = item.status
    if status == ItemStatus.in_review.value:
        status = requeue_status(session, item_id)
    clear_lease(session, item_id, status)
    close_open_claims(session, item_id, "skipped" if reason == "skip" else "released", now)
    record_audit(
        session,
        holder,
        "item.released",
        item_id,
        reason=reason,
        status_from=item.status,
        status_to=status,
    )


def escalate(
    session: Session,
    item_id: int,
    actor: str,
    *,
    note: str | None = None,
    now: datetime | None = None,
) -> None:
    """Send the item `actor` holds under a live review lease to escalation (restricted
    content, unclear policy); ends the lease. Conflict when `actor` does not hold it: an item
    someone else reviews, or one already decided or escalated, is never escalated from here."""
    now = _now(now)
    item = require_live_lease(session, item_id, actor, action="escalate", now=now)
    clear_lease(session, item_id, ItemStatus.escalated.value)
    close_open_claims(session, item_id, "escalated", now)
    record_audit(
        session,
        actor,
        "item.escalated",
        item_id,
        note=note,
        status_from=item.status,
        status_to=ItemStatus.escalated.value,
    )


def expire_leases(session: Session, now: datetime | None = None) -> int:
    """Return every item whose lease has run out to the queue; the count of items freed."""
    now = _now(now)
    pick = select(ITEMS.c.id, ITEMS.c.status, ITEMS.c.lease_holder).where(
        ITEMS.c.lease_holder.is_not(None), ITEMS.c.lease_expires_at < now
    )
    if _dialect(session) == "postgresql":
        pick = pick.with_for_update(skip_locked=True)
    rows = session.execute(pick).all()
    for r in rows:
        status = r.status
        if status == ItemStatus.in_review.value:
            status = requeue_status(session, r.id)
        clear_lease(session, r.id, status)
        close_open_claims(session, r.id, "expired", now)
        record_audit(
            session,
            "system",
            "lease.expired",
            r.id,
            holder=r.lease_holder,
            status_from=r.status,
            status_to=status,
        )
    return len(rows)


def record_prediction(
    session: Session, item_id: int, verdict: Verdict, *, holder: str | None = None
) -> int:
    """Store a verdict; idempotent per (item, model_version, policy_version).

    A queued item becomes scored; the scoring lease held by `holder` ends. Any other status
    stays as it is (a backfill scores decided items), and only an open item's priority gets
    the first-score boost.
    """
    now = utcnow()
    item = require_item(session, item_id, for_update=True)
    existing = _prediction_id(session, item_id, verdict)
    first_score = existing is None and (
        session.scalar(select(Prediction.id).where(Prediction.item_id == item_id).limit(1)) is None
    )
    if existing is None:
        try:
            with session.begin_nested():
                pred = Prediction(
                    item_id=item_id,
                    model_version=verdict.model_version,
                    policy_version=verdict.policy_version,
                    scores={k: float(v) for k, v in verdict.scores.items()},
                    flagged=list(verdict.flagged),
                    rationale=verdict.rationale,
                    ocr_text=verdict.ocr_text,
                    raw_reply=verdict.raw_reply,
                    parse_ok=verdict.parse_ok,
                    signals=dict(verdict.signals),
                    latency_ms=float(verdict.latency_ms),
                    created_at=now,
                )
                session.add(pred)
                session.flush()
            pred_id = pred.id
            created = True
        except IntegrityError:
            # Another worker stored the same verdict concurrently (PostgreSQL only).
            raced = _prediction_id(session, item_id, verdict)
            if raced is None:
                raise
            pred_id = raced
            created = False
    else:
        pred_id, created = existing, False
    status = item.status
    values: dict[str, Any] = {}
    if status == ItemStatus.queued.value:
        values["status"] = ItemStatus.scored.value
    if holder is not None and item.lease_holder == holder:
        # The scoring lease ends with the prediction, whatever the status (a backfilled
        # decided item keeps its status; only the worker's lease goes).
        values.update(lease_holder=None, lease_expires_at=None, lease_token=None)
        close_open_claims(session, item_id, "scored", now)
    if first_score and created and status in OPEN_STATUSES:
        # Reviewers see likely violations first; the boost is applied once, on the first
        # score an item gets, so re-scoring with another model does not inflate it. Only an
        # item still in the queue is reordered: a backfilled decided item keeps its priority.
        boost = scoring_priority(verdict)
        if boost:
            values["priority"] = ITEMS.c.priority + boost
    if values:
        session.execute(update(ITEMS).where(ITEMS.c.id == item_id).values(**values))
    if created or values:
        record_audit(
            session,
            holder or verdict.model_version,
            "item.scored",
            item_id,
            prediction_id=pred_id,
            model_version=verdict.model_version,
            flagged=list(verdict.flagged),
            status_from=status,
            status_to=values.get("status", status),
        )
    return pred_id


# Priority added by the first score: flagged items jump the unflagged backlog, and the NSFW
# signal orders within each band (0..NSFW_PRIORITY_SPAN).
FLAGGED_PRIORITY = 50
NSFW_PRIORITY_SPAN = 40


def scoring_priority(verdict: Verdict) -> int:
    """Queue priority earned by a verdict: flags first, then the NSFW signal."""
    boost = FLAGGED_PRIORITY if verdict.flagged else 0
    nsfw = verdict.signals.get("nsfw")
    if isinstance(nsfw, int | float) and 0.0 <= float(nsfw) <= 1.0:
        boost += round(float(nsfw) * NSFW_PRIORITY_SPAN)
    return boost


def _prediction_id(session: Session, item_id: int, verdict: Verdict) -> int | None:
    return session.scalar(
        select(Prediction.id).where(
            Prediction.item_id == item_id,
            Prediction.model_version == verdict.model_version,
            Prediction.policy_version == verdict.policy_version,
        )
    )


def require_live_lease(
    session: Session, item_id: int, holder: str, *, action: str, now: datetime | None = None
) -> Any:
    """The item's row (locked on PostgreSQL) when `holder` holds it under a live review lease.

    Every review action (decide, skip, escalate, reveal) goes through here: Conflict, with a
    one-line reason, for an item nobody holds, another reviewer holds, whose lease ran out,
    or that is already decided or escalated (changing those is an overrule, see
    storage.decisions.overrule_decision). NotFound for an item that does not exist.
    """
    item = require_item(session, item_id, for_update=True)
    check_live_lease(item, holder, action=action, now=now)
    return item


def check_live_lease(item: Any, holder: str, *, action: str, now: datetime | None = None) -> None:
    """`require_live_lease` on an item row already read (see `require_item`)."""
    now = _now(now)
    item_id = item.id
    if item.status in (ItemStatus.decided.value, ItemStatus.escalated.value):
        raise Conflict(
            f"cannot {action} item {item_id}: it is already {item.status}; only an admin or "
            "engineer can overrule it"
        )
    if item.lease_holder != holder or item.status != ItemStatus.in_review.value:
        whose = "another reviewer holds it" if item.lease_holder else "you do not hold it"
        raise Conflict(f"cannot {action} item {item_id}: {whose}; claim an item from the queue")
    if item.lease_expires_at is None or item.lease_expires_at <= now:
        raise Conflict(f"cannot {action} item {item_id}: your lease on it expired; claim it again")


def require_item(session: Session, item_id: int, *, for_update: bool = False) -> Any:
    stmt = select(
        ITEMS.c.id,
        ITEMS.c.status,
        ITEMS.c.lease_holder,
        ITEMS.c.lease_expires_at,
        ITEMS.c.lease_token,
        ITEMS.c.phash,
    ).where(ITEMS.c.id == item_id)
    if for_update and _dialect(session) == "postgresql":
        stmt = stmt.with_for_update()
    row = session.execute(stmt).first()
    if row is None:
        raise NotFound(f"item {item_id} does not exist")
    return row
