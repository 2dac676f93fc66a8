"""The model's descriptions on the Review card in real Chromium: at the top of the card, above
the scores, one per image of a post ("Image 2"), the model's hostile text shown as inert text
(no script runs, no element is made); the next item, shown at once from the prefetch by the
client-side step, is the demo model's, which says plainly that it has no description.
Screenshots: test-artifacts/screenshots/description*.png.

Run: .venv/bin/pytest tests/app/test_description_browser.py -m browser
"""

from __future__ import annotations

import json

import pytest
from sqlalchemy import update

from storage.db import unit_of_work
from storage.domain import ItemStatus
from storage.ingest import ingest_paths
from storage.models import Item
from storage.queue import record_prediction
from tests.app.conftest import LiveApp, make_png
from tests.app.test_browser import login, wait_item

pytestmark = pytest.mark.browser

HOSTILE = (
    '<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2">A sign reads FREE'
)
TEXTS = ["A man holds a phone showing a chat.", HOSTILE, "A beach at sunset, two people."]
BOX = "#wd-description"


def _top(page, sel: str) -> float:
    return page.evaluate(
        f"() => document.querySelector({json.dumps(sel)}).getBoundingClientRect().top"
    )


def test_descriptions_show_first_inert_and_the_demo_says_it_has_none(
    wpage, live_app: LiveApp, screenshots
) -> None:
    folder = live_app.workdir / "describe-post"
    folder.mkdir()
    for k in range(3):
        make_png(folder / f"d{k}.png", 8100 + k)
    (folder / "post.jsonl").write_text(
        json.dumps({"images": ["d0.png", "d1.png", "d2.png"], "text": "trip"}) + "\n"
    )
    [r] = ingest_paths(live_app.engine, live_app.settings, [folder / "post.jsonl"]).results
    assert r.item_id is not None
    post = r.item_id
    [demo_item] = live_app.seed_items(1, source="describe-demo")
    written = {
        "status": "written",
        "seconds": 0.4,
        "max_new_tokens": 64,
        "media": [
            {"position": k, "kind": "image", "timestamp_s": None, "label": f"Image {k + 1}",
             "text": t}
            for k, t in enumerate(TEXTS)
        ],
    }  # fmt: skip
    blind = {"status": "unavailable", "reason": "cannot_see_images"}
    with unit_of_work(live_app.engine) as s:
        open_statuses = [ItemStatus.queued.value, ItemStatus.scored.value]
        s.execute(update(Item).where(Item.status.in_(open_statuses)).values(priority=0))
        s.execute(update(Item).where(Item.id == post).values(priority=6001))
        s.execute(update(Item).where(Item.id == demo_item).values(priority=6000))
        record_prediction(s, post, live_app.verdict(signals={"description": written}))
        record_prediction(s, demo_item, live_app.verdict(signals={"description": blind}))
    live_app.add_user("desc_mod", "moderator")
    login(wpage, live_app, "desc_mod")
    wait_item(wpage, post)
    wpage.wait_for_selector(f"{BOX} .wd-desc[data-state=written]")

    labels = wpage.eval_on_selector_all(f"{BOX} dt", "els => els.map(e => e.textContent)")
    assert labels == ["Image 1", "Image 2", "Image 3"]
    shown = wpage.eval_on_selector_all(f"{BOX} dd", "els => els.map(e => e.textContent)")
    assert shown == TEXTS  # the hostile text, character for character, as text
    made = wpage.evaluate(
        f"() => document.querySelectorAll('{BOX} script, {BOX} img, {BOX} [onerror]').length"
    )
    assert made == 0
    assert wpage.evaluate("() => window.__pwned === undefined")
    # At the top of the card: above the card's columns, so above the scores and the image.
    assert _top(wpage, BOX) < _top(wpage, "#wd-card") <= _top(wpage, "#wd-scores")
    assert _top(wpage, BOX) < _top(wpage, "#wd-image-box")
    wpage.screenshot(path=str(screenshots / "description_card.png"), full_page=False)

    # Submit: the prefetched next item (the demo's) is shown by the client-side step.
    wpage.locator("body").focus()
    wpage.keyboard.press("Enter")
    wait_item(wpage, demo_item)
    wpage.wait_for_selector(f"{BOX} .wd-desc[data-state=none]")
    # The description element itself: while the server round trip that follows the client-side
    # step is pending, Gradio puts its own timer ("0.2s") inside the component's box.
    assert (
        wpage.inner_text(f"{BOX} .wd-desc[data-state=none]").strip()
        == "No description: this model cannot see images"
    )
    assert wpage.locator(f"{BOX} .wd-desc-text").count() == 0
    assert wpage.evaluate("() => window.__pwned === undefined")
    wpage.locator(BOX).screenshot(path=str(screenshots / "description_demo.png"))
