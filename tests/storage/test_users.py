"""Users: argon2id hashes, roles, login refusals, disabling, audit."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, select

from storage.audit import list_audit
from storage.db import unit_of_work
from storage.domain import Role
from storage.errors import Conflict, NotFound, WardenError
from storage.models import User
from storage.users import (
    authenticate,
    create_user,
    disable_user,
    get_user,
    hash_password,
    list_users,
    set_password,
    set_role,
)


def test_create_and_authenticate(engine: Engine) -> None:
    with unit_of_work(engine) as s:
        info = create_user(s, "Alice", "correct horse", "moderator", actor="root")
    assert info.username == "alice" and info.role == Role.moderator and not info.disabled
    with unit_of_work(engine) as s:
        stored = s.scalar(select(User.password_hash).where(User.username == "alice"))
        assert stored.startswith("$argon2id$") and "correct horse" not in stored
        assert authenticate(s, "alice", "correct horse") == info
        assert authenticate(s, "ALICE ", "correct horse") == info
        assert authenticate(s, "alice", "wrong password") is None
        assert authenticate(s, "nobody", "correct horse") is None
        assert authenticate(s, "", "") is None
        assert list_audit(s, action="user.created")[0].actor == "root"


def test_duplicates_and_invalid_input_are_refused(engine: Engine) -> None:
    with unit_of_work(engine) as s:
        create_user(s, "bob", "password1", Role.annotator)
    with unit_of_work(engine) as s:
        with pytest.raises(Conflict, match="already exists"):
            create_user(s, "BOB", "password2", "admin")
        with pytest.raises(WardenError, match="unknown role"):
            create_user(s, "carol", "password1", "overlord")
        with pytest.raises(WardenError, match="at least"):
            create_user(s, "carol", "short", "admin")
        with pytest.raises(WardenError, match="invalid username"):
            create_user(s, "carol smith", "password1", "admin")
        with pytest.raises(NotFound):
            get_user(s, "carol")
    with unit_of_work(engine) as s:
        assert [u.username for u in list_users(s)] == ["bob"]
        assert get_user(s, "bob").role == Role.annotator


def test_disabled_user_cannot_log_in(engine: Engine) -> None:
    with unit_of_work(engine) as s:
        create_user(s, "dan", "password1", "engineer")
    with unit_of_work(engine) as s:
        assert disable_user(s, "dan", actor="admin").disabled
    with unit_of_work(engine) as s:
        assert authenticate(s, "dan", "password1") is None
        assert get_user(s, "dan").disabled
        assert list_audit(s, action="user.disabled")[0].details == {"username": "dan"}
        set_password(s, "dan", "new password", actor="admin")
        with pytest.raises(NotFound):
            disable_user(s, "ghost", actor="admin")


def test_hashes_are_salted() -> None:
    assert hash_password("same password") != hash_password("same password")


def _user_id(engine: Engine, name: str) -> int:
    with unit_of_work(engine) as s:
        return s.scalar(select(User.id).where(User.username == name))


@pytest.mark.parametrize(
    "change",
    [
        lambda s: disable_user(s, "erin", actor="admin"),
        lambda s: set_password(s, "ERIN", "a new password", actor="admin"),
        lambda s: set_role(s, " Erin", "annotator", actor="admin"),
    ],
    ids=["disable", "password", "role"],
)
def test_account_changes_end_every_session_of_that_user(engine: Engine, change) -> None:
    from storage.sessions import session_user, start_session

    with unit_of_work(engine) as s:
        create_user(s, "erin", "password1", "moderator")
        create_user(s, "frank", "password1", "moderator")
    erin, frank = _user_id(engine, "erin"), _user_id(engine, "frank")
    with unit_of_work(engine) as s:
        laptop, phone = (start_session(s, erin, ttl_s=600) for _ in range(2))
        other = start_session(s, frank, ttl_s=600)
    with unit_of_work(engine) as s:
        assert session_user(s, laptop).username == "erin" and session_user(s, phone)
        change(s)
    with unit_of_work(engine) as s:
        assert session_user(s, laptop) is None and session_user(s, phone) is None
        assert session_user(s, other).username == "frank"  # nobody else is logged out


def test_sessions_end_on_logout_and_expire(engine: Engine) -> None:
    from datetime import UTC, datetime, timedelta

    from storage.sessions import end_session, session_user, start_session

    with unit_of_work(engine) as s:
        create_user(s, "gina", "password1", "engineer")
    uid = _user_id(engine, "gina")
    with unit_of_work(engine) as s:
        a, b = start_session(s, uid, ttl_s=60), start_session(s, uid, ttl_s=60)
    with unit_of_work(engine) as s:
        assert end_session(s, a, why="logout") and not end_session(s, a, why="logout")
    with unit_of_work(engine) as s:
        assert session_user(s, a) is None
        assert session_user(s, b).role == "engineer"  # logout ends this session only
        later = datetime.now(UTC) + timedelta(seconds=61)
        assert session_user(s, b, now=later) is None
        assert session_user(s, "no-such-session") is None


def test_one_spelling_of_a_username_everywhere(engine: Engine) -> None:
    from storage.users import normalise_username

    with unit_of_work(engine) as s:
        create_user(s, "  MoDeRaToR ", "password1", "moderator")
    with unit_of_work(engine) as s:
        assert normalise_username("MODERATOR") == "moderator"
        assert authenticate(s, "MoDeRaToR", "password1").username == "moderator"
        assert get_user(s, "\tModerator").username == "moderator"
        assert authenticate(s, "mod erator", "password1") is None  # invalid, not an error
        with pytest.raises(NotFound):
            get_user(s, "mod erator")
