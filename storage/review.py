"""Review-session logic behind the workbench's Review and Queue tabs.

A moderator holds a *current* item and a prefetched *next* one (both claimed with a lease);
deciding, skipping or escalating the current item promotes the next. Reveals of blurred images
are audit events ('reveal'), which is also how each moderator's exposure is counted.
Every action on an item (decide, skip, escalate, reveal) needs the caller's live lease on it
(`queue.require_live_lease`); an item with a restricted category is revealed only to the roles
its policy `reveal_roles` names; changing a decided or escalated item is an `overrule`, by an
admin or engineer only.
Escalated items form their own stream for admins and engineers (`escalated_window`): one is
claimed under a lease like a queue item (status stays escalated), revealed where the policy
allows, and resolved with `resolve_escalated`, an overrule.
A decision that takes the model's flags as they are (the Review tab's accept key) is marked
in its meta (`accepted_model_suggestion`), so agreement metrics can tell it from one chosen
independently.
Plain functions over a `Session` (the caller owns the unit of work), so the UI, the CLI and
tests call the same code.

    with unit_of_work(engine) as s:
        current, nxt = claim_pair(s, "alice", policy, blur_nsfw_threshold=0.4)
        submit(s, "alice", current.item_id, ["scam_fraud"], note=None, policy=policy)
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import and_, exists, func, or_, select, update
from sqlalchemy.orm import Session, aliased

from storage import decisions as decisions_repo
from storage import queue as queue_repo
from storage.audit import record_audit
from storage.domain import ClaimedItem, Decision, DecisionSource, ItemStatus
from storage.errors import Conflict, NotFound, PermissionDenied, WardenError
from storage.models import AuditEvent, Claim, Item, Prediction, User, utcnow
from storage.models import Decision as DecisionRow
from storage.policy import Policy


@dataclass(frozen=True)
class ReviewCard:
    """Everything the Review tab shows for one item (all text is untrusted user content)."""

    item_id: int
    status: str
    filename: str | None
    source: str | None
    text: str | None
    priority: int
    lease_expires_at: datetime | None
    scored: bool
    scores: dict[str, float] = field(default_factory=dict)
    flagged: list[str] = field(default_factory=list)
    rationale: str | None = None
    ocr_text: str | None = None
    # The OCR text as the model's reader (model.reading) read it, where that differs.
    ocr_read_as: str | None = None
    model_version: str | None = None
    nsfw: float | None = None
    # Blurred by default: a `blur` category or the NSFW signal is over its level, or the item
    # has no score yet (unknown content is treated as possibly harmful).
    blur: bool = True
    # Why it is blurred, in words ("violence_gore 0.91 · NSFW 0.80", "not scored yet").
    blur_reason: str = ""
    # A category the policy marks graphic (blur or restricted) is over its threshold: the OCR
    # text follows the image's rule and stays hidden until revealed.
    graphic: list[str] = field(default_factory=list)
    # The model's descriptions of the item's media (model.describe's record; None when the
    # prediction has none). Model output: untrusted text like the rest.
    description: dict[str, Any] | None = None
    # Where on the item's images the evidence sits (model.regions / model.grounding records;
    # app.evidence_overlay validates them before drawing). [] for older predictions.
    regions: list[Any] = field(default_factory=list)


@dataclass(frozen=True)
class Exposure:
    reveals_total: int
    reveals_today: int


def _latest_predictions(session: Session, item_ids: Sequence[int]) -> dict[int, Prediction]:
    if not item_ids:
        return {}
    latest = (
        select(Prediction.item_id, func.max(Prediction.id).label("pid"))
        .where(Prediction.item_id.in_(list(item_ids)))
        .group_by(Prediction.item_id)
        .subquery()
    )
    rows = session.scalars(select(Prediction).join(latest, Prediction.id == latest.c.pid)).all()
    return {p.item_id: p for p in rows}


def should_blur(
    policy: Policy,
    scores: dict[str, float],
    nsfw: float | None,
    *,
    scored: bool,
    blur_nsfw_threshold: float,
) -> bool:
    if not scored:
        return True
    if nsfw is not None and nsfw >= blur_nsfw_threshold:
        return True
    # A restricted category is always blurred: reveal is where its reveal_roles are enforced.
    return bool(graphic_categories(policy, scores))


def graphic_categories(policy: Policy, scores: dict[str, float]) -> list[str]:
    """Categories the policy marks graphic (blur or restricted) that are over their threshold."""
    return [
        c.id
        for c in policy.categories
        if (c.blur or c.restricted) and scores.get(c.id, 0.0) >= c.threshold
    ]


def blur_reason(
    policy: Policy,
    scores: dict[str, float],
    nsfw: float | None,
    *,
    scored: bool,
    blur_nsfw_threshold: float,
) -> str:
    """Why `should_blur` blurs, in one line; "" when it does not."""
    if not scored:
        return "not scored yet"
    parts = [f"{c} {scores[c]:.2f}" for c in graphic_categories(policy, scores)]
    if nsfw is not None and nsfw >= blur_nsfw_threshold:
        parts.append(f"NSFW {nsfw:.2f}")
    return " · ".join(parts)


def build_cards(
    session: Session, item_ids: Sequence[int], policy: Policy, *, blur_nsfw_threshold: float
) -> dict[int, ReviewCard]:
    items = session.scalars(select(Item).where(Item.id.in_(list(item_ids)))).all()
    preds = _latest_predictions(session, [i.id for i in items])
    cards: dict[int, ReviewCard] = {}
    for it in items:
        p = preds.get(it.id)
        scores = {k: float(v) for k, v in (p.scores or {}).items()} if p else {}
        signals = (p.signals or {}) if p else {}
        nsfw_raw = signals.get("nsfw")
        nsfw = float(nsfw_raw) if isinstance(nsfw_raw, int | float) else None
        blur = should_blur(
            policy, scores, nsfw, scored=p is not None, blur_nsfw_threshold=blur_nsfw_threshold
        )
        cards[it.id] = ReviewCard(
            item_id=it.id,
            status=it.status,
            filename=it.filename,
            source=it.source,
            text=it.text,
            priority=it.priority,
            lease_expires_at=it.lease_expires_at,
            scored=p is not None,
            scores=scores,
            flagged=list(p.flagged or []) if p else [],
            rationale=p.rationale if p else None,
            ocr_text=(p.ocr_text if p else None) or _signal_text(signals),
            ocr_read_as=_signal_text(signals, "ocr_read_as"),
            model_version=p.model_version if p else None,
            nsfw=nsfw,
            blur=blur,
            blur_reason=blur_reason(
                policy, scores, nsfw, scored=p is not None, blur_nsfw_threshold=blur_nsfw_threshold
            )
            if blur
            else "",
            graphic=graphic_categories(policy, scores) if blur else [],
            description=d if isinstance(d := signals.get("description"), dict) else None,
            regions=r if isinstance(r := signals.get("evidence_regions"), list) else [],
        )
    return cards


def _signal_text(signals: dict, key: str = "ocr_text") -> str | None:
    value = signals.get(key)
    return value if isinstance(value, str) else None


def build_card(
    session: Session, item_id: int, policy: Policy, *, blur_nsfw_threshold: float
) -> ReviewCard:
    cards = build_cards(session, [item_id], policy, blur_nsfw_threshold=blur_nsfw_threshold)
    if item_id not in cards:
        raise NotFound(f"item {item_id} does not exist")
    return cards[item_id]


def claim_window(
    session: Session,
    reviewer: str,
    policy: Policy,
    *,
    blur_nsfw_threshold: float,
    size: int = 3,
    keep: int | None = None,
    exclude: Sequence[int] = (),
    filters: queue_repo.QueueFilters | None = None,
    lease_s: int = 600,
) -> list[ReviewCard]:
    """The reviewer's current item followed by up to `size - 1` prefetched ones, reusing the
    items they already hold before claiming more.

    `keep`: the item the browser already shows; it stays current if still held. `exclude`:
    items just acted on (a decision may still be in flight), never handed out again here.
    """
    held = [
        c
        for c in queue_repo.held_items(session, reviewer)
        if c.status == ItemStatus.in_review and c.item_id not in exclude
    ]
    held.sort(key=lambda c: (-c.priority, c.item_id))
    order: list[int] = []
    if keep is not None and any(c.item_id == keep for c in held):
        order.append(keep)
    order += [c.item_id for c in held if c.item_id not in order]
    while len(order) < size:
        claimed: ClaimedItem | None = queue_repo.claim_next(
            session, reviewer, filters, lease_s=lease_s
        )
        if claimed is None:
            break
        if claimed.item_id in order or claimed.item_id in exclude:
            continue
        order.append(claimed.item_id)
    order = order[:size]
    cards = build_cards(session, order, policy, blur_nsfw_threshold=blur_nsfw_threshold)
    return [cards[i] for i in order if i in cards]


def claim_pair(
    session: Session,
    reviewer: str,
    policy: Policy,
    *,
    blur_nsfw_threshold: float,
    keep: int | None = None,
    exclude: Sequence[int] = (),
    filters: queue_repo.QueueFilters | None = None,
    lease_s: int = 600,
) -> tuple[ReviewCard | None, ReviewCard | None]:
    """`claim_window` of two: (current, prefetched next); None where the queue ran dry."""
    cards = claim_window(
        session,
        reviewer,
        policy,
        blur_nsfw_threshold=blur_nsfw_threshold,
        size=2,
        keep=keep,
        exclude=exclude,
        filters=filters,
        lease_s=lease_s,
    )
    return (cards[0] if cards else None, cards[1] if len(cards) > 1 else None)


def submit(
    session: Session,
    reviewer: str,
    item_id: int,
    categories: list[str],
    *,
    note: str | None,
    policy: Policy,
    accepted_suggestion: bool = False,
    prefilled: bool = False,
) -> Decision:
    """Record the reviewer's decision; they must hold the item's live lease.

    `accepted_suggestion`: the reviewer took the model's flags as they are (one key); the
    decision's meta says so, and only when `categories` are the latest prediction's flags
    (Conflict otherwise: the suggestion changed under the reviewer). `prefilled`: the card
    opened with the model's flags checked; a decision equal to them is marked
    `prefilled_model_flags` (not chosen independently either)."""
    labels = policy.validate_labels(list(categories))
    if accepted_suggestion:
        meta: dict | None = _accept_meta(session, item_id, labels)
    else:
        meta = _prefill_meta(session, item_id, labels) if prefilled else None
    return decisions_repo.record_decision(
        session,
        item_id=item_id,
        categories=labels,
        source=DecisionSource.moderator,
        reviewer=reviewer,
        note=(note or "").strip() or None,
        policy=policy,
        require_lease=True,
        meta=meta,
    )


def _prefill_meta(session: Session, item_id: int, labels: list[str]) -> dict | None:
    pred = _latest_predictions(session, [item_id]).get(item_id)
    if pred is None or sorted(pred.flagged or []) != sorted(labels):
        return None
    return {"prefilled_model_flags": True, "model_version": pred.model_version}


def _accept_meta(session: Session, item_id: int, labels: list[str]) -> dict:
    pred = _latest_predictions(session, [item_id]).get(item_id)
    if pred is None:
        raise Conflict(f"item {item_id} has no model suggestion to accept")
    if sorted(pred.flagged or []) != sorted(labels):
        now_flagged = ", ".join(pred.flagged or []) or "safe"
        raise Conflict(
            f"item {item_id}: the model's suggestion is now {now_flagged}; look again first"
        )
    return {"accepted_model_suggestion": True, "model_version": pred.model_version}


def skip(session: Session, reviewer: str, item_id: int) -> None:
    """Give back an item `reviewer` holds under a live lease (Conflict otherwise)."""
    queue_repo.release(session, item_id, reviewer, reason="skip")


def escalate(session: Session, reviewer: str, item_id: int, *, note: str | None) -> None:
    """Escalate an item `reviewer` holds under a live lease (Conflict otherwise)."""
    queue_repo.escalate(session, item_id, reviewer, note=(note or "").strip() or None)


def overrule(
    session: Session,
    actor: str,
    item_id: int,
    categories: list[str],
    *,
    note: str | None,
    policy: Policy,
) -> Decision:
    """Change a decided or escalated item (admins and engineers only), recorded as an overrule."""
    return decisions_repo.overrule_decision(
        session,
        item_id=item_id,
        categories=list(categories),
        actor=actor,
        note=(note or "").strip() or None,
        policy=policy,
    )


# --- The escalated stream (admins and engineers) -----------------------------------------


def _require_escalation_role(session: Session, actor: str) -> None:
    if decisions_repo.user_role(session, actor) not in decisions_repo.OVERRULE_ROLES:
        raise PermissionDenied("escalated items are reviewed by admins and engineers only")


def _unresolved_escalations(now: datetime, *, free_only: bool = True) -> list:
    """WHERE clauses: escalated items not yet resolved (their newest decision is not a label by
    an admin or engineer: a resolution with a restricted label keeps the status escalated)."""
    d = aliased(DecisionRow)
    newest = aliased(DecisionRow)
    roles = [r.value for r in decisions_repo.OVERRULE_ROLES]
    resolved = exists(
        select(d.id)
        .join(User, User.id == d.reviewer_id)
        .where(
            d.item_id == Item.id,
            d.action == "label",
            User.role.in_(roles),
            d.id == select(func.max(newest.id)).where(newest.item_id == Item.id).scalar_subquery(),
        )
    )
    where = [Item.status == ItemStatus.escalated.value, ~resolved]
    if free_only:
        where.append(or_(Item.lease_holder.is_(None), Item.lease_expires_at <= now))
    return where


def pending_escalations(session: Session) -> int:
    """Escalated items nobody has resolved yet (held or not)."""
    where = _unresolved_escalations(utcnow(), free_only=False)
    return int(session.scalar(select(func.count(Item.id)).where(*where)) or 0)


def claim_escalated(
    session: Session, actor: str, *, lease_s: int = 600, exclude: Sequence[int] = ()
) -> int | None:
    """Claim the next unresolved escalated item for `actor` (admin or engineer) under a lease;
    its status stays escalated. None when there is none."""
    _require_escalation_role(session, actor)
    for _ in range(5):  # another admin may take the picked row first
        now = utcnow()
        pick = (
            select(Item.id)
            .where(*_unresolved_escalations(now))
            .order_by(Item.priority.desc(), Item.created_at.asc(), Item.id.asc())
            .limit(1)
        )
        if exclude:
            pick = pick.where(Item.id.not_in(list(exclude)))
        if session.get_bind().dialect.name == "postgresql":
            pick = pick.with_for_update(skip_locked=True)
        item_id = session.scalar(pick)
        if item_id is None:
            return None
        token = str(uuid.uuid4())
        expires = now + timedelta(seconds=lease_s)
        taken = session.execute(
            update(Item)
            .where(
                Item.id == item_id,
                Item.status == ItemStatus.escalated.value,
                or_(Item.lease_holder.is_(None), Item.lease_expires_at <= now),
            )
            .values(lease_holder=actor, lease_expires_at=expires, lease_token=token)
            .execution_options(synchronize_session=False)
        )
        if taken.rowcount != 1:  # type: ignore[attr-defined]
            continue
        queue_repo.close_open_claims(session, item_id, "expired", now)
        session.add(
            Claim(
                item_id=item_id,
                holder=actor,
                kind="escalation",
                token=token,
                claimed_at=now,
                expires_at=expires,
            )
        )
        record_audit(session, actor, "escalation.claimed", item_id, lease_s=lease_s)
        session.flush()
        return item_id
    return None


def require_escalation_lease(session: Session, actor: str, item_id: int, *, action: str) -> None:
    """Conflict unless `actor` holds the escalated item under a live lease."""
    item = queue_repo.require_item(session, item_id, for_update=True)
    if item.status != ItemStatus.escalated.value:
        raise Conflict(f"cannot {action} item {item_id}: it is {item.status}, not escalated")
    if item.lease_holder != actor:
        whose = "someone else holds it" if item.lease_holder else "you do not hold it"
        raise Conflict(
            f"cannot {action} item {item_id}: it is already escalated and {whose}; admins and "
            "engineers work it from the Escalated stream"
        )
    if item.lease_expires_at is None or item.lease_expires_at <= utcnow():
        raise Conflict(f"cannot {action} item {item_id}: your lease on it expired")


def escalated_window(
    session: Session,
    actor: str,
    policy: Policy,
    *,
    blur_nsfw_threshold: float,
    size: int = 3,
    keep: int | None = None,
    exclude: Sequence[int] = (),
    lease_s: int = 600,
) -> list[ReviewCard]:
    """`claim_window` over the escalated stream: the escalated items `actor` holds, then newly
    claimed ones, up to `size`."""
    _require_escalation_role(session, actor)
    now = utcnow()
    held = session.scalars(
        select(Item.id)
        .where(
            Item.lease_holder == actor,
            Item.lease_expires_at > now,
            *_unresolved_escalations(now, free_only=False),
        )
        .order_by(Item.priority.desc(), Item.id.asc())
    ).all()
    order = [keep] if keep is not None and keep in held and keep not in exclude else []
    order += [i for i in held if i not in order and i not in exclude]
    while len(order) < size:
        claimed = claim_escalated(session, actor, lease_s=lease_s, exclude=[*order, *exclude])
        if claimed is None:
            break
        order.append(claimed)
    cards = build_cards(session, order[:size], policy, blur_nsfw_threshold=blur_nsfw_threshold)
    return [cards[i] for i in order[:size] if i in cards]


def resolve_escalated(
    session: Session,
    actor: str,
    item_id: int,
    categories: list[str],
    *,
    note: str | None,
    policy: Policy,
    accepted_suggestion: bool = False,
) -> Decision:
    """Resolve an escalated item `actor` holds: an overrule (decision meta `overrule`,
    `resolution`), which ends the lease and takes the item out of the escalated stream."""
    require_escalation_lease(session, actor, item_id, action="resolve")
    labels = policy.validate_labels(list(categories))
    meta = {"resolution": True}
    if accepted_suggestion:
        meta |= _accept_meta(session, item_id, labels)
    return decisions_repo.overrule_decision(
        session,
        item_id=item_id,
        categories=labels,
        actor=actor,
        note=(note or "").strip() or None,
        policy=policy,
        meta=meta,
    )


def release_escalated(session: Session, actor: str, item_id: int) -> None:
    """Give back an escalated item `actor` holds (skip): it stays escalated for the next one."""
    require_escalation_lease(session, actor, item_id, action="skip")
    queue_repo.clear_lease(session, item_id)
    queue_repo.close_open_claims(session, item_id, "released", utcnow())
    record_audit(session, actor, "escalation.released", item_id)


def is_escalated(session: Session, item_id: int) -> bool:
    return session.scalar(select(Item.status).where(Item.id == item_id)) == "escalated"


def undo(session: Session, reviewer: str) -> Decision:
    return decisions_repo.undo_last_decision(session, reviewer)


def require_held(session: Session, reviewer: str, item_id: int, *, action: str = "show") -> None:
    """Conflict unless `reviewer` holds the item under a live lease (image re-renders)."""
    _require_lease(session, reviewer, item_id, action=action)


def _require_lease(session: Session, reviewer: str, item_id: int, *, action: str) -> None:
    # An escalated item is held under an escalation lease (admins and engineers).
    if is_escalated(session, item_id):
        require_escalation_lease(session, reviewer, item_id, action=action)
    else:
        queue_repo.require_live_lease(session, item_id, reviewer, action=action)


def restricted_categories(session: Session, item_id: int, policy: Policy) -> list[str]:
    """Restricted categories the item's latest prediction flags or its current decision labels."""
    restricted = policy.restricted_ids
    found: set[str] = set()
    pred = _latest_predictions(session, [item_id]).get(item_id)
    if pred is not None:
        found |= set(pred.flagged or []) & restricted
    current = decisions_repo.current_decision(session, item_id)
    if current is not None:
        found |= set(current.categories) & restricted
    return [c for c in policy.ids if c in found]


