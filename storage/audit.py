"""The audit trail: one event per state change, decision, reveal and admin action.

Repositories call `record_audit` inside the caller's unit of work, so the event commits (or
rolls back) together with the change it describes.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from storage.models import AuditEvent


def record_audit(
    session: Session,
    actor: str,
    action: str,
    item_id: int | None = None,
    **details: Any,
) -> AuditEvent:
    event = AuditEvent(actor=actor, action=action, item_id=item_id, details=details)
    session.add(event)
    return event


def list_audit(
    session: Session,
    *,
    limit: int = 50,
    actor: str | None = None,
    action: str | None = None,
    item_id: int | None = None,
    since: datetime | None = None,
    search: str | None = None,
) -> Sequence[AuditEvent]:
    """Newest first, filtered; `search` matches actor or action substrings."""
    stmt = select(AuditEvent).order_by(AuditEvent.id.desc()).limit(limit)
    if actor:
        stmt = stmt.where(AuditEvent.actor == actor)
    if action:
        stmt = stmt.where(AuditEvent.action == action)
    if item_id is not None:
        stmt = stmt.where(AuditEvent.item_id == item_id)
    if since is not None:
        stmt = stmt.where(AuditEvent.at >= since)
    if search:
        pattern = f"%{search}%"
        stmt = stmt.where(AuditEvent.actor.ilike(pattern) | AuditEvent.action.ilike(pattern))
    return session.scalars(stmt).all()


def get_audit_event(session: Session, event_id: int) -> AuditEvent | None:
    """One event by id (the Audit tab's full-JSON view); None when there is none."""
    return session.get(AuditEvent, event_id)
