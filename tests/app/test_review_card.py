"""The Review card as a moderator's daily tool, in real Chromium at 1366×768 and 1920×1080:
the decision bar in view, the model's suggestion one key away (and recorded as accepted), a
score panel without a headline on a safe card, a blurred card that says why, and admins and
engineers opening on the escalated stream (or a clear empty state). Screenshots of the card
for each role and size land in test-artifacts/screenshots/.

Run: .venv/bin/pytest tests/app/test_review_card.py -m browser
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest
from sqlalchemy import select, update

from storage import review
from storage.db import unit_of_work
from storage.models import Decision, Item
from storage.queue import claim_next
from tests.app.conftest import LiveApp, start_app
from tests.app.test_browser import decisions_by, login, wait_item, wait_until

pytestmark = pytest.mark.browser

SIZES = [(1366, 768), (1920, 1080)]
LONG_OCR = "\n".join(f"line {i}: cheap pills, order now at example.test" for i in range(14))


def _page(chromium, size: tuple[int, int]):
    context = chromium.new_context(viewport={"width": size[0], "height": size[1]})
    page = context.new_page()
    page.set_default_timeout(20_000)
    console: list[str] = []
    page.on("console", lambda m: console.append(m.text) if m.type == "error" else None)
    return context, page, console


def _in_view(page, selector: str) -> bool:
    return page.evaluate(
        """(sel) => { const r = document.querySelector(sel).getBoundingClientRect();
           return r.height > 0 && r.top >= 0 && r.bottom <= window.innerHeight + 0.5
                  && r.left >= 0 && r.right <= window.innerWidth + 0.5; }""",
        selector,
    )


def _rect(page, selector: str) -> dict:
    return page.evaluate(
        "(sel) => { const r = document.querySelector(sel).getBoundingClientRect();"
        " return {top: r.top, bottom: r.bottom, left: r.left, right: r.right}; }",
        selector,
    )


def _bar_in_view(page) -> None:
    for sel in (
        "#wd-cats",
        "#wd-note",
        "#wd-submit",
        "#wd-accept",
        "#wd-skip",
        "#wd-escalate",
        "#wd-undo",
    ):
        assert _in_view(page, sel), f"{sel} is not in the viewport: {_rect(page, sel)}"


def _no_csp_errors(console: list[str]) -> None:
    assert not [m for m in console if "Content Security Policy" in m], console


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_decision_bar_in_view_and_accept_key_records_the_models_flags(
    chromium, live_app: LiveApp, screenshots: Path, size
) -> None:
    who = f"card_mod_{size[0]}"
    live_app.add_user(who, "moderator")
    verdicts = [
        live_app.verdict(
            {"drugs": 0.91, "illegal_ads": 0.7, "scam_fraud": 0.3},
            ocr_text=LONG_OCR,
            rationale="Sells pills: drugs and an illegal ad.",
        ),
        live_app.verdict({}, ocr_text="Happy birthday, Sam!", rationale=None),
    ]
    ids = live_app.seed_items(2, source=f"card-{size[0]}", verdicts=verdicts)
    context, page, console = _page(chromium, size)
    try:
        login(page, live_app, who)
        wait_item(page, ids[0])
        page.wait_for_function("() => document.querySelector('#wd-next-json textarea').value")
        time.sleep(0.5)
        shot = screenshots / f"review_card_moderator_{size[0]}x{size[1]}.png"
        page.screenshot(path=str(shot))
        _bar_in_view(page)
        # The card uses the width: the three columns span most of the window.
        width = page.evaluate("() => document.querySelector('#wd-card').offsetWidth")
        assert width >= 0.9 * size[0] - 40, width
        # Pre-filled with the model's flags (the default), sorted scores, over-threshold red.
        checked = page.eval_on_selector_all("#wd-cats input:checked", "els => els.length")
        assert checked == 2
        names = page.eval_on_selector_all(
            "#wd-scores .wd-s .wd-s-name", "els => els.map(e => e.textContent)"
        )
        assert names[:3] == ["Drugs", "Illegal ads", "Scam / fraud"] or len(names) > 3
        assert page.locator("#wd-scores .wd-over").count() == 2
        assert page.locator("#wd-scores .wd-near").count() == 1  # scam 0.3 vs threshold 0.5
        assert "Model flags" in page.inner_text("#wd-scores .wd-verdict")
        # The policy's definition: on hover (title) and on D.
        assert page.get_attribute("#wd-scores .wd-s", "title")
        assert not page.locator("#wd-scores .wd-def").first.is_visible()
        page.keyboard.press("d")
        assert page.locator("#wd-scores .wd-def").first.is_visible()
        page.screenshot(path=str(shot.with_name(shot.stem + "_definitions.png")))
        page.keyboard.press("d")
        page.keyboard.press("a")
        wait_item(page, ids[1])
        time.sleep(0.5)
        _bar_in_view(page)
        # A safe card: no headline category, no Reveal, no empty rationale box.
        assert page.inner_text("#wd-scores .wd-verdict") == "Model: nothing over its threshold"
        assert not page.locator("#wd-reveal").is_visible()
        assert not page.locator("#wd-rationale").is_visible()
        assert page.eval_on_selector_all("#wd-cats input:checked", "els => els.length") == 0
        page.screenshot(path=str(screenshots / f"review_card_safe_{size[0]}x{size[1]}.png"))
        # N goes to the note; typing there does not trigger keys.
        page.keyboard.press("n")
        page.keyboard.type("ok as")
        assert page.eval_on_selector("#wd-note textarea", "e => e.value") == "ok as"
        page.keyboard.press("Escape")
        page.keyboard.press("Enter")
        got = wait_until(
            lambda: len(decisions_by(live_app, who)) >= 2 and decisions_by(live_app, who)
        )
        assert [d.item_id for d in got] == ids
        assert sorted(got[0].categories) == ["drugs", "illegal_ads"]
        assert got[0].meta.get("accepted_model_suggestion") is True
        assert got[1].categories == [] and got[1].note == "ok as"
        assert "accepted_model_suggestion" not in got[1].meta
        _no_csp_errors(console)
    finally:
        context.close()


def test_a_blurred_card_says_why_and_hides_graphic_text_until_revealed(
    chromium, live_app: LiveApp, screenshots: Path
) -> None:
    live_app.add_user("card_blur", "moderator")
    gore_text = "graphic caption <img src=x onerror=window.__pwned=9>"
    ids = live_app.seed_items(
        1,
        source="card-blur",
        verdicts=[live_app.verdict({"violence_gore": 0.93}, ocr_text=gore_text, nsfw=0.6)],
    )
    context, page, console = _page(chromium, SIZES[0])
    try:
        login(page, live_app, "card_blur")
        wait_item(page, ids[0])
        note = page.inner_text("#wd-image-box .wd-blurnote")
        # The policy's title, not its id.
        assert "Violence and gore 0.93" in note and "NSFW 0.60" in note
        assert "violence_gore" not in note
        assert page.locator("#wd-reveal").is_visible()
        ocr = page.eval_on_selector("#wd-ocr textarea", "e => e.value")
        assert "hidden until revealed" in ocr and "graphic caption" not in ocr
        page.screenshot(path=str(screenshots / "review_card_blurred_1366x768.png"))
        page.keyboard.press("r")
        page.wait_for_function(
            "() => document.querySelector('#wd-ocr textarea').value.includes('graphic caption')"
        )
        assert page.eval_on_selector("#wd-ocr textarea", "e => e.value") == gore_text
        assert not page.locator("#wd-reveal").is_visible()
        assert page.evaluate("() => window.__pwned") is None
        _no_csp_errors(console)
    finally:
        context.close()


def _escalate_one(app: LiveApp, who: str, verdict) -> int:
    [item] = app.seed_items(1, source=f"esc-{who}", verdicts=[verdict])
    with unit_of_work(app.engine) as s:
        s.execute(update(Item).where(Item.id == item).values(priority=100_000))
    with unit_of_work(app.engine) as s:
        claimed = claim_next(s, who, lease_s=600)
        assert claimed is not None and claimed.item_id == item
        review.escalate(s, who, item, note="unsure")
    return item


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_admin_opens_on_an_escalated_item_reveals_and_resolves_it(
    chromium, live_app: LiveApp, screenshots: Path, size
) -> None:
    live_app.add_user(f"esc_mod_{size[0]}", "moderator")
    admin = f"esc_admin_{size[0]}"
    live_app.add_user(admin, "admin")
    item = _escalate_one(
        live_app, f"esc_mod_{size[0]}", live_app.verdict({"child_safety": 0.95}, ocr_text="x")
    )
    context, page, console = _page(chromium, size)
    try:
        login(page, live_app, admin)
        wait_item(page, item)
        assert page.is_checked("#wd-stream input[value='Escalated']")
        _bar_in_view(page)
        page.keyboard.press("r")  # child_safety: admins may reveal
        page.wait_for_function(
            "() => document.querySelector('#wd-image').dataset.state === 'revealed'"
        )
        page.screenshot(path=str(screenshots / f"review_card_admin_{size[0]}x{size[1]}.png"))
        page.keyboard.press("Enter")  # pre-filled child_safety: confirm

        def resolved():
            with unit_of_work(live_app.engine) as s:
                return s.scalars(
                    select(Decision).where(Decision.item_id == item).order_by(Decision.id)
                ).all()[-1:]

        [d] = wait_until(resolved)
        assert d.meta.get("overrule") and d.meta.get("resolution")
        assert d.categories == ["child_safety"]
        _no_csp_errors(console)
    finally:
        context.close()


def test_engineer_with_nothing_escalated_gets_an_empty_state_with_a_queue_link(
    chromium, tmp_path: Path, screenshots: Path
) -> None:
    app = start_app(tmp_path)
    try:
        app.add_user("card_eng", "engineer")
        app.add_user("card_eng_mod", "moderator")
        for size in SIZES:
            context, page, console = _page(chromium, size)
            try:
                login(page, app, "card_eng")
                page.wait_for_function(
                    "() => document.querySelector('#wd-image-box').innerText"
                    ".includes('No escalated items')"
                )
                _bar_in_view(page)
                page.screenshot(
                    path=str(screenshots / f"review_card_engineer_{size[0]}x{size[1]}.png")
                )
                assert page.is_checked("#wd-stream input[value='Queue']")
                page.click("#wd-image-box .wd-goto-queue")
                page.wait_for_function(
                    "() => [...document.querySelectorAll('#wd-tabs [role=tab]')]"
                    ".some(t => t.textContent.trim() === 'Queue'"
                    " && t.getAttribute('aria-selected') === 'true')"
                )
                _no_csp_errors(console)
            finally:
                context.close()
        # An engineer may not reveal a restricted item the stream hands out.
        item = _escalate_one(app, "card_eng_mod", app.verdict({"child_safety": 0.95}))
        context, page, console = _page(chromium, SIZES[0])
        try:
            login(page, app, "card_eng")
            wait_item(page, item)
            page.keyboard.press("r")
            assert wait_until(
                lambda: (
                    page.locator("#wd-image.wd-blurred").count() == 1
                    and "only admin" in page.content()
                )
            )
        finally:
            context.close()
    finally:
        app.proc.terminate()
        try:
            app.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            app.proc.kill()
        app.engine.dispose()


def test_prefill_off_opens_an_empty_card_and_the_accept_key_still_works(
    chromium, tmp_path: Path
) -> None:
    app = start_app(tmp_path, {"WARDEN_UI__PREFILL_MODEL_FLAGS": "false"})
    try:
        app.add_user("card_noprefill", "moderator")
        ids = app.seed_items(2, source="noprefill", verdicts=[app.verdict({"weapons": 0.9})] * 2)
        context, page, console = _page(chromium, SIZES[0])
        try:
            login(page, app, "card_noprefill")
            wait_item(page, ids[0])
            time.sleep(0.5)
            assert page.eval_on_selector_all("#wd-cats input:checked", "els => els.length") == 0
            page.keyboard.press("a")
            wait_item(page, ids[1])
            # The next card (shown from the browser's prefetch) is not pre-filled either.
            assert page.eval_on_selector_all("#wd-cats input:checked", "els => els.length") == 0
            page.keyboard.press("4")
            page.keyboard.press("Enter")
            got = wait_until(
                lambda: (
                    len(decisions_by(app, "card_noprefill")) >= 2
                    and decisions_by(app, "card_noprefill")
                )
            )
            assert [d.categories for d in got] == [["weapons"], ["weapons"]]
            assert [bool(d.meta.get("accepted_model_suggestion")) for d in got] == [True, False]
            _no_csp_errors(console)
        finally:
            context.close()
    finally:
        app.proc.terminate()
        try:
            app.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            app.proc.kill()
        app.engine.dispose()
