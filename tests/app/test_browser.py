"""The workbench in real Chromium: keyboard review, blur until reveal, inert hostile text,
zip upload report, bulk decisions. Screenshots land in test-artifacts/screenshots/.

Run: .venv/bin/pytest tests/app/test_browser.py -m browser
"""

from __future__ import annotations

import io
import json
import re
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sqlalchemy import select

from storage.db import unit_of_work
from storage.models import AuditEvent, Decision, Item, User
from tests.app.conftest import PASSWORD, LiveApp, make_png

pytestmark = pytest.mark.browser

ITEM_BOX = "#wd-item-id textarea, #wd-item-id input"


def login(page, app: LiveApp, username: str) -> None:
    page.goto(f"{app.base_url}/login")
    page.fill("#username", username)
    page.fill("#password", PASSWORD)
    page.click("#login-btn")
    page.wait_for_url("**/ui/**")
    page.wait_for_selector("#wd-who")


def shown_item(page) -> str:
    return page.eval_on_selector(ITEM_BOX, "e => e.value")


def wait_item(page, item_id: int) -> None:
    try:
        page.wait_for_function(
            "([sel, id]) => { const e = document.querySelector(sel); return e && e.value === id; }",
            arg=[ITEM_BOX, str(item_id)],
        )
    except Exception as exc:
        state = page.evaluate(
            "() => ['#wd-item-id', '#wd-status', '#wd-meta', '#wd-next-json'].map(s => "
            "{ const e = document.querySelector(s + ' textarea, ' + s + ' input'); "
            "return e ? e.value.slice(0, 120) : null; })"
        )
        raise AssertionError(f"item {item_id} not shown; page state {state}") from exc


