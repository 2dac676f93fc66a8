"""Read models of items for the UI and CLI: one item with its blob, latest prediction and
current decision, filtered lists, and queue statistics.

Run: warden items list --status scored --json ; warden items show 42 ; warden stats
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from storage.decisions import decision_from_row, select_decisions
from storage.domain import Decision, DecisionAction, ItemStatus
from storage.errors import NotFound, WardenError
from storage.models import Blob, Item, Prediction, utcnow
from storage.models import Decision as DecisionRow
from storage.queue import (
    current_decision_has_any,
    latest_decision_id,
    latest_prediction_id,
    prediction_filter_clauses,
)


@dataclass(frozen=True)
class PredictionView:
    id: int
    model_version: str
    policy_version: str
    scores: dict[str, float]
    flagged: list[str]
    rationale: str | None
    ocr_text: str | None
    signals: dict[str, Any]
    latency_ms: float
    parse_ok: bool | None
    created_at: datetime

    @property
    def max_score(self) -> float:
        return max(self.scores.values(), default=0.0)


@dataclass(frozen=True)
class ItemView:
    """An item with its blob facts, its latest prediction and its current decision."""

    item_id: int
    status: ItemStatus
    priority: int
    source: str
    external_id: str | None
    filename: str | None
    text: str | None
    blob_sha256: str
    view_sha256: str | None
    width: int
    height: int
    mime: str
    size_bytes: int
    animated: bool
    phash: str | None
    near_duplicate_of_id: int | None
    near_duplicate_distance: int | None
    hashbank_match_id: int | None
    lease_holder: str | None
    lease_expires_at: datetime | None
    created_at: datetime
    updated_at: datetime
    meta: dict[str, Any]
    prediction: PredictionView | None = None
    decision: Decision | None = None

    @property
    def disagreement(self) -> bool:
        """The model's flags differ from the humans' current decision."""
        if self.prediction is None or self.decision is None:
            return False
        return set(self.prediction.flagged) != set(self.decision.categories)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (datetimes as ISO strings)."""
        p, d = self.prediction, self.decision
        out: dict[str, Any] = {
            k: getattr(self, k)
            for k in self.__dataclass_fields__
            if k not in ("prediction", "decision")
        }
        out["status"] = self.status.value
        for k in ("lease_expires_at", "created_at", "updated_at"):
            out[k] = _iso(out[k])
        out["prediction"] = (
            None
            if p is None
            else {
                "id": p.id,
                "model_version": p.model_version,
                "policy_version": p.policy_version,
                "scores": p.scores,
                "flagged": p.flagged,
                "rationale": p.rationale,
                "ocr_text": p.ocr_text,
                "signals": p.signals,
                "latency_ms": p.latency_ms,
                "parse_ok": p.parse_ok,
                "created_at": _iso(p.created_at),
            }
        )
        out["decision"] = None if d is None else decision_to_dict(d)
        out["disagreement"] = self.disagreement
        return out


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def decision_to_dict(d: Decision) -> dict[str, Any]:
    return {
        "id": d.id,
        "item_id": d.item_id,
        "action": d.action.value,
        "categories": d.categories,
        "source": d.source.value,
        "reviewer": d.reviewer,
        "note": d.note,
        "policy_version": d.policy_version,
        "supersedes_id": d.supersedes_id,
        "external_ref": d.external_ref,
        "created_at": _iso(d.created_at),
    }


def _prediction_view(p: Prediction) -> PredictionView:
    return PredictionView(
        id=p.id,
        model_version=p.model_version,
        policy_version=p.policy_version,
        scores={k: float(v) for k, v in (p.scores or {}).items()},
        flagged=list(p.flagged or []),
        rationale=p.rationale,
        ocr_text=p.ocr_text,
        signals=dict(p.signals or {}),
        latency_ms=float(p.latency_ms or 0.0),
        parse_ok=p.parse_ok,
        created_at=p.created_at,
    )


def _views(session: Session, rows: Sequence[tuple[Item, Blob]]) -> list[ItemView]:
    """Attach latest predictions and current decisions with two batched queries."""
    ids = [item.id for item, _ in rows]
    preds: dict[int, PredictionView] = {}
    decs: dict[int, Decision] = {}
    if ids:
        for p in session.scalars(
            select(Prediction).where(
                Prediction.item_id.in_(ids),
                Prediction.id == latest_prediction_id(Prediction.item_id),
            )
        ):
            preds[p.item_id] = _prediction_view(p)
        for row, username in session.execute(
            select_decisions().where(
                DecisionRow.item_id.in_(ids),
                DecisionRow.id == latest_decision_id(DecisionRow.item_id),
            )
        ):
            if row.action == DecisionAction.label.value:
                decs[row.item_id] = decision_from_row(row, username)
    out = []
    for item, blob in rows:
        out.append(
            ItemView(
                item_id=item.id,
                status=ItemStatus(item.status),
                priority=item.priority,
                source=item.source,
                external_id=item.external_id,
                filename=item.filename,
                text=item.text,
                blob_sha256=item.blob_sha256,
                view_sha256=item.view_sha256,
                width=blob.width,
                height=blob.height,
                mime=blob.mime,
                size_bytes=blob.size_bytes,
                animated=bool(item.animated),
                phash=item.phash,
                near_duplicate_of_id=item.near_duplicate_of_id,
                near_duplicate_distance=item.near_duplicate_distance,
                hashbank_match_id=item.hashbank_match_id,
                lease_holder=item.lease_holder,
                lease_expires_at=item.lease_expires_at,
                created_at=item.created_at,
                updated_at=item.updated_at,
                meta=dict(item.meta or {}),
                prediction=preds.get(item.id),
                decision=decs.get(item.id),
            )
        )
    return out


