"""OCR that reads Hangul: the `auto` engine (RapidOCR + Tesseract's Korean model, merged by
script), on real renders drawn here with the Noto CJK faces, through the real engines."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import pytest
from PIL import Image, ImageDraw, ImageFont
from pydantic import ValidationError

from model import ocr_scripts, ocr_tesseract, signals
from model.ocr_scripts import OCRLine
from storage.settings import ModelSettings

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from bench.ocr import char_accuracy  # noqa: E402

KOREAN = ["오늘 저녁 회의는", "세 시에 시작합니다", "주차 금지 구역"]
CHINESE = ["今天下午三点开会", "请不要在这里停车"]
ENGLISH = ["Meeting starts at three", "No parking in this area"]
# Measured on these renders: auto 1.00 (Korean), RapidOCR alone 0.00-0.10. The bound leaves
# room for another Tesseract build misreading a syllable or two.
KOREAN_MIN_ACCURACY = 0.85


@pytest.fixture(scope="module")
def korean_tesseract() -> None:
    why = ocr_tesseract.available()
    if why is not None:
        # `make test` installs the Debian packages; in CI their absence is a broken set-up.
        if os.environ.get("CI"):
            pytest.fail(why)
        pytest.skip(why)


def _cjk_font(family: str, px: int) -> ImageFont.FreeTypeFont:
    """A face of the noto-cjk-sans-otc wheel's collection, found by name."""
    import noto_cjk_sans_otc

    for index in range(40):
        font = ImageFont.truetype(str(noto_cjk_sans_otc.FONT_PATH), px, index=index)
        if font.getname()[0] == family:
            return font
    raise LookupError(family)


def render(lines: list[str], font: ImageFont.FreeTypeFont, dark: bool = False) -> Image.Image:
    bg, ink = ((30, 30, 40), (240, 240, 240)) if dark else ((252, 250, 240), (20, 20, 20))
    img = Image.new("RGB", (560, 60 + 56 * len(lines)), bg)
    draw = ImageDraw.Draw(img)
    for k, line in enumerate(lines):
        draw.text((30, 30 + 56 * k), line, font=font, fill=ink)
    return img


def korean_image(dark: bool = False) -> Image.Image:
    return render(KOREAN, _cjk_font("Noto Sans CJK KR", 34), dark)


@pytest.mark.parametrize("dark", [False, True], ids=["light", "dark"])
def test_auto_engine_reads_hangul_that_rapidocr_cannot(korean_tesseract, dark):
    image = korean_image(dark)
    truth = "\n".join(KOREAN)
    text = signals.read_text(image, "auto")
    assert sum(map(ocr_scripts.is_hangul, text)) >= 10, text
    assert char_accuracy(truth, text) >= KOREAN_MIN_ACCURACY, text
    # The defect: RapidOCR's bundled models return no Hangul at all.
    rapid = signals.read_text(image, "rapidocr")
    assert not any(map(ocr_scripts.is_hangul, rapid))
    assert char_accuracy(truth, rapid) < 0.5


def test_compute_signals_uses_the_chosen_engine(korean_tesseract):
    sig = signals.compute_signals(korean_image(), nsfw=False, engine="auto")
    assert not sig.errors
    assert char_accuracy("\n".join(KOREAN), sig.ocr_text or "") >= KOREAN_MIN_ACCURACY


@pytest.mark.parametrize(
    ("lines", "font"),
    [
        (CHINESE, lambda: _cjk_font("Noto Sans CJK SC", 34)),
        (ENGLISH, lambda: ImageFont.truetype("DejaVuSans.ttf", 32)),
    ],
    ids=["chinese", "english"],
)
def test_auto_engine_is_not_worse_than_rapidocr_on_chinese_and_english(
    korean_tesseract, lines, font
):
    image = render(lines, font())
    truth = "\n".join(lines)
    rapid = char_accuracy(truth, signals.read_text(image, "rapidocr"))
    auto = char_accuracy(truth, signals.read_text(image, "auto"))
    assert rapid >= 0.9  # the renders are readable: the comparison means something
    assert auto >= rapid


