"""The Queue tab as a working list and the Audit tab as readable rows, in real Chromium at
1366×768 and 1920×1080: the table fits, sorts, filters, pages and saved views work, a row opens
in Review (click or Enter) under a lease, hostile text stays inert, no CSP violations.
Screenshots of the Queue and Audit tabs per role land in test-artifacts/screenshots/.

Run: .venv/bin/pytest tests/app/test_queue_tab.py -m browser
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from storage.db import unit_of_work
from storage.models import AuditEvent, Decision, Item, utcnow
from storage.queue import claim_item, escalate, release
from tests.app.conftest import PASSWORD, LiveApp

pytestmark = pytest.mark.browser

VIEWPORTS = {"1366x768": (1366, 768), "1920x1080": (1920, 1080)}
HOSTILE = '<img src=x onerror="window.__pwned=1">' + "very-long-file-name-" * 6 + ".png"
ROWS_JS = """() => [...document.querySelectorAll('#q-table [role=row]')]
  .map(r => [...r.querySelectorAll('[role=gridcell]')].map(c => c.innerText.trim()))
  .filter(r => r.length)"""


@pytest.fixture(params=list(VIEWPORTS))
def vpage(request, chromium) -> Iterator[object]:
    width, height = VIEWPORTS[request.param]
    context = chromium.new_context(viewport={"width": width, "height": height})
    page = context.new_page()
    page.set_default_timeout(30_000)
    page.console_errors = []  # type: ignore[attr-defined]
    page.on(
        "console",
        lambda m: page.console_errors.append(m.text) if m.type == "error" else None,  # type: ignore[attr-defined]
    )
    page.viewport_name = request.param  # type: ignore[attr-defined]
    yield page
    context.close()


def login(page, app: LiveApp, username: str) -> None:
    page.goto(f"{app.base_url}/login")
    page.fill("#username", username)
    page.fill("#password", PASSWORD)
    page.click("#login-btn")
    page.wait_for_url("**/ui/**")
    page.wait_for_function(
        "() => (document.querySelector('#wd-who textarea, #wd-who input')?.value || '')"
        ".startsWith('Logged in as')"
    )


def box(page, elem_id: str) -> str:
    return page.eval_on_selector(f"#{elem_id} textarea, #{elem_id} input", "e => e.value")


def wait_box(page, elem_id: str, needle: str) -> None:
    page.wait_for_function(
        "([id, s]) => (document.querySelector('#' + id + ' textarea, #' + id + ' input')"
        "?.value || '').includes(s)",
        arg=[elem_id, needle],
    )


def rows(page) -> list[list[str]]:
    return page.evaluate(ROWS_JS)


def search(page, want=None, *, ordered: bool = True, timeout_s: float = 30.0) -> list[list[str]]:
    """Press Search and wait until the table's item ids are `want` (a list: in that order; a
    set: any order); the rows it shows."""
    page.click("#q-search")
    if want is None:
        page.wait_for_timeout(1500)
        return rows(page)
    want_ids = [str(i) for i in want]
    deadline = time.monotonic() + timeout_s
    got: list[list[str]] = []
    while time.monotonic() < deadline:
        got = rows(page)
        ids = [r[0] for r in got]
        if (ids == want_ids) if ordered else (set(ids) == set(want_ids)):
            return got
        page.wait_for_timeout(200)
    raise AssertionError(f"table shows {[r[0] for r in got]}, want {want_ids}")


def choose(page, elem_id: str, option: str) -> None:
    page.click(f"#{elem_id} input")
    page.get_by_role("option", name=option, exact=True).first.click()


def click_cell(page, text: str, table: str = "q-table") -> None:
    """Click the visible cell showing exactly `text` (the grid also keeps hidden copies)."""
    cells = page.locator(f"#{table} [role=gridcell]", has=page.get_by_text(text, exact=True))
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        for i in range(cells.count()):
            if cells.nth(i).is_visible():
                cells.nth(i).click()
                return
        page.wait_for_timeout(200)
    raise AssertionError(f"no visible cell {text!r} in #{table}")


def open_queue(page) -> None:
    page.click("button[role=tab]:has-text('Queue')")
    page.wait_for_selector("#q-search")


def shown_item(page) -> str:
    return box(page, "wd-item-id")


def selected_tab(page) -> str:
    return page.locator("button[role=tab][aria-selected=true]").first.inner_text().strip()


def wait_opened(page, item_id: int) -> None:
    """Wait until the queue says the row opened, Review is the tab, and it shows `item_id`."""
    wait_box(page, "q-info", f"Item {item_id} opened in Review")
    page.wait_for_function(
        "id => document.querySelector('button[role=tab][aria-selected=true]')?.innerText.trim()"
        " === 'Review' && (document.querySelector('#wd-item-id textarea, #wd-item-id input')"
        "?.value) === id",
        arg=str(item_id),
    )


def no_csp_violations(page) -> None:
    bad = [m for m in page.console_errors if "Content Security Policy" in m or "CSP" in m]
    assert bad == [], bad


def test_queue_table_fits_sorts_filters_and_keeps_text_inert(vpage, live_app: LiveApp, screenshots):
    page = vpage
    name = f"qfit_{page.viewport_name.replace('x', '_')}"
    src = f"fit-{page.viewport_name}"
    live_app.add_user(name, "moderator")
    # Log in first: the Review tab's first claim must not take the items seeded below.
    login(page, live_app, name)
    page.wait_for_timeout(1500)
    ids = live_app.seed_items(4, source=src, verdicts=[live_app.verdict({"weapons": 0.8})] * 4)
    with unit_of_work(live_app.engine) as s:
        # Nobody else picks these up on login: leases held by another reviewer, one expired.
        for item_id in ids[:3]:
            claim_item(s, item_id, "someone_else")
        s.execute(update(Item).where(Item.id == ids[0]).values(filename=HOSTILE))
        s.execute(
            update(Item)
            .where(Item.id == ids[3])
            .values(priority=7, created_at=utcnow() - timedelta(hours=30))
        )
    open_queue(page)
    page.fill("#q-source input, #q-source textarea", src)
    got = search(page, ids)  # priority order
    assert box(page, "q-info") == "4 items"
    # Hostile filename: shown as text (cut to fit), never markup.
    assert got[0][5].startswith("<img src=x onerror=")
    assert page.evaluate("() => window.__pwned") is None
    assert page.locator("#q-table img").count() == 0
    # Fits: no sideways scrolling in the table or the page.
    widths = page.evaluate(
        "() => { const t = document.querySelector('#q-table .table-wrap') || "
        "document.querySelector('#q-table'); const d = document.documentElement; "
        "return [t.scrollWidth, t.clientWidth, d.scrollWidth, d.clientWidth]; }"
    )
    assert widths[0] <= widths[1] + 1 and widths[2] <= widths[3] + 1, widths
    headers = page.locator("#q-table [role=columnheader]").all_inner_texts()
    assert [h.replace("\n", "").strip() for h in headers][:3] == ["item", "status", "priority"]
    page.screenshot(path=str(screenshots / f"queue-moderator-{page.viewport_name}.png"))
    # Sorting changes the order: item id ascending, then descending.
    choose(page, "q-sort", "item id")
    page.locator("#q-desc input").uncheck()
    search(page, sorted(ids))
    page.locator("#q-desc input").check()
    search(page, sorted(ids, reverse=True))
    # Filters: age, priority, who holds it.
    page.fill("#q-older input, #q-older textarea", "24")
    search(page, [ids[3]])
    page.fill("#q-older input, #q-older textarea", "")
    page.fill("#q-prio input, #q-prio textarea", "100")
    search(page, set(ids[:3]), ordered=False)
    page.fill("#q-prio input, #q-prio textarea", "")
    choose(page, "q-held", "nobody")
    search(page, [ids[3]])
    # Saved view "Older than SLA" (24 h by default): open items past it, oldest first.
    page.locator("#q-view label:has-text('Older than SLA')").click()
    wait_box(page, "q-older", "24")
    page.fill("#q-source input, #q-source textarea", src)
    assert search(page, [ids[3]])[0][3].endswith("!")  # the age column marks an item past the SLA
    no_csp_violations(page)


def test_saved_views_and_a_row_opens_in_review_by_click_and_enter(
    wpage, live_app: LiveApp, screenshots
):
    page = wpage
    page.console_errors = []
    page.on("console", lambda m: page.console_errors.append(m.text) if m.type == "error" else None)
    live_app.add_user("qopen_mod", "moderator")
    live_app.add_user("qopen_ann", "annotator")
    # Log in first: the Review tab's first claims must not take the items seeded below.
    login(page, live_app, "qopen_mod")
    open_queue(page)
    page.wait_for_timeout(1500)
    ids = live_app.seed_items(6, source="qopen", verdicts=[live_app.verdict({"drugs": 0.9})] * 6)
    with unit_of_work(live_app.engine) as s:
        claim_item(s, ids[0], "qopen_other")  # another reviewer's item
        claim_item(s, ids[1], "qopen_other")
        escalate(s, ids[1], "qopen_other", note="unclear")
        claim_item(s, ids[2], "qopen_other")
        claim_item(s, ids[3], "qopen_other", lease_s=-1)  # expired: free to open
    # Saved views narrow the list; a source typed afterwards refines it.
    page.locator("#q-view label:has-text('Escalated')").click()
    page.wait_for_timeout(300)
    page.fill("#q-source input, #q-source textarea", "qopen")
    search(page, [ids[1]])
    # One click on a free row: claimed under this user's lease, shown in Review.
    page.locator("#q-view label:has-text('All items')").click()
    page.wait_for_timeout(300)
    page.fill("#q-source input, #q-source textarea", "qopen")
    search(page, set(ids), ordered=False)
    click_cell(page, "qopen-3.png")
    wait_opened(page, ids[3])
    with unit_of_work(live_app.engine) as s:
        item = s.get(Item, ids[3])
        assert (item.status, item.lease_holder) == ("in_review", "qopen_mod")
        assert item.lease_expires_at > utcnow()
    # Enter on a row selected with the keyboard (arrow keys do not open anything).
    open_queue(page)
    page.locator("#q-view label:has-text('My items')").click()
    page.wait_for_timeout(300)
    page.fill("#q-source input, #q-source textarea", "qopen")
    mine = [r[0] for r in search(page)]
    assert str(ids[3]) in mine and str(ids[0]) not in mine, mine
    page.locator("#q-view label:has-text('All items')").click()
    page.wait_for_timeout(300)
    page.fill("#q-source input, #q-source textarea", "qopen")
    with unit_of_work(live_app.engine) as s:
        # Opening ids[3] let the Review tab prefetch more: give ids[4] back, so Enter claims it.
        if s.get(Item, ids[4]).lease_holder == "qopen_mod":
            release(s, ids[4], "qopen_mod", reason="release")
        assert s.get(Item, ids[4]).lease_holder is None
    search(page, set(ids), ordered=False)
    page.evaluate(
        "name => [...document.querySelectorAll('#q-table [role=gridcell]')]"
        ".find(c => c.innerText.trim() === name).focus()",
        "qopen-3.png",
    )
    page.keyboard.press("ArrowDown")  # to qopen-4.png's row
    page.wait_for_timeout(800)
    assert selected_tab(page) == "Queue"
    page.keyboard.press("Enter")
    wait_opened(page, ids[4])
    with unit_of_work(live_app.engine) as s:
        assert s.get(Item, ids[4]).lease_holder == "qopen_mod"
        # Enter opened the row; it did not also submit a decision on the Review card.
        assert s.scalars(select(Decision).where(Decision.item_id.in_(ids))).all() == []
    # Another reviewer's item: a one-line refusal, the tab stays, nothing changes hands.
    open_queue(page)
    search(page, set(ids), ordered=False)
    click_cell(page, "qopen-0.png")
    wait_box(page, "q-info", "Not opened: item")
    assert "being reviewed by qopen_other" in box(page, "q-info")
    toast = page.locator(".toast-body").first
    toast.wait_for()
    assert "being reviewed by qopen_other" in toast.inner_text()
    assert selected_tab(page) == "Queue"
    with unit_of_work(live_app.engine) as s:
        assert s.get(Item, ids[0]).lease_holder == "qopen_other"
    page.screenshot(path=str(screenshots / "queue-refusal-moderator.png"))
    no_csp_violations(page)
    # An annotator opening an escalated item is told who may act on it.
    page.goto(f"{live_app.base_url}/logout")
    login(page, live_app, "qopen_ann")
    open_queue(page)
    page.fill("#q-source input, #q-source textarea", "qopen")
    search(page, set(ids), ordered=False)
    page.screenshot(path=str(screenshots / "queue-annotator.png"))
    click_cell(page, "qopen-1.png")
    wait_box(page, "q-info", "only an admin or engineer can overrule it")
    assert f"item {ids[1]} is already escalated" in box(page, "q-info")
    assert selected_tab(page) == "Queue"
    no_csp_violations(page)


def test_a_row_opens_in_review_with_the_decision_bar_in_view(vpage, live_app: LiveApp):
    """At each target size: one click on a queue row claims it and shows it in Review, whose
    decision bar is on screen without scrolling."""
    page, size = vpage, vpage.viewport_name
    user = f"qsize_{size}"
    live_app.add_user(user, "moderator")
    login(page, live_app, user)
    open_queue(page)
    page.wait_for_timeout(1500)  # the Review tab's first claims are done before seeding
    ids = live_app.seed_items(2, source=f"qsize-{size}", priority=0)
    page.fill("#q-source input, #q-source textarea", f"qsize-{size}")
    search(page, set(ids), ordered=False)
    click_cell(page, f"qsize-{size}-1.png")
    wait_opened(page, ids[1])
    with unit_of_work(live_app.engine) as s:
        assert s.get(Item, ids[1]).lease_holder == user
    for sel in ("#wd-cats", "#wd-note", "#wd-submit", "#wd-skip", "#wd-escalate", "#wd-undo"):
        in_view = page.evaluate(
            """(sel) => { const r = document.querySelector(sel).getBoundingClientRect();
               return r.height > 0 && r.top >= 0 && r.bottom <= window.innerHeight + 0.5
                      && r.left >= 0 && r.right <= window.innerWidth + 0.5; }""",
            sel,
        )
        assert in_view, f"{sel} is not in the {size} viewport after opening a row"
    no_csp_violations(page)


def test_audit_rows_are_readable_with_json_on_expand(vpage, live_app: LiveApp, screenshots):
    page = vpage
    name = f"aud_{page.viewport_name.replace('x', '_')}"
    live_app.add_user(name, "admin")
    [item_id] = live_app.seed_items(1, source=f"aud-{page.viewport_name}", priority=0)
    with unit_of_work(live_app.engine) as s:
        claim_item(s, item_id, "aud_mod")
        escalate(s, item_id, "aud_mod", note=HOSTILE)
    # An engineer sees the Queue (with Overrule) but no Audit tab.
    live_app.add_user(f"eng_{name}", "engineer")
    login(page, live_app, f"eng_{name}")
    open_queue(page)
    page.fill("#q-source input, #q-source textarea", f"aud-{page.viewport_name}")
    search(page, [item_id])
    assert page.locator("button[role=tab]:has-text('Audit')").is_visible() is False
    page.screenshot(path=str(screenshots / f"queue-engineer-{page.viewport_name}.png"))
    page.goto(f"{live_app.base_url}/logout")
    login(page, live_app, name)
    open_queue(page)
    page.fill("#q-source input, #q-source textarea", f"aud-{page.viewport_name}")
    search(page, [item_id])
    # An escalated row, opened by an admin: its id goes to the Overrule box; no tab switch.
    click_cell(page, "escalated")
    wait_box(page, "q-ov-item", str(item_id))
    assert "overrule it below" in box(page, "q-info") and selected_tab(page) == "Queue"
    page.screenshot(path=str(screenshots / f"queue-admin-{page.viewport_name}.png"))
    page.click("button[role=tab]:has-text('Audit')")
    page.fill("#a-item input, #a-item textarea", str(item_id))
    page.click("#a-go")
    page.wait_for_function("() => document.querySelectorAll('#a-table [role=row]').length >= 3")
    page.wait_for_timeout(400)
    got = page.evaluate(ROWS_JS.replace("#q-table", "#a-table"))
    actions = [r[3] for r in got]
    # Newest first (an admin's login may also claim the escalated item: escalation.claimed).
    assert actions.index("item.escalated") < actions.index("item.claimed"), got
    assert all(r[4] == str(item_id) for r in got)
    esc = got[actions.index("item.escalated")]
    assert esc[2] == "aud_mod" and esc[5].startswith("note: <img src=x") and len(esc[5]) <= 120
    # The filter keeps its value after the search.
    assert box(page, "a-item") == str(item_id)
    # Full JSON of the selected event, as text.
    click_cell(page, "item.escalated", "a-table")
    page.wait_for_function(
        "() => (document.querySelector('#a-json')?.innerText || '').includes('status_to')"
    )
    full = page.locator("#a-json").inner_text()
    assert "escalated" in full and "very-long-file-name-" * 6 in full
    assert page.evaluate("() => window.__pwned") is None
    widths = page.evaluate(
        "() => [document.documentElement.scrollWidth, document.documentElement.clientWidth]"
    )
    assert widths[0] <= widths[1] + 1, widths
    page.screenshot(path=str(screenshots / f"audit-admin-{page.viewport_name}.png"))
    with unit_of_work(live_app.engine) as s:
        assert s.scalar(select(AuditEvent.id).where(AuditEvent.item_id == item_id)) is not None
    no_csp_violations(page)