def _base_select() -> Any:
    # populate_existing: queue functions update items with Core statements in the same
    # session, so identity-mapped rows could otherwise be stale.
    return (
        select(Item, Blob)
        .join(Blob, Blob.sha256 == Item.blob_sha256)
        .execution_options(populate_existing=True)
    )


def get_item(session: Session, item_id: int) -> ItemView:
    row = session.execute(_base_select().where(Item.id == item_id)).first()
    if row is None:
        raise NotFound(f"item {item_id} does not exist")
    return _views(session, [(row[0], row[1])])[0]


def list_items(
    session: Session,
    *,
    status: str | Sequence[str] | None = None,
    source: str | None = None,
    categories: Sequence[str] = (),
    min_score: float | None = None,
    max_score: float | None = None,
    disagreement_only: bool = False,
    decided_categories: Sequence[str] = (),
    limit: int = 100,
    offset: int = 0,
    newest_first: bool = True,
) -> list[ItemView]:
    """Items matching every given filter.

    categories / min_score / max_score / disagreement_only look at the latest prediction (and
    the current decision); decided_categories at the current decision.
    """
    if limit < 0 or offset < 0:
        raise WardenError("limit and offset must not be negative")
    stmt = _base_select()
    if status:
        statuses = [status] if isinstance(status, str) else list(status)
        known = {s.value for s in ItemStatus}
        bad = [s for s in statuses if s not in known]
        if bad:
            raise WardenError(f"unknown status {bad[0]!r}; known: {', '.join(sorted(known))}")
        stmt = stmt.where(Item.status.in_(statuses))
    if source:
        stmt = stmt.where(Item.source == source)
    dialect = session.get_bind().dialect.name
    stmt = stmt.where(
        *prediction_filter_clauses(
            dialect,
            categories=tuple(categories),
            min_score=min_score,
            max_score=max_score,
            disagreement_only=disagreement_only,
        )
    )
    if decided_categories:
        stmt = stmt.where(current_decision_has_any(dialect, decided_categories))
    order = Item.id.desc() if newest_first else Item.id.asc()
    stmt = stmt.order_by(order).limit(limit).offset(offset)
    rows = [(r[0], r[1]) for r in session.execute(stmt)]
    return _views(session, rows)


def queue_stats(session: Session, now: datetime | None = None) -> dict[str, Any]:
    """Counts by status, current decisions by category and source, and backlog age."""
    now = now or utcnow()
    by_status = {s.value: 0 for s in ItemStatus}
    for status, n in session.execute(select(Item.status, func.count()).group_by(Item.status)):
        by_status[status] = int(n)
    open_statuses = [ItemStatus.queued.value, ItemStatus.scored.value]
    oldest = session.scalar(select(func.min(Item.created_at)).where(Item.status.in_(open_statuses)))
    if oldest is not None and oldest.tzinfo is None:
        oldest = oldest.replace(tzinfo=now.tzinfo)
    expired = session.scalar(
        select(func.count())
        .select_from(Item)
        .where(Item.status == ItemStatus.in_review.value, Item.lease_expires_at < now)
    )
    by_category: Counter[str] = Counter()
    by_source: Counter[str] = Counter()
    by_item_source: Counter[str] = Counter()
    current = session.execute(
        select(DecisionRow.categories, DecisionRow.source, Item.source)
        .join(Item, Item.id == DecisionRow.item_id)
        .where(
            DecisionRow.id == latest_decision_id(DecisionRow.item_id),
            DecisionRow.action == DecisionAction.label.value,
        )
    )
    n_current = 0
    for cats, dsource, isource in current:
        n_current += 1
        by_source[dsource] += 1
        by_item_source[isource] += 1
        for c in cats or ["safe"]:
            by_category[c] += 1
    return {
        "items": sum(by_status.values()),
        "by_status": by_status,
        "backlog": {
            "open": by_status[ItemStatus.queued.value] + by_status[ItemStatus.scored.value],
            "oldest_open_age_s": None if oldest is None else (now - oldest).total_seconds(),
            "in_review_expired": int(expired or 0),
        },
        "decisions": {
            "current": n_current,
            "rows": int(session.scalar(select(func.count()).select_from(DecisionRow)) or 0),
            "by_category": dict(by_category.most_common()),
            "by_decision_source": dict(by_source.most_common()),
            "by_item_source": dict(by_item_source.most_common()),
        },
    }