def reveal(session: Session, reviewer: str, item_id: int, *, policy: Policy) -> Exposure:
    """Record that `reviewer` looked at the unblurred image; returns their exposure so far.

    Only an item `reviewer` holds under a live lease (Conflict otherwise), and one with a
    restricted category only for the roles its policy `reveal_roles` names (PermissionDenied
    otherwise). A refusal rolls back with the caller's unit of work: record it with
    `record_refusal` in a unit of its own.
    """
    check_reveal(session, reviewer, item_id, policy=policy)
    record_audit(session, reviewer, "reveal", item_id=item_id)
    session.flush()
    return exposure(session, reviewer)


def check_reveal(session: Session, reviewer: str, item_id: int, *, policy: Policy) -> None:
    """The checks of `reveal` (live lease, restricted roles) without recording anything."""
    _require_lease(session, reviewer, item_id, action="reveal")
    restricted = restricted_categories(session, item_id, policy)
    if restricted:
        role = decisions_repo.user_role(session, reviewer)
        if role is None or role.value not in policy.reveal_roles_for(restricted):
            allowed = ", ".join(sorted(policy.reveal_roles_for(restricted))) or "no role"
            raise PermissionDenied(
                f"item {item_id} is restricted ({', '.join(restricted)}): only {allowed} "
                "may reveal it"
            )


