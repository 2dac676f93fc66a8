"""The workbench in English, Korean and Chinese in real Chromium: the browser's language picks
it, the switch in the header changes it, category names follow it; and a screenshot of every
tab for every role in every language, `test-artifacts/screenshots/{lang}-{role}-{tab}.png`.

Run: .venv/bin/pytest tests/app/test_languages.py -m browser
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from app.i18n import LANGS, catalog, translate
from app.roles import TAB_ROLES
from storage.domain import Role
from tests.app.conftest import PASSWORD, LiveApp, start_app

pytestmark = pytest.mark.browser

BROWSER_LOCALE = {"en": "en-US", "ko": "ko-KR", "zh": "zh-CN"}
HTML_LANG = {"en": "en", "ko": "ko", "zh": "zh-CN"}
TABS = ("review", "queue", "upload", "dashboard", "models", "audit")


def _context(chromium, lang: str, width: int = 1366, height: int = 768):
    return chromium.new_context(
        locale=BROWSER_LOCALE[lang], viewport={"width": width, "height": height}
    )


def _login(page, app: LiveApp, username: str) -> None:
    page.goto(f"{app.base_url}/login")
    page.fill("#username", username)
    page.fill("#password", PASSWORD)
    page.click("#login-btn")
    page.wait_for_url("**/ui/**")
    _wait_loaded(page)


def _wait_loaded(page) -> None:
    # The page-load handler fills the "logged in as" line and shows the role's tabs.
    page.wait_for_function(
        "() => (document.querySelector('#wd-who textarea, #wd-who input')?.value || '') !== ''"
    )
    page.wait_for_timeout(300)


def _visible_tabs(page, expected: list[str] | None = None) -> list[str]:
    """The tab strip's names; with `expected`, once it shows that many tabs (the role's tabs
    appear a moment after the "logged in as" line on a loaded machine)."""
    if expected is not None:
        try:
            page.wait_for_function(
                "n => document.querySelectorAll('button[role=tab]').length >= n && "
                "[...document.querySelectorAll('button[role=tab]')]"
                ".filter(b => b.offsetParent !== null).length === n",
                arg=len(expected),
                timeout=15_000,
            )
        except Exception:  # the assertion below shows what is there instead
            pass
    return [t.strip() for t in page.locator("button[role=tab]:visible").all_inner_texts()]


def _expected_tabs(lang: str, role: Role) -> list[str]:
    return [translate(f"tabs.{t}", lang) for t in TABS if role in TAB_ROLES[t]]


def _assert_tabs(page, lang: str, role: Role) -> None:
    """The role's tabs, named in `lang`."""
    expected = _expected_tabs(lang, role)
    assert _visible_tabs(page, expected) == expected, lang


def _flagged_items(app: LiveApp, n: int) -> list[int]:
    verdict = app.verdict({"scam_fraud": 0.93, "drugs": 0.61}, ocr_text="WIN 1000 USDT")
    return app.seed_items(n, source="i18n", verdicts=[verdict] * n)


@pytest.mark.parametrize("lang", LANGS)
def test_the_browser_language_picks_the_workbench_language(
    chromium, live_app: LiveApp, lang: str, screenshots
) -> None:
    username = f"lang_mod_{lang}"
    live_app.add_user(username, "moderator")
    (item,) = _flagged_items(live_app, 1)
    context = _context(chromium, lang)
    page = context.new_page()
    page.set_default_timeout(20_000)
    try:
        page.goto(f"{live_app.base_url}/login")
        assert page.inner_text("label[for=password]") == translate("login.password", lang)
        page.screenshot(path=str(screenshots / f"{lang}-login.png"))
        _login(page, live_app, username)
        assert page.get_attribute("html", "lang") == HTML_LANG[lang]
        _assert_tabs(page, lang, Role.moderator)
        texts = catalog()[lang]
        assert page.inner_text("#wd-submit").strip() == texts["review.submit"]
        assert page.inner_text("#wd-logout").strip() == texts["ui.logout"]
        who = page.eval_on_selector("#wd-who textarea, #wd-who input", "e => e.value")
        role = translate("roles.moderator", lang)
        assert who == translate("ui.logged_in", lang, user=username, role=role)
        # The item this moderator was handed: category names from the policy, in the language.
        page.wait_for_function(
            "id => document.querySelector('#wd-item-id textarea, #wd-item-id input')?.value === id",
            arg=str(item),
        )
        policy = live_app.policy
        scam = policy.category("scam_fraud").title_in(lang)
        drugs = policy.category("drugs").title_in(lang)
        assert scam in page.inner_text("#wd-cats")
        assert scam in page.inner_text("#wd-scores .wd-verdict")
        model_line = page.eval_on_selector("#wd-model textarea, #wd-model input", "e => e.value")
        flagged = f"{drugs}, {scam}"
        expected = translate("review.card.model", lang, version="test-model@1", flagged=flagged)
        assert model_line.startswith(expected), model_line
        definition = policy.category("scam_fraud").description_in(lang)
        assert page.locator(f'#wd-scores li[title="{definition}"]').count() == 1
        # What the server says back is in the language too (category titles included).
        page.click("#wd-accept")
        said = translate("review.msg.accepted", lang, item=item, categories=f"{drugs}, {scam}")
        page.wait_for_function(
            "t => document.querySelector('#wd-status textarea, #wd-status input')?.value === t",
            arg=said,
        )
        page.click("button[role=tab]:visible >> nth=1")  # the Queue tab
        page.wait_for_selector("#q-search:visible")
        assert page.inner_text("#q-search").strip() == texts["queue.search"]
        page.click("#q-search")
        held_by = texts["queue.columns.held_by"]
        page.wait_for_function(
            "t => document.querySelector('#q-table').innerText.includes(t)", arg=held_by
        )
        body = page.inner_text("body")
        assert "__i18n__" not in body and "review.submit" not in body
        if lang != "en":
            assert "Submit" not in body and "Queue" not in body
    finally:
        context.close()