# --- The Queue tab's working list: filtered, sorted and paged in SQL ----------------------

# Sort keys the queue offers, each a column the database orders by (item id breaks ties).
QUEUE_SORTS: dict[str, Any] = {
    "priority": Item.priority,
    "created": Item.created_at,
    "item": Item.id,
    "status": Item.status,
    "source": Item.source,
    "held_by": Item.lease_holder,
}
MAX_QUEUE_PAGE = 500
OPEN_ITEM_STATUSES = (ItemStatus.queued.value, ItemStatus.scored.value, ItemStatus.in_review.value)
HeldFilter = Literal["any", "me", "nobody", "someone"]


@dataclass(frozen=True)
class QueueQuery:
    """What the Queue tab lists; all conditions apply together."""

    statuses: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()  # the latest prediction flags any of these
    source: str | None = None
    created_before: datetime | None = None  # "age": only items older than this
    min_priority: int | None = None
    held: HeldFilter = "any"  # "me" and "someone" mean a live lease
    held_by_me: str | None = None  # the username "me" stands for
    min_score: float | None = None
    max_score: float | None = None
    disagreement_only: bool = False


@dataclass(frozen=True)
class QueuePage:
    items: list[ItemView]
    offset: int
    has_more: bool


def _queue_where(session: Session, q: QueueQuery, now: datetime) -> list[Any]:
    where: list[Any] = []
    if q.statuses:
        known = {s.value for s in ItemStatus}
        bad = [s for s in q.statuses if s not in known]
        if bad:
            raise WardenError(f"unknown status {bad[0]!r}; known: {', '.join(sorted(known))}")
        where.append(Item.status.in_(list(q.statuses)))
    if q.source:
        where.append(Item.source == q.source)
    if q.created_before is not None:
        where.append(Item.created_at < q.created_before)
    if q.min_priority is not None:
        where.append(Item.priority >= q.min_priority)
    live = Item.lease_expires_at > now
    if q.held == "me":
        if not q.held_by_me:
            raise WardenError("held='me' needs the username it stands for")
        where += [Item.lease_holder == q.held_by_me, live]
    elif q.held == "someone":
        where += [Item.lease_holder.is_not(None), live]
    elif q.held == "nobody":
        where.append(or_(Item.lease_holder.is_(None), Item.lease_expires_at <= now))
    elif q.held != "any":
        raise WardenError(f"unknown held filter {q.held!r}; known: any, me, nobody, someone")
    where += prediction_filter_clauses(
        session.get_bind().dialect.name,
        categories=tuple(q.categories),
        min_score=q.min_score,
        max_score=q.max_score,
        disagreement_only=q.disagreement_only,
    )
    return where


def _queue_order(sort: str, descending: bool) -> list[Any]:
    if sort not in QUEUE_SORTS:
        raise WardenError(f"unknown sort {sort!r}; known: {', '.join(QUEUE_SORTS)}")
    col = QUEUE_SORTS[sort]
    if sort == "item":
        return [col.desc() if descending else col.asc()]
    # NULLs (no source, nobody holding) last either way; item id keeps pages stable.
    first = col.desc().nulls_last() if descending else col.asc().nulls_last()
    return [first, Item.id.desc() if descending else Item.id.asc()]


def list_queue_page(
    session: Session,
    query: QueueQuery | None = None,
    *,
    sort: str = "priority",
    descending: bool = True,
    limit: int = 50,
    offset: int = 0,
    now: datetime | None = None,
) -> QueuePage:
    """One page of the queue: filtered, sorted and paged by the database (`limit` at most
    MAX_QUEUE_PAGE rows), with each item's latest prediction and current decision."""
    if not 1 <= limit <= MAX_QUEUE_PAGE:
        raise WardenError(f"page size must be between 1 and {MAX_QUEUE_PAGE}, not {limit}")
    if offset < 0:
        raise WardenError("offset must not be negative")
    now = now or utcnow()
    stmt = (
        _base_select()
        .where(*_queue_where(session, query or QueueQuery(), now))
        .order_by(*_queue_order(sort, descending))
        .limit(limit + 1)
        .offset(offset)
    )
    rows = [(r[0], r[1]) for r in session.execute(stmt)]
    return QueuePage(items=_views(session, rows[:limit]), offset=offset, has_more=len(rows) > limit)


def queue_item_ids(
    session: Session,
    query: QueueQuery | None = None,
    *,
    sort: str = "priority",
    descending: bool = True,
    limit: int = 5000,
    now: datetime | None = None,
) -> list[int]:
    """Ids of the items `list_queue_page` would list, in its order (for bulk actions)."""
    now = now or utcnow()
    stmt = (
        select(Item.id)
        .where(*_queue_where(session, query or QueueQuery(), now))
        .order_by(*_queue_order(sort, descending))
        .limit(max(limit, 0))
    )
    return list(session.scalars(stmt))
