"""Tesseract as the OCR engine for Hangul, which RapidOCR's bundled models cannot read.

Tesseract runs in-process through `tesserocr` (its wheel bundles libtesseract); the language
data comes from the system: Debian `tesseract-ocr-kor` puts `kor.traineddata` under
/usr/share/tesseract-ocr/5/tessdata. `TESSDATA_PREFIX` overrides where it is looked for.
Nothing is downloaded. One engine per process, guarded by a lock (the C++ API is not
thread-safe); the language model loads once (~0.3 s), a 448 px page then takes ~0.1 s here.
Page segmentation "single block" (PSM 6): on SynthMod's Korean renders it read 0.87 of the
characters against 0.49 for the automatic layout, which ruled notepaper and photos confuse.

Run: python -m model.ocr_tesseract IMAGE [IMAGE ...]
"""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from model.ocr_scripts import OCRLine
from storage.errors import WardenError

if TYPE_CHECKING:
    from PIL.Image import Image

LANG = "kor"
# Where Debian and other distributions put the data, newest first.
_TESSDATA_DIRS = (
    "/usr/share/tesseract-ocr/5/tessdata",
    "/usr/share/tesseract-ocr/4.00/tessdata",
    "/usr/share/tessdata",
    "/usr/local/share/tessdata",
)
_INSTALL_HINT = "install it with `apt-get install tesseract-ocr tesseract-ocr-kor`"


class TesseractUnavailable(WardenError):
    """The tesserocr binding or the language data is missing; the message says what to do."""


_lock = threading.Lock()
_api: Any = None
_api_key: tuple[str, str] | None = None
# A gap wider than this share of the line height is a space between words (measured on
# SynthMod and PIL renders: syllable gaps are ~0.05-0.15 of the height, word gaps ~0.3+).
_SPACE_GAP = 0.2


def tessdata_dir(lang: str = LANG) -> Path:
    """The directory holding `<lang>.traineddata`; raises TesseractUnavailable if none does."""
    env = os.environ.get("TESSDATA_PREFIX")
    # As in Tesseract itself, TESSDATA_PREFIX when set is the only place looked in.
    candidates = [env, str(Path(env) / "tessdata")] if env else list(_TESSDATA_DIRS)
    for folder in candidates:
        if (Path(folder) / f"{lang}.traineddata").is_file():
            return Path(folder)
    raise TesseractUnavailable(
        f"Tesseract language data {lang!r} not found (looked in {', '.join(candidates)}); "
        + _INSTALL_HINT
    )


def _engine(lang: str) -> Any:
    """The process-wide tesserocr API for `lang`; call with `_lock` held."""
    global _api, _api_key
    folder = str(tessdata_dir(lang))
    if _api is not None and _api_key == (folder, lang):
        return _api
    try:
        import tesserocr
    except ImportError as exc:
        raise TesseractUnavailable(f"the tesserocr package is not installed ({exc})") from exc
    api = tesserocr.PyTessBaseAPI(path=folder + "/", lang=lang, psm=tesserocr.PSM.SINGLE_BLOCK)
    if _api is not None:
        _api.End()
    _api, _api_key = api, (folder, lang)
    return api


def available(lang: str = LANG) -> str | None:
    """None when Tesseract can read `lang` here, else why not (one line)."""
    try:
        with _lock:
            _engine(lang)
    except TesseractUnavailable as exc:
        return str(exc)
    return None


def read_lines(image: Image, lang: str = LANG) -> list[OCRLine]:
    """Text lines Tesseract reads in `image`, top to bottom; raises TesseractUnavailable."""
    words: list[list[tuple[str, tuple[float, float, float, float], float]]] = []
    with _lock:
        api = _engine(lang)
        import tesserocr

        line_level, word_level = tesserocr.RIL.TEXTLINE, tesserocr.RIL.WORD
        api.SetImage(image.convert("L"))
        api.Recognize()
        it = api.GetIterator()
        while it is not None:
            if it.IsAtBeginningOf(line_level) or not words:
                words.append([])
            try:
                text = (it.GetUTF8Text(word_level) or "").strip()
            except RuntimeError:  # "No text returned": an empty word
                text = ""
            box = it.BoundingBox(word_level)
            if text and box is not None:
                words[-1].append((text, tuple(float(v) for v in box), it.Confidence(word_level)))
            if not it.Next(word_level):
                break
        api.Clear()
    return [line for group in words if (line := _join_words(group)) is not None]


def _join_words(
    words: list[tuple[str, tuple[float, float, float, float], float]],
) -> OCRLine | None:
    """One line from its words. Tesseract's Korean model splits a Hangul word into syllables
    ("다 이 어 트 약"); a space is kept only where the gap between boxes looks like one."""
    if not words:
        return None
    height = max(b[3] - b[1] for _, b, _ in words)
    text = words[0][0]
    for (_, prev, _), (word, box, _) in zip(words, words[1:], strict=False):
        gap = box[0] - prev[2]
        text += (" " if gap > _SPACE_GAP * height else "") + word
    x0 = min(b[0] for _, b, _ in words)
    y0 = min(b[1] for _, b, _ in words)
    x1 = max(b[2] for _, b, _ in words)
    y1 = max(b[3] for _, b, _ in words)
    confidence = sum(c for _, _, c in words) / len(words) / 100.0
    return OCRLine(text, (x0, y0, x1, y1), confidence)


def main(argv: list[str] | None = None) -> None:
    from PIL import Image as PILImage

    for path in argv if argv is not None else sys.argv[1:]:
        with PILImage.open(path) as im:
            for line in read_lines(im):
                print(f"{path}: {line.confidence:.2f} {line.text!r}")


if __name__ == "__main__":
    main()
