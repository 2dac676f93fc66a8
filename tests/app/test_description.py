"""The description box of the Review card (app/description.py), as markup: one labelled
description per image or frame, the model's text escaped, the demo's plain absence line in
the reader's language, nothing when the deployment does not describe.

Run: .venv/bin/pytest tests/app/test_description.py -q
"""

from __future__ import annotations

from app.description import description_html, medium_label
from app.i18n import translate

HOSTILE = '<script>alert(1)</script><img src=x onerror="alert(2)">&amp; "quoted"'


def written(*media: dict) -> dict:
    return {"status": "written", "seconds": 0.5, "max_new_tokens": 64, "media": list(media)}


def test_a_single_image_shows_its_description_escaped() -> None:
    markup = description_html(written({"position": 0, "kind": "image", "text": HOSTILE}))
    assert "<script" not in markup and "<img" not in markup
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in markup
    assert "&amp;amp;" in markup  # an entity in the model's text stays text
    assert "Description by the model" in markup and "<dl>" not in markup


def test_posts_and_videos_label_each_medium() -> None:
    post = written(
        {"position": 0, "kind": "image", "text": "a cat"},
        {"position": 1, "kind": "image", "text": "a dog"},
    )
    markup = description_html(post)
    assert '<dt data-position="0">Image 1</dt>' in markup
    assert '<dt data-position="1">Image 2</dt><dd><span class="wd-desc-text">a dog' in markup
    video = written(
        {"position": 0, "kind": "frame", "timestamp_s": 0.0, "text": "a street"},
        {"position": 1, "kind": "frame", "timestamp_s": 3.2499, "text": "a car"},
    )
    assert ">Frame at 3.2 s</dt>" in description_html(video)
    assert medium_label({"position": 2, "kind": "frame"}, "en") == "Frame 3"
    assert medium_label({"position": 1, "kind": "frame", "timestamp_s": 3.2}, "ko") == (
        "3.2초 지점의 프레임"
    )
    assert medium_label({"position": 1, "kind": "image"}, "zh") == "图片 2"


def test_an_empty_description_says_so_and_invents_nothing() -> None:
    markup = description_html(
        written({"position": 0, "kind": "image", "text": "  "}, {"position": 1, "text": "x"})
    )
    assert "The model wrote nothing for this one." in markup


def test_the_demo_says_plainly_there_is_no_description_in_every_language() -> None:
    record = {"status": "unavailable", "reason": "cannot_see_images"}
    assert "No description: this model cannot see images" in description_html(record, "en")
    for lang in ("ko", "zh"):
        line = translate("description.unavailable", lang)
        assert line != translate("description.unavailable", "en")
        assert line in description_html(record, lang)
    assert "wd-desc-text" not in description_html(record)


def test_no_record_or_a_malformed_one_shows_nothing() -> None:
    assert description_html(None) == ""
    assert description_html({"status": "written", "media": []}) == ""
    assert description_html({"status": "written", "media": ["<b>x</b>"]}) == ""
    assert description_html("<b>x</b>") == ""  # type: ignore[arg-type]
    failed = description_html({"status": "failed", "error": "<b>boom</b>"})
    assert "No description: the model failed to write one" in failed and "boom" not in failed


def test_a_graphic_card_keeps_its_description_collapsed() -> None:
    """A description of gore is exposure too: on a card flagged in a graphic category it starts
    collapsed (a <details> the moderator opens on purpose), saying why, in the reader's
    language; other cards show it open."""
    record = written({"position": 0, "kind": "image", "text": "a wounded man <b>x</b>"})
    closed = description_html(record, "ko", ("violence_gore",))
    assert '<details class="wd-desc-graphic"><summary>' in closed and "<details open" not in closed
    assert translate("description.graphic", "ko", graphic="violence_gore") in closed
    assert closed.index("<summary>") < closed.index("a wounded man &lt;b&gt;x&lt;/b&gt;")
    assert "<details" not in description_html(record, "ko")
    # The demo's absence line has nothing to hide.
    none = description_html({"status": "unavailable"}, "en", ("violence_gore",))
    assert "<details" not in none
