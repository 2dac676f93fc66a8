"""Content-Security-Policy: present on every HTML page, and the workbench works under it in
real Chromium with no violation reported (console or `securitypolicyviolation` events).

Run: .venv/bin/pytest tests/app/test_csp.py
"""

from __future__ import annotations

import re

import httpx
import pytest

from tests.app.conftest import PASSWORD, LiveApp

COOKIE = "warden_session"


def test_pages_carry_a_policy_and_every_script_the_nonce(live_app: LiveApp) -> None:
    live_app.add_user("csp_head", "moderator")
    jar = {COOKIE: live_app.login_cookie("csp_head")}
    first = httpx.get(f"{live_app.base_url}/ui/", cookies=jar)
    second = httpx.get(f"{live_app.base_url}/ui/", cookies=jar)
    assert first.status_code == 200
    policy = first.headers["content-security-policy"]
    nonce = re.search(r"'nonce-([^']+)'", policy).group(1)
    assert "'unsafe-inline'" not in policy.split("script-src", 1)[1].split(";", 1)[0]
    assert "frame-ancestors 'none'" in policy and "object-src 'none'" in policy
    tags = re.findall(r"<script[^>]*>", first.text)
    assert tags and all(f'nonce="{nonce}"' in t for t in tags), tags
    # A fresh nonce per page: one leaked page does not bless scripts in the next.
    assert second.headers["content-security-policy"] != policy
    assert first.headers["cache-control"] == "no-store"
    login = httpx.get(f"{live_app.base_url}/login")
    assert "script-src" not in login.headers["content-security-policy"]
    assert "default-src 'none'" in login.headers["content-security-policy"]


@pytest.mark.browser
def test_workbench_runs_under_the_policy_without_violations(wpage, live_app: LiveApp) -> None:
    live_app.add_user("csp_mod", "moderator")
    [item_id] = live_app.seed_items(1, source="csp", verdicts=[live_app.verdict({"drugs": 0.9})])
    messages: list[str] = []
    wpage.on("console", lambda m: messages.append(f"{m.type}: {m.text}"))
    wpage.on("pageerror", lambda e: messages.append(f"pageerror: {e}"))
    wpage.add_init_script(
        "window.__csp = []; document.addEventListener('securitypolicyviolation', "
        "e => window.__csp.push(e.violatedDirective + ' ' + e.blockedURI));"
    )
    wpage.goto(f"{live_app.base_url}/login")
    wpage.fill("#username", "csp_mod")
    wpage.fill("#password", PASSWORD)
    wpage.click("#login-btn")
    wpage.wait_for_url("**/ui/**")
    wpage.wait_for_selector("#wd-who")
    # The moderator's first item loads, with its image (a session-bound signed URL).
    wpage.wait_for_function(
        "id => { const e = document.querySelector('#wd-item-id textarea, #wd-item-id input');"
        " return e && e.value === id; }",
        arg=str(item_id),
    )
    wpage.wait_for_function(
        "() => [...document.querySelectorAll('img')].some("
        "i => i.src.includes('/img/') && i.complete && i.naturalWidth > 0)"
    )
    violations = wpage.evaluate("window.__csp")
    csp_lines = [m for m in messages if "Content Security Policy" in m or "CSP" in m]
    assert violations == [] and csp_lines == [], (violations, csp_lines)
