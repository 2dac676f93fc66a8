"""Cheap signals on real inputs: RapidOCR reads a rendered banner, open_nsfw gives a stable
probability, and a detector that fails yields None instead of stopping scoring.

Run: .venv/bin/pytest tests/model/test_signals.py -q
"""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from model.signals import Signals, compute_signals

FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf"


def banner(text: str, size: tuple[int, int] = (720, 160)) -> Image.Image:
    img = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(img)
    draw.text((24, 50), text, font=ImageFont.truetype(FONT, 48), fill="black")
    return img


def test_ocr_reads_rendered_banner_back() -> None:
    sig = compute_signals(banner("CHEAP PILLS 24/7"), nsfw=False)
    assert sig.errors == {}
    assert sig.ocr_text is not None
    assert sig.ocr_text.replace(" ", "") == "CHEAPPILLS24/7"
    assert sig.nsfw is None  # switched off
    assert "ocr" in sig.timings_ms and "nsfw" not in sig.timings_ms


def test_ocr_on_image_without_text_is_empty_not_none() -> None:
    flat = Image.new("RGB", (320, 240), (90, 140, 200))
    sig = compute_signals(flat, nsfw=False)
    assert sig.ocr_text == ""


def test_nsfw_is_a_deterministic_probability_on_photos_and_flat_images() -> None:
    skimage_data = pytest.importorskip("skimage.data")
    photo = Image.fromarray(skimage_data.astronaut())
    flat = Image.new("RGB", (256, 256), (128, 128, 128))
    a = compute_signals(photo, ocr=False)
    b = compute_signals(photo, ocr=False)
    c = compute_signals(flat, ocr=False)
    for s in (a, c):
        assert s.nsfw is not None and 0.0 <= s.nsfw <= 1.0
    assert a.nsfw == pytest.approx(b.nsfw, abs=1e-6)
    # Different content gives a different score: the model really looked at the pixels.
    assert a.nsfw != pytest.approx(c.nsfw, abs=1e-4)
    # A benign photo is not flagged at the default 0.5 threshold.
    assert a.nsfw < 0.5


def test_grayscale_and_rgba_inputs_are_accepted() -> None:
    gray = Image.fromarray(np.full((200, 300), 200, dtype=np.uint8), mode="L")
    rgba = banner("HELLO").convert("RGBA")
    for img in (gray, rgba):
        sig = compute_signals(img)
        assert sig.errors == {}
        assert sig.nsfw is not None


def test_failing_detector_yields_none_and_keeps_the_other(caplog: pytest.LogCaptureFixture) -> None:
    # A 0x0 image: OpenCV inside RapidOCR refuses it; open_nsfw resizes it and still answers.
    sig = compute_signals(Image.new("RGB", (0, 0)))
    assert sig.ocr_text is None
    assert "ocr" in sig.errors
    assert sig.nsfw is not None
    assert "OCR failed" in caplog.text
    stored = sig.as_verdict_signals()
    assert stored["nsfw"] == sig.nsfw and "ocr_ms" in stored and "nsfw_ms" in stored
    assert "ocr" in stored["signal_errors"]  # type: ignore[operator]


def test_verdict_signals_shape() -> None:
    sig = Signals(ocr_text="x", nsfw=0.25, timings_ms={"ocr": 12.345, "nsfw": 3.0})
    assert sig.as_verdict_signals() == {"nsfw": 0.25, "ocr_ms": 12.3, "nsfw_ms": 3.0}