def test_the_switch_changes_the_language_and_remembers_it(chromium, live_app: LiveApp) -> None:
    live_app.add_user("lang_switch", "engineer")
    context = _context(chromium, "en")
    page = context.new_page()
    page.set_default_timeout(20_000)
    try:
        _login(page, live_app, "lang_switch")
        _assert_tabs(page, "en", Role.engineer)
        for lang, name in (("ko", "한국어"), ("zh", "中文"), ("en", "English")):
            page.click(f"#wd-lang a:text-is('{name}')")
            page.wait_for_url("**/ui/**")
            _wait_loaded(page)
            _assert_tabs(page, lang, Role.engineer)
            assert page.get_attribute("html", "lang") == HTML_LANG[lang]
            current = page.inner_text("#wd-lang [aria-current=true]")
            assert current == name
        # Remembered: a Korean choice survives a new page load and shows on the login page.
        page.click("#wd-lang a:text-is('한국어')")
        page.wait_for_url("**/ui/**")
        page.goto(f"{live_app.base_url}/ui/")
        _wait_loaded(page)
        _assert_tabs(page, "ko", Role.engineer)
        page.click("#wd-logout")
        page.wait_for_url("**/login**")
        assert translate("login.messages.out", "ko") in page.inner_text("body")
        page.click("a:text-is('English')")
        page.wait_for_url("**/login")
        assert page.inner_text("#login-btn") == "Log in"
    finally:
        context.close()


def test_the_empty_state_speaks_korean_and_its_link_opens_the_queue(
    chromium, tmp_path: Path
) -> None:
    app = start_app(tmp_path)  # its own server: nothing escalated, whatever else ran
    context = _context(chromium, "ko")
    page = context.new_page()
    page.set_default_timeout(20_000)
    try:
        app.add_user("lang_empty_eng", "engineer")
        _login(page, app, "lang_empty_eng")
        empty = translate("review.empty_escalated", "ko")
        page.wait_for_function(
            "t => document.querySelector('#wd-image-box').innerText.includes(t)", arg=empty
        )
        link = page.locator("#wd-image-box .wd-goto-queue")
        assert link.inner_text() == translate("review.open_queue", "ko")
        link.click()
        page.wait_for_function(
            "() => document.getElementById('tab-queue-button')"
            "?.getAttribute('aria-selected') === 'true'"
        )
    finally:
        context.close()
        app.proc.terminate()
        app.proc.wait(timeout=10)
        app.engine.dispose()


def _show_tab(page, lang: str, tab: str) -> None:
    page.click(f"button[role=tab]:text-is('{translate(f'tabs.{tab}', lang)}')")
    if tab == "dashboard":
        page.wait_for_function(
            "() => document.querySelectorAll('#tab-dashboard .js-plotly-plot').length >= 4",
            timeout=60_000,
        )
    elif tab == "models":
        page.wait_for_selector("#m-chart", state="attached")
        page.wait_for_function(
            "() => (document.querySelector('#m-gate textarea, #m-gate input')?.value || '') !== ''"
        )
    elif tab == "queue":
        page.click("#q-search")
        page.wait_for_function(
            "() => (document.querySelector('#q-info textarea, #q-info input')?.value || '') !== ''"
        )
    elif tab == "audit":
        page.click("#a-go")
        page.wait_for_function(
            "() => (document.querySelector('#a-table')?.innerText || '').includes('login')"
        )
    page.wait_for_timeout(700)


# Text the server writes on these tabs (chart titles, axes, legends, empty states, table headers,
# the gate's and the dataset card's lines): none of its English may be left in another language.
# On the Audit tab only the headers are the server's text (its rows are recorded data).
SERVER_TEXT_TABS = {"dashboard": "dashboard.", "models": "models.", "audit": "audit.columns."}
TAB_TEXT_JS = """([id, headersOnly]) => {
  const tab = document.getElementById(id);
  if (!tab) return '';
  const parts = [];
  tab.querySelectorAll('th').forEach(e => parts.push(e.textContent));
  if (headersOnly) return parts.join('\\n');
  parts.push(tab.innerText);
  tab.querySelectorAll('svg text').forEach(t => parts.push(t.textContent));
  tab.querySelectorAll('textarea, input').forEach(e => parts.push(e.value || ''));
  return parts.join('\\n');
}"""


