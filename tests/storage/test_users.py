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
