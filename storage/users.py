"""Warden users: moderators, annotators, engineers and admins, with argon2id password hashes.

Functions take a `Session` and never commit; every change writes an audit event.

Run: warden users add alice --role moderator   (prompts for the password)
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from storage.audit import record_audit
from storage.domain import Role
from storage.errors import Conflict, NotFound, WardenError
from storage.models import User
from storage.sessions import end_user_sessions

MIN_PASSWORD_CHARS = 8
MAX_PASSWORD_CHARS = 1024
_USERNAME = re.compile(r"^[a-z0-9][a-z0-9_.@-]{0,63}$")

_hasher = PasswordHasher()  # argon2id with the library's current recommended parameters
# Verified against when the user does not exist, so a login takes as long either way and
# does not reveal which usernames exist.
_DUMMY_HASH = _hasher.hash("warden-no-such-user")


@dataclass(frozen=True)
class UserInfo:
    id: int
    username: str
    role: Role
    disabled: bool
    created_at: datetime


def _info(user: User) -> UserInfo:
    return UserInfo(
        id=user.id,
        username=user.username,
        role=Role(user.role),
        disabled=bool(user.disabled),
        created_at=user.created_at,
    )


def hash_password(password: str) -> str:
    """An argon2id hash of `password` (salted; the encoded string carries its parameters)."""
    return _hasher.hash(password)


def _check_password(password: str) -> None:
    if not isinstance(password, str) or len(password) < MIN_PASSWORD_CHARS:
        raise WardenError(f"password must be at least {MIN_PASSWORD_CHARS} characters")
    if len(password) > MAX_PASSWORD_CHARS:
        raise WardenError(f"password must be at most {MAX_PASSWORD_CHARS} characters")


def _parse_role(role: Role | str) -> Role:
    try:
        return Role(str(role).strip().lower())
    except ValueError:
        known = ", ".join(r.value for r in Role)
        raise WardenError(f"unknown role {role!r}; choose one of: {known}") from None


def normalise_username(username: str) -> str:
    """The one spelling of a username: creation, login, lockout and lookups all go through this,
    so `MoDeRaToR` and `moderator` are the same account everywhere."""
    name = (username or "").strip().lower()
    if not _USERNAME.match(name):
        raise WardenError(
            f"invalid username {username!r}: 1-64 characters, lowercase letters, digits and "
            "'_.@-', starting with a letter or digit"
        )
    return name


def create_user(
    session: Session, username: str, password: str, role: Role | str, *, actor: str = "system"
) -> UserInfo:
    """Add a user; Conflict if the username is taken, WardenError if any input is invalid."""
    name = normalise_username(username)
    parsed_role = _parse_role(role)
    _check_password(password)
    if session.scalar(select(User.id).where(User.username == name)) is not None:
        raise Conflict(f"user {name!r} already exists")
    user = User(username=name, password_hash=hash_password(password), role=parsed_role.value)
    try:
        with session.begin_nested():
            session.add(user)
            session.flush()
    except IntegrityError:
        raise Conflict(f"user {name!r} already exists") from None
    record_audit(session, actor, "user.created", username=name, role=parsed_role.value)
    return _info(user)


def authenticate(session: Session, username: str, password: str) -> UserInfo | None:
    """The user if the password matches; None for an unknown user, wrong password or a
    disabled account (the caller cannot tell which, on purpose)."""
    try:
        name = normalise_username(username)
    except WardenError:
        name = None
    user = session.scalar(select(User).where(User.username == name)) if name else None
    if user is None:
        try:
            _hasher.verify(_DUMMY_HASH, password or "")
        except VerificationError:
            pass
        return None
    try:
        _hasher.verify(user.password_hash, password or "")
    except (VerificationError, InvalidHashError):
        return None
    if user.disabled:
        return None
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    return _info(user)


def _get(session: Session, username: str) -> User:
    try:
        name = normalise_username(username)
    except WardenError:
        raise NotFound(f"no user named {username!r}") from None
    user = session.scalar(select(User).where(User.username == name))
    if user is None:
        raise NotFound(f"no user named {username!r}")
    return user


def get_user(session: Session, username: str) -> UserInfo:
    return _info(_get(session, username))


def list_users(session: Session) -> list[UserInfo]:
    return [_info(u) for u in session.scalars(select(User).order_by(User.username))]


def disable_user(session: Session, username: str, *, actor: str) -> UserInfo:
    """Block the user from logging in; their decisions stay attributed to them."""
    user = _get(session, username)
    if not user.disabled:
        user.disabled = True
        record_audit(session, actor, "user.disabled", username=user.username)
    end_user_sessions(session, user.id, why="disabled")
    return _info(user)


def enable_user(session: Session, username: str, *, actor: str) -> UserInfo:
    user = _get(session, username)
    if user.disabled:
        user.disabled = False
        record_audit(session, actor, "user.enabled", username=user.username)
    return _info(user)


def set_password(session: Session, username: str, password: str, *, actor: str) -> UserInfo:
    user = _get(session, username)
    _check_password(password)
    user.password_hash = hash_password(password)
    record_audit(session, actor, "user.password_changed", username=user.username)
    end_user_sessions(session, user.id, why="password_changed")
    return _info(user)


def set_role(session: Session, username: str, role: Role | str, *, actor: str) -> UserInfo:
    user = _get(session, username)
    parsed = _parse_role(role)
    if user.role != parsed.value:
        record_audit(
            session,
            actor,
            "user.role_changed",
            username=user.username,
            role_from=user.role,
            role_to=parsed.value,
        )
        user.role = parsed.value
        end_user_sessions(session, user.id, why="role_changed")
    return _info(user)
