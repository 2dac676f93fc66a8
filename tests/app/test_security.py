"""Security of the running workbench over plain HTTP: sessions, throttling, roles, images.

Every Gradio handler is callable by any logged-in user (FACTS), so these tests call handlers
the way an attacker would: `POST /ui/gradio_api/queue/join` with the handler's fn_index and
a moderator's cookie, and read the result stream.
"""

from __future__ import annotations

import io
import json
import time
import uuid

import httpx
import numpy as np
import pytest
from PIL import Image
from sqlalchemy import select

from storage.db import unit_of_work
from storage.models import AuditEvent
from storage.signing import Signer
from tests.app.conftest import PASSWORD, LiveApp

COOKIE = "warden_session"


def call_handler(app: LiveApp, cookie: str, elem_id: str, data: list) -> dict:
    """Trigger the click handler of the button `elem_id` directly; returns the final message."""
    jar = {COOKIE: cookie}
    config = httpx.get(f"{app.base_url}/ui/config", cookies=jar).json()
    comp = next(c for c in config["components"] if c.get("props", {}).get("elem_id") == elem_id)
    dep = next(
        d
        for d in config["dependencies"]
        if any(t[0] == comp["id"] for t in d.get("targets", [])) and d.get("backend_fn")
    )
    return run_dependency(app, jar, dep["id"], comp["id"], data)


def call_handlers(app: LiveApp, cookie: str, elem_id: str, data: list) -> list[dict]:
    """Trigger every backend handler bound to `elem_id` (a checkbox's change may run several);
    returns their final messages in the page's order."""
    jar = {COOKIE: cookie}
    config = httpx.get(f"{app.base_url}/ui/config", cookies=jar).json()
    comp = next(c for c in config["components"] if c.get("props", {}).get("elem_id") == elem_id)
    return [
        run_dependency(app, jar, d["id"], comp["id"], data)
        for d in config["dependencies"]
        if any(t[0] == comp["id"] for t in d.get("targets", [])) and d.get("backend_fn")
    ]


def run_dependency(app: LiveApp, jar: dict, fn_index: int, trigger_id: int, data: list) -> dict:
    """Join Gradio's queue for one backend function over raw HTTP, as the page would; returns
    the final message."""
    session_hash = uuid.uuid4().hex[:10]
    r = httpx.post(
        f"{app.base_url}/ui/gradio_api/queue/join",
        cookies=jar,
        json={
            "data": data,
            "event_data": None,
            "fn_index": fn_index,
            "trigger_id": trigger_id,
            "session_hash": session_hash,
        },
    )
    assert r.status_code == 200, r.text
    with httpx.stream(
        "GET",
        f"{app.base_url}/ui/gradio_api/queue/data",
        params={"session_hash": session_hash},
        cookies=jar,
        timeout=30,
    ) as s:
        for line in s.iter_lines():
            if not line.startswith("data:"):
                continue
            msg = json.loads(line[5:])
            if msg.get("msg") == "process_completed":
                return msg
    raise AssertionError("no completion message")


