"""OCR lines keep their boxes: RapidOCR's boxes sit where the text was drawn, the scoring worker
stores them (pixels of the view, with its size) on the medium's row, and rows written before
boxes were kept, or holding malformed entries, still load.

Run: .venv/bin/pytest tests/model/test_ocr_boxes.py -q
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw, ImageFont
from sqlalchemy import select

from model.loading import load_backend
from model.signals import compute_signals
from model.worker import run_worker
from storage.db import make_engine, unit_of_work
from storage.media import media_of, valid_ocr_box
from storage.models import ItemMedium
from storage.settings import Settings
from tests.model._worker_support import FONT, ingest, scoring_settings


def _inside(inner: tuple[float, ...], outer: tuple[float, ...], slack: float) -> bool:
    return (
        inner[0] >= outer[0] - slack
        and inner[1] >= outer[1] - slack
        and inner[2] <= outer[2] + slack
        and inner[3] <= outer[3] + slack
    )


def test_ocr_lines_keep_boxes_where_the_text_was_drawn() -> None:
    img = Image.new("RGB", (640, 360), "white")
    draw = ImageDraw.Draw(img)
    font = ImageFont.truetype(FONT, 40)
    drawn = {}
    for text, at in (("CHEAP PILLS", (40, 40)), ("CALL 555 0199", (300, 260))):
        draw.text(at, text, font=font, fill="black")
        drawn[text] = draw.textbbox(at, text, font=font)

    sig = compute_signals(img, nsfw=False, engine="rapidocr")

    assert sig.image_size == (640, 360)
    records = sig.ocr_boxes()
    assert [r["text"].replace(" ", "") for r in records] == ["CHEAPPILLS", "CALL5550199"]
    assert sig.ocr_text == "\n".join(r["text"] for r in records)
    for record, (_text, bbox) in zip(records, drawn.items(), strict=True):
        box = record["box"]
        # The detector's box hugs the glyphs: around the drawn text, never elsewhere.
        assert _inside(tuple(bbox), tuple(box), slack=4), (bbox, box)
        assert _inside(tuple(box), tuple(bbox), slack=16), (bbox, box)
        assert 0.5 <= record["score"] <= 1.0


def test_worker_stores_boxes_and_view_size_on_the_medium(
    settings: Settings, tiny_internvl: Path, tmp_path: Path
) -> None:
    settings = scoring_settings(settings, tiny_internvl)
    (item,) = ingest(settings, tmp_path / "in", 1)  # the banner image: text in y 80..160
    report = run_worker(
        settings,
        load_backend(settings.model),
        limit=None,
        batch_size=2,
        progress=False,
        pipeline=False,
    )
    assert report.scored == 1, report.errors

    engine = make_engine(settings.database_url, settings.db)
    try:
        with unit_of_work(engine) as s:
            (medium,) = media_of(s, item)
    finally:
        engine.dispose()
    assert medium.image_size == (320, 240)
    assert medium.ocr_lines, medium.ocr_boxes
    assert "".join(b["text"] for b in medium.ocr_lines).replace(" ", "") == "FREECRYPTONOW"
    for line in medium.ocr_lines:
        assert _inside(tuple(line["box"]), (0, 80, 320, 160), slack=2), line


def test_rows_without_boxes_or_with_malformed_ones_still_load(
    settings: Settings, tmp_path: Path
) -> None:
    ids = ingest(settings, tmp_path / "in", 2)
    engine = make_engine(settings.database_url, settings.db)
    try:
        with unit_of_work(engine) as s:
            rows = {r.item_id: r for r in s.scalars(select(ItemMedium))}
            # As migration 0003 wrote them: no boxes, empty meta.
            rows[ids[0]].ocr_boxes, rows[ids[0]].meta = [], {}
            rows[ids[1]].ocr_boxes = [
                {"text": "ok", "box": [1, 2, 30, 12], "score": 0.9},
                {"text": "no box"},
                {"text": "inverted", "box": [30, 2, 1, 12]},
                {"text": "short", "box": [1, 2, 3]},
                "a string",
                {"text": 5, "box": [1, 2, 3, 4]},
            ]
            rows[ids[1]].meta = {"image_size": "big"}
        with unit_of_work(engine) as s:
            (old,) = media_of(s, ids[0])
            (bad,) = media_of(s, ids[1])
    finally:
        engine.dispose()
    assert old.ocr_lines == [] and old.image_size is None
    assert bad.ocr_lines == [{"text": "ok", "box": [1, 2, 30, 12], "score": 0.9}]
    assert bad.image_size is None
    # Not storable in PostgreSQL's JSON, but SQLite's takes it: never drawn.
    assert not valid_ocr_box({"text": "inf", "box": [1, 2, float("inf"), 12]})
