"""Sessions live in the database: two real `warden serve` processes on one database and data
dir; a logout, a password or role change, or disabling the user ends a copied cookie in both at
once. Login lockout counts the account's one spelling and each client address; image URLs only
work with the cookie of the session they were minted for; refusals log one line each.

Run: .venv/bin/pytest tests/app/test_sessions.py
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from app.context import AppContext
from app.server import address_locked, login_key, login_locked
from storage.audit import record_audit
from storage.db import make_engine, unit_of_work
from storage.migrate import upgrade
from storage.scratch_db import create_scratch_database, drop_scratch_database
from storage.settings import Settings
from storage.signing import Signer
from storage.users import create_user, disable_user, set_password, set_role
from tests.app.conftest import PASSWORD, LiveApp, start_app
from tests.app.test_security import call_handler
from tests.conftest import PG_ADMIN_URL, _backends

COOKIE = "warden_session"


def _stop(app: LiveApp) -> None:
    app.proc.terminate()
    try:
        app.proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        app.proc.kill()
    app.engine.dispose()  # the pair shares one engine: disposing twice is harmless


@pytest.fixture(scope="module", params=_backends())
def two_apps(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[LiveApp, LiveApp]]:
    """Two server processes sharing one database (SQLite, then PostgreSQL) and one data dir
    (so one secret key)."""
    pg_url = None
    extra: dict[str, str] = {}
    if request.param == "postgres":
        pg_url = create_scratch_database(PG_ADMIN_URL, prefix="warden_sess")
        upgrade(pg_url)
        extra = {"WARDEN_DATABASE_URL": pg_url}
    first = start_app(tmp_path_factory.mktemp("sessions-a"), extra)
    url = pg_url or first.settings.database_url
    if pg_url is not None:  # the helpers seed through the same database the servers use
        first.engine.dispose()
        first.engine = make_engine(pg_url)
        first.settings = Settings(data_dir=first.settings.data_dir, WARDEN_DATABASE_URL=pg_url)
    shared = {"WARDEN_DATA_DIR": str(first.settings.data_dir), "WARDEN_DATABASE_URL": url}
    second = start_app(tmp_path_factory.mktemp("sessions-b"), shared)
    second.engine.dispose()
    second.engine, second.settings = first.engine, first.settings
    yield first, second
    _stop(second)
    _stop(first)
    if pg_url is not None:
        drop_scratch_database(PG_ADMIN_URL, pg_url)


def _status(app: LiveApp, cookie: str) -> int:
    return httpx.get(f"{app.base_url}/ui/config", cookies={COOKIE: cookie}).status_code


def test_logout_in_one_process_ends_the_copied_cookie_in_the_other(two_apps) -> None:
    a, b = two_apps
    a.add_user("copied", "moderator")
    cookie = a.login_cookie("copied")
    other_login = a.login_cookie("copied")  # the same user on another device
    assert _status(a, cookie) == 200 and _status(b, cookie) == 200
    r = httpx.post(f"{a.base_url}/logout", cookies={COOKIE: cookie}, follow_redirects=False)
    assert r.status_code == 303
    assert _status(b, cookie) == 401 and _status(a, cookie) == 401
    r = httpx.get(f"{b.base_url}/ui/", cookies={COOKIE: cookie}, follow_redirects=False)
    assert r.status_code == 303 and "/login" in r.headers["location"]
    assert _status(b, other_login) == 200  # logging out ends this session, not the others


@pytest.mark.parametrize(
    ("name", "change"),
    [
        ("acct_pw", lambda s, u: set_password(s, u, "another good password", actor="admin")),
        ("acct_off", lambda s, u: disable_user(s, u, actor="admin")),
        ("acct_role", lambda s, u: set_role(s, u.upper(), "annotator", actor="admin")),
    ],
)
def test_account_changes_end_sessions_in_every_process_at_once(two_apps, name, change) -> None:
    a, b = two_apps
    a.add_user(name, "moderator")
    cookie_a, cookie_b = a.login_cookie(name), b.login_cookie(name)
    assert _status(a, cookie_b) == 200 and _status(b, cookie_a) == 200
    with unit_of_work(a.engine) as s:
        change(s, name)
    # No waiting: neither process may keep a cache that outlives the change.
    for app in (a, b):
        for cookie in (cookie_a, cookie_b):
            assert _status(app, cookie) == 401


def test_a_handler_call_with_an_ended_session_is_refused_and_logged_in_one_line(two_apps) -> None:
    a, b = two_apps
    a.add_user("oneline", "moderator")
    cookie = a.login_cookie("oneline")
    # A moderator calling an admin handler: refused by role, logged without a traceback.
    msg = call_handler(b, cookie, "a-go", ["", "", "", None, 50])
    assert msg["success"] is False and "Not permitted" in str(msg)
    log = (b.workdir / "server.log").read_text()
    lines = [ln for ln in log.splitlines() if "refused handler=" in ln]
    assert any("user=oneline" in ln and "reason=Not permitted" in ln for ln in lines), log[-3000:]
    assert "Traceback" not in log and "gradio.exceptions.Error" not in log, log[-3000:]


def _key(app: LiveApp) -> Signer:
    return Signer((app.settings.data_dir / "secret_key").read_bytes().strip())


def test_image_urls_work_only_with_their_sessions_cookie(two_apps) -> None:
    a, b = two_apps
    [item_id] = a.seed_items(1, source="bound-img", priority=0)
    a.add_user("img_owner", "moderator")
    a.add_user("img_other", "moderator")
    cookie = a.login_cookie("img_owner")
    other = a.login_cookie("img_other")
    signer = _key(a)
    sid = signer.read_session(cookie).session_id
    url = signer.image_url(item_id, "view", session_id=sid)
    assert httpx.get(b.base_url + url, cookies={COOKIE: cookie}).status_code == 200
    assert httpx.get(b.base_url + url).status_code == 403  # leaked: no cookie
    assert httpx.get(b.base_url + url, cookies={COOKIE: other}).status_code == 403
    assert httpx.get(b.base_url + url + "&a=ext").status_code == 403  # not an external URL
    httpx.post(f"{a.base_url}/logout", cookies={COOKIE: cookie})
    assert httpx.get(b.base_url + url, cookies={COOKIE: cookie}).status_code == 403
    # Label Studio's URLs need no cookie, and cannot be replayed as a session's.
    ext = signer.external_image_url(item_id, "view", ttl_s=60)
    assert httpx.get(b.base_url + ext).status_code == 200
    as_session = ext.replace("&a=ext", "")
    assert httpx.get(b.base_url + as_session, cookies={COOKIE: other}).status_code == 403


def test_case_variants_share_one_lockout(two_apps) -> None:
    a, b = two_apps
    a.add_user("moderator", "moderator")
    url_a, url_b = f"{a.base_url}/login", f"{b.base_url}/login"
    for url, name in ((url_a, "MoDeRaToR"), (url_b, "moderator "), (url_a, "MODERATOR")):
        r = httpx.post(url, data={"username": name, "password": "wrong"}, follow_redirects=False)
        assert r.status_code == 303 and "m=bad" in r.headers["location"]
    for url, name in ((url_a, "MoDeRaToR"), (url_b, "Moderator"), (url_a, "moderator")):
        r = httpx.post(url, data={"username": name, "password": PASSWORD}, follow_redirects=False)
        assert r.status_code == 429 and COOKIE not in r.cookies, name


def test_one_address_is_limited_over_all_usernames(tmp_path: Path) -> None:
    app = start_app(tmp_path, {"WARDEN_UI__LOGIN_IP_MAX_FAILURES": "4"})
    try:
        app.add_user("spray_target", "moderator")
        url = f"{app.base_url}/login"
        for name in ("alpha", "bravo", "charlie", "bad name!"):  # one try each: no user lock
            r = httpx.post(url, data={"username": name, "password": "x"}, follow_redirects=False)
            assert r.status_code == 303
        r = httpx.post(
            url, data={"username": "spray_target", "password": PASSWORD}, follow_redirects=False
        )
        assert r.status_code == 429 and COOKIE not in r.cookies
    finally:
        _stop(app)


def test_lockout_counts_on_both_databases(settings: Settings) -> None:
    from storage.migrate import upgrade

    upgrade(settings.database_url)
    settings = settings.model_copy(
        update={"ui": settings.ui.model_copy(update={"login_max_failures": 2})}
    )
    ctx = AppContext.create(settings)
    with unit_of_work(ctx.engine) as s:
        create_user(s, "dora", "password1", "moderator")
    assert login_key(" DoRa ") == "dora" and login_key("x y") == "x y"
    with unit_of_work(ctx.engine) as s:
        record_audit(s, login_key("DORA"), "login_failed", ip="10.0.0.1")
        record_audit(s, login_key("dora "), "login_failed", ip="10.0.0.1")
    now = datetime.now(UTC)
    assert login_locked(ctx, login_key("Dora"), "10.0.0.1", now)
    assert not login_locked(ctx, "dora", "10.0.0.2", now)  # per address
    assert not address_locked(ctx, "10.0.0.1", now)  # 2 < login_ip_max_failures
    ctx.engine.dispose()
