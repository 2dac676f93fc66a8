"""The decision ledger: append-only verdicts by moderators, annotators and imports.

A correction is a new row whose `supersedes_id` points at the row it replaces; no decision is
ever updated or deleted. The item's current decision is its newest row, unless that row is a
retraction. Recording a decision moves the item to decided (or escalated when a restricted
category such as child_safety is chosen), ends its lease, writes an audit event, and adds a
violating item's perceptual hash to the hash bank. Changing a decided or escalated item from
the workbench is `overrule_decision`: admins and engineers only, marked in the decision's meta
and by a `decision.overruled` audit event. Functions take a `Session` and never commit.

    with unit_of_work(engine) as s:
        d = record_decision(s, item_id=7, categories=["weapons"], source="moderator",
                            reviewer="alice", policy=policy, require_lease=True)
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from storage.audit import record_audit
from storage.domain import Decision, DecisionAction, DecisionSource, ItemStatus, Role
from storage.errors import Conflict, NotFound, PermissionDenied, WardenError
from storage.models import Decision as DecisionRow
from storage.models import HashBankEntry, Item, User, utcnow
from storage.policy import SAFE, Policy, PolicyError
from storage.queue import (
    clear_lease,
    close_open_claims,
    latest_decision_id,
    requeue_status,
    require_item,
    require_live_lease,
)

# Used only when the caller passes no policy: the default policy's restricted categories.
FALLBACK_RESTRICTED = frozenset({"child_safety"})


def decision_from_row(row: DecisionRow, username: str | None) -> Decision:
    return Decision(
        id=row.id,
        item_id=row.item_id,
        action=DecisionAction(row.action),
        categories=list(row.categories or []),
        source=DecisionSource(row.source),
        reviewer=username or row.reviewer_name,
        note=row.note,
        policy_version=row.policy_version,
        supersedes_id=row.supersedes_id,
        created_at=row.created_at,
        external_ref=row.external_ref,
    )


def select_decisions() -> Any:
    """SELECT decision rows with the reviewer's username (for `decision_from_row`)."""
    return select(DecisionRow, User.username).outerjoin(User, DecisionRow.reviewer_id == User.id)


def _one(session: Session, stmt: Any) -> Decision | None:
    row = session.execute(stmt).first()
    return None if row is None else decision_from_row(row[0], row[1])


def get_decision(session: Session, decision_id: int) -> Decision:
    d = _one(session, select_decisions().where(DecisionRow.id == decision_id))
    if d is None:
        raise NotFound(f"decision {decision_id} does not exist")
    return d


def _normalise(categories: list[str], policy: Policy | None) -> list[str]:
    if policy is not None:
        try:
            return policy.validate_labels(list(categories))
        except PolicyError as exc:
            raise WardenError(str(exc)) from exc
    out: list[str] = []
    for raw in categories:
        label = raw.strip().lower()
        if label and label != SAFE and label not in out:
            out.append(label)
    return sorted(out)


def _parse_source(source: DecisionSource | str) -> DecisionSource:
    try:
        return DecisionSource(source)
    except ValueError:
        known = ", ".join(s.value for s in DecisionSource)
        raise WardenError(f"unknown decision source {source!r}; known: {known}") from None


