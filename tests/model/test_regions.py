"""Evidence regions from OCR lines: the lines the learnt reader rewrote, and (opt-in) the lines
whose absence lowers a flagged category's score, through the real scoring worker on the demo
checkpoint, RapidOCR and a real ingest.

Run: .venv/bin/pytest tests/model/test_regions.py -q
"""

from __future__ import annotations

import time
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from model.backends import ScoringInput
from model.loading import load_backend
from model.ocr_scripts import OCRLine
from model.reading import Channel, Reader
from model.regions import MediumLines, add_ocr_regions, reader_regions
from model.signals import compute_signals
from model.worker import run_worker
from storage.db import make_engine
from storage.ingest import ingest_paths
from storage.settings import ModelSettings, Settings
from tests.model._worker_support import predictions_by_item

DRUGS = "Buy cocaine online, fast shipping"
# Lines around it that say nothing of drugs. The whole card scores drugs 0.72 on the demo; the
# cocaine line alone 0.996, the others alone near nothing, so the attribution names it alone.
# (Sales talk is not neutral to the demo: "DM me for prices" alone scores drugs 0.97, "Cash
# only" 0.77, and a card with them names them as evidence too.)
LINES = ("Sale today", DRUGS, "Open 24/7")


def _card() -> Image.Image:
    img = Image.new("RGB", (720, 360), "white")
    draw = ImageDraw.Draw(img)
    font = ImageFont.load_default(size=36)
    for k, line in enumerate(LINES):
        draw.text((24, 20 + 60 * k), line, font=font, fill="black")
    return img


def test_lines_the_reader_rewrote_are_regions_with_their_box() -> None:
    reader = Reader(Channel({"e": {"3": 0.6}, "o": {"0": 0.6}}), {"free": 5, "money": 5})
    media = [
        MediumLines(
            1,
            (
                OCRLine("see you soon", (1, 2, 50, 12), 0.99),
                OCRLine("fr33 m0n3y", (10, 40, 90, 60), 0.97),
            ),
            (200, 100),
        )
    ]
    assert reader_regions(reader, media) == [
        {
            "position": 1,
            "box": [10.0, 40.0, 90.0, 60.0],
            "image_size": [200, 100],
            "source": "ocr",
            "text": "fr33 m0n3y",
            "category": None,
            "why": "reader",
            "read_as": "free money",
        }
    ]
    assert reader_regions(None, media) == []


def test_attribution_marks_the_line_that_drove_the_category(policy) -> None:
    backend = load_backend(ModelSettings(name="demo", device="cpu", quant="none"))
    image = _card()
    sig = compute_signals(image, nsfw=False, engine="rapidocr")
    assert [line.text for line in sig.ocr_lines][1] == DRUGS, sig.ocr_lines
    inp = ScoringInput(image=image, ocr_text=sig.ocr_text, item_id=7)
    t0 = time.perf_counter()
    [verdict] = backend.score([inp], policy)
    plain_s = time.perf_counter() - t0
    assert "drugs" in verdict.flagged, verdict.scores
    lines = {7: [MediumLines(0, sig.ocr_lines, sig.image_size)]}

    t0 = time.perf_counter()
    [with_regions] = add_ocr_regions(backend, [inp], [verdict], policy, lines, attribute=True)
    attribution_s = time.perf_counter() - t0
    n = len(sig.ocr_lines)
    print(f"score {plain_s:.3f} s, attribution over {n} lines {attribution_s:.3f} s")

    regions = with_regions.signals["evidence_regions"]
    drugs = [r for r in regions if r["category"] == "drugs"]
    assert [r["text"] for r in drugs] == [sig.ocr_lines[1].text.strip()], regions
    (region,) = drugs
    assert region["why"] == "attribution" and region["source"] == "ocr"
    assert region["box"] == [round(v, 1) for v in sig.ocr_lines[1].box]
    assert region["image_size"] == [720, 360] and region["weight"] > 0.5
    assert 70 <= region["box"][1] and region["box"][3] <= 140  # the second line's band
    # Off: no extra pass, no attributed region.
    [plain] = add_ocr_regions(backend, [inp], [verdict], policy, lines, attribute=False)
    assert not [r for r in plain.signals.get("evidence_regions", []) if r["category"]]


def test_worker_records_regions_of_a_flagged_item(settings: Settings, tmp_path: Path) -> None:
    model = settings.model.model_copy(update={"name": "demo", "device": "cpu", "quant": "none"})
    worker = settings.worker.model_copy(update={"region_evidence": True})
    settings = settings.model_copy(update={"model": model, "worker": worker})
    path = tmp_path / "card.png"
    _card().save(path)
    engine = make_engine(settings.database_url, settings.db)
    try:
        (result,) = ingest_paths(engine, settings, [path]).results
    finally:
        engine.dispose()
    report = run_worker(
        settings, load_backend(settings.model), limit=None, batch_size=2, progress=False,
        pipeline=False,
    )  # fmt: skip
    assert report.scored == 1, report.errors
    (pred,) = predictions_by_item(settings)[result.item_id]
    assert "drugs" in pred.flagged
    regions = pred.signals["evidence_regions"]
    assert any(r["category"] == "drugs" and "cocaine" in r["text"] for r in regions), regions
    assert all(r["position"] == 0 and r["image_size"] == [720, 360] for r in regions)
