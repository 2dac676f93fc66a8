"""Server-side login sessions: start one at login, look it up on every request, end it.

The browser's cookie carries a random session id, signed (storage.signing); the `sessions`
table holds only the id's SHA-256. Every request in every server process looks the row up (one
primary-key read joined to its user), so ending a session here takes effect everywhere at once:
no process keeps a cache that outlives a logout. Functions take a `Session` and never commit.

    sid = start_session(s, user_id, ttl_s=43200)
    user = session_user(s, sid)          # None once ended, expired, or the user is disabled
    end_session(s, sid, why="logout")
    end_user_sessions(s, user_id, why="password_changed")
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, delete, select, update
from sqlalchemy.orm import Session

from storage.models import LoginSession, User


@dataclass(frozen=True)
class SessionUser:
    username: str
    role: str


def hash_session_id(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


def start_session(
    session: Session, user_id: int, *, ttl_s: int, now: datetime | None = None
) -> str:
    """A new session for the user; returns the random id the cookie carries."""
    now = now or datetime.now(UTC)
    # The user's long-expired rows go here, so the table holds about one row per live login.
    session.execute(
        delete(LoginSession).where(LoginSession.user_id == user_id, LoginSession.expires_at < now)
    )
    session_id = secrets.token_urlsafe(32)
    session.add(
        LoginSession(
            id_hash=hash_session_id(session_id),
            user_id=user_id,
            created_at=now,
            expires_at=now + timedelta(seconds=ttl_s),
        )
    )
    return session_id


def session_user(
    session: Session, session_id: str, *, now: datetime | None = None
) -> SessionUser | None:
    """The enabled user behind a live session, or None (unknown, ended, expired, disabled)."""
    now = now or datetime.now(UTC)
    row = session.execute(
        select(User.username, User.role)
        .join(LoginSession, LoginSession.user_id == User.id)
        .where(
            LoginSession.id_hash == hash_session_id(session_id),
            LoginSession.ended_at.is_(None),
            LoginSession.expires_at > now,
            User.disabled.is_(False),
        )
    ).first()
    return SessionUser(row.username, row.role) if row is not None else None


def end_session(session: Session, session_id: str, *, why: str) -> bool:
    """End one session (logout); False if it was already over or never existed."""
    result = session.execute(
        update(LoginSession)
        .where(
            LoginSession.id_hash == hash_session_id(session_id),
            LoginSession.ended_at.is_(None),
        )
        .values(ended_at=datetime.now(UTC), ended_why=why[:32])
    )
    return bool(cast(CursorResult[Any], result).rowcount)


def end_user_sessions(session: Session, user_id: int, *, why: str) -> int:
    """End every open session of the user (password or role change, disabling); how many."""
    result = session.execute(
        update(LoginSession)
        .where(LoginSession.user_id == user_id, LoginSession.ended_at.is_(None))
        .values(ended_at=datetime.now(UTC), ended_why=why[:32])
    )
    return int(cast(CursorResult[Any], result).rowcount or 0)