def english_left(page, lang: str, tab: str) -> list[str]:
    """English phrases of the tab's server-side text (app/locales `charts.*` and the tab's own
    keys, six letters or more between placeholders) found on the page in `lang`."""
    text = page.evaluate(TAB_TEXT_JS, [f"tab-{tab}", tab == "audit"])
    assert len(text) > (10 if tab == "audit" else 200), text
    english, local = catalog()["en"], catalog()[lang]
    left = []
    for key, value in english.items():
        if not key.startswith((SERVER_TEXT_TABS[tab], "charts.")) or local[key] == value:
            continue
        for fragment in re.split(r"\{\w+\}", value):
            fragment = fragment.strip(" .,:;")
            pattern = r"(?<![\w-])" + re.escape(fragment) + r"(?![\w-])"
            if len(fragment) >= 6 and re.search(pattern, text):
                left.append(f"{key}: {fragment!r}")
    return left


def test_every_tab_for_every_role_in_every_language(
    chromium, live_app: LiveApp, screenshots
) -> None:
    """Screenshots for people to look at; the test checks each page is in its language."""
    _flagged_items(live_app, 8)
    shots = []
    for role in (Role.admin, Role.engineer, Role.moderator, Role.annotator):
        username = f"shots_{role.value}"
        live_app.add_user(username, role.value)
        for lang in LANGS:
            context = _context(chromium, lang)
            page = context.new_page()
            page.set_default_timeout(30_000)
            try:
                _login(page, live_app, username)
                _assert_tabs(page, lang, role)
                for tab in TABS:
                    if role not in TAB_ROLES[tab]:
                        continue
                    _show_tab(page, lang, tab)
                    assert "__i18n__" not in page.inner_text("body")
                    if lang != "en" and tab in SERVER_TEXT_TABS:
                        assert english_left(page, lang, tab) == [], (lang, role.value, tab)
                    path = screenshots / f"{lang}-{role.value}-{tab}.png"
                    page.screenshot(path=str(path), full_page=True)
                    shots.append(path)
            finally:
                context.close()
    expected = sum(len(LANGS) for t in TABS for r in Role if r in TAB_ROLES[t])
    assert len(shots) == expected and all(p.stat().st_size > 10_000 for p in shots)


def test_the_audit_tab_in_chinese_keeps_its_filter_and_expands_a_row(
    chromium, live_app: LiveApp
) -> None:
    from app.tabs.audit import columns
    from storage.db import unit_of_work
    from storage.queue import claim_item, escalate
    from tests.app.test_queue_tab import box, click_cell

    live_app.add_user("lang_auditor", "admin")
    [item] = live_app.seed_items(1, source="lang-audit", priority=0)
    with unit_of_work(live_app.engine) as s:
        claim_item(s, item, "lang_aud_mod")
        escalate(s, item, "lang_aud_mod", note="看看这个")
    context = _context(chromium, "zh")
    page = context.new_page()
    page.set_default_timeout(30_000)
    try:
        _login(page, live_app, "lang_auditor")
        page.click(f"button[role=tab]:text-is('{translate('tabs.audit', 'zh')}')")
        page.fill("#a-item input, #a-item textarea", str(item))
        page.click("#a-go")
        page.wait_for_function(
            "() => (document.querySelector('#a-table')?.innerText || '').includes('item.escalated')"
        )
        page.wait_for_timeout(400)
        headers = page.evaluate(
            "() => [...document.querySelectorAll('#a-table thead th')]"
            ".map(th => th.innerText.trim()).filter(t => t)"
        )
        assert headers[: len(columns("zh"))] == columns("zh"), headers
        assert "time (UTC)" not in page.inner_text("#a-table")
        rows = page.evaluate(
            "() => [...document.querySelectorAll('#a-table [role=row]')]"
            ".map(r => [...r.querySelectorAll('[role=gridcell]')].map(c => c.innerText.trim()))"
            ".filter(r => r.length)"
        )
        assert rows and all(r[4] == str(item) for r in rows), rows
        assert box(page, "a-item") == str(item)  # the filter keeps its value
        click_cell(page, "item.escalated", "a-table")
        page.wait_for_function(
            "() => (document.querySelector('#a-json')?.innerText || '').includes('看看这个')"
        )
        # A wrong item id is answered in the reader's language, and stays in the box to fix.
        page.fill("#a-item input, #a-item textarea", "abc")
        page.click("#a-go")
        page.wait_for_function(
            "t => document.body.innerText.includes(t)", arg=translate("audit.bad_item", "zh")
        )
        assert box(page, "a-item") == "abc"
    finally:
        context.close()
