"""The evidence overlay's markup: boxes in percentages of the image, the category's title as
the label, hostile OCR text inert, malformed regions left out, boxes clamped to the image, a
graphic card's text hidden; and the review card carries its prediction's regions.

Run: .venv/bin/pytest tests/app/test_evidence_overlay.py -q
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

from app.evidence_overlay import frame_for, valid_regions
from app.tabs.review import image_html
from storage.policy import load_policy
from storage.settings import DEFAULT_POLICY

POLICY = load_policy(DEFAULT_POLICY)
HOSTILE = "<img src=x onerror=alert(1)>"


def _region(**kw):
    base = {
        "position": 0,
        "category": "drugs",
        "box": [100, 50, 300, 100],
        "image_size": [400, 200],
        "source": "ocr",
        "why": "attribution",
        "text": "Buy cocaine",
        "weight": 0.5,
    }
    return {**base, **kw}


class _Parsed(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: set[str] = set()
        self.titles: list[str] = []
        self.categories: list[str] = []
        self.texts: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        a = dict(attrs)
        self.titles += [a["title"] or ""] if "title" in a else []
        self.categories += [a["data-category"] or ""] if "data-category" in a else []

    def handle_data(self, data: str) -> None:
        self.texts.append(data)


def _styles(markup: str) -> list[str]:
    return re.findall(r'class="wd-ev-box[^"]*" style="([^"]*)"', markup)


def test_boxes_are_percentages_of_the_image_with_the_category_title() -> None:
    model_box = _region(source="model", why="grounding", box=[0, 100, 200, 200], text="")
    opening, closing = frame_for([_region(), model_box], POLICY)
    assert opening.startswith('<div class="wd-ev-frame"')
    assert "calc(42vh * 2.0000)" in opening  # a 2:1 image
    assert _styles(closing) == [
        "left:25.00%;top:25.00%;width:50.00%;height:25.00%",
        "left:0.00%;top:50.00%;width:50.00%;height:50.00%",
    ]
    title = POLICY.category("drugs").title_in("en")
    assert closing.count(f'<span class="wd-ev-label">{title}</span>') == 2
    assert 'class="wd-ev-box wd-ev-ocr"' in closing
    assert 'class="wd-ev-box wd-ev-model"' in closing
    ko = frame_for([_region()], POLICY, "ko")
    assert ko is not None and POLICY.category("drugs").title_in("ko") in ko[1]


def test_hostile_text_is_inert() -> None:
    regions = [
        _region(text=HOSTILE),
        _region(category=None, why="reader", text=HOSTILE, read_as=HOSTILE + '"><b>x'),
        _region(category=HOSTILE),
    ]
    opening, closing = frame_for(regions, POLICY)
    markup = opening + closing
    assert "<img" not in markup and "<b>" not in markup
    assert "onerror=alert(1)&gt;" in markup
    # Parsed as a browser would: only our divs and spans, the hostile text whole inside
    # attributes and text nodes (no quote broke out of title="..." or data-category).
    parsed = _Parsed()
    parsed.feed(markup)
    assert parsed.tags <= {"div", "span"}
    assert HOSTILE in parsed.titles and any(HOSTILE in c for c in parsed.categories)
    assert f'→ {HOSTILE}"><b>x' in "".join(parsed.texts)


def test_malformed_regions_are_left_out_and_boxes_clamped() -> None:
    regions = [
        "a string",
        _region(box=[1, 2, 3]),
        _region(box=[1, 2, "3", 4]),
        _region(box=[1, 2, float("nan"), 4]),
        _region(image_size=[0, 200]),
        _region(image_size=[400]),
        _region(source="guess"),
        _region(position=1),
        _region(box=[500, 50, 600, 100]),  # wholly outside: nothing left after clamping
        _region(box=[350, -20, 900, 40], category="weapons"),
    ]
    kept = valid_regions(regions)
    assert [r["box"] for r in kept] == [(350.0, 0.0, 400.0, 40.0)]
    assert valid_regions(None) == [] and valid_regions({"x": 1}) == []
    assert frame_for([], POLICY) is None
    assert frame_for(regions[:-1], POLICY) is None


def test_graphic_card_hides_the_text_but_keeps_the_box() -> None:
    regions = [_region(), _region(category=None, why="reader", read_as="free money")]
    _, closing = frame_for(regions, POLICY, hide_text=True)
    assert "Buy cocaine" not in closing and "free money" not in closing
    assert len(_styles(closing)) == 1
    _, shown = frame_for(regions, POLICY)
    assert 'title="Buy cocaine"' in shown and "→ free money" in shown


def test_one_box_per_place_with_its_labels_joined() -> None:
    regions = [
        _region(),
        _region(category="illegal_ads", weight=0.1),
        _region(category=None, why="reader", read_as="free money"),
        _region(source="model", why="grounding", text=""),  # same place, the model's own
    ]
    _, closing = frame_for(regions, POLICY)
    assert len(_styles(closing)) == 2
    drugs, ads = (POLICY.category(c).title_in("en") for c in ("drugs", "illegal_ads"))
    assert f'<span class="wd-ev-label">{drugs} · {ads} · → free money</span>' in closing
    assert 'data-category="drugs illegal_ads"' in closing


def test_image_markup_wraps_the_image_and_keeps_the_caption_outside() -> None:
    frame = frame_for([_region()], POLICY)
    markup = image_html("/img/1?s=abc", True, "drugs 0.99", frame=frame)
    assert markup.index('<div class="wd-ev-frame"') < markup.index('<img id="wd-image"')
    assert markup.index('<div class="wd-ev"') > markup.index('<img id="wd-image"')
    assert markup.rindex('<div class="wd-blurnote">') > markup.rindex("</div></div>")
    assert image_html("/img/1", False) == image_html("/img/1", False, frame=None)


def test_strip_thumbnails_get_their_own_medium_boxes_without_text() -> None:
    from app.media_strip import strip_html
    from storage.media_review import MediumView

    views = [
        MediumView(
            position=k,
            label=f"Image {k + 1}",
            kind="image",
            timestamp_s=None,
            blurred=False,
            revealed=False,
            blur_reason="",
            ocr_text=None,
            worst_score=0.0,
        )  # fmt: skip
        for k in range(2)
    ]
    urls = {k: f"/img/7?m={k}" for k in range(2)}
    regions = [_region(position=1, text=HOSTILE), _region(position=5)]
    markup = strip_html(views, urls, 7, "en", regions, POLICY)
    first, second = markup.split("<figure")[1:]
    assert "wd-ev" not in first
    assert _styles(second) == ["left:25.00%;top:25.00%;width:50.00%;height:25.00%"]
    assert 'style="width:160px"' in second and "onerror" not in second
    assert strip_html(views, urls, 7, "en") == strip_html(views, urls, 7, "en", [], POLICY)