def record_refusal(
    session: Session, actor: str, action: str, item_id: int | None, reason: str
) -> None:
    """Audit a refused review action (`reveal.refused`, `escalate.refused`, ...)."""
    record_audit(session, actor, f"{action}.refused", item_id=item_id, reason=reason[:500])


def exposure(session: Session, reviewer: str, now: datetime | None = None) -> Exposure:
    now = now or datetime.now(UTC)
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    base = select(func.count(AuditEvent.id)).where(
        AuditEvent.actor == reviewer, AuditEvent.action == "reveal"
    )
    total = session.scalar(base) or 0
    today = session.scalar(base.where(AuditEvent.at >= midnight)) or 0
    return Exposure(reveals_total=int(total), reveals_today=int(today))


def release_all(session: Session, reviewer: str) -> int:
    """Give back every item the reviewer holds (Queue tab: 'release my items')."""
    held = queue_repo.held_items(session, reviewer)
    for c in held:
        queue_repo.release(session, c.item_id, reviewer, reason="release")
    return len(held)


# --- Queue listing and bulk actions -------------------------------------------------------


@dataclass(frozen=True)
class QueueRow:
    item_id: int
    status: str
    source: str | None
    filename: str | None
    priority: int
    created_at: datetime
    max_score: float | None
    flagged: list[str]
    decision: list[str] | None  # None: no current decision; [] = safe
    reviewer: str | None
    lease_holder: str | None


