"""A post of three images on the Review card in real Chromium: each image in the media strip
blurred or not by its own signals (only blurred derivatives of graphic ones reach the
browser), "]" moves to the next image, "V" reveals the selected one only (the cover stays
blurred, also when the card is re-rendered), and the reveal is audited with its position.
Screenshots: test-artifacts/screenshots/media_strip*.png.

Run: .venv/bin/pytest tests/app/test_media_strip_browser.py -m browser
"""

from __future__ import annotations

import json
from urllib.parse import parse_qs, urlparse

import pytest
from sqlalchemy import select, update

from storage.db import unit_of_work
from storage.domain import ItemStatus
from storage.ingest import ingest_paths
from storage.media import record_medium_signals
from storage.models import AuditEvent, Item
from storage.queue import record_prediction
from tests.app.conftest import LiveApp, make_png
from tests.app.test_browser import login, wait_item

pytestmark = pytest.mark.browser

STATES = (
    "() => [...document.querySelectorAll('#wd-media-strip .wd-medium')].map(f => f.dataset.state)"
)
# The strip's controls that app/static/media.js drives: in the page, never drawn, never focused.
CONTROLS = ("#wd-medium-pos", "#wd-reveal-medium")


def assert_controls_not_drawn(page) -> None:
    """No box, not visible, and no focusable part in the tab order (screenshots once showed a
    "Textbox" and a "Reveal the selected image (V)" button under the card)."""
    for sel in CONTROLS:
        assert page.locator(sel).count() == 1, sel  # still there for the script
        assert page.locator(sel).bounding_box() is None, sel
        assert not page.locator(sel).is_visible(), sel
        drawn = page.evaluate(
            "(sel) => [...document.querySelectorAll(sel + ', ' + sel + ' *')]"
            ".filter(e => e.getClientRects().length && e.getBoundingClientRect().width > 0)"
            ".map(e => e.tagName)",
            sel,
        )
        assert drawn == [], (sel, drawn)
    # Tab through the page: focus never lands inside either control.
    page.locator("body").focus()
    for _ in range(60):
        page.keyboard.press("Tab")
        inside = page.evaluate(
            "(sels) => sels.some(s => document.activeElement && document.activeElement.closest(s))",
            list(CONTROLS),
        )
        assert not inside, "a hidden strip control took the focus"


def test_post_images_blur_and_reveal_one_by_one(wpage, live_app: LiveApp, screenshots) -> None:
    folder = live_app.workdir / "media-strip"
    folder.mkdir()
    for k in range(3):
        make_png(folder / f"s{k}.png", 7300 + k)
    (folder / "post.jsonl").write_text(
        json.dumps({"images": ["s0.png", "s1.png", "s2.png"], "text": "holiday"}) + "\n"
    )
    [r] = ingest_paths(live_app.engine, live_app.settings, [folder / "post.jsonl"]).results
    assert r.item_id is not None
    item_id = r.item_id
    policy = live_app.policy
    low = {c: 0.02 for c in policy.ids}
    evidence = {
        "media": [{"position": k, "label": f"Image {k + 1}", "scores": low} for k in range(3)]
    }
    with unit_of_work(live_app.engine) as s:
        open_statuses = [ItemStatus.queued.value, ItemStatus.scored.value]
        s.execute(update(Item).where(Item.status.in_(open_statuses)).values(priority=0))
        s.execute(update(Item).where(Item.id == item_id).values(priority=5000))
        record_prediction(
            s, item_id, live_app.verdict(nsfw=0.95, signals={"media_evidence": evidence})
        )
        for k, nsfw in enumerate((0.01, 0.02, 0.95)):  # only image 3 is NSFW
            record_medium_signals(s, item_id, k, ocr_text=None, nsfw_score=nsfw)
    live_app.add_user("strip_mod", "moderator")
    served: list[tuple[int, str]] = []

    def seen(resp) -> None:
        if f"/img/{item_id}?" in resp.url:
            m = int(parse_qs(urlparse(resp.url).query).get("m", ["0"])[0])
            served.append((m, resp.headers.get("x-warden-variant", "")))

    wpage.on("response", seen)
    login(wpage, live_app, "strip_mod")
    wait_item(wpage, item_id)
    wpage.wait_for_function(STATES + ".length === 3")
    assert wpage.evaluate(STATES) == ["revealed", "revealed", "blurred"]
    wpage.wait_for_function(
        "() => [...document.querySelectorAll('#wd-media-strip img')]"
        ".every(i => i.complete && i.naturalWidth > 0)"
    )
    wpage.locator("#wd-media-strip").screenshot(path=str(screenshots / "media_strip.png"))
    wpage.screenshot(path=str(screenshots / "media_strip_card.png"), full_page=True)
    assert_controls_not_drawn(wpage)
    wpage.locator("#wd-media-strip .wd-medium").first.click()
    assert (2, "view") not in served and (2, "blur") in served, served

    wpage.keyboard.press("]")
    wpage.keyboard.press("]")
    current = "() => document.querySelector('#wd-media-strip .wd-medium-current').dataset.position"
    assert wpage.evaluate(current) == "2"
    wpage.keyboard.press("v")
    wpage.wait_for_function(STATES + "[2] === 'revealed'")
    assert wpage.evaluate(STATES) == ["revealed", "revealed", "revealed"]
    assert wpage.input_value("#wd-status textarea, #wd-status input") == (
        f"Item {item_id}: image 3 revealed"
    )
    wpage.wait_for_function(
        "() => [...document.querySelectorAll('#wd-media-strip img')]"
        ".every(i => i.complete && i.naturalWidth > 0)"
    )
    wpage.locator("#wd-media-strip").screenshot(path=str(screenshots / "media_strip_revealed.png"))
    assert (2, "view") in served
    # Revealing image 3 revealed image 3 only: re-rendering the card (greyscale) keeps the
    # cover, which this reviewer never revealed, blurred.
    assert wpage.get_attribute("#wd-image", "data-state") == "blurred"
    wpage.click("#wd-grey input[type=checkbox]")
    wpage.wait_for_function(
        "() => { const i = document.querySelector('#wd-image');"
        " return i && i.src.includes('g=1'); }"
    )
    assert wpage.get_attribute("#wd-image", "data-state") == "blurred"
    with unit_of_work(live_app.engine) as s:
        reveals = s.scalars(
            select(AuditEvent).where(AuditEvent.actor == "strip_mod", AuditEvent.action == "reveal")
        ).all()
    assert [(e.item_id, e.details.get("position")) for e in reveals] == [(item_id, 2)]


def test_single_image_card_has_no_strip_or_strip_controls(wpage, live_app: LiveApp) -> None:
    [item_id] = live_app.seed_items(1, source="strip-single", verdicts=[live_app.verdict()])
    live_app.add_user("strip_single", "moderator")
    login(wpage, live_app, "strip_single")
    wait_item(wpage, item_id)
    wpage.wait_for_selector("#wd-image")
    assert wpage.locator("#wd-media-strip .wd-medium").count() == 0
    assert wpage.locator("#wd-media-strip [role=group]").count() == 0
    assert_controls_not_drawn(wpage)
