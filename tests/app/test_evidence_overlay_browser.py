"""Evidence regions on the Review card in real Chromium: the boxes of a prediction's OCR lines
(dashed, category title as label) and of the model's own regions (solid) sit at the right place
over the image, blurred, after a reveal, and on the next card shown by the client-side advance;
hostile OCR text stays text (no element, no script). Screenshot:
test-artifacts/screenshots/evidence_overlay*.png.

Run: .venv/bin/pytest tests/app/test_evidence_overlay_browser.py -m browser
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

HOSTILE = "<img src=x onerror=alert(1)>"
SIZE = 160  # make_png's images: 160 x 160, so the view is too
# Where each box sits, as fractions (left, top, width, height) of the image.
EXPECTED = {
    "ocr": (0.25, 0.125, 0.5, 0.25),
    "model": (0.0, 0.5, 0.375, 0.5),
}
BOXES = """() => {
  const img = document.querySelector('#wd-image').getBoundingClientRect();
  return [...document.querySelectorAll('#wd-image-box .wd-ev-box')].map(b => {
    const r = b.getBoundingClientRect();
    return {source: b.dataset.source, label: b.textContent,
            l: (r.left - img.left) / img.width, t: (r.top - img.top) / img.height,
            w: r.width / img.width, h: r.height / img.height};
  });
}"""


def _regions() -> list[dict]:
    return [
        {
            "position": 0,
            "category": "drugs",
            "box": [40, 20, 120, 60],
            "image_size": [SIZE, SIZE],
            "source": "ocr",
            "why": "attribution",
            "text": HOSTILE,
            "weight": 0.4,
        },
        {
            "position": 0,
            "category": None,
            "box": [40, 20, 120, 60],
            "image_size": [SIZE, SIZE],
            "source": "ocr",
            "why": "reader",
            "text": HOSTILE,
            "read_as": HOSTILE,
        },
        {
            "position": 0,
            "category": "weapons",
            "box": [0, 80, 60, 160],
            "image_size": [SIZE, SIZE],
            "source": "model",
            "why": "grounding",
        },
    ]


def _check_boxes(page, titles: dict[str, str]) -> None:
    page.wait_for_function(
        "() => { const i = document.querySelector('#wd-image');"
        " return i && i.complete && i.naturalWidth > 0; }"
    )
    boxes = page.evaluate(BOXES)
    # The two OCR regions share their line's box: drawn once, labels joined.
    assert sorted(b["source"] for b in boxes) == ["model", "ocr"], boxes
    for b in boxes:
        want = EXPECTED[b["source"]]
        got = (b["l"], b["t"], b["w"], b["h"])
        # Within a pixel or so of the displayed image (~2% of a small image).
        assert all(abs(g - w) < 0.02 for g, w in zip(got, want, strict=True)), (b, want)
    # Labels readable: white on the dark label background, not the page's text colour.
    colours = page.evaluate(
        "() => [...document.querySelectorAll('#wd-image-box .wd-ev-label')]"
        ".map(l => getComputedStyle(l).color)"
    )
    assert colours == ["rgb(255, 255, 255)"] * 2, colours
    labels = sorted(b["label"] for b in boxes)
    assert labels == sorted([f"{titles['drugs']} · → {HOSTILE}", titles["weapons"]]), labels


def _assert_inert(page, dialogs: list[str]) -> None:
    # The hostile text is text: no <img src=x> in the page, no script ran.
    assert page.locator("img[src='x']").count() == 0
    assert page.locator("#wd-image-box img").count() == 1
    assert dialogs == []
    titles = page.evaluate(
        "() => [...document.querySelectorAll('#wd-image-box .wd-ev-box')].map(b => b.title)"
    )
    assert HOSTILE in titles


def test_boxes_sit_on_the_image_and_hostile_text_is_inert(
    wpage, live_app: LiveApp, screenshots
) -> None:
    policy = live_app.policy
    titles = {c.id: c.title_in("en") for c in policy.categories}
    signals = {"evidence_regions": _regions()}
    blurred = live_app.verdict(nsfw=0.95, ocr_text=HOSTILE, signals=signals)
    plain = live_app.verdict(nsfw=0.01, ocr_text=HOSTILE, signals=signals)
    first, second = live_app.seed_items(2, source="evidence", verdicts=[blurred, plain])
    live_app.add_user("ev_mod", "moderator")
    dialogs: list[str] = []
    wpage.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))

    login(wpage, live_app, "ev_mod")
    wait_item(wpage, first)
    assert wpage.get_attribute("#wd-image", "data-state") == "blurred"
    _check_boxes(wpage, titles)
    _assert_inert(wpage, dialogs)
    wpage.locator("#wd-image-box").screenshot(path=str(screenshots / "evidence_overlay.png"))

    # Revealed (server-rendered again): the boxes stay.
    wpage.keyboard.press("r")
    wpage.wait_for_function(
        "() => document.querySelector('#wd-image').dataset.state === 'revealed'"
    )
    _check_boxes(wpage, titles)
    _assert_inert(wpage, dialogs)
    wpage.locator("#wd-image-box").screenshot(
        path=str(screenshots / "evidence_overlay_revealed.png"), scale="device"
    )

    # The next card comes from the prefetched payload (client-side advance): boxes there too.
    wpage.click("#wd-accept")
    wait_item(wpage, second)
    _check_boxes(wpage, titles)
    _assert_inert(wpage, dialogs)


def test_card_without_regions_has_no_overlay(wpage, live_app: LiveApp) -> None:
    [item_id] = live_app.seed_items(1, source="evidence-none", verdicts=[live_app.verdict()])
    live_app.add_user("ev_none", "moderator")
    login(wpage, live_app, "ev_none")
    wait_item(wpage, item_id)
    wpage.wait_for_selector("#wd-image")
    assert wpage.locator("#wd-image-box .wd-ev-frame, #wd-image-box .wd-ev-box").count() == 0


def test_post_thumbnail_shows_the_boxes_of_its_own_image(wpage, live_app: LiveApp) -> None:
    folder = live_app.workdir / "evidence-post"
    folder.mkdir()
    for k in range(2):
        make_png(folder / f"e{k}.png", 7400 + k)
    (folder / "post.jsonl").write_text(json.dumps({"images": ["e0.png", "e1.png"]}) + "\n")
    [r] = ingest_paths(live_app.engine, live_app.settings, [folder / "post.jsonl"]).results
    assert r.item_id is not None
    regions = [{**_regions()[2], "position": 1}]  # the model's box, on image 2
    with unit_of_work(live_app.engine) as s:
        open_statuses = [ItemStatus.queued.value, ItemStatus.scored.value]
        s.execute(update(Item).where(Item.status.in_(open_statuses)).values(priority=0))
        s.execute(update(Item).where(Item.id == r.item_id).values(priority=6000))
        signals = {"evidence_regions": regions}
        record_prediction(s, r.item_id, live_app.verdict(nsfw=0.01, signals=signals))
    live_app.add_user("ev_post", "moderator")
    login(wpage, live_app, "ev_post")
    wait_item(wpage, r.item_id)
    wpage.wait_for_function(
        "() => document.querySelectorAll('#wd-media-strip .wd-medium img').length === 2"
        " && [...document.querySelectorAll('#wd-media-strip img')]"
        ".every(i => i.complete && i.naturalWidth > 0)"
    )
    # Nothing on the cover (the card's image), the box on image 2's thumbnail, in place.
    assert wpage.locator("#wd-image-box .wd-ev-box").count() == 0
    boxes = wpage.evaluate(
        """() => [...document.querySelectorAll('#wd-media-strip .wd-medium')].map(f => {
          const img = f.querySelector('img').getBoundingClientRect();
          return [...f.querySelectorAll('.wd-ev-box')].map(b => {
            const r = b.getBoundingClientRect();
            return [(r.left - img.left) / img.width, (r.top - img.top) / img.height,
                    r.width / img.width, r.height / img.height];
          });
        })"""
    )
    assert boxes[0] == [] and len(boxes[1]) == 1, boxes
    assert all(abs(g - w) < 0.02 for g, w in zip(boxes[1][0], EXPECTED["model"], strict=True))