def _current_decisions(session: Session, item_ids: Sequence[int]) -> dict[int, DecisionRow]:
    """Current (not superseded, not retracted) decision per item."""
    if not item_ids:
        return {}
    superseding = select(DecisionRow.supersedes_id).where(DecisionRow.supersedes_id.is_not(None))
    rows = session.scalars(
        select(DecisionRow)
        .where(DecisionRow.item_id.in_(list(item_ids)), DecisionRow.id.not_in(superseding))
        .order_by(DecisionRow.id)
    ).all()
    out: dict[int, DecisionRow] = {}
    for d in rows:
        out[d.item_id] = d  # newest wins if two heads exist
    return {k: v for k, v in out.items() if v.action == "label"}


def list_queue(
    session: Session,
    *,
    status: str | None = None,
    categories: Sequence[str] = (),
    source: str | None = None,
    min_score: float | None = None,
    max_score: float | None = None,
    disagreement_only: bool = False,
    limit: int = 200,
    scan_limit: int = 20_000,
) -> list[QueueRow]:
    """Items matching the filters, highest priority then newest first.

    Category, score and disagreement filters need each item's latest prediction and current
    decision; they are applied in Python over at most `scan_limit` candidate rows.
    """
    from storage.models import User

    stmt = select(Item).order_by(Item.priority.desc(), Item.id.desc())
    if status:
        stmt = stmt.where(Item.status == status)
    if source:
        stmt = stmt.where(Item.source == source)
    needs_scan = bool(categories) or min_score is not None or max_score is not None
    needs_scan = needs_scan or disagreement_only
    stmt = stmt.limit(scan_limit if needs_scan else limit)
    items = session.scalars(stmt).all()
    ids = [i.id for i in items]
    preds = _latest_predictions(session, ids)
    decs = _current_decisions(session, ids)
    user_names = dict(session.execute(select(User.id, User.username)).all())
    wanted = set(categories)
    rows: list[QueueRow] = []
    for it in items:
        p = preds.get(it.id)
        scores = [float(v) for v in (p.scores or {}).values()] if p else []
        top = max(scores) if scores else None
        flagged = list(p.flagged or []) if p else []
        d = decs.get(it.id)
        dec = sorted(d.categories or []) if d else None
        if wanted and not wanted & set(flagged):
            continue
        if min_score is not None and (top is None or top < min_score):
            continue
        if max_score is not None and (top is None or top > max_score):
            continue
        if disagreement_only and (p is None or dec is None or sorted(flagged) == dec):
            continue
        reviewer = None
        if d is not None:
            reviewer = user_names.get(d.reviewer_id) if d.reviewer_id else d.reviewer_name
        rows.append(
            QueueRow(
                item_id=it.id,
                status=it.status,
                source=it.source,
                filename=it.filename,
                priority=it.priority,
                created_at=it.created_at,
                max_score=top,
                flagged=flagged,
                decision=dec,
                reviewer=reviewer,
                lease_holder=it.lease_holder,
            )
        )
        if len(rows) >= limit:
            break
    return rows