def test_latin_page_read_well_costs_one_engine():
    """A confident Latin-only page never calls Tesseract (the worker's OCR cost stays)."""
    image = render(ENGLISH, ImageFont.truetype("DejaVuSans.ttf", 32))
    rapid = signals.rapid_lines(image)
    assert rapid and not ocr_scripts.needs_second_engine(rapid)


def test_a_sure_chinese_line_beats_a_stray_hangul_reading():
    """Tesseract's Korean model reads Chinese pages as Hangul garbage; a line RapidOCR is sure
    of stays, and the overlapping Hangul line does not appear beside it."""
    # Both pairs seen on SynthMod's Chinese renders.
    rapid = [OCRLine("李磊 138-0000-1151", (139, 275, 373, 312), 0.99)]
    tess = [OCRLine("주쯤138-0000-1151", (139, 275, 373, 312), 0.72)]
    assert ocr_scripts.join_lines(ocr_scripts.merge_lines(rapid, tess)) == "李磊 138-0000-1151"
    rapid = [OCRLine("号0258 3003 1816 0965", (33, 263, 416, 302), 0.99)]
    tess = [OCRLine("응0258 3003 1816 0965", (36, 263, 412, 307), 0.73)]
    assert ocr_scripts.join_lines(ocr_scripts.merge_lines(rapid, tess)) == rapid[0].text


def test_jamo_garbage_does_not_replace_a_latin_line():
    """Seen on a SynthMod card: Tesseract's Korean model read "Road, Port" (RapidOCR 0.95) as
    lone jamo and symbols at 0.68; that is not Korean text."""
    rapid = [OCRLine("Road, Port", (104, 171, 342, 215), 0.95)]
    tess = [OCRLine("080, 『ㅁ0[ㄴＬ", (113, 174, 338, 216), 0.68)]
    assert ocr_scripts.join_lines(ocr_scripts.merge_lines(rapid, tess)) == "Road, Port"


def test_a_page_of_digits_only_asks_tesseract():
    """Seen on a PIL render: RapidOCR missed the Korean address line entirely and read only the
    number under it ("123", 1.00); with no letters read, the page must go to Tesseract."""
    assert ocr_scripts.needs_second_engine([OCRLine("123", (19, 75, 74, 114), 1.0)])
    assert not ocr_scripts.needs_second_engine([OCRLine("Tel 123", (19, 75, 99, 114), 1.0)])


def test_a_lone_sure_han_character_does_not_beat_a_korean_name():
    rapid = [OCRLine("召", (21, 73, 111, 114), 0.99)]
    tess = [OCRLine("김현지", (26, 79, 103, 107), 0.97)]
    assert ocr_scripts.join_lines(ocr_scripts.merge_lines(rapid, tess)) == "김현지"


def test_missing_language_data_degrades_auto_and_fails_tesseract_clearly(
    korean_tesseract, tmp_path, monkeypatch, caplog
):
    image = korean_image()
    rapid_text = signals.read_text(image, "rapidocr")
    monkeypatch.setenv("TESSDATA_PREFIX", str(tmp_path))  # no kor.traineddata there
    monkeypatch.setattr(signals, "_warned_no_tesseract", False)
    with caplog.at_level(logging.WARNING, logger="model.signals"):
        assert signals.read_text(image, "auto") == rapid_text
        assert signals.read_text(image, "auto") == rapid_text
    warnings = [r for r in caplog.records if "OCR without Hangul" in r.getMessage()]
    assert len(warnings) == 1
    assert "tesseract-ocr-kor" in warnings[0].getMessage()

    with pytest.raises(ocr_tesseract.TesseractUnavailable, match="tesseract-ocr-kor"):
        signals.read_text(image, "tesseract")
    sig = signals.compute_signals(image, nsfw=False, engine="tesseract")
    assert sig.ocr_text is None
    assert "tesseract-ocr-kor" in sig.errors["ocr"]


def test_ocr_engine_setting():
    assert ModelSettings().ocr_engine == "auto"
    assert ModelSettings(ocr_engine="tesseract").ocr_engine == "tesseract"
    with pytest.raises(ValidationError):
        ModelSettings(ocr_engine="easyocr")
    with pytest.raises(ValueError, match="unknown OCR engine"):
        signals.read_text(korean_image(), "easyocr")  # type: ignore[arg-type]