def test_unauthenticated_requests_are_refused(live_app: LiveApp) -> None:
    base = live_app.base_url
    r = httpx.get(f"{base}/ui/", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/login")
    assert httpx.get(f"{base}/ui/config").status_code == 401
    r = httpx.post(
        f"{base}/ui/gradio_api/queue/join", json={"data": [], "fn_index": 0, "session_hash": "x"}
    )
    assert r.status_code == 401
    assert httpx.get(f"{base}/login").status_code == 200


def test_session_cookie_is_httponly_samesite_and_expires(live_app: LiveApp) -> None:
    live_app.add_user("cookie_mod", "moderator")
    r = httpx.post(
        f"{live_app.base_url}/login",
        data={"username": "cookie_mod", "password": PASSWORD},
        follow_redirects=False,
    )
    assert r.status_code == 303
    header = r.headers["set-cookie"].lower()
    assert "httponly" in header and "samesite=lax" in header and "max-age=" in header
    cookie = r.cookies[COOKIE]
    assert httpx.get(f"{live_app.base_url}/ui/config", cookies={COOKIE: cookie}).status_code == 200
    # Any change to the signed token is refused.
    payload, sig = cookie.rsplit(".", 1)
    forged = payload + "." + ("0" if sig[0] != "0" else "1") + sig[1:]
    assert httpx.get(f"{live_app.base_url}/ui/config", cookies={COOKIE: forged}).status_code == 401
    # A session for another user cannot be minted without the key.
    other = Signer(b"not-the-key-not-the-key").make_session("cookie_mod", "guessed-sid", 3600)
    assert httpx.get(f"{live_app.base_url}/ui/config", cookies={COOKIE: other}).status_code == 401


def test_logins_are_throttled_per_user_and_ip(live_app: LiveApp) -> None:
    live_app.add_user("throttled", "moderator")
    live_app.add_user("bystander", "moderator")
    url = f"{live_app.base_url}/login"
    for _ in range(3):  # WARDEN_UI__LOGIN_MAX_FAILURES=3 in the fixture
        r = httpx.post(
            url, data={"username": "throttled", "password": "wrong"}, follow_redirects=False
        )
        assert r.status_code == 303 and "m=bad" in r.headers["location"]
    r = httpx.post(
        url, data={"username": "throttled", "password": PASSWORD}, follow_redirects=False
    )
    assert r.status_code == 429 and COOKIE not in r.cookies
    # Another account from the same address is unaffected.
    r = httpx.post(
        url, data={"username": "bystander", "password": PASSWORD}, follow_redirects=False
    )
    assert r.status_code == 303 and COOKIE in r.cookies


def test_disabled_users_session_stops_working(live_app: LiveApp) -> None:
    from storage.users import disable_user

    live_app.add_user("leaver", "moderator")
    cookie = live_app.login_cookie("leaver")
    jar = {COOKIE: cookie}
    assert httpx.get(f"{live_app.base_url}/ui/config", cookies=jar).status_code == 200
    with unit_of_work(live_app.engine) as s:
        disable_user(s, "leaver", actor="test")
    time.sleep(2.5)  # the server caches a user's state for at most 2 s
    assert httpx.get(f"{live_app.base_url}/ui/config", cookies=jar).status_code == 401
    r = httpx.post(
        f"{live_app.base_url}/login",
        data={"username": "leaver", "password": PASSWORD},
        follow_redirects=False,
    )
    assert COOKIE not in r.cookies


@pytest.mark.parametrize(
    ("elem_id", "data"),
    [
        ("a-go", ["", "", "", None, 50]),  # audit search
        ("m-refresh", [None]),  # model versions
        ("m-rollback", []),  # roll the live model back
        ("q-bulk-confirm", [json.dumps({"ids": [1], "labels": [], "note": ""})]),
    ],
)
def test_moderator_cannot_call_admin_handlers(live_app: LiveApp, elem_id: str, data: list) -> None:
    live_app.add_user(f"nosy_{elem_id}", "moderator")
    cookie = live_app.login_cookie(f"nosy_{elem_id}")
    msg = call_handler(live_app, cookie, elem_id, data)
    assert msg["success"] is False
    assert "Not permitted" in json.dumps(msg)
    with unit_of_work(live_app.engine) as s:
        denied = s.scalars(
            select(AuditEvent).where(
                AuditEvent.actor == f"nosy_{elem_id}", AuditEvent.action == "access_denied"
            )
        ).all()
    assert len(denied) == 1


def test_admin_can_call_the_audit_handler(live_app: LiveApp) -> None:
    """The same call as above succeeds for an admin, so the refusal is about the role."""
    live_app.add_user("auditor", "admin")
    cookie = live_app.login_cookie("auditor")
    msg = call_handler(live_app, cookie, "a-go", ["auditor", "", "", None, 50])
    assert msg["success"] is True, msg
    assert "login" in json.dumps(msg["output"]["data"])


def _detail(data: bytes) -> float:
    """Fine detail left in an image: mean |image - its own 2 px Gaussian blur| at 128x128.
    (Overall pixel variance was order-dependent: a seeded image dominated by one large block
    keeps much of its variance in a correctly blurred derivative.)"""
    from PIL import ImageFilter

    grey = Image.open(io.BytesIO(data)).convert("L").resize((128, 128), Image.Resampling.BILINEAR)
    smooth = np.asarray(grey.filter(ImageFilter.GaussianBlur(2)), dtype=float)
    return float(np.abs(np.asarray(grey, dtype=float) - smooth).mean())


def test_image_route_needs_a_valid_signed_url(live_app: LiveApp) -> None:
    # URLs are bound to the session they were minted for (tests/app/test_sessions.py pins
    # that a leaked one is refused without its cookie); here, with the cookie.
    [item_id, other_id] = live_app.seed_items(2, source="img-route", priority=0)
    signer = Signer((live_app.settings.data_dir / "secret_key").read_text().strip().encode())
    live_app.add_user("img_route", "moderator")
    cookie = live_app.login_cookie("img_route")
    sid = signer.read_session(cookie).session_id
    base = live_app.base_url
    client = httpx.Client(cookies={COOKIE: cookie})
    blur = client.get(base + signer.image_url(item_id, "blur", session_id=sid))
    view = client.get(base + signer.image_url(item_id, "view", session_id=sid))
    assert blur.status_code == 200 and view.status_code == 200
    assert blur.headers["x-warden-variant"] == "blur"
    # The derivative is really blurred: almost no detail left compared with the view (the
    # server's blur leaves <0.3% of it on 400 seeded images; the view keeps all of it).
    assert _detail(blur.content) < 0.05 * _detail(view.content)
    url = signer.image_url(item_id, "blur", session_id=sid)
    refused = [
        f"/img/{item_id}",  # no signature
        url.replace("v=blur", "v=view"),  # signature for the blurred one, asking for the raw
        url.replace(f"/img/{item_id}?", f"/img/{other_id}?"),  # reused for another item
        url[:-1] + ("0" if url[-1] != "0" else "1"),  # tampered
        signer.image_url(item_id, "view", session_id=sid, ttl_s=-5),  # expired
    ]
    for bad in refused:
        assert client.get(base + bad).status_code == 403, bad