def bulk_decide(
    session: Session,
    actor: str,
    item_ids: Sequence[int],
    categories: list[str],
    *,
    note: str | None,
    policy: Policy,
) -> list[Decision]:
    """One decision per item (source=bulk), each superseding the item's current decision.

    Admins and engineers only (PermissionDenied otherwise); on an item already decided or
    escalated the decision is recorded as an overrule."""
    if decisions_repo.user_role(session, actor) not in decisions_repo.OVERRULE_ROLES:
        raise PermissionDenied("bulk decisions are for admins and engineers only")
    labels = policy.validate_labels(list(categories))
    unique = list(dict.fromkeys(int(i) for i in item_ids))
    if not unique:
        raise WardenError("no items selected for the bulk action")
    found = dict(session.execute(select(Item.id, Item.status).where(Item.id.in_(unique))).all())
    missing = [i for i in unique if i not in found]
    if missing:
        raise NotFound(f"items do not exist: {', '.join(map(str, missing[:10]))}")
    text = (note or "").strip() or None
    out = [
        decisions_repo.overrule_decision(
            session,
            item_id=i,
            categories=labels,
            actor=actor,
            note=text,
            policy=policy,
            source=DecisionSource.bulk,
        )
        if found[i] in decisions_repo.CLOSED_STATUSES
        else decisions_repo.record_decision(
            session,
            item_id=i,
            categories=labels,
            source=DecisionSource.bulk,
            reviewer=actor,
            note=text,
            policy=policy,
        )
        for i in unique
    ]
    record_audit(session, actor, "bulk_decide", count=len(out), categories=labels)
    return out


def recent_reveals(session: Session, since: timedelta) -> dict[str, int]:
    """Reveals per actor over the last `since` (dashboard exposure)."""
    cutoff = datetime.now(UTC) - since
    rows = session.execute(
        select(AuditEvent.actor, func.count(AuditEvent.id))
        .where(and_(AuditEvent.action == "reveal", AuditEvent.at >= cutoff))
        .group_by(AuditEvent.actor)
    ).all()
    return {a: int(n) for a, n in rows}


__all__ = [
    "Exposure",
    "QueueRow",
    "ReviewCard",
    "build_card",
    "build_cards",
    "bulk_decide",
    "claim_escalated",
    "claim_pair",
    "claim_window",
    "escalate",
    "escalated_window",
    "exposure",
    "list_queue",
    "overrule",
    "pending_escalations",
    "recent_reveals",
    "record_refusal",
    "release_all",
    "release_escalated",
    "require_escalation_lease",
    "require_held",
    "resolve_escalated",
    "restricted_categories",
    "reveal",
    "should_blur",
    "skip",
    "submit",
    "undo",
]