def record_decision(
    session: Session,
    *,
    item_id: int,
    categories: list[str],
    source: DecisionSource | str,
    reviewer: str | None = None,
    note: str | None = None,
    policy: Policy | None = None,
    policy_version: str | None = None,
    external_ref: str | None = None,
    supersedes: int | None | Literal["auto"] = "auto",
    action: DecisionAction = DecisionAction.label,
    meta: dict | None = None,
    require_lease: bool = False,
    now: datetime | None = None,
) -> Decision:
    """Append a decision for the item; see the module docstring for its effects.

    `reviewer` is a Warden username (stored as reviewer_id) or an outside identity (stored as
    reviewer_name). A replay with the same (source, external_ref) returns the stored decision.
    """
    now = now or utcnow()
    src = _parse_source(source)
    action = DecisionAction(action)
    if external_ref is not None:
        existing = _by_external_ref(session, src, external_ref)
        if existing is not None:
            return existing
    # Lock the item (PostgreSQL) so two concurrent decisions cannot supersede the same row.
    if require_lease:
        if reviewer is None:
            raise WardenError("a decision under a lease needs the reviewer's name")
        item = require_live_lease(session, item_id, reviewer, action="decide", now=now)
    else:
        item = require_item(session, item_id, for_update=True)
    labels = [] if action == DecisionAction.retract else _normalise(categories, policy)
    if supersedes == "auto":
        current = current_decision(session, item_id)
        supersedes_id = current.id if current is not None else None
    else:
        supersedes_id = supersedes
        if supersedes_id is not None:
            target = session.get(DecisionRow, supersedes_id)
            if target is None or target.item_id != item_id:
                raise WardenError(f"decision {supersedes_id} is not a decision of item {item_id}")
    reviewer_id = None
    reviewer_name = None
    if reviewer is not None:
        reviewer_id = session.scalar(select(User.id).where(User.username == reviewer))
        if reviewer_id is None:
            reviewer_name = reviewer
    row = DecisionRow(
        item_id=item_id,
        action=action.value,
        categories=labels,
        source=src.value,
        reviewer_id=reviewer_id,
        reviewer_name=reviewer_name,
        note=note,
        policy_version=policy_version or (policy.version if policy is not None else None),
        supersedes_id=supersedes_id,
        external_ref=external_ref,
        meta=dict(meta or {}),
        created_at=now,
    )
    if external_ref is None:
        session.add(row)
        session.flush()
    else:
        # A savepoint only where a unique-key race is possible: a concurrent replay of the
        # same outside decision (PostgreSQL; SQLite serialises writers).
        try:
            with session.begin_nested():
                session.add(row)
                session.flush()
        except IntegrityError:
            existing = _by_external_ref(session, src, external_ref)
            if existing is None:
                raise
            return existing

    restricted = policy.restricted_ids if policy is not None else FALLBACK_RESTRICTED
    if action == DecisionAction.retract:
        status = requeue_status(session, item_id)
        outcome = "released"
    elif set(labels) & restricted:
        status, outcome = ItemStatus.escalated.value, "escalated"
    else:
        status, outcome = ItemStatus.decided.value, "decided"
    clear_lease(session, item_id, status)
    close_open_claims(session, item_id, outcome, now)
    actor = reviewer or src.value
    record_audit(
        session,
        actor,
        "decision.retracted" if action == DecisionAction.retract else "decision.recorded",
        item_id,
        decision_id=row.id,
        categories=labels,
        source=src.value,
        supersedes_id=supersedes_id,
        status_from=item.status,
        status_to=status,
    )
    if action == DecisionAction.label and labels and item.phash:
        _bank_hash(session, item_id, item.phash, labels, actor)
    return decision_from_row(row, reviewer if reviewer_id is not None else None)


# Who may change an item that is already decided or escalated: admins, and engineers (audit).
OVERRULE_ROLES = frozenset({Role.admin, Role.engineer})
# Items whose review is over; changing them is an overrule.
CLOSED_STATUSES = (ItemStatus.decided.value, ItemStatus.escalated.value)


def user_role(session: Session, username: str | None) -> Role | None:
    """The role of an active Warden user; None for an unknown or disabled name."""
    if not username:
        return None
    row = session.execute(
        select(User.role, User.disabled).where(User.username == username.strip().lower())
    ).first()
    if row is None or row.disabled:
        return None
    return Role(row.role)