def wait_until(predicate, timeout_s: float = 15.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    return predicate()


def decisions_by(app: LiveApp, username: str) -> list[Decision]:
    with unit_of_work(app.engine) as s:
        uid = s.scalar(select(User.id).where(User.username == username))
        return list(
            s.scalars(
                select(Decision).where(Decision.reviewer_id == uid).order_by(Decision.id)
            ).all()
        )


def test_moderator_decides_five_items_with_the_keyboard(wpage, live_app: LiveApp, screenshots):
    live_app.add_user("kb_mod", "moderator")
    # Scores under every threshold: the card opens with nothing pre-filled (the model's flags
    # are pre-checked by default, see tests/app/test_review_card.py), so digits start from none.
    verdicts = [live_app.verdict({"weapons": 0.3}, ocr_text=f"text {i}") for i in range(8)]
    ids = live_app.seed_items(8, source="keyboard", verdicts=verdicts)
    login(wpage, live_app, "kb_mod")
    wait_item(wpage, ids[0])
    wpage.wait_for_function("() => document.querySelector('#wd-next-json textarea').value")
    # keys per item: digits toggle categories in policy order (4 = weapons, 8 = scam_fraud).
    plan = [["4"], [], ["4", "8"], ["Shift+Digit1"], ["8"]]
    expected = [["weapons"], [], ["weapons", "scam_fraud"], ["privacy_pii"], ["scam_fraud"]]
    for n, keys in enumerate(plan):
        wait_item(wpage, ids[n])
        for key in keys:
            wpage.keyboard.press(key)
        if n == 2:
            wpage.screenshot(path=str(screenshots / "review_keyboard.png"))
        wpage.keyboard.press("Enter")
        wait_item(wpage, ids[n + 1])
    got = wait_until(
        lambda: len(decisions_by(live_app, "kb_mod")) >= 5 and decisions_by(live_app, "kb_mod")
    )
    assert [d.item_id for d in got] == ids[:5]
    assert [sorted(d.categories) for d in got] == [sorted(e) for e in expected]
    assert all(d.source == "moderator" for d in got)
    with unit_of_work(live_app.engine) as s:
        statuses = [s.get(Item, i).status for i in ids[:5]]
    assert statuses == ["decided"] * 5
    # Typing in the note field does not trigger shortcuts; Esc leaves it, then E escalates.
    wpage.click("#wd-note textarea")
    wpage.keyboard.type("s4e")
    assert wpage.eval_on_selector("#wd-note textarea", "e => e.value") == "s4e"
    assert shown_item(wpage) == str(ids[5])
    assert wpage.eval_on_selector_all("#wd-cats input:checked", "els => els.length") == 0
    wpage.keyboard.press("Escape")
    wpage.keyboard.press("e")
    wait_item(wpage, ids[6])
    wpage.keyboard.press("s")
    wait_item(wpage, ids[7])

    def statuses() -> list[str]:
        with unit_of_work(live_app.engine) as s:
            return [s.get(Item, i).status for i in ids[5:7]]

    assert wait_until(lambda: statuses()[0] == "escalated" and statuses()[1] != "in_review")
    with unit_of_work(live_app.engine) as s:
        skipped = s.get(Item, ids[6])
        assert skipped.status == "scored" and skipped.lease_holder is None


def _region_variance(page, selector: str) -> float:
    png = page.locator(selector).screenshot()
    return float(np.asarray(Image.open(io.BytesIO(png)).convert("L"), dtype=float).var())


def test_blurred_image_stays_blurred_until_revealed(wpage, live_app: LiveApp, screenshots):
    live_app.add_user("blur_mod", "moderator")
    ids = live_app.seed_items(
        2,
        source="blur",
        verdicts=[
            live_app.verdict({"sexual": 0.97}, nsfw=0.9),
            live_app.verdict({"violence_gore": 0.9}),
        ],
    )
    served: list[tuple[str, str]] = []
    wpage.on(
        "response",
        lambda r: (
            served.append((r.url, r.headers.get("x-warden-variant", "")))
            if "/img/" in r.url
            else None
        ),
    )
    login(wpage, live_app, "blur_mod")
    wait_item(wpage, ids[0])
    wpage.wait_for_function(
        "() => { const i = document.querySelector('#wd-image');"
        " return i && i.complete && i.naturalWidth > 0; }"
    )
    time.sleep(0.5)
    before = _region_variance(wpage, "#wd-image")
    wpage.locator("#wd-image-box").screenshot(path=str(screenshots / "blurred.png"))
    # Nothing but blurred derivatives reached the browser (the prefetched next item included).
    assert served and all(variant == "blur" for _, variant in served), served
    wpage.keyboard.press("r")
    wpage.wait_for_function(
        "() => { const i = document.querySelector('#wd-image');"
        " return i && i.dataset.state === 'revealed' && i.complete"
        " && i.naturalWidth > 0; }"
    )
    time.sleep(0.5)
    after = _region_variance(wpage, "#wd-image")
    wpage.locator("#wd-image-box").screenshot(path=str(screenshots / "revealed.png"))
    assert after > 3 * before, (before, after)
    assert any(variant == "view" for _, variant in served)
    with unit_of_work(live_app.engine) as s:
        reveals = s.scalars(
            select(AuditEvent).where(AuditEvent.actor == "blur_mod", AuditEvent.action == "reveal")
        ).all()
    assert [e.item_id for e in reveals] == [ids[0]]
    wpage.wait_for_function(
        "() => document.querySelector('#wd-exposure textarea, #wd-exposure"
        " input').value.includes('1 reveals today')"
    )


HOSTILE = '<img src=x onerror="window.__pwned=1;alert(1)">'


def test_hostile_text_shows_as_text_and_runs_nothing(wpage, live_app: LiveApp, screenshots):
    live_app.add_user("xss_mod", "moderator")
    dialogs: list[str] = []
    wpage.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    ids = live_app.seed_items(
        1,
        source="xss",
        verdicts=[
            live_app.verdict(
                {"scam_fraud": 0.9}, ocr_text=HOSTILE, rationale="<script>window.__pwned=2</script>"
            )
        ],
        texts=["<b onmouseover=alert(2)>hover</b><svg onload=alert(3)>"],
    )
    login(wpage, live_app, "xss_mod")
    wait_item(wpage, ids[0])
    time.sleep(1.0)
    assert wpage.eval_on_selector("#wd-ocr textarea", "e => e.value") == HOSTILE
    assert wpage.locator("#wd-ocr textarea").is_visible()
    assert "<script>" in wpage.eval_on_selector("#wd-rationale textarea", "e => e.value")
    wpage.mouse.move(300, 300)
    wpage.screenshot(path=str(screenshots / "hostile_text.png"))
    assert wpage.evaluate("() => window.__pwned") is None
    assert dialogs == []
    assert wpage.locator("img[src='x']").count() == 0
    assert wpage.locator("svg[onload]").count() == 0


def test_the_models_reading_shows_under_the_raw_ocr_text(wpage, live_app: LiveApp):
    """A model with a reader (model.reading) stores how it read leetspeak; the analyst sees
    the raw OCR text first, the reading below it, both as inert text."""
    live_app.add_user("read_mod", "moderator")
    raw = "8uy c0c41n3 <img src=x onerror=window.__pwned=4>"
    read = "buy cocaine <img src=x onerror=window.__pwned=4>"
    ids = live_app.seed_items(
        1,
        source="reading",
        verdicts=[live_app.verdict({"drugs": 0.9}, ocr_text=raw, signals={"ocr_read_as": read})],
    )
    login(wpage, live_app, "read_mod")
    wait_item(wpage, ids[0])
    shown = wpage.eval_on_selector("#wd-ocr textarea", "e => e.value")
    assert shown == f"{raw}\n\n[read by the model as]\n{read}"
    assert wpage.evaluate("() => window.__pwned") is None
    assert wpage.locator("img[src='x']").count() == 0


def test_zip_upload_reports_each_file(wpage, live_app: LiveApp, tmp_path: Path, screenshots):
    live_app.add_user("up_mod", "moderator")
    archive = tmp_path / "batch.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for i in range(2):
            zf.write(make_png(tmp_path / f"photo{i}.png", 9000 + i), f"photo{i}.png")
        zf.writestr("notes.txt", "not an image")
        zf.writestr("broken.png", b"\x89PNG\r\n\x1a\nthis is not really a png")
    login(wpage, live_app, "up_mod")
    wpage.click("button[role=tab]:has-text('Upload')")
    wpage.locator("#up-files input[type=file]").set_input_files(str(archive))
    wpage.wait_for_timeout(1000)
    wpage.click("#up-go")
    wpage.wait_for_function(
        "() => { const t = document.querySelector('#up-report'); "
        "return t && t.innerText.includes('photo1.png') && t.innerText.includes('notes.txt'); }",
        timeout=60_000,
    )
    wpage.screenshot(path=str(screenshots / "upload_report.png"))
    cells = wpage.eval_on_selector_all(
        "#up-report [role=gridcell]", "cells => cells.map(c => c.innerText.trim())"
    )
    rows = [cells[i : i + 5] for i in range(0, len(cells), 5)]  # file, status, reason, ...
    status = {re.split(r"[!/]", row[0])[-1]: row[1] for row in rows}
    assert status.get("photo0.png") == "accepted", cells
    assert status.get("photo1.png") == "accepted", cells
    assert status.get("notes.txt") == "rejected", cells
    assert status.get("broken.png") == "rejected", cells
    with unit_of_work(live_app.engine) as s:
        names = s.scalars(select(Item.filename).where(Item.source == "upload")).all()
    assert {n.rsplit("/", 1)[-1] for n in names if n} >= {"photo0.png", "photo1.png"}


def test_upload_takes_a_video_and_a_zip_of_posts(wpage, live_app: LiveApp, tmp_path: Path):
    """The browser's file chooser accepts videos, and a zip whose manifest.jsonl names its
    members arrives as posts (one item of several media) with their text."""
    from storage.media import media_of
    from tests.storage._videos import encode_video

    live_app.add_user("media_up", "moderator")
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(encode_video(36, size=(96, 64), cut=18))
    archive = tmp_path / "posts.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for i in range(2):
            zf.write(make_png(tmp_path / f"post{i}.png", 9700 + i), f"post{i}.png")
        zf.writestr(
            "manifest.jsonl",
            json.dumps({"images": ["post0.png", "post1.png"], "text": "two from a zip"}) + "\n",
        )
    login(wpage, live_app, "media_up")
    wpage.click("button[role=tab]:has-text('Upload')")
    accept = wpage.get_attribute("#up-files input[type=file]", "accept") or ""
    assert ".mp4" in accept and ".zip" in accept, accept
    wpage.locator("#up-files input[type=file]").set_input_files([str(clip), str(archive)])
    wpage.wait_for_timeout(1000)
    wpage.click("#up-go")
    wpage.wait_for_function(
        "() => (document.querySelector('#up-summary textarea, #up-summary input')?.value || '')"
        ".includes('accepted: 2')",
        timeout=120_000,
    )
    with unit_of_work(live_app.engine) as s:
        items = s.scalars(select(Item).where(Item.source == "upload")).all()
        by_text = {i.text: i for i in items}
        post = by_text["two from a zip"]
        assert [m.kind for m in media_of(s, post.id)] == ["image", "image"]
        video = next(i for i in items if i.filename == "clip.mp4")
        frames = media_of(s, video.id)
        assert frames and {m.kind for m in frames} == {"frame"}


def test_upload_can_score_the_new_items_at_once(wpage, live_app: LiveApp, tmp_path: Path):
    from storage.models import Prediction

    live_app.add_user("score_mod", "moderator")
    files = [str(make_png(tmp_path / f"fresh{i}.png", 9500 + i)) for i in range(2)]
    login(wpage, live_app, "score_mod")
    wpage.click("button[role=tab]:has-text('Upload')")
    wpage.locator("#up-files input[type=file]").set_input_files(files)
    wpage.wait_for_timeout(1000)
    wpage.locator("#up-score input[type=checkbox]").check()
    wpage.click("#up-go")
    wpage.wait_for_function(
        "() => (document.querySelector('#up-summary textarea, #up-summary input')?.value || '')"
        ".includes('scored 2 new items')",
        timeout=120_000,
    )
    with unit_of_work(live_app.engine) as s:
        new = s.scalars(select(Item).where(Item.filename.in_(["fresh0.png", "fresh1.png"]))).all()
        assert len(new) == 2 and {i.status for i in new} == {"scored"}
        preds = s.scalars(select(Prediction).where(Prediction.item_id.in_([i.id for i in new])))
        assert len({p.item_id for p in preds}) == 2


def test_bulk_action_records_one_decision_per_item(wpage, live_app: LiveApp, screenshots):
    live_app.add_user("bulk_admin", "admin")
    ids = live_app.seed_items(3, source="bulk-src", priority=0)
    login(wpage, live_app, "bulk_admin")
    wpage.click("button[role=tab]:has-text('Queue')")
    wpage.fill("#q-source textarea, #q-source input", "bulk-src")
    wpage.click("#q-search")
    wpage.wait_for_function(
        "() => document.querySelector('#q-info textarea, #q-info input').value === '3 items'"
    )
    wpage.locator("#q-bulk-cats label:has-text('Drugs')").click()
    wpage.click("#q-bulk-prepare")
    wpage.wait_for_function(
        "() => document.querySelector('#q-bulk-summary textarea, "
        "#q-bulk-summary input').value.includes('on 3 items')"
    )
    with unit_of_work(live_app.engine) as s:  # nothing is written before the confirmation
        assert s.scalars(select(Decision).where(Decision.item_id.in_(ids))).all() == []
    wpage.click("#q-bulk-confirm")
    wpage.wait_for_function(
        "() => document.querySelector('#q-bulk-summary textarea, "
        "#q-bulk-summary input').value.includes('Recorded 3 decisions')"
    )
    wpage.screenshot(path=str(screenshots / "bulk.png"))
    with unit_of_work(live_app.engine) as s:
        rows = s.scalars(select(Decision).where(Decision.item_id.in_(ids))).all()
    assert sorted(d.item_id for d in rows) == sorted(ids)
    assert all(d.source == "bulk" and d.categories == ["drugs"] for d in rows)


def tab_names(page) -> set[str]:
    # The page-load handler sets both the "logged in as" line and the tabs' visibility.
    page.wait_for_function(
        "() => (document.querySelector('#wd-who textarea, #wd-who input')"
        "?.value || '').startsWith('Logged in as')"
    )
    page.wait_for_timeout(300)
    return {t.strip() for t in page.locator("button[role=tab]:visible").all_inner_texts()}


def test_tabs_follow_the_role_and_the_dashboard_renders(wpage, live_app: LiveApp, screenshots):
    live_app.add_user("tabs_mod", "moderator")
    live_app.add_user("tabs_eng", "engineer")
    login(wpage, live_app, "tabs_mod")
    assert tab_names(wpage) == {"Review", "Queue", "Upload"}
    wpage.goto(f"{live_app.base_url}/logout")
    login(wpage, live_app, "tabs_eng")
    assert tab_names(wpage) == {"Review", "Queue", "Upload", "Dashboard", "Models"}
    wpage.click("button[role=tab]:has-text('Dashboard')")
    wpage.click("#db-refresh")
    wpage.wait_for_function(
        "() => document.querySelectorAll('.js-plotly-plot').length >= 8", timeout=60_000
    )
    wpage.wait_for_timeout(500)
    wpage.screenshot(path=str(screenshots / "dashboard.png"), full_page=True)
    agreement = wpage.locator("#db-agreement").inner_text()
    assert "scam_fraud" in agreement and "precision" in agreement
    wpage.click("button[role=tab]:has-text('Models')")
    wpage.click("#m-refresh")
    wpage.wait_for_timeout(1500)
    assert wpage.locator(".toast-body.error, .toast-wrap .error").count() == 0
