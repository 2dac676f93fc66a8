"""Merging two OCR engines by script: RapidOCR for Latin and Chinese, Tesseract for Hangul.

RapidOCR's bundled PP-OCR models cannot read Hangul: on Korean text they return nothing, or
Chinese-looking garbage at low confidence. Tesseract's Korean model reads Hangul but turns
Latin and Chinese into garbage. So the `auto` engine (model.signals) runs RapidOCR first and
asks Tesseract only when RapidOCR's lines suggest non-Latin text or low confidence
(`needs_second_engine`): a confident Latin-only image costs one engine, as before. Then, line
by line, a confident Tesseract line that is mostly Hangul replaces the RapidOCR lines it
overlaps, and everything else stays as RapidOCR read it (`merge_lines`).

The thresholds below were measured with bench/ocr.py (results in bench/results/ocr.json).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

# RapidOCR's own default: lines scored below this are dropped.
RAPID_MIN_SCORE = 0.5
# A line below this score makes the page unsure: ask Tesseract too. RapidOCR reads Korean as
# Latin-looking garbage at 0.8-0.95 ("H647 914-28" for "서초대64가 914-28") and clean Latin
# at 0.97-1.00.
RAPID_SURE_SCORE = 0.97
# A Tesseract line must be this sure (0..1) and this much Hangul (share of its letters) to be
# taken. Tesseract's Korean model on Chinese renders makes Hangul garbage at 0.0-0.5.
# It makes single stray syllables in digits ("응0258 3003"), hence a minimum count too.
TESSERACT_MIN_CONFIDENCE = 0.6
HANGUL_MIN_SHARE = 0.5
HANGUL_MIN_COUNT = 2
# A RapidOCR line this sure and mostly Han or Latin wins over an overlapping Hangul line.
RAPID_KEEP_SCORE = 0.97


@dataclass(frozen=True)
class OCRLine:
    """One line of text with its box (x0, y0, x1, y1) in image pixels and a 0..1 confidence."""

    text: str
    box: tuple[float, float, float, float]
    confidence: float


def is_hangul(ch: str) -> bool:
    """A Hangul syllable. Lone jamo (ㅁ, ㄴ) do not count: Korean is written in syllables, and
    jamo are what Tesseract's Korean model makes of Latin strokes ("080, 『ㅁ0[ㄴＬ")."""
    return 0xAC00 <= ord(ch) <= 0xD7A3


def is_han(ch: str) -> bool:
    """CJK unified ideographs (the common block and extension A)."""
    o = ord(ch)
    return 0x4E00 <= o <= 0x9FFF or 0x3400 <= o <= 0x4DBF


def script_shares(text: str) -> dict[str, float]:
    """Shares of the letters in `text` that are Hangul, Han and Latin (digits and punctuation
    do not count); all zero when there are no letters."""
    letters = [c for c in text if c.isalpha()]
    if not letters:
        return {"hangul": 0.0, "han": 0.0, "latin": 0.0}
    n = len(letters)
    return {
        "hangul": sum(map(is_hangul, letters)) / n,
        "han": sum(map(is_han, letters)) / n,
        "latin": sum(c.isascii() for c in letters) / n,
    }


def needs_second_engine(rapid: Sequence[OCRLine]) -> bool:
    """Whether RapidOCR's lines (all of them, before its score cut) leave room for Hangul:
    nothing read, no letters read (only "123" under a Korean line it did not see), any
    CJK-looking line, any dropped or unsure line."""
    kept = [line for line in rapid if line.confidence >= RAPID_MIN_SCORE and line.text.strip()]
    if not kept or len(kept) < len(rapid):
        return True
    if not any(c.isalpha() for line in kept for c in line.text):
        return True
    if any(is_han(c) or is_hangul(c) for line in kept for c in line.text):
        return True
    return min(line.confidence for line in kept) < RAPID_SURE_SCORE


def _overlaps(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
    """Same text line: they overlap across, and over half the shorter one's height."""
    across = min(a[2], b[2]) - max(a[0], b[0])
    down = min(a[3], b[3]) - max(a[1], b[1])
    shorter = max(1.0, min(a[3] - a[1], b[3] - b[1]))
    return across > 0 and down > 0.5 * shorter


def hangul_lines(tesseract: Sequence[OCRLine]) -> list[OCRLine]:
    """The Tesseract lines worth taking: confident and mostly Hangul."""
    return [
        line
        for line in tesseract
        if line.confidence >= TESSERACT_MIN_CONFIDENCE
        and sum(map(is_hangul, line.text)) >= HANGUL_MIN_COUNT
        and script_shares(line.text)["hangul"] >= HANGUL_MIN_SHARE
    ]


def _sure(line: OCRLine) -> bool:
    """A RapidOCR line it read well: high score, two letters or more, mostly Han or Latin (a
    lone "召" at 0.99 is what it made of the Korean name "김현지")."""
    shares = script_shares(line.text)
    return (
        line.confidence >= RAPID_KEEP_SCORE
        and sum(c.isalpha() for c in line.text) >= 2
        and max(shares["han"], shares["latin"]) >= 0.9
    )


def merge_lines(rapid: Sequence[OCRLine], tesseract: Sequence[OCRLine]) -> list[OCRLine]:
    """RapidOCR's kept lines, with those a Hangul line from Tesseract overlaps replaced by it
    (unless RapidOCR was sure of its line: then the Hangul line goes); in reading order (top to
    bottom, then left to right)."""
    kept = [line for line in rapid if line.confidence >= RAPID_MIN_SCORE and line.text.strip()]
    sure = [line for line in kept if _sure(line)]
    korean = [k for k in hangul_lines(tesseract) if not any(_overlaps(k.box, s.box) for s in sure)]
    if not korean:
        return kept
    out = list(korean)
    out += [line for line in kept if not any(_overlaps(line.box, k.box) for k in korean)]
    return sorted(out, key=lambda line: ((line.box[1] + line.box[3]) / 2, line.box[0]))


def join_lines(lines: Sequence[OCRLine]) -> str:
    """The OCR text as stored and put into the prompt: lines joined by newlines."""
    return "\n".join(t for line in lines if (t := line.text.strip()))