def overrule_decision(
    session: Session,
    *,
    item_id: int,
    categories: list[str],
    actor: str,
    note: str | None = None,
    policy: Policy | None = None,
    source: DecisionSource = DecisionSource.moderator,
    now: datetime | None = None,
    meta: dict | None = None,
) -> Decision:
    """Change a decided or escalated item: a new decision superseding the current one,
    recorded as an overrule (decision meta `overrule`, audit event `decision.overruled`).
    `meta` adds to the decision's meta (`resolution`, `accepted_model_suggestion`).

    Only OVERRULE_ROLES may (PermissionDenied otherwise, for moderators and annotators alike);
    an item still in the queue is decided by its reviewer under a lease, not overruled
    (Conflict).
    """
    role = user_role(session, actor)
    if role not in OVERRULE_ROLES:
        raise PermissionDenied(
            f"item {item_id} is already decided; only an admin or engineer can overrule it"
        )
    item = require_item(session, item_id, for_update=True)
    if item.status not in CLOSED_STATUSES:
        raise Conflict(
            f"item {item_id} is {item.status}, not decided: review it from the queue instead"
        )
    previous = current_decision(session, item_id)
    decision = record_decision(
        session,
        item_id=item_id,
        categories=categories,
        source=source,
        reviewer=actor,
        note=note,
        policy=policy,
        meta=dict(meta or {})
        | {
            "overrule": True,
            "role": role.value,
            "overrules_id": previous.id if previous is not None else None,
            "status_from": item.status,
        },
        now=now,
    )
    record_audit(
        session,
        actor,
        "decision.overruled",
        item_id,
        decision_id=decision.id,
        overrules_id=previous.id if previous is not None else None,
        role=role.value,
        categories=decision.categories,
        status_from=item.status,
    )
    return decision


def _bank_hash(session: Session, item_id: int, phash: str, labels: list[str], actor: str) -> None:
    entry = session.scalar(
        select(HashBankEntry).where(HashBankEntry.item_id == item_id, HashBankEntry.phash == phash)
    )
    if entry is None:
        session.add(HashBankEntry(phash=phash, item_id=item_id, categories=labels, added_by=actor))
        record_audit(session, actor, "hashbank.added", item_id, phash=phash, categories=labels)
    elif list(entry.categories or []) != labels:
        entry.categories = labels


def _by_external_ref(session: Session, source: DecisionSource, ref: str) -> Decision | None:
    return _one(
        session,
        select_decisions().where(
            DecisionRow.source == source.value, DecisionRow.external_ref == ref
        ),
    )


def current_decision(session: Session, item_id: int) -> Decision | None:
    """The item's newest decision; None if never decided or if the newest is a retraction."""
    d = _one(
        session,
        select_decisions()
        .where(DecisionRow.item_id == item_id)
        .order_by(DecisionRow.id.desc())
        .limit(1),
    )
    if d is None or d.action == DecisionAction.retract:
        return None
    return d


def decision_history(session: Session, item_id: int) -> list[Decision]:
    """Every decision row of the item, oldest first (corrections and retractions included)."""
    rows = session.execute(
        select_decisions().where(DecisionRow.item_id == item_id).order_by(DecisionRow.id)
    ).all()
    return [decision_from_row(r[0], r[1]) for r in rows]


def undo_last_decision(session: Session, reviewer: str) -> Decision:
    """Retract `reviewer`'s newest decision that is still current; the item returns to the
    queue. Returns the retraction row. NotFound when there is nothing to undo."""
    user_id = session.scalar(select(User.id).where(User.username == reviewer))
    who = (
        DecisionRow.reviewer_id == user_id
        if user_id is not None
        else (DecisionRow.reviewer_name == reviewer)
    )
    target = session.scalar(
        select(DecisionRow)
        .where(
            who,
            DecisionRow.action == DecisionAction.label.value,
            DecisionRow.id == latest_decision_id(DecisionRow.item_id),
        )
        .order_by(DecisionRow.id.desc())
        .limit(1)
    )
    if target is None:
        raise NotFound(f"{reviewer} has no current decision to undo")
    return record_decision(
        session,
        item_id=target.item_id,
        categories=[],
        source=target.source,
        reviewer=reviewer,
        note="undo",
        policy_version=target.policy_version,
        supersedes=target.id,
        action=DecisionAction.retract,
    )


def decided_item_ids(session: Session, since: datetime | None = None) -> list[int]:
    """Items whose current decision is a label (for exports and dataset building)."""
    stmt = (
        select(Item.id)
        .join(DecisionRow, DecisionRow.id == latest_decision_id())
        .where(DecisionRow.action == DecisionAction.label.value)
        .order_by(Item.id)
    )
    if since is not None:
        stmt = stmt.where(DecisionRow.created_at >= since)
    return list(session.scalars(stmt))
